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
    # LoRaWAN DevEUI, lower-case hex: how network server uplinks find the device.
    dev_eui: str | None = None
    status: str = "active"  # or "quarantined": auto-registered, waiting for an operator


@dataclass(frozen=True)
class NetworkApplication:
    """A network server application whose uplinks belong to a council."""

    network: str  # "ttn" or "chirpstack"
    # TTN: "{application id}@{tenant id}" as in the uplink topic; ChirpStack: the application id.
    application: str
    auto_register: bool = False


def register(
    conn: psycopg.Connection[Any],
    council_id: str,
    council_name: str,
    devices: Iterable[DeviceSpec],
    applications: Iterable[NetworkApplication] = (),
) -> int:
    """Create or update a council, its devices and its network server applications, in one
    transaction (idempotent). Returns the number of devices."""
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
                d.dev_eui.lower() if d.dev_eui else None,
                d.status,
            )
            for d in devices
        ]
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO devices (council_id, device_id, kind, model, site, ward, latitude,
                                        longitude, resident_id, properties, expected_interval_s,
                                        tags, dev_eui, status)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (council_id, device_id) DO UPDATE
                   SET kind = excluded.kind, model = excluded.model, site = excluded.site,
                       ward = excluded.ward, latitude = excluded.latitude,
                       longitude = excluded.longitude, resident_id = excluded.resident_id,
                       properties = excluded.properties,
                       expected_interval_s = excluded.expected_interval_s,
                       tags = excluded.tags, dev_eui = excluded.dev_eui,
                       status = excluded.status""",
                params,
            )
            cur.executemany(
                """INSERT INTO network_applications (network, application, council_id,
                                                    auto_register)
                   VALUES (%s, %s, %s, %s)
                   ON CONFLICT (network, application) DO UPDATE
                   SET council_id = excluded.council_id,
                       auto_register = excluded.auto_register""",
                [(a.network, a.application, council_id, a.auto_register) for a in applications],
            )
    return len(params)
