"""Durations as people write them in rule files: ``90s``, ``15m``, ``1h30m``, ``7d``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == 0:
            return timedelta(0)
        raise ValueError("give a unit: e.g. 30s, 15m, 2h, 7d (a bare number is ambiguous)")
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 15m or 2h")
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m[1]) * _UNIT_S[m[2]]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (e.g. 30s, 15m, 1h30m, 7d)")
    return timedelta(seconds=total)


def format_duration(d: timedelta | float) -> str:
    """Short human form: 1 h 40 min, 15 min, 45 s."""
    seconds = round(d.total_seconds() if isinstance(d, timedelta) else d)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days} d" if days else "",
        f"{hours} h" if hours else "",
        f"{minutes} min" if minutes else "",
    ]
    text = " ".join(p for p in parts if p)
    return text or f"{secs} s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda d: format_duration(d), return_type=str),
]


def parse_when(text: str) -> datetime:
    """An ISO date/time (UTC unless it says otherwise), or a duration ago such as 7d."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_time_of_day(value: Any) -> int:
    """``HH:MM`` → minutes after midnight."""
    if isinstance(value, str) and (m := _HHMM.match(value.strip())):
        hours, minutes = int(m[1]), int(m[2])
        if hours < 24 and minutes < 60:
            return hours * 60 + minutes
    raise ValueError(f"{value!r} is not a time of day HH:MM (e.g. 07:30)")


TimeOfDay = Annotated[int, BeforeValidator(parse_time_of_day)]
