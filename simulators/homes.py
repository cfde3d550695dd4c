"""In-home activity: one resident's day, and the five sensors that observe it.

``Household`` draws each local day's plan from the resident's routine: when they wake and go
to bed, the morning routine, meals, kettle uses, chair sessions, a day out through the front
door, visitors, night-time trips out of bed. Weekends start later. Events change it: after a
fall nothing moves any more; on a day of not getting up the bed stays occupied; a decline
thins activity by its share; a hub outage silences the home's sensors (the resident carries on).

The sensors report as real ones do:

- motion (PIR): an uplink every interval with the count of detections since the last one. An
  interval is active with a probability set by what the resident is doing (times the decline
  factor), so the share of active intervals — the active-slots index — falls by exactly the
  decline's share on average.
- door contact, kettle plug, bed and chair occupancy: an uplink at each change, plus a heartbeat
  with the current state.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from simulators.dynamics import (
    Battery,
    Emission,
    emission,
    layout_rng,
    poisson,
    report_times,
    run_rng,
)
from simulators.identity import rng
from simulators.scenario import Resident, SimDevice
from simulators.timeline import ResidentEvents, Timeline, within
from simulators.world import World

Span = tuple[float, float]

# Chance that the PIR sees movement in an uplink window, and detections when it does.
_ACTIVE = {
    "asleep": 0.02,
    "in_bed": 0.05,
    "morning": 0.95,
    "meal": 0.9,
    "visit": 0.9,
    "home": None,  # the routine's active_share
    "chair": None,  # the routine's chair_active_share
    "out": 0.0,
    "fallen": 0.0,
}
_COUNTS = {"morning": 8, "meal": 6, "visit": 6, "home": 4, "chair": 1.5}
_MIN = 60.0


@dataclass
class DayPlan:
    day: int
    start: float
    end: float
    # (start, end, state), highest priority first; uncovered time is "home" while up.
    layers: list[tuple[float, float, str]] = field(default_factory=list)
    up: Span | None = None  # out of bed for the day (wake, bedtime)
    kettle: list[float] = field(default_factory=list)
    doors: list[float] = field(default_factory=list)
    trips: list[Span] = field(default_factory=list)  # night-time, out of bed
    bed: list[Span] = field(default_factory=list)
    chair: list[Span] = field(default_factory=list)

    def state(self, t: float) -> str:
        for a, b, state in self.layers:
            if a <= t < b:
                return state
        if self.up is not None and self.up[0] <= t < self.up[1]:
            return "home"
        return "asleep"

    def has_event(self, a: float, b: float) -> bool:
        """Whether the resident surely passed the PIR in (a, b]: kettle, door, a trip."""
        return any(a < t <= b for t in self.kettle + self.doors) or any(
            a < t0 <= b for t0, _ in self.trips
        )


class Household:
    def __init__(self, resident: Resident, tl: Timeline, world: World) -> None:
        self.resident = resident
        self.routine = resident.routine
        self.tl = tl
        self.world = world
        self.events = tl.residents.get(resident.resident_id, ResidentEvents())
        self._plans: dict[int, DayPlan] = {}

    def plan(self, day: int) -> DayPlan:
        if day not in self._plans:
            self._plans[day] = self._make(day)
            for old in [d for d in self._plans if d < day - 3]:
                del self._plans[old]
        return self._plans[day]

    def activity(self, t: float) -> float:
        return self.events.activity_factor(t)

    def silent(self, t: float) -> bool:
        return within(t, self.events.outages)

    def _make(self, day: int) -> DayPlan:
        tl, ro = self.tl, self.routine
        r = rng(tl.seed, self.resident.resident_id, "day", day)
        start, end = tl.at(day, 0), tl.at(day + 1, 0)
        plan = DayPlan(day, start, end)
        weekend = tl.weekday(day) >= 5
        sd = ro.variation.total_seconds() / 60
        wake_min = min(max(r.gauss(ro.wake_weekend if weekend else ro.wake, sd), 240), 690)
        bed_min = min(max(r.gauss(ro.bed_weekend if weekend else ro.bed, sd), 1200), 1430)
        wake, bedtime = tl.at(day, wake_min), tl.at(day, bed_min)
        factor = self.activity(tl.at(day, 720))
        # Night-time trips out of bed, before the usual time to get up.
        trips: list[Span] = []
        for _ in range(poisson(r, ro.night_bathroom_trips)):
            t0 = r.uniform(start + 60 * _MIN, max(start + 61 * _MIN, wake - 20 * _MIN))
            trips.append((t0, t0 + r.uniform(3, 8) * _MIN))
        plan.trips = sorted(trips)
        stays = self.events.stays_in_bed.get(day)
        if stays is not None:
            plan.layers.append((wake, min(stays, end), "in_bed"))
            wake = stays
        if wake < bedtime:
            plan.up = (wake, bedtime)
            self._daytime(plan, r, wake, bedtime, weekend, factor)
        plan.bed = _minus([(start, min(wake, end)), (max(bedtime, wake), end)], plan.trips)
        self._fall(plan)
        return plan

    def _daytime(
        self,
        plan: DayPlan,
        r: random.Random,
        wake: float,
        bedtime: float,
        weekend: bool,
        factor: float,
    ) -> None:
        tl, ro, day = self.tl, self.routine, plan.day

        def around(minute: float, spread: float = 15) -> float:
            return tl.at(day, minute + r.gauss(0, spread))

        layers: list[tuple[float, float, str]] = []
        if r.random() < ro.outings_per_week / 7 * (1.3 if weekend else 1.0) * factor:
            t0 = tl.at(day, r.uniform(*ro.outing_window))
            low, high = (x.total_seconds() for x in ro.outing_length)
            layers.append((t0, t0 + r.uniform(low, high), "out"))
        if r.random() < ro.visitors_per_week / 7:
            t0 = tl.at(day, r.uniform(600, 1080))
            layers.append((t0, t0 + r.uniform(30, 90) * _MIN, "visit"))
        layers.append((wake, wake + 60 * _MIN, "morning"))
        for minute, length in ((ro.lunch, 40), (ro.dinner, 45)):
            t0 = around(minute)
            layers.append((t0, t0 + length * _MIN, "meal"))
        sessions = [(around(a), around(b)) for a, b in ro.chair]
        layers += [(a, b, "chair") for a, b in sessions if a < b]
        plan.layers += [(max(a, wake), min(b, bedtime), st) for a, b, st in layers if a < bedtime]
        # The door at both ends of a day out or a visit, and a parcel now and then.
        plan.doors = [t for a, b, st in layers if st in ("out", "visit") for t in (a, b)]
        if r.random() < 0.3:
            plan.doors.append(r.uniform(wake, bedtime))
        plan.doors = sorted(t for t in plan.doors if wake <= t < bedtime)
        kettle = [wake + r.uniform(8, 20) * _MIN, *(around(m, 20) for m in ro.kettle)]
        plan.kettle = sorted(
            t
            for t in kettle
            if wake <= t < bedtime
            and plan.state(t) not in ("out", "in_bed")
            and r.random() < 0.5 + 0.5 * factor
        )
        # In the chair, getting up now and then.
        chair: list[Span] = []
        for a, b in sessions:
            t = a
            while t < b:
                sit = min(b, t + r.uniform(25, 70) * _MIN)
                if plan.state((t + sit) / 2) == "chair":
                    chair.append((t, sit))
                t = sit + r.uniform(2, 6) * _MIN
        plan.chair = chair

    def _fall(self, plan: DayPlan) -> None:
        """From the fall on, nothing moves: on the floor, out of bed and chair."""
        fall = self.events.fall
        if fall >= plan.end:
            return
        at = max(fall, plan.start)
        plan.layers.insert(0, (at, math.inf, "fallen"))
        plan.kettle = [t for t in plan.kettle if t < at]
        plan.doors = [t for t in plan.doors if t < at]
        plan.trips = [(a, b) for a, b in plan.trips if a < at]
        plan.bed = [(a, min(b, at)) for a, b in plan.bed if a < at]
        plan.chair = [(a, min(b, at)) for a, b in plan.chair if a < at]


def _minus(spans: list[Span], holes: list[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in spans:
        for h0, h1 in holes:
            if a < h0 < b:
                out.append((a, h0))
                a = max(a, h1)
        if a < b:
            out.append((a, b))
    return out


# -- the sensors ----------------------------------------------------------------------------------


def home_readings(device: SimDevice, home: Household) -> Iterator[Emission]:
    if device.sensor == "motion":
        return _motion(device, home)
    return _on_change(device, home)


def _motion(device: SimDevice, home: Household) -> Iterator[Emission]:
    tl, ro = home.tl, home.routine
    r = run_rng(tl, device)
    battery = Battery(device, tl)
    every = device.every_s
    for t in report_times(device, tl, r):
        mid = t - every / 2
        plan = home.plan(tl.day_of(mid))
        state = plan.state(mid)
        chance = _ACTIVE[state]
        if chance is None:
            chance = ro.active_share if state == "home" else ro.chair_active_share
        if state not in ("out", "fallen") and plan.has_event(t - every, t):
            chance = max(chance, 0.9)
        active = r.random() < chance * home.activity(mid)
        count = 1 + poisson(r, _COUNTS.get(state, 1.0)) if active else 0
        if home.silent(t):
            continue
        yield emission(t, device, _motion_fields(t, count, plan, battery, home.world, tl))


def _motion_fields(
    t: float, count: int, plan: DayPlan, battery: Battery, world: World, tl: Timeline
) -> dict[str, Any]:
    hour = tl.hour(t)
    daylight = max(0.0, math.sin(math.pi * (hour - 7) / 11)) if 7 < hour < 18 else 0.0
    lamps = 60.0 if plan.state(t) not in ("asleep", "out", "fallen") and daylight < 0.3 else 0.0
    heating = 20.5 if 6.5 < hour < 22.5 else 18.0
    outdoor = world.temperature_c(t)
    return {
        "sensor": "motion",
        "motion_count": count,
        "battery_pct": battery.at(t),
        # What an Elsys ERS also reports; not native fields.
        "room_temperature_c": round(heating + 0.1 * (outdoor - 10), 1),
        "room_humidity_pct": round(min(70.0, 38 + 0.6 * max(0.0, outdoor)), 0),
        "room_light_lux": round(250 * daylight + lamps),
    }


def _on_change(device: SimDevice, home: Household) -> Iterator[Emission]:
    """Door, plug, bed and chair: a change is reported when it happens, the state again at
    every heartbeat."""
    tl = home.tl
    r = run_rng(tl, device)
    battery = Battery(device, tl)
    every = device.every_s
    phase = layout_rng(device, "phase").uniform(0, every)
    sensor = device.sensor
    assert sensor is not None
    day = tl.first_day()
    last = tl.last_day()
    while last is None or day <= last:
        plan = home.plan(day)
        changes = _changes(sensor, plan, r)
        k = math.ceil((plan.start - phase) / every)
        beats = []
        while (t := k * every + phase) < plan.end:
            jittered = t + r.uniform(-1.0, 1.0)  # radio jitter, as in report_times
            beats.append((min(max(jittered, plan.start), plan.end - 0.001), None))
            k += 1
        for t, value in sorted(changes + beats, key=lambda x: x[0]):
            if not tl.start <= t < tl.end or home.silent(t):
                continue
            if value is None:
                value = _state_at(sensor, plan, changes, t)
            yield emission(t, device, _fields(sensor, value, battery.at(t)))
        day += 1


def _changes(sensor: str, plan: DayPlan, r: random.Random) -> list[tuple[float, Any]]:
    """(time, new value) of each change the sensor reports during the day."""
    out: list[tuple[float, Any]] = []
    if sensor == "door":
        for t in plan.doors:
            out += [(t, True), (t + r.uniform(6, 40), False)]
    elif sensor == "power":
        for t in plan.kettle:
            out += [
                (t + r.uniform(2, 6), round(r.uniform(2_750, 3_000), 1)),
                (t + r.uniform(120, 240), round(r.uniform(0.3, 0.9), 1)),
            ]
    else:
        spans = plan.bed if sensor == "bed" else plan.chair
        for a, b in spans:
            # A span that runs into midnight continues the neighbouring day's: no change there.
            if a > plan.start:
                out.append((a + r.uniform(1, 20), True))
            if b < plan.end:
                out.append((b + r.uniform(1, 20), False))
    return sorted(out, key=lambda x: x[0])


def _state_at(sensor: str, plan: DayPlan, changes: list[tuple[float, Any]], t: float) -> Any:
    if sensor in ("bed", "chair"):
        spans = plan.bed if sensor == "bed" else plan.chair
        return any(a <= t < b for a, b in spans)
    before = [value for tc, value in changes if tc <= t]
    if before:
        return before[-1]
    return False if sensor == "door" else 0.5


def _fields(sensor: str, value: Any, battery: float) -> dict[str, Any]:
    key = {"door": "door_open", "power": "power_w"}.get(sensor, "occupied")
    return {"sensor": sensor, key: value, "battery_pct": battery}
