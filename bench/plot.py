"""One picture of the latest benchmark results: drain throughput, latency percentiles, ingest RSS.

Run from the repository root::

    .venv/bin/python -m bench.plot [--results bench/results] [--output docs/benchmarks.png]

It reads the newest ``drain-*.json``, ``alert-latency-*.json`` and ``memory-*.json`` in the results
directory (newest by the timestamp in the name) and draws one PNG with a panel for each:

* **drain**: messages/s of each pipeline in the run (median of its runs): the raw limit,
  placewatch, and the naive approach and N replicas when the result has them;
* **latency**: p50, p95 and p99 of publish → commit (the readings that raised alerts),
  commit → alert, publish → webhook received, as far as the result has them, with the
  targets of DESIGN.md;
* **memory**: ingest's RSS over the run, the database outage shaded, and the messages ingest
  held.

A benchmark without results gets a panel saying so. Each panel's title carries its run's date.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

# Its own paths: the plot reads results files and needs none of the benchmarks' imports.
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUTPUT = ROOT / "docs" / "benchmarks.png"
PATTERNS = {
    "drain": ("drain-*.json",),
    "latency": ("alert-latency-*.json",),
    "memory": ("memory-*.json",),
}
# (label, path of keys in the alert-latency result, DESIGN.md's p99 target in ms)
LATENCIES: tuple[tuple[str, tuple[str, ...], float | None], ...] = (
    ("publish → commit", ("figures", "publish_to_commit_ms_triggering_readings"), 250.0),
    ("commit → alert", ("figures", "commit_to_alert_ms"), None),
    ("publish → alert", ("figures", "publish_to_alert_ms"), None),
    ("publish → webhook", ("figures", "delivery", "publish_to_received_ms_all"), 1000.0),
)
PIPELINE_ORDER = ("raw", "placewatch", "replicas", "naive")
COLOURS = {"raw": "#9e9e9e", "placewatch": "#1f77b4", "replicas": "#2ca02c", "naive": "#d62728"}


def latest(results: Path, patterns: Sequence[str]) -> Path | None:
    """The newest result file matching any pattern: by name (they end in a UTC timestamp)."""
    found = [p for pattern in patterns for p in results.glob(pattern) if p.is_file()]
    return max(found, key=lambda p: (p.name.rsplit("-", 1)[-1], p.stat().st_mtime), default=None)


def load(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"skipping {path}: {exc}", file=sys.stderr)
        return None
    return data if isinstance(data, dict) else None


def dig(data: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def run_date(data: dict[str, Any]) -> str:
    stamp = str(data.get("started_at") or data.get("finished_at") or "date unknown")
    return stamp.replace("T", " ").replace("+00:00", " UTC")[:20].strip()


def drain_bars(data: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(label, colour key, msg/s) per pipeline, in the order raw, placewatch, N replicas, naive:
    the median of each pipeline's runs as ``bench.drain`` writes them (profiled runs left out;
    placewatch runs with ``"replicas": N > 1`` apart)."""
    by_label: dict[str, list[float]] = {}
    colour: dict[str, str] = {}
    for run in data.get("runs") or []:
        if run.get("profiled") or not isinstance(run.get("msgs_per_s"), int | float):
            continue
        label = key = str(run["pipeline"])
        n = run.get("replicas", 1)
        if n > 1:
            label, key = f"{n} replicas", "replicas"
        by_label.setdefault(label, []).append(float(run["msgs_per_s"]))
        colour[label] = key

    def order(label: str) -> tuple[int, int, str]:
        if label in ("raw", "placewatch"):
            return (0 if label == "raw" else 1, 0, label)
        if colour[label] == "replicas":
            return (2, int(label.split()[0]), label)
        return (4 if label == "naive" else 3, 0, label)

    return [
        (label, colour[label], statistics.median(by_label[label]))
        for label in sorted(by_label, key=order)
    ]


def empty(ax: Axes, title: str, hint: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, f"no results\n({hint})", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_drain(ax: Axes, data: dict[str, Any] | None) -> None:
    if data is None:
        empty(ax, "Drain", "python -m bench.drain")
        return
    bars = drain_bars(data)
    if not bars:
        empty(ax, f"Drain ({run_date(data)})", "the result has no rates")
        return
    naive_n = data.get("naive_messages")
    labels = [
        f"naive\n({naive_n:,} messages)" if b[0] == "naive" and isinstance(naive_n, int) else b[0]
        for b in bars
    ]
    values = [b[2] for b in bars]
    colours = [COLOURS.get(b[1], "#8c564b") for b in bars]
    x = range(len(bars))
    rects = ax.bar(x, values, color=colours)
    ax.set_xticks(list(x), labels)
    ax.set_yscale("log")
    ax.set_ylabel("messages per second (log scale)")
    raw = next((v for label, _, v in bars if label == "raw"), None)
    placewatch = next((v for label, _, v in bars if label == "placewatch"), None)
    notes = []
    for label, _, v in bars:
        note = f"{v:,.0f}"
        if raw and label != "raw":
            note += f"\n{v / raw:.3f} x raw"
        if label == "naive" and placewatch:
            note += f"\nplacewatch = {placewatch / v:.1f} x this"
        notes.append(note)
    ax.bar_label(rects, notes, fontsize=8, padding=2)
    ax.set_ylim(10 ** math.floor(math.log10(min(values))), max(values) * 4)
    n = data.get("messages")
    backlog = f"{n:,}-message backlog, " if isinstance(n, int) else ""
    ax.set_title(f"Drain: {backlog}median of runs ({run_date(data)})")
    ax.text(
        0.99,
        0.98,
        "targets: placewatch >= 0.5 x raw, >= 20 x naive",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8,
    )
    ax.grid(axis="y", which="major", alpha=0.3)


def draw_latency(ax: Axes, data: dict[str, Any] | None) -> None:
    if data is None:
        empty(ax, "Latency", "python -m bench.alert_latency")
        return
    rows = []
    for label, keys, target in LATENCIES:
        stats = dig(data, keys)
        if isinstance(stats, dict) and stats.get("count"):
            rows.append((label, stats, target))
    if not rows:
        empty(ax, f"Latency ({run_date(data)})", "the result has no latencies")
        return
    quantiles = [q for q in ("p50", "p95", "p99") if any(q in s for _, s, _ in rows)]
    width = 0.8 / len(quantiles)
    shades = {"p50": "#9ecae1", "p95": "#4292c6", "p99": "#08519c"}
    for k, q in enumerate(quantiles):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(rows))]
        values = [float(s.get(q) or 0.0) for _, s, _ in rows]
        rects = ax.bar(xs, values, width, label=q, color=shades[q])
        ax.bar_label(rects, [f"{v:,.0f}" for v in values], fontsize=7, padding=1)
    for i, (_, _, target) in enumerate(rows):
        if target is not None:
            ax.hlines(target, i - 0.45, i + 0.45, colors="#d62728", linestyles="dashed")
            ax.text(
                i,
                target,
                f"target p99 ≤ {target:,.0f} ms",
                color="#d62728",
                fontsize=7,
                ha="center",
                va="bottom",
            )
    ax.set_xticks(range(len(rows)), [f"{label}\n(n={s['count']:,})" for label, s, _ in rows])
    ax.set_yscale("log")
    shown = [float(s.get(q) or 0.0) for _, s, _ in rows for q in quantiles]
    shown += [target for _, _, target in rows if target is not None]
    positive = [v for v in shown if v > 0] or [1.0]
    ax.set_ylim(10 ** math.floor(math.log10(min(positive))), max(positive) * 2.5)
    ax.set_ylabel("milliseconds (log scale)")
    ax.legend(loc="upper left", fontsize=8)
    rate = dig(data, ("live", "publisher", "achieved_rate"))
    at = f" at {rate:,.0f} msg/s" if isinstance(rate, int | float) else ""
    ax.set_title(f"Latency{at} ({run_date(data)})")
    ax.grid(axis="y", which="major", alpha=0.3)


def draw_memory(ax: Axes, data: dict[str, Any] | None) -> None:
    if data is None:
        empty(ax, "Ingest memory", "python -m bench.memory")
        return
    samples = [s for s in data.get("samples") or [] if isinstance(s, dict) and s.get("rss_kib")]
    if not samples:
        empty(ax, f"Ingest memory ({run_date(data)})", "the result has no samples")
        return
    minutes = [s["t"] / 60 for s in samples]
    ax.plot(minutes, [s["rss_kib"] / 1024 for s in samples], color="#1f77b4", label="ingest RSS")
    if any(s.get("hwm_kib") for s in samples):
        ax.plot(
            minutes,
            [(s.get("hwm_kib") or 0) / 1024 for s in samples],
            color="#1f77b4",
            linestyle=":",
            linewidth=1,
            label="ingest peak RSS (VmHWM)",
        )
    outage = dig(data, ("figures", "outage")) or {}
    spans: dict[str, tuple[float, float]] = {}
    for s in samples:
        lo, hi = spans.get(s["phase"], (s["t"], s["t"]))
        spans[s["phase"]] = (min(lo, s["t"]), max(hi, s["t"]))
    if "warmup" in spans:
        lo, hi = spans["warmup"]
        ax.axvspan(lo / 60, hi / 60, color="#bbbbbb", alpha=0.3, label="warm-up")
    if isinstance(outage.get("from_s"), int | float) and isinstance(
        outage.get("to_s"), int | float
    ):
        ax.axvspan(
            outage["from_s"] / 60,
            outage["to_s"] / 60,
            color="#d62728",
            alpha=0.2,
            label="database down",
        )
    ax.set_xlabel("minutes since publishing started")
    ax.set_ylabel("RSS (MiB)")
    top = max(max(s["rss_kib"], s.get("hwm_kib") or 0) / 1024 for s in samples)
    ax.set_ylim(0, top * 1.6)
    held = ax.twinx()
    held.plot(
        minutes,
        [s.get("held_messages", 0) for s in samples],
        color="#ff7f0e",
        linewidth=0.8,
        alpha=0.8,
        label="messages held by ingest",
    )
    held.set_ylabel("messages held (unacknowledged)")
    limit = dig(data, ("limits", "ingest_receive_maximum"))
    if isinstance(limit, int | float):
        held.axhline(
            limit,
            color="#ff7f0e",
            linestyle="--",
            linewidth=0.8,
            label=f"ingest_receive_maximum {limit:,.0f}",
        )
        held.set_ylim(0, limit * 1.25)
    lines, labels = ax.get_legend_handles_labels()
    lines2, labels2 = held.get_legend_handles_labels()
    ax.legend(
        lines + lines2,
        labels + labels2,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        ncol=6,
        fontsize=8,
        frameon=False,
    )
    summary = memory_note(data)
    if summary:
        ax.text(
            0.01,
            0.97,
            summary,
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "#cccccc"},
        )
    steady = dig(data, ("figures", "steady")) or {}
    params = data.get("parameters") or {}
    bits = []
    if isinstance(params.get("rate"), int | float):
        bits.append(f"{params['rate']:,.0f} msg/s")
    if isinstance(params.get("devices"), int):
        bits.append(f"{params['devices']:,} devices")
    if isinstance(steady.get("rss_slope_mib_per_min"), int | float):
        bits.append(f"steady slope {steady['rss_slope_mib_per_min']:+.3f} MiB/min")
    ax.set_title(f"Ingest memory: {', '.join(bits)} ({run_date(data)})")
    ax.grid(alpha=0.3)


def memory_note(data: dict[str, Any]) -> str:
    """The figures of a memory run in a few lines, for the panel."""
    s = dig(data, ("figures", "steady")) or {}
    o = dig(data, ("figures", "outage")) or {}
    lines = []
    if s.get("rss_start_mib") is not None:
        lines.append(
            f"steady: {s['rss_start_mib']} -> {s['rss_end_mib']} MiB, max {s['rss_max_mib']} MiB"
        )
    if o.get("rss_max_mib") is not None:
        limit = o.get("held_messages_limit")
        of = f" of {limit:,}" if isinstance(limit, int) else ""
        lines.append(
            f"database down: RSS max {o['rss_max_mib']} MiB, held max "
            f"{o.get('held_messages_max', 0):,}{of} messages, "
            f"{(o.get('held_bytes_max') or 0) / 2**20:.1f} MiB"
        )
    if o.get("seconds_to_catch_up") is not None:
        lines.append(f"caught up {o['seconds_to_catch_up']} s after the database came back")
    return "\n".join(lines)


def plot(
    results: Path, output: Path, chosen: dict[str, Path] | None = None
) -> dict[str, Path | None]:
    """``chosen``: a result file per benchmark name instead of the latest one."""
    used = {name: latest(results, patterns) for name, patterns in PATTERNS.items()}
    used.update(chosen or {})
    fig = plt.figure(figsize=(14, 9), layout="constrained")
    grid = fig.add_gridspec(2, 2)
    draw_drain(fig.add_subplot(grid[0, 0]), load(used["drain"]))
    draw_latency(fig.add_subplot(grid[0, 1]), load(used["latency"]))
    draw_memory(fig.add_subplot(grid[1, :]), load(used["memory"]))
    fig.suptitle("placewatch benchmarks (bench/; figures and machine in docs/benchmarks.md)")
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return used


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.plot",
        description="Draw the latest drain, latency and memory results into one PNG.",
    )
    p.add_argument("--results", default=str(RESULTS), help="results directory (bench/results)")
    p.add_argument("--output", default=str(OUTPUT), help="PNG to write (docs/benchmarks.png)")
    for name in PATTERNS:
        p.add_argument(f"--{name}", metavar="FILE", help=f"this {name} result, not the latest")
    args = p.parse_args(argv)
    results = Path(args.results)
    if not results.is_dir():
        p.error(f"{results} is not a directory")
    output = Path(args.output)
    chosen = {name: Path(getattr(args, name)) for name in PATTERNS if getattr(args, name)}
    used = plot(results, output, chosen)
    for name, path in used.items():
        print(f"{name:<8} {path if path else '(no results)'}")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
