"""Network server and SenML uplinks → registered devices → native readings, inside the batch's
transaction.

For each uplink: find the device (by DevEUI, else by the network server's device id in the
council the application belongs to), its model (the registry's, else the one the uplink's model
hints match, else none: native field names), its settings (registry properties, then network
server tags, then the model's defaults), and map the fields (``devices.mapping``). Cumulative
counters are turned into increases against ``device_counters``, locked and updated in the same
transaction as the readings, so replicas and redeliveries never count an increase twice.

Unknown devices are dead-lettered as ``unknown_device``. If the application allows it, a device
whose model the uplink names is registered in quarantine (``quarantined_device``) for an
operator to approve; ``placewatch replay`` then stores what was held back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from devices.mapping import CounterDelta, MappingError, counter_rise, to_reading
from devices.models import (
    STORED_MODELS_SQL,
    DeviceModel,
    ModelCatalog,
    builtin_models,
    catalog_of,
)
from ingest.batch import held_back
from ingest.decode import Address, Decoded, Pending, Rejected, event_lag
from placewatch.kinds import Kind
from placewatch.rejections import Reason

_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
CounterKey = tuple[str, str, str]  # council, device, field


@dataclass(frozen=True, slots=True)
class _Device:
    council_id: str
    device_id: str
    kind: Kind
    model: str | None
    properties: dict[str, Any]
    status: str


@dataclass
class _Counter:
    time: datetime
    value: float
    changed: bool = False


@dataclass
class UplinkResolver:
    """Per ingest process; models and applications are re-read after ``ttl_s``."""

    ttl_s: float
    _builtin: list[DeviceModel] = field(default_factory=builtin_models)
    _catalog: ModelCatalog | None = None
    _applications: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    _loaded_at: float = float("-inf")

    async def resolve(
        self, conn: AsyncConnection[Any], pending: Sequence[Pending]
    ) -> tuple[list[Decoded], list[Rejected]]:
        """Call inside the batch's transaction: counters are locked until it ends."""
        await self._refresh(conn)
        assert self._catalog is not None
        devices = await self._devices(conn, pending)
        decoded: list[Decoded] = []
        rejected: list[Rejected] = []
        found: list[tuple[Pending, _Device, DeviceModel | None]] = []
        seen: set[str] = set()
        for p in pending:
            if p.uplink.dedupe_key in seen:
                continue  # the same uplink twice in one batch: stored once
            seen.add(p.uplink.dedupe_key)
            outcome = await self._device_for(conn, p, devices)
            if isinstance(outcome, Rejected):
                rejected.append(outcome)
            else:
                model = self._catalog.get(outcome.model) or self._catalog.match(p.uplink.hints)
                found.append((p, outcome, model))
        counters = await _lock_counters(conn, [(d, m) for _, d, m in found])
        # Oldest first per device, so each increase is measured from the uplink before it.
        found.sort(key=lambda f: (f[1].council_id, f[1].device_id, f[0].uplink.time))
        for p, device, model in found:
            settings = {**p.uplink.hints.tags, **device.properties}
            moved: list[tuple[CounterKey, _Counter | None]] = []
            try:
                reading = to_reading(
                    device.kind,
                    model,
                    p.uplink.fields,
                    p.uplink.time,
                    settings,
                    _delta(counters, device, p.uplink.time, moved),
                )
            except MappingError as exc:
                # A refused uplink leaves its counters where they were: when it is replayed
                # (the device fixed), its increase is measured from them, not found "late".
                for key, before in reversed(moved):
                    counters[key] = before
                rejected.append(
                    Rejected(
                        p.message,
                        device.council_id,
                        exc.reason,
                        f"device {device.device_id!r}: {exc.detail}",
                    )
                )
                continue
            address = Address(device.council_id, device.kind, device.device_id)
            decoded.append(Decoded(p.message, address, reading, event_lag(p.message, reading.time)))
        await _save_counters(conn, counters)
        return decoded, rejected

    async def _refresh(self, conn: AsyncConnection[Any]) -> None:
        now = time.monotonic()
        if self._catalog is not None and now - self._loaded_at < self.ttl_s:
            return
        cur = await conn.execute(STORED_MODELS_SQL)
        self._catalog = catalog_of(await cur.fetchall(), self._builtin)
        cur = await conn.execute(
            "SELECT network, application, council_id, auto_register FROM network_applications"
        )
        self._applications = {(n, a): (c, auto) for n, a, c, auto in await cur.fetchall()}
        self._loaded_at = now

    async def _devices(
        self, conn: AsyncConnection[Any], pending: Sequence[Pending]
    ) -> dict[tuple[str, str], _Device]:
        """Candidates keyed by ("eui", dev_eui) and by (council, device id)."""
        euis = sorted({p.uplink.dev_eui for p in pending if p.uplink.dev_eui})
        pairs = sorted(
            {
                (c, p.uplink.device_name)
                for p in pending
                if (c := self._council_of(p)) and p.uplink.device_name
            }
        )
        cur = await conn.execute(
            """SELECT council_id, device_id, kind, model, properties, status, dev_eui
               FROM devices
               WHERE dev_eui = ANY(%s)
                  OR (council_id, device_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""",
            (euis, [c for c, _ in pairs], [d for _, d in pairs]),
        )
        out: dict[tuple[str, str], _Device] = {}
        for council, device_id, kind, model, props, status, eui in await cur.fetchall():
            d = _Device(
                council,
                device_id,
                Kind(kind),
                model,
                props if isinstance(props, dict) else {},
                status,
            )
            out[(council, device_id)] = d
            if eui:
                out[("eui", eui)] = d
        return out

    def _council_of(self, p: Pending) -> str | None:
        u = p.uplink
        if u.council_id is not None:
            return u.council_id
        app = self._applications.get((u.network, u.application or ""))
        return app[0] if app else None

    async def _device_for(
        self, conn: AsyncConnection[Any], p: Pending, devices: dict[tuple[str, str], _Device]
    ) -> _Device | Rejected:
        u = p.uplink
        council = self._council_of(p)
        device = (devices.get(("eui", u.dev_eui)) if u.dev_eui else None) or (
            devices.get((council, u.device_name)) if council and u.device_name else None
        )
        who = f"DevEUI {u.dev_eui}" if u.dev_eui else f"device {u.device_name!r}"
        if device is not None and council is not None and device.council_id != council:
            return Rejected(
                p.message,
                council,
                Reason.UNKNOWN_DEVICE,
                f"{who} is registered in council {device.council_id!r}, but arrived through "
                f"{_source(u.network, u.application)} of council {council!r}",
            )
        if device is None:
            return await self._unknown(conn, p, council, who)
        if device.status == "quarantined":
            return held_back(p.message, device.council_id, device.device_id)
        return device

    async def _unknown(
        self, conn: AsyncConnection[Any], p: Pending, council: str | None, who: str
    ) -> Rejected:
        u = p.uplink
        assert self._catalog is not None
        if council is None:
            return Rejected(
                p.message,
                None,
                Reason.UNKNOWN_DEVICE,
                f"{who} is not registered and {_source(u.network, u.application)} belongs to no "
                "council (add it to a devices file's applications)",
            )
        auto = (
            u.application is not None
            and self._applications.get((u.network, u.application), ("", False))[1]
        )
        model = self._catalog.match(u.hints)
        device_id = (
            u.device_name if u.device_name and _DEVICE_ID.match(u.device_name) else u.dev_eui
        )
        if not auto or model is None or device_id is None:
            why = "" if not auto else "; not auto-registered: the uplink names no known model"
            return Rejected(
                p.message,
                council,
                Reason.UNKNOWN_DEVICE,
                f"{who} is not registered in council {council!r}{why}",
            )
        cur = await conn.execute(
            """INSERT INTO devices (council_id, device_id, kind, model, dev_eui, status, properties)
               VALUES (%s, %s, %s, %s, %s, 'quarantined', %s)
               ON CONFLICT DO NOTHING RETURNING dev_eui""",
            (council, device_id, model.kind.value, model.id, u.dev_eui, Jsonb(u.hints.tags)),
        )
        if await cur.fetchone() is None:
            # Registered a moment ago by an earlier uplink of this device: still quarantined.
            # Otherwise another device already has that id.
            cur = await conn.execute(
                "SELECT dev_eui IS NOT DISTINCT FROM %s FROM devices"
                " WHERE council_id = %s AND device_id = %s",
                (u.dev_eui, council, device_id),
            )
            same = await cur.fetchone()
            if same is None or not same[0]:
                return Rejected(
                    p.message,
                    council,
                    Reason.UNKNOWN_DEVICE,
                    f"{who} is not registered in council {council!r}; not auto-registered: "
                    f"another device is already called {device_id!r}",
                )
        return Rejected(
            p.message,
            council,
            Reason.QUARANTINED_DEVICE,
            f"{who} was unknown: registered as {device_id!r} ({model.id}) in quarantine; "
            "approve it with `placewatch devices approve`, then `placewatch replay`",
        )


def _source(network: str, application: str | None) -> str:
    return f"{network} application {application!r}" if application else network


async def _lock_counters(
    conn: AsyncConnection[Any], found: Sequence[tuple[_Device, DeviceModel | None]]
) -> dict[CounterKey, _Counter | None]:
    keys = sorted(
        {
            (d.council_id, d.device_id, name)
            for d, m in found
            if m is not None
            for name, spec in m.fields.items()
            if spec.cumulative
        }
    )
    counters: dict[CounterKey, _Counter | None] = dict.fromkeys(keys)
    if not keys:
        return counters
    cur = await conn.execute(
        """SELECT c.council_id, c.device_id, c.field, c.time, c.value
           FROM device_counters c
           JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(council_id, device_id, field)
             USING (council_id, device_id, field)
           ORDER BY 1, 2, 3
           FOR UPDATE OF c""",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    )
    for council, device, name, at, value in await cur.fetchall():
        counters[(council, device, name)] = _Counter(at, value)
    return counters


def _delta(
    counters: dict[CounterKey, _Counter | None],
    device: _Device,
    at: datetime,
    moved: list[tuple[CounterKey, _Counter | None]],
) -> CounterDelta:
    """The delta function of one uplink; ``moved`` records each counter it changes, and what
    it was, so that a refused uplink can put them back."""

    def delta(name: str, value: float) -> float:
        key = (device.council_id, device.device_id, name)
        prev = counters.get(key)
        if prev is not None and at <= prev.time:
            return 0.0  # late or repeated: the uplink after it already counted the increase
        moved.append((key, prev))
        counters[key] = _Counter(at, value, changed=True)
        return counter_rise(prev.value if prev else None, value)

    return delta


async def _save_counters(
    conn: AsyncConnection[Any], counters: dict[CounterKey, _Counter | None]
) -> None:
    rows = [(k, c) for k, c in counters.items() if c is not None and c.changed]
    if not rows:
        return
    await conn.execute(
        """INSERT INTO device_counters (council_id, device_id, field, time, value)
           SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[],
                                %s::float8[])
           ON CONFLICT (council_id, device_id, field) DO UPDATE
           SET time = excluded.time, value = excluded.value
           WHERE device_counters.time < excluded.time""",
        (
            [k[0] for k, _ in rows],
            [k[1] for k, _ in rows],
            [k[2] for k, _ in rows],
            [c.time for _, c in rows],
            [c.value for _, c in rows],
        ),
    )
