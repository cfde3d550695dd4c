"""Retention per data class (migration 0008; docs/storage.md, "Retention").

The periods live in the database (``retention_policies``), which only the owner may change:
``placewatch storage retention`` (run as the owner) first writes the ``PLACEWATCH_RETENTION_DAYS``
overrides there, then deletes. The rules workers run the same deletion on a schedule as
``placewatch_rules``, which may only call ``placewatch_retention_purge`` (a function that runs
as the owner and deletes what the owner's periods say has expired); they cannot change a period
or delete anything else.

Deletion goes in bounded batches, one short transaction each (``batch`` rows at most), for at
most ``budget_s`` per run; what is left waits for the next run. Raw readings on plain PostgreSQL
are deleted only in whole hours before their roll-up's watermark (already materialised), and the
deletion is not logged as a late change, so the hourly roll-ups keep what they had. On
TimescaleDB the readings and roll-ups are not listed (the 0001 retention policies drop their
chunks); the plain tables (dead letters, deliveries, the access audit) are, on both flavours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

log = logging.getLogger(__name__)

# One worker deletes at a time; the others skip (a transaction-level try-lock per batch).
_LOCK = 0x706C_7265_7465  # "plrete"

# What expires, by class: (relation, time column, extra condition). The deletion itself is in
# placewatch_retention_purge (0008); this is for --dry-run's counts, which the owner runs.
CLASSES: dict[str, tuple[str, str, str]] = {
    "bin_fill": ("bin_fill", "time", ""),
    "air_quality": ("air_quality", "time", ""),
    "flood_level": ("flood_level", "time", ""),
    "home_activity": ("home_activity", "time", ""),
    "bin_fill_hourly": ("bin_fill_hourly_materialized", "bucket", ""),
    "air_quality_hourly": ("air_quality_hourly_materialized", "bucket", ""),
    "flood_level_hourly": ("flood_level_hourly_materialized", "bucket", ""),
    "home_activity_hourly": ("home_activity_hourly_materialized", "bucket", ""),
    "dead_letters": ("dead_letters", "last_received_at", ""),
    "webhook_deliveries": ("webhook_deliveries", "created_at", " AND state <> 'pending'"),
    "access_audit": ("access_audit", "at", ""),
}


@dataclass
class ClassResult:
    data_class: str
    keep: timedelta
    cutoff: datetime | None  # None: nothing has expired yet
    deleted: int = 0
    batches: int = 0
    done: bool = True  # False: the budget ran out (or another worker holds the lock)
    expired: int | None = None  # --dry-run: rows that would go


async def policies(conn: AsyncConnection[Any]) -> dict[str, timedelta]:
    cur = await conn.execute("SELECT data_class, keep FROM retention_policies ORDER BY 1")
    return {str(c): k for c, k in await cur.fetchall()}


class RetentionError(ValueError):
    pass


def check_rollups_outlive_raw(periods: Mapping[str, timedelta]) -> None:
    """An hourly roll-up kept for less time than its raw readings would lose hours whose raw
    rows still exist (the roll-up view reads raw rows only after its watermark)."""
    for kind in ("bin_fill", "air_quality", "flood_level", "home_activity"):
        raw, hourly = periods.get(kind), periods.get(f"{kind}_hourly")
        if raw is not None and hourly is not None and hourly < raw:
            raise RetentionError(
                f"{kind}_hourly would be kept {hourly.days} days, less than {kind}'s "
                f"{raw.days}: keep a roll-up at least as long as its readings"
            )


async def apply_periods(conn: AsyncConnection[Any], days: Mapping[str, int]) -> list[str]:
    """Write the configured periods (owner only); returns the classes whose period changed.
    Classes the database does not list (the readings on TimescaleDB) are reported, not added."""
    current = await policies(conn)
    check_rollups_outlive_raw(
        {**current, **{c: timedelta(days=n) for c, n in days.items() if c in current}}
    )
    changed = []
    for data_class, n in sorted(days.items()):
        if data_class not in current:
            log.warning(
                "retention of %s is not kept here (on TimescaleDB its retention policy is:"
                " SELECT remove_retention_policy(...), add_retention_policy(...))",
                data_class,
            )
            continue
        if current[data_class] != timedelta(days=n):
            await conn.execute(
                "UPDATE retention_policies SET keep = make_interval(days => %s),"
                " updated_at = now() WHERE data_class = %s",
                (n, data_class),
            )
            changed.append(data_class)
    return changed


def differences(current: Mapping[str, timedelta], days: Mapping[str, int]) -> list[str]:
    """Configured periods the database does not have yet (a worker only reports them)."""
    return [
        f"{c}: {n} days configured, {current[c].days} days in the database"
        for c, n in sorted(days.items())
        if c in current and current[c] != timedelta(days=n)
    ]


async def purge(
    conn: AsyncConnection[Any],
    *,
    batch: int = 5_000,
    budget_s: float = 10.0,
    dry_run: bool = False,
    classes: list[str] | None = None,
    wait_for_lock: bool = False,
) -> list[ClassResult]:
    """Delete expired rows of each class (``conn`` in autocommit mode), a batch per
    transaction, until none is left or ``budget_s`` has passed. A worker skips a class while
    another deletes; ``wait_for_lock`` (the command) waits for that batch instead."""
    lock = (
        "true FROM pg_advisory_xact_lock(%s)" if wait_for_lock else "pg_try_advisory_xact_lock(%s)"
    )
    started = time.monotonic()
    results = []
    for data_class, keep in (await policies(conn)).items():
        if classes is not None and data_class not in classes:
            continue
        # None: nothing expires yet (readings whose roll-up has not materialised any hour).
        cur = await conn.execute(
            "SELECT nullif(placewatch_retention_cutoff(%s), '-infinity')", (data_class,)
        )
        row = await cur.fetchone()
        cutoff = row[0] if row else None
        res = ClassResult(data_class, keep, cutoff)
        results.append(res)
        if dry_run:
            res.expired = await _count_expired(conn, data_class, cutoff)
            continue
        while True:
            if time.monotonic() - started > budget_s:
                res.done = False
                break
            async with conn.transaction():
                cur = await conn.execute(f"SELECT {lock}".encode(), (_LOCK,))
                got = await cur.fetchone()
                if not (got and got[0]):
                    res.done = False
                    break
                cur = await conn.execute(
                    "SELECT placewatch_retention_purge(%s, %s)", (data_class, batch)
                )
                got = await cur.fetchone()
                n = int(got[0]) if got else 0
            res.deleted += n
            res.batches += 1
            if n < batch:
                break
    return results


async def _count_expired(conn: AsyncConnection[Any], data_class: str, cutoff: Any) -> int:
    if cutoff is None:
        return 0
    relation, column, extra = CLASSES[data_class]
    cur = await conn.execute(
        f"SELECT count(*) FROM {relation} WHERE {column} < %s{extra}".encode(), (cutoff,)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def describe(results: list[ClassResult], dry_run: bool = False) -> str:
    lines = []
    for r in results:
        until = r.cutoff.isoformat() if r.cutoff is not None else "-"
        if dry_run:
            what = f"{r.expired} rows would be deleted"
        else:
            what = f"{r.deleted} rows deleted in {r.batches} batches"
            if not r.done:
                what += " (not finished: budget spent or another worker deleting)"
        lines.append(f"{r.data_class}: kept {r.keep.days} days; before {until}: {what}")
    return "\n".join(lines)


def run_sync(
    url: str, days: Mapping[str, int], *, batch: int, budget_s: float, dry_run: bool
) -> list[ClassResult]:
    """The command: as the owner, record the configured periods (unless a dry run), then
    delete (or count) what has expired."""

    async def run() -> list[ClassResult]:
        async with await AsyncConnection.connect(
            url, autocommit=True, application_name="placewatch-retention"
        ) as conn:
            if dry_run:
                for line in differences(await policies(conn), days):
                    log.warning("not recorded in a dry run: %s", line)
            else:
                for data_class in await apply_periods(conn, days):
                    log.info("retention period of %s recorded", data_class)
            return await purge(
                conn, batch=batch, budget_s=budget_s, dry_run=dry_run, wait_for_lock=True
            )

    return asyncio.run(run())
