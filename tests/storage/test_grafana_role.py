"""Grafana's role (migration 0005) reads what the dashboards need and is refused everything
personal or secret. Every relation of the schema is listed here as readable, readable in part,
or refused, so a table added later must be decided on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from storage.migrate import Flavour
from tests.support.postgres import grafana_login_url

READABLE = {
    "councils", "dashboard_devices", "bin_fill", "air_quality", "flood_level",
    "bin_fill_hourly", "air_quality_hourly", "flood_level_hourly", "home_activity_hourly",
    "teams", "team_routes",
}  # fmt: skip
# Readable except these columns.
PARTLY = {
    "alerts": {"resolution_note", "acknowledged_by", "resolved_by", "resolution", "observed"},
    "webhook_deliveries": {"body", "lease_until", "last_error"},
    "webhook_endpoints": {"url", "secret"},
    "webhook_attempts": {"error"},
}
REFUSED = {
    # personal: a resident's raw readings, homes' positions, what carers did and who looked
    "home_activity", "devices", "alert_events", "alert_outbox", "access_audit", "ack_link_uses",
    "resident_groups", "rule_state", "dead_letters",
    # secret
    "api_keys",
    # internal to the services
    "rule_inbox", "rule_timers", "ingest_heartbeats", "schema_migrations", "device_counters",
    "device_models", "network_applications", "retention_policies",
}  # fmt: skip
# Plain PostgreSQL only (migration 0006): the materialised part of each hourly roll-up holds
# what the readable *_hourly view shows; the watermarks and invalidation log are internal.
POSTGRES_READABLE = {
    "bin_fill_hourly_materialized", "air_quality_hourly_materialized",
    "flood_level_hourly_materialized", "home_activity_hourly_materialized",
}  # fmt: skip
POSTGRES_REFUSED = {"rollup_watermarks", "rollup_invalidations"}


@pytest.fixture
def grafana(database_url: str) -> Any:
    with psycopg.connect(grafana_login_url(database_url), autocommit=True) as conn:
        yield conn


def _relations(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')"""
    ).fetchall()
    return {r[0] for r in rows}


def _columns(conn: psycopg.Connection[Any], table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
    ).fetchall()
    return {r[0] for r in rows}


def _select(conn: psycopg.Connection[Any], table: str, columns: list[str] | None = None) -> None:
    cols = sql.SQL("*") if columns is None else sql.SQL(", ").join(map(sql.Identifier, columns))
    conn.execute(sql.SQL("SELECT {} FROM {} LIMIT 1").format(cols, sql.Identifier(table)))


def _readable(flavour: Flavour) -> set[str]:
    return READABLE | (POSTGRES_READABLE if flavour is Flavour.POSTGRES else set())


def _refused(flavour: Flavour) -> set[str]:
    return REFUSED | (POSTGRES_REFUSED if flavour is Flavour.POSTGRES else set())


def test_every_relation_is_decided(conn: psycopg.Connection[Any], flavour: Flavour) -> None:
    decided = _readable(flavour) | set(PARTLY) | _refused(flavour)
    assert _relations(conn) == decided


def test_grafana_reads_the_dashboard_relations(
    grafana: psycopg.Connection[Any], flavour: Flavour
) -> None:
    for table in sorted(_readable(flavour)):
        _select(grafana, table)


@pytest.mark.parametrize("table", sorted(PARTLY))
def test_grafana_reads_only_the_harmless_columns(
    conn: psycopg.Connection[Any], grafana: psycopg.Connection[Any], table: str
) -> None:
    hidden = PARTLY[table]
    columns = _columns(conn, table)
    assert hidden <= columns
    _select(grafana, table, sorted(columns - hidden))
    for column in sorted(hidden):
        with pytest.raises(errors.InsufficientPrivilege):
            _select(grafana, table, [column])
    with pytest.raises(errors.InsufficientPrivilege):
        _select(grafana, table)


@pytest.mark.parametrize("table", sorted(REFUSED))
def test_grafana_is_refused_personal_secret_and_internal_tables(
    grafana: psycopg.Connection[Any], table: str
) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        _select(grafana, table)


def test_grafana_is_refused_the_rollups_internal_tables(
    grafana: psycopg.Connection[Any], flavour: Flavour
) -> None:
    for table in sorted(_refused(flavour) - REFUSED):
        with pytest.raises(errors.InsufficientPrivilege):
            _select(grafana, table)


def test_grafana_cannot_write(grafana: psycopg.Connection[Any]) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        grafana.execute("INSERT INTO councils (council_id, name) VALUES ('x', 'x')")
    with pytest.raises(errors.InsufficientPrivilege):
        grafana.execute("UPDATE alerts SET state = 'resolved'")
    with pytest.raises(errors.InsufficientPrivilege):
        grafana.execute("CREATE TABLE grafana_was_here (x int)")


def test_the_dashboards_view_hides_homes_positions_and_exact_times(
    conn: psycopg.Connection[Any],
) -> None:
    heard = datetime(2026, 11, 23, 21, 13, 41, tzinfo=UTC)
    conn.execute("INSERT INTO councils VALUES ('rolecheck', 'Role check') ON CONFLICT DO NOTHING")
    conn.execute(
        """INSERT INTO devices (council_id, device_id, kind, latitude, longitude, resident_id,
                                last_seen, last_reading_at)
           VALUES ('rolecheck', 'home-1', 'home_activity', 51.4, -0.16, 'r-1', %(t)s, %(t)s),
                  ('rolecheck', 'bin-1', 'bin_fill', 51.4, -0.16, NULL, %(t)s, %(t)s)
           ON CONFLICT DO NOTHING""",
        {"t": heard},
    )
    rows = conn.execute(
        """SELECT device_id, latitude, longitude, last_seen, last_reading_at
           FROM dashboard_devices WHERE council_id = 'rolecheck' ORDER BY device_id"""
    ).fetchall()
    quarter = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    assert rows == [
        ("bin-1", 51.4, -0.16, heard, heard),
        ("home-1", None, None, quarter, quarter),
    ]
