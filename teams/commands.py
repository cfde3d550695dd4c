"""``placewatch teams …`` and ``placewatch keys …``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from notify.targets import TargetPolicy
from placewatch.settings import Settings
from placewatch.yamlconfig import ConfigLoadError
from storage.database import connect
from teams.config import apply_teams, load_teams_file
from teams.keys import SCOPES, new_key


def add_teams_parser(sub: Any) -> None:
    teams = sub.add_parser("teams", help="teams, their routes and webhook endpoints")
    tsub = teams.add_subparsers(dest="teams_command", required=True)
    apply = tsub.add_parser(
        "apply",
        help="create or update teams from a teams file (YAML)",
        description="Apply a teams file: teams, routes, webhook endpoints, resident groups. "
        "See docs/delivery.md for the format.",
    )
    apply.add_argument("file", type=Path)
    tsub.add_parser("list", help="list teams with their routes and endpoints")


def add_keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="API keys of teams")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create an API key (printed once)")
    create.add_argument("team")
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        choices=SCOPES,
        help="repeat for several (default: alerts:read, alerts:write, devices:read)",
    )
    create.add_argument("--label", default=None)
    create.add_argument("--expires-days", type=int, default=None)
    lst = ksub.add_parser("list", help="list keys (never their secrets)")
    lst.add_argument("--team", default=None)
    revoke = ksub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")


def run_teams_command(args: argparse.Namespace, settings: Settings) -> int:
    with connect(settings.database_url) as conn:
        if args.teams_command == "apply":
            try:
                spec = load_teams_file(args.file)
                result = apply_teams(conn, spec, TargetPolicy.from_settings(settings))
            except ConfigLoadError as exc:
                print(exc, file=sys.stderr)
                return 1
            except ValueError as exc:
                print(f"{args.file}: {exc}", file=sys.stderr)
                return 1
            print(f"applied {len(result.teams)} teams: {', '.join(result.teams) or 'none'}")
            for endpoint, secret in result.new_secrets.items():
                print(f"new signing secret for webhook {endpoint} (shown once): {secret}")
            return 0
        rows = conn.execute(
            """SELECT t.team_id, t.council_id, t.name,
                      (SELECT count(*) FROM team_routes r WHERE r.team_id = t.team_id),
                      coalesce((SELECT string_agg(e.endpoint_id || ' ' || e.url
                                    || CASE WHEN e.enabled THEN '' ELSE ' (disabled)' END, ', ')
                                FROM webhook_endpoints e WHERE e.team_id = t.team_id), '-')
               FROM teams t ORDER BY t.council_id, t.team_id"""
        ).fetchall()
        for team_id, council, name, routes, hooks in rows:
            print(f"{council}/{team_id}  {name}  routes: {routes}  webhooks: {hooks}")
        return 0


def run_keys_command(args: argparse.Namespace, settings: Settings) -> int:
    with connect(settings.database_url) as conn:
        if args.keys_command == "create":
            key = new_key()
            expires = (
                datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
            )
            cur = conn.execute(
                """INSERT INTO api_keys (key_id, team_id, secret_hash, scopes, label, expires_at)
                   SELECT %s, team_id, %s, %s, %s, %s FROM teams WHERE team_id = %s
                   RETURNING key_id""",
                (
                    key.key_id,
                    key.secret_hash,
                    sorted(set(args.scopes or SCOPES)),
                    args.label,
                    expires,
                    args.team,
                ),
            )
            if cur.fetchone() is None:
                print(f"no team {args.team!r}", file=sys.stderr)
                return 1
            conn.commit()
            print(key.token)
            return 0
        if args.keys_command == "revoke":
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL",
                (args.key_id,),
            )
            conn.commit()
            if cur.rowcount == 0:
                print(f"no live key {args.key_id!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
            return 0
        rows = conn.execute(
            """SELECT key_id, team_id, array_to_string(scopes, ','), coalesce(label, '-'),
                      to_char(created_at, 'YYYY-MM-DD'),
                      coalesce(to_char(last_used_at, 'YYYY-MM-DD HH24:MI'), 'never'),
                      CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
                           WHEN expires_at IS NOT NULL
                           THEN 'expires ' || to_char(expires_at, 'YYYY-MM-DD')
                           ELSE 'live' END
               FROM api_keys WHERE %(team)s::text IS NULL OR team_id = %(team)s
               ORDER BY team_id, created_at""",
            {"team": args.team},
        ).fetchall()
        for key_id, team, scopes, label, created, used, state in rows:
            print(f"{key_id}  {team}  {scopes}  {label}  created {created}", end="")
            print(f"  last used {used}  {state}")
        return 0
