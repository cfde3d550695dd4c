"""``placewatch care evaluate``: the care rules' quality on a real home's recorded data.

The home's events are replayed through the same monitors the live worker runs (one per care
rule, built from the configured rule files), and three things are measured:

- **false alert episodes** per resident-month on the unmodified data (every alert there counts
  as false; months are valid days / 30.44);
- **acute incidents**: on each eligible day, at a random daytime moment (08:00-20:00 local, when
  the resident is at home) every activity stops (the hub keeps reporting); the delay to the
  first alert of an acute rule (inactivity, not up, long occupancy), and whether it came the
  same day;
- **declines**: from a start day on, a share (30, 50, 70 %) of each day's active quarter-hours
  loses all its activity; the days until the first ``activity_decline`` alert (1 = the start
  day itself).

A day is eligible when its data is complete (valid) and the rules have left their warm-up. The
monitors' state is snapshot at each local midnight of the unmodified run, so each trial replays
one or a few days only. Everything is seeded: the same data and rules give the same report.
"""

from __future__ import annotations

import copy
import heapq
import random
import statistics
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from care.activity import SLOT_S, LocalTime
from care.events import HomeEvent, Signal
from care.formats import HomeLog
from care.monitor import CareMonitor
from rules.kinds.care import (
    ActivityDeclineRule,
    CareRule,
    InactivityRule,
    LongOccupancyRule,
    NotUpRule,
)

DAY_S = 86400.0
MONTH_DAYS = 30.44
DECLINE_LEVELS = (0.3, 0.5, 0.7)
DECLINE_HORIZON_DAYS = 14
INCIDENT_FROM_MIN, INCIDENT_TO_MIN = 8 * 60, 20 * 60
REPORT_EVERY_S = 600.0  # stand-in reports for data sets that record only changes


@dataclass(frozen=True)
class Episode:
    rule_id: str
    opened_at: float
    closed_at: float | None
    summary: str


@dataclass(frozen=True)
class AcuteTrial:
    day: int
    incident_at: float
    alert_at: float | None
    rule_id: str | None
    same_day: bool

    @property
    def delay_s(self) -> float | None:
        return None if self.alert_at is None else self.alert_at - self.incident_at


@dataclass(frozen=True)
class DeclineTrial:
    level: float
    start_day: int
    days: int | None  # until the first decline alert (1 = the start day); None: not within horizon


@dataclass
class Report:
    resident: str
    timezone: str
    first_day: str
    last_day: str
    days: int
    valid_days: int
    episodes: list[Episode]
    acute: list[AcuteTrial] = field(default_factory=list)
    declines: list[DeclineTrial] = field(default_factory=list)
    sweep: list[dict[str, float | None]] = field(default_factory=list)

    @property
    def months(self) -> float:
        return self.valid_days / MONTH_DAYS

    def false_per_month(self, rule_ids: Sequence[str] | None = None) -> float:
        n = sum(1 for e in self.episodes if rule_ids is None or e.rule_id in rule_ids)
        return n / self.months if self.months else float("nan")

    def acute_delays(self) -> list[float]:
        """Delays in seconds; an incident not detected within a day counts as infinite."""
        return [t.delay_s if t.delay_s is not None else float("inf") for t in self.acute]

    def decline_days(self, level: float) -> list[float]:
        return [
            float(t.days) if t.days is not None else float("inf")
            for t in self.declines
            if t.level == level
        ]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# -- replaying --------------------------------------------------------------------------------


def with_reports(log: HomeLog) -> list[HomeEvent]:
    """The log's events; for a data set without periodic reports, stand-in reports over its
    span (it recorded continuously: a quiet stretch is no activity, not an outage)."""
    if log.heartbeat:
        return log.events
    ticks = (
        HomeEvent(log.start + i * REPORT_EVERY_S, "(recording)", Signal.REPORT)
        for i in range(int((log.end - log.start) // REPORT_EVERY_S) + 1)
    )
    return list(heapq.merge(log.events, ticks, key=lambda e: e.at))


class Replay:
    """The unmodified run, with every monitor's state kept at each local midnight."""

    def __init__(self, log: HomeLog, rules: Sequence[CareRule]) -> None:
        self.log = log
        self.rules = list(rules)
        self.local = LocalTime(log.timezone)
        self.events = with_reports(log)
        self.times = [e.at for e in self.events]
        self.monitors = [r.monitor(log.timezone) for r in self.rules]
        self.episodes: list[Episode] = []
        self.snapshots: dict[int, list[CareMonitor]] = {}
        self.valid: dict[int, bool] = {}
        self._fed = 0  # events fed to the monitors so far

    def run(self, progress: Callable[[], None] | None = None) -> None:
        first, last = self.local.day(self.log.start), self.local.day(self.log.end)
        opened: dict[str, tuple[float, str]] = {}
        for day in range(first, last + 2):
            midnight = self.local.at(day, 0)
            for rule, (_, transition) in self._advance(midnight):
                if transition.opens:
                    opened[rule.id] = (transition.at, transition.summary)
                elif rule.id in opened:
                    at, summary = opened.pop(rule.id)
                    self.episodes.append(Episode(rule.id, at, transition.at, summary))
            self.snapshots[day] = copy.deepcopy(self.monitors)
            days = self.monitors[0].model.days
            if days and days[-1].day == day - 1:
                self.valid[day - 1] = days[-1].valid
            if progress:
                progress()
        self.episodes += [Episode(rid, at, None, s) for rid, (at, s) in opened.items()]
        self.episodes.sort(key=lambda e: e.opened_at)

    def _advance(self, until: float) -> Iterator[tuple[CareRule, Any]]:
        """Every monitor over the events up to ``until`` not fed to it yet."""
        lo, hi = self._fed, bisect_right(self.times, until)
        self._fed = hi
        for rule, mon in zip(self.rules, self.monitors, strict=True):
            for t in mon.run(self.events[lo:hi], until):
                yield rule, t

    def eligible(self, day: int) -> bool:
        """The day's data is complete and the rules have a baseline."""
        snap = self.snapshots.get(day)
        if not self.valid.get(day) or snap is None:
            return False
        warmup = max(r.warmup_days for r in self.rules)
        return sum(1 for d in snap[0].model.days if d.valid) >= warmup

    def window(self, start: float, end: float) -> list[HomeEvent]:
        return self.events[bisect_right(self.times, start) : bisect_right(self.times, end)]


def _run_from(
    replay: Replay, day: int, rules: Sequence[CareRule], events: list[HomeEvent], until: float
) -> list[tuple[str, float, bool]]:
    """Continue the chosen rules' monitors from ``day``'s midnight over ``events``; returns
    (rule id, time, opens) of every transition."""
    wanted = {r.id for r in rules}
    out = []
    for rule, mon in zip(replay.rules, replay.snapshots[day], strict=True):
        if rule.id not in wanted:
            continue
        mon = copy.deepcopy(mon)
        out += [(rule.id, t.at, t.opens) for _, t in mon.run(events, until)]
    return sorted(out, key=lambda x: x[1])


# -- acute incidents --------------------------------------------------------------------------


def acute_trial(replay: Replay, rules: Sequence[CareRule], day: int, seed: int) -> AcuteTrial:
    local = replay.local
    r = random.Random(f"{seed}:acute:{day}")
    midnight, next_midnight = local.at(day, 0), local.at(day + 1, 0)
    incident = local.at(day, r.uniform(INCIDENT_FROM_MIN, INCIDENT_TO_MIN))
    for _ in range(8):  # a moment when the resident is at home
        probe = copy.deepcopy(replay.snapshots[day][0])
        probe.run(replay.window(midnight, incident), incident)
        if not probe.model.out(incident):
            break
        incident = local.at(day, r.uniform(INCIDENT_FROM_MIN, INCIDENT_TO_MIN))
    end = incident + DAY_S
    before = replay.window(midnight, incident)
    after = [e for e in replay.window(incident, end) if e.signal is Signal.REPORT]
    for rule_id, at, opens in _run_from(replay, day, rules, before + after, end):
        if opens and at > incident:
            return AcuteTrial(day, incident, at, rule_id, at < next_midnight)
    return AcuteTrial(day, incident, None, None, False)


# -- declines ---------------------------------------------------------------------------------


def thinned(events: list[HomeEvent], local: LocalTime, share: float, seed: str) -> list[HomeEvent]:
    """Each local day loses all activity in ``share`` of its active quarter-hours (the reports
    stay: the hub is fine, the resident does less)."""
    by_slot: dict[tuple[int, int], list[int]] = {}
    for i, e in enumerate(events):
        if e.signal is not Signal.REPORT:
            d = local.dt(e.at)
            key = (d.toordinal(), int((d.hour * 3600 + d.minute * 60) // SLOT_S))
            by_slot.setdefault(key, []).append(i)
    dropped: set[int] = set()
    per_day: dict[int, list[tuple[int, int]]] = {}
    for key in by_slot:
        per_day.setdefault(key[0], []).append(key)
    for day, slots in sorted(per_day.items()):
        r = random.Random(f"{seed}:{day}")
        for key in r.sample(sorted(slots), round(share * len(slots))):
            dropped.update(by_slot[key])
    return [
        HomeEvent(e.at, e.source, Signal.REPORT) if i in dropped else e
        for i, e in enumerate(events)
    ]


def decline_trial(
    replay: Replay, rule: ActivityDeclineRule, level: float, day: int, seed: int
) -> DeclineTrial:
    start = replay.local.at(day, 0)
    end = min(replay.local.at(day + DECLINE_HORIZON_DAYS, 0), replay.log.end)
    events = thinned(replay.window(start, end), replay.local, level, f"{seed}:{level}:{day}")
    for _, at, opens in _run_from(replay, day, [rule], events, end):
        if opens and at > start:
            return DeclineTrial(level, day, replay.local.day(at) - day + 1)
    return DeclineTrial(level, day, None)


# -- the whole evaluation ---------------------------------------------------------------------

ACUTE_KINDS = (InactivityRule, NotUpRule, LongOccupancyRule)


def evaluate(
    log: HomeLog,
    rules: Sequence[CareRule],
    seed: int = 1,
    max_decline_starts: int = 20,
    progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> Report:
    """Replay ``log`` through ``rules`` and run the incident and decline trials."""
    replay = Replay(log, rules)
    n_days = replay.local.day(log.end) - replay.local.day(log.start) + 2
    replay.run(progress("replay", n_days) if progress else None)
    days = sorted(replay.snapshots)
    eligible = [d for d in days if replay.eligible(d)]
    report = Report(
        resident=log.resident,
        timezone=str(log.timezone),
        first_day=replay.local.dt(log.start).date().isoformat(),
        last_day=replay.local.dt(log.end).date().isoformat(),
        days=len(replay.valid),
        valid_days=sum(replay.valid.values()),
        episodes=replay.episodes,
    )
    acute = [r for r in rules if isinstance(r, ACUTE_KINDS)]
    if acute:
        step = progress("acute incidents", len(eligible)) if progress else None
        for day in eligible:
            report.acute.append(acute_trial(replay, acute, day, seed))
            if step:
                step()
    decline = [r for r in rules if isinstance(r, ActivityDeclineRule)]
    if decline:
        # Starts that leave the detector a few days to answer, at most N of them, spread out.
        starts = [d for d in eligible if replay.local.at(d + 3, 0) <= log.end]
        if len(starts) > max_decline_starts:
            stride = len(starts) / max_decline_starts
            starts = [starts[int(i * stride)] for i in range(max_decline_starts)]
        step = progress("declines", len(starts) * len(DECLINE_LEVELS)) if progress else None
        for level in DECLINE_LEVELS:
            for day in starts:
                report.declines.append(decline_trial(replay, decline[0], level, day, seed))
                if step:
                    step()
    return report


def factor_sweep(
    log: HomeLog,
    rule: CareRule,
    factors: Sequence[float],
    seed: int = 1,
    progress: Callable[[], None] | None = None,
) -> list[dict[str, float | None]]:
    """The inactivity rule's trade-off: false episodes per month against acute delay."""
    out: list[dict[str, float | None]] = []
    for f in factors:
        varied = rule.model_copy(update={"factor": f})
        rep = evaluate(log, [varied], seed=seed)
        delays = rep.acute_delays()
        out.append(
            {
                "factor": f,
                "false_per_month": rep.false_per_month(),
                "median_delay_h": _h(median(delays)),
                "p90_delay_h": _h(percentile(delays, 0.9)),
                "missed_same_day": (
                    sum(1 for t in rep.acute if not t.same_day) / len(rep.acute)
                    if rep.acute
                    else None
                ),
            }
        )
        if progress:
            progress()
    return out


def _h(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600
