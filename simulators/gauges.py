"""River and gully level gauges.

Each gauge's catchment is a linear reservoir: rain (delayed by the catchment's lag) raises the
level above its usual share of the typical range, and the water recedes exponentially with the
catchment's time constant. Rivers respond over hours, gullies within the hour; a storm takes
them beyond their typical range at rates a rate-of-rise rule can see, passing showers do not.
A stuck gauge repeats the level it had when it stuck.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from simulators.dynamics import Battery, Emission, emission, layout_rng, report_times, run_rng
from simulators.scenario import SimDevice
from simulators.spec import GaugeGroup
from simulators.timeline import DeviceEvents, Timeline, within
from simulators.world import World

_STEP_S = 900.0
_WARM_UP_S = 3 * 86_400  # rain before the run still shows in the level at its start


class Catchment:
    def __init__(self, device: SimDevice, world: World) -> None:
        group = device.group
        assert isinstance(group, GaugeGroup)
        layout = layout_rng(device)
        props = device.spec.properties
        self.low = float(props["typical_low_m"])
        self.span = float(props["typical_high_m"]) - self.low
        self.base = layout.uniform(*group.baseline_share)
        self.gain = layout.uniform(*group.response_per_mm)
        self.tau = group.recession.total_seconds() * layout.uniform(0.85, 1.15)
        self.lag = group.lag.total_seconds()
        self.world = world
        self.excess = 0.0  # above the baseline, in shares of the typical span

    def advance(self, a: float, b: float) -> None:
        """Integrate (a, b] in steps, rain held constant within each (exact for that)."""
        t = a
        while t < b:
            step = min(_STEP_S, b - t)
            rain = self.world.rain_mm_h(t + step / 2 - self.lag)
            decay = math.exp(-step / self.tau)
            self.excess = self.excess * decay + self.gain * rain * self.tau / 3600 * (1 - decay)
            t += step

    def level_m(self) -> float:
        return self.low + self.span * (self.base + self.excess)


def gauge_readings(device: SimDevice, tl: Timeline, world: World) -> Iterator[Emission]:
    catchment = Catchment(device, world)
    r = run_rng(tl, device)
    battery = Battery(device, tl)
    events = tl.devices.get(device.device_id, DeviceEvents())
    t_prev = tl.start - _WARM_UP_S
    stuck_at: float | None = None
    for t in report_times(device, tl, r):
        catchment.advance(t_prev, t)
        t_prev = t
        level = catchment.level_m() + r.gauss(0, 0.003)
        if within(t, events.stuck):
            stuck_at = level if stuck_at is None else stuck_at
            level = stuck_at
        else:
            stuck_at = None
        if within(t, events.silent):
            continue
        yield emission(t, device, {"level_m": round(level, 3), "battery_pct": battery.at(t)})
