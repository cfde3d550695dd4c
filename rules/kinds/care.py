"""The care rule kinds: ``inactivity``, ``not_up``, ``long_occupancy`` and ``activity_decline``.

Each watches a resident (all the home's sensors together) through ``care.monitor.CareMonitor``,
on a timer (``care.live``), with the parameters below; the detectors themselves are in
``care.detectors``. The evaluation command builds the same monitors from the same rules.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from care.activity import ModelParams
from care.detectors import Decline, Detector, Inactivity, LongOccupancy, NotUp
from care.monitor import CareMonitor
from placewatch.kinds import Kind
from rules.durations import Duration, TimeOfDay
from rules.model import DeviceView, Rule, SubjectType

# "split": weekdays and weekends have their own baselines once 4 days of the type are known.
DayTypes = Literal["pooled", "split"]


class CareRule(Rule):
    """What every care rule shares: the resident as subject and the activity model's settings."""

    stream = False
    kinds = (Kind.HOME_ACTIVITY,)

    timezone: str = "Europe/London"  # days, hours and getting-up times are local
    every: Duration = timedelta(minutes=5)  # the tick: how often the detectors look
    offline_after: Duration = timedelta(minutes=90)  # no report at all this long: no data
    max_missing: Duration = timedelta(hours=2)  # a day missing more is not a baseline day
    window_days: int = Field(default=28, ge=3, le=90)
    warmup_days: int = Field(default=7, ge=1, le=60)
    day_start: TimeOfDay = 5 * 60  # activity from here on is getting up
    exit_grace: Duration = timedelta(minutes=2)

    @field_validator("every")
    @classmethod
    def _tick(cls, value: timedelta) -> timedelta:
        # Ticks fall on a fixed grid; dividing the hour puts one at every local hour (the
        # decline decides at 23:00).
        seconds = value.total_seconds()
        if not 60 <= seconds <= 3600 or 3600 % seconds:
            raise ValueError("must divide an hour, from 1m to 1h (e.g. 1m, 5m, 15m, 1h)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone (e.g. Europe/London)") from None
        return value

    def subject_of(self, device: DeviceView) -> tuple[SubjectType, str] | None:
        return ("resident", device.resident_id) if device.resident_id else None

    def model_params(self, tz: ZoneInfo | None = None) -> ModelParams:
        return ModelParams(
            timezone=tz or ZoneInfo(self.timezone),
            tick_s=self.every.total_seconds(),
            offline_after_s=self.offline_after.total_seconds(),
            max_missing_s=self.max_missing.total_seconds(),
            exit_grace_s=self.exit_grace.total_seconds(),
            day_start_min=self.day_start,
            window_days=self.window_days,
            keep_days=self.window_days * 2,
        )

    def detector(self) -> Detector:
        raise NotImplementedError

    def monitor(self, tz: ZoneInfo | None = None) -> CareMonitor:
        return CareMonitor(self.model_params(tz), [self.detector()])


class InactivityRule(CareRule):
    """No activity for longer than the resident's usual maximum at this time of day."""

    kind: Literal["inactivity"]
    factor: float = Field(default=1.3, ge=1, le=5)
    quantile: float = Field(default=1.0, gt=0, le=1)
    floor: Duration = timedelta(hours=1)
    warmup_limit: Duration = timedelta(hours=4)
    day_types: DayTypes = "pooled"

    def detector(self) -> Detector:
        return Inactivity(
            split_day_types=self.day_types == "split",
            factor=self.factor,
            quantile=self.quantile,
            floor_s=self.floor.total_seconds(),
            warmup_days=self.warmup_days,
            warmup_limit_s=self.warmup_limit.total_seconds(),
        )


class NotUpRule(CareRule):
    """No activity this morning later than the usual latest getting-up time plus a margin."""

    kind: Literal["not_up"]
    margin: Duration = timedelta(hours=1)
    quantile: float = Field(default=1.0, gt=0, le=1)
    warmup_latest: TimeOfDay = 10 * 60 + 30
    day_types: DayTypes = "pooled"

    def detector(self) -> Detector:
        return NotUp(
            split_day_types=self.day_types == "split",
            margin_s=self.margin.total_seconds(),
            quantile=self.quantile,
            warmup_days=self.warmup_days,
            warmup_latest_min=self.warmup_latest,
        )


class LongOccupancyRule(CareRule):
    """In bed or in the chair far longer than usual for a session started at that time."""

    kind: Literal["long_occupancy"]
    places: list[Literal["bed", "chair"]] = Field(default=["bed", "chair"], min_length=1)
    factor: float = Field(default=1.5, ge=1, le=5)
    floor: Duration = timedelta(hours=1)
    warmup_bed: Duration = timedelta(hours=12)
    warmup_chair: Duration = timedelta(hours=4)

    def detector(self) -> Detector:
        return LongOccupancy(
            places=tuple(self.places),
            factor=self.factor,
            floor_s=self.floor.total_seconds(),
            warmup_days=self.warmup_days,
            warmup_limit_s={
                "bed": self.warmup_bed.total_seconds(),
                "chair": self.warmup_chair.total_seconds(),
            },
        )


class ActivityDeclineRule(CareRule):
    """Today's active quarter-hours far below the baseline, or below it day after day."""

    kind: Literal["activity_decline"]
    alpha: float = Field(default=0.005, gt=0, lt=0.5)
    cusum_k: float = Field(default=0.5, ge=0, le=3)
    cusum_h: float = Field(default=4.0, gt=0, le=20)
    clear_days: int = Field(default=2, ge=1, le=14)
    cooldown: Duration = timedelta(days=3)

    def detector(self) -> Detector:
        return Decline(
            alpha=self.alpha,
            k=self.cusum_k,
            h=self.cusum_h,
            clear_days=self.clear_days,
            cooldown_days=round(self.cooldown.total_seconds() / 86400),
            warmup_days=self.warmup_days,
        )


CARE_KINDS = (InactivityRule, NotUpRule, LongOccupancyRule, ActivityDeclineRule)
