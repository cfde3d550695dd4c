"""``placewatch broker acl``: Mosquitto credentials and ACL generated from the device registry.

Writes, into one directory, the files a Mosquitto 2.0 broker reads (``password_file``,
``acl_file``):

``passwd``
    ``user:$7$iterations$salt$hash`` lines: Mosquitto 2.0's ``sha512-pbkdf2`` format, the same
    as ``mosquitto_passwd`` writes (PBKDF2-HMAC-SHA512, a 12-byte random salt, 64-byte key,
    both base64; 101 iterations, mosquitto_passwd's default). Checked against a file made by
    ``mosquitto_passwd`` and against a real broker in tests/broker/.
``acl``
    One ``user`` block per account. A device user may write only its own topics
    ``{prefix}/{council}/{kind}/{device}`` and ``{prefix}/{council}/senml/{device}`` (where
    ingest refuses records naming another device) and read nothing; ``placewatch-ingest`` may
    read the reading topics and the network server uplink topics and write nothing; optional
    service users (simulator, broker healthcheck, network server bridge) as in broker/compose/acl.
``credentials-<UTC time>.csv`` (mode 0600, only when passwords were made)
    The plain passwords made by this run, for provisioning devices and services. They are
    written nowhere else and cannot be recovered from ``passwd``: hand them over, then delete
    the file.

User names: ``{council}/{device_id}`` for devices, the registry's own key (unique; the kind is
not part of it). A ``:`` in a device id (allowed by the registry) would end the user name in the
password file, so it is written ``%3A`` (``%`` never occurs in a device id, so names stay
unique). Service users have no ``/``, so they can never clash with a device. The ACL uses
explicit per-user topics, not ``pattern`` lines with ``%u``/``%c``: a ``%c`` (client id) rule
trusts a value any authenticated client chooses, and ``pattern`` lines apply to *every* user,
ingest included, so ingest could not be kept write-free.

Re-running keeps the password (hash line) of every user that is still wanted; only new users
get new passwords, unless ``--rotate USER`` or ``--rotate-all`` asks. Users no longer wanted
(device removed or quarantined, or outside ``--council``) are left out.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default in 2.0 (PW_DEFAULT_ITERATIONS)
SALT_BYTES = 12  # mosquitto_passwd's salt length in 2.0
PASSWORD_BYTES = 24  # secrets.token_urlsafe(24): 32 characters, 192 random bits

INGEST_USER = "placewatch-ingest"
SIMULATOR_USER = "placewatch-simulator"
HEALTH_USER = "placewatch-health"
BRIDGE_USER = "placewatch-bridge"
HEALTH_TOPIC = "$SYS/broker/uptime"

_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TOPIC_FILTER = re.compile(r"[^\s\x00]+")  # fullmatch: no newline can split a line


# -- password hashes -------------------------------------------------------------------------


def hash_password(
    password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None
) -> str:
    """Mosquitto 2.0 ``sha512-pbkdf2`` hash: ``$7${iterations}${b64 salt}${b64 key}``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (as Mosquitto 2.0 checks it)."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt, key = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(got, key)


def read_passwd(path: Path) -> dict[str, str]:
    """``user → hash`` from a Mosquitto password file (missing file: empty)."""
    users: dict[str, str] = {}
    if not path.exists():
        return users
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if sep:
            users[user] = encoded.strip()
    return users


# -- accounts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRow:
    council_id: str
    device_id: str
    kind: str


def device_username(council_id: str, device_id: str) -> str:
    return f"{council_id}/{device_id.replace(':', '%3A')}"


def device_topic(prefix: str, device: DeviceRow) -> str:
    return f"{prefix}/{device.council_id}/{device.kind}/{device.device_id}"


def senml_topic(prefix: str, device: DeviceRow) -> str:
    # ingest refuses a pack on this topic that names another device (adapters/senml.py).
    return f"{prefix}/{device.council_id}/senml/{device.device_id}"


@dataclass(frozen=True)
class Account:
    username: str
    role: str  # "device", "ingest", "simulator", "health", "bridge"
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    device: DeviceRow | None = None


@dataclass(frozen=True)
class AclOptions:
    prefix: str = "placewatch"
    network_topics: tuple[str, ...] = ("v3/+/devices/+/up", "application/+/device/+/event/up")
    ingest_user: str = INGEST_USER
    simulator: bool = False
    health: bool = False
    bridge: bool = False


class AclError(ValueError):
    pass


def accounts(devices: Iterable[DeviceRow], options: AclOptions) -> list[Account]:
    """Every account the broker should know: service users first, then devices (sorted)."""
    prefix = options.prefix
    if not prefix or not _TOPIC_FILTER.fullmatch(prefix) or any(c in prefix for c in "+#"):
        raise AclError(f"topic prefix {prefix!r} is not a plain topic (no spaces, + or #)")
    for t in options.network_topics:
        if not _TOPIC_FILTER.fullmatch(t):
            raise AclError(f"network topic {t!r} has spaces or is empty")
    if not _SERVICE_NAME.fullmatch(options.ingest_user):
        raise AclError(f"ingest user {options.ingest_user!r}: letters, digits, _ . - only")
    network = tuple(options.network_topics)
    out = [Account(options.ingest_user, "ingest", read=(f"{prefix}/#", *network))]
    if options.simulator:
        out.append(Account(SIMULATOR_USER, "simulator", write=(f"{prefix}/#", *network)))
    if options.health:
        out.append(Account(HEALTH_USER, "health", read=(HEALTH_TOPIC,)))
    if options.bridge and network:
        out.append(Account(BRIDGE_USER, "bridge", write=network))
    seen = {a.username for a in out}
    for d in sorted(devices, key=lambda d: (d.council_id, d.device_id)):
        name = device_username(d.council_id, d.device_id)
        if name in seen:
            raise AclError(f"user {name!r} twice")
        seen.add(name)
        topics = (device_topic(prefix, d), senml_topic(prefix, d))
        out.append(Account(name, "device", write=topics, device=d))
    return out


def render_acl(accts: Sequence[Account], *, generated_at: str) -> str:
    lines = [
        "# Mosquitto ACL generated by `placewatch broker acl` from the device registry at "
        f"{generated_at}.",
        "# Do not edit: run the command again. Everything not granted here is denied.",
        "# Mosquitto treats only lines that start with '#' as comments.",
    ]
    for a in accts:
        lines.append("")
        lines.append(f"user {a.username}")
        lines += [f"topic read {t}" for t in a.read]
        lines += [f"topic write {t}" for t in a.write]
    return "\n".join(lines) + "\n"


# -- generation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    account: Account
    password: str = field(repr=False)


@dataclass
class Generated:
    accounts: list[Account]
    passwd: str  # the password file's text (hashes only)
    acl: str
    new: list[Credential]  # passwords made by this run (new or rotated users)
    kept: int
    removed: list[str]


def generate(
    accts: Sequence[Account],
    existing: dict[str, str],
    *,
    rotate: Iterable[str] = (),
    rotate_all: bool = False,
    generated_at: str,
    iterations: int = PBKDF2_ITERATIONS,
) -> Generated:
    rotate = set(rotate)
    unknown = rotate - {a.username for a in accts}
    if unknown:
        raise AclError(f"--rotate: no such user: {', '.join(sorted(unknown))}")
    lines, new, kept = [], [], 0
    for a in accts:
        old = existing.get(a.username)
        if old is not None and not rotate_all and a.username not in rotate:
            encoded = old
            kept += 1
        else:
            password = secrets.token_urlsafe(PASSWORD_BYTES)
            encoded = hash_password(password, iterations=iterations)
            new.append(Credential(a, password))
        lines.append(f"{a.username}:{encoded}")
    wanted = {a.username for a in accts}
    removed = sorted(u for u in existing if u not in wanted)
    return Generated(
        list(accts),
        "\n".join(lines) + "\n",
        render_acl(accts, generated_at=generated_at),
        new,
        kept,
        removed,
    )


def _write_private(path: Path, text: str) -> None:
    """Write beside ``path`` with mode 0600 and rename into place (never half-written)."""
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_credentials(path: Path, creds: Sequence[Credential], prefix: str) -> None:
    """The plain passwords, mode 0600, never overwriting a file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["username", "password", "role", "council", "device_id", "kind", "topic"])
        for c in creds:
            d = c.account.device
            w.writerow(
                [
                    c.account.username,
                    c.password,
                    c.account.role,
                    d.council_id if d else "",
                    d.device_id if d else "",
                    d.kind if d else "",
                    device_topic(prefix, d) if d else "",
                ]
            )
        f.flush()
        os.fsync(f.fileno())


@dataclass(frozen=True)
class Written:
    passwd: Path
    acl: Path
    credentials: Path | None


def write_files(
    out_dir: Path, gen: Generated, prefix: str, *, stamp: str, credentials_dir: Path | None = None
) -> Written:
    """Credentials first (so no hash is installed whose password was not kept), then the
    password file and the ACL, each renamed into place. ``credentials_dir``: where the plain
    passwords go (default ``out_dir``); keep them away from the broker's own files, so that
    reading the password file is not enough to read the passwords."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    creds = None
    if gen.new:
        creds_dir = credentials_dir or out_dir
        creds_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        creds = creds_dir / f"credentials-{stamp}.csv"
        write_credentials(creds, gen.new, prefix)
    passwd, acl = out_dir / "passwd", out_dir / "acl"
    _write_private(passwd, gen.passwd)
    _write_private(acl, gen.acl)
    return Written(passwd, acl, creds)


# -- registry and command --------------------------------------------------------------------


def load_devices(conn: Any, councils: Sequence[str] = ()) -> list[DeviceRow]:
    """Active devices of the registry (quarantined ones get no credentials)."""
    sql = "SELECT council_id, device_id, kind FROM devices WHERE status = 'active'"
    params: list[Any] = []
    if councils:
        sql += " AND council_id = ANY(%s)"
        params.append(list(councils))
    rows = conn.execute(sql + " ORDER BY council_id, device_id", params).fetchall()
    return [DeviceRow(str(c), str(d), str(k)) for c, d, k in rows]


def add_broker_parser(sub: Any) -> None:
    broker = sub.add_parser("broker", help="Mosquitto credentials and ACL from the registry")
    bsub = broker.add_subparsers(dest="broker_command", required=True)
    acl = bsub.add_parser(
        "acl",
        help="write the broker's password file and ACL: one user per device (broker/README.md)",
        description="Write passwd and acl for Mosquitto 2.0 from the device registry: each "
        "active device may publish only to {prefix}/{council}/{kind}/{device}, ingest may only "
        "read. Existing users keep their passwords; new ones are written once to "
        "credentials-<time>.csv (mode 0600). Reload the broker after: SIGHUP.",
    )
    acl.add_argument("--output-dir", type=Path, default=Path("mosquitto-auth"))
    acl.add_argument(
        "--council",
        action="append",
        default=[],
        help="only these councils' devices (repeat); other devices lose their users",
    )
    acl.add_argument(
        "--rotate", action="append", default=[], metavar="USER", help="new password (repeat)"
    )
    acl.add_argument("--rotate-all", action="store_true", help="new passwords for every user")
    acl.add_argument(
        "--ingest-user",
        default=None,
        help=f"ingest's login (default PLACEWATCH_MQTT_USERNAME, else {INGEST_USER})",
    )
    acl.add_argument(
        "--credentials-dir",
        type=Path,
        default=Path("."),
        help="where the new plain passwords are written (default: here, not the output dir)",
    )
    acl.add_argument(
        "--simulator",
        action="store_true",
        help=f"add {SIMULATOR_USER}, which may write every reading topic (demos only)",
    )
    acl.add_argument(
        "--health", action="store_true", help=f"add {HEALTH_USER} (reads {HEALTH_TOPIC})"
    )
    acl.add_argument(
        "--bridge",
        action="store_true",
        help=f"add {BRIDGE_USER}, which may write the network server uplink topics",
    )


def run_broker_command(args: argparse.Namespace, settings: Any) -> int:
    import sys

    from storage.database import connect

    options = AclOptions(
        prefix=settings.topic_prefix,
        network_topics=tuple(settings.ingest_network_topics),
        ingest_user=args.ingest_user or settings.mqtt_username or INGEST_USER,
        simulator=args.simulator,
        health=args.health,
        bridge=args.bridge,
    )
    with connect(settings.database_url) as conn:
        devices = load_devices(conn, args.council)
    now = datetime.now(UTC)
    out_dir: Path = args.output_dir
    try:
        accts = accounts(devices, options)
        gen = generate(
            accts,
            read_passwd(out_dir / "passwd"),
            rotate=args.rotate,
            rotate_all=args.rotate_all,
            generated_at=now.isoformat(timespec="seconds"),
        )
    except AclError as exc:
        print(exc, file=sys.stderr)
        return 1
    written = write_files(
        out_dir,
        gen,
        options.prefix,
        stamp=now.strftime("%Y%m%dT%H%M%SZ"),
        credentials_dir=args.credentials_dir,
    )
    n_devices = sum(1 for a in accts if a.role == "device")
    print(
        f"wrote {written.passwd} and {written.acl}: {len(accts)} users ({n_devices} devices); "
        f"{gen.kept} kept their password, {len(gen.new)} new"
        + (f", {len(gen.removed)} removed" if gen.removed else "")
    )
    if written.credentials is not None:
        print(f"new passwords in {written.credentials} (mode 0600): hand them over, then delete it")
    print("reload the broker to apply: SIGHUP (docker compose kill -s HUP mosquitto)")
    return 0
