"""Drain benchmark: how fast ``placewatch ingest`` empties a broker backlog, against the raw limit.

Run from the repository root::

    .venv/bin/python -m bench.drain [--messages 200000] [--repeat 3]

One private Mosquitto (from ``broker/mosquitto.conf``, free port, temp dir) and one fresh database
(migrated, 2,000 simulated devices registered) serve every run. N mixed-kind readings are generated
once, with a fixed clock, so every run consumes exactly the same payloads. Each repetition then:

* **raw**: creates a persistent QoS 1 session with ``mosquitto_sub -c ... -E``, publishes the N
  messages (QoS 1, all acknowledged) and times
  ``mosquitto_sub -q 1 -c ... -C N | psql -c "\\copy raw(j) from stdin"`` into a ``jsonb`` table,
  from process start to psql's exit: the broker and the database with no application in between.
* **placewatch**: starts ingest once to create its persistent session, stops it, publishes the same
  N messages, then times ``python -m placewatch ingest`` from process start until its metrics say
  all N readings are stored (committed). With ``--replicas 2`` (or ``1,2``: both), R ingest
  processes share one subscription (``PLACEWATCH_INGEST_SHARED_GROUP``), each with its own
  persistent session, and the drain ends when their stored counts add up to N.
* **naive**: the consumer users write first (``bench/naive_consumer.py``: paho, one autocommit
  ``INSERT`` per message), on the first K (``--naive-messages``) messages of the same backlog,
  timed from process start until the tables hold K rows.

All are checked afterwards (row counts, no dead letters, no duplicates). Results go to stdout and
to ``bench/results/drain-<timestamp>.json``; everything started is stopped, the database dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import psutil
import psycopg
from psycopg import sql

from placewatch.kinds import KINDS
from placewatch.settings import Settings
from simulators.basic import Publisher, ReadingGenerator
from storage.migrate import migrate
from tests.support import broker as broker_support
from tests.support.broker import Broker, free_port
from tests.support.ingest import IngestProcess
from tests.support.postgres import create_database, drop_database, server_url
from tests.support.traffic import dead_letters, distinct_readings, register_fleet, stored_readings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
COUNCIL = "bench"
# Fixed, in the past (ingest rejects readings more than 300 s ahead of their receipt), so every
# run drains the same bytes. Ingest runs as for a backfill, without its age limit.
CLOCK_START = datetime(2025, 1, 6, tzinfo=UTC)
INGEST_ENV = {"PLACEWATCH_INGEST_MAX_AGE_DAYS": "0"}
PUBLISH_MAX_BACKLOG = 20_000


class BenchError(RuntimeError):
    """A run could not complete or its result failed verification."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through the finally blocks: what a run started is stopped, dropped.
    raise SystemExit(128 + signum)


class Bench(Protocol):
    def run(self, command: str) -> int: ...
    def cleanup(self) -> None: ...


def run_bench(module: str, bench: Bench, argv: Sequence[str] | None) -> int:
    """Every benchmark's ``main``: run it with the command line that reproduces it, stop what it
    started also on SIGTERM, and exit 2 when it could not complete."""
    exe = Path(sys.executable)
    python = str(exe.relative_to(ROOT)) if exe.is_relative_to(ROOT) else str(exe)
    command = shlex.join([python, "-m", module, *(sys.argv[1:] if argv is None else argv)])
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return bench.run(command)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        bench.cleanup()
        signal.signal(signal.SIGTERM, previous)


# -- small helpers -------------------------------------------------------------------------------


class Progress:
    """One updating line on a terminal; a line every few seconds otherwise."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.started = time.monotonic()
        self._last = 0.0
        self._tty = sys.stderr.isatty()

    def update(self, done: int, note: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if now - self._last < (0.2 if self._tty else 5.0) and not force:
            return
        self._last = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        pct = 100 * done / self.total if self.total else 100.0
        line = (
            f"  {self.label}: {done:>9,}/{self.total:,} ({pct:5.1f} %)  {elapsed:6.1f} s"
            f"  {rate:8,.0f} msg/s  {note}"
        )
        sys.stderr.write(("\r" + line.ljust(110)) if self._tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self._tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def metric_sums(text: str, *names: str) -> dict[str, float]:
    """Sum of each metric's samples over all label sets, from a Prometheus text page."""
    sums = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        for name in names:
            if line.startswith(name) and line[len(name)] in " {":
                sums[name] += float(line.rsplit(" ", 1)[1])
    return sums


def steady_rate(samples: Sequence[tuple[float, int]], total: int) -> float | None:
    """Messages/s between 10 % and 90 % done: the rate without start-up and tail."""
    lo = next(((t, d) for t, d in samples if d >= 0.1 * total), None)
    hi = next(((t, d) for t, d in samples if d >= 0.9 * total), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return None
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


def cpu_busy_seconds() -> float:
    """CPU-seconds spent by the whole machine (all cores) so far, idle and iowait excluded."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def process_cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system)


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process's live threads have spent runnable but waiting for a CPU
    (``/proc/<pid>/task/*/schedstat``, second field), in seconds; 0 where the kernel does not
    say. For a process started at the beginning of a drain: how much the machine held it back."""
    total = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[1])
    return total / 1e9


def children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def own_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class CpuMeter:
    """CPU-seconds spent during one drain: the whole machine, the broker, this harness, and the
    PostgreSQL processes serving the benchmark database (backends and autovacuum workers, found
    by the database name in their process title). A backend that exits between two samples
    (psql's, at the end of a raw run) loses its last fraction of a second: a lower bound."""

    def __init__(self, dbname: str, broker_pid: int | None, exclude: set[int]) -> None:
        self._dbname = f" {dbname} "
        self._broker_pid = broker_pid
        self._exclude = exclude
        self._pg_first: dict[int, float] = {}
        self._pg_last: dict[int, float] = {}
        self._sampled_at = 0.0
        self._busy0 = cpu_busy_seconds()
        self._broker0 = process_cpu_seconds(broker_pid)
        self._own0 = own_cpu_seconds()
        self.sample_postgres(baseline=True)

    def sample_postgres(self, baseline: bool = False, force: bool = False) -> None:
        now = time.monotonic()
        if not (baseline or force) and now - self._sampled_at < 0.25:
            return
        self._sampled_at = now
        for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            info = proc.info
            if info["name"] != "postgres" or proc.pid in self._exclude or not info["cpu_times"]:
                continue
            if self._dbname not in " ".join(info["cmdline"] or ()) + " ":
                continue
            cpu = float(info["cpu_times"].user + info["cpu_times"].system)
            self._pg_first.setdefault(proc.pid, cpu if baseline else 0.0)
            self._pg_last[proc.pid] = cpu

    def finish(self, elapsed: float, **measured: float) -> dict[str, float]:
        self.sample_postgres(force=True)
        busy = cpu_busy_seconds() - self._busy0
        parts = {
            "mosquitto": process_cpu_seconds(self._broker_pid) - self._broker0,
            **measured,
            "postgres (benchmark db)": sum(
                last - self._pg_first[pid] for pid, last in self._pg_last.items()
            ),
            "bench harness": own_cpu_seconds() - self._own0,
        }
        out = {
            "machine_capacity": elapsed * len(os.sched_getaffinity(0)),
            "machine_busy": busy,
            **parts,
            "other (rest of the machine)": busy - sum(parts.values()),
        }
        return {k: round(v, 2) for k, v in out.items()}


def version_line(cmd: list[str]) -> str:
    """The first line of a command's help text that names its version."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = (out.stdout + out.stderr).splitlines()
    return next((line.strip() for line in lines if "version" in line), "unknown")


def scalar(conn: psycopg.Connection[Any], query: sql.SQL | sql.Composed) -> str:
    row = conn.execute(query).fetchone()
    return str(row[0]) if row else "?"


def host_info() -> dict[str, Any]:
    """The machine and checkout a figure was measured on (every benchmark records it)."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    git = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "hostname": platform.node(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "mosquitto": version_line([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-h"]),
        "git_commit": git + ("-dirty" if dirty else ""),
    }


def checkout_state() -> dict[str, Any]:
    """Which code ran when the working tree is not a commit: the changed files and a hash of
    ``git diff HEAD`` (untracked files are listed, not hashed)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True
        ).stdout

    return {
        "status": git("status", "--porcelain").splitlines(),
        "diff_sha256": hashlib.sha256(git("diff", "HEAD").encode()).hexdigest(),
    }


def machine_info(admin_url: str) -> dict[str, Any]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        pg_version = scalar(conn, sql.SQL("SELECT version()"))
        pg_settings = {
            name: scalar(conn, sql.SQL("SHOW {}").format(sql.Identifier(name)))
            for name in (
                "shared_buffers",
                "synchronous_commit",
                "fsync",
                "wal_level",
                "max_wal_size",
                "checkpoint_timeout",
            )
        }
    return {
        **host_info(),
        "packages": {
            p: metadata.version(p) for p in ("paho-mqtt", "psycopg", "pydantic", "psycopg-pool")
        },
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
        "mosquitto_sub": version_line(["mosquitto_sub", "--help"]),
    }


def generate(devices: list[Any], n: int, interval_s: float) -> list[tuple[str, bytes]]:
    """N readings round-robin over the fleet: (topic after the prefix, payload).

    The clock is fixed and advances ``interval_s / len(devices)`` per message, so each device
    reports every ``interval_s`` and every (device, time) is distinct; payloads are identical on
    every run and every machine.
    """
    step = timedelta(seconds=interval_s / len(devices))

    def clock() -> Iterator[datetime]:
        t = CLOCK_START
        while True:
            yield t
            t += step

    out: list[tuple[str, bytes]] = []
    stream = iter(ReadingGenerator(devices, "x", seed=20250106, clock=clock()))
    for _ in range(n):
        topic, payload = next(stream)
        # The raw pipeline feeds payloads to COPY's text format, one per line.
        if any(c in payload for c in (b"\\", b"\n", b"\r", b"\t")):
            raise BenchError(f"payload not safe for COPY text format: {payload!r}")
        out.append((topic[1:], payload))
    last = CLOCK_START + step * n
    if last > datetime.now(UTC):
        raise BenchError(f"generated readings reach {last.isoformat()}, in the future")
    return out


def profile_top(raw_file: Path, top: int = 10) -> dict[str, Any]:
    """Hot frames from py-spy's raw (collapsed stacks) output: self and inclusive samples."""
    self_counts: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    total = 0
    for line in raw_file.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
        groups[_frame_group(frames[-1])] += count

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": f, "samples": c, "pct": round(100 * c / total, 1) if total else 0.0}
            for f, c in counter.most_common(top)
        ]

    return {
        "samples": total,
        "self": rows(self_counts),
        "inclusive": rows(incl),
        "self_by_package": rows(groups),
    }


def _frame_group(frame: str) -> str:
    """Package of a py-spy frame ``function (path:line)``: site-packages top level, stdlib module
    or repository package."""
    path = frame.rpartition("(")[2].rstrip(")").rsplit(":", 1)[0]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/lib/python3" in path:
        rest = path.split("/lib/python3", 1)[1].split("/", 2)
        return "stdlib:" + (rest[1].removesuffix(".py") if len(rest) > 1 else "?")
    rel = path.removeprefix(str(ROOT) + "/")
    return rel.split("/", 1)[0] if "/" in rel else rel


# -- the benchmark -------------------------------------------------------------------------------


class DrainBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.n: int = args.messages
        self.workdir = Path(tempfile.mkdtemp(prefix="placewatch-drain-"))
        self.broker: Broker | None = None
        self.db_url: str | None = None
        self.ingests: list[IngestProcess] = []
        self.children: list[subprocess.Popen[bytes]] = []
        self.messages: list[tuple[str, bytes]] = []
        self.runs: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.raw_command = ""
        self.profile: dict[str, Any] | None = None
        self.stamp = datetime.now(UTC).strftime("drain-%Y%m%dT%H%M%SZ")
        self.output = Path(args.output) if args.output else RESULTS / f"{self.stamp}.json"
        self.replicas: list[int] = args.replicas
        self.naive_n = 0 if args.no_naive else min(args.naive_messages, self.n)

    # -- set-up and tear-down -------------------------------------------------------------------

    def setup(self) -> dict[str, Any]:
        if self.args.mosquitto_conf:
            broker_support.CONFIG = Path(self.args.mosquitto_conf)
        if not broker_support.CONFIG.exists():
            raise BenchError(
                f"{broker_support.CONFIG} does not exist (set --mosquitto-conf or "
                "PLACEWATCH_TEST_MOSQUITTO_CONF)"
            )
        self.broker = Broker("127.0.0.1", free_port(), self.workdir / "broker")
        # Mosquitto started as root runs as its own user; Broker.start() hands it the data dir,
        # and it must be able to reach it through our private temp dir.
        self.workdir.chmod(0o755)
        self.broker.start()
        self.db_url = create_database("placewatch_bench", self.args.admin_url)
        result = migrate(self.db_url, self.args.timescaledb)
        devices = register_fleet(self.db_url, COUNCIL, self.args.per_kind)
        with self.connect() as conn:
            conn.execute("CREATE TABLE raw (j jsonb)")
        started = time.monotonic()
        self.messages = generate(devices, self.n, self.args.interval)
        sizes = [len(p) for _, p in self.messages]
        conf_lines = [
            line
            for line in broker_support.render_config(
                self.broker.port, self.broker.workdir / "data"
            ).splitlines()
            if line.strip() and not line.startswith("#")
        ]
        return {
            "database": self.dbname,
            "storage_flavour": result.flavour.value,
            "devices": len(devices),
            "council": COUNCIL,
            "generate_seconds": round(time.monotonic() - started, 2),
            "payload_bytes_mean": round(statistics.fmean(sizes), 1),
            "payload_bytes_max": max(sizes),
            "first_reading_time": CLOCK_START.isoformat(),
            "mosquitto_conf": str(broker_support.CONFIG),
            "mosquitto_conf_effective": conf_lines,
        }

    def stop_broker(self) -> None:
        if self.broker is None or self.broker.process is None:
            return
        if self.broker.process.poll() is None:
            try:
                self.broker.stop()
            except subprocess.TimeoutExpired:
                self.broker.process.kill()
                self.broker.process.wait(5)
            self.scan_broker_log()

    def reset_readings(self) -> None:
        """Before a timed drain: no readings or dead letters, devices vacuumed, a checkpoint."""
        with self.connect() as conn:
            tables = [sql.Identifier(k.value) for k in KINDS] + [sql.Identifier("dead_letters")]
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(tables)))
            conn.execute("VACUUM devices")
            conn.execute("CHECKPOINT")

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        assert self.db_url is not None
        return psycopg.connect(self.db_url, autocommit=True)

    def cleanup(self) -> None:
        for ing in self.ingests:
            if ing.alive():
                try:
                    ing.terminate(15)
                except subprocess.TimeoutExpired:
                    ing.kill()
        for proc in self.children:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        self.stop_broker()
        if self.db_url is not None:
            try:
                drop_database(self.db_url, self.args.admin_url)
            except psycopg.Error as exc:
                print(f"could not drop the benchmark database: {exc}", file=sys.stderr)
        if self.args.keep_workdir:
            print(f"work directory kept: {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def scan_broker_log(self) -> None:
        log = self.workdir / "broker" / "mosquitto.log"
        if not log.exists():
            return
        bad = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if "dropped" in line.lower() or "error" in line.lower()
        ]
        if bad:
            self.problems.append(f"mosquitto log: {len(bad)} drop/error lines, e.g. {bad[:3]}")

    # -- MQTT -----------------------------------------------------------------------------------

    def sub_command(
        self, client_id: str, prefix: str, *extra: str, persistent: bool = True
    ) -> list[str]:
        assert self.broker is not None
        cmd = ["mosquitto_sub", "-h", self.broker.host, "-p", str(self.broker.port), "-V", "mqttv5"]
        cmd += ["-q", "1", "-i", client_id, "-t", f"{prefix}/#"]
        if persistent:
            cmd += ["-c", "-x", "3600"]
        return [*cmd, *extra]

    def run_quick(self, cmd: list[str], what: str) -> None:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise BenchError(f"{what} failed ({out.returncode}): {shlex.join(cmd)}\n{out.stderr}")

    def end_session(self, client_id: str) -> None:
        """Connect once with a clean start and no expiry: the broker discards the session."""
        self.run_quick(
            self.sub_command(client_id, "bench/none", "-E", persistent=False), "session clean-up"
        )

    def publish(self, prefix: str, label: str, count: int | None = None) -> float:
        """Publish the first ``count`` (default N) messages under ``prefix`` (QoS 1) and wait for
        every PUBACK."""
        assert self.broker is not None
        count = self.n if count is None else count
        progress = Progress(f"{label} publish", count)
        started = time.monotonic()
        pub = Publisher(self.broker.host, self.broker.port, max_inflight=1000)
        try:
            for i, (suffix, payload) in enumerate(self.messages[:count]):
                while pub.backlog() > PUBLISH_MAX_BACKLOG:
                    time.sleep(0.001)
                pub.publish(prefix + suffix, payload)
                if i % 2000 == 0:
                    progress.update(max(0, i - pub.backlog()))
            if not pub.wait_acked(timeout=self.args.timeout):
                raise BenchError(f"broker did not acknowledge {pub.backlog()} publishes")
        finally:
            pub.close()
        progress.update(count, force=True)
        progress.close()
        return time.monotonic() - started

    # -- one raw run ----------------------------------------------------------------------------

    def run_raw(self, rep: str) -> dict[str, Any]:
        assert self.db_url is not None and self.broker is not None
        prefix, client_id = f"bench/r{rep}", f"bench-raw-{rep}"
        self.run_quick(self.sub_command(client_id, prefix, "-E"), "raw pre-subscribe")
        publish_s = self.publish(prefix, f"raw #{rep}")
        with self.connect() as conn:
            conn.execute("TRUNCATE raw")
            conn.execute("CHECKPOINT")
        extra = ["-C", str(self.n), "-W", str(int(self.args.timeout))]
        if self.args.raw_receive_maximum:
            extra += ["-D", "connect", "receive-maximum", str(self.args.raw_receive_maximum)]
        sub_cmd = self.sub_command(client_id, prefix, *extra)
        psql_cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.db_url]
        psql_cmd += ["-c", "\\copy raw(j) from stdin"]
        self.raw_command = f"{shlex.join(sub_cmd)} | {shlex.join(psql_cmd)}"
        log = (self.workdir / f"raw-{rep}.log").open("wb")
        progress = Progress(f"raw #{rep} drain", self.n)
        samples: list[tuple[float, int]] = []
        with self.connect() as watch:
            meter = CpuMeter(self.dbname, self.broker_pid, {watch.info.backend_pid})
            clients0 = children_cpu_seconds()
            t0 = time.monotonic()
            sub = subprocess.Popen(sub_cmd, stdout=subprocess.PIPE, stderr=log)
            self.children.append(sub)
            psql = subprocess.Popen(psql_cmd, stdin=sub.stdout, stdout=log, stderr=log)
            self.children.append(psql)
            assert sub.stdout is not None
            sub.stdout.close()
            deadline = t0 + self.args.timeout
            while True:
                try:
                    psql.wait(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(f"raw drain #{rep} still running after {self.args.timeout} s")
                row = watch.execute(
                    "SELECT coalesce(sum(tuples_processed), 0) FROM pg_stat_progress_copy"
                    " WHERE datname = current_database()"
                ).fetchone()
                done = int(row[0]) if row else 0
                samples.append((time.monotonic() - t0, done))
                progress.update(done)
                meter.sample_postgres()
            elapsed = time.monotonic() - t0
            samples.append((elapsed, self.n))
            sub_rc = sub.wait(10)
            cpu = meter.finish(elapsed, **{"mosquitto_sub+psql": children_cpu_seconds() - clients0})
        progress.update(self.n, force=True)
        progress.close()
        log.close()
        with self.connect() as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT j) FROM raw").fetchone()
        rows, distinct = (int(row[0]), int(row[1])) if row else (0, 0)
        self.end_session(client_id)
        if psql.returncode != 0 or sub_rc != 0 or rows != self.n or distinct != self.n:
            tail = (self.workdir / f"raw-{rep}.log").read_text(errors="replace")[-2000:]
            self.problems.append(
                f"raw #{rep}: psql rc {psql.returncode}, mosquitto_sub rc {sub_rc}, "
                f"{rows} rows ({distinct} distinct) of {self.n}: {tail}"
            )
        return {
            "pipeline": "raw",
            "rep": rep,
            "seconds": round(elapsed, 3),
            "msgs_per_s": round(self.n / elapsed, 1),
            "steady_msgs_per_s": _round(steady_rate(samples, self.n)),
            "rows": rows,
            "publish_seconds": round(publish_s, 2),
            "progress": _thin(samples),
            "cpu_seconds": cpu,
        }

    @property
    def dbname(self) -> str:
        assert self.db_url is not None
        return str(psycopg.conninfo.conninfo_to_dict(self.db_url)["dbname"])

    @property
    def broker_pid(self) -> int | None:
        return self.broker.process.pid if self.broker and self.broker.process else None

    # -- one placewatch run ---------------------------------------------------------------------

    def run_placewatch(self, rep: str, replicas: int = 1, profile_s: float = 0.0) -> dict[str, Any]:
        assert self.db_url is not None and self.broker is not None
        tag = rep if replicas == 1 else f"{rep}x{replicas}"
        prefix, base_id = f"bench/p{tag}", f"bench-ingest-{tag}"
        label = f"placewatch #{tag}"
        env = dict(INGEST_ENV)
        if replicas > 1:
            env["PLACEWATCH_INGEST_SHARED_GROUP"] = f"drain-{tag}"
        ingests = [
            IngestProcess(
                self.db_url,
                self.broker.port,
                prefix,
                base_id if replicas == 1 else f"{base_id}-{i + 1}",
                self.workdir,
                extra_env=env,
            )
            for i in range(replicas)
        ]
        self.ingests.extend(ingests)
        # First start: creates each persistent session and its subscription, then stops. The
        # broker then queues the backlog for the sessions (on a shared subscription, spread
        # among the group's sessions).
        for ingest in ingests:
            ingest.start(wait_ready=False)
        for ingest in ingests:
            ingest.wait_ready()  # ready = subscribed
        for ingest in ingests:
            if ingest.terminate(30) != 0:
                self.problems.append(f"{label}: first ingest exited {ingest.process}")
        publish_s = self.publish(prefix, label)
        self.reset_readings()

        names = (
            "placewatch_ingest_stored_total",
            "placewatch_ingest_rejected_total",
            "placewatch_ingest_acked_total",
            "placewatch_ingest_duplicates_total",
            "placewatch_ingest_db_errors_total",
            "placewatch_ingest_received_total",
            "placewatch_ingest_batch_size_sum",
            "placewatch_ingest_batch_size_count",
            "placewatch_ingest_commit_seconds_sum",
        )
        progress = Progress(f"{label} drain", self.n)
        samples: list[tuple[float, int]] = []
        first_response: float | None = None
        first_stored: float | None = None
        spy: subprocess.Popen[bytes] | None = None
        spy_out = self.workdir / f"py-spy-{rep}.txt"
        each: list[dict[str, float]] = [dict.fromkeys(names, 0.0) for _ in ingests]
        answered = [False] * replicas
        m: dict[str, float] = dict.fromkeys(names, 0.0)
        meter = CpuMeter(self.dbname, self.broker_pid, set())
        t0 = time.monotonic()
        for ingest in ingests:
            ingest.start(wait_ready=False)
        deadline = t0 + self.args.timeout
        while True:
            for ingest in ingests:
                if not ingest.alive():
                    raise BenchError(
                        f"ingest {ingest.client_id} exited during drain {label}:\n"
                        f"{ingest.log_tail()}"
                    )
            if time.monotonic() > deadline:
                raise BenchError(
                    f"placewatch drain {label} not done after {self.args.timeout} s "
                    f"({m['placewatch_ingest_stored_total']:.0f} stored):\n{ingests[0].log_tail()}"
                )
            for i, ingest in enumerate(ingests):
                try:
                    each[i] = metric_sums(ingest.http("/metrics")[1], *names)
                    answered[i] = True
                except OSError:
                    pass
            if not all(answered):
                time.sleep(0.05)
                continue
            m = {name: sum(e[name] for e in each) for name in names}
            now = time.monotonic() - t0
            first_response = first_response if first_response is not None else now
            stored = int(m["placewatch_ingest_stored_total"])
            rejected = int(m["placewatch_ingest_rejected_total"])
            samples.append((now, stored))
            if stored and first_stored is None:
                first_stored = now
                if profile_s:
                    spy = self.start_py_spy(ingests[0].pid, profile_s, spy_out)
            progress.update(stored, f"acked {int(m['placewatch_ingest_acked_total']):,}")
            meter.sample_postgres()
            if stored >= self.n or (rejected and stored + rejected >= self.n):
                break
            time.sleep(0.25 if self.n - stored > 20_000 else 0.02)
        elapsed = time.monotonic() - t0
        ingest_cpu = [process_cpu_seconds(ingest.pid) for ingest in ingests]
        ingest_wait = [runqueue_wait_seconds(ingest.pid) for ingest in ingests]
        cpu = meter.finish(elapsed, ingest=sum(ingest_cpu))
        progress.update(self.n, force=True)
        progress.close()
        # Untimed: the acks of the last batch follow its commit; wait for them to be counted.
        settle = time.monotonic() + 10
        while m["placewatch_ingest_acked_total"] < self.n and time.monotonic() < settle:
            time.sleep(0.05)
            for i, ingest in enumerate(ingests):
                with contextlib.suppress(OSError):
                    each[i] = metric_sums(ingest.http("/metrics")[1], *names)
            m = {name: sum(e[name] for e in each) for name in names}
        if m["placewatch_ingest_acked_total"] < self.n:
            self.problems.append(
                f"{label}: only {m['placewatch_ingest_acked_total']:.0f} of {self.n} "
                "messages acknowledged 10 s after all were stored"
            )
        if spy is not None:
            # Let the profile cover the tail too, then stop ingest (py-spy ends with it).
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(max(0.0, profile_s - (elapsed - (first_stored or 0.0))) + 5)
        rcs = [ingest.terminate(60) for ingest in ingests]
        if spy is not None:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
            if spy_out.exists():
                self.profile = profile_top(spy_out)
                self.profile["gil_only"] = bool(self.args.profile_gil)
                kept = self.output.with_name(f"{self.output.stem}-py-spy.txt")
                shutil.copy(spy_out, kept)
                self.profile["raw_stacks"] = _shown(kept)
            else:
                self.problems.append("py-spy wrote no profile (see its log in the work dir)")

        with self.connect() as conn:
            rows = stored_readings(conn, COUNCIL)
            distinct = distinct_readings(conn, COUNCIL)
            dead = dead_letters(conn, prefix)
        noisy: list[str] = []
        for ingest in ingests:
            self.end_session(ingest.client_id)
            log_text = (self.workdir / f"ingest-{ingest.client_id}.log").read_text(errors="replace")
            noisy += [
                line
                for line in log_text.splitlines()
                if " WARNING " in line or " ERROR " in line or "Traceback" in line
            ]
        if rows != self.n or distinct != self.n or dead or any(rcs):
            self.problems.append(
                f"{label}: {rows} rows ({distinct} distinct) of {self.n}, "
                f"{len(dead)} dead letters {[d[2:] for d in dead[:3]]}, exit codes {rcs}"
            )
        if noisy:
            self.problems.append(f"{label}: {len(noisy)} warning/error log lines, e.g. {noisy[:3]}")
        split = [
            {
                "client_id": ingest.client_id,
                "received": int(e["placewatch_ingest_received_total"]),
                "stored": int(e["placewatch_ingest_stored_total"]),
                "acked": int(e["placewatch_ingest_acked_total"]),
                "cpu_seconds": round(c, 2),
                "runqueue_wait_seconds": round(w, 2),
                "exit_code": rc,
            }
            for ingest, e, c, w, rc in zip(ingests, each, ingest_cpu, ingest_wait, rcs, strict=True)
        ]
        if replicas > 1:
            idle = [s["client_id"] for s in split if s["received"] == 0]
            if idle:
                self.notes.append(f"{label}: replicas {idle} received nothing (uneven shares)")
        batches = m["placewatch_ingest_batch_size_count"]
        return {
            "pipeline": "placewatch",
            "rep": rep,
            "replicas": replicas,
            "seconds": round(elapsed, 3),
            "msgs_per_s": round(self.n / elapsed, 1),
            "steady_msgs_per_s": _round(steady_rate(samples, self.n)),
            "seconds_to_metrics_up": _round(first_response),
            "seconds_to_first_commit": _round(first_stored),
            "rows": rows,
            "dead_letters": len(dead),
            "acked": int(m["placewatch_ingest_acked_total"]),
            "duplicates": int(m["placewatch_ingest_duplicates_total"]),
            "db_errors": int(m["placewatch_ingest_db_errors_total"]),
            "batches": int(batches),
            "mean_batch_size": round(m["placewatch_ingest_batch_size_sum"] / batches, 1)
            if batches
            else None,
            "commit_seconds_total": round(m["placewatch_ingest_commit_seconds_sum"], 2),
            "warning_log_lines": len(noisy),
            "publish_seconds": round(publish_s, 2),
            "profiled": bool(profile_s),
            "replica_split": split,
            "ingest_runqueue_wait_seconds": round(sum(ingest_wait), 2),
            "progress": _thin(samples),
            "cpu_seconds": cpu,
        }

    # -- one naive run --------------------------------------------------------------------------

    def naive_command(self, client_id: str, prefix: str, ready: Path) -> list[str]:
        assert self.db_url is not None and self.broker is not None
        cmd = [sys.executable, "-m", "bench.naive_consumer", "--host", self.broker.host]
        cmd += ["--port", str(self.broker.port), "--client-id", client_id]
        cmd += ["--topic", f"{prefix}/#", "--database-url", self.db_url, "--ready-file", str(ready)]
        return cmd

    def start_naive(self, cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
        self.children.append(proc)
        return proc

    def stop_naive(self, proc: subprocess.Popen[bytes]) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            return -9

    def run_naive(self, rep: str) -> dict[str, Any]:
        assert self.db_url is not None and self.broker is not None
        k = self.naive_n
        prefix, client_id = f"bench/n{rep}", f"bench-naive-{rep}"
        label = f"naive #{rep}"
        log_path = self.workdir / f"naive-{rep}.log"
        ready = self.workdir / f"naive-{rep}.ready"
        cmd = self.naive_command(client_id, prefix, ready)
        # First start: creates its persistent session and subscription, then stops.
        proc = self.start_naive(cmd, log_path)
        limit = time.monotonic() + 30
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > limit:
                self.stop_naive(proc)
                tail = log_path.read_text(errors="replace")[-2000:]
                raise BenchError(f"{label}: the naive consumer did not subscribe:\n{tail}")
            time.sleep(0.05)
        if self.stop_naive(proc) != 0:
            self.problems.append(f"{label}: first start exited {proc.returncode}")
        publish_s = self.publish(prefix, label, count=k)
        self.reset_readings()
        tables = [sql.Identifier(kind.value) for kind in KINDS]
        count_query = sql.SQL("SELECT {}").format(
            sql.SQL(" + ").join(sql.SQL("(SELECT count(*) FROM {})").format(t) for t in tables)
        )
        progress = Progress(f"{label} drain", k)
        samples: list[tuple[float, int]] = []
        with self.connect() as watch:
            meter = CpuMeter(self.dbname, self.broker_pid, {watch.info.backend_pid})
            t0 = time.monotonic()
            proc = self.start_naive(cmd, log_path)
            deadline = t0 + self.args.timeout
            while True:
                row = watch.execute(count_query).fetchone()
                done = int(row[0]) if row else 0
                now = time.monotonic() - t0
                samples.append((now, done))
                progress.update(done)
                meter.sample_postgres()
                if done >= k:
                    break
                if proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise BenchError(f"the naive consumer exited during {label}:\n{tail}")
                if time.monotonic() > deadline:
                    raise BenchError(f"{label} not done after {self.args.timeout} s ({done} rows)")
                time.sleep(0.1 if k - done > 2_000 else 0.02)
            elapsed = time.monotonic() - t0
            cpu = meter.finish(elapsed, **{"naive consumer": process_cpu_seconds(proc.pid)})
            wait = runqueue_wait_seconds(proc.pid)
        progress.update(k, force=True)
        progress.close()
        rc = self.stop_naive(proc)
        with self.connect() as conn:
            rows = stored_readings(conn, COUNCIL)
            distinct = distinct_readings(conn, COUNCIL)
            dead = dead_letters(conn, prefix)
        self.end_session(client_id)
        errors = [
            line
            for line in log_path.read_text(errors="replace").splitlines()
            if line.startswith("error") or "Traceback" in line
        ]
        if rows != k or distinct != k or dead or rc != 0 or errors:
            self.problems.append(
                f"{label}: {rows} rows ({distinct} distinct) of {k}, {len(dead)} dead letters, "
                f"exit code {rc}, {len(errors)} errors, e.g. {errors[:3]}"
            )
        return {
            "pipeline": "naive",
            "rep": rep,
            "messages": k,
            "seconds": round(elapsed, 3),
            "msgs_per_s": round(k / elapsed, 1),
            "steady_msgs_per_s": _round(steady_rate(samples, k)),
            "rows": rows,
            "errors": len(errors),
            "runqueue_wait_seconds": round(wait, 2),
            "publish_seconds": round(publish_s, 2),
            "progress": _thin(samples),
            "cpu_seconds": cpu,
        }

    def start_py_spy(self, pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
        binary = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if binary is None:
            raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
        cmd = [binary, "record", "--pid", str(pid), "--duration", str(int(seconds))]
        cmd += ["--rate", "100", "--format", "raw", "--function"]
        if self.args.profile_gil:
            cmd.append("--gil")
        cmd += ["--output", str(out)]
        log = (self.workdir / "py-spy.log").open("wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        self.children.append(proc)
        return proc

    # -- the whole benchmark --------------------------------------------------------------------

    def run(self, command: str) -> int:
        RESULTS.mkdir(parents=True, exist_ok=True)
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        machine = machine_info(self.args.admin_url)
        checkout = checkout_state()
        print(f"command: {command}")
        print(
            f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
            f"{machine['ram_gib']} GiB RAM, load {machine['loadavg_at_start']}"
        )
        print(f"         {machine['postgresql']}")
        print(f"         {machine['mosquitto']}; {machine['mosquitto_sub']}")
        print(f"         Python {machine['python']}, placewatch {machine['git_commit']}")
        setup = self.setup()
        print(
            f"workload: {self.n:,} messages, {setup['devices']} devices, mean payload "
            f"{setup['payload_bytes_mean']} B, storage {setup['storage_flavour']}, "
            f"broker {setup['mosquitto_conf']}"
        )
        for rep in range(1, self.args.repeat + 1):
            runs = [self.run_raw(str(rep))]
            self.print_run(rep, runs[-1])
            for replicas in self.replicas:
                runs.append(self.run_placewatch(str(rep), replicas))
                self.print_run(rep, runs[-1])
            if self.naive_n:
                runs.append(self.run_naive(str(rep)))
                self.print_run(rep, runs[-1])
            self.runs.extend(runs)
        if self.args.profile:
            run = self.run_placewatch("profile", profile_s=self.args.profile)
            self.runs.append(run)
            print(f"profiled placewatch drain (not in the figures): {run['msgs_per_s']:,.0f} msg/s")

        self.stop_broker()  # its log (dropped messages, failed autosaves) is part of the result
        self.output.parent.mkdir(parents=True, exist_ok=True)
        summary = self.summary()
        result = {
            "benchmark": "drain",
            "started_at": started_at,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "raw_command": self.raw_command,
            "messages": self.n,
            "naive_messages": self.naive_n,
            "replicas": self.replicas,
            "repeat": self.args.repeat,
            "machine": machine,
            "checkout_at_start": checkout,
            "setup": setup,
            "ingest_settings": {
                name: Settings.model_fields[name].default
                for name in (
                    "ingest_receive_maximum",
                    "ingest_batch_max",
                    "ingest_batch_linger_ms",
                    "ingest_max_held_mib",
                )
            }
            | {"env": INGEST_ENV},
            "runs": self.runs,
            "summary": summary,
            "profile": self.profile,
            "problems": self.problems,
            "notes": self.notes,
        }
        self.output.write_text(json.dumps(result, indent=2) + "\n")
        self.print_summary(summary)
        print(f"results: {_shown(self.output)}")
        for note in self.notes:
            print(f"NOTE: {note}")
        for problem in self.problems:
            print(f"PROBLEM: {problem}")
        return 1 if self.problems else 0

    def print_run(self, rep: int, run: dict[str, Any]) -> None:
        name = run["pipeline"]
        if name == "placewatch" and run["replicas"] > 1:
            name += f" x{run['replicas']}"
        elif name == "naive":
            name += f" ({run['messages']:,})"
        line = (
            f"#{rep} {name:<16} {run['seconds']:8.2f} s  {run['msgs_per_s']:9,.0f} msg/s"
            f"  (steady {run['steady_msgs_per_s'] or 0:,.0f} msg/s)  "
            "cpu-s: " + ", ".join(f"{k} {v}" for k, v in run["cpu_seconds"].items())
        )
        if "runqueue_wait_seconds" in run:
            line += f"\n      the consumer waited for a CPU {run['runqueue_wait_seconds']} s"
        elif name == "placewatch":
            line += f"\n      ingest waited for a CPU {run['ingest_runqueue_wait_seconds']} s"
        if name.startswith("placewatch x"):
            line += "\n      per replica: " + "; ".join(
                f"{s['client_id']} received {s['received']:,}, cpu-s {s['cpu_seconds']}, "
                f"waited for a CPU {s['runqueue_wait_seconds']} s"
                for s in run["replica_split"]
            )
        print(line, flush=True)

    def summary(self) -> dict[str, Any]:
        """Medians and same-repetition ratios. The keys of earlier versions (raw_*, placewatch_*,
        ratios, median_ratio) are about the placewatch runs with the first ``--replicas``."""

        def med(xs: Sequence[float], digits: int = 1) -> float | None:
            return round(statistics.median(xs), digits) if xs else None

        raw = {r["rep"]: r for r in self.runs if r["pipeline"] == "raw"}
        by_replicas = {
            n: {
                r["rep"]: r
                for r in self.runs
                if r["pipeline"] == "placewatch" and not r["profiled"] and r.get("replicas", 1) == n
            }
            for n in self.replicas
        }
        pw = by_replicas[self.replicas[0]]
        ratios = [pw[rep]["msgs_per_s"] / raw[rep]["msgs_per_s"] for rep in pw if rep in raw]
        out: dict[str, Any] = {
            "raw_msgs_per_s": [r["msgs_per_s"] for r in raw.values()],
            "placewatch_msgs_per_s": [p["msgs_per_s"] for p in pw.values()],
            "raw_median_msgs_per_s": med([r["msgs_per_s"] for r in raw.values()]),
            "placewatch_median_msgs_per_s": med([p["msgs_per_s"] for p in pw.values()]),
            "placewatch_replicas": self.replicas[0],
            "ratios": [round(x, 3) for x in ratios],
            "median_ratio": med(ratios, 3),
        }

        naive = {r["rep"]: r for r in self.runs if r["pipeline"] == "naive"}
        if naive:
            to_naive = [pw[rep]["msgs_per_s"] / naive[rep]["msgs_per_s"] for rep in naive]
            naive_to_raw = [naive[rep]["msgs_per_s"] / raw[rep]["msgs_per_s"] for rep in naive]
            out["naive"] = {
                "messages": self.naive_n,
                "msgs_per_s": [r["msgs_per_s"] for r in naive.values()],
                "median_msgs_per_s": med([r["msgs_per_s"] for r in naive.values()]),
                "ratios_placewatch_to_naive": [round(x, 2) for x in to_naive],
                "median_ratio_placewatch_to_naive": med(to_naive, 2),
                "ratios_to_raw": [round(x, 4) for x in naive_to_raw],
                "median_ratio_to_raw": med(naive_to_raw, 4),
                "runqueue_wait_seconds": [r["runqueue_wait_seconds"] for r in naive.values()],
            }
        else:
            out["naive"] = None

        one = by_replicas.get(1, {})
        out["replicas"] = {}
        for n, runs in by_replicas.items():
            reps = list(runs)
            to_raw = [runs[rep]["msgs_per_s"] / raw[rep]["msgs_per_s"] for rep in reps]
            to_one = [runs[rep]["msgs_per_s"] / one[rep]["msgs_per_s"] for rep in reps if one]
            cpu_keys = list(runs[reps[0]]["cpu_seconds"]) if reps else []
            out["replicas"][str(n)] = {
                "replicas": n,
                "msgs_per_s": [runs[rep]["msgs_per_s"] for rep in reps],
                "median_msgs_per_s": med([runs[rep]["msgs_per_s"] for rep in reps]),
                "steady_msgs_per_s": [runs[rep]["steady_msgs_per_s"] for rep in reps],
                "ratios_to_raw": [round(x, 3) for x in to_raw],
                "median_ratio_to_raw": med(to_raw, 3),
                "ratios_to_1_replica": [round(x, 3) for x in to_one] if one else None,
                "median_ratio_to_1_replica": med(to_one, 3) if one else None,
                "cpu_seconds_median": {
                    k: med([runs[rep]["cpu_seconds"][k] for rep in reps], 2) for k in cpu_keys
                },
                "replica_cpu_seconds_median": [
                    med([runs[rep]["replica_split"][i]["cpu_seconds"] for rep in reps], 2)
                    for i in range(n)
                ],
                "replica_received": [
                    [s["received"] for s in runs[rep]["replica_split"]] for rep in reps
                ],
                "ingest_runqueue_wait_seconds": [
                    runs[rep].get("ingest_runqueue_wait_seconds") for rep in reps
                ],
            }
        return out

    def print_summary(self, s: dict[str, Any]) -> None:
        print()
        print(
            f"raw limit   median {s['raw_median_msgs_per_s']:>9,.0f} msg/s"
            f"  runs {s['raw_msgs_per_s']}"
        )
        print(
            f"placewatch  median {s['placewatch_median_msgs_per_s']:>9,.0f} msg/s"
            f"  runs {s['placewatch_msgs_per_s']}  ({s['placewatch_replicas']} replica(s))"
        )
        print(f"ratio placewatch/raw: median {s['median_ratio']:.3f}  per pair {s['ratios']}")
        if s["naive"]:
            nv = s["naive"]
            print(
                f"naive       median {nv['median_msgs_per_s']:>9,.0f} msg/s"
                f"  runs {nv['msgs_per_s']}  (first {nv['messages']:,} messages)"
            )
            print(
                f"ratio placewatch/naive: median {nv['median_ratio_placewatch_to_naive']:.1f}"
                f"  per pair {nv['ratios_placewatch_to_naive']}"
            )
        for n, r in s["replicas"].items() if s["replicas"].keys() != {"1"} else ():
            line = (
                f"{n} replica(s): median {r['median_msgs_per_s']:>9,.0f} msg/s  runs "
                f"{r['msgs_per_s']}; /raw median {r['median_ratio_to_raw']:.3f}"
                f" {r['ratios_to_raw']}"
            )
            if r["ratios_to_1_replica"] is not None and n != "1":
                line += (
                    f"; /1 replica median {r['median_ratio_to_1_replica']:.2f}"
                    f" {r['ratios_to_1_replica']}"
                )
            print(line)
            print(
                "    cpu-s (medians): "
                + ", ".join(f"{k} {v}" for k, v in r["cpu_seconds_median"].items())
                + f"; per replica {r['replica_cpu_seconds_median']}"
            )
            if n != "1":
                print(f"    messages received per replica: {r['replica_received']}")
        if self.profile:
            view = "GIL holder only" if self.profile["gil_only"] else "all active threads"
            print(f"\npy-spy ({view}): {self.profile['samples']} samples; top self frames:")
            for row in self.profile["self"]:
                print(f"  {row['pct']:5.1f} %  {row['frame']}")
            print("top self time by package:")
            for row in self.profile["self_by_package"]:
                print(f"  {row['pct']:5.1f} %  {row['frame']}")
            print("top inclusive frames:")
            for row in self.profile["inclusive"]:
                print(f"  {row['pct']:5.1f} %  {row['frame']}")


def _thin(samples: Sequence[tuple[float, int]], keep: int = 200) -> list[tuple[float, int]]:
    """At most ``keep`` (seconds, messages done) samples, evenly spaced, the last one kept."""
    step = max(1, -(-len(samples) // keep))
    picked = list(samples[::step])
    if samples and picked[-1] != samples[-1]:
        picked.append(samples[-1])
    return [(round(t, 3), d) for t, d in picked]


def _round(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _replica_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or min(values) < 1 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"need distinct counts ≥ 1, e.g. 1 or 1,2: {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.drain",
        description="Drain a broker backlog with placewatch ingest (1 or more replicas), the raw "
        "limit (mosquitto_sub | psql \\copy) and a naive consumer (paho + one INSERT per "
        "message), interleaved, and compare.",
    )
    p.add_argument("--messages", type=int, default=200_000, help="backlog size (default 200000)")
    p.add_argument(
        "--repeat", type=int, default=3, help="repetitions of every pipeline (default 3)"
    )
    p.add_argument(
        "--replicas",
        type=_replica_list,
        default=[1],
        metavar="N[,N...]",
        help="ingest processes on one shared subscription; a list (1,2) runs each in every "
        "repetition (default 1)",
    )
    p.add_argument(
        "--naive-messages",
        type=int,
        default=20_000,
        metavar="K",
        help="the naive consumer drains the first K messages of the backlog (default 20000)",
    )
    p.add_argument("--no-naive", action="store_true", help="skip the naive consumer")
    p.add_argument("--per-kind", type=int, default=500, help="devices per kind (default 500)")
    p.add_argument(
        "--interval", type=float, default=600, help="seconds between a device's readings (600)"
    )
    p.add_argument(
        "--timeout", type=float, default=900, help="limit for each publish or drain, s (900)"
    )
    p.add_argument(
        "--profile",
        type=float,
        default=0,
        metavar="SECONDS",
        help="after the measured runs, one extra placewatch drain under py-spy for this long",
    )
    p.add_argument(
        "--profile-gil",
        action="store_true",
        help="profile only the thread holding the GIL (py-spy --gil): where the Python CPU goes",
    )
    p.add_argument(
        "--raw-receive-maximum",
        type=int,
        default=0,
        help="MQTT 5 Receive Maximum for the raw mosquitto_sub (default: its own)",
    )
    p.add_argument(
        "--admin-url",
        default=None,
        help="server to use (default: the test server, tests/support/postgres.py)",
    )
    p.add_argument("--timescaledb", choices=("auto", "on", "off"), default="auto")
    p.add_argument(
        "--mosquitto-conf",
        default=None,
        help="broker config (default: broker/mosquitto.conf or PLACEWATCH_TEST_MOSQUITTO_CONF)",
    )
    p.add_argument("--keep-workdir", action="store_true", help="keep logs and broker data")
    p.add_argument(
        "--output", default=None, help="result file (default bench/results/drain-<time>.json)"
    )
    args = p.parse_args(argv)
    args.admin_url = args.admin_url or server_url()  # resolved here, not on import
    if args.messages < 1 or args.repeat < 1 or args.naive_messages < 1:
        p.error("--messages, --repeat and --naive-messages must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench("bench.drain", DrainBench(parse_args(argv)), argv)


if __name__ == "__main__":
    sys.exit(main())
