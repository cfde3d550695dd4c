"""The dashboards benchmark, at a tiny size against the real PostgreSQL: it runs every
PostgreSQL target of every dashboard, gets rows from each, records its timings and drops its
database. Its figures are never asserted: speed depends on the machine."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from bench import dashboards
from dashboards.panels import POSTGRES_UID
from dashboards.run import dashboard_files, datasource_uid, load, targets
from tests.support.postgres import ADMIN_URL


def test_tiny_run_measures_every_panel_and_drops_its_database(tmp_path: Path) -> None:
    out = tmp_path / "dashboards.json"
    argv = ["--devices", "50", "--days", "2", "--repeat", "2", "--output", str(out)]
    argv += ["--explain", "--explain-over", "0"]  # every panel, so the EXPLAIN path runs too

    assert dashboards.main(argv) == 0

    result = json.loads(out.read_text())
    expected = {
        (board["title"], panel["id"], target["refId"])
        for board in map(load, dashboard_files())
        for panel, target in targets(board)
        if datasource_uid(target, panel) == POSTGRES_UID
    }
    measured = [p for p in result["panels"] if p["variant"] == "all"]
    assert {(p["dashboard"], p["panel_id"], p["ref_id"]) for p in measured} == expected
    assert len(measured) == len(expected)
    for p in result["panels"]:
        title = f"{p['dashboard']} / {p['panel']} [{p['ref_id']}] ({p['variant']})"
        assert "error" not in p, title
        assert p["rows"] > 0, title
        assert p["p95_ms"] > 0, title
        assert len(p["times_ms"]) == 2, title
        assert p["explain"]["plan"] and p["explain"]["hot_nodes"], title
    assert result["references"]["count_bin_fill"]["p50_ms"] > 0
    assert result["generation"]["rows"]["bin_fill"] > 0
    assert result["problems"] == []

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (result["database"],)
        ).fetchone()
    assert left == (0,), f"{result['database']} was not dropped"
