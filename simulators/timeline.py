"""One run's frame: its start and end, local days, and the scenario's events resolved to
instants, indexed by what they affect. Times are epoch seconds (floats) inside the dynamics."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from simulators import spec as s
from simulators.scenario import Scenario
from simulators.when import DayTime, resolve

Span = tuple[float, float]


@dataclass(frozen=True)
class Decline:
    start: float
    share: float
    over_s: float

    def factor(self, t: float) -> float:
        """Share of the usual activity left at ``t`` (1 before the decline starts)."""
        if t <= self.start:
            return 1.0
        progress = min(1.0, (t - self.start) / self.over_s) if self.over_s > 0 else 1.0
        return 1.0 - self.share * progress


@dataclass
class ResidentEvents:
    fall: float = math.inf
    declines: list[Decline] = field(default_factory=list)
    # (local day, time the resident finally gets up or inf)
    stays_in_bed: dict[int, float] = field(default_factory=dict)
    outages: list[Span] = field(default_factory=list)

    def activity_factor(self, t: float) -> float:
        factor = 1.0
        for decline in self.declines:
            factor *= decline.factor(t)
        return factor


@dataclass
class DeviceEvents:
    fires: list[tuple[float, float, float]] = field(default_factory=list)  # start, end, peak °C
    knocked_over: list[Span] = field(default_factory=list)
    stuck: list[Span] = field(default_factory=list)
    silent: list[Span] = field(default_factory=list)


@dataclass(frozen=True)
class Storm:
    start: float
    end: float
    peak_rain_mm_h: float
    wind_ms: float


@dataclass(frozen=True)
class Episode:
    start: float
    end: float
    pm_factor: float
    no2_factor: float


def within(t: float, spans: list[Span]) -> bool:
    return any(a <= t < b for a, b in spans)


class Timeline:
    def __init__(self, scenario: Scenario, seed: int, start: datetime, end: datetime | None):
        self.scenario = scenario
        self.seed = seed
        self.tz: ZoneInfo = scenario.timezone
        self.start = start.timestamp()
        self.end = end.timestamp() if end is not None else math.inf
        self.day0: date = start.astimezone(self.tz).date()
        self.storms: list[Storm] = []
        self.episodes: list[Episode] = []
        self.residents: defaultdict[str, ResidentEvents] = defaultdict(ResidentEvents)
        self.devices: defaultdict[str, DeviceEvents] = defaultdict(DeviceEvents)
        for event in scenario.spec.events:
            self._add(event)

    def instant(self, when: DayTime | datetime) -> float:
        return resolve(when, self.day0, self.tz).timestamp()

    def _add(self, e: s.Event) -> None:
        if isinstance(e, s.Storm):
            t0 = self.instant(e.start)
            self.storms.append(
                Storm(t0, t0 + e.duration.total_seconds(), e.peak_rain_mm_h, e.wind_ms)
            )
        elif isinstance(e, s.PollutionEpisode):
            t0 = self.instant(e.start)
            end = t0 + e.duration.total_seconds()
            self.episodes.append(Episode(t0, end, e.pm_factor, e.no2_factor))
        elif isinstance(e, s.Fall):
            res = self.residents[e.resident]
            res.fall = min(res.fall, self.instant(e.at))
        elif isinstance(e, s.Decline):
            decline = Decline(self.instant(e.start), e.share, e.over.total_seconds())
            self.residents[e.resident].declines.append(decline)
        elif isinstance(e, s.NotGettingUp):
            on = self.instant(e.on)
            day = self.day_of(on)
            until = self.instant(e.until) if e.until is not None else math.inf
            self.residents[e.resident].stays_in_bed[day] = until
        elif isinstance(e, s.HubOutage):
            t0 = self.instant(e.start)
            self.residents[e.resident].outages.append((t0, t0 + e.duration.total_seconds()))
        elif isinstance(e, s.BinFire):
            t0 = self.instant(e.start)
            self.devices[e.device].fires.append((t0, t0 + e.duration.total_seconds(), e.peak_c))
        elif isinstance(e, s.BinKnockedOver):
            t0 = self.instant(e.start)
            self.devices[e.device].knocked_over.append((t0, t0 + e.duration.total_seconds()))
        elif isinstance(e, s.GaugeStuck):
            t0 = self.instant(e.start)
            t1 = t0 + e.duration.total_seconds() if e.duration is not None else math.inf
            self.devices[e.device].stuck.append((t0, t1))
        elif isinstance(e, s.Dropout):
            t0 = self.instant(e.start)
            self.devices[e.device].silent.append((t0, t0 + e.duration.total_seconds()))

    # -- local time -------------------------------------------------------------------------------

    def at(self, day: int, minute: float) -> float:
        """Epoch seconds of local time ``minute`` (after midnight, may exceed 1440) on run day
        ``day``: the wall clock's time, so 07:00 stays 07:00 across a clock change."""
        whole = math.floor(minute)
        days, rest = divmod(whole, 1440)
        hours, minutes = divmod(rest, 60)
        return (
            _local(self.day0 + timedelta(days=day + days), hours, minutes, self.tz)
            + (minute - whole) * 60
        )

    def day_of(self, t: float) -> int:
        local = datetime.fromtimestamp(t, self.tz)
        return (local.date() - self.day0).days

    def first_day(self) -> int:
        return self.day_of(self.start)

    def last_day(self) -> int | None:
        return None if math.isinf(self.end) else self.day_of(self.end)

    def weekday(self, day: int) -> int:
        return (self.day0 + timedelta(days=day)).weekday()

    def hour(self, t: float) -> float:
        """Local hour of day (fractional), and whether it is a weekend."""
        local = datetime.fromtimestamp(t, self.tz)
        return local.hour + local.minute / 60 + local.second / 3600

    def is_weekend(self, t: float) -> bool:
        return datetime.fromtimestamp(t, self.tz).weekday() >= 5


@lru_cache(maxsize=65536)
def _local(day: date, hours: int, minutes: int, tz: ZoneInfo) -> float:
    return datetime.combine(day, time(hours, minutes), tz).timestamp()
