"""The ``placewatch`` command and its subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from placewatch.kinds import KINDS, Kind
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
    from simulators.basic import Publisher, ReadingGenerator, fleet, run_simulation
    from simulators.faults import with_faults
    from storage.database import connect
    from storage.registry import register

    kinds = tuple(Kind(k) for k in args.kinds) if args.kinds else KINDS
    devices = fleet(args.council, args.per_kind, kinds)
    if not args.no_register:
        with connect(settings.database_url) as conn:
            register(conn, args.council, args.council_name or args.council, devices)
        print(f"registered {len(devices)} devices in council {args.council}")
    publisher = Publisher(
        settings.mqtt_host,
        settings.mqtt_port,
        qos=args.qos,
        username=settings.mqtt_username,
        password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
    )
    try:
        stream = with_faults(
            iter(ReadingGenerator(devices, settings.topic_prefix, seed=args.seed)),
            settings.topic_prefix,
            args.council,
            args.bad_every,
        )
        sent = run_simulation(
            publisher,
            stream,
            rate=args.rate,
            count=args.count,
            duration_s=args.duration,
        )
        acked = publisher.wait_acked(timeout=120)
    finally:
        publisher.close()
    print(f"published {sent} messages (QoS {args.qos}); broker acknowledged all: {acked}")
    return 0 if acked else 1


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from ingest.replay import replay

    result = asyncio.run(replay(settings, reason=args.reason))
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


def _api(args: argparse.Namespace, settings: Settings) -> int:
    from api.server import run

    run(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="placewatch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="create or upgrade the database schema (idempotent)")
    sub.add_parser("ingest", help="consume MQTT readings into the database")

    sim = sub.add_parser("simulate", help="publish readings from a simulated fleet")
    sim.add_argument("--council", default="demo", help="council id (default: demo)")
    sim.add_argument("--council-name", default=None)
    sim.add_argument("--per-kind", type=int, default=5, help="devices per kind (default: 5)")
    sim.add_argument("--kinds", nargs="*", choices=[k.value for k in KINDS])
    sim.add_argument("--rate", type=float, default=20.0, help="messages/s; 0 = flat out")
    sim.add_argument("--count", type=int, default=None, help="stop after this many messages")
    sim.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    sim.add_argument("--qos", type=int, choices=(0, 1, 2), default=1)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument(
        "--bad-every",
        type=int,
        default=0,
        metavar="N",
        help="after every N valid messages publish a malformed one (default: never)",
    )
    sim.add_argument(
        "--no-register",
        action="store_true",
        help="do not register the fleet in the device registry first",
    )

    rep = sub.add_parser("replay", help="run pending dead letters through ingest again")
    rep.add_argument("--reason", default=None, help="only dead letters with this reason")

    sub.add_parser("status", help="print what is stored: readings, dead letters, devices")

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
    sub.add_parser("api", help="serve the alerts API and acknowledge pages (OpenAPI at /docs)")
    return parser


_COMMANDS = {
    "migrate": _migrate,
    "ingest": _ingest,
    "simulate": _simulate,
    "replay": _replay,
    "status": _status,
    "rules": _rules,
    "alerts": _alerts,
    "teams": _teams,
    "keys": _keys,
    "notify": _notify,
    "webhooks": _notify,
    "devices": _devices,
    "models": _models,
    "api": _api,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    return _COMMANDS[args.command](args, settings)


if __name__ == "__main__":
    sys.exit(main())
