"""The compose stack's database steps, run for real: the init script that makes Grafana's login
role (on a private PostgreSQL cluster, since roles are cluster-wide), and the setup service's
command (register the borough, apply deploy/teams.yaml) on a fresh database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from storage.migrate import migrate
from tests.deploy.support import (
    COMPOSE_FILE,
    GRAFANA_ROLE_SCRIPT,
    ROOT,
    TEAMS_FILE,
    env_example,
    load_yaml,
)
from tests.support.broker import free_port
from tests.support.postgres import PrivateCluster, create_database, drop_database

PASSWORD = env_example()["GRAFANA_DB_PASSWORD"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    bindir = PrivateCluster.available()
    if bindir is None or shutil.which("psql") is None:
        pytest.skip("needs PostgreSQL's initdb and psql for a private cluster")
    c = PrivateCluster(Path(tempfile.mkdtemp(prefix="pw-pg-deploy-")), free_port(), bindir)
    c.init()
    try:
        with psycopg.connect(c.url.replace("/placewatch", "/postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE placewatch")
        yield c
    finally:
        c.destroy()


def _run_init_script(cluster: PrivateCluster, **extra: str) -> subprocess.CompletedProcess[str]:
    # What the postgres image gives its init scripts, with libpq pointed at the private cluster.
    env = {
        **os.environ,
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "placewatch",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(cluster.port),
        **extra,
    }
    env.pop("PGPASSWORD", None)
    return subprocess.run(
        ["bash", str(GRAFANA_ROLE_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )


def _require_passwords(cluster: PrivateCluster) -> None:
    """TCP logins need a password from now on (the cluster was made with trust)."""
    hba = cluster.datadir / "pg_hba.conf"
    hba.write_text(
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n",
        encoding="utf-8",
    )
    cluster.stop()
    cluster.start()


def _grafana_url(cluster: PrivateCluster, password: str) -> str:
    return f"postgresql://grafana:{password}@127.0.0.1:{cluster.port}/placewatch"


def test_grafana_role_script(cluster: PrivateCluster) -> None:
    assert os.access(GRAFANA_ROLE_SCRIPT, os.X_OK), "the postgres image sources, not runs, it"
    missing = _run_init_script(cluster)
    assert missing.returncode != 0 and "GRAFANA_DB_PASSWORD" in missing.stderr

    for _ in range(2):  # idempotent: a second run (or an existing role) is fine
        done = _run_init_script(cluster, GRAFANA_DB_PASSWORD=PASSWORD)
        assert done.returncode == 0, done.stderr

    with psycopg.connect(cluster.url, autocommit=True) as conn:
        row = conn.execute(
            """SELECT r.rolcanlogin, r.rolsuper, r.rolconnlimit, r.rolconfig,
                      pg_has_role('grafana', 'placewatch_grafana', 'MEMBER'),
                      g.rolcanlogin
               FROM pg_roles r, pg_roles g
               WHERE r.rolname = 'grafana' AND g.rolname = 'placewatch_grafana'"""
        ).fetchone()
    assert row is not None
    login, superuser, connlimit, config, member, group_login = row
    assert login and not superuser and member and not group_login
    assert connlimit == 20
    assert {"default_transaction_read_only=on", "statement_timeout=30s"} <= set(config)

    # The migrations (0005 grants placewatch_grafana its reads) run after the script, as the
    # stack's migrate service does; they must accept the roles the script made.
    migrate(cluster.url, "off")

    with psycopg.connect(cluster.url, autocommit=True) as conn:
        granted = conn.execute(
            """SELECT DISTINCT table_name FROM information_schema.role_table_grants
               WHERE grantee = 'placewatch_grafana' AND privilege_type = 'SELECT'
               ORDER BY 1"""
        ).fetchall()

    _require_passwords(cluster)
    with psycopg.connect(_grafana_url(cluster, PASSWORD)) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        # grafana reads what its group role was granted (by migration 0005).
        for (table,) in granted:
            conn.execute(f'SELECT 1 FROM "{table}" LIMIT 1')
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TEMP TABLE t (x int)")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(_grafana_url(cluster, "wrong")).close()


def _setup_command() -> str:
    """The setup service's shell command, as docker-compose.yml gives it."""
    setup = load_yaml(COMPOSE_FILE)["services"]["setup"]
    assert setup["entrypoint"] == ["sh", "-c"]
    (command,) = setup["command"]
    assert isinstance(command, str)
    return command


def _setup_target_settings() -> dict[str, str]:
    environment = load_yaml(COMPOSE_FILE)["services"]["setup"]["environment"]
    return {k: str(v) for k, v in environment.items() if k.startswith("PLACEWATCH_NOTIFY_")}


def test_setup_command_registers_the_borough_and_its_teams() -> None:
    url = create_database("pwtest_deploy_setup")
    try:
        migrate(url, "off")
        secret = env_example()["WEBHOOK_SECRET"]
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PLACEWATCH_DATABASE_URL": url,
            "BOROUGH_WEBHOOK_SECRET": secret,
            # The setup service's opt-in to the demo receiver's plain http, as compose gives it.
            **_setup_target_settings(),
        }
        for _ in range(2):  # `docker compose up` runs it on every start
            done = subprocess.run(
                ["sh", "-c", _setup_command()],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stdout + done.stderr

        teams = load_yaml(TEAMS_FILE)
        with psycopg.connect(url) as conn:
            stored: dict[str, str] = dict(
                conn.execute(
                    "SELECT team_id, council_id FROM teams WHERE council_id = 'borough'"
                ).fetchall()
            )
            devices = conn.execute(
                "SELECT count(*) FROM devices WHERE council_id = 'borough'"
            ).fetchone()
        assert stored == {t["id"]: "borough" for t in teams["teams"]}
        assert devices is not None and devices[0] > 0
    finally:
        drop_database(url)
