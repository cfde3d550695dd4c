"""The four sensor kinds: native JSON payload models and the columns they are stored in.

A native message arrives on ``{prefix}/{council}/{kind}/{device}`` with one JSON object whose
fields are those of the kind's model. Units are in the field names. Ranges are physical limits:
a value outside them is a faulty sensor, rejected with the field named.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError


class Kind(StrEnum):
    BIN_FILL = "bin_fill"
    AIR_QUALITY = "air_quality"
    FLOOD_LEVEL = "flood_level"
    HOME_ACTIVITY = "home_activity"


KINDS: tuple[Kind, ...] = tuple(Kind)


class Reading(BaseModel):
    """Fields every native reading has."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    time: AwareDatetime
    battery_pct: float | None = Field(default=None, ge=0, le=100)

    def _require_one(self, *names: str) -> None:
        for n in names:  # a plain loop: this runs for every message ingested
            if getattr(self, n) is not None:
                return
        raise PydanticCustomError(
            "missing_measurement",
            "at least one of {fields} is required",
            {"fields": ", ".join(names)},
        )


class BinFill(Reading):
    fill_pct: float | None = Field(default=None, ge=0, le=100)
    # Ultrasonic sensors report the distance to the contents; the device's depth converts it.
    distance_mm: float | None = Field(default=None, ge=0, le=10_000)
    temperature_c: float | None = Field(default=None, ge=-40, le=200)
    tilt: bool | None = None
    fire: bool | None = None

    @model_validator(mode="after")
    def _has_level(self) -> Self:
        self._require_one("fill_pct", "distance_mm")
        return self


class AirQuality(Reading):
    no2_ugm3: float | None = Field(default=None, ge=0, le=5_000)
    pm25_ugm3: float | None = Field(default=None, ge=0, le=5_000)
    pm10_ugm3: float | None = Field(default=None, ge=0, le=5_000)
    o3_ugm3: float | None = Field(default=None, ge=0, le=5_000)
    so2_ugm3: float | None = Field(default=None, ge=0, le=5_000)
    co2_ppm: float | None = Field(default=None, ge=0, le=40_000)
    temperature_c: float | None = Field(default=None, ge=-40, le=85)
    humidity_pct: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _has_measurement(self) -> Self:
        self._require_one(*AIR_MEASUREMENTS)
        return self


AIR_MEASUREMENTS = (
    "no2_ugm3",
    "pm25_ugm3",
    "pm10_ugm3",
    "o3_ugm3",
    "so2_ugm3",
    "co2_ppm",
    "temperature_c",
    "humidity_pct",
)


class FloodLevel(Reading):
    # Stage: metres above the gauge datum; negative values are possible below datum.
    level_m: float = Field(ge=-100, le=1_000)


ActivitySensor = Literal["motion", "door", "power", "bed", "chair"]


class HomeActivity(Reading):
    """One uplink of an in-home sensor. The resident comes from the device registry, never here."""

    sensor: ActivitySensor
    motion_count: int | None = Field(default=None, ge=0, le=100_000)
    door_open: bool | None = None
    power_w: float | None = Field(default=None, ge=0, le=20_000)
    occupied: bool | None = None

    @model_validator(mode="after")
    def _matches_sensor(self) -> Self:
        field = ACTIVITY_FIELD[self.sensor]
        if getattr(self, field) is None:
            raise PydanticCustomError(
                "missing_measurement",
                "a {sensor} reading needs {field}",
                {"sensor": self.sensor, "field": field},
            )
        return self


ACTIVITY_FIELD: dict[str, str] = {
    "motion": "motion_count",
    "door": "door_open",
    "power": "power_w",
    "bed": "occupied",
    "chair": "occupied",
}

PAYLOAD_MODELS: dict[Kind, type[Reading]] = {
    Kind.BIN_FILL: BinFill,
    Kind.AIR_QUALITY: AirQuality,
    Kind.FLOOD_LEVEL: FloodLevel,
    Kind.HOME_ACTIVITY: HomeActivity,
}

# Stored columns per kind after the common (time, council_id, device_id) and before received_at.
# The order is the COPY order; tests check it against the migrated tables.
MEASUREMENT_COLUMNS: dict[Kind, tuple[str, ...]] = {
    Kind.BIN_FILL: ("fill_pct", "distance_mm", "temperature_c", "tilt", "fire", "battery_pct"),
    Kind.AIR_QUALITY: (*AIR_MEASUREMENTS, "battery_pct"),
    Kind.FLOOD_LEVEL: ("level_m", "battery_pct"),
    Kind.HOME_ACTIVITY: (
        "resident_id",
        "sensor",
        "motion_count",
        "door_open",
        "power_w",
        "occupied",
        "battery_pct",
    ),
}
