"""``placewatch replay``: run dead letters through ingest again after a fix.

A council registers the unknown device, corrects a mapping or a rule, then replays: each
pending dead letter goes through the same decode → registry → write path as live traffic, with
its original receive time. Stored ones are marked replayed; the rest keep their (possibly new)
reason for the next attempt. Several replays may run at once (``SKIP LOCKED``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from ingest.batch import device_keys, to_rows
from ingest.decode import DecodeOptions, decode_all
from ingest.mqtt import Message
from ingest.registry import DeviceRegistry
from ingest.writer import load_copy_types, prepare_connection, write_batch
from placewatch.settings import Settings


@dataclass
class ReplayResult:
    stored: int = 0
    duplicates: int = 0
    still_rejected: dict[str, int] = field(default_factory=dict)


async def replay(
    settings: Settings, reason: str | None = None, batch_size: int = 1_000
) -> ReplayResult:
    result = ReplayResult()
    registry = DeviceRegistry(ttl_s=0)  # always read the registry afresh: it was just fixed
    last_id = 0
    async with await AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        await prepare_connection(conn)
        copy_types = await load_copy_types(conn)
        while True:
            async with conn.transaction():
                cur = await conn.execute(
                    """SELECT id, topic, payload, extract(epoch FROM received_at)::float8
                       FROM dead_letters
                       WHERE replayed_at IS NULL AND id > %s
                         AND (%s::text IS NULL OR reason = %s)
                       ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED""",
                    (last_id, reason, reason, batch_size),
                )
                letters = await cur.fetchall()
                if not letters:
                    return result
                last_id = int(letters[-1][0])
                await _replay_batch(conn, settings, registry, copy_types, letters, result)


async def _replay_batch(
    conn: AsyncConnection[Any],
    settings: Settings,
    registry: DeviceRegistry,
    copy_types: Any,
    letters: list[Any],
    result: ReplayResult,
) -> None:
    ids = {}
    messages = []
    for letter_id, topic, payload, received_at in letters:
        msg = Message(topic, bytes(payload), 0, False, received_at, 0)
        ids[id(msg)] = letter_id
        messages.append(msg)
    decoded, rejected = decode_all(messages, DecodeOptions.from_settings(settings))
    rows, unmapped = to_rows(decoded, await registry.resolve(conn, device_keys(decoded)))
    written = await write_batch(conn, copy_types, rows, [])
    result.stored += sum(written.inserted.values())
    result.duplicates += written.duplicates
    async with conn.cursor() as cur:
        await cur.execute(
            "UPDATE dead_letters SET replayed_at = now(), replay_result = 'stored'"
            " WHERE id = ANY(%s)",
            ([ids[id(r.message)] for r in rows],),
        )
        still = [*rejected, *unmapped]
        await cur.executemany(
            "UPDATE dead_letters SET reason = %s, detail = %s,"
            " replay_result = 'rejected again at ' || now() WHERE id = %s",
            [(r.reason, r.detail, ids[id(r.message)]) for r in still],
        )
    for r in still:
        result.still_rejected[r.reason] = result.still_rejected.get(r.reason, 0) + 1
