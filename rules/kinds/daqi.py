"""``daqi``: the UK Daily Air Quality Index band of a station, from each pollutant's mean over
its Defra averaging period, alerting at a band (default 7, "High").

Breakpoints: Defra, "Daily Air Quality Index", 2013 revision (uk-air.defra.gov.uk/air-pollution/
daqi; COMEAP 2011 review as updated in 2013). Concentrations in µg/m³; each row is the upper end
of an index, index 10 is everything above index 9. Sources and choices are in docs/rules.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from placewatch.kinds import Kind
from rules.durations import Duration, format_duration
from rules.model import DeviceView, Rule, Transition
from rules.series import Series

# How far before t - clear_for the reading that starts the clear run may be.
_CLEAR_GAP = timedelta(hours=1)

BANDS = (
    "Low",
    "Low",
    "Low",
    "Moderate",
    "Moderate",
    "Moderate",
    "High",
    "High",
    "High",
    "Very High",
)


@dataclass(frozen=True)
class Pollutant:
    column: str
    name: str
    averaging: timedelta
    averaging_name: str
    upper: tuple[int, ...]  # upper bound of indices 1..9


POLLUTANTS: dict[str, Pollutant] = {
    p.column.removesuffix("_ugm3"): p
    for p in (
        Pollutant(
            "o3_ugm3",
            "O3",
            timedelta(hours=8),
            "running 8-hour mean",
            (33, 66, 100, 120, 140, 160, 187, 213, 240),
        ),
        Pollutant(
            "no2_ugm3",
            "NO2",
            timedelta(hours=1),
            "hourly mean",
            (67, 134, 200, 267, 334, 400, 467, 534, 600),
        ),
        Pollutant(
            "so2_ugm3",
            "SO2",
            timedelta(minutes=15),
            "15-minute mean",
            (88, 177, 266, 354, 443, 532, 710, 887, 1064),
        ),
        Pollutant(
            "pm25_ugm3",
            "PM2.5",
            timedelta(hours=24),
            "running 24-hour mean",
            (11, 23, 35, 41, 47, 53, 58, 64, 70),
        ),
        Pollutant(
            "pm10_ugm3",
            "PM10",
            timedelta(hours=24),
            "running 24-hour mean",
            (16, 33, 50, 58, 66, 75, 83, 91, 100),
        ),
    )
}
PollutantName = Literal["o3", "no2", "so2", "pm25", "pm10"]
ALL_POLLUTANTS: tuple[PollutantName, ...] = ("o3", "no2", "so2", "pm25", "pm10")


def half_up(value: float) -> int:
    # Rounded to 6 decimals first: a mean computed from running sums (or in another order) can
    # come out as 53.49999999999999 for 53.5, and the band must not depend on that.
    return math.floor(round(value, 6) + 0.5)


def daqi_index(pollutant: Pollutant, concentration: float) -> int:
    """Index 1..10. Breakpoints are whole µg/m³; a mean is rounded half up first (Defra does
    not say how; see docs/rules.md)."""
    rounded = half_up(concentration)
    for index, upper in enumerate(pollutant.upper, start=1):
        if rounded <= upper:
            return index
    return 10


@dataclass(frozen=True)
class Reading:
    index: int
    pollutant: Pollutant
    mean: float
    samples: int


def index_at(series: Series, i: int, pollutants: list[Pollutant]) -> Reading | None:
    """The station's DAQI at reading i: the highest index over pollutants whose averaging
    window holds enough data. Defra's rule for running means is 75 % data capture (6 of 8
    hours for O3, 18 of 24 for PM): windows longer than an hour need that share of clock hours
    with data of that pollutant; an hour or less needs one reading."""
    t = series.times[i]
    best: Reading | None = None
    for p in pollutants:
        window = p.averaging.total_seconds()
        mean, n = series.mean(p.column, t - window, i)
        if mean is None:
            continue
        if window > 3600 and series.hours_with_data(p.column, t - window, i) < 0.75 * (
            window / 3600
        ):
            continue
        idx = daqi_index(p, mean)
        if best is None or idx > best.index:
            best = Reading(idx, p, mean, n)
    return best


class DaqiRule(Rule):
    """Opens when a station's DAQI reaches ``min_index``; clears when it has been at or below
    ``clear_index`` (default one less) for ``clear_for``."""

    kind: Literal["daqi"]
    kinds: ClassVar[tuple[Kind, ...] | None] = (Kind.AIR_QUALITY,)
    min_index: int = Field(default=7, ge=2, le=10)
    clear_index: int | None = Field(default=None, ge=1, le=9)
    clear_for: Duration = timedelta(hours=1)
    pollutants: list[PollutantName] = Field(default_factory=lambda: list(ALL_POLLUTANTS))

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.clear_index is not None and self.clear_index >= self.min_index:
            raise ValueError("clear_index must be below min_index")
        return self

    def lookback(self) -> timedelta:
        longest = max(POLLUTANTS[p].averaging for p in self.pollutants)
        return longest + self.clear_for + _CLEAR_GAP

    def step(self, device: DeviceView, series: Series, i: int, active: bool) -> Transition | None:
        chosen = [POLLUTANTS[p] for p in self.pollutants]
        now = index_at(series, i, chosen)
        if now is None:
            return None
        t = series.times[i]
        p = now.pollutant
        observed = {
            "index": now.index,
            "band": BANDS[now.index - 1],
            "pollutant": p.name,
            "averaging": p.averaging_name,
            "mean_ugm3": round(now.mean, 1),
            "samples": now.samples,
            "min_index": self.min_index,
        }
        if not active:
            if now.index < self.min_index:
                return None
            summary = (
                f"DAQI {now.index} ({BANDS[now.index - 1]}) from {p.name}: {p.averaging_name} "
                f"{half_up(now.mean)} µg/m³ (alert at index {self.min_index})"
            )
            return Transition(True, t, summary, observed)
        clear_index = self.clear_index if self.clear_index is not None else self.min_index - 1
        if now.index > clear_index:
            return None
        # Held for clear_for: every reading back to one at or before t - clear_for (at most an
        # hour before that) at or below clear_index.
        since = t - self.clear_for.total_seconds()
        reached = self.clear_for <= timedelta(0)
        first = i if reached else series.first_index(since - _CLEAR_GAP.total_seconds())
        for j in range(i - 1, first - 1, -1):
            earlier = index_at(series, j, chosen)
            if earlier is not None and earlier.index > clear_index:
                return None
            if series.times[j] <= since:
                reached = True
                break
        if not reached:
            return None
        summary = (
            f"DAQI {now.index} ({BANDS[now.index - 1]}), at or below {clear_index} for "
            f"{format_duration(self.clear_for)}"
        )
        return Transition(False, t, summary, observed)
