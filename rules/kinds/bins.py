"""``bin_time_to_full``: a bin to collect, because it is above the collection threshold or
because its fill slope since the last emptying says it will be full within N hours."""

from __future__ import annotations

from datetime import timedelta
from statistics import median
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from placewatch.kinds import Kind
from rules.durations import Duration, format_duration
from rules.model import DeviceView, Rule, Transition
from rules.series import Series, _number, least_squares_slope
from rules.units import clock, iso

_COLUMN = "fill_pct"


def last_emptying(points: list[tuple[float, float]], drop: float) -> int | None:
    """Index of the first low reading of the latest emptying: a fall of at least ``drop``
    points, confirmed by the next reading staying low (an ultrasonic echo off the lid or a bag
    gives one low reading, not two)."""
    for k in range(len(points) - 2, 0, -1):
        before = points[k - 1][1]
        if before - points[k][1] >= drop and before - points[k + 1][1] >= drop:
            return k
    return None


class BinTimeToFullRule(Rule):
    """Opens when the bin's fill (median of the last three readings) reaches ``threshold_pct``,
    or when the least-squares fill slope since the last emptying predicts 100 % within
    ``within``; clears when the bin is emptied (fill under ``clear_below_pct``)."""

    kind: Literal["bin_time_to_full"]
    kinds: ClassVar[tuple[Kind, ...] | None] = (Kind.BIN_FILL,)
    threshold_pct: float = Field(default=80, gt=0, le=100)
    within: Duration = timedelta(hours=12)
    emptied_drop_pct: float = Field(default=30, gt=0, le=100)
    clear_below_pct: float = Field(default=30, ge=0, le=100)
    min_readings: int = Field(default=3, ge=2)
    min_span: Duration = timedelta(hours=1)
    # How far back the slope may look when no emptying is seen (a bin rarely collected).
    history: Duration = timedelta(days=7)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.clear_below_pct >= self.threshold_pct:
            raise ValueError("clear_below_pct must be below threshold_pct")
        return self

    def lookback(self) -> timedelta:
        return self.history

    def step(self, device: DeviceView, series: Series, i: int, active: bool) -> Transition | None:
        t = series.times[i]
        if _number(series.columns[_COLUMN][i]) is None:
            return None
        points = list(series.points(_COLUMN, t - self.history.total_seconds(), i))
        fill = median(v for _, v in points[-3:])
        if active:
            if fill < self.clear_below_pct:
                summary = f"emptied: fill {fill:.0f} % (under {self.clear_below_pct:g} %)"
                return Transition(False, t, summary, {"fill_pct": fill})
            return None
        emptied = last_emptying(points, self.emptied_drop_pct)
        cycle = points[emptied:] if emptied is not None else points
        observed: dict[str, object] = {
            "fill_pct": fill,
            "threshold_pct": self.threshold_pct,
            "within_s": self.within.total_seconds(),
            "emptied_at": iso(cycle[0][0]) if emptied is not None else None,
        }
        if fill >= self.threshold_pct:
            summary = (
                f"fill {fill:.0f} % at or above the collection threshold {self.threshold_pct:g} %"
            )
            return Transition(True, t, summary, observed)
        span = cycle[-1][0] - cycle[0][0]
        if len(cycle) < self.min_readings or span < self.min_span.total_seconds():
            return None
        slope = least_squares_slope(cycle)
        if slope is None or slope <= 0:
            return None
        per_hour = slope * 3600
        hours_to_full = (100 - fill) / per_hour
        if hours_to_full > self.within.total_seconds() / 3600:
            return None
        full_at = t + hours_to_full * 3600
        since = f"since emptied at {clock(cycle[0][0])}" if emptied is not None else "lately"
        summary = (
            f"fill {fill:.0f} % rising {per_hour:.1f} %/h {since}; predicted full at "
            f"{clock(full_at)} (in {format_duration(hours_to_full * 3600)}, "
            f"within {format_duration(self.within)})"
        )
        observed |= {"rate_pct_per_hour": per_hour, "predicted_full_at": iso(full_at)}
        return Transition(True, t, summary, observed)
