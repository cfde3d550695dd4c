"""Field values as devices send them: plain numbers, ``{value, unit}`` objects, strings with a
unit (``"2000 mm"``), numeric strings, booleans and state words (``"open"``, ``"trigger"``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NUMBER_WITH_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


@dataclass(frozen=True, slots=True)
class Value:
    """One source value: a number (with the unit it came with, if any), a flag, or a state."""

    number: float | None = None
    unit: str | None = None
    flag: bool | None = None
    state: str | None = None


def read(raw: Any) -> Value | None:
    """The value of a payload field, or None if it holds nothing usable (null, list, NaN)."""
    # {value, unit} objects, unwrapped in a loop (nested as deep as JSON allows, they must not
    # exhaust the stack); the outermost unit wins.
    unit: str | None = None
    while isinstance(raw, dict) and "value" in raw:
        given = raw.get("unit")
        if unit is None and isinstance(given, str) and given:
            unit = given
        raw = raw["value"]
    value = _scalar(raw)
    if unit is not None and value is not None and value.number is not None:
        return Value(number=value.number, unit=unit)
    return value


def _scalar(raw: Any) -> Value | None:
    if isinstance(raw, bool):
        return Value(flag=raw)
    if isinstance(raw, int | float):
        try:
            number = float(raw)
        except OverflowError:  # an integer beyond a float's range
            return None
        return Value(number=number) if math.isfinite(number) else None
    if isinstance(raw, str):
        m = _NUMBER_WITH_UNIT.match(raw)
        if m:
            number = float(m.group(1))
            if not math.isfinite(number):
                return None
            return Value(number=number, unit=m.group(2) or None)
        return Value(state=raw.strip())
    return None


def lookup(payload: Mapping[str, Any], path: str) -> Any:
    """``a.b.c`` inside nested objects; a key that itself contains dots (``"pm2.5"``) wins."""
    if path in payload:
        return payload[path]
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
