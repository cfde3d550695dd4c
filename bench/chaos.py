"""Fault suite: SIGKILLs and outages under steady load, then exact accounting of what was
published, stored, alerted and delivered.

Run from the repository root::

    .venv/bin/python -m bench.chaos [--trials 20] [--only ingest,rules,...] [--seed N]

Everything runs on loopback, on servers of its own: a private PostgreSQL cluster (``initdb``; its
data directory on a small tmpfs when ``mount`` works, for the disk-full component), a private
Mosquitto from ``broker/mosquitto.conf`` (persistence as shipped: snapshot every 10 s), and per
component a fresh database, ``placewatch ingest``, one ``placewatch rules run`` with one threshold
rule (flood gauges' ``level_m`` above 1.0, cleared at or below 0.8) and ``placewatch notify``
delivering the rule's alerts to a webhook receiver in this process (signatures verified).

Each component is one phase: a publisher (``bench.chaos_publisher``) sends ``--rate`` msg/s of
native readings from the fleet, ten gauges crossing the threshold on a square wave, while the
harness injects ``--trials`` faults at random intervals (seeded; the seed is printed):

* ``ingest``, ``rules``, ``notify``: SIGKILL of that service, restarted at once;
* ``postgres``: ``pg_ctl restart`` of the private cluster, alternately ``-m immediate`` (a crash:
  no checkpoint, WAL recovery at start) and ``-m fast``;
* ``broker``: Mosquitto stopped gracefully (SIGTERM: it writes its snapshot) and started again;
* ``broker-crash``: Mosquitto SIGKILLed and started again: a broker crash may lose what it
  accepted after its last snapshot, so this phase measures that loss instead of asserting none;
* ``receiver``: the webhook receiver down (connections refused) for a few seconds, ``--trials``
  times, then once for ``--receiver-outage`` seconds (minutes) while alerts keep being raised;
* ``disk``: the database's file system filled up (a ballast file takes every free byte of its
  tmpfs) for a few seconds, then freed;
* ``timeout``: the database has ``statement_timeout = 2s`` and another session holds an
  ACCESS EXCLUSIVE lock on a readings table for longer, so ingest's (and the rules worker's)
  statements are cancelled until it is released.

Then publishing stops, the harness waits (bounded) until everything is stored, evaluated and
delivered, and accounts: messages the broker acknowledged vs readings stored (distinct by kind,
device and time), rows stored twice, dead letters; the alerts the stored readings imply vs the
alerts opened (none twice, none missing, resolved where expected); webhook events expected vs
received (distinct webhook-ids, and redeliveries of the same id, which at-least-once allows and
receivers de-duplicate); errors in every service's log. Results go to stdout and to
``bench/results/chaos-<timestamp>.json``; the exit status is 1 when a component lost or
duplicated anything it must not (a broker crash's loss is reported, not failed on).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.alert_latency import LEVEL_ABOVE, LEVEL_CLEAR, threshold_rule_yaml
from bench.chaos_receiver import ChaosReceiver
from bench.drain import RESULTS, ROOT, BenchError, host_info, metric_sums, run_bench
from notify.signing import new_secret
from notify.targets import TargetPolicy
from placewatch.embedded.broker import (
    MOSQUITTO_CONF,
    RunningBroker,
    free_port,
    mosquitto_binary,
    start_mosquitto,
)
from placewatch.kinds import KINDS
from storage.migrate import migrate
from teams.config import TeamsFile, apply_teams
from tests.support.ingest import IngestProcess
from tests.support.postgres import pg_bindir
from tests.support.traffic import register_fleet

COMPONENTS = (
    "ingest",
    "rules",
    "notify",
    "postgres",
    "broker",
    "broker-crash",
    "receiver",
    "disk",
    "timeout",
)
COUNCIL = "chaos"
RULE_ID = "chaos-flood-high"
RULES_YAML = threshold_rule_yaml(RULE_ID)
TEAM = "chaos-flood-ops"
HOOK = "chaos-receiver"
SECRET_ENV = "PLACEWATCH_CHAOS_WEBHOOK_SECRET"
INGEST_METRICS = (
    "placewatch_ingest_stored_total",
    "placewatch_ingest_pending_messages",
    "placewatch_ingest_duplicates_total",
    "placewatch_ingest_db_errors_total",
    "placewatch_ingest_received_total",
)
# Log lines worth quoting from the disk-full and timeout components.
PG_ERROR_PATTERNS = ("No space left on device", "statement timeout", "PANIC", "FATAL")
SAVE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d): Saving in-memory database")
TMPFS_SIZE = "1g"


def _now() -> float:
    return time.monotonic()


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


@dataclass
class ChaosCluster:
    """A private PostgreSQL cluster (the suite stops, crashes and fills it, so never the system
    server), its server log outside the data directory (which may be on the file system the
    disk-full component fills)."""

    workdir: Path  # holds pgdata and the unix socket
    port: int
    bindir: Path
    log: Path

    @property
    def datadir(self) -> Path:
        return self.workdir / "pgdata"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr}")

    def options(self) -> str:
        return f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1"

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
            os.chown(self.log, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.datadir / "postgresql.conf").open("a") as conf:
            # Small WAL bounds, so that recycled segments do not take the tmpfs.
            conf.write("\nmax_wal_size = 256MB\nmin_wal_size = 64MB\n")
        self.start()

    def start(self) -> None:
        d, log = str(self.datadir), str(self.log)
        self._run("pg_ctl", "-D", d, "-w", "-l", log, "-o", self.options(), "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def restart(self, mode: str) -> None:
        d, log = str(self.datadir), str(self.log)
        self._run("pg_ctl", "-D", d, "-m", mode, "-w", "-l", log, "-o", self.options(), "restart")

    def running(self) -> bool:
        cmd = [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "status"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0

    def db_url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"


@dataclass
class ChaosBroker:
    """A private Mosquitto from the shipped ``broker/mosquitto.conf``, only its listener and
    persistence directory rewritten (so persistence is exactly as shipped;
    ``placewatch.embedded.broker.start_mosquitto``), restartable on the same port and
    persistence directory."""

    workdir: Path
    port: int
    host: str = "127.0.0.1"
    running: RunningBroker | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.running.process if self.running is not None else None

    @property
    def log(self) -> Path:
        return self.workdir / "mosquitto.log"

    def start(self) -> None:
        if mosquitto_binary() is None:
            raise BenchError("the fault suite needs the mosquitto binary")
        self.running = start_mosquitto(self.workdir, self.port)

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop(30)


@dataclass
class Phase:
    component: str
    dbname: str
    url: str
    prefix: str
    workdir: Path
    receiver: ChaosReceiver
    ingest: IngestProcess
    rules: IngestProcess
    notify: IngestProcess
    trials: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    unexpected_restarts: Counter[str] = field(default_factory=Counter)
    # Last metrics seen per ingest process (pid): counters restart from zero with each process.
    ingest_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    publisher: subprocess.Popen[bytes] | None = None
    spec_path: Path | None = None
    ingest_paused: bool = False  # stopped by the harness on purpose: not to be restarted
    pg_log_offset: int = 0

    def services(self) -> list[IngestProcess]:
        return [self.ingest, self.rules, self.notify]


class ChaosBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="placewatch-chaos-"))
        self.workdir.chmod(0o755)
        self.pgfs = self.workdir / "pgfs"
        self.mounted = False
        self.cluster: ChaosCluster | None = None
        self.broker: ChaosBroker | None = None
        self.phase: Phase | None = None
        self.ballast: Path | None = None
        stamp = datetime.now(UTC).strftime("chaos-%Y%m%dT%H%M%SZ")
        self.output = Path(args.output) if args.output else RESULTS / f"{stamp}.json"

    # -- set-up and tear-down -------------------------------------------------------------------

    def setup(self) -> dict[str, Any]:
        bindir = pg_bindir()
        if bindir is None:
            raise BenchError("no PostgreSQL server binaries (initdb, pg_ctl) for a private cluster")
        self.pgfs.mkdir()
        if os.geteuid() == 0 and shutil.which("mount"):
            out = subprocess.run(
                [
                    "mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    f"size={TMPFS_SIZE},mode=0755",
                    "tmpfs",
                    str(self.pgfs),
                ],
                capture_output=True,
                text=True,
            )
            self.mounted = out.returncode == 0
        self.cluster = ChaosCluster(self.pgfs, free_port(), bindir, self.workdir / "postgresql.log")
        self.cluster.init()
        self.broker = ChaosBroker(self.workdir / "broker", free_port())
        self.broker.start()
        with psycopg.connect(self.cluster.db_url("postgres"), autocommit=True) as conn:
            row = conn.execute("SELECT version()").fetchone()
        return {
            "postgresql": row[0] if row else "?",
            "postgresql_data_on_tmpfs": self.mounted,
            "tmpfs_size": TMPFS_SIZE if self.mounted else None,
            "mosquitto_conf": str(MOSQUITTO_CONF.relative_to(ROOT)),
            "workdir": str(self.workdir),
        }

    def cleanup(self) -> None:
        if self.phase is not None:
            self.stop_phase_processes(self.phase)
        if self.ballast is not None:
            self.ballast.unlink(missing_ok=True)
        if self.broker is not None:
            self.broker.stop()  # SIGTERM, then SIGKILL if it takes longer
        if self.cluster is not None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.cluster.stop()
        if self.mounted:
            subprocess.run(["umount", str(self.pgfs)], capture_output=True)
        if self.args.keep_workdir:
            print(f"work directory kept: {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_phase_processes(self, ph: Phase) -> None:
        if ph.publisher is not None and ph.publisher.poll() is None:
            ph.publisher.kill()
            ph.publisher.wait(10)
        for proc in ph.services():
            if proc.alive():
                try:
                    proc.terminate(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        ph.receiver.down()

    # -- one phase ------------------------------------------------------------------------------

    def new_phase(self, component: str) -> Phase:
        assert self.cluster is not None and self.broker is not None
        name = component.replace("-", "_")
        dbname = f"chaos_{name}_{secrets.token_hex(3)}"
        url = self.cluster.db_url(dbname)
        migrate(url, "off")
        register_fleet(url, COUNCIL, self.args.per_kind)
        workdir = self.workdir / f"phase-{component}"
        workdir.mkdir()
        receiver = ChaosReceiver(new_secret())
        receiver.up()
        team = {
            "id": TEAM,
            "name": "Chaos flood operations",
            "routes": [{"kinds": ["flood_level"], "rules": [RULE_ID]}],
            "webhooks": [{"id": HOOK, "url": receiver.url, "secret_env": SECRET_ENV}],
        }
        os.environ[SECRET_ENV] = receiver.secret
        try:
            with psycopg.connect(url) as conn:
                apply_teams(
                    conn,
                    TeamsFile.model_validate({"council": COUNCIL, "teams": [team]}),
                    TargetPolicy.local(),
                )
        finally:
            del os.environ[SECRET_ENV]
        if component == "timeout":
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET statement_timeout = '2s'").format(
                        sql.Identifier(dbname)
                    )
                )
        rules_file = workdir / "rules.yaml"
        rules_file.write_text(RULES_YAML)
        prefix = f"chaos/{name}"
        port = self.broker.port
        ingest = IngestProcess(url, port, prefix, f"chaos-ingest-{name}", workdir)
        rules = IngestProcess(
            url,
            port,
            prefix,
            f"chaos-rules-{name}",
            workdir,
            command=("rules", "run"),
            extra_env={
                "PLACEWATCH_RULES_DEFAULTS": "false",
                "PLACEWATCH_RULES_PATH": str(rules_file),
            },
        )
        notify = IngestProcess(
            url,
            port,
            prefix,
            f"chaos-notify-{name}",
            workdir,
            command=("notify",),
            extra_env={
                "PLACEWATCH_LINK_SECRET": secrets.token_urlsafe(32),
                "PLACEWATCH_NOTIFY_ALLOW_HTTP": "true",
                "PLACEWATCH_NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8",
            },
        )
        ph = Phase(component, dbname, url, prefix, workdir, receiver, ingest, rules, notify)
        ph.pg_log_offset = self.cluster.log.stat().st_size
        self.phase = ph
        for proc in ph.services():
            try:
                proc.start(wait_ready=True)
            except (RuntimeError, TimeoutError) as exc:
                raise BenchError(str(exc)) from exc
        return ph

    def start_publisher(self, ph: Phase) -> None:
        assert self.broker is not None
        ph.spec_path = ph.workdir / "publisher.json"
        ph.spec_path.write_text(
            json.dumps(
                {
                    "host": self.broker.host,
                    "port": self.broker.port,
                    "client_id": f"chaos-publisher-{ph.component}",
                    "prefix": ph.prefix,
                    "council": COUNCIL,
                    "per_kind": self.args.per_kind,
                    "crossing_gauges": min(self.args.crossing_gauges, self.args.per_kind),
                    "cycle_s": self.args.cycle,
                    "rate": self.args.rate,
                    "seed": self.rng.randrange(2**31),
                    "status": str(ph.workdir / "publisher-status.json"),
                    "result": str(ph.workdir / "publisher-result.json"),
                }
            )
        )
        log = (ph.workdir / "publisher.log").open("ab")
        ph.publisher = subprocess.Popen(
            [sys.executable, "-m", "bench.chaos_publisher", str(ph.spec_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        assert ph.publisher.stdout is not None
        line = ph.publisher.stdout.readline()
        if line.strip() != b"started":
            raise BenchError(
                f"publisher did not start: {(ph.workdir / 'publisher.log').read_text()}"
            )

    def finish_publisher(self, ph: Phase) -> dict[str, Any]:
        assert ph.publisher is not None
        ph.publisher.send_signal(signal.SIGTERM)
        try:
            ph.publisher.wait(180)
        except subprocess.TimeoutExpired as exc:
            raise BenchError("the publisher did not finish within 180 s") from exc
        path = ph.workdir / "publisher-result.json"
        if not path.exists():
            raise BenchError(
                f"publisher left no result: {(ph.workdir / 'publisher.log').read_text()}"
            )
        result: dict[str, Any] = json.loads(path.read_text())
        return result

    # -- watching -------------------------------------------------------------------------------

    def sample_ingest(self, ph: Phase) -> dict[str, float]:
        """Ingest's metrics now (empty if it does not answer), remembered per process."""
        if ph.ingest_paused or not ph.ingest.alive():
            return {}
        try:
            m = metric_sums(ph.ingest.http("/metrics")[1], *INGEST_METRICS)
        except OSError:
            return {}
        ph.ingest_metrics[ph.ingest.pid] = m
        return m

    def watch(self, ph: Phase, seconds: float, target: str | None = None) -> None:
        """Sample and keep every service running for ``seconds``; a service that exits without
        being killed by the harness is a problem, noted, and restarted."""
        end = _now() + seconds
        while True:
            self.sample_ingest(ph)
            for proc in ph.services():
                if not proc.alive() and not (proc is ph.ingest and ph.ingest_paused):
                    name = proc.command[0]
                    rc = proc.process.returncode if proc.process else None
                    ph.unexpected_restarts[name] += 1
                    ph.problems.append(
                        f"{name} exited by itself (code {rc}) during trial {len(ph.trials)}: "
                        + " | ".join(proc.log_tail(3).splitlines())
                    )
                    proc.start(wait_ready=False)
            left = end - _now()
            if left <= 0:
                return
            time.sleep(min(0.5, left))

    def wait_ready(self, proc: IngestProcess, timeout: float = 90) -> float | None:
        """Seconds until ``proc`` answers /readyz 200 (None if not within ``timeout``)."""
        started = _now()
        while _now() - started < timeout:
            if not proc.alive():
                return None
            with contextlib.suppress(OSError):
                if proc.http("/readyz")[0] == 200:
                    return round(_now() - started, 2)
            time.sleep(0.05)
        return None

    def wait_resumed(self, ph: Phase, timeout: float = 120) -> float | None:
        """Seconds until ingest stores something again (its stored counter grows)."""
        started = _now()
        base: float | None = None
        pid = ph.ingest.pid
        while _now() - started < timeout:
            m = self.sample_ingest(ph)
            if m:
                if ph.ingest.pid != pid:
                    pid, base = ph.ingest.pid, None
                stored = m["placewatch_ingest_stored_total"]
                if base is None:
                    base = stored
                elif stored > base:
                    return round(_now() - started, 2)
            time.sleep(0.1)
        return None

    # -- faults ---------------------------------------------------------------------------------

    def kill_service(self, ph: Phase, proc: IngestProcess, trial: dict[str, Any]) -> None:
        if proc is ph.ingest:
            m = self.sample_ingest(ph)
            trial["held_messages_at_kill"] = int(m.get("placewatch_ingest_pending_messages", -1))
        else:
            with psycopg.connect(ph.url, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM rule_inbox), (SELECT count(*) FROM alert_outbox),"
                    " (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending')"
                ).fetchone()
            assert row is not None
            trial["inbox_rows_at_kill"] = int(row[0])
            trial["outbox_rows_at_kill"] = int(row[1])
            trial["pending_deliveries_at_kill"] = int(row[2])
        trial["pid"] = proc.pid
        proc.kill()  # SIGKILL, waited for
        started = _now()
        proc.start(wait_ready=False)
        ready = self.wait_ready(proc)
        trial["restart_to_ready_s"] = ready if ready is None else round(_now() - started, 2)
        if ready is None:
            ph.problems.append(
                f"{proc.command[0]} not ready 90 s after its restart: {proc.log_tail(5)}"
            )

    def fault(self, ph: Phase, trial: dict[str, Any]) -> None:
        assert self.cluster is not None and self.broker is not None
        c = ph.component
        if c == "ingest":
            self.kill_service(ph, ph.ingest, trial)
        elif c == "rules":
            self.kill_service(ph, ph.rules, trial)
        elif c == "notify":
            self.kill_service(ph, ph.notify, trial)
        elif c == "postgres":
            mode = "immediate" if trial["trial"] % 2 == 0 else "fast"
            trial["mode"] = mode
            started = _now()
            self.cluster.restart(mode)
            trial["restart_s"] = round(_now() - started, 2)
            trial["ingest_storing_again_s"] = self.wait_resumed(ph)
        elif c in ("broker", "broker-crash"):
            assert self.broker.process is not None
            started = _now()
            if c == "broker":
                self.broker.process.terminate()
            else:
                if trial["trial"] % 2 == 1:
                    # Every other crash with a backlog in the broker: ingest down (SIGKILL) for
                    # a while first, so the broker queues for its persistent session, as it
                    # does while a consumer is away.
                    pause = self.rng.uniform(self.args.gap_min, self.args.gap_max)
                    trial["ingest_down_before_crash_s"] = round(pause, 2)
                    m = self.sample_ingest(ph)
                    trial["held_messages_at_ingest_kill"] = int(
                        m.get("placewatch_ingest_pending_messages", -1)
                    )
                    ph.ingest_paused = True
                    trial["ingest_killed_at"] = time.time()
                    ph.ingest.kill()
                    time.sleep(pause)
                trial["last_snapshot"] = self.last_snapshot()
                trial["killed_at"] = time.time()
                self.broker.process.kill()
            self.broker.process.wait(30)
            trial["broker_exit"] = self.broker.process.returncode
            self.broker.start()  # same config and persistence directory: loads the snapshot
            if ph.ingest_paused:
                ph.ingest.start(wait_ready=False)
                ph.ingest_paused = False
            trial["broker_down_s"] = round(_now() - started, 2)
            trial["ingest_storing_again_s"] = self.wait_resumed(ph)
        elif c == "receiver":
            down = self.rng.uniform(self.args.gap_min, self.args.gap_max)
            self.receiver_outage(ph, trial, down)
        elif c == "disk":
            self.disk_full(ph, trial)
        elif c == "timeout":
            self.lock_table(ph, trial)
        else:
            raise BenchError(f"unknown component {c}")

    def receiver_outage(self, ph: Phase, trial: dict[str, Any], seconds: float) -> None:
        ph.receiver.down()
        trial["receiver_down_s"] = round(seconds, 2)
        self.watch(ph, seconds)
        with psycopg.connect(ph.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*), coalesce(max(attempts), 0) FROM webhook_deliveries"
                " WHERE state = 'pending'"
            ).fetchone()
        assert row is not None
        trial["pending_deliveries_before_back"] = int(row[0])
        trial["most_attempts_of_a_pending_delivery"] = int(row[1])
        ph.receiver.up()
        trial["back_at"] = time.time()

    def disk_full(self, ph: Phase, trial: dict[str, Any]) -> None:
        if not self.mounted:
            raise BenchError("disk: the private cluster is not on a tmpfs (mount failed)")
        hold = self.rng.uniform(self.args.gap_min, self.args.gap_max)
        st = os.statvfs(self.pgfs)
        free = st.f_bavail * st.f_frsize
        self.ballast = self.pgfs / "ballast"
        with self.ballast.open("wb") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, free)
            except OSError:
                # Take what there is, a page at a time, until the file system refuses.
                chunk = b"\0" * (1 << 20)
                with contextlib.suppress(OSError):
                    while True:
                        f.write(chunk)
                        f.flush()
        st = os.statvfs(self.pgfs)
        trial["free_bytes_before"] = free
        trial["free_bytes_while_full"] = st.f_bavail * st.f_frsize
        trial["full_s"] = round(hold, 2)
        errors_before = self.ingest_db_errors(ph)
        self.watch(ph, hold)
        trial["ingest_db_errors_while_full"] = self.ingest_db_errors(ph) - errors_before
        self.ballast.unlink()
        self.ballast = None
        trial["postgres_running_after"] = self.cluster.running() if self.cluster else None
        if not trial["postgres_running_after"]:
            # A finding: the server went down on ENOSPC (e.g. a WAL write) and did not come back.
            ph.findings.append(f"trial {trial['trial']}: PostgreSQL stopped when the disk was full")
            assert self.cluster is not None
            self.cluster.start()
        trial["ingest_storing_again_s"] = self.wait_resumed(ph)

    def lock_table(self, ph: Phase, trial: dict[str, Any]) -> None:
        hold = self.rng.uniform(max(4.0, self.args.gap_min), max(8.0, self.args.gap_max))
        table = self.rng.choice([k.value for k in KINDS])
        trial["locked_table"] = table
        trial["lock_held_s"] = round(hold, 2)
        errors_before = self.ingest_db_errors(ph)
        with psycopg.connect(ph.url, options="-c statement_timeout=0") as conn:
            conn.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table))
            )
            self.watch(ph, hold)
            conn.rollback()
        trial["ingest_db_errors_while_locked"] = self.ingest_db_errors(ph) - errors_before
        trial["ingest_storing_again_s"] = self.wait_resumed(ph)

    def ingest_db_errors(self, ph: Phase) -> int:
        m = self.sample_ingest(ph)
        return int(m.get("placewatch_ingest_db_errors_total", 0))

    def last_snapshot(self) -> str | None:
        assert self.broker is not None
        log = self.broker.log
        last = None
        for line in log.read_text(errors="replace").splitlines():
            m = SAVE_RE.match(line)
            if m:
                last = m.group(1)
        return last

    # -- the phase ------------------------------------------------------------------------------

    def run_phase(self, component: str) -> dict[str, Any]:
        t_phase = _now()
        ph = self.new_phase(component)
        n = self.args.broker_crashes if component == "broker-crash" else self.args.trials
        print(f"== {component}: {n} trials", flush=True)
        self.start_publisher(ph)
        # A first snapshot of the broker holds the ingest session before the first crash.
        self.watch(ph, 12.0 if component == "broker-crash" else self.args.warmup)
        trials = self.args.trials
        gaps = (self.args.gap_min, self.args.gap_max)
        if component == "broker-crash":
            # Crash moments spread over the broker's 10 s autosave period.
            trials = self.args.broker_crashes
            gaps = (4.0, 16.0)
        for i in range(trials):
            gap = self.rng.uniform(*gaps)
            self.watch(ph, gap)
            trial: dict[str, Any] = {"trial": i, "at_s": round(_now() - t_phase, 2)}
            self.fault(ph, trial)
            ph.trials.append(trial)
            shown = {
                k: v
                for k, v in trial.items()
                if k not in ("trial", "pid", "back_at", "killed_at", "ingest_killed_at")
            }
            print(f"  {component} trial {i + 1}/{trials}: {shown}", flush=True)
        long_outage: dict[str, Any] | None = None
        if component == "receiver" and self.args.receiver_outage > 0:
            long_outage = {"trial": "long", "at_s": round(_now() - t_phase, 2)}
            print(f"  receiver down for {self.args.receiver_outage:g} s", flush=True)
            self.receiver_outage(ph, long_outage, self.args.receiver_outage)
            print(f"  long outage: {long_outage}", flush=True)
        self.watch(ph, self.args.tail)
        pub = self.finish_publisher(ph)
        drain = self.drain(ph, pub)
        exit_codes: dict[str, int | str] = {}
        for proc in (ph.rules, ph.notify, ph.ingest):
            try:
                exit_codes[proc.command[0]] = proc.terminate(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                exit_codes[proc.command[0]] = "killed after 60 s"
        acct = self.account(ph, pub)
        if component == "receiver":
            # When the dispatcher got through again after each outage (its backoff and circuit
            # breaker decide; the next outage may come first).
            times = sorted(a.at for a in ph.receiver.snapshot())
            for t in [*ph.trials, *([long_outage] if long_outage else [])]:
                after = [x for x in times if x >= t["back_at"]]
                t["first_webhook_after_back_s"] = (
                    round(after[0] - t["back_at"], 2) if after else None
                )
        ph.receiver.down()
        self.phase = None
        logs = self.scan_logs(ph)
        with psycopg.connect(self.cluster_url("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(ph.dbname))
            )
        if component != "broker-crash" and acct["readings"]["lost"]:
            ph.problems.append(f"{acct['readings']['lost']} accepted readings not stored")
        for key in ("duplicate_rows", "stored_never_published"):
            if acct["readings"][key]:
                ph.problems.append(f"readings: {key} = {acct['readings'][key]}")
        if acct["readings"]["dead_letters"]:
            ph.problems.append(f"dead letters: {acct['readings']['dead_letters_by_reason']}")
        a = acct["alerts"]
        for key in ("missing", "opened_twice", "unexpected", "wrong_resolution"):
            if a[key]:
                ph.problems.append(f"alerts: {key} = {a[key]} (e.g. {a['examples'][:3]})")
        w = acct["webhooks"]
        for key in ("events_missing", "events_under_several_ids", "unexpected_events"):
            if w[key]:
                ph.problems.append(f"webhooks: {key} = {w[key]}")
        if w["deliveries_by_state"].get("dead") or w["deliveries_by_state"].get("pending"):
            ph.problems.append(f"webhook deliveries left: {w['deliveries_by_state']}")
        if w["signature_failures"] or w["bad_requests"]:
            ph.problems.append(
                f"receiver: {w['signature_failures']} bad signatures, {w['bad_requests']} bad "
                "requests"
            )
        if pub["sent"] != pub["acked"]:
            ph.findings.append(
                f"{pub['sent'] - pub['acked']} of {pub['sent']} publishes never acknowledged "
                "by the broker (the publisher's problem, not placewatch's; not counted as lost)"
            )
        for name, rc in exit_codes.items():
            if rc != 0:
                ph.problems.append(f"{name} exited {rc} on SIGTERM")
        out = {
            "component": component,
            "trials": len(ph.trials),
            "seconds": round(_now() - t_phase, 1),
            "publisher": {k: v for k, v in pub.items() if k != "records"},
            "drain": drain,
            "accounting": acct,
            "trial_log": ph.trials + ([long_outage] if long_outage else []),
            "unexpected_exits": dict(ph.unexpected_restarts),
            "exit_codes_on_sigterm": exit_codes,
            "logs": logs,
            "problems": ph.problems,
            "findings": ph.findings,
        }
        if component == "broker-crash":
            out["broker_crash"] = self.crash_losses(ph, pub, acct)
        self.print_phase(out)
        return out

    def cluster_url(self, dbname: str) -> str:
        assert self.cluster is not None
        return self.cluster.db_url(dbname)

    def drain(self, ph: Phase, pub: dict[str, Any]) -> dict[str, Any]:
        """Until every acknowledged reading is stored (or storing has stopped for 20 s with
        nothing held: a broker crash's loss), the inbox is empty and the outbox is delivered."""
        started = _now()
        deadline = started + self.args.timeout
        accepted = pub["acked"]
        stored_at = evaluated_at = delivered_at = None
        last_count, last_change = -1, _now()
        state: tuple[Any, ...] = ()
        while _now() < deadline:
            self.watch(ph, 0.5)
            try:
                with psycopg.connect(ph.url, autocommit=True, connect_timeout=5) as conn:
                    count = sum(
                        int(
                            (
                                conn.execute(
                                    sql.SQL("SELECT count(*) FROM {}").format(
                                        sql.Identifier(k.value)
                                    )
                                ).fetchone()
                                or (0,)
                            )[0]
                        )
                        for k in KINDS
                    )
                    row = conn.execute(
                        "SELECT (SELECT count(*) FROM rule_inbox), (SELECT count(*) FROM"
                        " alert_outbox), (SELECT count(*) FROM webhook_deliveries"
                        " WHERE state = 'pending')"
                    ).fetchone()
            except psycopg.OperationalError:
                continue
            assert row is not None
            state = (count, *row)
            if count != last_count:
                last_count, last_change = count, _now()
            held = self.sample_ingest(ph).get("placewatch_ingest_pending_messages", 1)
            if stored_at is None and (
                count >= accepted or (_now() - last_change > 20 and held == 0)
            ):
                stored_at = _now() - started
            if stored_at is not None and evaluated_at is None and row[0] == 0:
                evaluated_at = _now() - started
            if evaluated_at is not None and row[1] == 0 and row[2] == 0:
                delivered_at = _now() - started
                break
        if delivered_at is None:
            ph.problems.append(
                f"not drained within {self.args.timeout:g} s (readings, inbox, outbox, "
                f"pending deliveries): {state}"
            )
        return {
            "seconds_to_stored": _r(stored_at),
            "seconds_to_evaluated": _r(evaluated_at),
            "seconds_to_delivered": _r(delivered_at),
        }

    # -- accounting -----------------------------------------------------------------------------

    def account(self, ph: Phase, pub: dict[str, Any]) -> dict[str, Any]:
        sent: dict[tuple[str, str, datetime], list[Any]] = {}
        for rec in pub["records"]:
            sent[(rec[0], rec[1], datetime.fromisoformat(rec[2]))] = rec
        accepted = {k for k, rec in sent.items() if rec[4] is not None}
        stored: set[tuple[str, str, datetime]] = set()
        rows = 0
        flood: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
        with psycopg.connect(ph.url, autocommit=True) as conn:
            for kind in KINDS:
                for dev, t in conn.execute(
                    sql.SQL("SELECT device_id, time FROM {} WHERE council_id = %s").format(
                        sql.Identifier(kind.value)
                    ),
                    (COUNCIL,),
                ):
                    rows += 1
                    stored.add((kind.value, dev, t))
            for dev, t, level in conn.execute(
                "SELECT device_id, time, level_m FROM flood_level WHERE council_id = %s"
                " ORDER BY device_id, time",
                (COUNCIL,),
            ):
                flood[dev].append((t, float(level)))
            dead = Counter(
                str(r)
                for (r,) in conn.execute(
                    "SELECT reason FROM dead_letters WHERE topic LIKE %s", (ph.prefix + "/%",)
                )
            )
            alerts = conn.execute(
                "SELECT alert_id, subject_id, opened_at, resolved_at, state, rule_id FROM alerts"
                " ORDER BY alert_id"
            ).fetchall()
            deliveries: dict[str, int] = dict(
                conn.execute(
                    "SELECT state, count(*) FROM webhook_deliveries WHERE endpoint_id = %s"
                    " GROUP BY state",
                    (HOOK,),
                ).fetchall()
            )
            attempts = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE a.status IS NULL OR a.status >= 300),"
                " coalesce(max(a.attempt), 0) FROM webhook_attempts a"
                " JOIN webhook_deliveries d USING (delivery_id) WHERE d.endpoint_id = %s",
                (HOOK,),
            ).fetchone() or (0, 0, 0)
            events = Counter(
                str(e) for (e,) in conn.execute("SELECT event FROM alert_events").fetchall()
            )
        lost = accepted - stored
        ingest_dups = sum(
            int(m.get("placewatch_ingest_duplicates_total", 0)) for m in ph.ingest_metrics.values()
        )
        readings = {
            "published": len(sent),
            "accepted_by_broker": len(accepted),
            "stored_rows": rows,
            "stored_distinct": len(stored),
            "duplicate_rows": rows - len(stored),
            "lost": len(lost),
            "lost_examples": [[k[0], k[1], k[2].isoformat()] for k in sorted(lost)[:5]],
            "stored_never_published": len(stored - set(sent)),
            "stored_though_unacknowledged": len((set(sent) - accepted) & stored),
            "dead_letters": sum(dead.values()),
            "dead_letters_by_reason": dict(dead),
            "redelivered_duplicates_absorbed_at_least": ingest_dups,
        }
        lost_keys = lost
        # Alerts: what the stored gauge readings imply, walked in event time.
        expected: list[tuple[str, datetime, datetime | None]] = []
        for dev, series in flood.items():
            open_at: datetime | None = None
            for t, level in series:
                if open_at is None and level > LEVEL_ABOVE:
                    open_at = t
                elif open_at is not None and level <= LEVEL_CLEAR:
                    expected.append((dev, open_at, t))
                    open_at = None
            if open_at is not None:
                expected.append((dev, open_at, None))
        want = {(d, o): r for d, o, r in expected}
        got: dict[tuple[str, datetime], list[tuple[Any, ...]]] = defaultdict(list)
        for a in alerts:
            got[(a[1], a[2])].append(a)
        examples: list[str] = []
        missing = [k for k in want if k not in got]
        twice = [k for k, v in got.items() if len(v) > 1]
        unexpected = [k for k in got if k not in want]
        wrong = [k for k, v in got.items() if k in want and any(a[3] != want[k] for a in v)]
        for label, keys in (("missing", missing), ("twice", twice), ("unexpected", unexpected)):
            examples += [f"{label} {d} {o.isoformat()}" for d, o in keys[:2]]
        examples += [f"wrong resolution {d} {o.isoformat()}" for d, o in wrong[:2]]
        alerts_fig = {
            "expected": len(want),
            "opened": len(alerts),
            "missing": len(missing),
            "opened_twice": len(twice),
            "unexpected": len(unexpected),
            "wrong_resolution": len(wrong),
            "still_open_at_end": sum(1 for a in alerts if a[4] != "resolved"),
            "alert_events": dict(events),
            "examples": examples,
        }
        # Webhooks: one opened event per alert, one resolved event per resolved alert.
        want_events = {(a[0], "alert.opened") for a in alerts}
        want_events |= {(a[0], "alert.resolved") for a in alerts if a[4] == "resolved"}
        arrivals = ph.receiver.snapshot()
        ids_per_event: dict[tuple[int, str], set[str]] = defaultdict(set)
        for arr in arrivals:
            ids_per_event[(arr.alert_id, arr.type)].add(arr.webhook_id)
        distinct_ids = {arr.webhook_id for arr in arrivals}
        webhooks = {
            "expected_events": len(want_events),
            "received_requests": len(arrivals),
            "distinct_webhook_ids": len(distinct_ids),
            "redeliveries_same_id": len(arrivals) - len(distinct_ids),
            "events_received": len(set(ids_per_event) & want_events),
            "events_missing": len(want_events - set(ids_per_event)),
            "unexpected_events": len(set(ids_per_event) - want_events),
            "events_under_several_ids": sum(1 for v in ids_per_event.values() if len(v) > 1),
            "deliveries_by_state": {str(k): int(v) for k, v in deliveries.items()},
            "attempts": int(attempts[0]),
            "failed_attempts": int(attempts[1]),
            "most_attempts_for_one_delivery": int(attempts[2]),
            "signature_failures": ph.receiver.signature_failures,
            "bad_requests": ph.receiver.bad_requests,
            "truncated_requests": ph.receiver.truncated_requests,
            "requests_cut_by_receiver_going_down": ph.receiver.cut_requests,
        }
        return {
            "readings": readings,
            "alerts": alerts_fig,
            "webhooks": webhooks,
            "_lost_keys": [[k[0], k[1], k[2].isoformat()] for k in sorted(lost_keys)],
        }

    def crash_losses(self, ph: Phase, pub: dict[str, Any], acct: dict[str, Any]) -> dict[str, Any]:
        """Per broker crash: how long since its last snapshot, how many messages the broker had
        acknowledged in that window (what it could lose), and how many were lost."""
        ack_time = {(r[0], r[1], r[2]): r[4] for r in pub["records"]}
        lost_times = sorted(ack_time[tuple(k)] for k in acct.pop("_lost_keys"))
        acks = sorted(r[4] for r in pub["records"] if r[4] is not None)
        per: list[dict[str, Any]] = []
        prev_kill = 0.0
        for t in ph.trials:
            kill = t["killed_at"]
            snap = t.get("last_snapshot")
            snap_t = datetime.fromisoformat(snap).replace(tzinfo=UTC).timestamp() if snap else None
            lost_here = sum(1 for x in lost_times if prev_kill < x <= kill)
            row: dict[str, Any] = {
                "trial": t["trial"],
                "seconds_since_snapshot": None if snap_t is None else round(kill - snap_t, 1),
                "lost": lost_here,
            }
            if snap_t is not None:
                # The log has whole seconds: the snapshot began within [snap_t, snap_t + 1).
                row["acked_since_snapshot_at_most"] = sum(1 for a in acks if snap_t <= a <= kill)
                row["acked_since_snapshot_at_least"] = sum(
                    1 for a in acks if snap_t + 1 <= a <= kill
                )
            if "ingest_killed_at" in t:
                # Queued in the broker only (ingest was down): accepted while ingest was down.
                down = t["ingest_killed_at"]
                row["ingest_down_s"] = t["ingest_down_before_crash_s"]
                row["acked_while_ingest_down"] = sum(1 for a in acks if down <= a <= kill)
                if snap_t is not None:
                    row["acked_while_ingest_down_after_snapshot_at_least"] = sum(
                        1 for a in acks if max(down, snap_t + 1) <= a <= kill
                    )
            per.append(row)
            prev_kill = kill
        return {
            "crashes": len(per),
            "lost_total": len(lost_times),
            "lost_after_last_crash": sum(1 for x in lost_times if x > prev_kill),
            "per_crash": per,
        }

    def scan_logs(self, ph: Phase) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for proc in ph.services():
            path = proc._log_path()
            text = path.read_text(errors="replace") if path.exists() else ""
            lines = [ln for ln in text.splitlines() if " ERROR " in ln or " WARNING " in ln]
            kinds: Counter[str] = Counter()
            first: dict[str, str] = {}
            for ln in lines:
                # Group by the message with digits removed (times, ids, counts).
                key = re.sub(r"\d+", "#", ln.split(" ", 3)[-1])[:140]
                kinds[key] += 1
                first.setdefault(key, ln[:400])
            out[proc.command[0]] = {
                "warning_or_error_lines": len(lines),
                "tracebacks": text.count("Traceback"),
                "top": [{"count": n, "example": first[k]} for k, n in kinds.most_common(6)],
            }
        if ph.component in ("disk", "timeout", "postgres") and self.cluster is not None:
            with self.cluster.log.open("rb") as f:
                f.seek(ph.pg_log_offset)
                text = f.read().decode(errors="replace")
            hits = [ln for ln in text.splitlines() if any(p in ln for p in PG_ERROR_PATTERNS)]
            grouped: Counter[str] = Counter(
                re.sub(r"\d+", "#", ln.split("] ", 1)[-1])[:140] for ln in hits
            )
            out["postgresql_server_log"] = [
                {"count": n, "line": k} for k, n in grouped.most_common(8)
            ]
        return out

    # -- output ---------------------------------------------------------------------------------

    def print_phase(self, out: dict[str, Any]) -> None:
        r, a, w = (out["accounting"][k] for k in ("readings", "alerts", "webhooks"))
        print(
            f"  {out['component']}: readings published {r['published']:,}, accepted "
            f"{r['accepted_by_broker']:,}, stored {r['stored_distinct']:,} "
            f"(rows {r['stored_rows']:,}),"
            f" lost {r['lost']}, duplicate rows {r['duplicate_rows']}, dead letters "
            f"{r['dead_letters']}; alerts expected {a['expected']} opened {a['opened']} (missing "
            f"{a['missing']}, twice {a['opened_twice']}, unexpected {a['unexpected']}); webhook "
            f"events expected {w['expected_events']} received {w['events_received']} (missing "
            f"{w['events_missing']}), ids {w['distinct_webhook_ids']}, redeliveries "
            f"{w['redeliveries_same_id']}; drain {out['drain']}",
            flush=True,
        )
        if "broker_crash" in out:
            b = out["broker_crash"]
            print(f"  broker crashes: {b['crashes']}, readings lost {b['lost_total']}", flush=True)
        for p in out["problems"]:
            print(f"  PROBLEM: {p}", flush=True)
        for f in out["findings"]:
            print(f"  finding: {f}", flush=True)

    def run(self, command: str) -> int:
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        machine = host_info()
        print(f"command: {command}")
        print(f"seed: {self.args.seed}")
        print(
            f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['ram_gib']} GiB "
            f"RAM, load {machine['loadavg_at_start']}; Python {machine['python']}, "
            f"{machine['mosquitto']}, placewatch {machine['git_commit']}",
            flush=True,
        )
        setup = self.setup()
        print(
            f"         {setup['postgresql']} (private cluster, tmpfs: {self.mounted})", flush=True
        )
        phases = []
        for component in self.args.only:
            if component == "disk" and not self.mounted:
                phases.append({"component": "disk", "skipped": "mount of a tmpfs failed"})
                print("== disk: skipped (cannot mount a tmpfs here)", flush=True)
                continue
            phases.append(self.run_phase(component))
        out = {
            "benchmark": "chaos",
            "started_at": started_at,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "seed": self.args.seed,
            "machine": machine,
            "setup": setup,
            "parameters": {
                k: v for k, v in vars(self.args).items() if k not in ("output", "keep_workdir")
            },
            "phases": phases,
        }
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(json.dumps(out, indent=1, default=str) + "\n")
        print()
        print(summary_table(phases))
        shown = self.output.relative_to(ROOT) if self.output.is_relative_to(ROOT) else self.output
        print(f"results: {shown}")
        failed = [p["component"] for p in phases if p.get("problems")]
        if failed:
            print(f"PROBLEMS in: {', '.join(failed)}")
        return 1 if failed else 0


def summary_table(phases: Sequence[dict[str, Any]]) -> str:
    head = (
        "component", "trials", "published", "accepted", "stored", "lost", "dup rows",
        "alerts exp/opened", "webhook events exp/recv", "ids", "redeliv", "recovery s (max)",
    )  # fmt: skip
    rows = [head]
    for p in phases:
        if "skipped" in p:
            rows.append((p["component"], "skipped", p["skipped"], *[""] * (len(head) - 3)))
            continue
        r, a, w = (p["accounting"][k] for k in ("readings", "alerts", "webhooks"))
        rec = [
            v
            for t in p["trial_log"]
            for k, v in t.items()
            if k
            in (
                "restart_to_ready_s",
                "ingest_storing_again_s",
                "first_webhook_after_back_s",
            )
            and isinstance(v, int | float)
        ]
        rows.append(
            (
                p["component"],
                str(p["trials"]),
                f"{r['published']:,}",
                f"{r['accepted_by_broker']:,}",
                f"{r['stored_distinct']:,}",
                str(r["lost"]),
                str(r["duplicate_rows"]),
                f"{a['expected']}/{a['opened']}",
                f"{w['expected_events']}/{w['events_received']}",
                str(w["distinct_webhook_ids"]),
                str(w["redeliveries_same_id"]),
                f"{max(rec):.1f}" if rec else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(wd) for c, wd in zip(row, widths, strict=True)) for row in rows
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="Fault suite: kills and outages under load, with exact accounting.",
    )
    p.add_argument("--trials", type=int, default=20, help="faults per component (20)")
    p.add_argument(
        "--only",
        default=",".join(COMPONENTS),
        help=f"comma-separated components (default all: {','.join(COMPONENTS)})",
    )
    p.add_argument(
        "--broker-crashes",
        type=int,
        default=None,
        help="kill -9 trials of the broker-crash component (default: half of --trials, ≥ 2)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--rate", type=float, default=500, help="published msg/s (500)")
    p.add_argument("--per-kind", type=int, default=25, help="devices of each kind (25)")
    p.add_argument("--crossing-gauges", type=int, default=20, help="gauges crossing the rule (20)")
    p.add_argument("--cycle", type=float, default=10, help="their square wave's period, s (10)")
    p.add_argument("--gap-min", type=float, default=2, help="shortest time between faults, s (2)")
    p.add_argument("--gap-max", type=float, default=5, help="longest time between faults, s (5)")
    p.add_argument("--warmup", type=float, default=3, help="publishing before the first fault (3)")
    p.add_argument("--tail", type=float, default=3, help="publishing after the last fault, s (3)")
    p.add_argument(
        "--receiver-outage",
        type=float,
        default=None,
        help="receiver component: one long outage after the short ones, s (150 at 20 trials, "
        "scaled with --trials; 0: none)",
    )
    p.add_argument("--timeout", type=float, default=300, help="per phase drain limit, s (300)")
    p.add_argument("--output", default=None, help="results file (default bench/results/...)")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs and data")
    args = p.parse_args(argv)
    args.only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in args.only if c not in COMPONENTS]
    if unknown:
        p.error(f"unknown components {unknown}; choose from {', '.join(COMPONENTS)}")
    if args.trials < 1 or args.rate <= 0 or args.gap_min <= 0 or args.gap_max < args.gap_min:
        p.error("--trials ≥ 1, --rate > 0, 0 < --gap-min ≤ --gap-max")
    if args.receiver_outage is None:
        args.receiver_outage = 150 * min(1.0, args.trials / 20)
    if args.broker_crashes is None:
        args.broker_crashes = max(2, args.trials // 2)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**31)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench("bench.chaos", ChaosBench(parse_args(argv)), argv)


if __name__ == "__main__":
    sys.exit(main())
