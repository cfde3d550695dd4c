"""Air-quality stations.

NO2 follows road traffic (commuter peaks on weekdays, a midday hump at weekends) on top of a
background that rises a little under the night-time inversion; wind dilutes it. Ozone builds in
the afternoon sun and is eaten by the NO that traffic emits (so it is lowest at the kerb at rush
hour). PM2.5 and PM10 sit on a regional background that pollution episodes multiply and rain
washes out. Every value carries slowly varying sensor and micro-scale noise; stations drop out
now and then.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from simulators.dynamics import Battery, Emission, emission, layout_rng, report_times, run_rng
from simulators.scenario import SimDevice
from simulators.spec import AirGroup
from simulators.timeline import DeviceEvents, Timeline, within
from simulators.world import World, sunshine, traffic

_O3_BASE_UGM3 = 30.0
# How strongly traffic near the station shows in PM, by station type.
_PM_TRAFFIC = {"roadside": 4.0, "background": 1.5, "industrial": 3.0}


class _Noise:
    """AR(1) noise in log space: readings wander rather than jump."""

    def __init__(self, sigma: float, keep: float = 0.8) -> None:
        self.sigma, self.keep, self.value = sigma, keep, 0.0

    def step(self, gauss: float) -> float:
        self.value = self.keep * self.value + math.sqrt(1 - self.keep**2) * self.sigma * gauss
        return math.exp(self.value)


def air_readings(device: SimDevice, tl: Timeline, world: World) -> Iterator[Emission]:
    group = device.group
    assert isinstance(group, AirGroup)
    layout = layout_rng(device)
    no2_bg = layout.uniform(*group.no2_background_ugm3)
    no2_rush = layout.uniform(*group.no2_rush_ugm3)
    pm_bg = layout.uniform(*group.pm25_background_ugm3)
    o3_afternoon = layout.uniform(*group.o3_afternoon_ugm3)
    temp_offset = layout.uniform(-0.6, 0.6)
    pm_traffic = _PM_TRAFFIC[group.station_type]
    r = run_rng(tl, device)
    noise = {p: _Noise(0.15 if p != "o3" else 0.1) for p in ("no2", "pm", "o3")}
    battery = Battery(device, tl)
    events = tl.devices.get(device.device_id, DeviceEvents())
    dropouts: dict[int, tuple[float, float] | None] = {}

    def dropped(t: float) -> bool:
        day = tl.day_of(t)
        if day not in dropouts:
            dr = run_rng(tl, device, f"dropout-{day}")
            start = tl.at(day, dr.uniform(0, 1440))
            hit = dr.random() < group.dropout_per_day
            dropouts[day] = (start, start + dr.uniform(3_600, 6 * 3_600)) if hit else None
        spans = [dropouts[d] for d in (day - 1, day) if dropouts.get(d)]
        return within(t, [x for x in spans if x]) or within(t, events.silent)

    for t in report_times(device, tl, r):
        gauss = [r.gauss(0, 1) for _ in range(3)]  # drawn every time: dropouts shift nothing
        if dropped(t):
            continue
        hour = tl.hour(t)
        road = traffic(hour, tl.is_weekend(t))
        dilution = world.dispersion(t)
        pm_factor, no2_factor = world.episode(t)
        inversion = 1.15 if hour < 6 or hour >= 21 else 1.0
        traffic_no2 = no2_rush * road * dilution
        no2 = (no2_bg * inversion * dilution + traffic_no2) * no2_factor
        no2 *= noise["no2"].step(gauss[0])
        washout = 1 / (1 + 0.25 * world.rain_mm_h(t))
        pm25 = (pm_bg + pm_traffic * road) * pm_factor * dilution * washout
        pm25 *= noise["pm"].step(gauss[1])
        pm10 = pm25 * 1.45 + 3.0 * (world.wind_ms(t) / world.BASE_WIND_MS) ** 0.5
        o3 = _O3_BASE_UGM3 / dilution**0.3 + o3_afternoon * sunshine(hour) - 0.45 * traffic_no2
        o3 = max(2.0, o3 * noise["o3"].step(gauss[2]))
        temperature = world.temperature_c(t) + temp_offset
        values = {"no2": no2, "pm25": pm25, "pm10": pm10, "o3": o3}
        fields: dict[str, Any] = {
            f"{p}_ugm3": round(values[p], 1)
            for p in ("no2", "pm25", "pm10", "o3")
            if p in group.pollutants
        }
        fields["temperature_c"] = round(temperature, 1)
        fields["humidity_pct"] = round(world.humidity_pct(t, temperature), 1)
        fields["battery_pct"] = battery.at(t)
        fields["pressure_pa"] = world.pressure_pa(t)  # for vendor payloads only
        yield emission(t, device, fields)
