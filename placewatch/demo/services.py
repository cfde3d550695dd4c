"""The demo's database and broker: configured ones win, else the local services, else embedded
ones (``placewatch.embedded.resolve``).

On a local or embedded server the demo uses a database of its own, ``placewatch_demo``,
created afresh for each run (an alert still open from an earlier run would hide the same
incident now); a configured ``PLACEWATCH_DATABASE_URL`` is used as it is.

One demo at a time per database: the demo holds a lock named after the server and database
for its whole run (and the embedded server one on its data directory); a second demo says
another is running and stops.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from placewatch.embedded.postgres import hold_lock
from placewatch.embedded.resolve import Broker, Database, resolve_broker, resolve_database
from placewatch.settings import Settings

log = logging.getLogger(__name__)

DEMO_DATABASE = "placewatch_demo"


@dataclass
class Services:
    database: Database
    database_url: str
    broker: Broker
    lock: IO[str] | None = field(default=None, repr=False)

    def dead(self) -> str | None:
        """Which server started here has died, if one has."""
        if not self.database.alive():
            return "the embedded PostgreSQL died (its log: server.log in its data directory)"
        if not self.broker.alive():
            return f"the embedded broker ({self.broker.kind}) died"
        return None

    def stop(self) -> None:
        """Stop what was started here (embedded servers); leave configured and local ones."""
        try:
            self.broker.stop()
        finally:
            try:
                self.database.stop()
            finally:
                if self.lock is not None:
                    self.lock.close()
                    self.lock = None


class DemoBusy(RuntimeError):
    pass


def lock_path(url: str) -> Path:
    """The lock of a demo on the database ``url`` (its host, port and name)."""
    import platformdirs

    p = conninfo_to_dict(url)
    key = f"{p.get('host') or ''}:{p.get('port') or 5432}/{p.get('dbname') or ''}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(platformdirs.user_cache_dir("placewatch")) / "locks" / f"demo-{digest}.lock"


def _lock_database(url: str) -> IO[str]:
    lock = hold_lock(lock_path(url))
    if lock is None:
        raise DemoBusy(
            "another placewatch demo is running on the same database "
            f"({conninfo_to_dict(url).get('dbname')}): stop it first"
        )
    return lock


def _fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    return make_conninfo(admin_url, dbname=name)


def resolve(settings: Settings, workdir: Path) -> Services:
    configured_db = settings.database_url if "database_url" in settings.model_fields_set else None
    database = resolve_database(configured_db)
    lock = None
    try:
        if database.source == "configured":
            url = database.url
            lock = _lock_database(url)
        else:
            url = make_conninfo(database.url, dbname=DEMO_DATABASE)
            lock = _lock_database(url)  # before the database is dropped under another demo
            url = _fresh_database(database.url, DEMO_DATABASE)
            log.info("database: %s (created afresh for this run)", DEMO_DATABASE)
        configured_mqtt = bool({"mqtt_host", "mqtt_port"} & settings.model_fields_set)
        broker = resolve_broker(
            (settings.mqtt_host, settings.mqtt_port) if configured_mqtt else None,
            workdir / "broker",
        )
    except BaseException:
        try:
            database.stop()
        finally:
            if lock is not None:
                lock.close()
        raise
    return Services(database, url, broker, lock)
