"""``placewatch replay``: run dead letters through ingest again after a fix.

A council registers the unknown device, corrects a mapping or a rule, then replays: each
pending dead letter goes through the same decode → registry → write path as live traffic, with
its original receive time. Stored ones are marked replayed; the rest keep their (possibly new)
reason for the next attempt. Several replays may run at once (``SKIP LOCKED``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from ingest.decode import DecodeOptions, decode_all
from ingest.mqtt import Message
from ingest.registry import DeviceRegistry
from ingest.store import BatchStore
from ingest.writer import prepare_connection, printable
from placewatch.settings import Settings


@dataclass
class ReplayResult:
    stored: int = 0
    duplicates: int = 0
    still_rejected: dict[str, int] = field(default_factory=dict)


async def replay(
    settings: Settings,
    reason: str | None = None,
    batch_size: int = 1_000,
    council: str | None = None,
) -> ReplayResult:
    result = ReplayResult()
    # Always read the registry afresh: it was just fixed.
    store = BatchStore(DeviceRegistry(ttl_s=0), rules_inbox=settings.ingest_rules_inbox)
    options = DecodeOptions.from_settings(settings)
    last_id = 0
    async with await AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        await prepare_connection(conn)
        while True:
            async with conn.transaction():
                cur = await conn.execute(
                    """SELECT id, topic, payload, extract(epoch FROM received_at)::float8
                       FROM dead_letters
                       WHERE replayed_at IS NULL AND id > %s
                         AND (%s::text IS NULL OR reason = %s)
                         AND (%s::text IS NULL OR council_id = %s)
                       ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED""",
                    (last_id, reason, reason, council, council, batch_size),
                )
                letters = await cur.fetchall()
                if not letters:
                    return result
                last_id = int(letters[-1][0])
                await _replay_batch(conn, store, options, letters, result)


async def _replay_batch(
    conn: AsyncConnection[Any],
    store: BatchStore,
    options: DecodeOptions,
    letters: list[tuple[Any, ...]],
    result: ReplayResult,
) -> None:
    ids: dict[int, int] = {}
    messages = []
    for letter_id, topic, payload, received_at in letters:
        # dup=True: a replay is not a new receipt, so it does not count as another occurrence.
        msg = Message(topic, bytes(payload), 0, True, received_at, 0)
        ids[id(msg)] = letter_id
        messages.append(msg)
    decoded, rejected = decode_all(messages, options)
    # Inside this transaction every write is a savepoint: a letter the database still refuses
    # is isolated (and stays pending) without undoing the others.
    stored = await store.store(lambda: nullcontext(conn), decoded, rejected)
    result.stored += sum(stored.inserted.values())
    result.duplicates += stored.duplicates
    async with conn.cursor() as cur:
        await cur.execute(
            "UPDATE dead_letters SET replayed_at = now(), replay_result = 'stored'"
            " WHERE id = ANY(%s)",
            ([ids[id(r.message)] for r in stored.rows],),
        )
        # A message still rejected was upserted onto its own row (same topic and payload);
        # record why it failed this time.
        await cur.executemany(
            "UPDATE dead_letters SET reason = %s, detail = %s,"
            " replay_result = 'rejected again at ' || now() WHERE id = %s",
            [
                (r.reason, printable(r.detail), ids[id(r.message)])
                for r in stored.rejected
                if id(r.message) in ids  # not the shortened copy of an unstorable letter
            ],
        )
    for r in stored.rejected:
        result.still_rejected[r.reason] = result.still_rejected.get(r.reason, 0) + 1
