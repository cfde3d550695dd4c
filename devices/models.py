"""Device models: how one product's decoded fields become a sensor kind's native fields.

A model is a YAML file (see ``docs/devices.md``)::

    id: milesight-iot/em310-udl
    kind: bin_fill
    name: Milesight EM310-UDL ultrasonic bin level sensor
    match:
      ttn: {brand_id: milesight-iot, model_id: em310-udl}
      chirpstack: {device_profile: Milesight EM310-UDL}
    defaults: {blind_zone_mm: 250}
    fields:
      fill_pct: {from: distance, unit: mm, transform: fill_from_distance}
      distance_mm: {from: distance, unit: mm}
      battery_pct: {from: battery, unit: "%"}
      tilt: {from: tilt, map: {tilt: true, normal: false}}

Built-in models ship in ``devices/models/``; ``placewatch models import FILE`` stores more in the
database, where a model with the same id overrides the built-in one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from devices.units import UnitError, conversion, field_unit, is_count
from placewatch.kinds import PAYLOAD_MODELS, Kind
from placewatch.yamlconfig import ConfigLoadError, ConfigProblem, load_yaml

log = logging.getLogger(__name__)

NATIVE = "native"  # the model of devices that send native field names (no mapping)
Transform = Literal["fill_from_distance", "level_from_distance"]
# The unit a transform's input is converted to before it runs.
TRANSFORM_INPUT: dict[str, str] = {
    "fill_from_distance": "millimeter",
    "level_from_distance": "meter",
}
# Device settings each transform reads.
TRANSFORM_SETTINGS: dict[str, tuple[str, ...]] = {
    "fill_from_distance": ("depth_mm", "blind_zone_mm"),
    "level_from_distance": ("mounting_height_m",),
}


def _setting_value(value: Any) -> float | int | str | bool:
    # One message for a wrong value, not one per member of the union, each with the member's
    # name added to the field's path ("defaults.depth_mm.float").
    if isinstance(value, float | int | str | bool):
        return value
    raise ValueError("a number, text or true/false is expected")


SettingValue = Annotated[float | int | str | bool, PlainValidator(_setting_value)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldSpec(_Strict):
    """Where one native field comes from, applied in this order: read (``from``, ``setting`` or
    ``value``) → ``map`` states → convert the unit → ``scale`` → ``cumulative`` (increase since
    the previous uplink) → ``transform`` → ``add_setting`` → ``above`` (a threshold → flag)."""

    source: str | list[str] | None = Field(default=None, alias="from", min_length=1)
    setting: str | None = None
    value: SettingValue | None = None
    unit: str | None = None
    map: dict[str, SettingValue] | None = None
    convert_to: str | None = Field(default=None, alias="as")
    scale: float | None = None
    cumulative: bool = False
    transform: Transform | None = None
    add_setting: str | None = None
    above: float | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        given = [n for n in ("source", "setting", "value") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of from, setting, value")
        return self

    def target_unit(self, field: str) -> str | None:
        """The unit a number is converted to before the later steps: the transform's input,
        else ``as``, else the native field's own."""
        if self.transform:
            return TRANSFORM_INPUT[self.transform]
        return self.convert_to or field_unit(field)

    @property
    def sources(self) -> list[str]:
        if self.source is None:
            return []
        return [self.source] if isinstance(self.source, str) else list(self.source)


class TtnMatch(_Strict):
    brand_id: str
    model_id: str


class ChirpstackMatch(_Strict):
    device_profile: str


class MatchSpec(_Strict):
    ttn: TtnMatch | None = None
    chirpstack: ChirpstackMatch | None = None
    # A device tag (ChirpStack deviceInfo.tags.model) naming this model.
    tag: str | None = None


class DeviceModel(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")
    kind: Kind
    name: str
    match: MatchSpec = MatchSpec()
    # Per-device settings used when the device's registry entry does not give them.
    defaults: dict[str, SettingValue] = {}
    fields: dict[str, FieldSpec] = Field(min_length=1)
    notes: str | None = None

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> Self:
        # Every problem, each located at its field, so a file is fixed in one pass.
        allowed = set(PAYLOAD_MODELS[self.kind].model_fields) - {"time"}
        errors: list[InitErrorDetails] = []
        for name, spec in self.fields.items():
            problem = (
                f"not a field of {self.kind.value}; fields are {', '.join(sorted(allowed))}"
                if name not in allowed
                else _unit_problem(name, spec)
            )
            if problem:
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError("model_field", problem),
                        loc=("fields", name),
                        input=spec,
                    )
                )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


def _unit_problem(name: str, spec: FieldSpec) -> str | None:
    """Why the field's unit cannot reach the field's own unit (found at load, not on the first
    uplink), or None."""
    if spec.unit is None or is_count(spec.unit):
        return None
    target = spec.target_unit(name)
    if target is None:
        return f"has no unit, so unit {spec.unit!r} cannot apply"
    try:
        conversion(spec.unit, target)
    except UnitError as exc:
        return str(exc)
    return None


MODEL_ADAPTER: TypeAdapter[DeviceModel] = TypeAdapter(DeviceModel)


def load_model_file(path: Path) -> DeviceModel:
    problems: list[ConfigProblem] = []
    # A wrong ``from`` fails both members of its union: report them at the field itself.
    loaded = load_yaml(path, MODEL_ADAPTER, problems, synthetic=("str", "list[str]"))
    if problems or loaded.value is None:
        raise ConfigLoadError(problems or [ConfigProblem(str(path), None, "", "file is empty")])
    return loaded.value


def builtin_models() -> list[DeviceModel]:
    folder = resources.files("devices") / "models"
    paths = sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml"))
    return [load_model_file(Path(str(folder / name))) for name in paths]


@dataclass(frozen=True, slots=True)
class ModelHints:
    """What an uplink says about its device's model."""

    ttn_brand: str | None = None
    ttn_model: str | None = None
    chirpstack_profile: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelCatalog:
    """Every known model by id, and the match tables network server hints are looked up in."""

    models: dict[str, DeviceModel] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, builtin: Iterable[DeviceModel], stored: Iterable[DeviceModel] = ()) -> Self:
        catalog = cls()
        for model in builtin:
            catalog.add(model, "built-in")
        for model in stored:
            catalog.add(model, "database")
        return catalog

    def add(self, model: DeviceModel, source: str) -> None:
        self.models[model.id] = model
        self.source[model.id] = source

    def get(self, model_id: str | None) -> DeviceModel | None:
        return self.models.get(model_id) if model_id else None

    def match(self, hints: ModelHints) -> DeviceModel | None:
        # A model tag is the device's own word: it wins over the network server's hints.
        tag = hints.tags.get("model")
        if tag and tag in self.models:
            return self.models[tag]
        for model in self.models.values():
            if tag and model.match.tag == tag:
                return model
        for model in self.models.values():
            m = model.match
            if m.ttn and hints.ttn_brand == m.ttn.brand_id and hints.ttn_model == m.ttn.model_id:
                return model
            if m.chirpstack and hints.chirpstack_profile == m.chirpstack.device_profile:
                return model
        return None


STORED_MODELS_SQL = "SELECT model_id, spec FROM device_models ORDER BY model_id"


def catalog_of(stored: Iterable[tuple[str, Any]], builtin: Iterable[DeviceModel]) -> ModelCatalog:
    """Built-in models overridden by the stored ``(model_id, spec)`` rows of
    ``STORED_MODELS_SQL``. A stored spec this version cannot read (it passed an older one) is
    left out and logged, so one bad row cannot stop ingest."""
    models = []
    for model_id, spec in stored:
        try:
            models.append(MODEL_ADAPTER.validate_python(spec))
        except ValidationError as exc:
            log.error("stored device model %s is invalid and ignored: %s", model_id, exc)
    return ModelCatalog.of(builtin, models)


def spec_json(model: DeviceModel) -> dict[str, Any]:
    """The model as stored in ``device_models.spec`` (the YAML's own keys)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
