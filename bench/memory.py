"""Memory benchmark: ingest's resident memory at a steady live rate, and while the database is down.

Run from the repository root::

    .venv/bin/python -m bench.memory [--minutes 10] [--outage 60] [--rate 1000] [--devices 2000]

A PostgreSQL cluster of its own (``initdb`` into a temp dir, a free port, its unix socket in that
dir: the benchmark stops it, so it must never be the system server), a private Mosquitto from
``broker/mosquitto.conf`` and ``python -m placewatch ingest`` as a subprocess. One publisher
process (the load mode's worker, ``simulators.load.worker_main``, paced) sends valid native
readings from the whole fleet at ``--rate`` msg/s, every reading stamped with the wall clock,
from the start to the end of the run. Every second the harness reads ingest's ``VmRSS`` and
``VmHWM`` from ``/proc/<pid>/status`` and its ``/metrics`` (held messages and bytes, stored).

Phases, all with publishing going on:

1. **warm-up** (``--warmup`` s): not in the figures;
2. **steady** (``--minutes``): RSS at the start and end, least-squares slope (MiB/min), max;
3. **outage** (``--outage`` s): ``pg_ctl stop -m fast`` on the private cluster; ingest should
   hold at most ``ingest_receive_maximum`` messages and ``ingest_max_held_mib`` bytes and leave
   the rest to the broker; then ``pg_ctl start``;
4. **recovery** (``--after`` s): how long until everything published before the database came
   back is stored, and where RSS settles.

Then the publisher stops and the harness waits until every published reading is stored, and
checks that the tables hold exactly as many distinct readings as were published, with no
dead letter and no duplicate, and that ingest never restarted. Results go to stdout and to
``bench/results/memory-<timestamp>.json``; everything started is stopped and the temp dir
removed, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.drain import (
    RESULTS,
    ROOT,
    BenchError,
    _round,
    host_info,
    metric_sums,
    process_cpu_seconds,
    run_bench,
    scalar,
)
from placewatch.kinds import KINDS
from placewatch.settings import Settings
from simulators.load import LoadSpec, WorkerResult, worker_main
from storage.migrate import migrate
from tests.support import broker as broker_support
from tests.support.broker import Broker, free_port
from tests.support.ingest import IngestProcess
from tests.support.postgres import PrivateCluster
from tests.support.traffic import dead_letters, distinct_readings, register_fleet, stored_readings

COUNCIL = "memory"
PREFIX = "bench/memory"
CLIENT_ID = "bench-memory-ingest"
METRICS = (
    "placewatch_ingest_pending_messages",
    "placewatch_ingest_pending_bytes",
    "placewatch_ingest_stored_total",
    "placewatch_ingest_received_total",
    "placewatch_ingest_acked_total",
    "placewatch_ingest_rejected_total",
    "placewatch_ingest_duplicates_total",
    "placewatch_ingest_db_errors_total",
)
MIB = 2**20


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon (KiB) of a process from ``/proc/<pid>/status``; empty if gone."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon"):
            out[key] = int(rest.split()[0])
    return out


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) points, in MiB per minute."""
    if len(points) < 2:
        return None
    mt = statistics.fmean(t for t, _ in points)
    mv = statistics.fmean(v for _, v in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    if den == 0:
        return None
    return 60 * sum((t - mt) * (v - mv) for t, v in points) / den


class MemoryBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="placewatch-memory-"))
        # Mosquitto and PostgreSQL run as their own users when started as root.
        self.workdir.chmod(0o755)
        self.cluster: PrivateCluster | None = None
        self.broker: Broker | None = None
        self.ingest: IngestProcess | None = None
        self.publisher: BaseProcess | None = None
        self.stop_publishing: Event | None = None
        self.results: mp.Queue[WorkerResult] | None = None
        self.counter: Synchronized[int] | None = None
        self.samples: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.t0 = 0.0  # monotonic time of the first publish
        self.per_kind = max(1, args.devices // len(KINDS))
        self.limits = {
            "ingest_receive_maximum": args.receive_maximum
            or Settings.model_fields["ingest_receive_maximum"].default,
            "ingest_max_held_mib": args.max_held_mib
            or Settings.model_fields["ingest_max_held_mib"].default,
        }
        stamp = datetime.now(UTC).strftime("memory-%Y%m%dT%H%M%SZ")
        self.output = Path(args.output) if args.output else RESULTS / f"{stamp}.json"

    # -- set-up and tear-down -------------------------------------------------------------------

    def setup(self) -> dict[str, Any]:
        bindir = PrivateCluster.available()
        if bindir is None:
            raise BenchError("no PostgreSQL server binaries (initdb, pg_ctl) for a private cluster")
        if self.args.mosquitto_conf:
            broker_support.CONFIG = Path(self.args.mosquitto_conf)
        self.cluster = PrivateCluster(self.workdir / "pg", free_port(), bindir)
        self.cluster.init()
        self.broker = Broker("127.0.0.1", free_port(), self.workdir / "broker")
        self.broker.start()
        result = migrate(self.cluster.url, "off")
        devices = register_fleet(self.cluster.url, COUNCIL, self.per_kind)
        env = {
            "PLACEWATCH_INGEST_RECEIVE_MAXIMUM": str(self.limits["ingest_receive_maximum"]),
            "PLACEWATCH_INGEST_MAX_HELD_MIB": str(self.limits["ingest_max_held_mib"]),
        }
        if self.args.no_rules_inbox:
            env["PLACEWATCH_INGEST_RULES_INBOX"] = "false"
        self.ingest = IngestProcess(
            self.cluster.url, self.broker.port, PREFIX, CLIENT_ID, self.workdir, extra_env=env
        )
        self.ingest.start(wait_ready=True)
        with psycopg.connect(self.cluster.url, autocommit=True) as conn:
            version = scalar(conn, sql.SQL("SELECT version()"))
            migrations = [
                f"{v} {name} {checksum[:12]}"
                for v, name, checksum in conn.execute(
                    "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
                ).fetchall()
            ]
            settings = {
                name: scalar(conn, sql.SQL("SHOW {}").format(sql.Identifier(name)))
                for name in ("shared_buffers", "synchronous_commit", "fsync", "max_wal_size")
            }
        return {
            "storage_flavour": result.flavour.value,
            "devices": len(devices),
            "council": COUNCIL,
            "postgresql": version,
            "postgresql_settings": settings,
            "postgresql_cluster": "private (initdb in a temp dir; stopped for the outage)",
            "migrations": migrations,
            "mosquitto_conf": str(broker_support.CONFIG),
            "ingest_env": env,
            "workdir": str(self.workdir),
        }

    def cleanup(self) -> None:
        if self.stop_publishing is not None:
            self.stop_publishing.set()
        if self.publisher is not None and self.publisher.is_alive():
            self.publisher.join(10)
            if self.publisher.is_alive():
                self.publisher.kill()
                self.publisher.join(5)
        if self.ingest is not None and self.ingest.alive():
            try:
                self.ingest.terminate(20)
            except subprocess.TimeoutExpired:
                self.ingest.kill()
        if self.broker is not None and self.broker.process is not None:
            try:
                self.broker.stop()
            except subprocess.TimeoutExpired:
                self.broker.process.kill()
                self.broker.process.wait(5)
        if self.cluster is not None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.cluster.stop()
        if self.args.keep_workdir:
            print(f"work directory kept: {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- publishing -----------------------------------------------------------------------------

    def start_publisher(self) -> None:
        assert self.broker is not None
        spec = LoadSpec(
            host=self.broker.host,
            port=self.broker.port,
            prefix=PREFIX,
            council=COUNCIL,
            per_kind=self.per_kind,
            kinds=KINDS,
            processes=1,
            seed=9,
            rate=self.args.rate,
        )
        # spawn: a clean child with a GIL of its own, as the load mode runs its workers.
        ctx = mp.get_context("spawn")
        self.stop_publishing = ctx.Event()
        self.results = ctx.Queue()
        self.counter = ctx.Value("q", 0, lock=False)
        self.publisher = ctx.Process(
            target=worker_main,
            args=(spec, 0, self.counter, self.stop_publishing, self.results),
            name="bench-memory-publisher",
            daemon=True,
        )
        self.publisher.start()
        deadline = time.monotonic() + 60
        while self.published() == 0:
            if not self.publisher.is_alive():
                raise BenchError("the publisher exited before publishing anything")
            if time.monotonic() > deadline:
                raise BenchError("the publisher published nothing in 60 s")
            time.sleep(0.01)
        self.t0 = time.monotonic()

    def published(self) -> int:
        return int(self.counter.value) if self.counter is not None else 0

    def finish_publisher(self) -> WorkerResult:
        assert self.stop_publishing is not None and self.results is not None
        assert self.publisher is not None
        self.stop_publishing.set()
        try:
            result = self.results.get(timeout=150)  # the worker waits up to 120 s for PUBACKs
        except queue.Empty as exc:
            raise BenchError("the publisher did not report within 150 s") from exc
        self.publisher.join(10)
        return result

    # -- sampling -------------------------------------------------------------------------------

    def sample(self, phase: str) -> dict[str, Any]:
        assert self.ingest is not None and self.broker is not None
        if not self.ingest.alive():
            raise BenchError(f"ingest exited during the {phase} phase:\n{self.ingest.log_tail()}")
        status = proc_status(self.ingest.pid)
        s: dict[str, Any] = {
            "t": round(time.monotonic() - self.t0, 2),
            "phase": phase,
            "published": self.published(),
            "rss_kib": status.get("VmRSS"),
            "hwm_kib": status.get("VmHWM"),
            "rss_anon_kib": status.get("RssAnon"),
            "ingest_cpu_s": round(process_cpu_seconds(self.ingest.pid), 2),
        }
        if self.broker.process is not None:
            s["broker_rss_kib"] = proc_status(self.broker.process.pid).get("VmRSS")
        try:
            m = metric_sums(self.ingest.http("/metrics")[1], *METRICS)
            s["ready"] = self.ingest.http("/readyz")[0] == 200
        except OSError:
            m = {}
        if m:
            s["held_messages"] = int(m["placewatch_ingest_pending_messages"])
            s["held_bytes"] = int(m["placewatch_ingest_pending_bytes"])
            s["stored"] = int(m["placewatch_ingest_stored_total"])
            s["received"] = int(m["placewatch_ingest_received_total"])
            s["acked"] = int(m["placewatch_ingest_acked_total"])
            s["db_errors"] = int(m["placewatch_ingest_db_errors_total"])
            s["duplicates"] = int(m["placewatch_ingest_duplicates_total"])
            # What the broker still queues for ingest: neither acknowledged nor held by ingest
            # (approximately: includes messages on their way).
            s["broker_backlog"] = s["published"] - s["acked"] - s["held_messages"]
        self.samples.append(s)
        return s

    def run_phase(
        self,
        phase: str,
        seconds: float,
        until: Callable[[dict[str, Any]], bool] | None = None,
        stop_when_met: bool = False,
        interval: float = 1.0,
    ) -> float | None:
        """Sample every ``interval`` s for ``seconds`` (or until ``until``, a predicate on a
        sample, first holds, with ``stop_when_met``); when it first held, in s from the start."""
        started = time.monotonic()
        end = started + seconds
        met: float | None = None
        tick = started
        last_line = 0.0
        tty = sys.stderr.isatty()
        while True:
            s = self.sample(phase)
            now = time.monotonic()
            if until is not None and met is None and until(s):
                met = now - started
                if stop_when_met:
                    break
            if now - last_line >= (1.0 if tty else 10.0):
                last_line = now
                rss = (s.get("rss_kib") or 0) / 1024
                line = (
                    f"  {phase:<8} {now - started:6.0f}/{seconds:.0f} s  published "
                    f"{s['published']:>9,}  stored {s.get('stored', 0):>9,}  held "
                    f"{s.get('held_messages', 0):>6,}  RSS {rss:6.1f} MiB"
                )
                sys.stderr.write(("\r" + line.ljust(100)) if tty else line + "\n")
                sys.stderr.flush()
            if now >= end:
                break
            tick += interval
            time.sleep(max(0.0, min(tick, end) - time.monotonic()))
        if tty:
            sys.stderr.write("\n")
        return met

    # -- the benchmark --------------------------------------------------------------------------

    def run(self, command: str) -> int:
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        machine = host_info()
        # What "-dirty" covers: the figures are for the tree as it was when ingest started.
        git_status = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True
        ).stdout.splitlines()
        print(f"command: {command}")
        print(
            f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
            f"{machine['ram_gib']} GiB RAM, load {machine['loadavg_at_start']}; "
            f"Python {machine['python']}, placewatch {machine['git_commit']}"
        )
        setup = self.setup()
        assert self.cluster is not None and self.ingest is not None
        print(f"         {setup['postgresql']} (private cluster); {machine['mosquitto']}")
        steady_s = self.args.minutes * 60
        print(
            f"workload: {self.args.rate:g} msg/s from {setup['devices']} devices; warm-up "
            f"{self.args.warmup:g} s, steady {steady_s:g} s, database down {self.args.outage:g} s, "
            f"recovery {self.args.after:g} s; limits {self.limits}"
        )
        self.start_publisher()
        self.run_phase("warmup", self.args.warmup)
        self.run_phase("steady", steady_s)

        outage_started = time.monotonic() - self.t0
        self.cluster.stop()
        print(f"  database stopped at {outage_started:.1f} s", file=sys.stderr)
        self.run_phase("outage", self.args.outage)
        self.cluster.start()
        back_at = time.monotonic() - self.t0
        published_at_back = self.published()
        print(f"  database started again at {back_at:.1f} s", file=sys.stderr)
        catch_up = self.run_phase(
            "recovery",
            self.args.after,
            until=lambda s: s.get("stored", 0) >= published_at_back,
            interval=0.25,  # the catch-up time to a quarter of a second
        )
        if catch_up is None:
            # Keep sampling (time-limited) until the backlog of the outage is stored.
            catch_up = self.run_phase(
                "catchup",
                self.args.timeout,
                until=lambda s: s.get("stored", 0) >= published_at_back,
                stop_when_met=True,
                interval=0.25,
            )
            if catch_up is not None:
                catch_up += self.args.after
        pub = self.finish_publisher()
        publish_seconds = time.monotonic() - self.t0
        drained = self.wait_stored(pub.sent)
        rc = self.ingest.terminate(30)
        result = self.verify(pub, rc, drained)
        figures = self.figures(outage_started, back_at, published_at_back, catch_up)
        figures["publishing"] = {
            "sent": pub.sent,
            "acknowledged_by_broker": pub.acked,
            "refused": pub.refused,
            "error": pub.error,
            "seconds": round(publish_seconds, 1),
            "achieved_rate": round(pub.sent / publish_seconds, 1) if publish_seconds else None,
        }
        if figures["publishing"]["achieved_rate"] < 0.95 * self.args.rate:
            self.problems.append(
                f"publisher reached {figures['publishing']['achieved_rate']} msg/s of the "
                f"{self.args.rate:g} asked"
            )
        out = {
            "benchmark": "memory",
            "started_at": started_at,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "machine": machine,
            "git_status_at_start": git_status,
            "setup": setup,
            "parameters": {
                "rate": self.args.rate,
                "devices": setup["devices"],
                "warmup_s": self.args.warmup,
                "steady_s": steady_s,
                "outage_s": self.args.outage,
                "recovery_s": self.args.after,
            },
            "limits": self.limits,
            "ingest_settings": {
                name: Settings.model_fields[name].default
                for name in ("ingest_batch_max", "ingest_batch_linger_ms", "ingest_retry_max_s")
            },
            "figures": figures,
            "verification": result,
            "problems": self.problems,
            "samples": self.samples,
        }
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(json.dumps(out, indent=1) + "\n")
        self.print_summary(figures, result)
        shown = self.output.relative_to(ROOT) if self.output.is_relative_to(ROOT) else self.output
        print(f"results: {shown}")
        for problem in self.problems:
            print(f"PROBLEM: {problem}")
        return 1 if self.problems else 0

    def wait_stored(self, sent: int) -> float | None:
        """Sample until ingest has stored every published reading; seconds it took."""
        return self.run_phase(
            "drain", self.args.timeout, lambda s: s.get("stored", 0) >= sent, stop_when_met=True
        )

    def verify(self, pub: WorkerResult, rc: int, drained: float | None) -> dict[str, Any]:
        assert self.cluster is not None and self.ingest is not None
        with psycopg.connect(self.cluster.url, autocommit=True) as conn:
            rows = stored_readings(conn, COUNCIL)
            distinct = distinct_readings(conn, COUNCIL)
            dead = dead_letters(conn, PREFIX)
        last: dict[str, Any] = next((s for s in reversed(self.samples) if "stored" in s), {})
        log = (self.workdir / f"ingest-{CLIENT_ID}.log").read_text(errors="replace")
        warnings = [ln for ln in log.splitlines() if " WARNING " in ln or " ERROR " in ln]
        tracebacks = log.count("Traceback")
        v = {
            "published": pub.sent,
            "stored_rows": rows,
            "stored_distinct": distinct,
            "duplicate_rows": rows - distinct,
            "dead_letters": len(dead),
            "ingest_duplicates_metric": last.get("duplicates"),
            "ingest_starts": self.ingest.starts,
            "ingest_exit_code": rc,
            "seconds_to_store_the_rest_after_publishing_stopped": _round(drained),
            "ingest_warning_or_error_log_lines": len(warnings),
            "ingest_log_examples": warnings[:5],
            "ingest_tracebacks": tracebacks,
        }
        if drained is None:
            self.problems.append(f"not everything stored within {self.args.timeout} s")
        if not pub.acked or pub.refused or pub.error:
            self.problems.append(
                f"publisher: acked {pub.acked}, refused {pub.refused}, error {pub.error}"
            )
        if rows != pub.sent or distinct != pub.sent:
            self.problems.append(
                f"{rows} readings stored ({distinct} distinct) of {pub.sent} published"
            )
        if dead:
            self.problems.append(f"{len(dead)} dead letters, e.g. {[d[2:] for d in dead[:3]]}")
        if self.ingest.starts != 1 or rc != 0:
            self.problems.append(f"ingest started {self.ingest.starts} times, exit code {rc}")
        if tracebacks:
            self.problems.append(f"{tracebacks} tracebacks in the ingest log")
        return v

    def figures(
        self, outage_at: float, back_at: float, published_at_back: int, catch_up: float | None
    ) -> dict[str, Any]:
        def mib(kib: int | None) -> float | None:
            return None if kib is None else kib / 1024

        def of(phase: str) -> list[dict[str, Any]]:
            return [s for s in self.samples if s["phase"] == phase and s.get("rss_kib")]

        steady, outage = of("steady"), of("outage")
        after = of("recovery") + of("catchup") + of("drain")
        if not steady:
            raise BenchError("no RSS samples in the steady phase")
        pts = [(s["t"], s["rss_kib"] / 1024) for s in steady]
        half = [p for p in pts if p[0] >= (pts[0][0] + pts[-1][0]) / 2]
        first10 = [v for t, v in pts if t < pts[0][0] + 10]
        last10 = [v for t, v in pts if t > pts[-1][0] - 10]
        lag = [s["published"] - s["stored"] for s in steady if "stored" in s]
        slope = slope_per_minute(pts)
        steady_fig = {
            "samples": len(pts),
            "seconds": round(pts[-1][0] - pts[0][0], 1),
            "rss_start_mib": _round(pts[0][1]),
            "rss_end_mib": _round(pts[-1][1]),
            "rss_first_10s_mean_mib": _round(statistics.fmean(first10)),
            "rss_last_10s_mean_mib": _round(statistics.fmean(last10)),
            "rss_min_mib": _round(min(v for _, v in pts)),
            "rss_max_mib": _round(max(v for _, v in pts)),
            "rss_slope_mib_per_min": _round(slope, 3),
            "rss_slope_second_half_mib_per_min": _round(slope_per_minute(half), 3),
            "hwm_end_mib": _round(mib(steady[-1].get("hwm_kib"))),
            "held_messages_max": max((s.get("held_messages", 0) for s in steady), default=0),
            "published_minus_stored_max": max(lag, default=None),
            "published_minus_stored_median": statistics.median(lag) if lag else None,
        }
        held = [s.get("held_messages", 0) for s in outage]
        held_b = [s.get("held_bytes", 0) for s in outage]
        limit_b = self.limits["ingest_max_held_mib"] * MIB
        outage_fig = {
            "from_s": round(outage_at, 2),
            "to_s": round(back_at, 2),
            "samples": len(outage),
            "rss_before_mib": _round(pts[-1][1]),
            "rss_max_mib": _round(max((s["rss_kib"] / 1024 for s in outage), default=math.nan)),
            "rss_end_mib": _round(outage[-1]["rss_kib"] / 1024) if outage else None,
            "held_messages_max": max(held, default=0),
            "held_messages_limit": self.limits["ingest_receive_maximum"],
            "held_bytes_max": max(held_b, default=0),
            "held_bytes_limit": limit_b,
            "held_bytes_max_fraction_of_limit": round(max(held_b, default=0) / limit_b, 5),
            "broker_backlog_max": max((s.get("broker_backlog", 0) for s in outage), default=0),
            "broker_rss_max_mib": _round(
                max((mib(s.get("broker_rss_kib")) or 0.0 for s in outage), default=0.0)
            ),
            "broker_rss_before_mib": _round(mib(steady[-1].get("broker_rss_kib"))),
            "readyz_503_samples": sum(1 for s in outage if s.get("ready") is False),
            "published_when_database_back": published_at_back,
            "seconds_to_catch_up": _round(catch_up),
        }
        if outage_fig["held_messages_max"] > self.limits["ingest_receive_maximum"]:
            self.problems.append(
                f"ingest held {outage_fig['held_messages_max']} messages, over its limit "
                f"{self.limits['ingest_receive_maximum']}"
            )
        if outage_fig["held_messages_max"] == 0:
            self.problems.append("ingest held no message while the database was down")
        if catch_up is None:
            self.problems.append("the outage's backlog was not stored within the time limit")
        after_fig = {
            "rss_max_mib": _round(max((s["rss_kib"] / 1024 for s in after), default=math.nan)),
            "rss_end_mib": _round(after[-1]["rss_kib"] / 1024) if after else None,
            "hwm_end_mib": _round(mib(after[-1].get("hwm_kib"))) if after else None,
        }
        return {"steady": steady_fig, "outage": outage_fig, "after_outage": after_fig}

    def print_summary(self, f: dict[str, Any], v: dict[str, Any]) -> None:
        s, o, a = f["steady"], f["outage"], f["after_outage"]
        print()
        print(
            f"steady  {s['seconds']:.0f} s: RSS {s['rss_start_mib']} → {s['rss_end_mib']} MiB "
            f"(mean of first/last 10 s {s['rss_first_10s_mean_mib']} / "
            f"{s['rss_last_10s_mean_mib']}), max {s['rss_max_mib']}, slope "
            f"{s['rss_slope_mib_per_min']} MiB/min (second half "
            f"{s['rss_slope_second_half_mib_per_min']}); held ≤ {s['held_messages_max']:,}"
        )
        print(
            f"outage  {o['to_s'] - o['from_s']:.0f} s: RSS {o['rss_before_mib']} → max "
            f"{o['rss_max_mib']} MiB; held ≤ {o['held_messages_max']:,} messages (limit "
            f"{o['held_messages_limit']:,}), ≤ {o['held_bytes_max'] / MIB:.2f} MiB (limit "
            f"{o['held_bytes_limit'] / MIB:.0f} MiB); broker backlog ≤ "
            f"{o['broker_backlog_max']:,}; caught up {o['seconds_to_catch_up']} s after the "
            "database came back"
        )
        print(f"after   RSS max {a['rss_max_mib']} MiB, end {a['rss_end_mib']} MiB")
        p = f["publishing"]
        print(
            f"readings: published {v['published']:,} ({p['achieved_rate']} msg/s), stored "
            f"{v['stored_rows']:,} ({v['stored_distinct']:,} distinct), dead letters "
            f"{v['dead_letters']}, ingest starts {v['ingest_starts']}"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.memory",
        description="Ingest's RSS at a steady live rate, then with the database stopped, on a "
        "private PostgreSQL cluster and a private Mosquitto.",
    )
    p.add_argument("--minutes", type=float, default=10, help="steady phase, minutes (10)")
    p.add_argument("--outage", type=float, default=60, help="database down, seconds (60)")
    p.add_argument("--rate", type=float, default=1000, help="published msg/s (1000)")
    p.add_argument("--devices", type=int, default=2000, help="fleet size, all four kinds (2000)")
    p.add_argument("--warmup", type=float, default=30, help="before the steady phase, s (30)")
    p.add_argument(
        "--after", type=float, default=30, help="publishing after the database is back, s (30)"
    )
    p.add_argument(
        "--receive-maximum",
        type=int,
        default=0,
        help="PLACEWATCH_INGEST_RECEIVE_MAXIMUM (default: ingest's own)",
    )
    p.add_argument(
        "--max-held-mib",
        type=int,
        default=0,
        help="PLACEWATCH_INGEST_MAX_HELD_MIB (default: ingest's own)",
    )
    p.add_argument(
        "--no-rules-inbox",
        action="store_true",
        help="PLACEWATCH_INGEST_RULES_INBOX=false (default: on, as in production)",
    )
    p.add_argument(
        "--timeout", type=float, default=300, help="limit for catching up and draining, s (300)"
    )
    p.add_argument(
        "--mosquitto-conf",
        default=None,
        help="broker config (default: broker/mosquitto.conf or PLACEWATCH_TEST_MOSQUITTO_CONF)",
    )
    p.add_argument("--output", default=None, help="results file (default bench/results/...)")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs, broker and database")
    args = p.parse_args(argv)
    if args.rate <= 0 or args.minutes <= 0 or args.outage <= 0 or args.devices < len(KINDS):
        p.error("--rate, --minutes and --outage must be positive, --devices at least 4")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench("bench.memory", MemoryBench(parse_args(argv)), argv)


if __name__ == "__main__":
    sys.exit(main())
