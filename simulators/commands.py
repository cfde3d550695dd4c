"""``placewatch simulate``: the command line of the simulators.

Three things to simulate: a scenario (``--scenario``), load (``--load``), or, with neither, the
basic fleet of random walks the demo uses (``--per-kind`` devices of each kind).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from placewatch.kinds import KINDS, Kind
from placewatch.settings import Settings
from placewatch.yamlconfig import ConfigLoadError
from simulators.envelopes import FORMATS

if TYPE_CHECKING:
    from simulators.engine import RunResult
    from simulators.scenario import Scenario

_DESCRIPTION = """\
Publish simulated sensor readings over MQTT, the way devices and network servers do.

  placewatch simulate --scenario borough --backfill 7d     a week of the example borough
  placewatch simulate --scenario borough --speed 1440      a simulated day per minute
  placewatch simulate --scenario borough                   the borough, live, in real time
  placewatch simulate --load --devices 10000 --duration 60 load: as fast as the broker takes it
  placewatch simulate --per-kind 5 --rate 50               the demo's basic fleet

Scenarios register their council, devices and network applications first (unless
--no-register). The broker and topic prefix come from PLACEWATCH_MQTT_* and
PLACEWATCH_TOPIC_PREFIX; see docs/simulators.md for the scenario format."""

_TIME_HELP = """\
time modes (scenarios): a reading stamped t is published at max(start of publishing +
(t - start) / speed, t): never before the moment it describes, so ingest never sees a reading
from the future. Without --start: real time from now. --backfill 7d: from local midnight 7 days
ago until now (or --until), at once. A --start in the past: the past at once (or at --speed),
then real time until --until. --speed alone starts at yesterday's local midnight. WHEN is now,
an ISO date or date-time (UTC unless it says), a duration ago (7d, 36h), or +DURATION after
the start (--until only)."""


def add_simulate_parser(sub: Any) -> argparse.ArgumentParser:
    sim: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="publish readings from a simulated place, fleet or load",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = sim.add_argument_group("what to simulate")
    what.add_argument(
        "--scenario",
        metavar="NAME|FILE",
        help="a place described in a scenario file: a path, or a built-in name (borough)",
    )
    what.add_argument(
        "--load",
        action="store_true",
        help="load mode: --devices devices publishing flat out (or at --rate) from "
        "--processes processes, for benchmarks",
    )

    scen = sim.add_argument_group("scenarios", _TIME_HELP)
    scen.add_argument(
        "--format",
        choices=FORMATS,
        default="native",
        help="native JSON on {prefix}/{council}/{kind}/{device}; the same readings as The Things "
        "Stack v3 uplinks (ttn), ChirpStack v4 up events (chirpstack) or SenML on "
        "{prefix}/{council}/senml; mixed: each device as its scenario group says "
        "(default: native)",
    )
    scen.add_argument(
        "--backfill",
        metavar="DURATION",
        help="push this much history (e.g. 7d) through MQTT as fast as it is taken, then stop",
    )
    scen.add_argument(
        "--speed",
        type=float,
        metavar="FACTOR",
        help="simulated seconds per wall-clock second while the run is behind the clock: "
        "1 = real time, 1440 = a day per minute (default: at once)",
    )
    scen.add_argument("--start", metavar="WHEN", help="first simulated moment (see time modes)")
    scen.add_argument(
        "--until",
        metavar="WHEN",
        help="last simulated moment; default: now for a backfill, never otherwise",
    )
    scen.add_argument(
        "--faults",
        metavar="NAME=RATE,...",
        help="inject faults: malformed, out_of_range, duplicate, late, out_of_order (shares of "
        "messages), clock_skew, silent (shares of devices), e.g. duplicate=0.01,late=0.005; "
        "adds to the scenario's own faults",
    )
    scen.add_argument(
        "--output",
        metavar="FILE",
        help="write 'topic<TAB>payload' lines to FILE ('-' for stdout) instead of publishing "
        "(nothing is registered)",
    )

    load = sim.add_argument_group("load")
    load.add_argument(
        "--devices", type=int, default=10_000, help="devices in load mode (default: 10000)"
    )
    load.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 2,
        help="publishing processes in load mode (default: one per CPU)",
    )

    basic = sim.add_argument_group("the basic fleet (without --scenario)")
    basic.add_argument(
        "--council",
        default=None,
        help="council id of the basic fleet (default: demo) or of load mode (default: load)",
    )
    basic.add_argument("--council-name", default=None, help="council name (default: its id)")
    basic.add_argument("--per-kind", type=int, default=5, help="devices per kind (default: 5)")
    basic.add_argument(
        "--kinds",
        nargs="*",
        choices=[k.value for k in KINDS],
        help="only these kinds (default: all four)",
    )

    common = sim.add_argument_group("publishing")
    common.add_argument(
        "--rate",
        type=float,
        default=None,
        help="most messages per second; 0 = as fast as possible (default: 20 for the basic "
        "fleet, no cap for scenarios and load)",
    )
    common.add_argument(
        "--count", type=int, default=None, help="stop after publishing this many messages"
    )
    common.add_argument(
        "--duration", type=float, default=None, help="stop after this many wall-clock seconds"
    )
    common.add_argument(
        "--qos", type=int, choices=(0, 1, 2), default=1, help="MQTT QoS (default: 1)"
    )
    common.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the same seed (and --start/--until) publishes byte-identical messages (default: 0)",
    )
    common.add_argument(
        "--bad-every",
        type=int,
        default=0,
        metavar="N",
        help="after every N valid messages publish a malformed one (default: never)",
    )
    common.add_argument(
        "--no-register",
        action="store_true",
        help="do not register the devices in the device registry first",
    )
    common.add_argument(
        "--max-inflight",
        type=int,
        default=None,
        metavar="N",
        help="most unacknowledged QoS 1 messages (default: what the broker allows)",
    )
    common.add_argument(
        "--no-progress", action="store_true", help="no progress bar (it goes to stderr)"
    )
    return sim


def run_simulate_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.scenario and args.load:
            raise ValueError("--scenario and --load exclude each other")
        if args.scenario:
            return 0 if run_scenario_command(args, settings).acknowledged else 1
        _no_scenario_options(args)
        if args.load:
            return _run_load(args, settings)
        return _run_basic(args, settings)
    except ConfigLoadError as exc:
        print(f"placewatch simulate: scenario problems:\n{exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"placewatch simulate: {exc}", file=sys.stderr)
        return 2


def _no_scenario_options(args: argparse.Namespace) -> None:
    for flag in ("backfill", "speed", "start", "until", "faults", "output"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag} needs --scenario")
    if args.format != "native":
        raise ValueError("--format needs --scenario (the basic fleet and load send native JSON)")


def _password(settings: Settings) -> str | None:
    return settings.mqtt_password.get_secret_value() if settings.mqtt_password else None


# -- scenarios ------------------------------------------------------------------------------------


def run_scenario_command(args: argparse.Namespace, settings: Settings) -> RunResult:
    """``simulate --scenario``: what was published (raises ValueError, ConfigLoadError)."""
    from simulators.clock import plan_times
    from simulators.engine import RunOptions, run
    from simulators.faults import parse_faults
    from simulators.scenario import load_scenario
    from simulators.sinks import FileSink, PahoSink, Sink

    if args.council is not None:
        raise ValueError("a scenario names its own council (council: id in the file)")
    if args.kinds or args.per_kind != 5:
        raise ValueError(
            "--per-kind and --kinds are for the basic fleet: a scenario lists its devices"
        )
    scenario = load_scenario(args.scenario)
    plan = plan_times(
        now=datetime.now(UTC),
        tz=scenario.timezone,
        backfill=args.backfill,
        speed=args.speed,
        start=args.start,
        until=args.until,
    )
    extra = parse_faults(args.faults) if args.faults else None
    rates = scenario.spec.faults
    if extra is not None:
        rates = rates.model_copy(
            update={k: v for k, v in extra.model_dump().items() if v}  # the command line adds
        )
    if not args.output and not args.no_register:
        _register_scenario(settings, scenario)
    sink: Sink
    if args.output:
        sink = FileSink(args.output)
    elif plan.bounded_past and args.qos < 2:
        sink = _wire(settings, args, "placewatch-sim")
    else:
        sink = PahoSink(_paho(settings, args))
    options = RunOptions(
        prefix=settings.topic_prefix,
        fmt=args.format,
        seed=args.seed,
        faults=rates,
        bad_every=args.bad_every,
        count=args.count,
        duration_s=args.duration,
        rate=args.rate or 0.0,
        progress=not args.no_progress and args.output != "-",
    )
    try:
        result = run(scenario, plan, sink, options)
    finally:
        sink.close()
    kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(result.by_kind.items()))
    span = (
        f"{result.first:%Y-%m-%d %H:%M} to {result.last:%Y-%m-%d %H:%M} UTC"
        if result.first and result.last
        else "nothing"
    )
    rate = result.published / result.seconds if result.seconds else 0.0
    where = args.output or f"QoS {args.qos}, format {args.format}"
    print(
        f"{scenario.name}: published {result.published:,} messages ({where}) in "
        f"{result.seconds:.1f} s, {rate:,.0f} msg/s; readings {span} ({plan.mode}; stopped by "
        f"{result.stopped_by})",
        file=sys.stderr if args.output == "-" else sys.stdout,
    )
    info = sys.stderr if args.output == "-" else sys.stdout
    print(f"  by kind: {kinds or 'none'}", file=info)
    if result.faults:
        faults = ", ".join(f"{k} {n:,}" for k, n in sorted(result.faults.items()))
        print(f"  faults injected: {faults}", file=info)
    if not args.output:
        print(f"  broker acknowledged all: {result.acknowledged}", file=info)
    return result


def _register_scenario(settings: Settings, scenario: Scenario) -> None:
    _register(
        settings,
        scenario.council_id,
        scenario.council_name,
        scenario.devices(),
        scenario.applications(),
    )


# -- load -----------------------------------------------------------------------------------------


def _run_load(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.basic import fleet
    from simulators.load import LoadSpec, run_load

    council = args.council or "load"
    kinds = tuple(Kind(k) for k in args.kinds) if args.kinds else KINDS
    per_kind = max(1, args.devices // len(kinds))
    if args.qos == 2:
        raise ValueError("load mode publishes with QoS 0 or 1")
    if args.processes < 1:
        raise ValueError("--processes must be at least 1")
    if not args.no_register:
        _register(settings, council, args.council_name, fleet(council, per_kind, kinds))
    spec = LoadSpec(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        prefix=settings.topic_prefix,
        council=council,
        per_kind=per_kind,
        kinds=kinds,
        processes=args.processes,
        qos=args.qos,
        seed=args.seed,
        rate=args.rate or 0.0,
        count=args.count,
        duration_s=args.duration if args.duration is not None or args.count else 60.0,
        username=settings.mqtt_username,
        password=_password(settings),
        max_inflight=args.max_inflight,
    )
    result = run_load(spec, progress=not args.no_progress)
    print(
        f"load: {result.sent:,} messages from {spec.devices:,} devices in {spec.processes} "
        f"processes, {result.seconds:.1f} s: {result.rate:,.0f} msg/s (QoS {args.qos}, from "
        f"the first publish to the last acknowledgement)"
    )
    for problem in result.errors:
        print(f"  {problem}")
    if result.refused:
        print(f"  the broker refused {result.refused:,} messages")
    print(f"  broker acknowledged all: {result.acknowledged}")
    return 0 if result.acknowledged else 1


# -- the basic fleet ------------------------------------------------------------------------------


def _register(
    settings: Settings,
    council: str,
    name: str | None,
    devices: list[Any],
    applications: list[Any] | None = None,
) -> None:
    from storage.database import connect
    from storage.registry import register

    with connect(settings.database_url) as conn:
        register(conn, council, name or council, devices, applications or ())
    apps = f" and {len(applications)} network applications" if applications is not None else ""
    print(f"registered {len(devices):,} devices{apps} in council {council}")


def _paho(settings: Settings, args: argparse.Namespace) -> Any:
    from simulators.basic import Publisher

    return Publisher(
        settings.mqtt_host,
        settings.mqtt_port,
        qos=args.qos,
        max_inflight=args.max_inflight or 1000,
        username=settings.mqtt_username,
        password=_password(settings),
    )


def _wire(settings: Settings, args: argparse.Namespace, name: str) -> Any:
    from simulators.wire import WirePublisher

    return WirePublisher(
        settings.mqtt_host,
        settings.mqtt_port,
        f"{name}-{os.getpid()}",
        qos=args.qos,
        username=settings.mqtt_username,
        password=_password(settings),
        max_inflight=args.max_inflight,
    )


def _run_basic(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.basic import ReadingGenerator, fleet, run_simulation
    from simulators.faults import with_faults

    council = args.council or "demo"
    kinds = tuple(Kind(k) for k in args.kinds) if args.kinds else KINDS
    devices = fleet(council, args.per_kind, kinds)
    if not args.no_register:
        _register(settings, council, args.council_name, devices)
    publisher = _paho(settings, args)
    try:
        stream = with_faults(
            iter(ReadingGenerator(devices, settings.topic_prefix, seed=args.seed)),
            settings.topic_prefix,
            council,
            args.bad_every,
        )
        sent = run_simulation(
            publisher,
            stream,
            rate=20.0 if args.rate is None else args.rate,
            count=args.count,
            duration_s=args.duration,
        )
        acked = publisher.wait_acked(timeout=120)
    finally:
        publisher.close()
    print(f"published {sent} messages (QoS {args.qos}); broker acknowledged all: {acked}")
    return 0 if acked else 1
