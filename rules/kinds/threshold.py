"""``threshold``: a measurement above (or below) a level for a duration, cleared with hysteresis;
and ``low_battery``, the same shape preset for every device's battery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from rules.durations import Duration, format_duration
from rules.model import (
    DeviceView,
    Rule,
    Transition,
    Value,
    measurement_field,
    numeric_columns,
    resolve,
)
from rules.series import Series, _number
from rules.units import clock, fmt, iso

# Default time a value must stay on the clear side before the alert clears: a value hovering at
# the threshold dips across it now and then and must not flap.
DEFAULT_CLEAR_FOR = timedelta(minutes=15)
# Default longest gap between two readings that still counts as one continuous run.
DEFAULT_MAX_GAP = timedelta(hours=6)


def held_for(
    series: Series,
    column: str,
    i: int,
    holds: Callable[[float], bool],
    duration: float,
    max_gap: float,
) -> tuple[bool, float]:
    """Whether ``holds`` was true for reading i and every earlier reading (with a value) back to
    one at or before times[i] - duration, with no gap longer than ``max_gap`` between them (a
    device silent for longer says nothing about the time in between). Returns that and the start
    of the run. Looks back at most duration + max_gap."""
    t_i = series.times[i]
    v = _number(series.columns[column][i])
    if v is None or not holds(v):
        return False, t_i
    if duration <= 0:
        return True, t_i
    run_start = t_i
    values = series.columns[column]
    for j in range(i - 1, series.first_index(t_i - duration - max_gap) - 1, -1):
        vj = _number(values[j])
        if vj is None:
            continue
        if not holds(vj) or run_start - series.times[j] > max_gap:
            break
        run_start = series.times[j]
        if run_start <= t_i - duration:
            break
    return run_start <= t_i - duration, run_start


def threshold_step(
    *,
    series: Series,
    i: int,
    active: bool,
    column: str,
    upward: bool,
    level: float,
    clear_level: float,
    for_s: float,
    clear_for_s: float,
    max_gap_s: float,
) -> Transition | None:
    t = series.times[i]
    value = _number(series.columns[column][i])
    if value is None:
        return None
    word = "above" if upward else "below"
    other = "below" if upward else "above"
    observed = {
        "field": column,
        "value": value,
        "threshold": level,
        "direction": word,
        "clear_threshold": clear_level,
    }
    if not active:
        beyond: Callable[[float], bool] = (lambda v: v > level) if upward else (lambda v: v < level)
        held, since = held_for(series, column, i, beyond, for_s, max_gap_s)
        if not held:
            return None
        lasting = f" for {format_duration(t - since)} (since {clock(since)})" if for_s else ""
        summary = f"{column} {fmt(value, column)} {word} {fmt(level, column)}{lasting}"
        return Transition(True, t, summary, {**observed, "since": iso(since), "for_s": for_s})
    back: Callable[[float], bool] = (
        (lambda v: v <= clear_level) if upward else (lambda v: v >= clear_level)
    )
    held, since = held_for(series, column, i, back, clear_for_s, max_gap_s)
    if not held:
        return None
    summary = f"{column} {fmt(value, column)}, back {other} {fmt(clear_level, column)}" + (
        f" for {format_duration(t - since)}" if clear_for_s else ""
    )
    return Transition(False, t, summary, {**observed, "since": iso(since)})


class ThresholdRule(Rule):
    """``field`` above (or below) a level for ``for``; clears once back on the other side of
    ``clear`` (default: the level) for ``clear_for`` (default 15 min). Readings more than
    ``max_gap`` apart break a run."""

    kind: Literal["threshold"]
    field: str
    above: Value | None = None
    below: Value | None = None
    for_: Duration = Field(default=timedelta(0), alias="for")
    clear: Value | None = None
    clear_for: Duration = DEFAULT_CLEAR_FOR
    max_gap: Duration = DEFAULT_MAX_GAP

    @field_validator("max_gap")
    @classmethod
    def _positive_gap(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("max_gap must be positive")
        return value

    _field = field_validator("field")(measurement_field)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above or below")
        level = self.above if self.above is not None else self.below
        if isinstance(level, float | int) and isinstance(self.clear, float | int):
            wrong = self.clear > level if self.above is not None else self.clear < level
            if wrong:
                side = "at or below" if self.above is not None else "at or above"
                raise ValueError(f"clear ({self.clear}) must be {side} the level ({level})")
        return self

    def applies_to(self, device: DeviceView) -> bool:
        return (
            super().applies_to(device)
            and self.field in numeric_columns(device.kind)
            and resolve(self.above if self.above is not None else self.below, device) is not None
        )

    def lookback(self) -> timedelta:
        # The reading that starts a run may be up to max_gap earlier still: series always
        # carry the last reading before their range for that.
        return max(self.for_, self.clear_for)

    def step(self, device: DeviceView, series: Series, i: int, active: bool) -> Transition | None:
        upward = self.above is not None
        level = resolve(self.above if upward else self.below, device)
        if level is None:
            return None
        clear = resolve(self.clear, device)
        # A clear level on the wrong side of the level (a device setting, say) would clear the
        # alert while the value is still beyond the level: fall back to the level.
        if clear is None or (clear > level if upward else clear < level):
            clear = level
        return threshold_step(
            series=series,
            i=i,
            active=active,
            column=self.field,
            upward=upward,
            level=level,
            clear_level=clear,
            for_s=self.for_.total_seconds(),
            clear_for_s=self.clear_for.total_seconds(),
            max_gap_s=self.max_gap.total_seconds(),
        )


class LowBatteryRule(Rule):
    """Battery below ``below`` %; clears when above ``clear_above`` % (a new battery)."""

    kind: Literal["low_battery"]
    below: float = Field(default=20, gt=0, le=100)
    clear_above: float = Field(default=30, gt=0, le=100)
    for_: Duration = Field(default=timedelta(0), alias="for")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.clear_above < self.below:
            raise ValueError("clear_above must be at least below")
        return self

    def lookback(self) -> timedelta:
        return self.for_

    def step(self, device: DeviceView, series: Series, i: int, active: bool) -> Transition | None:
        return threshold_step(
            series=series,
            i=i,
            active=active,
            column="battery_pct",
            upward=False,
            level=self.below,
            clear_level=self.clear_above,
            for_s=self.for_.total_seconds(),
            clear_for_s=0,
            max_gap_s=DEFAULT_MAX_GAP.total_seconds(),
        )
