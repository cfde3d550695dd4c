"""The loaded form of one home's data set, shared by every format loader."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from care.events import HomeEvent


@dataclass(frozen=True)
class HomeLog:
    """One resident's events in time order, with what a detector must know to read them.

    ``heartbeat`` says whether silence means anything: with periodic reports a silent home is an
    offline hub ("no data"); with change-only data sets it is just a home where nothing moved.
    ``skipped`` counts source records dropped as malformed (only lenient formats skip)."""

    resident: str
    timezone: ZoneInfo
    events: list[HomeEvent]
    start: float
    end: float
    heartbeat: bool
    skipped: int = 0

    @classmethod
    def build(
        cls,
        resident: str,
        timezone: ZoneInfo,
        events: Iterable[HomeEvent],
        *,
        heartbeat: bool,
        source: Path,
        skipped: int = 0,
    ) -> HomeLog:
        """Sort ``events`` by time (stable, so same-instant events keep file order) and bound
        them; an empty log is refused because a detector cannot tell it from an outage."""
        ordered = sorted(events, key=lambda e: e.at)
        if not ordered:
            raise ValueError(f"{source}: no events")
        return cls(
            resident=resident,
            timezone=timezone,
            events=ordered,
            start=ordered[0].at,
            end=ordered[-1].at,
            heartbeat=heartbeat,
            skipped=skipped,
        )


def local_epoch(naive: datetime, zone: ZoneInfo) -> float:
    """Epoch seconds of a wall-clock time in ``zone``; an ambiguous hour takes its first
    occurrence (fold=0), as the change-only data sets give no way to tell."""
    return naive.replace(tzinfo=zone, fold=0).timestamp()
