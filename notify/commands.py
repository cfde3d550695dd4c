"""``placewatch notify`` and ``placewatch webhooks …``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection

from notify.store import redeliver
from placewatch.settings import Settings
from rules.durations import parse_when


def add_notify_parsers(sub: Any) -> None:
    sub.add_parser(
        "notify",
        help="run the webhook dispatcher (safe as N replicas)",
        description="Deliver alert events to the teams' webhook endpoints: signed, retried, "
        "per-endpoint isolation, dead letters after PLACEWATCH_NOTIFY_GIVE_UP_AFTER_S.",
    )
    hooks = sub.add_parser("webhooks", help="webhook endpoints and deliveries")
    hsub = hooks.add_subparsers(dest="webhooks_command", required=True)
    hsub.add_parser("list", help="endpoints with pending and dead deliveries and circuit state")
    dl = hsub.add_parser("deliveries", help="recent deliveries, newest first")
    dl.add_argument("--endpoint", default=None)
    dl.add_argument("--state", choices=("pending", "delivered", "dead"), default=None)
    dl.add_argument("--limit", type=int, default=20)
    att = hsub.add_parser("attempts", help="every attempt of one delivery")
    att.add_argument("delivery_id", type=int)
    red = hsub.add_parser(
        "redeliver",
        help="send dead-lettered deliveries again (same webhook-id and body)",
        description="Put dead deliveries back in the queue. Give --endpoint, --delivery or "
        "--since (or --all) so that what is resent is what was meant.",
    )
    red.add_argument("--endpoint", default=None)
    red.add_argument("--delivery", dest="deliveries", type=int, action="append", default=None)
    red.add_argument("--since", type=parse_when, default=None, help="ISO time or a duration ago")
    red.add_argument("--all", action="store_true", help="every dead delivery")


def run_notify_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "notify":
        from notify.dispatcher import run

        run(settings)
        return 0
    return asyncio.run(_webhooks(args, settings))


async def _webhooks(args: argparse.Namespace, settings: Settings) -> int:
    async with await AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        cmd = args.webhooks_command
        if cmd == "redeliver":
            if not (args.endpoint or args.deliveries or args.since or args.all):
                print("say which: --endpoint, --delivery, --since or --all", file=sys.stderr)
                return 2
            n = await redeliver(
                conn,
                timedelta(seconds=settings.notify_give_up_after_s),
                endpoint_id=args.endpoint,
                delivery_ids=args.deliveries,
                since=args.since,
            )
            await conn.execute("SELECT pg_notify('placewatch_webhook_deliveries', '')")
            print(f"{n} dead deliveries queued again")
            return 0
        if cmd == "list":
            cur = await conn.execute(
                """SELECT e.endpoint_id, e.team_id, e.url, e.enabled, e.max_concurrency,
                          e.consecutive_failures,
                          coalesce(e.circuit_open_until > now(), false),
                          count(*) FILTER (WHERE d.state = 'pending'),
                          count(*) FILTER (WHERE d.state = 'dead'),
                          count(*) FILTER (WHERE d.state = 'delivered')
                   FROM webhook_endpoints e
                   LEFT JOIN webhook_deliveries d USING (endpoint_id)
                   GROUP BY e.endpoint_id ORDER BY e.team_id, e.endpoint_id"""
            )
            for (
                ep,
                team,
                url,
                enabled,
                conc,
                fails,
                open_,
                pend,
                dead,
                done,
            ) in await cur.fetchall():
                state = "disabled" if not enabled else ("circuit OPEN" if open_ else "ok")
                print(
                    f"{ep} ({team}) {url}  {state}  concurrency {conc}  failures in a row "
                    f"{fails}  pending {pend}  dead {dead}  delivered {done}"
                )
            return 0
        if cmd == "deliveries":
            cur = await conn.execute(
                """SELECT delivery_id, webhook_id, endpoint_id, alert_id, event, state, attempts,
                          to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'),
                          coalesce(last_error, last_status::text, '')
                   FROM webhook_deliveries
                   WHERE (%(ep)s::text IS NULL OR endpoint_id = %(ep)s)
                     AND (%(st)s::text IS NULL OR state = %(st)s)
                   ORDER BY delivery_id DESC LIMIT %(n)s""",
                {"ep": args.endpoint, "st": args.state, "n": args.limit},
            )
            for row in await cur.fetchall():
                print("  ".join(str(v) for v in row))
            return 0
        cur = await conn.execute(
            """SELECT attempt, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS.MS'),
                      round(latency_ms::numeric, 1), coalesce(status::text, '-'),
                      coalesce(error, ''), worker
               FROM webhook_attempts WHERE delivery_id = %s ORDER BY id""",
            (args.delivery_id,),
        )
        rows = await cur.fetchall()
        if not rows:
            print(f"no attempts of delivery {args.delivery_id}", file=sys.stderr)
            return 1
        for attempt, at, ms, status, error, worker in rows:
            print(f"#{attempt} {at}  {ms} ms  status {status}  {error}  ({worker})")
        return 0
