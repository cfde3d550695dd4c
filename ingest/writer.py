"""One transaction per batch: readings (binary COPY + dedupe), dead letters, device last-seen.

Readings are COPied into a per-connection temporary staging table and moved with
``INSERT ... ON CONFLICT DO NOTHING`` on the (council_id, device_id, time) key, so a re-delivered
message is absorbed without a second row (COPY itself cannot skip conflicts).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, AsyncCursor, sql

from ingest.batch import Row
from ingest.decode import Rejected
from placewatch.kinds import KINDS, MEASUREMENT_COLUMNS, Kind


def copy_columns(kind: Kind) -> tuple[str, ...]:
    return ("time", "council_id", "device_id", *MEASUREMENT_COLUMNS[kind], "received_at")


def _stage(kind: Kind) -> str:
    return f"stage_{kind.value}"


_INBOX_STAGE = "stage_rule_inbox"
_INBOX_COLUMNS = ("council_id", "device_id", "kind", "min_time", "max_time", "readings")
_INBOX_TYPES = ["text", "text", "text", "timestamptz", "timestamptz", "int4"]


async def prepare_connection(conn: AsyncConnection[Any]) -> None:
    """psycopg_pool ``configure`` hook (autocommit connections): staging tables live as long as
    the connection and empty themselves at every commit."""
    for kind in KINDS:
        await conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)"
                " ON COMMIT DELETE ROWS"
            ).format(sql.Identifier(_stage(kind)), sql.Identifier(kind.value))
        )
    await conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (council_id text, device_id text, kind text,"
            " min_time timestamptz, max_time timestamptz, readings int) ON COMMIT DELETE ROWS"
        ).format(sql.Identifier(_INBOX_STAGE))
    )


async def load_copy_types(conn: AsyncConnection[Any]) -> dict[Kind, list[str]]:
    """Postgres type names of each kind's COPY columns, read from the catalog (binary COPY
    needs them, and the catalog is the one place they are defined)."""
    types: dict[Kind, list[str]] = {}
    for kind in KINDS:
        cur = await conn.execute(
            """SELECT a.attname, format_type(a.atttypid, NULL)
               FROM pg_attribute a
               WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped""",
            (kind.value,),
        )
        by_name = {str(n): str(t) for n, t in await cur.fetchall()}
        missing = [c for c in copy_columns(kind) if c not in by_name]
        if missing:
            raise RuntimeError(
                f"table {kind.value} lacks columns {missing}: run placewatch migrate"
            )
        types[kind] = [by_name[c] for c in copy_columns(kind)]
    return types


@dataclass
class WriteResult:
    inserted: dict[Kind, int] = field(default_factory=dict)
    duplicates: int = 0


async def write_batch(
    conn: AsyncConnection[Any],
    copy_types: dict[Kind, list[str]],
    rows: Sequence[Row],
    rejected: Sequence[Rejected],
    *,
    rules_inbox: bool = True,
) -> WriteResult:
    """Store one batch in one transaction (a savepoint if one is open); the caller acknowledges
    only after this returns."""
    result = WriteResult()
    by_kind: dict[Kind, list[Row]] = defaultdict(list)
    for row in rows:
        by_kind[row.kind].append(row)
    async with conn.transaction(), conn.cursor() as cur:
        for kind, kind_rows in by_kind.items():
            columns = sql.SQL(", ").join(map(sql.Identifier, copy_columns(kind)))
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(_stage(kind)), columns
            )
            async with cur.copy(copy_sql) as copy:
                copy.set_types(copy_types[kind])
                for row in kind_rows:
                    await copy.write_row(row.values)
        if by_kind:
            await _touch_devices(cur, by_kind)
        spans: list[tuple[Any, ...]] = []
        for kind, kind_rows in by_kind.items():
            inserted = await _move(cur, kind, spans if rules_inbox else None)
            result.inserted[kind] = inserted
            result.duplicates += len(kind_rows) - inserted
        if spans:
            await _announce(cur, spans)
        if rejected:
            await _store_dead_letters(cur, rejected)
    return result


RULES_CHANNEL = "placewatch_rule_inbox"


async def _move(cur: AsyncCursor[Any], kind: Kind, spans: list[tuple[Any, ...]] | None) -> int:
    """Stage → table, skipping rows already stored; returns how many were new.

    Moving (DELETE … RETURNING) leaves the stage empty for a next batch in the same transaction;
    COMMIT empties it anyway. With ``spans`` the new rows (not the duplicates: those were
    evaluated when first stored) are summarised per device into it, for the rules workers.
    The insert into the (hyper)table stays the top-level statement: TimescaleDB has had defects
    with hypertable inserts inside data-modifying CTEs.
    """
    cols = sql.SQL(", ").join(map(sql.Identifier, copy_columns(kind)))
    await cur.execute(
        sql.SQL(
            "WITH moved AS (DELETE FROM {stage} RETURNING {cols})"
            " INSERT INTO {table} ({cols}) SELECT {cols} FROM moved"
            " ON CONFLICT DO NOTHING"
        ).format(stage=sql.Identifier(_stage(kind)), table=sql.Identifier(kind.value), cols=cols)
        + (sql.SQL(" RETURNING council_id, device_id, time") if spans is not None else sql.SQL(""))
    )
    inserted = cur.rowcount
    if spans is not None and inserted > 0:
        by_device: dict[tuple[str, str], list[Any]] = {}
        for council_id, device_id, time in await cur.fetchall():
            span = by_device.get((council_id, device_id))
            if span is None:
                by_device[(council_id, device_id)] = [time, time, 1]
            else:
                if time < span[0]:
                    span[0] = time
                elif time > span[1]:
                    span[1] = time
                span[2] += 1
        spans.extend((c, d, kind.value, *span) for (c, d), span in sorted(by_device.items()))
    return inserted


async def _announce(cur: AsyncCursor[Any], spans: list[tuple[Any, ...]]) -> None:
    """One inbox row per device and kind: (council, device, kind, min time, max time, count).
    Sent by binary COPY (parameter arrays cost ingest more CPU than the rest of the batch's SQL)
    and moved with DELETE … RETURNING, as the readings are, so a second batch in the same
    transaction starts from an empty stage."""
    async with cur.copy(
        sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(sql.Identifier(_INBOX_STAGE))
    ) as copy:
        copy.set_types(_INBOX_TYPES)
        for span in spans:
            await copy.write_row(span)
    cols = sql.SQL(", ").join(map(sql.Identifier, _INBOX_COLUMNS))
    await cur.execute(
        sql.SQL(
            "WITH moved AS (DELETE FROM {stage} RETURNING {cols})"
            " INSERT INTO rule_inbox ({cols})"
            " SELECT {cols} FROM moved ORDER BY council_id, device_id"
        ).format(stage=sql.Identifier(_INBOX_STAGE), cols=cols)
    )
    # Delivered at COMMIT: rules workers wake at once instead of at their next poll.
    await cur.execute("SELECT pg_notify(%s, '')", (RULES_CHANNEL,))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def printable(text: str | None) -> str | None:
    """Text the database accepts and a log reader can see: control characters (NUL above all,
    which PostgreSQL text refuses) and lone surrogates (not UTF-8) written as escapes."""
    if text is None:
        return None
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def message_sha256(topic: str, payload: bytes) -> bytes:
    """The dead-letter key: one row per distinct (topic, payload)."""
    return hashlib.sha256(topic.encode("utf-8", "backslashreplace") + b"\0" + payload).digest()


async def _store_dead_letters(cur: AsyncCursor[Any], rejected: Sequence[Rejected]) -> None:
    # One row per distinct (topic, payload); a redelivery (DUP) does not count as a new receipt.
    grouped: dict[bytes, tuple[Rejected, int, float]] = {}
    for r in rejected:
        key = message_sha256(r.message.topic, r.message.payload)
        first, count, last = grouped.get(key, (r, 0, r.message.received_at))
        grouped[key] = (
            first,
            count + (0 if r.message.dup else 1),
            max(last, r.message.received_at),
        )
    params = [
        {
            "council_id": printable(r.council_id),
            "topic": printable(r.message.topic),
            "payload": r.message.payload,
            "sha": key,
            "reason": r.reason,
            "detail": printable(r.detail),
            "received_at": datetime.fromtimestamp(r.message.received_at, UTC),
            "last_received_at": datetime.fromtimestamp(last, UTC),
            "n": count,
        }
        for key, (r, count, last) in grouped.items()
    ]
    await cur.executemany(
        """INSERT INTO dead_letters (council_id, topic, payload, message_sha256, reason, detail,
                                     received_at, last_received_at, occurrences)
           VALUES (%(council_id)s, %(topic)s, %(payload)s, %(sha)s, %(reason)s, %(detail)s,
                   %(received_at)s, %(last_received_at)s, greatest(%(n)s, 1))
           ON CONFLICT (message_sha256) DO UPDATE
           SET occurrences = dead_letters.occurrences + %(n)s,
               last_received_at = greatest(dead_letters.last_received_at,
                                           excluded.last_received_at)""",
        params,
    )


async def _touch_devices(cur: AsyncCursor[Any], kinds: Iterable[Kind]) -> None:
    # Aggregated from the staging tables (still filled until COMMIT), so no per-row Python work.
    # Sorted so that concurrent replicas tend to lock devices in the same order; a deadlock
    # would only be retried.
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT council_id, device_id, received_at, time FROM {}").format(
            sql.Identifier(_stage(kind))
        )
        for kind in kinds
    )
    await cur.execute(
        sql.SQL(
            """UPDATE devices d
               SET last_seen = greatest(d.last_seen, v.received),
                   first_seen = coalesce(d.first_seen, v.first_received),
                   last_reading_at = greatest(d.last_reading_at, v.event_time)
               FROM (SELECT council_id, device_id, max(received_at) AS received,
                            min(received_at) AS first_received, max(time) AS event_time
                     FROM ({}) s GROUP BY 1, 2 ORDER BY 1, 2) v
               WHERE d.council_id = v.council_id AND d.device_id = v.device_id"""
        ).format(union)
    )
