"""Stored home readings as care events: the live worker's and the backtest's view of a home.

A door sensor is the front door when its registry properties say so (``room: front-door`` or
``front_door: true``); the others are contacts (cupboards, inner doors). Readings are read in
(time, device) order, so every reader sees the same event sequence for the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from care.events import HomeEvent, Signal
from rules.model import DeviceView

_FRONT_DOOR_ROOMS = {"front-door", "front door", "entrance"}
_SIGNAL = {
    "motion": Signal.MOTION,
    "power": Signal.APPLIANCE,
    "bed": Signal.BED,
    "chair": Signal.CHAIR,
}


def is_front_door(device: DeviceView) -> bool:
    props = device.properties
    return props.get("front_door") is True or str(props.get("room", "")) in _FRONT_DOOR_ROOMS


# A motion or front-door sensor not heard for this many expected intervals has gone silent.
SILENT_AFTER_INTERVALS = 2.0


def expected_silence(devices: dict[str, DeviceView]) -> dict[str, float]:
    """The sensors the care rules cannot do without (motion: is the resident moving; the front
    door: are they out), with the longest silence the registry's expected interval allows."""
    return {
        d.device_id: d.expected_interval_s * SILENT_AFTER_INTERVALS
        for d in devices.values()
        if d.expected_interval_s and (d.properties.get("sensor") == "motion" or is_front_door(d))
    }


def where(device: DeviceView | None, sensor: str) -> str:
    if device is None:
        return sensor
    props = device.properties
    return str(props.get("appliance") or props.get("room") or sensor).replace("-", " ")


def to_event(row: Sequence[Any], devices: dict[str, DeviceView]) -> HomeEvent:
    at, device_id, sensor, motion_count, door_open, power_w, occupied = row
    device = devices.get(device_id)
    t = at.timestamp()
    label = where(device, sensor)
    if sensor == "door":
        front = device is not None and is_front_door(device)
        signal = Signal.FRONT_DOOR if front else Signal.CONTACT
        return HomeEvent(t, device_id, signal, door_open, label)
    value = {"motion": motion_count, "power": power_w}.get(sensor, occupied)
    signal = _SIGNAL.get(sensor, Signal.REPORT)
    return HomeEvent(t, device_id, signal, value if signal is not Signal.REPORT else None, label)


async def resident_events(
    conn: AsyncConnection[Any],
    council_id: str,
    resident_id: str,
    after: datetime,
    until: datetime,
    devices: dict[str, DeviceView],
) -> list[HomeEvent]:
    """The resident's readings with ``after`` < time <= ``until``, as events."""
    cur = await conn.execute(
        """SELECT time, device_id, sensor, motion_count, door_open, power_w, occupied
           FROM home_activity
           WHERE council_id = %s AND resident_id = %s AND time > %s AND time <= %s
           ORDER BY time, device_id""",
        (council_id, resident_id, after, until),
    )
    return [to_event(r, devices) for r in await cur.fetchall()]


async def reading_span(
    conn: AsyncConnection[Any], council_id: str, resident_id: str
) -> tuple[datetime | None, datetime | None]:
    """The event times of a resident's first and latest stored readings."""
    cur = await conn.execute(
        """SELECT min(time), max(time) FROM home_activity
           WHERE council_id = %s AND resident_id = %s""",
        (council_id, resident_id),
    )
    row = await cur.fetchone()
    return (row[0], row[1]) if row else (None, None)
