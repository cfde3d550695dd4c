"""``rate_of_change``: a measurement rising (or falling) faster than a rate, e.g. a river level
rising more than 0.3 m/h. The rate is the least-squares slope over a trailing window, so one
noisy reading does not make a rate."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from rules.durations import Duration, format_duration
from rules.model import DeviceView, Rule, Transition, measurement_field, numeric_columns
from rules.series import Series, _number, least_squares_slope
from rules.units import fmt, unit_of


class RateOfChangeRule(Rule):
    """Opens when the slope of ``field`` over ``window`` exceeds ``rise_per_hour`` (or falls
    faster than ``fall_per_hour``); clears when it is back under ``clear_per_hour`` (default
    half the trigger rate). The window must hold ``min_readings`` spanning half of it."""

    kind: Literal["rate_of_change"]
    field: str
    rise_per_hour: float | None = Field(default=None, gt=0)
    fall_per_hour: float | None = Field(default=None, gt=0)
    window: Duration = timedelta(minutes=30)
    clear_per_hour: float | None = Field(default=None, ge=0)
    min_readings: int = Field(default=3, ge=2)

    _field = field_validator("field")(measurement_field)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.rise_per_hour is None) == (self.fall_per_hour is None):
            raise ValueError("give exactly one of rise_per_hour or fall_per_hour")
        if self.window <= timedelta(0):
            raise ValueError("window must be positive")
        if self.clear_per_hour is not None and self.clear_per_hour > self._rate:
            raise ValueError("clear_per_hour must not exceed the trigger rate")
        return self

    @property
    def _rate(self) -> float:
        rate = self.rise_per_hour if self.rise_per_hour is not None else self.fall_per_hour
        assert rate is not None
        return rate

    def applies_to(self, device: DeviceView) -> bool:
        return super().applies_to(device) and self.field in numeric_columns(device.kind)

    def lookback(self) -> timedelta:
        return self.window

    def step(self, device: DeviceView, series: Series, i: int, active: bool) -> Transition | None:
        t = series.times[i]
        if _number(series.columns[self.field][i]) is None:
            return None
        window_s = self.window.total_seconds()
        points = list(series.points(self.field, t - window_s, i))
        if len(points) < self.min_readings or points[-1][0] - points[0][0] < window_s / 2:
            return None
        slope = least_squares_slope(points)
        if slope is None:
            return None
        per_hour = slope * 3600
        # Positive means "in the alerting direction".
        signed = per_hour if self.rise_per_hour is not None else -per_hour
        clear_rate = self.clear_per_hour if self.clear_per_hour is not None else self._rate / 2
        word = "rising" if self.rise_per_hour is not None else "falling"
        unit = unit_of(self.field).strip()
        observed = {
            "field": self.field,
            "rate_per_hour": per_hour,
            "threshold_per_hour": self._rate,
            "direction": word,
            "window_s": window_s,
            "readings": len(points),
            "value": points[-1][1],
        }
        over = f"over the last {format_duration(points[-1][0] - points[0][0])}"
        if not active and signed > self._rate:
            summary = (
                f"{self.field} {word} {abs(per_hour):.2f} {unit}/h {over} "
                f"(limit {self._rate:g} {unit}/h), now {fmt(points[-1][1], self.field)}"
            )
            return Transition(True, t, summary, observed)
        if active and signed <= clear_rate:
            summary = (
                f"{self.field} {word} at {max(signed, 0):.2f} {unit}/h {over}, "
                f"under {clear_rate:g} {unit}/h"
            )
            return Transition(False, t, summary, observed)
        return None
