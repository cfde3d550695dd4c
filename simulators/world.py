"""Weather and air over the whole place: rain (storms and passing showers), wind, temperature,
humidity, pressure, traffic and pollution episodes. Every device reads the same world, so a storm
raises every gauge and clears the air at every station at once."""

from __future__ import annotations

import math
from functools import lru_cache

from simulators.identity import rng
from simulators.timeline import Timeline


def _bell(t: float, start: float, end: float) -> float:
    """0 outside [start, end), rising smoothly to 1 at the middle."""
    if not start <= t < end:
        return 0.0
    return math.sin(math.pi * (t - start) / (end - start)) ** 2


def _plateau(t: float, start: float, end: float, ramp_share: float = 0.2) -> float:
    """0 outside, ramps up over the first and down over the last ``ramp_share`` of the span."""
    if not start <= t < end:
        return 0.0
    ramp = (end - start) * ramp_share
    return min(1.0, (t - start) / ramp, (end - t) / ramp)


def _gauss(x: float, mu: float, sigma: float) -> float:
    return math.exp(-0.5 * ((x - mu) / sigma) ** 2)


def traffic(hour: float, weekend: bool) -> float:
    """Road traffic, 0-1.3: commuter peaks at 08:00 and 17:30 on weekdays, a broad midday hump
    at weekends."""
    if weekend:
        return 0.12 + 0.5 * _gauss(hour, 13.5, 3.0)
    daytime = 1 / (1 + math.exp(-(hour - 6.5) * 2)) - 1 / (1 + math.exp(-(hour - 21) * 2))
    return 0.12 + 0.3 * daytime + 0.85 * _gauss(hour, 8.0, 0.9) + 0.7 * _gauss(hour, 17.5, 1.1)


def sunshine(hour: float) -> float:
    """Photochemistry's driver for ozone: 0 at night, 1 in the early afternoon."""
    return max(0.0, math.sin(math.pi * (hour - 7) / 12)) ** 1.5 if 7 < hour < 19 else 0.0


class World:
    BASE_WIND_MS = 4.0

    def __init__(self, timeline: Timeline) -> None:
        self.tl = timeline
        self.seed = timeline.seed

    @lru_cache(maxsize=64)  # noqa: B019 - one World per run; days are few
    def _showers(self, day: int) -> tuple[tuple[float, float, float], ...]:
        """Passing showers of a local day: (start, end, peak mm/h), light enough to stay within
        a gauge's typical range."""
        r = rng(self.seed, "weather", "showers", day)
        out = []
        for _ in range(r.choices((0, 1, 2), (0.5, 0.35, 0.15))[0]):
            start = self.tl.at(day, r.uniform(0, 1440))
            out.append((start, start + r.uniform(1800, 3 * 3600), r.uniform(0.3, 2.5)))
        return tuple(out)

    @lru_cache(maxsize=64)  # noqa: B019
    def _day_offset_c(self, day: int) -> float:
        return rng(self.seed, "weather", "temperature", day).gauss(0, 1.8)

    def rain_mm_h(self, t: float) -> float:
        rain = sum(s.peak_rain_mm_h * _bell(t, s.start, s.end) for s in self.tl.storms)
        day = self.tl.day_of(t)
        for d in (day - 1, day):
            rain += sum(peak * _bell(t, a, b) for a, b, peak in self._showers(d))
        return rain

    def wind_ms(self, t: float) -> float:
        storm = max(
            (s.wind_ms * _plateau(t, s.start - 3 * 3600, s.end + 3 * 3600) for s in self.tl.storms),
            default=0.0,
        )
        return max(self.BASE_WIND_MS, storm)

    def episode(self, t: float) -> tuple[float, float]:
        """(PM factor, NO2 factor) of the pollution episodes at ``t``."""
        pm, no2 = 1.0, 1.0
        for e in self.tl.episodes:
            level = _plateau(t, e.start, e.end)
            pm *= 1 + (e.pm_factor - 1) * level
            no2 *= 1 + (e.no2_factor - 1) * level
        return pm, no2

    def dispersion(self, t: float) -> float:
        """Wind dilutes what traffic emits: 1 in a usual breeze, about half in a gale."""
        return (1 + 0.06 * self.BASE_WIND_MS) / (1 + 0.06 * self.wind_ms(t))

    def temperature_c(self, t: float) -> float:
        day = self.tl.day_of(t)
        doy = (self.tl.day0.toordinal() + day) % 365
        seasonal = 11.3 - 6.5 * math.cos(2 * math.pi * (doy - 15) / 365)
        hour = self.tl.hour(t)
        diurnal = -3.5 * math.cos(2 * math.pi * (hour - 3) / 24)
        storm = -2.0 * max((_plateau(t, s.start, s.end) for s in self.tl.storms), default=0.0)
        return seasonal + diurnal + self._day_offset_c(day) + storm

    def humidity_pct(self, t: float, temperature_c: float) -> float:
        wet = min(1.0, self.rain_mm_h(t) / 2)
        return max(35.0, min(98.0, 84 - 2.2 * (temperature_c - 8) + 10 * wet))

    def pressure_pa(self, t: float) -> float:
        low = max(
            (_bell(t, s.start - 6 * 3600, s.end + 6 * 3600) for s in self.tl.storms), default=0
        )
        high = max((_plateau(t, e.start, e.end) for e in self.tl.episodes), default=0.0)
        return round(101_300 - 2_800 * low + 900 * high)
