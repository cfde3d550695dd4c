"""``placewatch devices …`` and ``placewatch models …``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from devices.mapping import CounterDelta, MappingError, counter_rise, to_reading
from devices.models import (
    STORED_MODELS_SQL,
    ModelCatalog,
    builtin_models,
    catalog_of,
    load_model_file,
    spec_json,
)
from placewatch.settings import Settings
from placewatch.yamlconfig import ConfigLoadError
from storage.database import connect
from storage.registry import register


def add_devices_parser(sub: Any) -> None:
    devices = sub.add_parser("devices", help="the device registry: import, list, show, approve")
    dsub = devices.add_subparsers(dest="devices_command", required=True)
    imp = dsub.add_parser(
        "import",
        help="register the devices of a devices file or a simulator scenario (idempotent)",
        description="Create or update a council's devices and network server applications "
        "from a devices file (docs/devices.md) or a simulator scenario (docs/simulators.md). "
        "Devices are never deleted; a quarantined device listed in the file becomes active.",
    )
    imp.add_argument("file", help="devices file, scenario file, or a built-in scenario name")
    lst = dsub.add_parser("list", help="list registered devices")
    lst.add_argument("--council", default=None)
    lst.add_argument("--kind", default=None)
    lst.add_argument("--quarantined", action="store_true", help="only devices waiting for approval")
    show = dsub.add_parser("show", help="one device: settings, model, last heard, dead letters")
    show.add_argument("device_id")
    show.add_argument("--council", default=None, help="needed if the id exists in several")
    approve = dsub.add_parser(
        "approve",
        help="approve a quarantined device (then `placewatch replay` stores its held uplinks)",
    )
    approve.add_argument("device_id")
    approve.add_argument("--council", default=None)
    approve.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a device setting while approving (repeat), e.g. depth_mm=1100",
    )


def add_models_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="device models: how products' fields map to kinds")
    msub = models.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="list built-in and imported models")
    check = msub.add_parser(
        "check",
        help="validate a model file; with --payload, print the readings it would produce",
        description="Check a model (mapping) file without a database. With --payload, map a "
        "sample: a decoded payload (JSON object), or a whole The Things Stack uplink, "
        "ChirpStack up event or SenML pack as received.",
    )
    check.add_argument("file", type=Path)
    check.add_argument("--payload", type=Path, default=None, help="sample payload (JSON file)")
    check.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a per-device setting the mapping needs (repeat), e.g. depth_mm=1100",
    )
    imp = msub.add_parser(
        "import", help="store model files in the registry (running ingest picks them up)"
    )
    imp.add_argument("files", type=Path, nargs="+")


def run_devices_command(args: argparse.Namespace, settings: Settings) -> int:
    with connect(settings.database_url) as conn:
        if args.devices_command == "import":
            return _import(conn, args.file)
        if args.devices_command == "list":
            return _list(conn, args)
        if args.devices_command == "show":
            return _show(conn, args)
        return _approve(conn, args)


def run_models_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.models_command == "check":
        return _check(args)
    with connect(settings.database_url) as conn:
        if args.models_command == "import":
            try:
                models = [load_model_file(f) for f in args.files]
            except ConfigLoadError as exc:
                print(exc, file=sys.stderr)
                return 1
            with conn.transaction():
                for path, model in zip(args.files, models, strict=True):
                    conn.execute(
                        """INSERT INTO device_models (model_id, kind, spec, source)
                           VALUES (%s, %s, %s, %s)
                           ON CONFLICT (model_id) DO UPDATE
                           SET kind = excluded.kind, spec = excluded.spec,
                               source = excluded.source, updated_at = now()""",
                        (model.id, model.kind.value, Jsonb(spec_json(model)), str(path)),
                    )
            print(f"imported {len(models)} models: {', '.join(m.id for m in models)}")
            return 0
        catalog = stored_catalog(conn)
        for model_id in sorted(catalog.models):
            m = catalog.models[model_id]
            print(f"{m.id:32} {m.kind.value:14} {catalog.source[m.id]:9} {m.name}")
        return 0


def stored_catalog(conn: Any) -> ModelCatalog:
    return catalog_of(conn.execute(STORED_MODELS_SQL).fetchall(), builtin_models())


def _import(conn: Any, file: str) -> int:
    from devices.registry_file import load_devices_file

    path = Path(file)
    try:
        scenario = _scenario(file, path)
        if scenario is not None:
            council, name = scenario.council_id, scenario.council_name
            devices, applications = scenario.devices(), scenario.applications()
        else:
            spec, devices, applications = load_devices_file(path, stored_catalog(conn))
            council, name = spec.council, spec.name or spec.council
    except ConfigLoadError as exc:
        print(exc, file=sys.stderr)
        return 1
    n = register(conn, council, name, devices, applications)
    print(
        f"registered {n} devices and {len(applications)} network applications in council {council}"
    )
    return 0


def _scenario(file: str, path: Path) -> Any:
    """The simulator scenario ``file`` names (a built-in name or a scenario YAML), else None."""
    from ruamel.yaml import YAML

    from simulators.scenario import is_scenario, load_scenario

    if not path.exists():
        return load_scenario(file)  # a built-in scenario's name (or a clear error)
    doc = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return load_scenario(file) if isinstance(doc, dict) and is_scenario(doc) else None


_DEVICE_COLUMNS = """d.council_id, d.device_id, d.kind, d.model, d.status, d.dev_eui, d.site,
    d.ward, d.resident_id, d.expected_interval_s, d.last_seen, d.last_reading_at, d.properties,
    d.tags, d.latitude, d.longitude"""


def _list(conn: Any, args: argparse.Namespace) -> int:
    rows = conn.execute(
        f"""SELECT {_DEVICE_COLUMNS} FROM devices d
            WHERE (%(council)s::text IS NULL OR council_id = %(council)s)
              AND (%(kind)s::text IS NULL OR kind = %(kind)s)
              AND (NOT %(held)s OR status = 'quarantined')
            ORDER BY council_id, device_id""",
        {"council": args.council, "kind": args.kind, "held": args.quarantined},
    ).fetchall()
    for r in rows:
        status = "" if r[4] == "active" else f"  [{r[4]}]"
        heard = r[10].isoformat(timespec="seconds") if r[10] else "never heard"
        print(f"{r[0]}/{r[1]:24} {r[2]:14} {r[3] or 'native':28} {heard}{status}")
    print(f"{len(rows)} devices")
    return 0


def _one(conn: Any, device_id: str, council: str | None) -> tuple[Any, ...] | None:
    rows = conn.execute(
        f"""SELECT {_DEVICE_COLUMNS} FROM devices d
            WHERE device_id = %s AND (%s::text IS NULL OR council_id = %s)""",
        (device_id, council, council),
    ).fetchall()
    if len(rows) != 1:
        where = f" in council {council}" if council else ""
        why = "is not registered" if not rows else "exists in several councils: give --council"
        print(f"device {device_id!r}{where} {why}", file=sys.stderr)
        return None
    return tuple(rows[0])


def _show(conn: Any, args: argparse.Namespace) -> int:
    row = _one(conn, args.device_id, args.council)
    if row is None:
        return 1
    names = [c.strip().removeprefix("d.") for c in _DEVICE_COLUMNS.split(",")]
    for name, value in zip(names, row, strict=True):
        if isinstance(value, datetime):
            value = value.isoformat(timespec="seconds")
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        print(f"{name:20} {value if value is not None else '-'}")
    letters = conn.execute(
        """SELECT reason, count(*) FROM dead_letters
           WHERE council_id = %s AND replayed_at IS NULL AND detail LIKE %s
           GROUP BY reason ORDER BY 2 DESC""",
        (row[0], f"%{row[1]}%"),
    ).fetchall()
    pending = ", ".join(f"{reason}: {n}" for reason, n in letters) or "none"
    print(f"{'dead letters':20} {pending}")
    return 0


def _approve(conn: Any, args: argparse.Namespace) -> int:
    row = _one(conn, args.device_id, args.council)
    if row is None:
        return 1
    extra = dict(_settings(args.setting))
    conn.execute(
        """UPDATE devices SET status = 'active', properties = properties || %s
           WHERE council_id = %s AND device_id = %s""",
        (Jsonb(extra), row[0], row[1]),
    )
    conn.commit()
    print(f"approved {row[0]}/{row[1]}; run `placewatch replay` to store its held uplinks")
    return 0


def _settings(pairs: list[str]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--setting {pair!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.append((key, value))
    return out


def _check(args: argparse.Namespace) -> int:
    try:
        model = load_model_file(args.file)
    except ConfigLoadError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{args.file}: model {model.id} ({model.kind.value}) is valid: {len(model.fields)} fields"
    )
    if args.payload is None:
        return 0
    settings = dict(_settings(args.setting))
    failed = 0
    for time, fields in _samples(args.payload):
        try:
            reading = to_reading(model.kind, model, fields, time, settings, _first_is_zero())
        except MappingError as exc:
            print(f"  rejected ({exc.reason}): {exc.detail}")
            failed += 1
            continue
        print("  " + json.dumps(reading.model_dump(mode="json", exclude_none=True)))
    return 1 if failed else 0


def _samples(path: Path) -> list[tuple[datetime, dict[str, Any]]]:
    """(time, decoded fields) from a sample: a whole envelope if it is one, else the object."""
    from adapters import EnvelopeError
    from adapters.chirpstack import parse_chirpstack
    from adapters.senml import parse_senml
    from adapters.ttn import parse_ttn

    try:
        raw = path.read_bytes()
        body = json.loads(raw)
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: JSON, and its decoding
        raise SystemExit(f"{path}: cannot read the sample: {str(exc)[:200]}") from None
    now = datetime.now(UTC)
    try:
        if isinstance(body, list):
            uplinks = parse_senml("check", "device", raw, now.timestamp())
        elif isinstance(body, dict) and "uplink_message" in body:
            uplinks = parse_ttn("v3/app@tenant/devices/device/up", raw)
        elif isinstance(body, dict) and "deviceInfo" in body:
            uplinks = parse_chirpstack("application/app/device/0000000000000000/event/up", raw)
        elif isinstance(body, dict):
            return [(now, body)]
        else:
            raise SystemExit(
                f"{path}: a sample is a JSON object of decoded fields, or a whole uplink"
            )
    except EnvelopeError as exc:
        raise SystemExit(f"{path}: {exc.reason}: {exc.detail}") from None
    return [(u.time, u.fields) for u in uplinks]


def _first_is_zero() -> CounterDelta:
    """Cumulative counters in a check: the samples in order, as ingest would see them."""
    last: dict[str, float] = {}

    def delta(field: str, value: float) -> float:
        rise = counter_rise(last.get(field), value)
        last[field] = value
        return rise

    return delta
