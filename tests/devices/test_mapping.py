"""Device models applied to decoded payloads: value shapes, units, transforms, counters, and
errors that name the field, the value and what to fix."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devices.mapping import MappingError, to_reading
from devices.models import DeviceModel, ModelCatalog, ModelHints, builtin_models, load_model_file
from placewatch.kinds import Kind
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
