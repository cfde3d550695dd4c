"""Units: what a native field is measured in, and linear conversions between units.

Conversion factors come from pint (a maintained unit library that knows µg⋅m⁻³, °F, bar and
metres of water) but are computed once per unit pair and cached: the hot path multiplies and
adds, it never builds pint quantities.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

import pint

# Native field name suffix → unit (see placewatch.kinds: units are in the names).
_SUFFIX_UNITS = (
    ("_ugm3", "microgram / meter ** 3"),
    ("_pct", "percent"),
    ("_ppm", "ppm"),
    ("_mm", "millimeter"),
    ("_m", "meter"),
    ("_c", "degree_Celsius"),
    ("_w", "watt"),
)

# Spellings devices and SenML (RFC 8428 §12.1) use that pint does not read as meant.
_ALIASES = {
    "%": "percent",
    "%rh": "percent",  # SenML relative humidity
    "%el": "percent",  # SenML remaining battery
    "cel": "degree_Celsius",  # SenML
    "°c": "degree_Celsius",
    "c": "degree_Celsius",  # a "C" on a temperature is Celsius, not coulomb
    "°f": "degree_Fahrenheit",
    "℃": "degree_Celsius",  # U+2103, one character, as some decoders write it
    "℉": "degree_Fahrenheit",
    "mwc": "meter_H2O",
    "mh2o": "meter_H2O",
    "lux": "lux",
}
# Counts have no unit to convert: these mean "a number of things".
_COUNT_UNITS = {"count", "/", "1", "counts", "events", "times"}


class UnitError(ValueError):
    """A unit that is unknown or cannot be converted to the one wanted."""


def field_unit(field: str) -> str | None:
    """The unit of a native field, from its name; None for counts, flags and states."""
    for suffix, unit in _SUFFIX_UNITS:
        if field.endswith(suffix):
            return unit
    return None


def is_count(unit: str) -> bool:
    return unit.strip().lower() in _COUNT_UNITS


@lru_cache(maxsize=1024)
def conversion(source: str, target: str) -> tuple[float, float]:
    """(a, b) such that value_in_target = a * value_in_source + b."""
    registry = _registry()
    try:
        zero = registry.Quantity(0.0, _normalise(source)).to(_normalise(target)).magnitude
        one = registry.Quantity(1.0, _normalise(source)).to(_normalise(target)).magnitude
    except pint.DimensionalityError:
        raise UnitError(f"cannot convert {source!r} to {target!r}") from None
    # Units come from payloads: whatever pint's parser makes of arbitrary text (ZeroDivisionError
    # for "1/0", tokenize.TokenError for "(", RecursionError, ...) is an unknown unit.
    except Exception:
        raise UnitError(f"unknown unit {source[:_UNIT_MAX]!r}") from None
    return float(one - zero), float(zero)


def convert(value: float, source: str, target: str) -> float:
    if source == target:
        return value
    a, b = conversion(source, target)
    return a * value + b


_POWER = re.compile(r"(?<=[a-zA-Zµμ])([23])\b")


# pint evaluates the numbers in a unit: "9**9**9" would compute a 370-million-digit integer
# and never return. Payloads choose units, so only short ones are read, without parentheses,
# whose powers are small literal exponents of unit names.
_UNIT_MAX = 40
_UNSAFE = re.compile(
    r"[()]"  # grouping: "(9**99)**99"
    r"|[\d.]\s*\*\*"  # a number raised to a power: "10**9"
    r"|\*\*(?!\s*[-+]?\d{1,2}(?![\d.]|\s*\*\*))"  # a power that is not a small literal
)


def _normalise(unit: str) -> str:
    text = unit.strip()
    alias = _ALIASES.get(text.lower())
    if alias is not None:
        return alias
    # "ug/m3", "kg/m3", "m3/s": a trailing digit on a unit symbol is a power.
    text = _POWER.sub(r"**\1", text.replace("^", "**"))
    if len(text) > _UNIT_MAX or _UNSAFE.search(text):
        raise UnitError(f"unknown unit {unit[:_UNIT_MAX]!r}")
    return text


@cache
def _registry() -> pint.UnitRegistry[float]:
    return pint.UnitRegistry()
