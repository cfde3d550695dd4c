"""``placewatch storage``: maintenance of what is stored."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from placewatch.settings import Settings
from storage.rollups import ROLLUPS


def add_storage_parser(sub: Any) -> None:
    storage = sub.add_parser(
        "storage", help="storage maintenance: refresh the hourly roll-ups, enforce retention"
    )
    ssub = storage.add_subparsers(dest="storage_command", required=True)
    refresh = ssub.add_parser(
        "refresh-rollups",
        help="bring the hourly roll-ups up to the current hour (plain PostgreSQL)",
        description="Materialise the *_hourly roll-ups up to the start of the current hour and "
        "fold in late readings the triggers logged, as the rules worker does every few minutes. "
        "--since first recomputes every hour from then on (after a bulk load with triggers "
        "off, say). Waits for a refresh already running. Does nothing on TimescaleDB, whose "
        "continuous aggregates are refreshed by their policies "
        "(CALL refresh_continuous_aggregate there).",
    )
    refresh.add_argument(
        "--since",
        type=_when,
        default=None,
        metavar="WHEN",
        help="recompute from this time: ISO 8601 (2026-11-01, 2026-11-01T06:00Z) or an age "
        "like 7d, 36h, 90m",
    )
    refresh.add_argument(
        "--rollup",
        action="append",
        choices=[r.relation for r in ROLLUPS],
        help="only this roll-up (repeatable; default all)",
    )

    retention = ssub.add_parser(
        "retention",
        help="delete what has outlived its retention period (run as the database owner)",
        description="Record the PLACEWATCH_RETENTION_DAYS periods in the database (the owner "
        "only may), then delete every data class's expired rows in batches, as the rules "
        "workers do every PLACEWATCH_RETENTION_INTERVAL_S. On TimescaleDB the readings and "
        "hourly roll-ups are left to their retention policies. See docs/storage.md.",
    )
    retention.add_argument(
        "--dry-run",
        action="store_true",
        help="count what would be deleted (by the periods recorded now); change nothing",
    )
    retention.add_argument(
        "--budget",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="stop after this long (default 3600); a next run carries on",
    )


def _when(text: str) -> datetime:
    from rules.durations import parse_when

    try:
        return parse_when(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def run_storage_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.storage_command == "retention":
        return _retention(args, settings)
    from storage.rollups import describe, refresh_sync

    results = refresh_sync(
        settings.database_url, wait=True, since=args.since, relations=args.rollup
    )
    print(describe(results))
    return 0


def _retention(args: argparse.Namespace, settings: Settings) -> int:
    from storage import retention

    try:
        results = retention.run_sync(
            settings.database_url,
            settings.retention_days,
            batch=settings.retention_batch,
            budget_s=args.budget,
            dry_run=args.dry_run,
        )
    except retention.RetentionError as exc:
        print(f"placewatch storage retention: {exc}", file=sys.stderr)
        return 2
    print(retention.describe(results, dry_run=args.dry_run))
    return 0 if all(r.done for r in results) else 3
