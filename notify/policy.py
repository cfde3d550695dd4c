"""When to try a delivery again, and when an endpoint's circuit is open: pure functions."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float
    max_s: float
    breaker_failures: int
    breaker_open_s: float

    def backoff(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        """Delay before the next attempt after ``attempts`` failed ones: exponential, capped,
        with "equal jitter" (between half and all of it) so that the deliveries of an
        endpoint that comes back do not all return at the same instant."""
        # The exponent is bounded before the power: 2**1024 is past a float.
        ceiling = min(self.max_s, self.base_s * 2 ** min(max(0, attempts - 1), 62))
        return timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))

    def cap(
        self,
        max_concurrency: int,
        consecutive_failures: int,
        open_until: datetime | None,
        now: datetime,
    ) -> int:
        """How many requests the endpoint may have in flight, across all replicas. Closed: its
        concurrency. Open: none. Half-open (the open period over, failures not yet cleared):
        one probe at a time until one succeeds."""
        if open_until is not None and open_until > now:
            return 0
        if consecutive_failures >= self.breaker_failures:
            return 1
        return max_concurrency

    def slots(
        self,
        max_concurrency: int,
        in_flight: int,
        consecutive_failures: int,
        open_until: datetime | None,
        now: datetime,
    ) -> int:
        """How many more deliveries this process may send the endpoint now (the claim then
        also counts what other replicas have in flight)."""
        cap = self.cap(max_concurrency, consecutive_failures, open_until, now)
        return max(0, cap - in_flight)


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A Retry-After header (seconds or an HTTP date), if the receiver sent a usable one."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Bounded (the caller caps it again at the backoff maximum): a day is plenty.
        return timedelta(seconds=min(int(value), 86_400))
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(timedelta(0), when - now), timedelta(days=1)) if when.tzinfo else None
