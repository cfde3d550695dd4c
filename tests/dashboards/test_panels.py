"""Every PostgreSQL panel of every dashboard, run as Grafana would: its variables filled from
their own queries, its SQL expanded with Grafana's macros (with the TimescaleDB option off and,
where the database has TimescaleDB, on), executed through Grafana's read-only role against the
simulated week. No error, and rows for every panel."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dashboards.macros import TimeRange, Variable, expand
from dashboards.panels import POSTGRES_UID
from storage.migrate import Flavour
from tests.dashboards.conftest import COUNCIL, Week
from tests.dashboards.panels import Json, dashboard_files, datasource_uid, load, targets

SQL_BOARDS = [
    p
    for p in dashboard_files()
    if any(datasource_uid(t, panel) == POSTGRES_UID for panel, t in targets(load(p)))
]
RANGE = timedelta(days=7)
# Grafana's $__interval for a week on a panel about 1,000 px wide: the range over the data
# points, rounded (kbn.roundInterval); a panel's own minimum interval wins when larger.
AUTO_INTERVAL = timedelta(minutes=10)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> timedelta:
    m = re.fullmatch(r"(\d+)([smhd])", text)
    assert m, text
    return timedelta(seconds=int(m[1]) * _UNITS[m[2]])


def _rows(conn: psycopg.Connection[Any], query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with conn.cursor() as cur:
        cur.execute(query.encode())
        assert cur.description is not None
        return [c.name for c in cur.description], cur.fetchall()


def _variables(conn: psycopg.Connection[Any], board: Json, span: TimeRange) -> list[Variable]:
    """Each variable from its own query, in order (later ones use earlier ones): the test's
    council, and All for the multi-value ones, as a dashboard opens."""
    found: list[Variable] = []
    for v in board["templating"]["list"]:
        query = expand(v["query"], span, AUTO_INTERVAL, timescaledb=False, variables=found)
        columns, rows = _rows(conn, query)
        column = columns.index("__value") if "__value" in columns else 0
        values = tuple(str(r[column]) for r in rows)
        assert values, f"variable {v['name']} has no options"
        if v["name"] == "council":
            assert COUNCIL in values
            values = (COUNCIL,)
        found.append(Variable(v["name"], values, multi=v["multi"] or v["includeAll"]))
    return found


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
            interval = max(AUTO_INTERVAL, _duration(panel.get("interval", "1s")))
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
