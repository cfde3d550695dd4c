"""Map decoded readings onto registered devices and into table rows, one batch at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from ingest.decode import Decoded, Rejected
from ingest.mqtt import Message
from ingest.registry import DeviceInfo, DeviceKey
from placewatch.kinds import MEASUREMENT_COLUMNS, BinFill, Kind, Reading
from placewatch.rejections import Reason


@dataclass(slots=True)  # not frozen: frozen dataclasses cost more to build, one per message
class Row:
    """One reading as stored: (time, council_id, device_id, *measurements, received_at)."""

    message: Message
    kind: Kind
    values: tuple[Any, ...]
    lag: float  # seconds from the event time to receipt


def device_keys(decoded: Sequence[Decoded]) -> set[DeviceKey]:
    return {(d.address.council_id, d.address.device_id) for d in decoded}


def to_rows(
    decoded: Sequence[Decoded], devices: dict[DeviceKey, DeviceInfo]
) -> tuple[list[Row], list[Rejected]]:
    rows: list[Row] = []
    rejected: list[Rejected] = []
    received_at, received = -1.0, datetime.min
    for d in decoded:
        a = d.address
        info = devices.get((a.council_id, a.device_id))
        if info is None:
            rejected.append(
                Rejected(
                    d.message,
                    a.council_id,
                    Reason.UNKNOWN_DEVICE,
                    f"device {a.device_id!r} is not registered in council {a.council_id!r}",
                )
            )
            continue
        if info.quarantined:
            rejected.append(held_back(d.message, a.council_id, a.device_id))
            continue
        if info.kind is not a.kind:
            rejected.append(
                Rejected(
                    d.message,
                    a.council_id,
                    Reason.KIND_MISMATCH,
                    f"device {a.device_id!r} is registered as {info.kind.value}, "
                    f"not {a.kind.value}",
                )
            )
            continue
        measurements = _measurements(a.kind, d.reading, info)
        if d.message.received_at != received_at:  # messages read together share the time
            received_at = d.message.received_at
            received = datetime.fromtimestamp(received_at, UTC)
        rows.append(
            Row(
                d.message,
                a.kind,
                (d.reading.time, a.council_id, a.device_id, *measurements, received),
                d.lag,
            )
        )
    return rows, rejected


def held_back(message: Message, council_id: str, device_id: str) -> Rejected:
    """The dead letter of a reading from a quarantined device."""
    return Rejected(
        message,
        council_id,
        Reason.QUARANTINED_DEVICE,
        f"device {device_id!r} is quarantined: approve it with `placewatch devices approve`, "
        "then `placewatch replay` stores this reading",
    )


# The measurement fields of each kind's reading, in COPY order, read in one call.
_FIELDS = {
    kind: attrgetter(*(cols[1:] if kind is Kind.HOME_ACTIVITY else cols))
    for kind, cols in MEASUREMENT_COLUMNS.items()
}


def _measurements(kind: Kind, reading: Reading, info: DeviceInfo) -> tuple[Any, ...]:
    values: tuple[Any, ...] = _FIELDS[kind](reading)
    if kind is Kind.HOME_ACTIVITY:
        return (info.resident_id, *values)
    if kind is Kind.BIN_FILL:
        assert isinstance(reading, BinFill)
        if reading.fill_pct is None:
            fill = fill_from_distance(reading.distance_mm, info.properties)
            return (fill, *values[1:])
    return values


def fill_from_distance(distance_mm: float | None, properties: dict[str, Any]) -> float | None:
    """Fill % of a bin from the ultrasonic distance to its contents and the bin's depth."""
    depth = properties.get("depth_mm")
    if distance_mm is None or not isinstance(depth, int | float) or depth <= 0:
        return None
    return max(0.0, min(100.0, (depth - distance_mm) / depth * 100.0))
