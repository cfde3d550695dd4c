"""Retry policy: exponential, capped backoff with equal jitter; the per-endpoint circuit breaker
(closed, open, half-open); and Retry-After headers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from notify.policy import RetryPolicy, retry_after

POLICY = RetryPolicy(base_s=5.0, max_s=900.0, breaker_failures=5, breaker_open_s=60.0)
NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)


class _Lowest(random.Random):
    """Always draws the bottom of the range."""

    def uniform(self, a: float, b: float) -> float:
        return a


class _Highest(random.Random):
    """Always draws the top of the range."""

    def uniform(self, a: float, b: float) -> float:
        return b


# --------------------------------------------------------------------------------------------
# Backoff


@pytest.mark.parametrize(
    ("attempts", "ceiling_s"),
    [
        (0, 5.0),
        (1, 5.0),
        (2, 10.0),
        (3, 20.0),
        (4, 40.0),
        (8, 640.0),
        (9, 900.0),  # 1280 capped
        (30, 900.0),
    ],
)
def test_backoff_doubles_per_attempt_up_to_the_cap(attempts: int, ceiling_s: float) -> None:
    assert POLICY.backoff(attempts, _Highest()) == timedelta(seconds=ceiling_s)
    assert POLICY.backoff(attempts, _Lowest()) == timedelta(seconds=ceiling_s / 2)


@pytest.mark.parametrize("attempts", [1, 2, 5, 12])
def test_backoff_jitter_stays_between_half_and_all_of_the_ceiling(attempts: int) -> None:
    ceiling = min(900.0, 5.0 * 2 ** (attempts - 1))
    rng = random.Random(attempts)
    delays = [POLICY.backoff(attempts, rng).total_seconds() for _ in range(500)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    # Spread over the range, so that deliveries that failed together do not return together.
    assert max(delays) - min(delays) > ceiling * 0.4


def test_backoff_uses_the_global_random_when_no_rng_is_given() -> None:
    delays = {POLICY.backoff(3) for _ in range(20)}
    assert all(timedelta(seconds=10) <= d <= timedelta(seconds=20) for d in delays)
    assert len(delays) > 1


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = [POLICY.backoff(n, random.Random(42)) for n in range(1, 10)]
    second = [POLICY.backoff(n, random.Random(42)) for n in range(1, 10)]
    assert first == second


def test_backoff_stays_capped_after_very_many_attempts() -> None:
    policy = RetryPolicy(base_s=0.2, max_s=60.0, breaker_failures=5, breaker_open_s=60.0)
    assert policy.backoff(1025, _Highest()) == timedelta(seconds=60)


# --------------------------------------------------------------------------------------------
# Circuit breaker


@pytest.mark.parametrize(
    ("in_flight", "failures", "open_until", "expected"),
    [
        # Closed: up to the endpoint's concurrency.
        (0, 0, None, 4),
        (1, 0, None, 3),
        (4, 0, None, 0),
        (6, 0, None, 0),  # never negative
        (0, 4, None, 4),  # one failure short of opening
        (0, 0, NOW - timedelta(seconds=1), 4),
        # Open: nothing, whatever is in flight or however few failures are counted.
        (0, 5, NOW + timedelta(seconds=1), 0),
        (0, 0, NOW + timedelta(seconds=30), 0),
        # Half-open (open period over, failures not cleared): one probe at a time.
        (0, 5, NOW - timedelta(seconds=1), 1),
        (0, 5, NOW, 1),  # the open period ends exactly now
        (1, 5, NOW - timedelta(seconds=1), 0),
        (3, 9, None, 0),
        (0, 9, None, 1),
    ],
    ids=[
        "closed-idle",
        "closed-one-in-flight",
        "closed-full",
        "closed-over-full",
        "closed-below-threshold",
        "closed-old-open-until",
        "open",
        "open-without-failures",
        "half-open-idle",
        "half-open-at-boundary",
        "half-open-probe-in-flight",
        "half-open-many-in-flight",
        "half-open-no-open-until",
    ],
)
def test_slots(in_flight: int, failures: int, open_until: datetime | None, expected: int) -> None:
    assert POLICY.slots(4, in_flight, failures, open_until, NOW) == expected


# --------------------------------------------------------------------------------------------
# Retry-After


def _http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("120", timedelta(seconds=120)),
        (" 7 ", timedelta(seconds=7)),
        ("0", timedelta(0)),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        (_http_date(NOW + timedelta(seconds=90)), timedelta(seconds=90)),
        (_http_date(NOW - timedelta(hours=1)), timedelta(0)),  # already past: no wait
        ("Fri, 14 Mar 2025 12:02:00 -0000", None),  # no usable zone
    ],
    ids=[
        "absent",
        "empty",
        "blank",
        "seconds",
        "seconds-padded",
        "zero",
        "negative",
        "fraction",
        "word",
        "http-date-ahead",
        "http-date-past",
        "http-date-unknown-zone",
    ],
)
def test_retry_after(header: str | None, expected: timedelta | None) -> None:
    assert retry_after(header, NOW) == expected


def test_retry_after_with_an_absurdly_large_value_does_not_raise() -> None:
    assert retry_after("99999999999999", NOW) == timedelta(days=1)


def test_retry_after_with_non_ascii_digits_is_unusable() -> None:
    assert retry_after("\u00b2", NOW) is None
