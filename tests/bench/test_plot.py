"""bench.plot on small synthetic results: one PNG from the newest result of each benchmark, and
the drain panel's bars from the result shapes it accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))


def _drain(started: str, **extra: Any) -> dict[str, Any]:
    return {
        "benchmark": "drain",
        "started_at": started,
        "messages": 5000,
        "runs": [
            {"pipeline": "raw", "rep": "1", "msgs_per_s": 150_000.0},
            {"pipeline": "placewatch", "rep": "1", "msgs_per_s": 8_000.0},
            {"pipeline": "placewatch", "rep": "p", "msgs_per_s": 1.0, "profiled": True},
        ],
        "summary": {"raw_median_msgs_per_s": 150_000.0, "placewatch_median_msgs_per_s": 8_000.0},
        **extra,
    }


def _stats(p50: float, p99: float) -> dict[str, Any]:
    return {"count": 100, "p50": p50, "p95": (p50 + p99) / 2, "p99": p99, "max": p99 * 1.2}


def _memory() -> dict[str, Any]:
    samples = []
    for t in range(0, 120):
        phase = "warmup" if t < 10 else "steady" if t < 80 else "outage" if t < 100 else "recovery"
        held = (t - 80) * 300 if phase == "outage" else 20
        samples.append(
            {
                "t": float(t),
                "phase": phase,
                "rss_kib": 80_000 + t,
                "hwm_kib": 80_200 + t,
                "held_messages": held,
                "held_bytes": held * 110,
            }
        )
    return {
        "benchmark": "memory",
        "started_at": "2026-11-23T10:00:00+00:00",
        "parameters": {"rate": 300, "devices": 100},
        "limits": {"ingest_receive_maximum": 10_000, "ingest_max_held_mib": 64},
        "figures": {
            "steady": {
                "rss_start_mib": 78.1,
                "rss_end_mib": 78.2,
                "rss_max_mib": 78.2,
                "rss_slope_mib_per_min": 0.01,
            },
            "outage": {
                "from_s": 80.0,
                "to_s": 100.0,
                "rss_max_mib": 79.0,
                "held_messages_max": 5_700,
                "held_messages_limit": 10_000,
                "held_bytes_max": 627_000,
                "seconds_to_catch_up": 2.5,
            },
        },
        "samples": samples,
    }


def test_one_png_from_the_newest_result_of_each_benchmark(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    _write(results / "drain-20261101T000000Z.json", _drain("2026-11-01T00:00:00+00:00"))
    _write(
        results / "drain-20261123T000000Z.json",
        _drain(
            "2026-11-23T00:00:00+00:00",
            naive={"msgs_per_s": 350.0},
            replicas=[{"replicas": 2, "msgs_per_s": 12_000.0}],
        ),
    )
    (results / "drain-20261123T000000Z-py-spy.txt").write_text("not a result")
    _write(
        results / "alert-latency-20261123T010000Z.json",
        {
            "benchmark": "alert-latency",
            "started_at": "2026-11-23T01:00:00+00:00",
            "live": {"publisher": {"achieved_rate": 4_500.0}},
            "figures": {
                "publish_to_commit_ms_triggering_readings": _stats(40, 210),
                "commit_to_alert_ms": _stats(60, 300),
                "delivery": {"publish_to_received_ms_all": _stats(180, 800)},
            },
        },
    )
    _write(results / "memory-20261123T020000Z.json", _memory())
    out = tmp_path / "docs" / "bench.png"

    assert plot.main(["--results", str(results), "--output", str(out)]) == 0

    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 20_000
    assert plot.latest(results, plot.PATTERNS["drain"]) == results / "drain-20261123T000000Z.json"


def test_missing_benchmarks_get_a_panel_saying_so(tmp_path: Path) -> None:
    _write(tmp_path / "drain-20261123T000000Z.json", _drain("2026-11-23T00:00:00+00:00"))
    out = tmp_path / "only-drain.png"

    assert plot.main(["--results", str(tmp_path), "--output", str(out)]) == 0

    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert out.stat().st_size > 10_000


def test_drain_bars_read_the_runs_bench_drain_writes() -> None:
    base = _drain("2026-11-23T00:00:00+00:00")
    assert [(label, v) for label, _, v in plot.drain_bars(base)] == [
        ("raw", 150_000.0),
        ("placewatch", 8_000.0),
    ]
    # What bench.drain --replicas 1,2 writes: runs per pipeline, replica count and repetition.
    as_written = _drain("x", replicas=[1, 2], naive_messages=20_000)
    as_written["runs"] += [
        {"pipeline": "placewatch", "rep": "1", "replicas": 2, "msgs_per_s": 11_000.0},
        {"pipeline": "placewatch", "rep": "2", "replicas": 2, "msgs_per_s": 13_000.0},
        {"pipeline": "placewatch", "rep": "p", "profiled": True, "msgs_per_s": 1.0},
        {"pipeline": "naive", "rep": "1", "messages": 20_000, "msgs_per_s": 300.0},
    ]
    bars = plot.drain_bars(as_written)
    assert [label for label, _, _ in bars] == ["raw", "placewatch", "2 replicas", "naive"]
    assert bars[1][2] == 8_000.0 and bars[2][2] == 12_000.0 and bars[3][2] == 300.0
