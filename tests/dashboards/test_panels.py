"""Every PostgreSQL panel of every dashboard, run as Grafana would: its variables filled from
their own queries, its SQL expanded with Grafana's macros (with the TimescaleDB option off and,
where the database has TimescaleDB, on), executed through Grafana's read-only role against the
simulated week. No error, and rows for every panel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dashboards.macros import TimeRange, Variable, expand
from dashboards.panels import POSTGRES_UID
from dashboards.run import (
    Json,
    auto_interval,
    dashboard_files,
    datasource_uid,
    fill_variables,
    load,
    panel_interval,
    targets,
)
from storage.migrate import Flavour
from tests.dashboards.conftest import COUNCIL, Week

SQL_BOARDS = [
    p
    for p in dashboard_files()
    if any(datasource_uid(t, panel) == POSTGRES_UID for panel, t in targets(load(p)))
]
RANGE = timedelta(days=7)
# Grafana's $__interval for a week on a panel about 1,000 px wide (10 minutes); a panel's own
# minimum interval wins when larger.
AUTO_INTERVAL = auto_interval(RANGE)


def _rows(conn: psycopg.Connection[Any], query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with conn.cursor() as cur:
        cur.execute(query.encode())
        assert cur.description is not None
        return [c.name for c in cur.description], cur.fetchall()


def _variables(conn: psycopg.Connection[Any], board: Json, span: TimeRange) -> list[Variable]:
    filled = fill_variables(conn, board, span, AUTO_INTERVAL, council=COUNCIL)
    return [f.variable for f in filled]


@pytest.mark.parametrize("timescaledb_option", [False, True], ids=["plain", "timescaledb-option"])
@pytest.mark.parametrize("path", SQL_BOARDS, ids=lambda p: p.stem)
def test_every_panel_query_runs_and_returns_rows(
    week: Week, flavour: Flavour, path: Path, timescaledb_option: bool
) -> None:
    if timescaledb_option and flavour is not Flavour.TIMESCALEDB:
        pytest.skip("the TimescaleDB option's time_bucket needs the extension")
    board = load(path)
    now = datetime.now(UTC)
    span = TimeRange(now - RANGE, now)
    with psycopg.connect(week.grafana_url, autocommit=True) as conn:
        variables = _variables(conn, board, span)
        for panel, target in targets(board):
            title = f"{board['title']} / {panel['title']} / {target['refId']}"
            interval = panel_interval(panel, AUTO_INTERVAL)
            query = expand(
                target["rawSql"],
                span,
                interval,
                timescaledb=timescaledb_option,
                variables=variables,
            )
            try:
                columns, rows = _rows(conn, query)
            except psycopg.Error as e:
                pytest.fail(f"{title}: {e}\n{query}")
            assert rows, f"{title}: no rows\n{query}"
            if target["format"] == "time_series":
                assert columns[0] == "time", f"{title}: a time series starts with time"


def test_variable_interpolation_reaches_the_queries(week: Week) -> None:
    """A narrower selection gives fewer rows: the variables are really applied."""
    board = load(next(p for p in SQL_BOARDS if p.stem == "bins"))
    now = datetime.now(UTC)
    span = TimeRange(now - RANGE, now)
    sql = next(t["rawSql"] for p, t in targets(board) if p["title"] == "Predicted full")
    with psycopg.connect(week.grafana_url, autocommit=True) as conn:
        variables = _variables(conn, board, span)
        every = _rows(
            conn, expand(sql, span, AUTO_INTERVAL, timescaledb=False, variables=variables)
        )[1]
        first = str(every[0][1])
        one_bin = [
            Variable("bin", (first,), multi=True) if v.name == "bin" else v for v in variables
        ]
        narrowed = _rows(
            conn, expand(sql, span, AUTO_INTERVAL, timescaledb=False, variables=one_bin)
        )[1]
    assert len(every) > 1
    assert [r[1] for r in narrowed] == [first]
