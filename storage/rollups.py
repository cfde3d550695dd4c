"""Refreshing the hourly roll-ups on plain PostgreSQL (migration 0006), as TimescaleDB's refresh
policies refresh its continuous aggregates.

Each ``*_hourly`` view is ``<name>_materialized`` (complete hours before a watermark) UNION ALL
the raw readings from the watermark on, aggregated at query time. A refresh, for each roll-up:

1. raises the **invalidation threshold** to the new watermark (the start of the current hour,
   at most ``step`` past the old one) in a short transaction that then takes the exclusive
   advisory lock the reading tables' triggers take shared: it waits for writers that read the
   old threshold to commit, so from then on every write of a row older than the new watermark
   is logged in ``rollup_invalidations``;
2. in a second transaction, recomputes the logged hours of each device (late readings,
   deletions), aggregates the raw rows of [old watermark, new watermark) and advances the
   watermark. Readers see the old or the new state, never a mix (one snapshot per statement).

Steps repeat until the watermark reaches the current hour (a day at a time, so a first refresh
of a long history is many short transactions rather than one long one). Refreshes of one
roll-up are serialised by a session advisory lock: a second worker skips (``wait=False``) or
waits. On TimescaleDB nothing is done: the policies refresh the aggregates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, errors

log = logging.getLogger(__name__)

ORIGIN = "'2000-01-01 00:00+00'"
BUCKET = f"date_bin('1 hour', time, {ORIGIN})"
# (0x706c726f "plro", hashtext(relation)): the key the triggers of 0006 take shared.
_TRIGGER_LOCK = 0x706C726F
# (0x706c7266 "plrf", hashtext(relation)): one refresher per roll-up at a time.
_REFRESH_LOCK = 0x706C7266
STEP = timedelta(days=1)
_THRESHOLD_TRIES = 5


@dataclass(frozen=True)
class Rollup:
    relation: str
    source: str
    groups: tuple[str, ...]
    columns: tuple[str, ...]
    aggregates: tuple[str, ...]

    @property
    def table(self) -> str:
        return f"{self.relation}_materialized"

    def aggregate(self, source: str, alias: str = "") -> str:
        """The view's raw part (0006_rollups.postgres.sql) over ``source`` (a FROM … WHERE …
        clause; ``alias`` names the reading table in it)."""
        p = f"{alias}." if alias else ""
        groups = ", ".join(f"{p}{g}" for g in self.groups)
        aggs = ", ".join(a.replace("{p}", p) for a in self.aggregates)
        positions = ", ".join(str(i) for i in range(1, len(self.groups) + 2))
        return f"""SELECT date_bin('1 hour', {p}time, {ORIGIN}) AS bucket, {groups}, {aggs}
                   {source} GROUP BY {positions}"""

    def insert(self, source: str, alias: str = "") -> str:
        cols = ", ".join(("bucket", *self.groups, *self.columns))
        return f"INSERT INTO {self.table} ({cols}) {self.aggregate(source, alias)}"


ROLLUPS: tuple[Rollup, ...] = (
    Rollup(
        "bin_fill_hourly",
        "bin_fill",
        ("council_id", "device_id"),
        ("fill_pct_avg", "fill_pct_max", "battery_pct_min", "fire", "readings"),
        (
            "avg({p}fill_pct)::real",
            "max({p}fill_pct)",
            "min({p}battery_pct)",
            "bool_or({p}fire)",
            "count(*)",
        ),
    ),
    Rollup(
        "air_quality_hourly",
        "air_quality",
        ("council_id", "device_id"),
        (
            "no2_ugm3_avg",
            "no2_ugm3_max",
            "pm25_ugm3_avg",
            "pm10_ugm3_avg",
            "o3_ugm3_avg",
            "so2_ugm3_avg",
            "readings",
        ),
        (
            "avg({p}no2_ugm3)::real",
            "max({p}no2_ugm3)",
            "avg({p}pm25_ugm3)::real",
            "avg({p}pm10_ugm3)::real",
            "avg({p}o3_ugm3)::real",
            "avg({p}so2_ugm3)::real",
            "count(*)",
        ),
    ),
    Rollup(
        "flood_level_hourly",
        "flood_level",
        ("council_id", "device_id"),
        ("level_m_avg", "level_m_min", "level_m_max", "readings"),
        ("avg({p}level_m)", "min({p}level_m)", "max({p}level_m)", "count(*)"),
    ),
    Rollup(
        "home_activity_hourly",
        "home_activity",
        ("council_id", "device_id", "resident_id", "sensor"),
        ("motion_count", "door_opens", "power_on_readings", "occupied_readings", "readings"),
        (
            "sum({p}motion_count)",
            "count(*) FILTER (WHERE {p}door_open)",
            "count(*) FILTER (WHERE {p}power_w > 0)",
            "count(*) FILTER (WHERE {p}occupied)",
            "count(*)",
        ),
    ),
)
BY_RELATION = {r.relation: r for r in ROLLUPS}


@dataclass
class RefreshResult:
    relation: str
    skipped: str | None = None  # why nothing was done: "timescaledb", "busy", "not migrated"
    watermark_before: datetime | None = None
    watermark: datetime | None = None
    caught_up: bool = True
    steps: int = 0
    buckets: int = 0  # materialised rows written
    invalidated_devices: int = 0
    seconds: float = 0.0


async def _one(conn: AsyncConnection[Any], query: str, params: Any = None) -> Any:
    cur = await conn.execute(query.encode(), params)
    row = await cur.fetchone()
    return row[0] if row else None


async def materialised_here(conn: AsyncConnection[Any]) -> str | None:
    """None when this database has roll-ups to refresh, otherwise why not."""
    cur = await conn.execute("SELECT flavour, max(version) FROM schema_migrations GROUP BY flavour")
    row = await cur.fetchone()
    if row is None:
        return "not migrated"
    if row[0] == "timescaledb":
        return "timescaledb"
    if int(row[1]) < 6:
        return "not migrated"
    return None


async def pending(conn: AsyncConnection[Any]) -> bool:
    """Whether a refresh has anything to do: late changes logged, or a roll-up's watermark
    before the current hour. One cheap query, for a caller that checks often."""
    value = await _one(
        conn,
        f"""SELECT EXISTS (SELECT FROM rollup_invalidations)
                   OR EXISTS (SELECT FROM rollup_watermarks
                              WHERE watermark < date_bin('1 hour', now(), {ORIGIN}))""",
    )
    return bool(value)


async def refresh_rollups(
    conn: AsyncConnection[Any],
    *,
    wait: bool = False,
    since: datetime | None = None,
    budget_s: float | None = None,
    relations: list[str] | None = None,
    step: timedelta = STEP,
) -> list[RefreshResult]:
    """Refresh every roll-up (or ``relations``) up to the current hour. ``conn`` must be in
    autocommit mode (each step commits). ``wait``: wait for another refresher instead of
    skipping. ``since``: first recompute every hour from then to the watermark (a backfill that
    bypassed the triggers, or a check). ``budget_s``: stop stepping after that long (the rest is
    done next time; ``caught_up`` says whether it was)."""
    if not conn.autocommit:
        raise ValueError("refresh_rollups needs an autocommit connection")
    if step % timedelta(hours=1):
        # A bucket split between the materialised part and the live part would count twice.
        raise ValueError(f"step must be whole hours, not {step}")
    chosen = [BY_RELATION[r] for r in relations] if relations else list(ROLLUPS)
    why = await materialised_here(conn)
    if why is not None:
        return [RefreshResult(r.relation, skipped=why) for r in chosen]
    deadline = None if budget_s is None else time.monotonic() + budget_s
    return [await _refresh(conn, r, wait, since, deadline, step) for r in chosen]


async def _refresh(
    conn: AsyncConnection[Any],
    r: Rollup,
    wait: bool,
    since: datetime | None,
    deadline: float | None,
    step: timedelta,
) -> RefreshResult:
    started = time.perf_counter()
    out = RefreshResult(r.relation)
    lock = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
    got = await _one(conn, f"SELECT {lock}(%s, hashtext(%s))::text", (_REFRESH_LOCK, r.relation))
    if wait is False and got != "true":
        out.skipped = "busy"
        return out
    try:
        out.watermark_before = await _watermark(conn, r)
        if since is not None and out.watermark_before is not None:
            out.buckets += await _recompute(conn, r, since, out.watermark_before, step)
        while True:
            done = await _step(conn, r, step, out)
            out.steps += 1
            if done:
                break
            if deadline is not None and time.monotonic() >= deadline:
                out.caught_up = False
                break
        out.watermark = await _watermark(conn, r)
    finally:
        await conn.execute(
            "SELECT pg_advisory_unlock(%s, hashtext(%s))", (_REFRESH_LOCK, r.relation)
        )
    out.seconds = time.perf_counter() - started
    return out


async def _watermark(conn: AsyncConnection[Any], r: Rollup) -> datetime | None:
    value: datetime | None = await _one(
        conn,
        "SELECT nullif(watermark, '-infinity') FROM rollup_watermarks WHERE relation = %s",
        (r.relation,),
    )
    return value


async def _first_hour(conn: AsyncConnection[Any], r: Rollup) -> datetime | None:
    """The hour of the oldest reading (each council's oldest is one index probe)."""
    first: datetime | None = await _one(
        conn,
        f"""SELECT date_bin('1 hour', min(m.t), {ORIGIN}) FROM councils c
            CROSS JOIN LATERAL (SELECT min(time) AS t FROM {r.source}
                                WHERE council_id = c.council_id) m""",
    )
    return first


async def _step(conn: AsyncConnection[Any], r: Rollup, step: timedelta, out: RefreshResult) -> bool:
    """One refresh step; True when the watermark has reached the current hour."""
    cur = await conn.execute(
        f"""SELECT nullif(watermark, '-infinity'),
                   nullif(invalidation_threshold, '-infinity'),
                   date_bin('1 hour', now(), {ORIGIN})
            FROM rollup_watermarks WHERE relation = %s""".encode(),
        (r.relation,),
    )
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError(f"rollup_watermarks has no row for {r.relation}: run placewatch migrate")
    watermark, threshold, target = row
    start = watermark
    if start is None:
        first = await _first_hour(conn, r)
        start = target if first is None or first > target else first
    new = min(target, start + step)
    if watermark is not None and new < watermark:
        new = watermark
    if threshold is None or threshold < new:
        await _raise_threshold(conn, r, new)
    async with conn.transaction():
        locked = await _one(
            conn,
            "SELECT nullif(watermark, '-infinity') FROM rollup_watermarks"
            " WHERE relation = %s FOR UPDATE",
            (r.relation,),
        )
        if locked != watermark:
            return False  # reset by a TRUNCATE of the readings meanwhile: start again
        if watermark is not None:
            out.invalidated_devices += await _invalidated(conn, r, watermark, out)
        else:
            await conn.execute(
                "DELETE FROM rollup_invalidations WHERE relation = %s", (r.relation,)
            )
            # Readings older than ``start`` may have been committed since it was read (a
            # backfill beside a first refresh), their log entries just deleted: look again now,
            # after the DELETE, so they are aggregated here (later ones stay logged).
            first = await _first_hour(conn, r)
            if first is not None and first < start:
                start = first
        if watermark is None or new > watermark:
            out.buckets += await _aggregate(conn, r, start, new)
            await conn.execute(
                "UPDATE rollup_watermarks SET watermark = %s, refreshed_at = now()"
                " WHERE relation = %s",
                (new, r.relation),
            )
    return bool(new >= target)


async def _raise_threshold(conn: AsyncConnection[Any], r: Rollup, new: datetime) -> None:
    """Raise the invalidation threshold and wait for the writers that read the old one. A short
    lock timeout (under deadlock_timeout) makes the refresh, not a writer, give way if a writer
    waits on something that waits on this."""
    for attempt in range(_THRESHOLD_TRIES):
        try:
            async with conn.transaction():
                await conn.execute(
                    """SELECT set_config('lock_timeout', (least(500,
                           extract(epoch FROM current_setting('deadlock_timeout')::interval)
                           * 500))::int || 'ms', true)"""
                )
                await conn.execute(
                    "UPDATE rollup_watermarks"
                    " SET invalidation_threshold = greatest(invalidation_threshold, %s)"
                    " WHERE relation = %s",
                    (new, r.relation),
                )
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_TRIGGER_LOCK, r.relation)
                )
            return
        except errors.LockNotAvailable:
            if attempt == _THRESHOLD_TRIES - 1:
                raise
            log.info("%s: writers hold the invalidation lock; trying again", r.relation)
            await asyncio.sleep(0.1 * (attempt + 1))


async def _invalidated(
    conn: AsyncConnection[Any], r: Rollup, watermark: datetime, out: RefreshResult
) -> int:
    """Recompute the materialised hours the log says changed; returns the devices concerned."""
    # Hours before the raw retention cut-off keep what was materialised: their raw rows may be
    # gone (migration 0008), so a late reading there must not recompute them from what is left.
    cur = await conn.execute(
        f"""WITH taken AS (DELETE FROM rollup_invalidations WHERE relation = %(rel)s
                           RETURNING council_id, device_id, lowest, highest),
                 spans AS (
            SELECT council_id, device_id,
                   greatest(date_bin('1 hour', min(lowest), {ORIGIN}),
                            placewatch_retention_cutoff(%(src)s)) AS lo,
                   least(date_bin('1 hour', max(highest), {ORIGIN}) + interval '1 hour',
                         %(wm)s) AS hi
            FROM taken WHERE lowest < %(wm)s GROUP BY 1, 2)
            SELECT * FROM spans WHERE lo < hi ORDER BY 1, 2""".encode(),
        {"rel": r.relation, "wm": watermark, "src": r.source},
    )
    spans = await cur.fetchall()
    if not spans:
        return 0
    params = {
        "c": [s[0] for s in spans],
        "d": [s[1] for s in spans],
        "lo": [s[2] for s in spans],
        "hi": [s[3] for s in spans],
    }
    spans_sql = "unnest(%(c)s::text[], %(d)s::text[], %(lo)s::timestamptz[], %(hi)s::timestamptz[])"
    await conn.execute(
        f"""DELETE FROM {r.table} m USING {spans_sql} s(c, d, lo, hi)
            WHERE m.council_id = s.c AND m.device_id = s.d
              AND m.bucket >= s.lo AND m.bucket < s.hi""".encode(),
        params,
    )
    where = f"""FROM {spans_sql} s(c, d, lo, hi)
                JOIN {r.source} x ON x.council_id = s.c AND x.device_id = s.d
                                 AND x.time >= s.lo AND x.time < s.hi"""
    cur = await conn.execute(r.insert(where, "x").encode(), params)
    out.buckets += max(cur.rowcount, 0)
    return len(spans)


async def _aggregate(conn: AsyncConnection[Any], r: Rollup, start: datetime, end: datetime) -> int:
    """Materialise [start, end) for every device (each council's rows by its time index)."""
    await conn.execute(
        f"DELETE FROM {r.table} WHERE bucket >= %s AND bucket < %s".encode(), (start, end)
    )
    cur = await conn.execute("SELECT array_agg(council_id) FROM councils")
    row = await cur.fetchone()
    councils = row[0] if row and row[0] else []
    where = f"""FROM {r.source}
                WHERE council_id = ANY(%(councils)s) AND time >= %(start)s AND time < %(end)s"""
    cur = await conn.execute(
        r.insert(where).encode(), {"councils": councils, "start": start, "end": end}
    )
    return max(cur.rowcount, 0)


async def _recompute(
    conn: AsyncConnection[Any], r: Rollup, since: datetime, watermark: datetime, step: timedelta
) -> int:
    """Recompute every materialised hour from ``since`` (or the raw retention cut-off, if
    later: see :func:`_invalidated`) to the watermark, a step at a time."""
    start = await _one(
        conn,
        f"""SELECT greatest(date_bin('1 hour', %s::timestamptz, {ORIGIN}),
                            placewatch_retention_cutoff(%s))""",
        (since, r.source),
    )
    written = 0
    while start < watermark:
        end = min(watermark, start + step)
        async with conn.transaction():
            written += await _aggregate(conn, r, start, end)
        start = end
    return written


def refresh_sync(url: str, **kwargs: Any) -> list[RefreshResult]:
    """:func:`refresh_rollups` on a connection of its own, for commands and benchmarks."""

    async def run() -> list[RefreshResult]:
        async with await AsyncConnection.connect(
            url, autocommit=True, application_name="placewatch-rollups"
        ) as conn:
            return await refresh_rollups(conn, **kwargs)

    return asyncio.run(run())


def describe(results: list[RefreshResult]) -> str:
    lines = []
    for res in results:
        if res.skipped:
            lines.append(f"{res.relation}: nothing to do ({res.skipped})")
            continue
        mark = res.watermark.isoformat() if res.watermark else "none (no readings)"
        lines.append(
            f"{res.relation}: materialised to {mark}"
            f"{'' if res.caught_up else ' (not caught up)'}; {res.buckets} hourly rows written,"
            f" {res.invalidated_devices} devices' late changes, {res.steps} steps,"
            f" {res.seconds:.2f} s"
        )
    return "\n".join(lines)
