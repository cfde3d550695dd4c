"""Litter bins with ultrasonic fill sensors.

A bin fills at its own rate during its site's busy hours (faster at weekends where the group
says so) and is emptied to near zero when its collection round passes. Ultrasonic sensors
measure the distance from the lid down to the contents; ``fill = (depth - distance) / (depth -
blind zone)``, the blind zone being the range too close for the sensor, where "full" starts.
Real sensors also misread now and then, see the sky when the lid is open, and report tilt when
the bin is tipped into the lorry or knocked over; a bin fire shows as a temperature spike.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from simulators.dynamics import Battery, Emission, emission, layout_rng, report_times, run_rng
from simulators.scenario import SimDevice
from simulators.spec import BinGroup
from simulators.timeline import DeviceEvents, Timeline, within
from simulators.world import World

_FIRE_ALARM_EVERY_S = 600  # a device in alarm reports more often
_ROUND_JITTER_S = 300


def round_time(device: SimDevice, tl: Timeline, day: int) -> float | None:
    """When the bin is emptied on a run day (None: no round that day): its place along the
    round, give or take a few minutes."""
    group = device.group
    assert isinstance(group, BinGroup)
    if tl.weekday(day) not in group.collection.weekdays():
        return None
    offset = group.collection.window.total_seconds() * device.index / device.group_size
    jitter = run_rng(tl, device, f"round-{day}").uniform(-_ROUND_JITTER_S, _ROUND_JITTER_S)
    return tl.at(day, group.collection.start) + max(0.0, offset + jitter)


def collection_times(device: SimDevice, tl: Timeline, t_from: float, t_to: float) -> list[float]:
    """When the bin is emptied in [t_from, t_to)."""
    days = range(tl.day_of(t_from) - 1, tl.day_of(t_to) + 1)
    times = (round_time(device, tl, day) for day in days)
    return [t for t in times if t is not None and t_from <= t < t_to]


class _Bin:
    def __init__(self, device: SimDevice, tl: Timeline, world: World) -> None:
        group = device.group
        assert isinstance(group, BinGroup)
        self.device, self.group, self.tl, self.world = device, group, tl, world
        layout = layout_rng(device)
        self.rate_per_s = layout.uniform(*group.fill_per_day) / 86_400
        self.depth = float(device.spec.properties["depth_mm"])
        self.blind = float(device.spec.properties["blind_zone_mm"])
        self.hours = group.filling_hours
        self.events = tl.devices.get(device.device_id, DeviceEvents())
        self.r = run_rng(tl, device)
        self.battery = Battery(device, tl)
        self.warmth = layout.uniform(0.5, 3.0)  # sun on the bin, a compactor's motor
        self._rounds: dict[int, float | None] = {}

    def rounds(self, a: float, b: float) -> list[float]:
        """Collection times in [a, b), remembered per day (the schedule is asked every reading)."""
        out = []
        for day in range(self.tl.day_of(a) - 1, self.tl.day_of(b) + 1):
            if day not in self._rounds:
                self._rounds[day] = round_time(self.device, self.tl, day)
            t = self._rounds[day]
            if t is not None and a <= t < b:
                out.append(t)
        return out

    def filling_weight(self, t: float) -> float:
        """Share of the day's filling that happens per second around ``t``."""
        minute = self.tl.hour(t) * 60
        start, end = self.hours
        if not start <= minute < end:
            return 0.0
        weekend = self.group.weekend_factor if self.tl.is_weekend(t) else 1.0
        return weekend * 1440 / (end - start)

    def grow(self, a: float, b: float) -> float:
        """Fill added over (a, b], in steps of at most 15 minutes."""
        total, t = 0.0, a
        while t < b:
            step = min(900.0, b - t)
            if not within(t + step / 2, self.events.knocked_over):
                total += self.rate_per_s * self.filling_weight(t + step / 2) * step
            t += step
        return total * self.r.lognormvariate(0, 0.35)

    def initial_fill(self) -> float:
        start = self.tl.start
        last = collection_times(self.device, self.tl, start - 14 * 86_400, start)
        if not last:
            return self.r.uniform(0.1, 0.7)
        residual = self.r.uniform(*self.group.collection.residual_pct) / 100
        return min(0.95, residual + self.grow(last[-1], start))

    def distance_for(self, fill: float) -> float:
        if fill > 1:  # overflowing: the contents reach into the blind zone
            return self.blind * self.r.uniform(0.6, 0.95)
        return self.depth - fill * (self.depth - self.blind)

    def garbage_distance(self) -> float:
        """What the sensor reads when it is not looking at the contents."""
        return self.r.uniform(self.depth + 200, 4_500)

    def temperature(self, t: float) -> float:
        ambient = self.world.temperature_c(t) + self.warmth
        for start, end, peak in self.events.fires:
            if start <= t < end:
                return ambient + (peak - ambient) * min(1.0, (t - start) / 1_200)
            if t >= end:
                ambient += (peak - ambient) * math.exp(-(t - end) / 1_800)
        return ambient

    def fields(self, t: float, distance: float, tilt: bool) -> dict[str, Any]:
        usable = self.depth - self.blind
        fill = max(0.0, min(100.0, 100 * (self.depth - distance) / usable))
        out: dict[str, Any] = {"fill_pct": round(fill, 1), "distance_mm": round(distance)}
        if self.group.temperature:
            temperature = round(self.temperature(t), 1)
            out["temperature_c"] = temperature
            out["tilt"] = tilt
            out["fire"] = temperature >= 60
        else:
            out["tilt"] = tilt
        out["battery_pct"] = self.battery.at(t)
        return out

    def reading(self, t: float, fill: float) -> Emission:
        if within(t, self.events.knocked_over):
            return emission(t, self.device, self.fields(t, self.garbage_distance(), True))
        distance = self.distance_for(fill)
        if self.r.random() < self.group.false_reading_share:
            # A stray echo: very near (reads full) or nothing at all (reads empty).
            near = self.r.random() < 0.5
            distance = self.r.uniform(30, self.blind) if near else self.garbage_distance()
        return emission(t, self.device, self.fields(t, distance, False))

    def alarm(self, t: float) -> Emission:
        """An uplink on tilt (lid open, bin tipped): the sensor sees anything but the contents."""
        return emission(t, self.device, self.fields(t, self.garbage_distance(), True))

    def extras(self, a: float, b: float, rounds: list[float]) -> list[tuple[float, str]]:
        """Alarm uplinks in (a, b): tipping at collection, lid opened, fire alarm mode."""
        out: list[tuple[float, str]] = [
            (tc + self.r.uniform(5, 60), "tilt") for tc in rounds if self.r.random() < 0.7
        ]
        if self.r.random() < self.group.lid_open_per_day * (b - a) / 86_400:
            out.append((self.r.uniform(a, b), "tilt"))
        for start, end, _ in self.events.fires:
            k = math.ceil((max(a, start) - start) / _FIRE_ALARM_EVERY_S)
            while (t := start + k * _FIRE_ALARM_EVERY_S) < min(b, end + 3_600):
                out.append((t, "reading"))
                k += 1
        return sorted(x for x in out if a < x[0] < b)


def bin_readings(device: SimDevice, tl: Timeline, world: World) -> Iterator[Emission]:
    b = _Bin(device, tl, world)
    fill = b.initial_fill()
    t_prev = tl.start
    for t in report_times(device, tl, b.r):
        rounds = b.rounds(t_prev, t)
        extras = b.extras(t_prev, t, rounds)
        checkpoints = sorted([*((tc, "round") for tc in rounds), *extras])
        for tx, what in checkpoints:
            fill += b.grow(t_prev, tx)
            t_prev = tx
            if what == "round":
                fill = b.r.uniform(*b.group.collection.residual_pct) / 100
            elif not within(tx, b.events.silent):
                yield b.alarm(tx) if what == "tilt" else b.reading(tx, fill)
        fill += b.grow(t_prev, t)
        t_prev = t
        if not within(t, b.events.silent):
            yield b.reading(t, fill)
