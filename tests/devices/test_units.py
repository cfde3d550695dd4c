"""Units: native field units from names, the conversions device mappings need, and units from
payloads that must fail as ``UnitError`` (quickly), never as anything else."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.units import UnitError, conversion, convert, field_unit, is_count

UGM3 = "microgram / meter ** 3"


@pytest.mark.parametrize(
    ("field", "unit"),
    [
        ("no2_ugm3", UGM3),
        ("pm25_ugm3", UGM3),
        ("battery_pct", "percent"),
        ("fill_pct", "percent"),
        ("co2_ppm", "ppm"),
        ("distance_mm", "millimeter"),
        ("level_m", "meter"),
        ("temperature_c", "degree_Celsius"),
        ("power_w", "watt"),
        ("motion_count", None),
        ("tilt", None),
        ("sensor", None),
        ("door_open", None),
    ],
)
def test_field_unit_from_its_name(field: str, unit: str | None) -> None:
    assert field_unit(field) == unit


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (2116, "mm", "millimeter", 2116),
        (2116, "mm", "meter", 2.116),
        (35, "cm", "meter", 0.35),
        (1.2, "m", "millimeter", 1200),
        (2, "cm", "meter", 0.02),
        # Pressure of water above a sensor: 1 bar is 10.197 m of water.
        (1, "bar", "mH2O", 100_000 / 9_806.65),
        (0.25, "bar", "meter_H2O", 25_000 / 9_806.65),
        (1, "mWC", "bar", 0.0980665),
        (0.042, "mg/m³", UGM3, 42),
        (0.042, "mg/m3", UGM3, 42),
        (4.2e-8, "kg/m3", UGM3, 42),  # SenML's unit for concentrations
        (3.9, "µg⋅m⁻³", UGM3, 3.9),  # as Decentlab decoders write it
        (3.9, "µg/m³", UGM3, 3.9),
        (3.9, "ug/m3", UGM3, 3.9),
        (3.9, "μg/m^3", UGM3, 3.9),  # Greek mu
        (212, "°F", "degree_Celsius", 100),
        (32, "°F", "degree_Celsius", 0),
        (-40, "°F", "degree_Celsius", -40),
        (7.5, "Cel", "degree_Celsius", 7.5),
        (7.5, "°C", "degree_Celsius", 7.5),
        (7.5, "C", "degree_Celsius", 7.5),  # a C on a temperature is not a coulomb
        (7.5, "℃", "degree_Celsius", 7.5),  # U+2103
        (50, "℉", "degree_Celsius", 10),  # U+2109
        (300, "K", "degree_Celsius", 26.85),
        (81, "%RH", "percent", 81),
        (92, "%EL", "percent", 92),
        (92, "%", "percent", 92),
        (92, "percent", "percent", 92),
        (1.5, "kW", "watt", 1500),
        (2200, "W", "watt", 2200),
        (400, "ppm", "ppm", 400),
    ],
)
def test_conversions(value: float, source: str, target: str, expected: float) -> None:
    assert convert(value, source, target) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_affine_conversion_factors() -> None:
    a, b = conversion("°F", "degree_Celsius")
    assert a == pytest.approx(5 / 9) and b == pytest.approx(-160 / 9)
    assert conversion("cm", "meter") == pytest.approx((0.01, 0.0))


def test_same_unit_is_the_value_itself() -> None:
    assert convert(1.23456789, "meter", "meter") == 1.23456789


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("kg", "percent", "cannot convert 'kg' to 'percent'"),
        ("mm", "degree_Celsius", "cannot convert"),
        ("bar", "meter", "cannot convert"),  # pressure is not a length without "as: mH2O"
        ("V", "percent", "cannot convert"),
        ("furlongs per fortnight", "meter", "cannot convert"),  # a speed
        ("wibble", "meter", "unknown unit"),
        ("blah", "meter", "unknown unit"),
    ],
)
def test_units_that_cannot_convert(source: str, target: str, message: str) -> None:
    with pytest.raises(UnitError, match=message):
        conversion(source, target)


@pytest.mark.parametrize(
    "unit",
    [
        "9**9**9",  # pint would compute a 370-million-digit integer and never return
        "9**99**99",
        "m**9**9**9",
        "(9**99)**99",
        "((((9**99)**99)**99)**99)**99",
        "m**(9**9**9)",
        "10**99999999",
        "2^2^2^2^2^2",
        "1/0",
        "m**(1/0)",
        "(",
        "m)",
        "m*" * 2_000 + "m",  # recursion in pint's parser
        "m" * 100_000,
        "\x00",
        "m[",
        "__class__",
        "1e999",
    ],
)
def test_hostile_units_fail_fast_as_unit_errors(unit: str) -> None:
    started = time.perf_counter()
    with pytest.raises(UnitError):
        conversion(unit, "meter")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("unit", ["count", "Count", " counts ", "1", "/", "events", "times"])
def test_counts(unit: str) -> None:
    assert is_count(unit)


@pytest.mark.parametrize("unit", ["m", "%", "", "W"])
def test_not_counts(unit: str) -> None:
    assert not is_count(unit)


UNIT_TEXT = st.text(
    alphabet=st.sampled_from(list("0123456789.eE+-*/^() %°µμ⋅·⁻¹²³mkgsWCFKlbar_")),
    max_size=40,
)


@settings(deadline=None, max_examples=300)
@given(source=UNIT_TEXT | st.text(max_size=60), target=st.sampled_from(["meter", UGM3, "percent"]))
def test_any_text_as_a_unit_converts_or_raises_unit_error(source: str, target: str) -> None:
    try:
        a, b = conversion(source, target)
    except UnitError:
        return
    assert isinstance(a, float) and isinstance(b, float)
