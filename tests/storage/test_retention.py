"""Retention per data class (migration 0008, storage/retention.py): old rows go and new ones
stay, in bounded batches; deleting old raw readings leaves the hourly roll-ups as they were; the
configured periods are recorded by the owner; on TimescaleDB the readings are left to the
retention policies."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from storage import retention
from storage.migrate import Flavour
from storage.rollups import BY_RELATION, refresh_sync

Conn = psycopg.Connection[Any]
COUNCIL = "retention"
STREET = ("bin_fill", "air_quality", "flood_level")
PLAIN = ("dead_letters", "webhook_deliveries", "access_audit")


@pytest.fixture
def db(fresh_database: str) -> Any:
    with psycopg.connect(fresh_database, autocommit=True) as c:
        c.execute("INSERT INTO councils VALUES (%s, 'Retention')", (COUNCIL,))
        c.execute(
            """INSERT INTO devices (council_id, device_id, kind, resident_id) VALUES
               (%(c)s, 'bin-1', 'bin_fill', NULL), (%(c)s, 'home-1', 'home_activity', 'r-1')""",
            {"c": COUNCIL},
        )
        yield c


def _now(conn: Conn) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value.astimezone(UTC)


def _home(conn: Conn, start: datetime, n: int, step: timedelta) -> None:
    conn.execute(
        """INSERT INTO home_activity (time, council_id, device_id, resident_id, sensor,
                                      motion_count, received_at)
           SELECT %s + i * %s, %s, 'home-1', 'r-1', 'motion', 1 + i %% 3, now()
           FROM generate_series(0, %s - 1) i""",
        (start, step, COUNCIL, n),
    )


def _bins(conn: Conn, start: datetime, n: int, step: timedelta) -> None:
    conn.execute(
        """INSERT INTO bin_fill (time, council_id, device_id, fill_pct, received_at)
           SELECT %s + i * %s, %s, 'bin-1', i %% 100, now() FROM generate_series(0, %s - 1) i""",
        (start, step, COUNCIL, n),
    )


def _count(conn: Conn, sql: str, *params: Any) -> int:
    row = conn.execute(sql.encode(), params).fetchone()
    assert row is not None
    return int(row[0])


def _hourly(conn: Conn, relation: str) -> list[tuple[Any, ...]]:
    return conn.execute(f"SELECT * FROM {relation} ORDER BY 1, 2, 3".encode()).fetchall()


def _purge(url: str, **kwargs: Any) -> list[retention.ClassResult]:
    async def go() -> list[retention.ClassResult]:
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            return await retention.purge(conn, **kwargs)

    return asyncio.run(go())


def _by_class(results: list[retention.ClassResult]) -> dict[str, retention.ClassResult]:
    return {r.data_class: r for r in results}


def test_old_readings_go_in_batches_and_the_rollups_keep_their_hours(
    db: Conn, fresh_database: str, flavour: Flavour
) -> None:
    if flavour is not Flavour.POSTGRES:
        pytest.skip("plain PostgreSQL: TimescaleDB's policies drop the chunks")
    now = _now(db)
    old_home = now - timedelta(days=100)  # past 90 days
    _home(db, old_home, 50, timedelta(minutes=5))  # 50 readings over ~4 hours
    _home(db, now - timedelta(days=10), 20, timedelta(minutes=5))
    _bins(db, now - timedelta(days=4 * 365), 30, timedelta(minutes=10))  # past 3 years
    _bins(db, now - timedelta(days=400), 10, timedelta(minutes=10))
    refresh_sync(fresh_database, wait=True)
    home_before = _hourly(db, "home_activity_hourly")
    bins_before = _hourly(db, "bin_fill_hourly")
    assert len(home_before) > 5 and len(bins_before) > 5

    results = _by_class(_purge(fresh_database, batch=7))

    home = results["home_activity"]
    assert home.deleted == 50 and home.done
    assert home.batches == 50 // 7 + 1  # never more than 7 rows a transaction
    assert results["bin_fill"].deleted == 30
    assert _count(db, "SELECT count(*) FROM home_activity") == 20
    assert (
        _count(db, "SELECT count(*) FROM home_activity WHERE time < %s", now - timedelta(days=90))
        == 0
    )
    assert _count(db, "SELECT count(*) FROM bin_fill") == 10
    # The deletion was not logged as late changes: nothing to recompute, the roll-ups unchanged,
    # before and after the next refresh.
    assert _count(db, "SELECT count(*) FROM rollup_invalidations") == 0
    assert _hourly(db, "home_activity_hourly") == home_before
    assert _hourly(db, "bin_fill_hourly") == bins_before
    refresh_sync(fresh_database, wait=True)
    assert _hourly(db, "home_activity_hourly") == home_before
    assert _hourly(db, "bin_fill_hourly") == bins_before
    # Nothing left to do: a second run deletes nothing.
    again = _by_class(_purge(fresh_database, batch=7))
    assert all(r.deleted == 0 for r in again.values())


def test_a_late_reading_older_than_retention_leaves_the_purged_hours_alone(
    db: Conn, fresh_database: str, flavour: Flavour
) -> None:
    """A hub uploading its buffer: one statement with a reading past raw retention and one
    recent. The roll-up's recompute span must not reach the purged hours (whose raw rows are
    gone), nor must a refresh --since from before the cut-off."""
    if flavour is not Flavour.POSTGRES:
        pytest.skip("plain PostgreSQL: TimescaleDB's policies drop the chunks")
    now = _now(db)
    _home(db, now - timedelta(days=150), 12, timedelta(minutes=10))
    _home(db, now - timedelta(days=2), 12, timedelta(minutes=10))
    refresh_sync(fresh_database, wait=True)
    _purge(fresh_database, batch=100)
    assert _count(db, "SELECT count(*) FROM home_activity") == 12
    before = _hourly(db, "home_activity_hourly")
    old_hours = [h for h in before if h[0] < now - timedelta(days=90)]
    assert len(old_hours) >= 2

    db.execute(
        """INSERT INTO home_activity (time, council_id, device_id, resident_id, sensor,
                                      motion_count, received_at)
           VALUES (%(old)s, %(c)s, 'home-1', 'r-1', 'motion', 5, now()),
                  (%(new)s, %(c)s, 'home-1', 'r-1', 'motion', 5, now())""",
        {
            "old": now - timedelta(days=200),
            "new": now - timedelta(days=2, minutes=-7),
            "c": COUNCIL,
        },
    )
    refresh_sync(fresh_database, wait=True)
    after = _hourly(db, "home_activity_hourly")
    assert [h for h in after if h[0] < now - timedelta(days=90)] == old_hours
    assert sum(h[-1] for h in after) == sum(h[-1] for h in before) + 1  # the recent one counts
    refresh_sync(fresh_database, since=now - timedelta(days=365), wait=True)
    assert [h for h in _hourly(db, "home_activity_hourly") if h[0] < now - timedelta(days=90)] == (
        old_hours
    )


def test_an_ordinary_deletion_is_still_logged(
    db: Conn, fresh_database: str, flavour: Flavour
) -> None:
    """Only retention's own deletes are left out of the invalidation log (an erasure is not)."""
    if flavour is not Flavour.POSTGRES:
        pytest.skip("plain PostgreSQL's roll-ups")
    now = _now(db)
    _home(db, now - timedelta(days=3), 12, timedelta(minutes=5))
    refresh_sync(fresh_database, wait=True)
    db.execute("DELETE FROM home_activity WHERE resident_id = 'r-1'")
    assert _count(db, "SELECT count(*) FROM rollup_invalidations") == 1
    refresh_sync(fresh_database, wait=True)
    assert _hourly(db, "home_activity_hourly") == []


def test_readings_not_yet_materialised_are_kept(
    db: Conn, fresh_database: str, flavour: Flavour
) -> None:
    """Before the roll-ups have materialised an hour, its raw rows are all it has: they wait."""
    if flavour is not Flavour.POSTGRES:
        pytest.skip("plain PostgreSQL's roll-ups")
    _home(db, _now(db) - timedelta(days=100), 10, timedelta(minutes=5))
    results = _by_class(_purge(fresh_database, batch=100))
    assert results["home_activity"].deleted == 0
    assert results["home_activity"].cutoff is None
    assert _count(db, "SELECT count(*) FROM home_activity") == 10
    refresh_sync(fresh_database, wait=True)
    assert _by_class(_purge(fresh_database, batch=100))["home_activity"].deleted == 10


def test_old_rollup_rows_go(db: Conn, fresh_database: str, flavour: Flavour) -> None:
    if flavour is not Flavour.POSTGRES:
        pytest.skip("plain PostgreSQL's materialised roll-ups")
    now = _now(db)
    _home(db, now - timedelta(days=500), 3, timedelta(hours=1))
    _home(db, now - timedelta(days=300), 3, timedelta(hours=1))
    refresh_sync(fresh_database, wait=True, relations=["home_activity_hourly"])
    table = BY_RELATION["home_activity_hourly"].table
    assert _count(db, f"SELECT count(*) FROM {table}") == 6
    results = _by_class(_purge(fresh_database, batch=2, classes=["home_activity_hourly"]))
    assert results["home_activity_hourly"].deleted == 3
    assert _count(db, f"SELECT count(*) FROM {table}") == 3  # 300 days < 400


def test_plain_tables_on_both_flavours(db: Conn, fresh_database: str, flavour: Flavour) -> None:
    now = _now(db)
    db.execute(
        """INSERT INTO dead_letters (topic, payload, message_sha256, reason, detail, received_at,
                                     last_received_at)
           SELECT 't', 'p', sha256(i::text::bytea), 'decode', 'd', %(now)s - i * interval '1 day',
                  %(now)s - i * interval '1 day'
           FROM generate_series(1, 40) i""",
        {"now": now},
    )
    db.execute(
        """INSERT INTO access_audit (at, principal, action, resident_ids)
           VALUES (%s, 'p', 'alerts.get', '{r-1}'), (%s, 'p', 'alerts.get', '{r-1}')""",
        (now - timedelta(days=800), now - timedelta(days=700)),
    )
    results = _by_class(_purge(fresh_database, batch=4))
    assert set(PLAIN) <= set(results)
    if flavour is Flavour.TIMESCALEDB:
        # The hypertables are the retention policies' (0001), not listed here.
        assert not set(results) & {"bin_fill", "home_activity", "home_activity_hourly"}
    assert results["dead_letters"].deleted == 11  # 30 days kept: days 30.x .. 40
    assert _count(db, "SELECT count(*) FROM dead_letters") == 29
    assert results["access_audit"].deleted == 1  # 2 years kept
    assert _count(db, "SELECT count(*) FROM access_audit") == 1


def test_finished_deliveries_go_pending_ones_stay(db: Conn, fresh_database: str) -> None:
    from tests.support.alerts import open_test_alert

    db.execute(
        "INSERT INTO teams (team_id, council_id, name) VALUES ('ret-team', %s, 'T')", (COUNCIL,)
    )
    db.execute(
        "INSERT INTO webhook_endpoints (endpoint_id, team_id, url, secret)"
        " VALUES ('ret-hook', 'ret-team', 'https://example.org/h', 's')"
    )
    alert = open_test_alert(fresh_database, COUNCIL, "r", ("device", "bin-1"))
    now = _now(db)
    for i, (state, age) in enumerate(
        [("delivered", 120), ("dead", 100), ("pending", 200), ("delivered", 10)]
    ):
        created = now - timedelta(days=age)
        row = db.execute(
            """INSERT INTO webhook_deliveries (webhook_id, endpoint_id, team_id, outbox_id,
                   alert_id, council_id, event, body, state, give_up_at, event_committed_at,
                   created_at)
               VALUES (%s, 'ret-hook', 'ret-team', %s, %s, %s, 'alert.opened', '{}', %s, %s, %s,
                       %s) RETURNING delivery_id""",
            (f"msg_{i}", i, alert, COUNCIL, state, created, created, created),
        ).fetchone()
        assert row is not None
        db.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, latency_ms, worker)"
            " VALUES (%s, 1, %s, 5, 'w')",
            (row[0], created),
        )
    results = _by_class(_purge(fresh_database, batch=10, classes=["webhook_deliveries"]))
    assert results["webhook_deliveries"].deleted == 2
    states = db.execute("SELECT state FROM webhook_deliveries ORDER BY created_at").fetchall()
    assert states == [("pending",), ("delivered",)]
    assert _count(db, "SELECT count(*) FROM webhook_attempts") == 2


def test_the_budget_bounds_a_run(db: Conn, fresh_database: str) -> None:
    now = _now(db)
    db.execute(
        """INSERT INTO dead_letters (topic, payload, message_sha256, reason, detail, received_at,
                                     last_received_at)
           SELECT 't', 'p', sha256(i::text::bytea), 'decode', 'd', %(t)s, %(t)s
           FROM generate_series(1, 20) i""",
        {"t": now - timedelta(days=60)},
    )
    results = _by_class(_purge(fresh_database, batch=1, budget_s=0, classes=["dead_letters"]))
    assert results["dead_letters"].deleted == 0 and not results["dead_letters"].done


def test_the_command_records_the_periods_and_dry_run_changes_nothing(
    db: Conn, fresh_database: str
) -> None:
    now = _now(db)
    db.execute(
        """INSERT INTO dead_letters (topic, payload, message_sha256, reason, detail, received_at,
                                     last_received_at)
           VALUES ('t', 'p', 'x', 'decode', 'd', %(t)s, %(t)s)""",
        {"t": now - timedelta(days=15)},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLACEWATCH_")}
    env.update(
        PLACEWATCH_DATABASE_URL=fresh_database, PLACEWATCH_RETENTION_DAYS='{"dead_letters": 10}'
    )

    def run(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "placewatch", "storage", "retention", *args],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout

    dry = run("--dry-run")
    assert "dead_letters: kept 30 days" in dry and "0 rows would be deleted" in dry
    assert _count(db, "SELECT count(*) FROM dead_letters") == 1
    done = run()
    assert "dead_letters: kept 10 days" in done and "1 rows deleted" in done
    assert _count(db, "SELECT count(*) FROM dead_letters") == 0
    keep = db.execute("SELECT keep FROM retention_policies WHERE data_class = 'dead_letters'")
    assert keep.fetchone() == (timedelta(days=10),)


def test_periods_match_timescaledbs_policies(db: Conn, flavour: Flavour) -> None:
    """The plain flavour's defaults are the TimescaleDB policies' (0001)."""
    rows = dict(db.execute("SELECT data_class, keep FROM retention_policies").fetchall())
    if flavour is Flavour.POSTGRES:
        for kind in STREET:
            assert rows[kind] == rows["bin_fill"]
        years = db.execute("SELECT keep FROM retention_policies WHERE keep = interval '3 years'")
        assert len(years.fetchall()) == 3
        assert rows["home_activity"] == timedelta(days=90)
        assert rows["home_activity_hourly"] == timedelta(days=400)
    else:
        jobs = dict(
            db.execute(
                """SELECT hypertable_name, config->>'drop_after' FROM timescaledb_information.jobs
                   WHERE proc_name = 'policy_retention'"""
            ).fetchall()
        )
        assert jobs.get("home_activity") == "90 days"


def test_a_rollup_kept_shorter_than_its_readings_is_refused(
    db: Conn, fresh_database: str, flavour: Flavour
) -> None:
    if flavour is not Flavour.POSTGRES:
        pytest.skip("on TimescaleDB the readings' and roll-ups' periods are its policies")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLACEWATCH_")}
    env.update(
        PLACEWATCH_DATABASE_URL=fresh_database,
        PLACEWATCH_RETENTION_DAYS='{"bin_fill_hourly": 365}',  # raw bin_fill: 3 years
    )
    out = subprocess.run(
        [sys.executable, "-m", "placewatch", "storage", "retention"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "bin_fill_hourly would be kept 365 days, less than bin_fill's 1095" in out.stderr
    keep = db.execute("SELECT keep FROM retention_policies WHERE data_class = 'bin_fill_hourly'")
    assert keep.fetchone() != (timedelta(days=365),)
