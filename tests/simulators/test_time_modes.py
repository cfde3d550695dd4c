"""Time modes: a reading is never published before the moment it describes (so ingest's
300 s future limit never bites), a backfill covers whole local days up to now, and an
accelerated run goes at its speed until it catches up with the clock."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from simulators.clock import plan_times
from simulators.engine import RunOptions, run
from simulators.scenario import load_scenario

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 7, 15, 13, 20, tzinfo=UTC)  # summer time: local = UTC + 1


def test_backfill_starts_at_local_midnight_and_ends_now() -> None:
    plan = plan_times(now=NOW, tz=LONDON, backfill="7d", speed=None, start=None, until=None)
    assert plan.start == datetime(2026, 7, 8, 0, 0, tzinfo=LONDON)
    assert plan.until == NOW
    assert plan.mode == "backfill" and plan.bounded_past and math.isinf(plan.speed)
    # Everything in it is due at once.
    assert plan.due(plan.start.timestamp()) == plan.wall_start
    assert plan.due(NOW.timestamp() - 1) == plan.wall_start


def test_accelerated_from_yesterday_then_real_time() -> None:
    plan = plan_times(now=NOW, tz=LONDON, backfill=None, speed=1440, start=None, until=None)
    assert plan.start == datetime(2026, 7, 14, 0, 0, tzinfo=LONDON)
    assert plan.until is None and plan.mode == "accelerated x1440"
    one_hour_in = plan.start.timestamp() + 3600
    assert plan.due(one_hour_in) == pytest.approx(plan.wall_start + 2.5)
    later = NOW.timestamp() + 600  # past the catch-up: never ahead of the clock
    assert plan.due(later) == later


def test_real_time_and_windows() -> None:
    live = plan_times(now=NOW, tz=LONDON, backfill=None, speed=None, start=None, until=None)
    assert live.start == NOW and live.mode == "real time" and not live.bounded_past
    window = plan_times(
        now=NOW, tz=LONDON, backfill=None, speed=None, start="2026-07-01", until="+6h"
    )
    assert window.until == datetime(2026, 7, 1, 6, tzinfo=UTC) and window.mode == "backfill"
    with pytest.raises(ValueError, match="not after the start"):
        plan_times(now=NOW, tz=LONDON, backfill=None, speed=None, start="1d", until="2d")
    with pytest.raises(ValueError, match="positive"):
        plan_times(now=NOW, tz=LONDON, backfill=None, speed=0, start=None, until=None)


class RecordingSink:
    """Keeps what would be published, with the wall time it was handed over."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str, bytes]] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.sent.append((time.time(), topic, payload))

    def flush(self) -> None:
        pass

    def backlog(self) -> int:
        return 0

    def wait_acked(self, timeout: float = 60.0) -> bool:
        return True

    def close(self) -> None:
        pass


def test_an_accelerated_run_is_paced_and_never_ahead_of_the_clock() -> None:
    """45 simulated minutes at 1800x take 1.5 s; then the run is level with the clock and goes
    on in real time to its end, 3 s after it began (the readings of those seconds wait for
    their time). Every reading goes out when the rule says, never before its own time."""
    scenario = load_scenario("borough")
    now = datetime.now(UTC)
    plan = plan_times(
        now=now,
        tz=scenario.timezone,
        backfill=None,
        speed=1800,
        start=(now - timedelta(minutes=45)).isoformat(),
        until="+45m3s",
    )
    sink = RecordingSink()
    result = run(scenario, plan, sink, RunOptions(prefix="pw", progress=False))
    assert result.published == len(sink.sent) > 200
    assert result.plan is not None
    plan = result.plan  # its wall clock starts when publishing could
    past = []
    for wall, _, payload in sink.sent:
        stamp = datetime.fromisoformat(json.loads(payload)["time"]).timestamp()
        assert wall >= stamp, "published before the moment it describes"
        assert -0.01 < wall - plan.due(stamp) < 0.3, "published when it was due"
        if stamp < now.timestamp():
            past.append(wall)
    assert 1.2 < past[-1] - plan.wall_start < 2.0  # 45 minutes in 1.5 s
