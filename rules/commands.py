"""``placewatch rules …`` and ``placewatch alerts …``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.audit import Accessor, record_access
from placewatch.settings import Settings
from rules.durations import parse_when


def add_rules_parser(sub: Any) -> None:
    rules = sub.add_parser("rules", help="the rules engine: run workers, check files, backtest")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    rsub.add_parser(
        "run",
        help="run a rules worker (safe as N replicas; SIGHUP reloads the rule files)",
        description="Evaluate committed readings and timers, open and resolve alerts.",
    )
    check = rsub.add_parser(
        "check",
        help="validate rule files and list the rules",
        description="Validate the configured rule files (or the given ones) and list the rules; "
        "errors name the file, line and field. Exit status 1 on any error.",
    )
    check.add_argument("files", nargs="*", help="rule files or directories (default: configured)")
    bt = rsub.add_parser(
        "backtest",
        help="list what the rules would have raised over stored readings",
        description="Replay stored readings through the rules without touching live alerts.",
    )
    bt.add_argument(
        "--from",
        dest="start",
        type=parse_when,
        required=True,
        help="start: ISO time (UTC unless given) or a duration ago, e.g. 7d",
    )
    bt.add_argument("--to", dest="end", type=parse_when, default=None, help="end (default: now)")
    bt.add_argument("--rule", default=None, help="only this rule id")
    bt.add_argument("--council", default=None, help="only this council")
    bt.add_argument("--json", action="store_true", help="one JSON object per line")


def add_alerts_parser(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="list, acknowledge and resolve alerts")
    asub = alerts.add_subparsers(dest="alerts_command", required=True)
    ls = asub.add_parser("list", help="list alerts (default: not resolved)")
    ls.add_argument("--all", action="store_true", help="include resolved alerts")
    ls.add_argument("--council", default=None)
    ls.add_argument("--limit", type=int, default=50)
    for name, what in (("ack", "acknowledge"), ("resolve", "resolve")):
        p = asub.add_parser(name, help=f"{what} an alert")
        p.add_argument("alert_id", type=int)
        p.add_argument("--by", required=True, help="who (recorded in the audit trail)")
        p.add_argument("--note", default=None)


def run_rules_command(args: argparse.Namespace, settings: Settings) -> int:
    from rules.loader import RuleLoadError, load_rules
    from rules.worker import load_configured_rules, rule_paths, run

    if args.rules_command == "run":
        run(settings)
        return 0
    if args.rules_command == "check":
        from pathlib import Path

        paths = [Path(f) for f in args.files] or rule_paths(settings)
        try:
            ruleset = load_rules(paths)
        except RuleLoadError as exc:
            print(exc)
            return 1
        for r in ruleset.rules:
            flag = "" if r.enabled else " (disabled)"
            print(f"{r.id:32} {r.kind:18} {r.severity:8}{flag} {r.description}")
        print(f"{len(ruleset.rules)} rules from {', '.join(ruleset.sources)}")
        return 0
    ruleset = load_configured_rules(settings)
    return asyncio.run(_backtest(args, settings, ruleset))


async def _backtest(args: argparse.Namespace, settings: Settings, ruleset: Any) -> int:
    from rules.backtest import backtest, render

    end = args.end or datetime.now(UTC)
    async with await AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        fired = await backtest(conn, ruleset, args.start, end, args.rule, args.council)
    if args.json:
        for f in fired:
            print(
                json.dumps(
                    {
                        "rule_id": f.rule_id,
                        "council_id": f.council_id,
                        "subject": {"type": f.subject_type, "id": f.subject_id},
                        "opened_at": f.opened_at.isoformat(),
                        "resolved_at": f.resolved_at.isoformat() if f.resolved_at else None,
                        "summary": f.summary,
                    }
                )
            )
    else:
        print(render(fired))
    return 0


def run_alerts_command(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_alerts(args, settings))


async def _alerts(args: argparse.Namespace, settings: Settings) -> int:
    from rules import alerts

    async with await AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        if args.alerts_command == "list":
            async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    """SELECT alert_id, council_id, rule_id, subject_type, subject_id, severity,
                              state, opened_at, summary, resident_id
                       FROM alerts
                       WHERE (%(all)s OR state <> 'resolved')
                         AND (%(c)s::text IS NULL OR council_id = %(c)s)
                       ORDER BY opened_at DESC LIMIT %(n)s""",
                    {"all": args.all, "c": args.council, "n": args.limit},
                )
                rows = await cur.fetchall()
                # Residents' alerts read at the command line are care data too.
                who = Accessor(None, f"cli:{getpass.getuser()}", None)
                await record_access(cur, who, "cli.alerts.list", rows)
            for r in rows:
                print(
                    f"#{r['alert_id']:<6} {r['state']:12} {r['severity']:8} "
                    f"{r['opened_at']:%Y-%m-%d %H:%M} {r['rule_id']} "
                    f"{r['subject_type']} {r['council_id']}/{r['subject_id']}\n"
                    f"        {r['summary']}"
                )
            print(f"{len(rows)} alerts")
            return 0
        actor = f"cli:{args.by}"
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as dcur:
            if args.alerts_command == "ack":
                done = await alerts.acknowledge_alert(dcur, args.alert_id, actor, args.note)
            else:
                done = await alerts.resolve_alert(dcur, args.alert_id, actor, note=args.note)
        print(f"alert {args.alert_id}: {'done' if done else 'not found or not in a state for it'}")
        return 0 if done else 1
