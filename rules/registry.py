"""Reading what rules need from the database: devices, rule state and readings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncCursor, sql
from psycopg.types.json import Jsonb

from placewatch.kinds import MEASUREMENT_COLUMNS, Kind
from rules.engine import SubjectState
from rules.model import DeviceView
from rules.series import Series
from rules.units import utc

DeviceKey = tuple[str, str]  # (council_id, device_id)
StateKey = tuple[str, str, str, str]  # (rule_id, council_id, subject_type, subject_id)

DEVICE_COLUMNS = (
    "council_id, device_id, kind, model, site, ward, resident_id, tags, properties,"
    " expected_interval_s"
)


def device_view(row: Sequence[Any]) -> DeviceView:
    council_id, device_id, kind, model, site, ward, resident_id, tags, props, interval = row[:10]
    return DeviceView(
        council_id=council_id,
        device_id=device_id,
        kind=Kind(kind),
        model=model,
        site=site,
        ward=ward,
        resident_id=resident_id,
        tags=tuple(tags or ()),
        properties=props if isinstance(props, dict) else {},
        expected_interval_s=interval,
    )


async def load_devices(
    cur: AsyncCursor[Any], keys: Iterable[DeviceKey]
) -> dict[DeviceKey, DeviceView]:
    ks = list(keys)
    await cur.execute(
        f"""SELECT {DEVICE_COLUMNS} FROM devices
            JOIN unnest(%s::text[], %s::text[]) AS k(council_id, device_id)
              USING (council_id, device_id)""",
        ([k[0] for k in ks], [k[1] for k in ks]),
    )
    views = [device_view(r) for r in await cur.fetchall()]
    return {(v.council_id, v.device_id): v for v in views}


async def all_devices(
    cur: AsyncCursor[Any], council_id: str | None = None, kind: Kind | None = None
) -> list[DeviceView]:
    await cur.execute(
        f"""SELECT {DEVICE_COLUMNS} FROM devices
            WHERE (%(c)s::text IS NULL OR council_id = %(c)s)
              AND (%(k)s::text IS NULL OR kind = %(k)s)
            ORDER BY council_id, device_id""",
        {"c": council_id, "k": kind.value if kind else None},
    )
    return [device_view(r) for r in await cur.fetchall()]


async def heard_devices(cur: AsyncCursor[Any]) -> list[tuple[DeviceView, float]]:
    """Every device heard from at least once, with when it was last heard (epoch)."""
    await cur.execute(
        f"SELECT {DEVICE_COLUMNS}, last_seen FROM devices WHERE last_seen IS NOT NULL"
    )
    return [(device_view(r), r[10].timestamp()) for r in await cur.fetchall()]


def _dt(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


async def load_states(
    cur: AsyncCursor[Any], subjects: Iterable[tuple[str, str, str]], rule_ids: Sequence[str]
) -> dict[StateKey, SubjectState]:
    """States of the given rules for (council_id, subject_type, subject_id) subjects."""
    subs = list(subjects)
    await cur.execute(
        """SELECT rule_id, council_id, subject_type, subject_id, active, alert_id,
                  last_transition_at, evaluated_until, data
           FROM rule_state
           JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(council_id, subject_type,
                                                              subject_id)
             USING (council_id, subject_type, subject_id)
           WHERE rule_id = ANY(%s)""",
        ([s[0] for s in subs], [s[1] for s in subs], [s[2] for s in subs], list(rule_ids)),
    )
    return {(r[0], r[1], r[2], r[3]): _state(r) for r in await cur.fetchall()}


async def load_active_states(
    cur: AsyncCursor[Any], rule_ids: Sequence[str], untouched_since: datetime | None = None
) -> dict[StateKey, SubjectState]:
    """Every subject whose condition is active for the given rules (and, if given, whose
    state was last written before ``untouched_since``)."""
    await cur.execute(
        """SELECT rule_id, council_id, subject_type, subject_id, active, alert_id,
                  last_transition_at, evaluated_until, data
           FROM rule_state
           WHERE rule_id = ANY(%s) AND active AND (%s::timestamptz IS NULL OR updated_at < %s)""",
        (list(rule_ids), untouched_since, untouched_since),
    )
    return {(r[0], r[1], r[2], r[3]): _state(r) for r in await cur.fetchall()}


def _state(r: Sequence[Any]) -> SubjectState:
    return SubjectState(
        active=r[4],
        alert_id=r[5],
        last_transition_at=_dt(r[6]),
        evaluated_until=_dt(r[7]),
        data=r[8] or {},
    )


def _ts(epoch: float | None) -> datetime | None:
    return utc(epoch) if epoch is not None else None


async def save_states(cur: AsyncCursor[Any], states: dict[StateKey, SubjectState]) -> None:
    """Upsert rule states in one statement (a claim touches hundreds)."""
    if not states:
        return
    keys = sorted(states)
    rows = [states[k] for k in keys]
    await cur.execute(
        """INSERT INTO rule_state (rule_id, council_id, subject_type, subject_id, active,
                                   alert_id, last_transition_at, evaluated_until, data)
           SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bool[],
                                %s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::jsonb[])
           ON CONFLICT (council_id, subject_type, subject_id, rule_id) DO UPDATE
           SET active = excluded.active, alert_id = excluded.alert_id,
               last_transition_at = excluded.last_transition_at,
               evaluated_until = excluded.evaluated_until, data = excluded.data,
               updated_at = now()""",
        (
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [k[3] for k in keys],
            [r.active for r in rows],
            [r.alert_id for r in rows],
            [_ts(r.last_transition_at) for r in rows],
            [_ts(r.evaluated_until) for r in rows],
            [Jsonb(r.data) for r in rows],
        ),
    )


async def load_series(
    cur: AsyncCursor[Any], kind: Kind, ranges: dict[DeviceKey, tuple[datetime, datetime]]
) -> dict[DeviceKey, Series]:
    """Readings of each device within its (from, to) range, plus the last one before it, in
    event-time order. That one reading is all a run needs from before the range (the reading at
    or before t - duration that starts it), so windows are fetched as they are, not padded by
    the longest gap a device may leave between readings."""
    names = list(MEASUREMENT_COLUMNS[kind])
    keys = sorted(ranges)
    cols = sql.SQL(", ").join(sql.Identifier("t", n) for n in names)
    query = sql.SQL(
        """WITH q AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[],
                                           %s::timestamptz[]) AS q(c, d, lo, hi))
           SELECT t.council_id, t.device_id, t.time, t.received_at, {cols}
           FROM q JOIN {table} t
             ON t.council_id = q.c AND t.device_id = q.d AND t.time >= q.lo AND t.time <= q.hi
           UNION ALL
           SELECT p.* FROM q CROSS JOIN LATERAL (
               SELECT t.council_id, t.device_id, t.time, t.received_at, {cols}
               FROM {table} t
               WHERE t.council_id = q.c AND t.device_id = q.d AND t.time < q.lo
               ORDER BY t.time DESC LIMIT 1) p
           ORDER BY 1, 2, 3"""
    ).format(cols=cols, table=sql.Identifier(kind.value))
    await cur.execute(
        query,
        (
            [k[0] for k in keys],
            [k[1] for k in keys],
            [ranges[k][0] for k in keys],
            [ranges[k][1] for k in keys],
        ),
    )
    rows_by: dict[DeviceKey, list[tuple[Any, ...]]] = {k: [] for k in keys}
    for row in await cur.fetchall():
        rows_by[(row[0], row[1])].append(tuple(row[2:]))
    return {k: Series.from_rows(names, rows) for k, rows in rows_by.items()}
