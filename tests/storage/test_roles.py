"""The services' database roles (migration 0008): each service runs for real under a login
that is a member of its group role, end to end, and each role is refused what it must not touch
(InsufficientPrivilege, statement by statement)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import AsyncConnection, errors
from psycopg.conninfo import make_conninfo

from placewatch.kinds import Kind
from rules.sweeps import RetentionSchedule, retention_sweep
from storage.migrate import Flavour, migrate
from storage.registry import DeviceSpec
from teams.keys import new_key
from tests.notify.conftest import LOCAL_TARGETS, DeliveryRig
from tests.rules.conftest import RulesRig
from tests.support.alerts import open_test_alert
from tests.support.api_server import serve_api
from tests.support.broker import Broker
from tests.support.ingest import IngestProcess
from tests.support.postgres import ADMIN_URL

SERVICES = ("ingest", "rules", "notify", "api")


def _drop_role(name: str) -> None:
    # A killed service's session may still be ending (its temporary tables with it).
    for _ in range(20):
        try:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP ROLE IF EXISTS "{name}"')
            return
        except psycopg.errors.DependentObjectsStillExist:
            time.sleep(0.25)


@contextlib.contextmanager
def service_logins(database_url: str) -> Iterator[dict[str, str]]:
    """A login role of its own per service, a member of the service's group role (inheriting
    its privileges, as the compose logins do); its URL by service."""
    tag = uuid.uuid4().hex[:8]
    names = {s: f"pwtest_{s}_{tag}" for s in SERVICES}
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        for service, name in names.items():
            admin.execute(f'CREATE ROLE "{name}" LOGIN INHERIT IN ROLE placewatch_{service}')
    try:
        yield {s: make_conninfo(database_url, user=n) for s, n in names.items()}
    finally:
        for name in names.values():
            _drop_role(name)


# -- the services, each under its own role -------------------------------------------------------

RULES = """
rules:
  - id: river-high
    kind: threshold
    severity: warning
    field: level_m
    above: 1.0
    escalation: {after: 1s, severity: critical, repeat: 1s, max_renotify: 2}
"""


def _wait(check: Callable[[], bool], timeout: float, what: str, procs: list[Any]) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.client_id}\n{p.log_tail(30)}" for p in procs)
    pytest.fail(f"not within {timeout} s: {what}\n{logs}")


def test_every_service_works_under_its_own_role(
    fresh_database: str, broker: Broker, tmp_path: Path, flavour: Flavour
) -> None:
    admin_url = fresh_database
    tag = uuid.uuid4().hex[:8]
    council, prefix = f"r{tag}", f"pwroles/{tag}"
    with service_logins(admin_url) as urls:
        # Set up as the owner, as the admin commands do.
        admin = RulesRig(council, prefix, broker, admin_url, tmp_path)
        admin.register(
            [
                DeviceSpec("", "gauge-1", Kind.FLOOD_LEVEL, site="mill-lane"),
                DeviceSpec("", "home-1", Kind.HOME_ACTIVITY, resident_id="res-1",
                           latitude=51.4, longitude=-0.16),
            ]
        )  # fmt: skip
        delivery = DeliveryRig(admin_url, tmp_path, council=council)
        receiver = delivery.receiver()
        delivery.teams(
            f"""
            council: COUNCIL
            teams:
              - id: river-ops
                name: River operations
                routes: [{{kinds: [flood_level]}}, {{kinds: [home_activity], residents: "*"}}]
                webhooks: [{{id: river-ops-hook, url: "{receiver.url}",
                             secret_env: RIG_SECRET}}]
            """
        )
        key = new_key()
        with psycopg.connect(admin_url) as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, team_id, secret_hash, scopes)"
                " VALUES (%s, 'river-ops', %s, %s)",
                (key.key_id, key.secret_hash, ["alerts:read", "alerts:write"]),
            )
            # A dead letter past its retention, for the worker's retention sweep.
            conn.execute(
                """INSERT INTO dead_letters (topic, payload, message_sha256, reason, detail,
                                             received_at, last_received_at)
                   VALUES ('old/topic', 'x', %s, 'decode', 'x', now() - interval '60 days',
                           now() - interval '60 days')""",
                (uuid.uuid4().bytes,),
            )
        headers = {"authorization": f"Bearer {key.token}"}

        # Each service connects as its own login.
        ingest = RulesRig(council, prefix, broker, urls["ingest"], tmp_path)
        rules = RulesRig(council, prefix, broker, urls["rules"], tmp_path)
        rules.write_rules(RULES)
        procs: list[IngestProcess] = []
        try:
            procs.append(ingest.ingest())
            # The shipped rules too, so that every sweep (silence, objectives, care, ...) runs.
            procs.append(rules.worker(rules_defaults="true"))
            with serve_api(urls["api"], tmp_path) as api:
                notify = IngestProcess(
                    database_url=urls["notify"],
                    mqtt_port=1,
                    prefix="unused",
                    client_id=f"notify-{council}",
                    logdir=tmp_path,
                    command=("notify",),
                    extra_env={
                        f"PLACEWATCH_{k.upper()}": v
                        for k, v in {
                            "link_secret": api.link_secret,
                            "public_url": api.url,
                            "notify_poll_s": "0.2",
                            **LOCAL_TARGETS,
                        }.items()
                    },
                )
                notify.start()
                procs += [notify, api.process]

                # ingest stores a reading from the broker; the worker raises and escalates an
                # alert; the dispatcher delivers it.
                now = datetime.now(UTC)
                # A SenML pack too: uplinks (SenML, TTN, ChirpStack) go through the device
                # models, which ingest must be able to read.
                senml = [{"bt": now.timestamp() - 60, "n": "level_m", "u": "m", "v": 1.2}]
                admin.publish(
                    [
                        admin.reading(
                            "home_activity", "home-1", time=now.isoformat(), sensor="motion",
                            motion_count=2,
                        ),
                        (f"{prefix}/{council}/senml/gauge-1", json.dumps(senml).encode()),
                        admin.reading("flood_level", "gauge-1", time=now.isoformat(), level_m=1.6),
                    ]
                )  # fmt: skip

                def events() -> list[str]:
                    return [e["event"]["type"] for e in receiver.events()]

                _wait(lambda: "alert.escalated" in events(), 40, "opened and escalated", procs)
                assert admin.scalar("SELECT count(*) FROM flood_level") == 2
                _wait(
                    lambda: admin.scalar("SELECT resident_id FROM home_activity") == "res-1",
                    10,
                    "the home reading stored",
                    procs,
                )
                opened = [e for e in receiver.events() if e["event"]["type"] == "alert.opened"]
                alert_id = int(opened[0]["event"]["alert"]["id"])

                # The API lists it and acknowledges it; the acknowledgement is delivered.
                r = httpx.get(f"{api.url}/v1/alerts", headers=headers)
                assert r.status_code == 200, r.text
                assert alert_id in [a["id"] for a in r.json()["alerts"]]
                r = httpx.post(
                    f"{api.url}/v1/alerts/{alert_id}/acknowledge",
                    json={"note": "crew on the way"},
                    headers=headers,
                )
                assert r.status_code == 200, r.text
                _wait(lambda: "alert.acknowledged" in events(), 30, "ack delivered", procs)

                # A resident's alert: reading it is written to the access audit, by the API.
                care = open_test_alert(
                    admin_url, council, "care-test", ("resident", "res-1"),
                    kind="home_activity", site=None, resident="res-1",
                )  # fmt: skip
                r = httpx.get(f"{api.url}/v1/alerts/{care}", headers=headers)
                assert r.status_code == 200, r.text
                audited = admin.scalar(
                    "SELECT count(*) FROM access_audit WHERE %s = ANY (alert_ids)", care
                )
                assert audited == 1

                if flavour is Flavour.POSTGRES:
                    # The worker's roll-up refresh and retention sweep ran under its role.
                    refreshed = (
                        "SELECT count(*) FROM rollup_watermarks WHERE watermark > '-infinity'"
                    )
                    _wait(lambda: admin.scalar(refreshed) == 4, 30, "the roll-ups refreshed", procs)
                # ... and deleted the expired dead letter through the owner's function.
                _wait(
                    lambda: admin.scalar("SELECT count(*) FROM dead_letters") == 0,
                    30,
                    "retention by the worker",
                    procs,
                )
                for p in procs:
                    assert p.alive(), p.log_tail()
                    log = p.log_tail(100_000)
                    assert "permission denied" not in log, log
                    assert "InsufficientPrivilege" not in log, log
        finally:
            for p in procs:
                if p.alive():
                    p.kill()
            receiver.stop()


# -- what each role is refused ------------------------------------------------------------------

_READING = (
    "INSERT INTO bin_fill (council_id, device_id, time, received_at, fill_pct)"
    " VALUES ('rolesvc', 'bin-1', now(), now(), 10)"
)
_EVERYONE = [
    "DROP TABLE alerts",
    "ALTER TABLE alerts ADD COLUMN x int",
    "TRUNCATE bin_fill",
    "TRUNCATE access_audit",
    "CREATE TABLE role_was_here (x int)",
    "CREATE INDEX ON alerts (summary)",
    "UPDATE access_audit SET principal = 'x'",
    "DELETE FROM access_audit",
    "UPDATE retention_policies SET keep = interval '1 day'",
    "DELETE FROM retention_policies",
    "SELECT placewatch_grant_service_roles()",
    "DELETE FROM schema_migrations",
    "UPDATE webhook_endpoints SET url = 'https://elsewhere.example'",
    "UPDATE api_keys SET scopes = '{alerts:write}'",
    "INSERT INTO councils (council_id, name) VALUES ('x', 'x')",
]
REFUSED: dict[str, list[str]] = {
    "ingest": [
        "SELECT * FROM alerts",
        "SELECT * FROM alert_events",
        "SELECT * FROM webhook_endpoints",
        "SELECT secret FROM webhook_endpoints",
        "SELECT secret_hash FROM api_keys",
        "SELECT * FROM access_audit",
        "SELECT * FROM webhook_deliveries",
        "SELECT payload FROM dead_letters",
        "SELECT latitude, longitude FROM devices",
        "SELECT * FROM rule_state",
        "SELECT * FROM home_activity_hourly",
        "DELETE FROM bin_fill",
        "DELETE FROM home_activity",
        "UPDATE bin_fill SET fill_pct = 0",
        "UPDATE devices SET resident_id = 'someone-else'",
        "DELETE FROM devices",
        "DELETE FROM dead_letters",
        "INSERT INTO alert_outbox (council_id, alert_id, event, payload)"
        " VALUES ('x', 1, 'opened', '{}')",
        "INSERT INTO access_audit (principal, action, resident_ids) VALUES ('x', 'x', '{}')",
        "SELECT placewatch_retention_purge('bin_fill', 1)",
    ],
    "rules": [
        "SELECT secret FROM webhook_endpoints",
        "SELECT url FROM webhook_endpoints",
        "SELECT secret_hash FROM api_keys",
        "SELECT * FROM access_audit",
        "SELECT body FROM webhook_deliveries",
        "SELECT payload FROM dead_letters",
        "SELECT * FROM ack_link_uses",
        "SELECT latitude, longitude FROM devices",
        _READING,
        "UPDATE bin_fill SET fill_pct = 0",
        "DELETE FROM bin_fill",
        "DELETE FROM home_activity",
        "UPDATE devices SET resident_id = 'someone-else'",
        "DELETE FROM alerts",
        "DELETE FROM alert_events",
        "UPDATE alert_events SET actor = 'x'",
        "INSERT INTO access_audit (principal, action, resident_ids) VALUES ('x', 'x', '{}')",
        "CREATE TEMP TABLE scratch (x int)",
    ],
    "notify": [
        "SELECT * FROM bin_fill",
        "SELECT * FROM home_activity",
        "SELECT * FROM home_activity_hourly",
        "SELECT * FROM devices",
        "SELECT secret_hash FROM api_keys",
        "SELECT * FROM access_audit",
        "SELECT * FROM rule_state",
        "SELECT payload FROM dead_letters",
        "SELECT * FROM alerts",
        "SELECT observed, summary FROM alerts",
        "SELECT resolution_note, acknowledged_by FROM alerts",
        "UPDATE alerts SET state = 'resolved'",
        "DELETE FROM alerts",
        "INSERT INTO alert_events (alert_id, council_id, event, actor)"
        " VALUES (1, 'x', 'acknowledged', 'x')",
        "UPDATE webhook_endpoints SET secret = 'x'",
        "DELETE FROM webhook_deliveries",
        "DELETE FROM webhook_attempts",
        _READING,
        "SELECT placewatch_retention_purge('dead_letters', 1)",
    ],
    "api": [
        _READING,
        "SELECT * FROM bin_fill",
        "SELECT * FROM home_activity",
        "SELECT * FROM access_audit",
        "SELECT secret FROM webhook_endpoints",
        "SELECT body FROM webhook_deliveries",
        "SELECT payload FROM dead_letters",
        "SELECT * FROM rule_state",
        "UPDATE alerts SET severity = 'info'",
        "UPDATE alerts SET observed = '{}'",
        "UPDATE alerts SET escalations = 0",
        "DELETE FROM alerts",
        "DELETE FROM alert_events",
        "UPDATE alert_events SET actor = 'x'",
        "INSERT INTO api_keys (key_id, team_id, secret_hash, scopes)"
        " VALUES ('k', 't', '\\x00', '{}')",
        "DELETE FROM api_keys",
        "UPDATE api_keys SET revoked_at = NULL",
        "DELETE FROM ack_link_uses",
        "SELECT placewatch_retention_purge('access_audit', 1)",
        "CREATE TEMP TABLE scratch (x int)",
    ],
}
# ... and a few things each must be able to do (the end-to-end test above does the rest).
ALLOWED: dict[str, list[str]] = {
    "ingest": [
        "CREATE TEMP TABLE stage_check (LIKE bin_fill INCLUDING DEFAULTS) ON COMMIT DROP",
        _READING + " ON CONFLICT DO NOTHING RETURNING council_id, device_id, time",
        "SELECT council_id, device_id, kind, resident_id, properties FROM devices",
    ],
    "rules": [
        "SELECT * FROM home_activity",
        "SELECT * FROM retention_policies",
        "SELECT placewatch_retention_purge('dead_letters', 10)",
    ],
    "notify": ["SELECT endpoint_id, url, secret FROM webhook_endpoints"],
    "api": [
        "INSERT INTO access_audit (principal, action, resident_ids) VALUES ('t', 'check', '{r}')",
        "SELECT key_id, secret_hash FROM api_keys",
    ],
}


@pytest.fixture(scope="module")
def role_urls(database_url: str) -> Iterator[dict[str, str]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO councils VALUES ('rolesvc', 'Service roles') ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO devices (council_id, device_id, kind)"
            " VALUES ('rolesvc', 'bin-1', 'bin_fill') ON CONFLICT DO NOTHING"
        )
    with service_logins(database_url) as urls:
        yield urls


def _cases(table: dict[str, list[str]]) -> list[Any]:
    return [
        pytest.param(s, stmt, id=f"{s}: {stmt[:60]}")
        for s in SERVICES
        for stmt in table[s] + (_EVERYONE if table is REFUSED else [])
    ]


@pytest.mark.parametrize(("service", "statement"), _cases(REFUSED))
def test_each_role_is_refused_what_it_must_not_touch(
    role_urls: dict[str, str], service: str, statement: str
) -> None:
    with psycopg.connect(role_urls[service]) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement.encode())
        conn.rollback()


@pytest.mark.parametrize(("service", "statement"), _cases(ALLOWED))
def test_each_role_may_do_its_work(role_urls: dict[str, str], service: str, statement: str) -> None:
    with psycopg.connect(role_urls[service]) as conn:
        conn.execute(statement.encode())
        conn.rollback()


def test_a_writer_logs_late_readings_through_the_owners_trigger(
    conn: psycopg.Connection[Any], role_urls: dict[str, str], flavour: Flavour
) -> None:
    """The roll-ups' trigger writes the invalidation log, which ingest may not touch itself."""
    if flavour is not Flavour.POSTGRES:
        pytest.skip("the invalidation log is plain PostgreSQL's (migration 0006)")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    conn.execute(
        "UPDATE rollup_watermarks SET invalidation_threshold = greatest(invalidation_threshold, %s)"
        " WHERE relation = 'bin_fill_hourly'",
        (hour,),
    )
    device = f"late-{uuid.uuid4().hex[:6]}"
    conn.execute(
        "INSERT INTO devices (council_id, device_id, kind) VALUES ('rolesvc', %s, 'bin_fill')",
        (device,),
    )
    with psycopg.connect(role_urls["ingest"], autocommit=True) as ingest:
        with pytest.raises(errors.InsufficientPrivilege):
            ingest.execute("SELECT * FROM rollup_invalidations")
        ingest.execute(
            "INSERT INTO bin_fill (council_id, device_id, time, received_at, fill_pct)"
            " VALUES ('rolesvc', %s, %s, now(), 10)",
            (device, hour - timedelta(hours=3)),
        )
    logged = conn.execute(
        "SELECT count(*) FROM rollup_invalidations WHERE device_id = %s", (device,)
    ).fetchone()
    assert logged is not None and logged[0] == 1


def test_the_grants_can_be_run_again(conn: psycopg.Connection[Any]) -> None:
    """What an operator runs after creating the roles by hand (docs/storage.md)."""
    conn.execute("SELECT placewatch_grant_service_roles()")
    conn.execute("SELECT placewatch_grant_service_roles()")


def test_no_service_role_may_log_in_or_create(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        """SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls
           FROM pg_roles WHERE rolname = ANY (%s) ORDER BY 1""",
        ([f"placewatch_{s}" for s in SERVICES],),
    ).fetchall()
    assert len(rows) == 4
    assert all(not any(r[1:]) for r in rows), rows


def test_personal_details_are_nowhere(conn: psycopg.Connection[Any]) -> None:
    """Residents are pseudonymous ids: no column anywhere is named for a name, address or phone
    number (docs/storage.md, "Personal data")."""
    rows = conn.execute(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = 'public'
             AND column_name ~ '(first_?name|last_?name|surname|full_?name|address|postcode'
                               '|phone|mobile|email|birth|nhs)'"""
    ).fetchall()
    assert [r for r in rows if r[1] != "remote_addr"] == [], json.dumps(rows)


def test_a_worker_whose_role_lacks_the_grants_skips_retention(role_urls: dict[str, str]) -> None:
    """A worker on a database whose grants were not run (or not migrated to 0008) logs it and
    carries on with its other sweeps."""

    async def go() -> None:
        async with await AsyncConnection.connect(role_urls["notify"], autocommit=True) as conn:
            schedule = RetentionSchedule(timedelta(hours=1), batch=10, budget_s=1.0, days={})
            due = await retention_sweep(conn, schedule)
            assert due - datetime.now(UTC) > timedelta(minutes=59)
            await conn.execute("SELECT 1")  # the connection is still usable

    asyncio.run(go())


def test_an_owner_that_is_not_a_superuser_migrates_and_grants(flavour: Flavour) -> None:
    """A managed database's application user: owner of its database, no superuser. The group
    roles exist already (roles are cluster-wide; without CREATEROLE it could not make them), so
    0008 grants to them, and the services work under their roles there too."""
    if flavour is not Flavour.POSTGRES:
        pytest.skip("TimescaleDB's extension needs a superuser to be created")
    tag = uuid.uuid4().hex[:8]
    owner, dbname = f"pwtest_owner_{tag}", f"pwtest_owned_{tag}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER NOCREATEROLE')
        admin.execute(f'CREATE DATABASE "{dbname}" OWNER "{owner}"')
    url = make_conninfo(ADMIN_URL, dbname=dbname, user=owner)
    try:
        assert migrate(url, "off").current >= 8
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO councils VALUES ('own', 'Own')")
            conn.execute(
                "INSERT INTO devices (council_id, device_id, kind) VALUES ('own', 'b', 'bin_fill')"
            )
            conn.execute("SELECT placewatch_grant_service_roles()")
        with service_logins(url) as urls:
            with psycopg.connect(urls["ingest"], autocommit=True) as ingest:
                ingest.execute(
                    "INSERT INTO bin_fill (council_id, device_id, time, received_at, fill_pct)"
                    " VALUES ('own', 'b', now(), now(), 1)"
                )
                with pytest.raises(errors.InsufficientPrivilege):
                    ingest.execute("SELECT * FROM alerts")
            with psycopg.connect(urls["rules"], autocommit=True) as rules:
                rules.execute("SELECT placewatch_retention_purge('dead_letters', 10)")
                with pytest.raises(errors.InsufficientPrivilege):
                    rules.execute("DELETE FROM bin_fill")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        _drop_role(owner)
