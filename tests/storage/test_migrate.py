"""Migrations on a real server: idempotent, serialised by the advisory lock, same schema on both
flavours, and the TimescaleDB objects when the server has the extension."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg
import pytest

from ingest.writer import copy_columns
from placewatch.kinds import KINDS
from storage.migrate import Flavour, load_migrations, migrate
from tests.support.postgres import create_database, drop_database, grafana_login_url

Conn = psycopg.Connection[Any]


def test_migrations_are_versioned_and_complete() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    for m in migrations:
        assert set(m.by_flavour) == {Flavour.POSTGRES, Flavour.TIMESCALEDB}, m.name


def test_concurrent_migrators_apply_each_version_once(flavour: Flavour) -> None:
    url = create_database("pwtest_migrate")
    try:
        setting: Literal["on", "off"] = "on" if flavour is Flavour.TIMESCALEDB else "off"
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: migrate(url, setting), range(4)))
        applied = sorted(v for r in results for v in r.applied)
        assert applied == [m.version for m in load_migrations()]
        assert {r.flavour for r in results} == {flavour}
        again = migrate(url, "auto")  # the recorded flavour wins over the setting
        assert again.applied == [] and again.flavour is flavour
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT version, flavour FROM schema_migrations").fetchall()
        assert rows == [(m.version, flavour.value) for m in load_migrations()]
    finally:
        drop_database(url)


def test_reading_tables_have_the_columns_ingest_copies(conn: Conn) -> None:
    for kind in KINDS:
        cols = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (kind.value,),
            )
        }
        assert cols == set(copy_columns(kind)), kind


def test_hourly_rollups_agree_with_raw_data(conn: Conn, flavour: Flavour) -> None:
    """The *_hourly relations (views or continuous aggregates) answer the same on both flavours;
    on TimescaleDB both from the materialized aggregate and from real-time aggregation."""
    council = "hourly-test"
    conn.execute("INSERT INTO councils VALUES (%s, 'Hourly') ON CONFLICT DO NOTHING", (council,))
    base = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO flood_level (time, council_id, device_id, level_m, received_at)"
            " VALUES (%s, %s, 'g1', %s, now())",
            [(base + timedelta(minutes=10 * i), council, 1.0 + i / 10) for i in range(12)],
        )
    if flavour is Flavour.TIMESCALEDB:
        # Materialize the first hour only; the second comes from real-time aggregation.
        conn.execute(
            "CALL refresh_continuous_aggregate('flood_level_hourly', %s, %s)",
            (base, base + timedelta(hours=1)),
        )
    rows = conn.execute(
        "SELECT bucket, level_m_min, level_m_max, readings FROM flood_level_hourly"
        " WHERE council_id = %s ORDER BY bucket",
        (council,),
    ).fetchall()
    assert rows == [
        (base, 1.0, 1.5, 6),
        (base + timedelta(hours=1), pytest.approx(1.6), pytest.approx(2.1), 6),
    ]


def test_dead_letters_deduplicate_on_topic_and_payload(conn: Conn) -> None:
    insert = (
        "INSERT INTO dead_letters (topic, payload, message_sha256, reason, detail,"
        " received_at, last_received_at) VALUES ('t/x', 'p', 'h', 'r', 'd', now(), now())"
    )
    conn.execute(insert)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(insert)


@pytest.mark.timescaledb_only
def test_timescaledb_objects(conn: Conn, flavour: Flavour) -> None:
    hypertables = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_schema = 'public'"
        )
    }
    assert hypertables == {k.value: True for k in KINDS}
    segmentby = {
        (r[0], r[1])
        for r in conn.execute(
            "SELECT hypertable_name, attname FROM timescaledb_information.compression_settings"
            " WHERE segmentby_column_index IS NOT NULL"
        )
    }
    for kind in KINDS:
        assert {(kind.value, "council_id"), (kind.value, "device_id")} <= segmentby
    caggs = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates"
        )
    }
    assert caggs == {f"{k.value}_hourly": False for k in KINDS}
    jobs = conn.execute(
        "SELECT proc_name, count(*) FROM timescaledb_information.jobs"
        " WHERE proc_name IN ('policy_compression', 'policy_retention',"
        "                     'policy_refresh_continuous_aggregate') GROUP BY 1 ORDER BY 1"
    ).fetchall()
    # 4 compression, 4 raw + 4 hourly retention, 4 refresh policies.
    assert jobs == [
        ("policy_compression", 4),
        ("policy_refresh_continuous_aggregate", 4),
        ("policy_retention", 8),
    ]
    home = conn.execute(
        "SELECT (config->>'drop_after')::interval FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_retention' AND hypertable_name = 'home_activity'"
    ).fetchone()
    assert home is not None and home[0] == timedelta(days=90)


HOURLY_COLUMNS = {
    "bin_fill_hourly": "bucket council_id device_id fill_pct_avg fill_pct_max battery_pct_min fire"
    " readings",
    "air_quality_hourly": "bucket council_id device_id no2_ugm3_avg no2_ugm3_max pm25_ugm3_avg"
    " pm10_ugm3_avg o3_ugm3_avg so2_ugm3_avg readings",
    "flood_level_hourly": "bucket council_id device_id level_m_avg level_m_min level_m_max"
    " readings",
    "home_activity_hourly": "bucket council_id device_id resident_id sensor motion_count"
    " door_opens power_on_readings occupied_readings readings",
}


def test_hourly_relations_have_the_same_columns_on_both_flavours(conn: Conn) -> None:
    """The plain views and the continuous aggregates are written twice (one per flavour); this
    pins both to one column list so dashboards' queries run on either."""
    for name, expected in HOURLY_COLUMNS.items():
        cols = [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = %s ORDER BY ordinal_position",
                (name,),
            )
        ]
        assert [c for c, _ in cols] == expected.split(), name
        assert dict(cols)["bucket"] == "timestamp with time zone"
        assert dict(cols)["readings"] == "bigint"


def test_dashboard_reads_need_no_jit_and_find_the_recent_home_readings(
    database_url: str, flavour: Flavour
) -> None:
    """Migration 0007: JIT off for every new session of the database, Grafana's login included
    (a setting on its group role would not reach it); on plain PostgreSQL, a BRIN index on
    home_activity's time for the real-time part of home_activity_hourly (bench.dashboards
    measures that it is used)."""
    with psycopg.connect(grafana_login_url(database_url)) as grafana:
        assert grafana.execute("SHOW jit").fetchone() == ("off",)
    with psycopg.connect(database_url) as conn:
        brin = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'home_activity_time_brin'"
        ).fetchone()
        if flavour is Flavour.TIMESCALEDB:
            assert brin is None
            return
        assert brin is not None and 'USING brin ("time")' in str(brin[0]), brin
