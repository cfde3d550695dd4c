"""The activity model of one home: what the resident is doing now, and a summary of each past day.

It turns sensor events into activity (a change of a contact or occupancy, motion counted, an
appliance switched on) and keeps, incrementally:

- *now*: the last activity and where, whether the resident went out through the front door,
  which bed or chair is occupied since when, and whether the hub is online (any report at all
  within ``offline_after``);
- *today*: the active 15-minute slots, the first activity after ``day_start``, the longest time
  without activity seen in each hour, the bed and chair sessions, and the time without data;
- *past days*: one ``DaySummary`` per local day, the material of every baseline. A day with
  more than ``max_missing`` without data is marked invalid and left out of baselines (an outage
  is "no data", not "no activity").

Time advances by events and by ticks (``tick``), both in event time, so a replay of stored data
and the live pipeline compute exactly the same thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from care.events import HomeEvent, Signal

SLOT_S = 15 * 60
_OCCUPANCY = {Signal.BED: "bed", Signal.CHAIR: "chair"}


@dataclass(frozen=True)
class ModelParams:
    timezone: ZoneInfo
    tick_s: float = 300.0
    offline_after_s: float = 3600.0  # no report at all for this long: the hub is offline
    max_missing_s: float = 2 * 3600.0  # a day missing more data than this is not a baseline day
    exit_grace_s: float = 120.0  # activity this soon after the front door is the leaving itself
    appliance_on_w: float = 20.0
    day_start_min: int = 5 * 60  # the first activity from here on is "getting up"
    index_from_min: int = 7 * 60  # the daily index counts active slots in [from, to)
    index_to_min: int = 23 * 60
    window_days: int = 28  # baseline: the last N valid days
    keep_days: int = 56  # summaries kept, to find N valid days among outages


@dataclass
class Session:
    place: str  # "bed" or "chair"
    start_hour: float  # local hour of day the session began
    duration_s: float


@dataclass
class DaySummary:
    day: int  # local date ordinal
    weekend: bool
    valid: bool
    active_slots: int  # in the index window
    first_up_min: float | None  # local minutes after midnight
    max_gap_by_hour: list[float | None]  # longest time without activity seen in each hour (s)
    max_gap_by_where: dict[str, float]  # … after activity in each place (a nap after the bedroom)
    sessions: list[Session]
    missing_s: float
    mostly_away: bool = False  # out for over half the index window: not judged for decline

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DaySummary:
        return cls(**{**d, "sessions": [Session(**s) for s in d["sessions"]]})


def _new_gaps() -> list[float | None]:
    return [None] * 24


@dataclass
class _Today:
    day: int
    slots: set[int] = field(default_factory=set)
    first_up: float | None = None
    gaps: list[float | None] = field(default_factory=_new_gaps)
    gaps_by_where: dict[str, float] = field(default_factory=dict)
    sessions: list[Session] = field(default_factory=list)
    missing_s: float = 0.0
    out_s: float = 0.0


class LocalTime:
    """Local calendar arithmetic for one zone (days start at local midnight, DST-aware)."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz

    def dt(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self.tz)

    def day(self, t: float) -> int:
        return self.dt(t).toordinal()

    def minutes(self, t: float) -> float:
        d = self.dt(t)
        return d.hour * 60 + d.minute + d.second / 60

    def at(self, day: int, minutes: float) -> float:
        """Epoch seconds of local ``minutes`` after midnight of ``day``."""
        midnight = datetime.combine(date.fromordinal(day), time(0), self.tz)
        return (midnight + timedelta(minutes=minutes)).timestamp()

    def clock(self, t: float) -> str:
        return self.dt(t).strftime("%H:%M")

    def when(self, t: float) -> str:
        return self.dt(t).strftime("%a %d %b %H:%M")


class ActivityModel:
    def __init__(self, params: ModelParams) -> None:
        self.p = params
        self.local = LocalTime(params.timezone)
        self.days: list[DaySummary] = []
        self.today: _Today | None = None
        self.started_at: float | None = None
        self.last_activity: float | None = None
        self.last_where = ""
        self.last_indoor: float | None = None  # last activity other than the front door
        self.last_door: float | None = None
        self.last_message: float | None = None
        self.resumed_at: float | None = None  # data (re)started: nothing is known before
        self.values: dict[str, float | bool | None] = {}
        self.seen: dict[str, float] = {}  # last report of each sensor
        # Sensors that report periodically, and the longest silence expected of each (from the
        # registry's expected intervals; not saved with the state).
        self.expected: dict[str, float] = {}
        self.occupied: dict[str, tuple[float, str]] = {}  # place → (since, where)

    # -- now ----------------------------------------------------------------------------------

    def present(self, t: float) -> bool:
        """The hub is online (some report within ``offline_after``) and none of the sensors
        expected to report periodically (``expected``) has gone silent."""
        if self.last_message is None or t - self.last_message > self.p.offline_after_s:
            return False
        return not self.silent_sensors(t)

    def silent_sensors(self, t: float) -> list[str]:
        """Sensors heard before that have been silent longer than expected (a motion sensor
        with a flat battery: the quiet it leaves is not the resident's)."""
        return [
            src
            for src, limit in self.expected.items()
            if src in self.seen and t - self.seen[src] > limit
        ]

    def out(self, t: float) -> bool:
        """Gone out through the front door: no indoor activity since (beyond the grace)."""
        if self.last_door is None or t - self.last_door <= self.p.exit_grace_s:
            return False
        return self.last_indoor is None or self.last_indoor <= self.last_door + self.p.exit_grace_s

    def index(self, slots: set[int]) -> int:
        """The daily activity index: active slots within the index window."""
        first, last = self.p.index_from_min * 60 // SLOT_S, self.p.index_to_min * 60 // SLOT_S
        return sum(1 for s in slots if first <= s < last)

    @property
    def index_slots(self) -> int:
        return (self.p.index_to_min - self.p.index_from_min) * 60 // SLOT_S

    def quiet_since(self) -> float | None:
        """Since when no activity has been seen with data coming in: the last activity, or
        the moment data resumed after an outage if that is later (an outage is not inactivity)."""
        if self.last_activity is None:
            return self.resumed_at
        if self.resumed_at is not None and self.resumed_at > self.last_activity:
            return self.resumed_at
        return self.last_activity

    def observed_quiet(self) -> float | None:
        """How long no activity has been seen *with proof the hub was reporting*: up to the
        last report, not up to now (the first minutes of an outage look the same as quiet)."""
        since = self.quiet_since()
        if since is None or self.last_message is None:
            return None
        return max(0.0, self.last_message - since)

    def data_since(self, t: float) -> bool:
        """Data has come in without an outage since ``t``."""
        return self.resumed_at is not None and self.resumed_at <= t

    # -- advancing ----------------------------------------------------------------------------

    def start(self, t: float) -> None:
        if self.started_at is None:
            self.started_at = t
            self.today = _Today(self.local.day(t))
            # Before the first report nothing is known: that part of the day has no data.
            self.today.missing_s = t - self.local.at(self.today.day, 0)

    def observe(self, e: HomeEvent) -> None:
        self.advance(e.at)
        today = self.today
        assert today is not None
        # Never heard yet: nothing was known since the model started (at the first report in a
        # replay; earlier if a caller ran ticks first).
        gap_from = self.last_message if self.last_message is not None else self.started_at
        assert gap_from is not None
        if self.last_message is None or e.at - gap_from > self.p.offline_after_s:
            today.missing_s += e.at - max(gap_from, self.local.at(today.day, 0))
            self.resumed_at = e.at  # what happened before is unknown
        limit = self.expected.get(e.source)
        last = self.seen.get(e.source)
        if limit is not None and last is not None and e.at - last > limit:
            self.resumed_at = e.at  # a silent sensor is back: the quiet before is unknown
        self.seen[e.source] = e.at
        self.last_message = e.at
        if self._is_activity(e):
            self._activity(e.at, e.where, door=e.signal is Signal.FRONT_DOOR)

    def watching(self, t: float) -> bool:
        """Whether a time without activity now would be telling: the hub is online, the
        resident is up today (the night and a lie-in belong to "not up"), it is before the end
        of the index window, they are not out, and not in bed or in the chair (that is
        "long occupancy")."""
        today = self.today
        return (
            today is not None
            and today.first_up is not None
            and self.local.minutes(t) < self.p.index_to_min
            and self.present(t)
            and not self.out(t)
            and not self.occupied
        )

    def tick(self, t: float) -> None:
        """Record the time without activity at ``t`` (the material of the inactivity baseline)
        and whether the resident is out (days mostly away are not judged for decline)."""
        self.advance(t)
        today = self.today
        assert today is not None
        minutes = self.local.minutes(t)
        if self.p.index_from_min <= minutes < self.p.index_to_min and self.out(t):
            today.out_s += self.p.tick_s
        elapsed = self.observed_quiet()
        if elapsed is None or not self.watching(t):
            return
        hour = self.local.dt(t).hour
        seen = today.gaps[hour]
        if seen is None or elapsed > seen:
            today.gaps[hour] = elapsed
        if elapsed > today.gaps_by_where.get(self.last_where, 0.0):
            today.gaps_by_where[self.last_where] = elapsed

    def advance(self, t: float) -> None:
        """Close every local day that ended at or before ``t``."""
        self.start(t)
        assert self.today is not None
        while self.local.at(self.today.day + 1, 0) <= t:
            self._close_day()

    # -- internals ----------------------------------------------------------------------------

    def _is_activity(self, e: HomeEvent) -> bool:
        before = self.values.get(e.source)
        self.values[e.source] = e.value
        match e.signal:
            case Signal.MOTION:
                return bool(e.value) and float(e.value or 0) > 0
            case Signal.CONTACT | Signal.FRONT_DOOR:
                return before != e.value if before is not None else bool(e.value)
            case Signal.APPLIANCE:
                on = float(e.value or 0) >= self.p.appliance_on_w
                was_on = before is not None and float(before or 0) >= self.p.appliance_on_w
                return on and not was_on
            case Signal.BED | Signal.CHAIR:
                changed = before != e.value if before is not None else bool(e.value)
                if changed:
                    self._occupancy(_OCCUPANCY[e.signal], bool(e.value), e.at, e.where)
                return changed
        return False

    def _occupancy(self, place: str, occupied: bool, at: float, where: str) -> None:
        if occupied:
            self.occupied.setdefault(place, (at, where))
            return
        began = self.occupied.pop(place, None)
        if began is not None and self.today is not None:
            hour = self.local.minutes(began[0]) / 60
            self.today.sessions.append(Session(place, hour, at - began[0]))

    def _activity(self, at: float, where: str, door: bool) -> None:
        today = self.today
        assert today is not None
        self.last_activity, self.last_where = at, where
        if door:
            self.last_door = at
        else:
            self.last_indoor = at
        minutes = self.local.minutes(at)
        today.slots.add(int(minutes * 60 // SLOT_S))
        if today.first_up is None and minutes >= self.p.day_start_min:
            today.first_up = minutes

    def _close_day(self) -> None:
        today = self.today
        assert today is not None
        end = self.local.at(today.day + 1, 0)
        if self.last_message is None or end - self.last_message > self.p.offline_after_s:
            # Still silent at midnight (or never heard yet): the rest of the day had no data.
            silent_from = self.last_message if self.last_message is not None else self.started_at
            assert silent_from is not None
            today.missing_s += end - max(silent_from, self.local.at(today.day, 0))
        self.days.append(
            DaySummary(
                day=today.day,
                weekend=date.fromordinal(today.day).weekday() >= 5,
                valid=today.missing_s <= self.p.max_missing_s,
                active_slots=self.index(today.slots),
                first_up_min=today.first_up,
                max_gap_by_hour=today.gaps,
                max_gap_by_where=today.gaps_by_where,
                sessions=today.sessions,
                missing_s=today.missing_s,
                mostly_away=today.out_s > 0.5 * self.index_slots * SLOT_S,
            )
        )
        del self.days[: -self.p.keep_days]
        self.today = _Today(today.day + 1)

    # -- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        today = self.today
        return {
            "days": [asdict(d) for d in self.days],
            "today": None if today is None else {**asdict(today), "slots": sorted(today.slots)},
            "started_at": self.started_at,
            "last_activity": self.last_activity,
            "last_where": self.last_where,
            "last_indoor": self.last_indoor,
            "last_door": self.last_door,
            "last_message": self.last_message,
            "resumed_at": self.resumed_at,
            "values": self.values,
            "seen": self.seen,
            "occupied": {k: list(v) for k, v in self.occupied.items()},
        }

    @classmethod
    def from_dict(cls, params: ModelParams, d: dict[str, Any]) -> ActivityModel:
        m = cls(params)
        m.days = [DaySummary.from_dict(x) for x in d["days"]]
        t = d["today"]
        if t is not None:
            m.today = _Today(
                day=t["day"],
                slots=set(t["slots"]),
                first_up=t["first_up"],
                gaps=t["gaps"],
                gaps_by_where=t["gaps_by_where"],
                sessions=[Session(**s) for s in t["sessions"]],
                missing_s=t["missing_s"],
                out_s=t["out_s"],
            )
        m.started_at = d["started_at"]
        m.last_activity = d["last_activity"]
        m.last_where = d["last_where"]
        m.last_indoor = d["last_indoor"]
        m.last_door = d["last_door"]
        m.last_message = d["last_message"]
        m.resumed_at = d["resumed_at"]
        m.values = d["values"]
        m.seen = d["seen"]
        m.occupied = {k: (float(v[0]), str(v[1])) for k, v in d["occupied"].items()}
        return m
