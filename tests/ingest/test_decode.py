"""Decoding and validation without services: every rejection has a specific reason and detail."""

from __future__ import annotations

import json
import time

import pytest

from ingest.decode import Address, Decoded, DecodeOptions, Rejected, decode, decode_all, parse_topic
from ingest.mqtt import Message
from placewatch.kinds import Kind

PREFIX = "placewatch"
OPTIONS = DecodeOptions(PREFIX)


def msg(
    topic: str, payload: bytes | dict[str, object], received_at: float | None = None
) -> Message:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Message(topic, body, 1, False, received_at or time.time(), 1)


def test_topic_names_council_kind_and_device() -> None:
    assert parse_topic("placewatch/sutton/bin_fill/bin-1", PREFIX) == Address(
        "sutton", Kind.BIN_FILL, "bin-1"
    )
    assert parse_topic("a/b/merton/flood_level/g-2", "a/b") == Address(
        "merton", Kind.FLOOD_LEVEL, "g-2"
    )
    assert "not placewatch/<council>/<kind>/<device>" in str(
        parse_topic("placewatch/sutton/bin_fill", PREFIX)
    )
    assert "kind 'weather'" in str(parse_topic("placewatch/sutton/weather/w1", PREFIX))


@pytest.mark.parametrize(
    ("kind", "payload", "reason", "detail"),
    [
        (
            "bin_fill",
            {"time": "2026-01-01T00:00:00Z", "fill_pct": 140},
            "out_of_range",
            "fill_pct=140: Input should be less than or equal to 100",
        ),
        (
            "air_quality",
            {"time": "2026-01-01T00:00:00Z", "pm25_ugm3": -3},
            "out_of_range",
            "pm25_ugm3=-3: Input should be greater than or equal to 0",
        ),
        (
            "flood_level",
            {"time": "2026-01-01T00:00:00Z"},
            "missing_field",
            "level_m: Field required",
        ),
        (
            "flood_level",
            {"time": "2026-01-01T00:00:00", "level_m": 1},
            "invalid_value",
            "time='2026-01-01T00:00:00': Input should have timezone info",
        ),
        (
            "flood_level",
            {"time": "2026-01-01T00:00:00Z", "level_m": 1, "lvl": 2},
            "unknown_field",
            "lvl=2: Extra inputs are not permitted",
        ),
        (
            "home_activity",
            {"time": "2026-01-01T00:00:00Z", "sensor": "door"},
            "missing_field",
            "a door reading needs door_open",
        ),
        (
            "home_activity",
            {"time": "2026-01-01T00:00:00Z", "sensor": "toaster", "power_w": 1},
            "invalid_value",
            "sensor='toaster'",
        ),
        ("bin_fill", b"\xff\x00garbage", "invalid_json", "Invalid JSON"),
        ("bin_fill", b"[1]", "not_an_object", "payload"),
        (
            "bin_fill",
            b'{"time": "2026-01-01T00:00:00Z", "fill_pct": Infinity}',
            "out_of_range",
            "fill_pct=inf: Input should be a finite number",
        ),
    ],
)
def test_rejections_name_field_value_and_reason(
    kind: str, payload: bytes | dict[str, object], reason: str, detail: str
) -> None:
    out = decode(msg(f"placewatch/sutton/{kind}/d1", payload), OPTIONS)
    assert isinstance(out, Rejected)
    assert (out.reason, out.council_id) == (reason, "sutton")
    assert detail in out.detail


def test_event_time_window() -> None:
    """Late readings are accepted up to the age limit; the future ones and 1970 ones are not."""
    now = time.time()
    options = DecodeOptions(PREFIX, max_future_s=300, max_age_s=366 * 86_400)

    def check(event_time: float) -> Decoded | Rejected:
        payload: dict[str, object] = {"time": event_time, "level_m": 1}
        out = decode(msg("placewatch/s/flood_level/g", payload, now), options)
        assert not isinstance(out, list)
        return out

    assert isinstance(check(now - 86_400 * 30), Decoded)
    assert isinstance(check(now + 200), Decoded)
    future = check(now + 3600)
    assert isinstance(future, Rejected) and future.reason == "future_timestamp"
    assert "more than 300 s after it was received" in future.detail
    unset_clock = check(0)
    assert isinstance(unset_clock, Rejected) and unset_clock.reason == "too_old"
    assert "time=1970-01-01T00:00:00+00:00: more than 366 days before" in unset_clock.detail
    no_limit = decode(
        msg("placewatch/s/flood_level/g", {"time": 0, "level_m": 1}, now), DecodeOptions(PREFIX)
    )
    assert isinstance(no_limit, Decoded)


def test_decode_all_keeps_order_and_splits() -> None:
    batch = [
        msg("placewatch/s/flood_level/g", {"time": "2026-01-01T00:00:00Z", "level_m": 1}),
        msg("placewatch/s/flood_level/g", b"{"),
        msg("placewatch/s/bin_fill/b", {"time": "2026-01-01T00:00:00Z", "distance_mm": 5}),
    ]
    decoded, rejected = decode_all(batch, OPTIONS)
    assert [d.message for d in decoded] == [batch[0], batch[2]]
    assert [r.message for r in rejected] == [batch[1]]


def test_an_unexpected_decoding_failure_becomes_a_dead_letter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug in a payload model must cost one message, not the consumer."""

    def broken(payload: bytes) -> None:
        raise RecursionError("simulated bug")

    from placewatch.kinds import FloodLevel

    monkeypatch.setattr(FloodLevel, "model_validate_json", broken)
    batch = [
        msg("placewatch/s/flood_level/g", {"time": "2026-01-01T00:00:00Z", "level_m": 1}),
        msg("placewatch/s/bin_fill/b", {"time": "2026-01-01T00:00:00Z", "distance_mm": 5}),
    ]
    decoded, rejected = decode_all(batch, OPTIONS)
    assert [d.message for d in decoded] == [batch[1]]
    assert [(r.reason, r.detail) for r in rejected] == [
        ("decode_error", "RecursionError: simulated bug")
    ]
