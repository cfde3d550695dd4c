"""Store a decoded batch, isolating the messages that cannot be stored.

Transient database errors (connection lost, server shutting down, deadlock, disk full, timeout,
read-only after a failover, missing privileges or schema) are raised to the caller, which retries
the whole batch. Anything else that fails is caused by some message in the batch: a row a
constraint refuses, text the database cannot hold, a device whose settings break the mapping. The
batch is then split in halves, recursively, until the culprit is alone; it is stored as a
``storage_error`` dead letter and everything else is stored normally. Each part commits on its
own, which is safe because nothing is acknowledged before the whole batch is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import AsyncConnection

from ingest.batch import Row, device_keys, to_rows
from ingest.decode import Accepted, Decoded, Pending, Rejected
from ingest.registry import DeviceRegistry
from ingest.uplinks import UplinkResolver
from ingest.writer import WriteResult, load_copy_types, write_batch
from placewatch.kinds import Kind
from placewatch.rejections import Reason

log = logging.getLogger(__name__)

ConnectionSource = Callable[[], AbstractAsyncContextManager[AsyncConnection[Any]]]


def is_transient(exc: BaseException) -> bool:
    """Database errors not caused by the data: retry the same batch later.

    Caused by the data instead: data exceptions (class 22), integrity violations (23), program
    limits such as an index row too large (54), and errors raised by PL/pgSQL code such as a
    trigger (P0).
    """
    if not isinstance(exc, psycopg.Error):
        return False
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return False
    return not (exc.sqlstate or "").startswith(("22", "23", "54", "P0"))


@dataclass
class Stored:
    rows: list[Row] = field(default_factory=list)  # committed (new or already there)
    rejected: list[Rejected] = field(default_factory=list)  # committed as dead letters
    inserted: dict[Kind, int] = field(default_factory=dict)
    duplicates: int = 0


@dataclass
class BatchStore:
    registry: DeviceRegistry
    # Announce new readings to the rules workers (rule_inbox), in the same transaction.
    rules_inbox: bool = True
    copy_types: dict[Kind, list[str]] | None = None
    uplinks: UplinkResolver | None = None

    def __post_init__(self) -> None:
        if self.uplinks is None:
            self.uplinks = UplinkResolver(ttl_s=self.registry.ttl_s)

    async def store(
        self, connect: ConnectionSource, decoded: Sequence[Accepted], rejected: Sequence[Rejected]
    ) -> Stored:
        out = Stored()
        await self._store(connect, decoded, rejected, out)
        return out

    async def _store(
        self,
        connect: ConnectionSource,
        decoded: Sequence[Accepted],
        rejected: Sequence[Rejected],
        out: Stored,
    ) -> None:
        try:
            async with connect() as conn:
                if self.copy_types is None:
                    self.copy_types = await load_copy_types(conn)
                pending = [d for d in decoded if isinstance(d, Pending)]
                if pending:
                    # Counter state is locked and saved in the readings' transaction.
                    async with conn.transaction():
                        rows, letters, result = await self._write(conn, decoded, rejected)
                else:
                    rows, letters, result = await self._write(conn, decoded, rejected)
        except Exception as exc:
            if is_transient(exc):
                raise
            await self._isolate(connect, decoded, rejected, out, exc)
            return
        out.rows += rows
        out.rejected += letters
        for kind, n in result.inserted.items():
            out.inserted[kind] = out.inserted.get(kind, 0) + n
        out.duplicates += result.duplicates

    async def _write(
        self,
        conn: AsyncConnection[Any],
        accepted: Sequence[Accepted],
        rejected: Sequence[Rejected],
    ) -> tuple[list[Row], list[Rejected], WriteResult]:
        assert self.copy_types is not None and self.uplinks is not None
        decoded = [d for d in accepted if isinstance(d, Decoded)]
        pending = [d for d in accepted if isinstance(d, Pending)]
        letters = list(rejected)
        if pending:
            mapped, refused = await self.uplinks.resolve(conn, pending)
            decoded += mapped
            letters += refused
        devices = await self.registry.resolve(conn, device_keys(decoded))
        rows, unmapped = to_rows(decoded, devices)
        letters += unmapped
        result = await write_batch(
            conn, self.copy_types, rows, letters, rules_inbox=self.rules_inbox
        )
        return rows, letters, result

    async def _isolate(
        self,
        connect: ConnectionSource,
        decoded: Sequence[Accepted],
        rejected: Sequence[Rejected],
        out: Stored,
        exc: Exception,
    ) -> None:
        why = f"{type(exc).__name__}: {str(exc).strip()[:500]}"
        if len(decoded) > 1:
            log.warning("batch refused (%s); isolating the message that causes it", why)
            half = len(decoded) // 2
            await self._store(connect, decoded[:half], rejected, out)
            await self._store(connect, decoded[half:], [], out)
        elif decoded:
            d = decoded[0]
            log.warning("message on %s refused: %s", d.message.topic, why)
            council = d.address.council_id if isinstance(d, Decoded) else d.uplink.council_id
            refused = Rejected(d.message, council, Reason.STORAGE_ERROR, why)
            await self._store(connect, [], [*rejected, refused], out)
        elif len(rejected) > 1:
            half = len(rejected) // 2
            await self._store(connect, [], rejected[:half], out)
            await self._store(connect, [], rejected[half:], out)
        elif rejected and rejected[0].detail != _UNSTORABLE:
            # Even the dead letter was refused (its text): keep the raw bytes, shorten the topic
            # and drop the detail.
            r = rejected[0]
            log.error(
                "dead letter on %.200r refused (%s); storing it without detail",
                r.message.topic,
                why,
            )
            short = replace(r.message, topic=r.message.topic[:_TOPIC_MAX])
            await self._store(connect, [], [Rejected(short, None, r.reason, _UNSTORABLE)], out)
        else:
            raise exc  # nothing left to isolate: the caller retries and reports it


_UNSTORABLE = "detail could not be stored; see the payload"
_TOPIC_MAX = 1_000
