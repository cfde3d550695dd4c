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
    if isinstance(raw, bool):
        return Value(flag=raw)
    if isinstance(raw, int | float):
        return Value(number=float(raw)) if math.isfinite(raw) else None
    if isinstance(raw, dict) and "value" in raw:
        inner = read(raw["value"])
        unit = raw.get("unit")
        if inner is not None and inner.number is not None and isinstance(unit, str) and unit:
            return Value(number=inner.number, unit=unit)
        return inner
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
