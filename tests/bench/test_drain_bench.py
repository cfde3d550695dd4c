"""The drain benchmark, at a tiny size against the real PostgreSQL and a private Mosquitto: raw,
placewatch with one and two ingest replicas (shared subscription) and the naive consumer each
drain their backlog completely and verifiably, and the benchmark drops its database. Its speeds
are never compared: they depend on the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.support.postgres import ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_drain_runs_every_pipeline_and_verifies_them(tmp_path: Path) -> None:
    out = tmp_path / "drain.json"
    cmd = [sys.executable, "-m", "bench.drain", "--messages", "3000", "--repeat", "1"]
    cmd += ["--naive-messages", "500", "--replicas", "1,2", "--output", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["problems"] == []
    assert result["messages"] == 3000 and result["naive_messages"] == 500
    assert result["replicas"] == [1, 2]

    runs = {(r["pipeline"], r.get("replicas")): r for r in result["runs"]}
    assert set(runs) == {("raw", None), ("placewatch", 1), ("placewatch", 2), ("naive", None)}
    for run in runs.values():
        assert run["msgs_per_s"] > 0 and run["seconds"] > 0
        assert run["cpu_seconds"]["machine_capacity"] > 0
    assert runs[("raw", None)]["rows"] == 3000
    assert runs[("naive", None)]["rows"] == 500
    assert runs[("naive", None)]["messages"] == 500
    assert runs[("naive", None)]["errors"] == 0
    for n in (1, 2):
        pw = runs[("placewatch", n)]
        assert pw["rows"] == pw["acked"] == 3000
        assert pw["dead_letters"] == pw["db_errors"] == pw["duplicates"] == 0
        assert len(pw["replica_split"]) == n
        assert sum(s["received"] for s in pw["replica_split"]) == 3000
        assert sum(s["stored"] for s in pw["replica_split"]) == 3000
    # Mosquitto spreads the backlog queued for the offline sessions between the two replicas.
    assert all(s["received"] > 0 for s in runs[("placewatch", 2)]["replica_split"])

    summary = result["summary"]
    assert summary["placewatch_replicas"] == 1
    assert summary["placewatch_msgs_per_s"] == [runs[("placewatch", 1)]["msgs_per_s"]]
    assert summary["median_ratio"] > 0
    assert summary["naive"]["messages"] == 500
    assert summary["naive"]["median_ratio_placewatch_to_naive"] > 0
    assert set(summary["replicas"]) == {"1", "2"}
    two = summary["replicas"]["2"]
    assert two["median_ratio_to_raw"] > 0 and two["median_ratio_to_1_replica"] > 0
    assert len(two["replica_cpu_seconds_median"]) == 2

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (result["setup"]["database"],)
        ).fetchone()
    assert left == (0,), f"{result['setup']['database']} was not dropped"
