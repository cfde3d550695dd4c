"""Databases for the tests: one fresh database per storage flavour on the configured server, and
a private throwaway cluster for the test that stops the database under a running ingest."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from storage.migrate import timescaledb_status

ADMIN_URL = os.environ.get("PLACEWATCH_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/postgres")


def timescaledb_ready(admin_url: str = ADMIN_URL) -> tuple[bool, str]:
    """The same test ``placewatch migrate`` uses to choose the flavour."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return timescaledb_status(conn)


def create_database(prefix: str, admin_url: str = ADMIN_URL) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(admin_url, dbname=name)


def drop_database(url: str, admin_url: str = ADMIN_URL) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )


GRAFANA_LOGIN = "pwtest_grafana"


def grafana_login_url(url: str, admin_url: str = ADMIN_URL) -> str:
    """``url`` as a login role that is a member of ``placewatch_grafana`` (migration 0005), as
    Grafana's ``grafana`` login is in docker compose."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            f"""DO $$ BEGIN
                  CREATE ROLE {GRAFANA_LOGIN} LOGIN IN ROLE placewatch_grafana;
                EXCEPTION WHEN duplicate_object THEN NULL; END $$"""
        )
    return make_conninfo(url, user=GRAFANA_LOGIN)


def _pg_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class PrivateCluster:
    """A PostgreSQL server of our own, so a test may stop and start it."""

    workdir: Path
    port: int
    bindir: Path

    @classmethod
    def available(cls) -> Path | None:
        return _pg_bindir()

    def _run(self, *args: str) -> None:
        """Run ``initdb``/``pg_ctl`` with a time limit; a failure carries their stderr."""
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
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
            pw = pwd.getpwnam("postgres")
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
