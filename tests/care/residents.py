"""A simulated resident for the care detector tests: a home's sensor events, day after day.

The routine: up at about 07:00, in bed at about 22:30; while up, motion every few minutes in
one room or another, with a few quiet spells (reading, a programme) of a quarter to half an
hour; the kettle switched on a few times a day and the fridge opened at meal times; on some
afternoons a trip out through the front door; now and then a trip to the bathroom at night;
optionally a bed and a chair occupancy sensor (the chair used after lunch). The hub sends a
periodic report every 10 minutes whatever happens.

Incidents are injected on top: a fall (activity stops, reports go on), a hub outage (nothing at
all), a decline (a share of the day's active quarter-hours loses its activity), a morning in
bed, a long session in the chair, an outing of hours (or overnight).

Everything is drawn from a seeded generator per day, so injecting an incident on one day leaves
the other days exactly as they were. Days are numbered from 1 (the start date).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from care.events import HomeEvent, Signal

LONDON = ZoneInfo("Europe/London")
SLOT_S = 15 * 60
ROOMS = ("kitchen", "living room", "hall", "bathroom", "bedroom")
_ACTIVITY = frozenset(
    {
        Signal.MOTION,
        Signal.CONTACT,
        Signal.FRONT_DOOR,
        Signal.APPLIANCE,
        Signal.BED,
        Signal.CHAIR,
    }
)


def minutes(clock: str) -> float:
    """``HH:MM`` → minutes after midnight."""
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


@dataclass(frozen=True)
class Routine:
    wake: str = "07:00"
    wake_jitter_min: float = 20.0
    bedtime: str = "22:30"
    bedtime_jitter_min: float = 15.0
    motion_gap_min: tuple[float, float] = (2.0, 8.0)
    quiet_spells: tuple[int, int] = (1, 3)  # per day, in separate two-hour windows
    quiet_min: tuple[float, float] = (15.0, 35.0)
    kettle: tuple[str, ...] = ("07:30", "10:30", "15:30", "19:00")
    fridge: tuple[str, ...] = ("08:00", "12:30", "18:00")
    outing_share: float = 0.3  # afternoons with a trip out
    outing_leave: tuple[str, str] = ("14:30", "15:30")
    outing_min: tuple[float, float] = (60.0, 120.0)
    night_trip_share: float = 0.3
    bed_sensor: bool = False
    chair: tuple[str, float] | None = None  # a daily session in the chair: (start, minutes)
    chair_jitter_min: float = 15.0
    report_every_s: float = 600.0


@dataclass(frozen=True)
class Session:
    place: str
    start: float
    end: float

    @property
    def duration_s(self) -> float:
        return self.end - self.start


class Resident:
    """One simulated home. Configure incidents, then call ``events()``."""

    def __init__(
        self,
        start: date,
        days: int,
        seed: int = 1,
        routine: Routine | None = None,
        tz: ZoneInfo = LONDON,
    ) -> None:
        self.start = start
        self.days = days
        self.seed = seed
        self.routine = routine or Routine()
        self.tz = tz
        self.woke: dict[
            int, float
        ] = {}  # day → the first activity of the morning (filled by events())
        self.sessions: dict[int, list[Session]] = {}  # day → chair sessions begun that day
        self._late: dict[int, float] = {}
        self._chair: dict[int, tuple[float, float]] = {}
        self._outings: list[tuple[float, float | None]] = []
        self._falls: list[tuple[float, float | None, str]] = []
        self._outages: list[tuple[float, float]] = []
        self._declines: list[tuple[int, int, float]] = []

    # -- time ---------------------------------------------------------------------------------

    def date(self, day: int) -> date:
        return self.start + timedelta(days=day - 1)

    def at(self, day: int, clock: str | float) -> float:
        """Epoch seconds of local ``clock`` (``HH:MM`` or minutes after midnight) on ``day``."""
        mins = minutes(clock) if isinstance(clock, str) else clock
        midnight = datetime.combine(self.date(day), time(0), self.tz)
        return (midnight + timedelta(minutes=mins)).timestamp()

    def day_of(self, t: float) -> int:
        return (datetime.fromtimestamp(t, self.tz).date() - self.start).days + 1

    @property
    def begin(self) -> float:
        return self.at(1, 0)

    @property
    def end(self) -> float:
        """Midnight after the last day."""
        return self.at(self.days + 1, 0)

    # -- incidents ----------------------------------------------------------------------------

    def fall(self, at: float, resume: float | None = None, where: str = "hall") -> Resident:
        """Active (``where``) at ``at``, then no activity at all until ``resume`` (if ever)."""
        self._falls.append((at, resume, where))
        return self

    def outage(self, start: float, end: float) -> Resident:
        """The hub sends nothing in [start, end)."""
        self._outages.append((start, end))
        return self

    def decline(self, from_day: int, share: float, to_day: int | None = None) -> Resident:
        """From ``from_day`` (to ``to_day``), ``share`` of each day's active quarter-hours
        between 07:00 and 23:00 lose their activity."""
        self._declines.append((from_day, to_day or self.days, share))
        return self

    def late_wake(self, day: int, clock: str) -> Resident:
        """Stays in bed (no activity at all) until ``clock`` on ``day``."""
        self._late[day] = minutes(clock)
        return self

    def chair_session(self, day: int, clock: str, mins: float) -> Resident:
        """On ``day`` the chair session starts at ``clock`` and lasts ``mins`` minutes."""
        self._chair[day] = (minutes(clock), mins)
        return self

    def outing(self, leave: float, back: float | None) -> Resident:
        """Goes out through the front door at ``leave``, back at ``back`` (or not in the run)."""
        self._outings.append((leave, back))
        return self

    # -- the events ---------------------------------------------------------------------------

    def events(self) -> list[HomeEvent]:
        self.woke, self.sessions = {}, {}
        explicit_days = self._outing_days()
        events: list[HomeEvent] = []
        outings = list(self._outings)
        if self.routine.bed_sensor:
            events.append(HomeEvent(self.begin + 5, "bed", Signal.BED, True, "bedroom"))
        for day in range(1, self.days + 1):
            rng = random.Random(f"{self.seed}/{day}")
            day_events, outing = self._day(day, rng)
            events += day_events
            if outing is not None and day not in explicit_days:
                outings.append(outing)
        events = sorted(events, key=lambda e: e.at)
        for leave, back in sorted(outings, key=lambda o: o[0]):
            events = self._away(events, leave, back)
        for at, resume, where in self._falls:
            events = self._fallen(events, at, resume, where)
        for from_day, to_day, share in self._declines:
            events = self._declined(events, from_day, to_day, share)
        every = self.routine.report_every_s
        reports = [
            HomeEvent(self.begin + 30 + i * every, "hub", Signal.REPORT, None, "hub")
            for i in range(int((self.end - self.begin - 30) // every) + 1)
        ]
        events = sorted([*events, *reports], key=lambda e: e.at)
        return [e for e in events if not self._in_outage(e.at) and e.at < self.end]

    def _outing_days(self) -> set[int]:
        days: set[int] = set()
        for leave, back in self._outings:
            last = self.day_of(back) if back is not None else self.days
            days.update(range(self.day_of(leave), last + 1))
        return days

    def _day(
        self, day: int, rng: random.Random
    ) -> tuple[list[HomeEvent], tuple[float, float] | None]:
        r = self.routine
        wake = minutes(r.wake) + rng.uniform(-r.wake_jitter_min, r.wake_jitter_min)
        wake = self._late.get(day, wake)
        bedtime = minutes(r.bedtime) + rng.uniform(-r.bedtime_jitter_min, r.bedtime_jitter_min)

        chair: tuple[float, float] | None = None
        if r.chair is not None:
            start = minutes(r.chair[0]) + rng.uniform(-r.chair_jitter_min, r.chair_jitter_min)
            chair = (start, start + r.chair[1] + rng.uniform(-10, 10))
        if day in self._chair:
            start, mins = self._chair[day]
            chair = (start, start + mins)

        blocked: list[tuple[float, float]] = [] if chair is None else [chair]
        windows = list(range(int(wake) + 60, int(bedtime) - 120, 120))
        for w in rng.sample(windows, min(len(windows), rng.randint(*r.quiet_spells))):
            begin = w + rng.uniform(0, 60)
            blocked.append((begin, begin + rng.uniform(*r.quiet_min)))

        leave = minutes(r.outing_leave[0]) + rng.uniform(
            0, minutes(r.outing_leave[1]) - minutes(r.outing_leave[0])
        )
        back = leave + rng.uniform(*r.outing_min)
        goes_out = rng.random() < r.outing_share
        if chair is not None and chair[0] - 10 < back and leave < chair[1] + 10:
            goes_out = False  # not out while in the chair
        outing = (self.at(day, leave), self.at(day, back)) if goes_out else None

        out: list[HomeEvent] = []

        def add(mins: float, source: str, signal: Signal, value: float | bool, where: str) -> None:
            out.append(HomeEvent(self.at(day, mins), source, signal, value, where))

        def motion(mins: float, where: str) -> None:
            add(mins, f"motion.{where}", Signal.MOTION, 1, where)

        if rng.random() < r.night_trip_share:
            trip = rng.uniform(120, 240)
            if r.bed_sensor:
                add(trip, "bed", Signal.BED, False, "bedroom")
                add(trip + 5, "bed", Signal.BED, True, "bedroom")
            motion(trip + 0.5, "bathroom")
            motion(trip + 4, "bathroom")

        if r.bed_sensor:
            add(wake, "bed", Signal.BED, False, "bedroom")
            motion(wake + 0.5, "bedroom")
        else:
            motion(wake, "bedroom")
        self.woke[day] = self.at(day, wake)

        t = wake + rng.uniform(*r.motion_gap_min)
        while t < bedtime:
            inside = next((b for b in blocked if b[0] <= t < b[1]), None)
            if inside is not None:
                t = inside[1] + rng.uniform(0, 2)
                continue
            motion(t, rng.choice(ROOMS))
            t += rng.uniform(*r.motion_gap_min)

        for clock in r.kettle:
            at = minutes(clock) + rng.uniform(-10, 10)
            if wake + 5 <= at <= bedtime - 5 and not (chair and chair[0] <= at < chair[1] + 3):
                add(at, "kettle", Signal.APPLIANCE, 2000.0, "kitchen")
                add(at + 3, "kettle", Signal.APPLIANCE, 0.0, "kitchen")
        for clock in r.fridge:
            at = minutes(clock) + rng.uniform(-20, 20)
            if wake + 5 <= at <= bedtime - 5 and not (chair and chair[0] <= at < chair[1] + 1):
                add(at, "fridge", Signal.CONTACT, True, "kitchen")
                add(at + 0.5, "fridge", Signal.CONTACT, False, "kitchen")

        if chair is not None:
            motion(chair[0] - 0.5, "living room")
            add(chair[0], "chair", Signal.CHAIR, True, "living room")
            add(chair[1], "chair", Signal.CHAIR, False, "living room")
            motion(chair[1] + 0.5, "living room")
            start, end = self.at(day, chair[0]), self.at(day, chair[1])
            self.sessions.setdefault(day, []).append(Session("chair", start, end))

        motion(bedtime, "bedroom")
        if r.bed_sensor:
            add(bedtime + 2, "bed", Signal.BED, True, "bedroom")
        return out, outing

    # -- incidents, applied to the routine's events --------------------------------------------

    def _away(self, events: list[HomeEvent], leave: float, back: float | None) -> list[HomeEvent]:
        """Out of the home in [leave, back): no activity; the front door on leaving and coming
        back, motion in the hall just before leaving and a few minutes after coming back."""
        kept = [
            e for e in events if not (leave - 90 <= e.at and (back is None or e.at < back + 200))
        ]
        chair = {e.source: e for e in kept if e.at < leave - 90 and e.signal is Signal.CHAIR}
        extra = [  # leaving from the chair: up first
            HomeEvent(leave - 80, e.source, e.signal, False, e.where)
            for e in chair.values()
            if e.value
        ]
        extra += [
            HomeEvent(leave - 60, "motion.hall", Signal.MOTION, 1, "hall"),
            HomeEvent(leave, "front_door", Signal.FRONT_DOOR, True, "front door"),
            HomeEvent(leave + 15, "front_door", Signal.FRONT_DOOR, False, "front door"),
        ]
        if back is not None:
            extra += [
                HomeEvent(back, "front_door", Signal.FRONT_DOOR, True, "front door"),
                HomeEvent(back + 15, "front_door", Signal.FRONT_DOOR, False, "front door"),
                HomeEvent(back + 200, "motion.hall", Signal.MOTION, 1, "hall"),
            ]
        return sorted([*kept, *extra], key=lambda e: e.at)

    def _fallen(
        self, events: list[HomeEvent], at: float, resume: float | None, where: str
    ) -> list[HomeEvent]:
        def quiet(e: HomeEvent) -> bool:
            return at <= e.at and (resume is None or e.at <= resume)

        kept = [e for e in events if not quiet(e)]
        extra = [HomeEvent(at, f"motion.{where}", Signal.MOTION, 1, where)]
        if resume is not None:
            extra.append(HomeEvent(resume, f"motion.{where}", Signal.MOTION, 1, where))
        return sorted([*kept, *extra], key=lambda e: e.at)

    def _declined(
        self, events: list[HomeEvent], from_day: int, to_day: int, share: float
    ) -> list[HomeEvent]:
        by_slot: dict[tuple[int, int], list[HomeEvent]] = defaultdict(list)
        for e in events:
            if e.signal in _ACTIVITY:
                local = datetime.fromtimestamp(e.at, self.tz)
                slot = (local.hour * 60 + local.minute) * 60 // SLOT_S
                by_slot[(self.day_of(e.at), slot)].append(e)
        drop: set[int] = set()
        for day in range(from_day, to_day + 1):
            slots = sorted(s for (d, s) in by_slot if d == day and 28 <= s < 92)
            removable = [
                s for s in slots if all(e.signal is Signal.MOTION for e in by_slot[(day, s)])
            ]
            rng = random.Random(f"{self.seed}/decline/{day}")
            chosen = rng.sample(removable, min(len(removable), round(share * len(slots))))
            drop.update(id(e) for s in chosen for e in by_slot[(day, s)])
        return [e for e in events if id(e) not in drop]

    def _in_outage(self, t: float) -> bool:
        return any(a <= t < b for a, b in self._outages)
