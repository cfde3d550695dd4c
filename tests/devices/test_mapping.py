"""Device models applied to decoded payloads: value shapes, units, transforms, counters, and
errors that name the field, the value, the setting and the model."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.mapping import CounterDelta, MappingError, to_reading
from devices.models import (
    MODEL_ADAPTER,
    DeviceModel,
    ModelCatalog,
    ModelHints,
    builtin_models,
    load_model_file,
)
from devices.values import Value, lookup, read
from ingest.uplinks import CounterKey, _Counter, _delta, _Device
from placewatch.kinds import AirQuality, BinFill, FloodLevel, HomeActivity, Kind, Reading
from placewatch.yamlconfig import ConfigLoadError
from tests.support.uplinks import decoded_examples

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def model(kind: str, **fields: dict[str, Any]) -> DeviceModel:
    return DeviceModel.model_validate(
        {"id": "test/model", "kind": kind, "name": "test", "fields": fields}
    )


def mapped(m: DeviceModel, payload: dict[str, Any], **settings: Any) -> dict[str, Any]:
    reading = to_reading(m.kind, m, payload, NOW, settings)
    return reading.model_dump(exclude_none=True, exclude={"time"})


def test_each_builtin_model_maps_its_real_example() -> None:
    catalog = ModelCatalog.of(builtin_models())
    settings: dict[str, dict[str, Any]] = {
        "bin_fill": {"depth_mm": 2500},
        "flood_level": {"sensor_datum_m": 0.5},
    }
    expected = {
        "bin_fill": {
            "fill_pct": pytest.approx(17.0667, abs=1e-3),
            "distance_mm": 2116.0,
            "tilt": True,
            "battery_pct": 92.0,
        },
        "flood_level": {"level_m": pytest.approx(0.52), "battery_pct": 92.0},
        "air_quality": {
            "pm25_ugm3": 3.9,
            "pm10_ugm3": 3.9,
            "temperature_c": pytest.approx(24.3566, abs=1e-4),
            "humidity_pct": pytest.approx(41.6322, abs=1e-4),
        },
        "home_activity": {"sensor": "motion", "motion_count": 6},
    }
    for ex in decoded_examples():
        m = catalog.match(ModelHints(ttn_brand=ex["brand_id"], ttn_model=ex["model_id"]))
        assert m is not None and m.kind.value == ex["kind"]
        assert (
            mapped(m, ex["decoded_payload"], **settings.get(ex["kind"], {})) == expected[ex["kind"]]
        )


@pytest.mark.parametrize(
    ("raw", "unit", "level_m"),
    [
        (150, "cm", 1.5),  # a plain number in the model's unit
        ({"value": 1500, "unit": "mm"}, "cm", 1.5),  # an object carries its own unit
        ("1.5 m", "cm", 1.5),  # so does a string
        ("150", "cm", 1.5),  # a numeric string takes the model's unit
        ({"displayName": "Level", "value": 59.055, "unit": "in"}, "cm", 1.5),
    ],
)
def test_value_shapes_and_units(raw: Any, unit: str, level_m: float) -> None:
    m = model("flood_level", level_m={"from": "level", "unit": unit})
    assert mapped(m, {"level": raw})["level_m"] == pytest.approx(level_m, rel=1e-4)


def test_unit_conversions_devices_use() -> None:
    air = model(
        "air_quality",
        pm25_ugm3={"from": "pm2_5", "unit": "mg/m³"},
        no2_ugm3={"from": "no2", "unit": "kg/m3"},
        temperature_c={"from": "temp", "unit": "°F"},
        humidity_pct={"from": "rh", "unit": "%RH"},
    )
    out = mapped(air, {"pm2_5": 0.012, "no2": 4e-8, "temp": 50, "rh": 80})
    assert out == pytest.approx(
        {"pm25_ugm3": 12.0, "no2_ugm3": 40.0, "temperature_c": 10.0, "humidity_pct": 80.0}
    )
    plug = model("home_activity", sensor={"value": "power"}, power_w={"from": "p", "unit": "kW"})
    assert mapped(plug, {"p": "2.4 kW"})["power_w"] == pytest.approx(2400)
    pressure = model(
        "flood_level", level_m={"from": "p", "unit": "bar", "as": "mH2O", "add_setting": "datum"}
    )
    assert mapped(pressure, {"p": 0.1}, datum=2.0)["level_m"] == pytest.approx(3.0197, abs=1e-4)


def test_distance_transforms() -> None:
    bins = model(
        "bin_fill", fill_pct={"from": "d", "unit": "cm", "transform": "fill_from_distance"}
    )
    # Empty at depth, full at the blind zone, clamped beyond either.
    for d_cm, fill in [(120, 0.0), (20, 100.0), (70, 50.0), (150, 0.0), (5, 100.0)]:
        assert mapped(bins, {"d": d_cm}, depth_mm=1200, blind_zone_mm=200)["fill_pct"] == (
            pytest.approx(fill)
        )
    gauge = model(
        "flood_level", level_m={"from": "d", "unit": "mm", "transform": "level_from_distance"}
    )
    assert mapped(gauge, {"d": 2300}, mounting_height_m=4.0)["level_m"] == pytest.approx(1.7)


def test_states_thresholds_and_constants() -> None:
    door = model(
        "home_activity",
        sensor={"value": "door"},
        door_open={"from": "door", "map": {"open": True, "close": False}},
    )
    assert mapped(door, {"door": "OPEN"})["door_open"] is True
    assert mapped(door, {"door": "close"})["door_open"] is False
    with pytest.raises(MappingError) as err:
        mapped(door, {"door": "ajar"})
    assert err.value.reason == "invalid_value" and "door='ajar'" in err.value.detail
    pir = model(
        "home_activity",
        sensor={"setting": "sensor"},
        motion_count={"from": "pir", "map": {"trigger": 1, "idle": 0}},
    )
    assert mapped(pir, {"pir": "trigger"}, sensor="motion")["motion_count"] == 1
    bed = model("home_activity", sensor={"value": "bed"}, occupied={"from": "kg", "above": 20})
    assert mapped(bed, {"kg": 64})["occupied"] is True
    assert mapped(bed, {"kg": 3})["occupied"] is False


def test_cumulative_counter_uses_the_delta_it_is_given() -> None:
    door = model(
        "home_activity",
        sensor={"value": "door"},
        door_open={"from": "times", "cumulative": True, "above": 0},
    )
    seen: list[tuple[str, float]] = []

    def delta(field: str, value: float) -> float:
        seen.append((field, value))
        return 2.0

    reading = to_reading(Kind.HOME_ACTIVITY, door, {"times": 105}, NOW, {}, delta)
    assert seen == [("door_open", 105.0)] and reading.model_dump()["door_open"] is True
    with pytest.raises(MappingError):  # a counter needs state: never silently 0
        to_reading(Kind.HOME_ACTIVITY, door, {"times": 105}, NOW, {})


def test_errors_name_what_to_fix() -> None:
    bins = {m.id: m for m in builtin_models()}["milesight-iot/em310-udl"]
    with pytest.raises(MappingError) as err:
        mapped(bins, {"distance": 900})
    assert err.value.reason == "missing_setting"
    assert "'depth_mm'" in err.value.detail and "milesight-iot/em310-udl" in err.value.detail
    with pytest.raises(MappingError) as err:
        mapped(bins, {"distance": 900}, depth_mm="deep")
    assert err.value.reason == "invalid_setting"
    with pytest.raises(MappingError) as err:
        mapped(bins, {"distance": "9 kg"}, depth_mm=1200)
    assert err.value.reason == "invalid_unit" and "distance" in err.value.detail
    with pytest.raises(MappingError) as err:
        mapped(bins, {"distance": 900, "battery": 140}, depth_mm=1200)
    assert err.value.reason == "out_of_range"
    assert "model milesight-iot/em310-udl: battery_pct=140" in err.value.detail
    with pytest.raises(MappingError) as err:
        mapped(bins, {"battery": 90})  # a status frame without a level
    assert err.value.reason == "missing_field"


def test_without_a_model_native_names_are_read_with_units() -> None:
    reading = to_reading(
        Kind.BIN_FILL, None, {"distance_mm": {"value": 0.8, "unit": "m"}, "fill_pct": "40"}, NOW, {}
    )
    assert reading.model_dump(exclude_none=True, exclude={"time"}) == {
        "distance_mm": pytest.approx(800),
        "fill_pct": 40.0,
    }
    with pytest.raises(MappingError) as err:
        to_reading(Kind.BIN_FILL, None, {"distance": 800}, NOW, {})
    assert err.value.reason == "unknown_field"


def test_model_file_problems_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "id: Vendor/Bad\n"
        "kind: home_activity\n"
        "name: bad\n"
        "fields:\n"
        "  sensor: {value: door, from: x}\n"
        "  door_opened: {from: d}\n"
        "  battery_pct: {from: b, unit: kg}\n"
    )
    with pytest.raises(ConfigLoadError) as err:
        load_model_file(path)
    text = str(err.value)
    assert f"{path}:1: id: String should match pattern" in text
    assert f"{path}:5: fields.sensor: give exactly one of from, setting, value" in text
    # The field names are checked once the kind is known, each at its own line.
    path.write_text(
        "id: vendor/bad\nkind: home_activity\nname: bad\nfields:\n"
        "  door_opened: {from: d}\n  battery_pct: {from: b, unit: kg}\n"
    )
    with pytest.raises(ConfigLoadError) as err:
        load_model_file(path)
    text = str(err.value)
    assert f"{path}:5: fields.door_opened: not a field of home_activity" in text
    assert f"{path}:6: fields.battery_pct: cannot convert 'kg' to 'percent'" in text


def test_catalog_matches_by_registry_hints_and_tags() -> None:
    catalog = ModelCatalog.of(builtin_models())
    assert catalog.match(ModelHints(chirpstack_profile="Milesight EM500-SWL")) is catalog.get(
        "milesight-iot/em500-swl"
    )
    assert catalog.match(ModelHints(tags={"model": "elsys/ers"})) is catalog.get("elsys/ers")
    assert catalog.match(ModelHints(ttn_brand="elsys", ttn_model="other")) is None


# --- more cases -------------------------------------------------------------------------------

T = datetime(2025, 4, 16, 11, 54, 13, 697237, UTC)
CATALOG = ModelCatalog.of(builtin_models())
EM310 = CATALOG.models["milesight-iot/em310-udl"]
EM500 = CATALOG.models["milesight-iot/em500-swl"]
DLPM = CATALOG.models["decentlab/dl-pm"]
ERS = CATALOG.models["elsys/ers"]


def make_model(kind: str, fields: dict[str, Any], **extra: Any) -> DeviceModel:
    return MODEL_ADAPTER.validate_python(
        {"id": "test/model", "kind": kind, "name": "test", "fields": fields, **extra}
    )


def reading(
    m: DeviceModel | None,
    payload: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    kind: Kind | None = None,
    delta: CounterDelta | None = None,
) -> Reading:
    k = kind or (m.kind if m else None)
    assert k is not None
    return to_reading(k, m, payload, T, settings or {}, delta)


def refused(
    m: DeviceModel | None,
    payload: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    kind: Kind | None = None,
) -> MappingError:
    with pytest.raises(MappingError) as info:
        reading(m, payload, settings, kind)
    return info.value


# --- values as devices send them -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (92, Value(number=92.0)),
        (-2.5, Value(number=-2.5)),
        (True, Value(flag=True)),
        (False, Value(flag=False)),
        ("2000 mm", Value(number=2000.0, unit="mm")),
        ("2000mm", Value(number=2000.0, unit="mm")),
        (" -1.5e2 cm ", Value(number=-150.0, unit="cm")),
        ("42", Value(number=42.0)),
        ("+.5", Value(number=0.5)),
        ("3.9 µg⋅m⁻³", Value(number=3.9, unit="µg⋅m⁻³")),
        ("open", Value(state="open")),
        (" Trigger ", Value(state="Trigger")),
        ("", Value(state="")),
        ({"value": 3.9, "unit": "µg⋅m⁻³", "displayName": "PM2.5"}, Value(3.9, "µg⋅m⁻³")),
        ({"value": 92}, Value(number=92.0)),
        ({"value": "20 cm"}, Value(number=20.0, unit="cm")),
        ({"value": "20 cm", "unit": "m"}, Value(number=20.0, unit="m")),  # the object's unit
        ({"value": 5, "unit": ""}, Value(number=5.0)),
        ({"value": 5, "unit": 3}, Value(number=5.0)),
        ({"value": True, "unit": "m"}, Value(flag=True)),
        ({"value": "open", "unit": "m"}, Value(state="open")),
        ({"value": {"value": 7, "unit": "cm"}, "unit": "mm"}, Value(number=7.0, unit="mm")),
        ({"value": {"value": 7, "unit": "cm"}}, Value(number=7.0, unit="cm")),
        (None, None),
        ([1, 2], None),
        ({"v": 1}, None),
        ({"value": None}, None),
        (float("nan"), None),
        (float("inf"), None),
        ("1e999 m", None),
        pytest.param(10**400, None, id="int-beyond-a-float"),
    ],
)
def test_read(raw: Any, value: Value | None) -> None:
    assert read(raw) == value


def test_read_unwraps_value_objects_nested_deeper_than_the_stack() -> None:
    raw: Any = 7
    for _ in range(10_000):
        raw = {"value": raw, "unit": "cm"}
    assert read(raw) == Value(number=7.0, unit="cm")


def test_lookup_nested_paths_and_dotted_keys() -> None:
    payload = {"pm2.5": 3, "pm2": {"5": 4}, "air": {"temperature": {"value": 5}}, "x": [1]}
    assert lookup(payload, "pm2.5") == 3  # a key that contains the dots wins
    assert lookup(payload, "air.temperature.value") == 5
    assert lookup(payload, "air.temperature") == {"value": 5}
    assert lookup(payload, "air.humidity") is None
    assert lookup(payload, "x.0") is None
    assert lookup(payload, "missing") is None


# --- the four built-in models -----------------------------------------------------------------


def test_bin_fill_from_distance_depth_and_blind_zone() -> None:
    r = reading(EM310, {"battery": 92, "distance": 2116, "tilt": "tilt"}, {"depth_mm": 2500})
    assert isinstance(r, BinFill)
    assert r.fill_pct == pytest.approx((2500 - 2116) / (2500 - 250) * 100)  # default blind zone
    assert (r.distance_mm, r.battery_pct, r.tilt, r.time) == (2116, 92, True, T)
    r = reading(EM310, {"distance": 1000}, {"depth_mm": 1250, "blind_zone_mm": 0})
    assert isinstance(r, BinFill) and r.fill_pct == pytest.approx(20.0)


@pytest.mark.parametrize(
    "distance", [2000, 2000.0, "2000", "2000 mm", "200 cm", "2 m", {"value": 2, "unit": "m"}]
)
def test_distance_in_every_shape(distance: Any) -> None:
    r = reading(EM310, {"distance": distance}, {"depth_mm": 2500})
    assert isinstance(r, BinFill)
    assert r.distance_mm == pytest.approx(2000)
    assert r.fill_pct == pytest.approx(500 / 2250 * 100)


def test_fill_is_clamped_between_empty_and_full() -> None:
    # Nearer than the blind zone (a full bin, or a bag over the sensor): 100, not 110.
    over = reading(EM310, {"distance": 25}, {"depth_mm": 2500})
    assert isinstance(over, BinFill) and over.fill_pct == 100.0 and over.distance_mm == 25
    # Beyond the depth (the sensor sees through a hole): 0, not negative.
    under = reading(EM310, {"distance": 2600}, {"depth_mm": 2500})
    assert isinstance(under, BinFill) and under.fill_pct == 0.0


def test_negative_distance_is_rejected_with_the_field_named() -> None:
    e = refused(EM310, {"distance": -5}, {"depth_mm": 2500})
    assert e.reason == "out_of_range"
    assert "distance_mm=-5.0" in e.detail and EM310.id in e.detail


def test_missing_setting_names_the_setting_and_the_model() -> None:
    e = refused(EM310, {"distance": 2116})
    assert e.reason == "missing_setting"
    assert "'depth_mm'" in e.detail and "milesight-iot/em310-udl" in e.detail
    assert e.detail.startswith("fill_pct needs")


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"depth_mm": 200}, "invalid_setting"),  # not deeper than the blind zone
        ({"depth_mm": 250}, "invalid_setting"),
        ({"depth_mm": "deep"}, "invalid_setting"),
        ({"depth_mm": True}, "invalid_setting"),
        ({"depth_mm": None}, "invalid_setting"),
        ({"depth_mm": 2500, "blind_zone_mm": "x"}, "invalid_setting"),
    ],
)
def test_invalid_settings(settings: dict[str, Any], reason: str) -> None:
    e = refused(EM310, {"distance": 2116}, settings)
    assert e.reason == reason
    assert "depth_mm" in e.detail or "blind_zone_mm" in e.detail


def test_settings_as_text_from_tags() -> None:
    r = reading(EM310, {"distance": 1000}, {"depth_mm": "1250", "blind_zone_mm": "0"})
    assert isinstance(r, BinFill) and r.fill_pct == pytest.approx(20.0)


def test_settings_with_units_are_converted_to_the_settings_unit() -> None:
    # A ChirpStack tag "depth_mm: 1.25 m" is 1250 mm, not 1.25.
    r = reading(EM310, {"distance": 1000}, {"depth_mm": "1.25 m", "blind_zone_mm": "0 mm"})
    assert isinstance(r, BinFill) and r.fill_pct == pytest.approx(20.0)
    e = refused(EM310, {"distance": 1000}, {"depth_mm": "1.25 kg"})
    assert e.reason == "invalid_unit" and "depth_mm" in e.detail


@pytest.mark.parametrize(("tilt", "flag"), [("tilt", True), ("normal", False), ("TILT", True)])
def test_states_map_case_insensitively(tilt: str, flag: bool) -> None:
    r = reading(EM310, {"distance": 1000, "tilt": tilt}, {"depth_mm": 2500})
    assert isinstance(r, BinFill) and r.tilt is flag


def test_a_state_outside_the_map_is_rejected() -> None:
    e = refused(EM310, {"distance": 1000, "tilt": "sideways"}, {"depth_mm": 2500})
    assert e.reason == "invalid_value"
    assert e.detail == "tilt='sideways': not one of the states 'tilt', 'normal'"


def test_flood_level_cm_plus_the_sensor_datum() -> None:
    r = reading(EM500, {"battery": 92, "level": 2})
    assert isinstance(r, FloodLevel) and r.level_m == pytest.approx(0.02)  # datum default 0
    r = reading(EM500, {"level": 35}, {"sensor_datum_m": 1.25})
    assert isinstance(r, FloodLevel) and r.level_m == pytest.approx(1.6)
    r = reading(EM500, {"level": {"value": 0.35, "unit": "m"}}, {"sensor_datum_m": "125 cm"})
    assert isinstance(r, FloodLevel) and r.level_m == pytest.approx(1.6)


def test_air_quality_value_objects() -> None:
    payload = {
        "pm2_5_mass_concentration": {"unit": "µg⋅m⁻³", "value": 3.9},
        "pm10_mass_concentration": {"unit": "mg/m³", "value": 0.012},
        "air_temperature": {"unit": "°F", "value": 50},
        "air_humidity": {"unit": "%", "value": 41.6},
    }
    r = reading(DLPM, payload)
    assert isinstance(r, AirQuality)
    assert r.pm25_ugm3 == pytest.approx(3.9)
    assert r.pm10_ugm3 == pytest.approx(12.0)
    assert r.temperature_c == pytest.approx(10.0)
    assert r.humidity_pct == pytest.approx(41.6)
    assert r.no2_ugm3 is None


def test_alternative_source_names() -> None:
    r = reading(DLPM, {"pm2.5": 7, "pm10": "11 ug/m3"})
    assert isinstance(r, AirQuality) and (r.pm25_ugm3, r.pm10_ugm3) == (7, 11)
    r = reading(DLPM, {"pm2_5": 8})
    assert isinstance(r, AirQuality) and r.pm25_ugm3 == 8


def test_negative_pm_is_rejected_with_the_field_named() -> None:
    e = refused(DLPM, {"pm2_5_mass_concentration": {"unit": "µg⋅m⁻³", "value": -3}})
    assert e.reason == "out_of_range"
    assert "pm25_ugm3=-3.0: Input should be greater than or equal to 0" in e.detail


def test_a_unit_that_cannot_convert_names_the_field() -> None:
    e = refused(DLPM, {"pm2_5_mass_concentration": {"unit": "kg", "value": 3}})
    assert e.reason == "invalid_unit"
    assert e.detail == "pm2_5_mass_concentration: cannot convert 'kg' to 'microgram / meter ** 3'"
    e = refused(EM310, {"distance": "5 9**9**9"}, {"depth_mm": 2500})  # must not hang
    assert e.reason == "invalid_unit" and e.detail.startswith("distance: unknown unit")


def test_motion_count_from_the_elsys_ers() -> None:
    r = reading(ERS, {"temperature": 22.6, "humidity": 41, "light": 39, "motion": 6})
    assert isinstance(r, HomeActivity) and (r.sensor, r.motion_count) == ("motion", 6)
    e = refused(ERS, {"motion": 2.5})
    assert e.reason == "invalid_value" and "motion_count=2.5" in e.detail


def test_nothing_to_measure_is_a_missing_field() -> None:
    e = refused(EM310, {"battery": 92}, {"depth_mm": 2500})  # a status frame
    assert e.reason == "missing_field" and "fill_pct, distance_mm" in e.detail
    e = refused(ERS, {"temperature": 22.6})
    assert e.reason == "missing_field" and "a motion reading needs motion_count" in e.detail


def test_a_value_that_is_nothing_usable_is_rejected_with_the_field() -> None:
    e = refused(EM310, {"distance": [2116]}, {"depth_mm": 2500})
    assert e.reason == "invalid_value" and e.detail.startswith("distance=[2116]")
    e = refused(EM310, {"distance": "far"}, {"depth_mm": 2500})
    assert e.reason == "invalid_value" and e.detail == "distance='far': a number is needed"


def test_a_huge_value_is_not_copied_whole_into_the_detail() -> None:
    e = refused(EM310, {"distance": list(range(100_000))}, {"depth_mm": 2500})
    assert e.reason == "invalid_value" and len(e.detail) <= 1_000


def test_the_model_must_make_the_devices_kind() -> None:
    e = refused(EM310, {"distance": 1}, {"depth_mm": 2500}, kind=Kind.FLOOD_LEVEL)
    assert e.reason == "kind_mismatch"
    assert "milesight-iot/em310-udl makes bin_fill readings; the device is flood_level" in e.detail


# --- transforms and options -----------------------------------------------------------------


def test_level_from_distance_and_mounting_height() -> None:
    m = make_model(
        "flood_level",
        {"level_m": {"from": "distance", "unit": "mm", "transform": "level_from_distance"}},
    )
    r = reading(m, {"distance": 1200}, {"mounting_height_m": 3.2})
    assert isinstance(r, FloodLevel) and r.level_m == pytest.approx(2.0)
    r = reading(m, {"distance": "320 cm"}, {"mounting_height_m": "3.2"})
    assert isinstance(r, FloodLevel) and r.level_m == pytest.approx(0.0)
    e = refused(m, {"distance": 1200})
    assert e.reason == "missing_setting"
    assert "'mounting_height_m'" in e.detail and "test/model" in e.detail


def test_bar_to_metres_of_water_plus_datum() -> None:
    m = make_model(
        "flood_level",
        {
            "level_m": {
                "from": "pressure",
                "unit": "bar",
                "as": "mH2O",
                "add_setting": "sensor_datum_m",
            }
        },
    )
    r = reading(m, {"pressure": 0.25}, {"sensor_datum_m": 10})
    assert isinstance(r, FloodLevel) and r.level_m == pytest.approx(10 + 25_000 / 9_806.65)
    r = reading(m, {"pressure": "250 mbar"}, {"sensor_datum_m": 0})  # the payload's unit wins
    assert isinstance(r, FloodLevel) and r.level_m == pytest.approx(25_000 / 9_806.65)
    e = refused(m, {"pressure": 0.25})
    assert e.reason == "missing_setting" and "'sensor_datum_m'" in e.detail


def test_door_and_pir_states() -> None:
    door = make_model(
        "home_activity",
        {
            "sensor": {"value": "door"},
            "door_open": {"from": "door", "map": {"open": True, "closed": False}},
        },
    )
    for state, is_open in (("open", True), ("OPEN", True), ("Closed", False)):
        r = reading(door, {"door": state})
        assert isinstance(r, HomeActivity) and (r.sensor, r.door_open) == ("door", is_open)
    e = refused(door, {"door": "ajar"})
    assert e.reason == "invalid_value"
    assert e.detail == "door='ajar': not one of the states 'open', 'closed'"
    pir = make_model(
        "home_activity",
        {
            "sensor": {"value": "motion"},
            "motion_count": {"from": "pir", "map": {"trigger": 1, "idle": 0}},
        },
    )
    r = reading(pir, {"pir": "trigger"})
    assert isinstance(r, HomeActivity) and r.motion_count == 1
    r = reading(pir, {"pir": "Idle"})
    assert isinstance(r, HomeActivity) and r.motion_count == 0


def test_numbers_and_flags_map_as_states_too() -> None:
    m = make_model(
        "home_activity",
        {
            "sensor": {"value": "bed"},
            "occupied": {"from": "s", "map": {"1": True, "0": False, "true": True}},
        },
    )
    for raw, occupied in ((1, True), (0.0, False), ("1", True), (True, True)):
        r = reading(m, {"s": raw})
        assert isinstance(r, HomeActivity) and r.occupied is occupied


def test_plug_power_above_a_threshold_is_appliance_use() -> None:
    m = make_model(
        "home_activity",
        {
            "sensor": {"value": "chair"},
            "occupied": {"from": "power", "unit": "kW", "as": "W", "above": 50},
        },
    )
    for power, used in ((0.06, True), (0.05, False), ("40 W", False), ("2 kW", True)):
        r = reading(m, {"power": power})
        assert isinstance(r, HomeActivity) and r.occupied is used, power
    kettle = make_model(
        "home_activity", {"sensor": {"value": "power"}, "power_w": {"from": "power", "unit": "kW"}}
    )
    r = reading(kettle, {"power": 2.2})
    assert isinstance(r, HomeActivity) and r.power_w == pytest.approx(2200)
    e = refused(m, {"power": "on"})
    assert e.reason == "invalid_value" and e.detail == "power='on': a number is needed"


def test_scale() -> None:
    m = make_model(
        "bin_fill", {"distance_mm": {"from": "d", "scale": 10}}
    )  # a decoder in cm, no unit
    r = reading(m, {"d": 211.6})
    assert isinstance(r, BinFill) and r.distance_mm == pytest.approx(2116)
    m = make_model("bin_fill", {"distance_mm": {"from": "d", "unit": "cm", "scale": 0.5}})
    r = reading(m, {"d": 10})
    assert isinstance(r, BinFill) and r.distance_mm == pytest.approx(50)  # converted, then scaled


def test_value_and_setting_sources() -> None:
    m = make_model(
        "home_activity",
        {
            "sensor": {"setting": "sensor"},
            "motion_count": {"from": "n"},
            "battery_pct": {"value": 100},
        },
    )
    r = reading(m, {"n": 2}, {"sensor": "motion"})
    assert isinstance(r, HomeActivity) and (r.sensor, r.motion_count, r.battery_pct) == (
        "motion",
        2,
        100,
    )
    e = refused(m, {"n": 2})
    assert e.reason == "missing_setting" and "sensor needs the device setting 'sensor'" in e.detail


def test_model_defaults_yield_to_device_settings() -> None:
    m = make_model(
        "flood_level", {"level_m": {"setting": "fixed_level_m"}}, defaults={"fixed_level_m": 1}
    )
    assert reading(m, {}).model_dump()["level_m"] == 1
    assert reading(m, {}, {"fixed_level_m": 2}).model_dump()["level_m"] == 2


def test_absent_or_null_sources_are_left_out() -> None:
    r = reading(EM310, {"distance": 1000, "battery": None}, {"depth_mm": 2500})
    assert isinstance(r, BinFill) and r.battery_pct is None and r.tilt is None


def test_numbers_needed_by_transforms() -> None:
    e = refused(EM310, {"distance": True}, {"depth_mm": 2500})
    assert e.reason == "invalid_value" and e.detail == "distance=True: a number is needed"


# --- cumulative counters --------------------------------------------------------------------

DOOR = make_model(
    "home_activity",
    {
        "sensor": {"value": "door"},
        "door_open": {"from": "DOOR_OPEN_TIMES", "cumulative": True, "above": 0},
    },
)
MOTION = make_model(
    "home_activity",
    {"sensor": {"value": "motion"}, "motion_count": {"from": "count", "cumulative": True}},
)


def test_cumulative_counts_become_increases() -> None:
    # The ingest's own delta function: first value → 0, rises, resets, late values → 0.
    counters: dict[CounterKey, _Counter | None] = {}
    device = _Device("sutton", "door-1", Kind.HOME_ACTIVITY, MOTION.id, {}, "active")
    steps = [
        (0, 100, 0),  # the first total is the device's lifetime, not this interval's
        (10, 103, 3),
        (20, 103, 0),
        (30, 110, 7),
        (40, 2, 2),  # below the previous: the device restarted its count
        (25, 999, 0),  # late: the uplink after it already counted the increase
        (40, 50, 0),  # a repeat of the same time
        (50, 5, 3),
    ]
    for minute, total, increase in steps:
        at = T + timedelta(minutes=minute)
        r = to_reading(
            Kind.HOME_ACTIVITY, MOTION, {"count": total}, at, {}, _delta(counters, device, at, [])
        )
        assert isinstance(r, HomeActivity) and r.motion_count == increase, (minute, total)
    counter = counters[("sutton", "door-1", "motion_count")]
    assert counter is not None and (counter.value, counter.time) == (5, T + timedelta(minutes=50))


def test_door_opened_since_the_last_uplink() -> None:
    counters: dict[CounterKey, _Counter | None] = {}
    device = _Device("sutton", "front-door", Kind.HOME_ACTIVITY, DOOR.id, {}, "active")
    opened = []
    for i, total in enumerate([100, 100, 101, 104, 104, 2]):
        at = T + timedelta(minutes=10 * i)
        r = to_reading(
            Kind.HOME_ACTIVITY,
            DOOR,
            {"DOOR_OPEN_TIMES": total},
            at,
            {},
            _delta(counters, device, at, []),
        )
        assert isinstance(r, HomeActivity)
        opened.append(r.door_open)
    assert opened == [False, False, True, True, False, True]


def test_cumulative_without_counter_state_is_refused() -> None:
    e = refused(MOTION, {"count": 5})
    assert e.reason == "invalid_value" and "cumulative" in e.detail


# --- devices that send native field names (no model) --------------------------------------------


def test_native_fields_with_units() -> None:
    r = reading(None, {"level_m": "35 cm", "battery_pct": "92"}, kind=Kind.FLOOD_LEVEL)
    assert isinstance(r, FloodLevel) and r.level_m == pytest.approx(0.35) and r.battery_pct == 92
    r = reading(None, {"level_m": {"value": 350, "unit": "mm"}}, kind=Kind.FLOOD_LEVEL)
    assert isinstance(r, FloodLevel) and r.level_m == pytest.approx(0.35)
    r = reading(
        None,
        {
            "no2_ugm3": {"value": 4.2e-8, "unit": "kg/m3"},
            "temperature_c": {"value": 7.5, "unit": "Cel"},
        },
        kind=Kind.AIR_QUALITY,
    )
    assert isinstance(r, AirQuality) and r.no2_ugm3 == pytest.approx(42) and r.temperature_c == 7.5
    r = reading(None, {"fill_pct": 50, "distance_mm": "1.2 m", "tilt": False}, kind=Kind.BIN_FILL)
    assert isinstance(r, BinFill) and (r.fill_pct, r.distance_mm, r.tilt) == (50, 1200, False)


def test_native_time_is_the_uplinks() -> None:
    r = reading(None, {"level_m": 1, "time": "1970-01-01T00:00:00Z"}, kind=Kind.FLOOD_LEVEL)
    assert r.time == T


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [
        ({"level_m": "3 kg"}, "invalid_unit", "level_m: cannot convert 'kg' to 'meter'"),
        ({"level_m": 1, "lvl": 2}, "unknown_field", "lvl=2.0: Extra inputs are not permitted"),
        ({"level_m": 2_000}, "out_of_range", "level_m=2000.0: Input should be less than"),
        ({"level_m": "high"}, "invalid_value", "level_m='high': Input should be a valid number"),
        ({"battery_pct": 50}, "missing_field", "level_m: Field required"),
    ],
)
def test_native_fields_rejected_with_the_field_named(
    payload: dict[str, Any], reason: str, detail: str
) -> None:
    e = refused(None, payload, kind=Kind.FLOOD_LEVEL)
    assert e.reason == reason
    assert e.detail.startswith(detail), e.detail


def test_native_fill_over_100_is_rejected_not_clamped() -> None:
    # Only a fill computed from a distance is clamped; a device that says 140 % is faulty.
    e = refused(None, {"fill_pct": 140}, kind=Kind.BIN_FILL)
    assert e.reason == "out_of_range" and e.detail.startswith("fill_pct=140.0")


def _deepest_json_list() -> Any:
    """The most deeply nested list Python's JSON parser returns here (it stops at the stack)."""
    lo, hi = 1, 100_000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            json.loads("[" * mid + "]" * mid)
            lo = mid
        except RecursionError:
            hi = mid - 1
    return json.loads("[" * lo + "]" * lo)


def _deeper(frames: int, call: Callable[[], Any]) -> Any:
    return _deeper(frames - 1, call) if frames else call()


@pytest.mark.parametrize(
    ("m", "field"),
    [(None, "level_m"), (EM500, "level"), (EM500, "level.value")],
)
def test_values_nested_as_deep_as_json_allows_are_refused(
    m: DeviceModel | None, field: str
) -> None:
    # Adapters parse with Python's json; ingest maps further down the stack (inside asyncio), so
    # writing such a value into a detail must not exhaust the stack: a MappingError, nothing else.
    deep = _deepest_json_list()
    payload = {field.split(".")[0]: {"value": deep} if "." in field else deep}
    with pytest.raises(MappingError) as info:
        _deeper(60, lambda: to_reading(Kind.FLOOD_LEVEL, m, payload, T, {}))
    assert info.value.reason == "invalid_value" and len(info.value.detail) < 300
