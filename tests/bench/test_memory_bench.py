"""The memory benchmark, briefly, against a private PostgreSQL cluster and a private Mosquitto:
RSS is sampled, the database is stopped and started, and everything published is stored once.
Its figures are never asserted against targets: memory and speed depend on the machine."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from bench import memory
from tests.support.postgres import PrivateCluster


@pytest.mark.skipif(PrivateCluster.available() is None, reason="no initdb/pg_ctl")
def test_brief_run_reports_rss_and_an_outage_with_nothing_lost(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    argv = ["--minutes", "0.25", "--outage", "5", "--warmup", "3", "--after", "5"]
    argv += ["--rate", "300", "--devices", "100", "--output", str(out)]

    assert memory.main(argv) == 0

    result = json.loads(out.read_text())
    assert result["benchmark"] == "memory"
    assert result["problems"] == []
    v, f = result["verification"], result["figures"]
    assert v["published"] > 0
    assert v["stored_rows"] == v["stored_distinct"] == v["published"]
    assert v["dead_letters"] == 0 and v["ingest_starts"] == 1 and v["ingest_exit_code"] == 0
    assert f["publishing"]["sent"] == v["published"]

    phases = {s["phase"] for s in result["samples"]}
    assert {"warmup", "steady", "outage", "recovery"} <= phases
    steady = [s for s in result["samples"] if s["phase"] == "steady"]
    assert len(steady) >= 10 and all(s["rss_kib"] > 0 for s in steady)
    assert f["steady"]["rss_slope_mib_per_min"] is not None
    assert f["steady"]["rss_max_mib"] >= f["steady"]["rss_start_mib"] > 0

    o = f["outage"]
    assert 0 < o["held_messages_max"] <= o["held_messages_limit"]
    assert 0 < o["held_bytes_max"] <= o["held_bytes_limit"]
    assert o["readyz_503_samples"] > 0
    assert o["seconds_to_catch_up"] is not None
    assert result["limits"]["ingest_receive_maximum"] == o["held_messages_limit"]
    # Everything it started is stopped (the cluster, the broker, ingest) and its temp dir gone.
    workdir = result["setup"]["workdir"]
    assert not Path(workdir).exists()
    left = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if workdir in " ".join(p.info["cmdline"] or ())
    ]
    assert left == []
