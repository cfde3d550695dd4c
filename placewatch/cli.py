"""The ``placewatch`` command and its subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import psycopg
from pydantic import ValidationError

from notify.links import LinkSecretMissing
from placewatch.logs import setup_logging
from placewatch.settings import Settings


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from storage.migrate import migrate

    result = migrate(settings.database_url, settings.timescaledb)
    applied = ", ".join(f"{v:04d}" for v in result.applied) or "none (up to date)"
    print(f"schema version {result.current:04d} on {result.flavour.value}; applied: {applied}")
    return 0


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.service import run

    run(settings)
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.commands import run_simulate_command

    return run_simulate_command(args, settings)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from ingest.replay import replay

    result = asyncio.run(replay(settings, reason=args.reason, council=args.council))
    still = ", ".join(f"{r}: {n}" for r, n in result.still_rejected.items()) or "none"
    print(
        f"replayed dead letters: {result.stored} stored, {result.duplicates} already stored; "
        f"still rejected: {still}"
    )
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from storage.status import collect, render

    print(render(collect(settings.database_url)))
    return 0


def _storage(args: argparse.Namespace, settings: Settings) -> int:
    from storage.commands import run_storage_command

    return run_storage_command(args, settings)


def _rules(args: argparse.Namespace, settings: Settings) -> int:
    from rules.commands import run_rules_command

    return run_rules_command(args, settings)


def _alerts(args: argparse.Namespace, settings: Settings) -> int:
    from rules.commands import run_alerts_command

    return run_alerts_command(args, settings)


def _teams(args: argparse.Namespace, settings: Settings) -> int:
    from teams.commands import run_teams_command

    return run_teams_command(args, settings)


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from teams.commands import run_keys_command

    return run_keys_command(args, settings)


def _notify(args: argparse.Namespace, settings: Settings) -> int:
    from notify.commands import run_notify_command

    return run_notify_command(args, settings)


def _devices(args: argparse.Namespace, settings: Settings) -> int:
    from devices.commands import run_devices_command

    return run_devices_command(args, settings)


def _models(args: argparse.Namespace, settings: Settings) -> int:
    from devices.commands import run_models_command

    return run_models_command(args, settings)


def _care(args: argparse.Namespace, settings: Settings) -> int:
    from care.commands import run_care_command

    return run_care_command(args, settings)


def _dashboards(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.commands import run_dashboards_command

    return run_dashboards_command(args)


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    from placewatch.brokeracl import run_broker_command

    return run_broker_command(args, settings)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from placewatch.demo.command import run_demo

    return run_demo(args, settings)


def _api(args: argparse.Namespace, settings: Settings) -> int:
    from api.server import run

    run(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="placewatch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="create or upgrade the database schema (idempotent)")
    sub.add_parser("ingest", help="consume MQTT readings into the database")

    from simulators.commands import add_simulate_parser

    add_simulate_parser(sub)

    rep = sub.add_parser("replay", help="run pending dead letters through ingest again")
    rep.add_argument("--reason", default=None, help="only dead letters with this reason")
    rep.add_argument("--council", default=None, help="only dead letters of this council")

    sub.add_parser("status", help="print what is stored: readings, dead letters, devices")

    from storage.commands import add_storage_parser

    add_storage_parser(sub)

    from rules.commands import add_alerts_parser, add_rules_parser

    add_rules_parser(sub)
    add_alerts_parser(sub)

    from teams.commands import add_keys_parser, add_teams_parser

    add_teams_parser(sub)
    add_keys_parser(sub)

    from devices.commands import add_devices_parser, add_models_parser

    add_devices_parser(sub)
    add_models_parser(sub)

    from notify.commands import add_notify_parsers

    add_notify_parsers(sub)

    from care.commands import add_care_parser

    add_care_parser(sub)

    from dashboards.commands import add_dashboards_parser

    add_dashboards_parser(sub)

    from placewatch.brokeracl import add_broker_parser

    add_broker_parser(sub)
    sub.add_parser("api", help="serve the alerts API and acknowledge pages (OpenAPI at /docs)")

    from placewatch.demo.command import add_demo_parser

    add_demo_parser(sub)
    return parser


_COMMANDS = {
    "migrate": _migrate,
    "ingest": _ingest,
    "simulate": _simulate,
    "replay": _replay,
    "status": _status,
    "storage": _storage,
    "rules": _rules,
    "alerts": _alerts,
    "teams": _teams,
    "keys": _keys,
    "notify": _notify,
    "webhooks": _notify,
    "devices": _devices,
    "models": _models,
    "care": _care,
    "dashboards": _dashboards,
    "broker": _broker,
    "api": _api,
    "demo": _demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"placewatch: invalid settings (PLACEWATCH_* or .env):\n{exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    try:
        return _COMMANDS[args.command](args, settings)
    except (psycopg.OperationalError, LinkSecretMissing) as exc:
        # A command that could not start: one line that says why, not a traceback. (The
        # services retry a database that goes away once they are running.)
        reason = " ".join(str(exc).split())
        print(f"placewatch {args.command}: {reason}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `placewatch devices list | head`: end quietly, as Unix tools do (SIGPIPE itself stays
        # ignored: the services must survive a peer closing a socket).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
