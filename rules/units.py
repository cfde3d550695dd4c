"""Units and number formatting for explanations, from the unit in a column's name."""

from __future__ import annotations

from datetime import UTC, datetime

_SUFFIX_UNITS = (
    ("_ugm3", " µg/m³"),
    ("_pct", " %"),
    ("_mm", " mm"),
    ("_ppm", " ppm"),
    ("_m", " m"),
    ("_c", " °C"),
    ("_w", " W"),
)


def unit_of(column: str) -> str:
    for suffix, unit in _SUFFIX_UNITS:
        if column.endswith(suffix):
            return unit
    return ""


def fmt(value: float, column: str) -> str:
    digits = 2 if unit_of(column) == " m" else 1
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return text + unit_of(column)


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def clock(epoch: float) -> str:
    """Event time as shown in summaries (UTC, ISO-like and short)."""
    return utc(epoch).strftime("%Y-%m-%d %H:%M UTC")


def iso(epoch: float) -> str:
    return utc(epoch).isoformat()
