"""Versioned SQL migrations, applied once each under an advisory lock.

Version ``NNNN`` is ``NNNN_<name>.sql`` (runs everywhere) followed, in the same transaction, by
``NNNN_<name>.timescaledb.sql`` or ``NNNN_<name>.postgres.sql`` for the database's flavour. The
flavour is chosen at the first migration (TimescaleDB when the server offers it, unless turned
off) and recorded, so later migrations never mix the two.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Literal

import psycopg

from storage.database import connect, ensure_database

log = logging.getLogger(__name__)

# Any fixed 64-bit key: all migrators of one database serialise on it.
_LOCK_KEY = 0x706C6163_65776174  # "placewat"
_FILE = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+?)(?:\.(?P<flavour>postgres|timescaledb))?\.sql$"
)


class Flavour(StrEnum):
    POSTGRES = "postgres"
    TIMESCALEDB = "timescaledb"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    common: str
    by_flavour: dict[Flavour, str]

    def sql_for(self, flavour: Flavour) -> str:
        return self.common + "\n" + self.by_flavour.get(flavour, "")

    def checksum(self, flavour: Flavour) -> str:
        return hashlib.sha256(self.sql_for(flavour).encode()).hexdigest()


@dataclass(frozen=True)
class MigrationResult:
    flavour: Flavour
    applied: list[int]
    current: int


def load_migrations() -> list[Migration]:
    files: dict[int, dict[str, str]] = {}
    names: dict[int, str] = {}
    for entry in resources.files("storage.migrations").iterdir():
        m = _FILE.match(entry.name)
        if not m:
            continue
        version = int(m["version"])
        if names.setdefault(version, m["name"]) != m["name"]:
            raise ValueError(
                f"migration {version:04d} has two names: {names[version]}, {m['name']}"
            )
        files.setdefault(version, {})[m["flavour"] or "common"] = entry.read_text(encoding="utf-8")
    migrations = []
    for version in sorted(files):
        parts = files[version]
        if "common" not in parts:
            raise ValueError(f"migration {version:04d} has no common file")
        migrations.append(
            Migration(
                version=version,
                name=names[version],
                common=parts["common"],
                by_flavour={Flavour(k): v for k, v in parts.items() if k != "common"},
            )
        )
    return migrations


def migrate(url: str, timescaledb: Literal["auto", "on", "off"] = "auto") -> MigrationResult:
    ensure_database(url)
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            return _migrate_locked(conn, timescaledb)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _migrate_locked(
    conn: psycopg.Connection[tuple[object, ...]], timescaledb: Literal["auto", "on", "off"]
) -> MigrationResult:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version    integer PRIMARY KEY,
               name       text NOT NULL,
               flavour    text NOT NULL,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    rows = conn.execute("SELECT version, flavour, checksum FROM schema_migrations").fetchall()
    applied = {int(str(v)): (Flavour(str(f)), str(c)) for v, f, c in rows}
    flavour = next(iter(applied.values()))[0] if applied else _choose_flavour(conn, timescaledb)
    if flavour is Flavour.TIMESCALEDB:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        _warn_known_defects(conn)

    done: list[int] = []
    migrations = load_migrations()
    for mig in migrations:
        if mig.version in applied:
            if applied[mig.version][1] != mig.checksum(flavour):
                log.warning("migration %04d_%s changed after it was applied", mig.version, mig.name)
            continue
        log.info("applying migration %04d_%s (%s)", mig.version, mig.name, flavour)
        with conn.transaction():
            conn.execute(mig.sql_for(flavour).encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, flavour, checksum)"
                " VALUES (%s, %s, %s, %s)",
                (mig.version, mig.name, flavour.value, mig.checksum(flavour)),
            )
        done.append(mig.version)
    current = max([*applied, *done], default=0)
    return MigrationResult(flavour=flavour, applied=done, current=current)


def timescaledb_status(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[bool, str]:
    """Whether TimescaleDB can be used here, and why (or why not).

    The package being installed is not enough: ``CREATE EXTENSION`` fails unless the server
    preloads the library, so both are checked.
    """
    offered = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    server = conn.execute("SHOW server_version").fetchone()
    pg = f"PostgreSQL {server[0] if server else '?'}"
    if not offered:
        return False, f"{pg} offers no timescaledb extension"
    preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    if "timescaledb" not in str(preload[0] if preload else ""):
        return False, f"timescaledb {offered[0]} is installed but not in shared_preload_libraries"
    return True, f"timescaledb {offered[0]} on {pg}"


def _warn_known_defects(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    row = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    version = tuple(int(p) for p in re.findall(r"\d+", str(row[0]))[:2]) if row else ()
    if (2, 16) <= version < (2, 19):
        # timescale/timescaledb#7672: ON CONFLICT DO NOTHING into a compressed chunk can skip the
        # rows after a conflict in the same statement. Ingest dedupes that way.
        log.warning(
            "timescaledb %s can drop rows of a batch that meets a duplicate in a "
            "compressed chunk (issue #7672, fixed in 2.19): upgrade",
            row[0] if row else "",
        )


def _choose_flavour(
    conn: psycopg.Connection[tuple[object, ...]], setting: Literal["auto", "on", "off"]
) -> Flavour:
    if setting == "off":
        return Flavour.POSTGRES
    usable, why = timescaledb_status(conn)
    if usable:
        return Flavour.TIMESCALEDB
    if setting == "on":
        raise RuntimeError(f"PLACEWATCH_TIMESCALEDB=on but {why}")
    log.info("using plain PostgreSQL: %s", why)
    return Flavour.POSTGRES
