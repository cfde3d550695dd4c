"""Time modes: when each simulated reading is published.

One rule covers them all: a reading stamped ``t`` is published at
``max(wall_start + (t - start) / speed, t)``, never before the moment it describes. So

- real time (start now): each reading as it happens;
- backfill (``--backfill 7d``, or a ``--start``/``--until`` window in the past): everything at
  once, as fast as the broker takes it (the publisher's in-flight window is the only brake);
- a start in the past and no end: the past at once, then real time;
- accelerated (``--speed 1440``: a simulated day per wall minute) from a start in the past:
  readings come faster than they happened until the simulation catches up with the wall
  clock, then it carries on in real time.

Ingest refuses readings stamped more than 300 s ahead of their receipt; this rule never sends
one ahead at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from rules.durations import parse_duration
from simulators.when import local_midnight, parse_cli_time


@dataclass(frozen=True)
class TimePlan:
    start: datetime
    until: datetime | None
    speed: float  # simulated seconds per wall second over the past part; inf = at once
    wall_start: float  # time.time() when publishing began

    def due(self, t: float) -> float:
        """Wall time (epoch seconds) at which a reading stamped ``t`` is published."""
        paced = self.wall_start + (t - self.start.timestamp()) / self.speed
        return max(paced, t)

    @property
    def bounded_past(self) -> bool:
        """Everything to publish has already happened: a backfill."""
        return self.until is not None and self.until.timestamp() <= self.wall_start

    @property
    def mode(self) -> str:
        if self.bounded_past and math.isinf(self.speed):
            return "backfill"
        if math.isfinite(self.speed) and self.speed != 1:
            return f"accelerated x{self.speed:g}"
        if self.start.timestamp() < self.wall_start - 1:
            return "catching up, then real time"
        return "real time"


def plan_times(
    *,
    now: datetime,
    tz: ZoneInfo,
    backfill: str | None,
    speed: float | None,
    start: str | None,
    until: str | None,
) -> TimePlan:
    """Resolve ``--backfill``, ``--speed``, ``--start`` and ``--until``.

    A backfill starts at local midnight N days before its end (so the scenario's day numbers
    are whole days) and ends now unless told. Without a start, an accelerated run starts at
    yesterday's local midnight and any other run now.
    """
    if speed is not None and speed <= 0:
        raise ValueError("--speed must be positive")
    end = parse_cli_time(until, now) if until and not until.startswith("+") else None
    if backfill is not None:
        if start is not None:
            raise ValueError("--backfill sets the start: give --start and --until instead")
        end = end or now
        begin = local_midnight(end - parse_duration(backfill), tz)
    elif start is not None:
        begin = parse_cli_time(start, now)
    elif speed is not None and speed > 1:
        begin = local_midnight(now - timedelta(days=1), tz)
    else:
        begin = now
    if until is not None and until.startswith("+"):
        end = parse_cli_time(until, now, begin)
    if end is not None and end <= begin:
        raise ValueError(
            f"--until ({end.isoformat()}) is not after the start ({begin.isoformat()})"
        )
    return TimePlan(begin, end, math.inf if speed is None else speed, now.timestamp())
