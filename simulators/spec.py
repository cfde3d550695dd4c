"""The scenario file's schema: a place (council, wards, sites), its device groups per kind, the
residents' routines and the scheduled events. Documented with the example in
``docs/simulators.md``; ``simulators/scenarios/borough.yaml`` uses every part.

Ranges are written ``[low, high]`` (or one number): each device draws its own value from the
range once, from its id, so a scenario always describes the same devices whatever the seed.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from rules.durations import Duration, TimeOfDay
from simulators.when import When

_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Id = Annotated[str, Field(pattern=_ID)]


def _range(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2 and value[0] <= value[1]:
        return tuple(value)
    raise ValueError("expected a number or [low, high] with low ≤ high")


Range = Annotated[tuple[float, float], BeforeValidator(_range)]
Share = Annotated[float, Field(ge=0, le=1)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- the place ------------------------------------------------------------------------------------


class ScenarioInfo(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    timezone: str = "Europe/London"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value


class Council(_Strict):
    id: Id
    name: str = Field(min_length=1)


class Ward(_Strict):
    id: Id
    name: str = ""


class Site(_Strict):
    id: Id
    ward: Id
    # Site type, also a device tag that rules select on: high-street, park, residential, river…
    type: Id
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    # Devices of the site are scattered within this radius of its centre.
    radius_m: float = Field(default=300, gt=0, le=20_000)


class TtnNetwork(_Strict):
    """A The Things Stack application: uplinks on ``v3/{application}@{tenant}/devices/…``."""

    kind: Literal["ttn"]
    id: Id
    application: Id
    tenant: Id
    cluster: str = "eu1"


class ChirpStackNetwork(_Strict):
    """A ChirpStack v4 application: uplinks on ``application/{application_id}/device/…``."""

    kind: Literal["chirpstack"]
    id: Id
    application_id: uuid.UUID
    application_name: str = "placewatch simulated devices"
    tenant_id: uuid.UUID
    tenant_name: str = "ChirpStack"


Network = Annotated[TtnNetwork | ChirpStackNetwork, Field(discriminator="kind")]
NETWORK_KINDS = ("ttn", "chirpstack")
# Names a device group's ``network`` may take besides a declared network's id.
DIRECT_NETWORKS = ("native", "senml")


# -- device groups --------------------------------------------------------------------------------


class Group(_Strict):
    group: Id
    count: int = Field(ge=1, le=100_000)
    # Devices are spread over these sites in turn.
    sites: list[Id] = Field(min_length=1)
    # A built-in vendor model (see docs/simulators.md), or none for the native fields.
    model: str | None = None
    # native, senml, or the id of a network under ``networks``.
    network: str = "native"
    every: Duration
    tags: list[Id] = Field(default_factory=list)
    id_prefix: Id | None = None
    battery_pct: Range = (60, 100)
    battery_drain_pct_per_day: Range = (0.02, 0.1)

    @field_validator("every")
    @classmethod
    def _sane_interval(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=10) <= value <= timedelta(days=1):
            raise ValueError("a reporting interval between 10s and 1d")
        return value


class Collection(_Strict):
    """Collection rounds: the bins of a group are emptied in turn across ``window`` from
    ``start`` on each of ``days``."""

    days: list[Weekday] | Literal["daily"] = "daily"
    start: TimeOfDay
    window: Duration = timedelta(hours=2)
    # What is left in a bin after emptying, % of its capacity.
    residual_pct: Range = (0, 4)

    def weekdays(self) -> set[int]:
        days = WEEKDAYS if self.days == "daily" else self.days
        return {WEEKDAYS.index(d) for d in days}


class BinGroup(Group):
    every: Duration = timedelta(hours=1)
    depth_mm: Range = (1200, 1200)
    blind_zone_mm: Range = (250, 250)
    # Share of a bin's capacity filled per weekday; weekends multiply it.
    fill_per_day: Range
    weekend_factor: float = Field(default=1.0, gt=0, le=10)
    filling_hours: tuple[TimeOfDay, TimeOfDay] = (7 * 60, 22 * 60)
    collection: Collection
    # Ultrasonic false readings (a reflection, condensation): share of readings.
    false_reading_share: Share = 0.005
    # Lid opened (the sensor on the lid tilts and measures the sky): chance per bin per day.
    lid_open_per_day: Share = 0.05
    # Whether the device also reports a temperature (a fire shows as a spike).
    temperature: bool = False

    @model_validator(mode="after")
    def _blind_zone_inside(self) -> BinGroup:
        if self.blind_zone_mm[1] >= self.depth_mm[0]:
            raise ValueError("blind_zone_mm must be less than depth_mm")
        return self


Pollutant = Literal["no2", "pm25", "pm10", "o3"]


class AirGroup(Group):
    every: Duration = timedelta(minutes=15)
    station_type: Literal["roadside", "background", "industrial"] = "background"
    pollutants: list[Pollutant] = Field(default=["no2", "pm25", "pm10", "o3"], min_length=1)
    # NO2: a background level plus what traffic adds at the rush-hour peak.
    no2_background_ugm3: Range = (12, 20)
    no2_rush_ugm3: Range = (20, 35)
    pm25_background_ugm3: Range = (5, 9)
    o3_afternoon_ugm3: Range = (20, 35)
    # Chance per station per day of a dropout of 1-6 hours (nothing sent).
    dropout_per_day: Share = 0.05


class GaugeGroup(Group):
    every: Duration = timedelta(minutes=15)
    typical_low_m: Range
    # Typical range: typical_high_m = typical_low_m + span; alert level above that.
    typical_span_m: Range
    alert_margin_m: Range = (0.3, 0.5)
    # Where the level usually sits, as a share of the typical span.
    baseline_share: Range = (0.15, 0.3)
    # Rise per mm of rain, as a share of the span, and how fast the water recedes.
    response_per_mm: Range
    recession: Duration = timedelta(hours=10)
    lag: Duration = timedelta(hours=1)
    # Height of the pressure sensor below the typical low level (EM500-SWL gauges).
    sensor_below_low_m: Range = (0.2, 0.3)


HomeSensor = Literal["motion", "door", "power", "bed", "chair"]
HOME_SENSORS: tuple[HomeSensor, ...] = ("motion", "door", "power", "bed", "chair")


class SensorSpec(_Strict):
    # motion: the uplink interval (a PIR count per uplink); the others report on change and
    # send a heartbeat this often.
    every: Duration
    model: str | None = None
    network: str | None = None  # default: the group's


def _default_sensors() -> dict[HomeSensor, SensorSpec]:
    every = {"motion": 15, "door": 60, "power": 30, "bed": 60, "chair": 60}
    return {s: SensorSpec(every=timedelta(minutes=every[s])) for s in HOME_SENSORS}


class Routine(_Strict):
    """A resident's usual day; each day varies around it."""

    wake: TimeOfDay = 7 * 60 + 15
    wake_weekend: TimeOfDay = 8 * 60
    bed: TimeOfDay = 22 * 60 + 30
    bed_weekend: TimeOfDay = 23 * 60
    # Standard deviation of wake and bed times.
    variation: Duration = timedelta(minutes=20)
    kettle: list[TimeOfDay] = Field(default=[10 * 60 + 30, 15 * 60 + 30, 19 * 60 + 30])
    lunch: TimeOfDay = 12 * 60 + 30
    dinner: TimeOfDay = 18 * 60
    # Sitting in the chair (start, end).
    chair: list[tuple[TimeOfDay, TimeOfDay]] = Field(
        default=[(13 * 60 + 30, 15 * 60), (19 * 60 + 45, 22 * 60)]
    )
    outings_per_week: float = Field(default=2.0, ge=0, le=14)
    outing_window: tuple[TimeOfDay, TimeOfDay] = (10 * 60, 15 * 60)
    outing_length: tuple[Duration, Duration] = (timedelta(hours=1), timedelta(hours=3))
    visitors_per_week: float = Field(default=2.0, ge=0, le=28)
    night_bathroom_trips: float = Field(default=1.0, ge=0, le=6)
    # Chance that the PIR sees movement in an uplink window, by what the resident is doing.
    active_share: float = Field(default=0.7, ge=0, le=1)
    chair_active_share: float = Field(default=0.3, ge=0, le=1)


class RoutineOverride(_Strict):
    wake: TimeOfDay | None = None
    wake_weekend: TimeOfDay | None = None
    bed: TimeOfDay | None = None
    bed_weekend: TimeOfDay | None = None
    outings_per_week: float | None = Field(default=None, ge=0, le=14)
    visitors_per_week: float | None = Field(default=None, ge=0, le=28)
    night_bathroom_trips: float | None = Field(default=None, ge=0, le=6)
    active_share: float | None = Field(default=None, ge=0, le=1)

    def apply(self, base: Routine) -> Routine:
        return base.model_copy(update=self.model_dump(exclude_none=True))


class HomeGroup(_Strict):
    group: Id
    count: int = Field(ge=1, le=10_000)
    sites: list[Id] = Field(min_length=1)
    network: str = "native"
    tags: list[Id] = Field(default_factory=list)
    id_prefix: Id = "home"
    resident_prefix: Id = "r"
    sensors: dict[HomeSensor, SensorSpec] = Field(default_factory=_default_sensors)
    routine: Routine = Routine()
    # Per-resident changes to the routine, by resident id (r-0007).
    residents: dict[str, RoutineOverride] = Field(default_factory=dict)
    battery_pct: Range = (70, 100)
    battery_drain_pct_per_day: Range = (0.01, 0.05)


# -- events ---------------------------------------------------------------------------------------


class _Event(_Strict):
    pass


class Storm(_Event):
    kind: Literal["storm"]
    start: When
    duration: Duration
    peak_rain_mm_h: float = Field(gt=0, le=200)
    # Wind disperses NO2 and PM while it blows.
    wind_ms: float = Field(default=15, ge=0, le=60)


class PollutionEpisode(_Event):
    """Still, cold air: PM builds up over the area (and NO2 less so)."""

    kind: Literal["pollution_episode"]
    start: When
    duration: Duration
    pm_factor: float = Field(default=4.0, ge=1, le=50)
    no2_factor: float = Field(default=1.5, ge=1, le=10)


class Fall(_Event):
    """The resident falls and cannot get up: no activity at all from then on."""

    kind: Literal["fall"]
    resident: str
    at: When


class Decline(_Event):
    """Activity falls by ``share`` (of active time), linearly over ``over`` from ``start``."""

    kind: Literal["decline"]
    resident: str
    start: When
    share: float = Field(gt=0, lt=1)
    over: Duration = timedelta(days=2)


class NotGettingUp(_Event):
    """The resident stays in bed on the morning of ``on`` until ``until`` (default: all day)."""

    kind: Literal["not_getting_up"]
    resident: str
    on: When
    until: When | None = None


class HubOutage(_Event):
    """The home's hub (or its connection) is down: none of its sensors are heard."""

    kind: Literal["hub_outage"]
    resident: str
    start: When
    duration: Duration


class BinFire(_Event):
    kind: Literal["bin_fire"]
    device: str
    start: When
    duration: Duration = timedelta(minutes=90)
    peak_c: float = Field(default=110, gt=40, le=200)


class BinKnockedOver(_Event):
    kind: Literal["bin_knocked_over"]
    device: str
    start: When
    duration: Duration = timedelta(hours=6)


class GaugeStuck(_Event):
    """A gauge keeps reporting the same level (silt, a jammed float)."""

    kind: Literal["gauge_stuck"]
    device: str
    start: When
    duration: Duration | None = None


class Dropout(_Event):
    """A device sends nothing for a while (power, radio)."""

    kind: Literal["dropout"]
    device: str
    start: When
    duration: Duration


Event = Annotated[
    Storm
    | PollutionEpisode
    | Fall
    | Decline
    | NotGettingUp
    | HubOutage
    | BinFire
    | BinKnockedOver
    | GaugeStuck
    | Dropout,
    Field(discriminator="kind"),
]
EVENT_KINDS = (
    "storm",
    "pollution_episode",
    "fall",
    "decline",
    "not_getting_up",
    "hub_outage",
    "bin_fire",
    "bin_knocked_over",
    "gauge_stuck",
    "dropout",
)


class FaultRates(_Strict):
    """Faults injected into the published stream (see ``simulators/faults.py``)."""

    malformed: Share = 0.0
    out_of_range: Share = 0.0
    duplicate: Share = 0.0
    late: Share = 0.0
    out_of_order: Share = 0.0
    clock_skew: Share = 0.0  # share of devices
    silent: Share = 0.0  # share of devices


class ScenarioFile(_Strict):
    scenario: ScenarioInfo
    council: Council
    networks: list[Network] = Field(default_factory=list)
    wards: list[Ward] = Field(min_length=1)
    sites: list[Site] = Field(min_length=1)
    bins: list[BinGroup] = Field(default_factory=list)
    air_quality: list[AirGroup] = Field(default_factory=list)
    gauges: list[GaugeGroup] = Field(default_factory=list)
    homes: list[HomeGroup] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    faults: FaultRates = FaultRates()
