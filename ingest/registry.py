"""The device registry as ingest sees it: kind, resident and settings per device, cached."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from placewatch.kinds import Kind

DeviceKey = tuple[str, str]  # (council_id, device_id)


@dataclass(slots=True, frozen=True)
class DeviceInfo:
    kind: Kind
    resident_id: str | None
    properties: dict[str, Any]
    quarantined: bool = False


@dataclass
class DeviceRegistry:
    """Known devices, refreshed after ``ttl_s`` so registry edits reach a running ingest.

    Unknown devices are looked up again on every batch they appear in (they are rare, and a
    device registered a moment ago must be accepted at once).
    """

    ttl_s: float
    _cache: dict[DeviceKey, tuple[float, DeviceInfo]] = field(default_factory=dict)

    async def resolve(
        self, conn: AsyncConnection[Any], keys: set[DeviceKey]
    ) -> dict[DeviceKey, DeviceInfo]:
        now = time.monotonic()
        found: dict[DeviceKey, DeviceInfo] = {}
        missing: list[DeviceKey] = []
        for key in keys:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.ttl_s:
                found[key] = hit[1]
            else:
                missing.append(key)
        if missing:
            cur = await conn.execute(
                """SELECT d.council_id, d.device_id, d.kind, d.resident_id, d.properties,
                          d.status = 'quarantined'
                   FROM devices d
                   JOIN unnest(%s::text[], %s::text[]) AS k(council_id, device_id)
                     USING (council_id, device_id)""",
                ([k[0] for k in missing], [k[1] for k in missing]),
            )
            for council_id, device_id, kind, resident_id, properties, held in await cur.fetchall():
                # Settings are a JSON object by contract; anything else is ignored, not trusted.
                props = properties if isinstance(properties, dict) else {}
                info = DeviceInfo(Kind(kind), resident_id, props, held)
                self._cache[(council_id, device_id)] = (now, info)
                found[(council_id, device_id)] = info
        return found
