"""Turning an alert row into what a carer reads on the acknowledge page: local times, the
explanation split into expected and observed, and who did what in words."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rules.durations import format_duration
from rules.units import fmt, unit_of

LONDON = ZoneInfo("Europe/London")

# Explanation keys that describe what was expected (a threshold, a usual range); the rest are
# what was observed. Keys vary by rule kind, so this goes by words in the key.
_EXPECTED_WORDS = ("expected", "threshold", "limit", "usual", "baseline", "typical")
# The first of these present is shown as the resident's (or device's) last activity.
_LAST_ACTIVITY_KEYS = ("last_activity_at", "last_activity", "last_event_at", "last_seen")
_LABELS = {
    "value": "Value",
    "field": "Measured",
    "direction": "Direction",
    "threshold": "Threshold",
    "clear_threshold": "Clears at",
    "since": "Since",
    "for_s": "Lasting at least",
    "limit_s": "Silent for more than",
    "last_seen": "Last heard",
    "devices": "Devices",
}
# Dropped from labels: the value carries the unit (or is a time or a duration).
_SUFFIXES = ("_at", "_s", "_ugm3", "_pct", "_mm", "_ppm", "_m", "_c", "_w")
_SEVERITY = {"critical": "Critical", "warning": "Warning", "info": "Information"}


@dataclass(frozen=True)
class Item:
    label: str
    value: str


@dataclass(frozen=True)
class AlertView:
    id: int
    summary: str
    severity: str
    severity_label: str
    subject: str
    site: str | None
    opened: str
    state: str
    last_activity: str | None
    expected: list[Item]
    observed: list[Item]


def local_time(at: datetime | None) -> str:
    """As people in the UK read it: ``Tue 4 Mar 2025, 14:05 GMT`` (BST in summer)."""
    if at is None:
        return "not known"
    t = at.astimezone(LONDON)
    return f"{t:%a} {t.day} {t:%b %Y, %H:%M} {t.tzname()}"


def when(at: datetime | None) -> str:
    """Local time and how long ago: ``Tue 4 Mar 2025, 14:05 GMT (25 min ago)``."""
    if at is None:
        return local_time(at)
    elapsed = (datetime.now(UTC) - at).total_seconds()
    return local_time(at) + (f" ({format_duration(elapsed)} ago)" if elapsed >= 60 else "")


def _as_time(value: str) -> datetime | None:
    if "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _label(key: str) -> str:
    if key in _LABELS:
        return _LABELS[key]
    for suffix in _SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
            break
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _value(key: str, value: Any) -> str:
    if value is None:
        return "not known"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if key.endswith("_s"):
            return format_duration(float(value))
        return fmt(float(value), key) if unit_of(key) or isinstance(value, float) else str(value)
    if isinstance(value, str):
        at = _as_time(value)
        return local_time(at) if at else value
    if isinstance(value, list):
        return ", ".join(_value(key, v) for v in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{_label(str(k))}: {_value(str(k), v)}" for k, v in value.items())
    return str(value)


def explain(observed: Mapping[str, Any]) -> tuple[list[Item], list[Item], str | None]:
    """(expected, observed, last activity) from an alert's ``observed`` document."""
    last_key = next((k for k in _LAST_ACTIVITY_KEYS if observed.get(k)), None)
    expected: list[Item] = []
    seen: list[Item] = []
    for key, value in observed.items():
        if key == last_key:
            continue
        item = Item(_label(key), _value(key, value))
        (expected if any(w in key for w in _EXPECTED_WORDS) else seen).append(item)
    last = None
    if last_key:
        raw = observed[last_key]
        at = _as_time(raw) if isinstance(raw, str) else None
        last = when(at) if at else _value(last_key, raw)
    return expected, seen, last


def alert_view(row: Mapping[str, Any]) -> AlertView:
    expected, seen, last = explain(row["observed"] or {})
    return AlertView(
        id=int(row["alert_id"]),
        summary=str(row["summary"]),
        severity=str(row["severity"]),
        severity_label=_SEVERITY.get(str(row["severity"]), str(row["severity"])),
        subject=f"{str(row['subject_type']).capitalize()} {row['subject_id']}",
        site=row["site"],
        opened=when(row["opened_at"]),
        state=str(row["state"]),
        last_activity=last,
        expected=expected,
        observed=seen,
    )


def describe_actor(actor: str | None, team_names: Mapping[str, str]) -> str:
    """``team:north-carers/link:msg_1`` -> ``North telecare team (from an alert link)``."""
    if not actor:
        return "someone"
    team, _, via = actor.partition("/")
    if not team.startswith("team:"):
        return actor
    name = team_names.get(team[5:], team[5:])
    if via.startswith("link:"):
        return f"{name} (from an alert link)"
    if via.startswith("key:"):
        return f"{name} (through the alerts API)"
    return name
