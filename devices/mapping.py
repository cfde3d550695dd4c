"""Apply a device model to one uplink's decoded fields: the kind's native fields, validated.

Pure: the caller supplies the device's settings and, for cumulative counters, how much a counter
rose since the device's previous uplink. Every failure is a ``MappingError`` naming the field,
the value and the reason, so the dead letter says what to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from devices.models import DeviceModel, FieldSpec
from devices.units import UnitError, convert, field_unit, is_count
from devices.values import Value, lookup, read
from placewatch.kinds import PAYLOAD_MODELS, Kind, Reading
from placewatch.rejections import Refusal, describe, short_repr  # one wording everywhere

# (field, value now) → increase since the previous uplink.
CounterDelta = Callable[[str, float], float]


class MappingError(Refusal):
    """The device's model cannot turn the uplink into a valid reading."""


def to_reading(
    kind: Kind,
    model: DeviceModel | None,
    payload: Mapping[str, Any],
    time: datetime,
    settings: Mapping[str, Any],
    counter_delta: CounterDelta | None = None,
) -> Reading:
    """The validated native reading; ``model`` None means the payload already uses native
    field names (units converted from a ``{value, unit}`` or ``"2 m"`` when given)."""
    if model is not None and model.kind is not kind:
        raise MappingError(
            "kind_mismatch",
            f"model {model.id} makes {model.kind.value} readings; the device is {kind.value}",
        )
    fields = (
        native_fields(payload)
        if model is None
        else mapped_fields(model, payload, settings, counter_delta)
    )
    fields["time"] = time
    try:
        return PAYLOAD_MODELS[kind].model_validate(fields)
    except ValidationError as exc:
        reason, detail = describe(exc)
        where = f"model {model.id}: " if model else ""
        raise MappingError(reason, where + detail) from None


def native_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in payload.items():
        if name == "time":
            continue
        value = read(raw)
        if value is not None and value.number is not None:
            out[name] = _in_unit(name, value.number, value.unit, field_unit(name))
        else:
            out[name] = raw  # validation says what is wrong with it
    return out


def mapped_fields(
    model: DeviceModel,
    payload: Mapping[str, Any],
    settings: Mapping[str, Any],
    counter_delta: CounterDelta | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in model.fields.items():
        value = _field(model, name, spec, payload, settings, counter_delta)
        if value is not None:
            out[name] = value
    return out


def _field(
    model: DeviceModel,
    name: str,
    spec: FieldSpec,
    payload: Mapping[str, Any],
    settings: Mapping[str, Any],
    counter_delta: CounterDelta | None,
) -> Any:
    if spec.value is not None:
        return spec.value
    if spec.setting is not None:
        return setting(model, settings, spec.setting, name)
    raw_name, raw = _first_present(payload, spec.sources)
    if raw_name is None:
        return None  # the uplink does not carry it (e.g. a status frame)
    value = read(raw)
    if value is None:
        raise MappingError(
            "invalid_value", f"{raw_name}={short_repr(raw)}: not a number, flag or state"
        )
    if spec.map is not None:
        value = _mapped(raw_name, raw, value, spec.map)
    if value.number is None:
        if spec.above is not None or spec.transform or spec.cumulative or spec.scale:
            raise MappingError("invalid_value", f"{raw_name}={short_repr(raw)}: a number is needed")
        return value.flag if value.flag is not None else value.state
    number = _in_unit(raw_name, value.number, value.unit or spec.unit, spec.target_unit(name))
    if spec.scale is not None:
        number *= spec.scale
    if spec.cumulative:
        if counter_delta is None:
            raise MappingError("invalid_value", f"{raw_name}: cumulative counters need state")
        number = counter_delta(name, number)
    if spec.transform == "fill_from_distance":
        number = fill_from_distance(number, model, settings, name)
    elif spec.transform == "level_from_distance":
        number = setting_number(model, settings, "mounting_height_m", name) - number
    if spec.add_setting is not None:
        number += setting_number(model, settings, spec.add_setting, name)
    if spec.above is not None:
        return number > spec.above
    return number


def fill_from_distance(
    distance_mm: float, model: DeviceModel, settings: Mapping[str, Any], field: str
) -> float:
    """Fill % of a bin: the sensor sees ``depth_mm`` when empty and its ``blind_zone_mm`` (the
    nearest it can measure) when full."""
    depth = setting_number(model, settings, "depth_mm", field)
    blind = setting_number(model, settings, "blind_zone_mm", field, default=0.0)
    if depth <= blind:
        raise MappingError(
            "invalid_setting", f"depth_mm={depth:g} must exceed blind_zone_mm={blind:g}"
        )
    fill = (depth - distance_mm) / (depth - blind) * 100.0
    return max(0.0, min(100.0, fill))


def setting(model: DeviceModel, settings: Mapping[str, Any], key: str, field: str) -> Any:
    if key in settings:
        return settings[key]
    if key in model.defaults:
        return model.defaults[key]
    raise MappingError(
        "missing_setting",
        f"{field} needs the device setting {key!r} (model {model.id}); add it to the device's "
        "properties in the registry, then replay",
    )


def setting_number(
    model: DeviceModel,
    settings: Mapping[str, Any],
    key: str,
    field: str,
    default: float | None = None,
) -> float:
    if default is not None and key not in settings and key not in model.defaults:
        return default
    raw = setting(model, settings, key, field)
    value = read(raw)
    if value is None or value.number is None or isinstance(raw, bool):
        raise MappingError(
            "invalid_setting", f"device setting {key}={short_repr(raw)}: not a number"
        )
    # A setting's name gives its unit: "1.1 m" for depth_mm is 1100.
    return _in_unit(key, value.number, value.unit, field_unit(key))


def _first_present(payload: Mapping[str, Any], names: list[str]) -> tuple[str | None, Any]:
    for name in names:
        raw = lookup(payload, name)
        if raw is not None:
            return name, raw
    return None, None


def _mapped(name: str, raw: Any, value: Value, table: dict[str, Any]) -> Value:
    key = value.state if value.state is not None else _key(value)
    for k, v in table.items():
        if k.lower() == str(key).lower():
            return read(v) or Value(state=str(v))
    raise MappingError(
        "invalid_value",
        f"{name}={short_repr(raw)}: not one of the states {', '.join(map(repr, table))}",
    )


def _key(value: Value) -> str:
    if value.flag is not None:
        return "true" if value.flag else "false"
    number = value.number if value.number is not None else 0.0
    return f"{number:g}"


def counter_rise(previous: float | None, total: float) -> float:
    """How much a cumulative counter rose since ``previous``: the first total seen counts 0 (it
    is the device's lifetime, not one interval's); a lower total is a restart, counted whole."""
    if previous is None:
        return 0.0
    return total - previous if total >= previous else total


def _in_unit(name: str, number: float, unit: str | None, target: str | None) -> float:
    """``number`` (in ``unit``, if known) in ``target``; counts and unitless values as they are."""
    if not unit or not target or is_count(unit):
        return number
    try:
        return convert(number, unit, target)
    except UnitError as exc:
        raise MappingError("invalid_unit", f"{name}: {exc}") from None
