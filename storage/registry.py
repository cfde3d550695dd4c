"""Writing to the device registry (councils and devices)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from placewatch.kinds import Kind


@dataclass(frozen=True)
class DeviceSpec:
    council_id: str
    device_id: str
    kind: Kind
    model: str | None = None
    site: str | None = None
    ward: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    resident_id: str | None = None
    expected_interval_s: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    # Free labels that rules can select on (e.g. "high-street", "care-pilot").
    tags: tuple[str, ...] = ()


def register(
    conn: psycopg.Connection[Any], council_id: str, council_name: str, devices: Iterable[DeviceSpec]
) -> int:
    """Create or update a council and its devices (idempotent). Returns the number of devices."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO councils (council_id, name) VALUES (%s, %s)"
            " ON CONFLICT (council_id) DO UPDATE SET name = excluded.name",
            (council_id, council_name),
        )
        params = [
            (
                d.council_id,
                d.device_id,
                d.kind.value,
                d.model,
                d.site,
                d.ward,
                d.latitude,
                d.longitude,
                d.resident_id,
                Jsonb(d.properties),
                d.expected_interval_s,
                list(d.tags),
            )
            for d in devices
        ]
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO devices (council_id, device_id, kind, model, site, ward, latitude,
                                        longitude, resident_id, properties, expected_interval_s,
                                        tags)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (council_id, device_id) DO UPDATE
                   SET kind = excluded.kind, model = excluded.model, site = excluded.site,
                       ward = excluded.ward, latitude = excluded.latitude,
                       longitude = excluded.longitude, resident_id = excluded.resident_id,
                       properties = excluded.properties,
                       expected_interval_s = excluded.expected_interval_s,
                       tags = excluded.tags""",
                params,
            )
    return len(params)
