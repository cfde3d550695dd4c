"""How each kind of device behaves over time. Every device is a generator of ``Emission``s in
time order; ``streams`` gives one per device of a scenario, for ``simulators.engine`` to merge."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from placewatch.kinds import Kind
from simulators.identity import rng
from simulators.scenario import SimDevice
from simulators.timeline import Timeline

US = 1_000_000


@dataclass(frozen=True, slots=True)
class Emission:
    """One uplink: when it happened (µs since the epoch), the device, and its native fields
    (without ``time``; a few vendor-only fields such as room temperature may ride along)."""

    t_us: int
    device: SimDevice
    fields: dict[str, Any]
    # The time the device stamps when its clock is off (fault injection); None = t_us.
    stamp_us: int | None = None


def emission(t: float, device: SimDevice, fields: dict[str, Any]) -> Emission:
    return Emission(round(t * US), device, fields)


def layout_rng(device: SimDevice, purpose: str = "dynamics") -> random.Random:
    """Per-device constants (a bin's fill rate, a station's background): the same whatever the
    run's seed, like the registry entry."""
    return rng(device.spec.council_id, device.device_id, purpose)


def run_rng(tl: Timeline, device: SimDevice, purpose: str = "run") -> random.Random:
    return rng(tl.seed, device.device_id, purpose)


def report_times(
    device: SimDevice, tl: Timeline, r: random.Random, t_from: float | None = None
) -> Iterator[float]:
    """Uplink times from ``t_from`` (the run's start) to the run's end: every ``every_s`` at the
    device's own phase, give or take a second of radio jitter. The phase keeps a margin from
    the interval's edges, so each uplink stays in its own interval of the wall clock."""
    every = device.every_s
    margin = min(60.0, every / 10)
    phase = layout_rng(device, "phase").uniform(margin, every - margin)
    start = tl.start if t_from is None else t_from
    k = math.ceil((start - phase) / every)
    while True:
        t = k * every + phase + r.uniform(-1.0, 1.0)
        if t >= tl.end:
            return
        if t >= start:
            yield t
        k += 1


class Battery:
    def __init__(self, device: SimDevice, tl: Timeline) -> None:
        layout = layout_rng(device, "battery")
        self.start_pct = layout.uniform(*device.group.battery_pct)
        self.drain_per_s = layout.uniform(*device.group.battery_drain_pct_per_day) / 86_400
        self.t0 = tl.start

    def at(self, t: float) -> float:
        return round(max(1.0, self.start_pct - self.drain_per_s * (t - self.t0)), 1)


def poisson(r: random.Random, lam: float) -> int:
    """Knuth's method: fine for the small means of PIR counts."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= r.random()
        if p <= limit:
            return k
        k += 1


def streams(tl: Timeline) -> list[Iterator[Emission]]:
    from simulators.air import air_readings
    from simulators.bins import bin_readings
    from simulators.gauges import gauge_readings
    from simulators.homes import Household, home_readings
    from simulators.world import World

    world = World(tl)
    out: list[Iterator[Emission]] = []
    for device in tl.scenario.sim_devices:
        if device.kind is Kind.BIN_FILL:
            out.append(bin_readings(device, tl, world))
        elif device.kind is Kind.AIR_QUALITY:
            out.append(air_readings(device, tl, world))
        elif device.kind is Kind.FLOOD_LEVEL:
            out.append(gauge_readings(device, tl, world))
    for resident in tl.scenario.residents.values():
        household = Household(resident, tl, world)
        out.extend(home_readings(device, household) for device in resident.devices)
    return out
