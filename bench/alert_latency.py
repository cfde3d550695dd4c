"""Alert latency benchmark: from a reading's commit to the commit of the alert it raises, at half
the maximum ingest rate measured in the same run.

Run from the repository root::

    .venv/bin/python -m bench.alert_latency [--seconds 60] [--workers 1] [--messages 60000]
    .venv/bin/python -m bench.alert_latency --hanging-endpoint

One private Mosquitto and one fresh database (migrated, 2,000 simulated devices registered) serve
both phases; the helpers are those of ``bench.drain``.

1. **Maximum ingest rate**: ingest alone drains a backlog of ``--messages`` readings, exactly as
   one placewatch run of ``bench.drain`` (rules inbox on, as in production). Its steady rate
   (10-90 % done) is R_max.
2. **Live phase**: the tables are emptied, then ingest and ``--workers`` rules workers run with one
   threshold rule (flood gauges' ``level_m`` above 1.0, cleared at or below 0.8, no hold times)
   while one publisher process sends mixed traffic from the whole fleet at R_max x
   ``--fraction`` for ``--seconds``, every reading stamped with the time it is published.
   ``--crossing-gauges`` gauges follow a square wave (half of every ``--cycle`` above, half
   below), so alerts open and clear all along; the other gauges stay below 0.8.
   **Delivery** (unless ``--no-delivery``): one ``placewatch notify`` replica runs beside them,
   and a teams file applied for the bench council routes the rule's alerts to one team whose
   webhook endpoint is a receiver inside this process (``bench.webhook_receiver``): it checks
   every request's Standard Webhooks signature with the ``standardwebhooks`` library, answers
   204 at once and notes, per webhook-id, ``time.time()`` when the body was read and the event
   (type, alert id, sequence). With ``--hanging-endpoint`` a second team, routed the same
   alerts, has an endpoint that accepts connections and never answers; the dispatcher runs with
   ``PLACEWATCH_NOTIFY_TIMEOUT_S`` = ``--notify-timeout`` (10).
3. Once everything is stored and the rules inbox is empty, per alert:
   commit -> alert = ``alerts.created_at - alerts.trigger_committed_at`` (both clock_timestamp(),
   just before each commit) and publish -> alert = ``created_at - opened_at`` (the triggering
   reading's event time, i.e. its publish time). The alerts are checked against the transitions
   the publisher generated: each expected alert opened exactly once, at the right reading.
4. Once every alert event is fanned out and the receiver's deliveries are settled, per event
   received (opened and resolved): commit -> webhook received = receive time -
   ``webhook_deliveries.event_committed_at`` (the outbox row's clock_timestamp(), in the alert
   change's transaction), and publish -> webhook received = receive time - ``alerts.opened_at``
   (opened events) or ``resolved_at`` (resolved events: the clearing reading's publish time).
   Checked: every event fanned out to the receiver's endpoint and delivered, each webhook-id
   received exactly once with the event its delivery holds, every signature verified.

Results go to stdout and to ``bench/results/alert-latency-<timestamp>.json``; everything started is
stopped and the database dropped, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import resource
import secrets
import select
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

from bench import drain
from bench.drain import (
    COUNCIL,
    RESULTS,
    ROOT,
    BenchError,
    CpuMeter,
    DrainBench,
    Progress,
    cpu_busy_seconds,
    machine_info,
    metric_sums,
    process_cpu_seconds,
    run_bench,
    runqueue_wait_seconds,
)
from bench.webhook_receiver import HangingReceiver, Received, TimingReceiver
from notify.signing import new_secret
from notify.targets import TargetPolicy
from placewatch.kinds import KINDS, Kind
from placewatch.settings import Settings
from simulators.basic import ReadingGenerator, fleet
from simulators.wire import WirePublisher
from storage.registry import DeviceSpec
from teams.config import TeamsFile, apply_teams
from tests.support.ingest import IngestProcess
from tests.support.postgres import server_url
from tests.support.traffic import dead_letters, distinct_readings, stored_readings

RULE_ID = "bench-flood-high"
LEVEL_ABOVE = 1.0
LEVEL_CLEAR = 0.8


def threshold_rule_yaml(rule_id: str) -> str:
    """One threshold rule on every gauge (also the fault suite's): above LEVEL_ABOVE opens, at
    or below LEVEL_CLEAR clears, at once."""
    return f"""\
rules:
  - id: {rule_id}
    kind: threshold
    severity: warning
    select: {{kind: flood_level}}
    field: level_m
    above: {LEVEL_ABOVE}
    clear: {LEVEL_CLEAR}
    clear_for: 0s
"""


RULES_YAML = threshold_rule_yaml(RULE_ID)
LIVE_PREFIX = "bench/live"
LIVE_CLIENT_ID = "bench-alert-ingest"
PUBLISHER_CLIENT_ID = "bench-alert-publisher"
SEED = 20251123
WINDOW_S = 10.0
LAG_METRIC = "placewatch_rules_evaluation_lag_seconds"
INGEST_METRICS = (
    "placewatch_ingest_received_total",
    "placewatch_ingest_stored_total",
    "placewatch_ingest_rejected_total",
    "placewatch_ingest_duplicates_total",
    "placewatch_ingest_db_errors_total",
    "placewatch_ingest_acked_total",
    "placewatch_ingest_batch_size_sum",
    "placewatch_ingest_batch_size_count",
)
WORKER_METRICS = (
    "placewatch_rules_readings_total",
    "placewatch_rules_alerts_opened_total",
    "placewatch_rules_alerts_resolved_total",
    "placewatch_rules_errors_total",
    "placewatch_rules_db_errors_total",
    "placewatch_rules_too_late_total",
    f"{LAG_METRIC}_sum",
    f"{LAG_METRIC}_count",
)
# Delivery: the team that receives the rule's alerts, and the one whose endpoint hangs.
RECEIVER_TEAM = "bench-flood-ops"
RECEIVER_HOOK = "bench-receiver"
HANGING_TEAM = "bench-hanging-ops"
HANGING_HOOK = "bench-hanging"
# The endpoints' secret reaches apply_teams through secret_env, as in a deployment; the
# services' environments drop PLACEWATCH_* variables of this process, so it goes no further.
SECRET_ENV = "PLACEWATCH_BENCH_WEBHOOK_SECRET"
NOTIFY_CLIENT_ID = "bench-notify"
COMMIT_TO_DELIVERY_METRIC = "placewatch_notify_commit_to_delivery_seconds"
NOTIFY_METRICS = (
    "placewatch_notify_events_total",
    "placewatch_notify_events_unrouted_total",
    "placewatch_notify_attempts_total",
    "placewatch_notify_delivered_total",
    "placewatch_notify_dead_total",
    "placewatch_notify_db_errors_total",
    "placewatch_notify_errors_total",
    f"{COMMIT_TO_DELIVERY_METRIC}_sum",
    f"{COMMIT_TO_DELIVERY_METRIC}_count",
)


# -- the publisher (a child process, so that its pacing has a GIL of its own) --------------------


def mixed_order(devices: list[DeviceSpec]) -> list[DeviceSpec]:
    """The fleet interleaved by kind (bin, air, gauge, home, bin, ...), as a fleet reports."""
    by_kind: dict[Kind, list[DeviceSpec]] = defaultdict(list)
    for d in devices:
        by_kind[d.kind].append(d)
    longest = max(len(v) for v in by_kind.values())
    return [by_kind[k][i] for i in range(longest) for k in KINDS if i < len(by_kind[k])]


def publisher_main(spec_path: str) -> int:
    """Publish ``rate`` msg/s for ``seconds``, paced against the monotonic clock; every reading
    is stamped when it is published. Writes what it sent and the rule transitions that traffic
    implies to ``spec["result"]``."""
    spec = json.loads(Path(spec_path).read_text())
    devices = fleet(spec["council"], spec["per_kind"])
    order = mixed_order(devices)
    gauges = [d for d in devices if d.kind is Kind.FLOOD_LEVEL]
    cycle, crossing = float(spec["cycle_s"]), int(spec["crossing_gauges"])
    # Crossing gauge k stays low until k/crossing of a cycle into the phase, then spends half of
    # every cycle above the threshold, half below: alerts open at an even pace from the start.
    offset = {g.device_id: k * cycle / crossing for k, g in enumerate(gauges[:crossing])}
    rng = random.Random(SEED)
    gen = ReadingGenerator(devices, spec["prefix"], seed=SEED)  # clock: now
    rate, total = float(spec["rate"]), int(spec["messages"])
    hard_stop = float(spec["seconds"]) * 2 + 30
    active: dict[str, str | None] = {g.device_id: None for g in gauges}  # open since (iso)
    last_time: dict[str, datetime] = {}
    expected: list[list[str | None]] = []
    open_index: dict[str, int] = {}
    kinds: Counter[str] = Counter()
    above = 0
    behind_max = 0.0
    behind_late = 0  # messages sent more than 50 ms after their slot
    # The simulator's lean publisher: paho costs ≈ 140 µs of CPU per publish here, CPU that
    # ingest, the workers and PostgreSQL share with the harness. Each publish is sent at once.
    pub = WirePublisher(spec["host"], spec["port"], PUBLISHER_CLIENT_ID, flush_bytes=0)
    print("started", flush=True)
    t0 = time.monotonic()
    wall0 = time.time()
    sent = 0
    try:
        while sent < total:
            now = time.monotonic()
            if now - t0 > hard_stop:
                break
            due = t0 + sent / rate
            if due > now + 0.001:
                time.sleep(due - now)
            else:
                behind = now - due
                behind_max = max(behind_max, behind)
                behind_late += behind > 0.05
            device = order[sent % len(order)]
            if device.kind is Kind.FLOOD_LEVEL:
                at = datetime.now(UTC)
                prev = last_time.get(device.device_id)
                if prev is not None and at <= prev:
                    at = prev + timedelta(microseconds=1)
                last_time[device.device_id] = at
                dev_id = device.device_id
                if dev_id in offset:
                    since = at.timestamp() - wall0 - offset[dev_id]
                    high = since >= 0 and since % cycle < cycle / 2
                    level = rng.uniform(1.1, 1.4) if high else rng.uniform(0.3, 0.7)
                else:
                    level = rng.uniform(0.3, 0.75)
                level = round(level, 3)
                iso = at.isoformat()
                if active[dev_id] is None and level > LEVEL_ABOVE:
                    active[dev_id] = iso
                    open_index[dev_id] = len(expected)
                    expected.append([dev_id, iso, None])
                elif active[dev_id] is not None and level <= LEVEL_CLEAR:
                    active[dev_id] = None
                    expected[open_index[dev_id]][2] = iso
                above += level > LEVEL_ABOVE
                body = {"level_m": level, "battery_pct": 97.0, "time": iso}
                topic = f"{spec['prefix']}/{device.council_id}/flood_level/{dev_id}"
                payload = json.dumps(body, separators=(",", ":")).encode()
            else:
                topic, payload = gen.next_for(device)
            pub.publish(topic, payload)  # waits while the broker's window is full
            kinds[device.kind.value] += 1
            sent += 1
        elapsed = time.monotonic() - t0
        acked = pub.wait_acked(timeout=60)
    finally:
        pub.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "sent": sent,
        "planned": total,
        "target_rate": rate,
        "seconds": round(elapsed, 3),
        "achieved_rate": round(sent / elapsed, 1) if elapsed > 0 else None,
        "first_publish_at": datetime.fromtimestamp(wall0, UTC).isoformat(),
        "all_acked": acked,
        "behind_schedule_max_s": round(behind_max, 4),
        "sent_over_50ms_late": behind_late,
        "broker_receive_maximum": pub.window,
        "refused_by_broker": pub.refused,
        "by_kind": dict(kinds),
        "flood_readings_above": above,
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "expected": expected,
    }
    Path(spec["result"]).write_text(json.dumps(result))
    return 0 if sent == total and acked and not pub.refused else 1


# -- figures ---------------------------------------------------------------------------------------


def stats_ms(values: Sequence[float]) -> dict[str, Any]:
    """count, mean, min, p50, p95, p99, max in milliseconds; percentiles by nearest rank."""
    if not values:
        return {"count": 0}
    s = sorted(values)

    def rank(q: float) -> float:
        return s[max(0, math.ceil(q * len(s)) - 1)]

    out: dict[str, Any] = {"count": len(s)}
    for name, v in (
        ("mean", statistics.fmean(s)),
        ("min", s[0]),
        ("p50", rank(0.50)),
        ("p95", rank(0.95)),
        ("p99", rank(0.99)),
        ("max", s[-1]),
    ):
        out[name] = round(1000 * v, 1)
    return out


def histogram(texts: Sequence[str], name: str) -> dict[str, float]:
    """Cumulative bucket counts of a Prometheus histogram, summed over several /metrics pages."""
    buckets: dict[str, float] = defaultdict(float)
    prefix = f"{name}_bucket{{"
    for text in texts:
        for line in text.splitlines():
            if line.startswith(prefix) and 'le="' in line:
                le = line.split('le="', 1)[1].split('"', 1)[0]
                buckets[le] += float(line.rsplit(" ", 1)[1])
    return dict(sorted(buckets.items(), key=lambda kv: float(kv[0])))


def bucket_quantile(buckets: dict[str, float], q: float) -> str | None:
    """The upper bound of the bucket holding quantile q (a histogram only bounds it)."""
    total = buckets.get("+Inf", 0.0)
    if not total:
        return None
    for le, cum in buckets.items():
        if cum >= q * total:
            return f"<= {le} s"
    return None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class Backends:
    """CPU-seconds of the PostgreSQL backends serving each service: a service's TCP connections
    to the server are matched by client port to ``pg_stat_activity``. Refreshed at every sample,
    so connections opened later count too (from zero); a backend that exits loses its last
    interval. Also the time each service and its backends waited for a CPU (run queue)."""

    def __init__(self, pg_port: int, services: dict[str, list[int]]) -> None:
        self.pg_port = pg_port
        self.services = services
        self.role: dict[int, str] = {}
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.wait_first: dict[int, float] = {}
        self.wait_last: dict[int, float] = {}
        self.wait_role = {pid: role for role, pids in services.items() for pid in pids}

    def sample(self, watch: psycopg.Connection[tuple[Any, ...]], baseline: bool = False) -> None:
        ports: dict[int, str] = {}
        for role, pids in self.services.items():
            for pid in pids:
                try:
                    conns = psutil.Process(pid).net_connections(kind="tcp")
                except psutil.Error:
                    continue
                for c in conns:
                    if c.raddr and c.raddr.port == self.pg_port:
                        ports[c.laddr.port] = role
        rows = watch.execute(
            "SELECT pid, client_port FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchall()
        for pid, port in rows:
            owner = ports.get(port)
            if owner is None:
                continue
            self.role[pid] = owner
            self.wait_role[pid] = owner
            cpu = process_cpu_seconds(pid)
            self.first.setdefault(pid, cpu if baseline else 0.0)
            self.last[pid] = cpu
        for pid in self.wait_role:
            wait = runqueue_wait_seconds(pid)
            self.wait_first.setdefault(pid, wait if baseline else 0.0)
            self.wait_last[pid] = max(wait, self.wait_last.get(pid, 0.0))

    def waits(self) -> dict[str, float]:
        """Run-queue wait of each service and its backends since the baseline, seconds."""
        out = dict.fromkeys(self.services, 0.0)
        for pid, last in self.wait_last.items():
            out[self.wait_role[pid]] += last - self.wait_first[pid]
        return {role: round(v, 3) for role, v in out.items()}

    def totals(self) -> dict[str, float]:
        out = dict.fromkeys(self.services, 0.0)
        for pid, last in self.last.items():
            out[self.role[pid]] += last - self.first[pid]
        return {role: round(v, 2) for role, v in out.items()}


def window_table(
    trace: list[dict[str, Any]], windows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per window of the live phase: the alert latency beside what the machine and the worker
    did meanwhile (from the trace's cumulative counters)."""
    out = []
    for w in windows:
        lo, hi = w["from_s"], w["from_s"] + WINDOW_S
        inside = [s for s in trace if lo <= s["t"] <= hi]
        before = [s for s in trace if s["t"] <= lo]
        if not inside:
            continue
        a, b = (before[-1] if before else trace[0]), inside[-1]
        dt = b["t"] - a["t"]
        txns = b["worker_txns"] - a["worker_txns"]
        row: dict[str, Any] = {
            "from_s": lo,
            "alerts": w.get("count", 0),
            "commit_to_alert_p50_ms": w.get("p50"),
            "commit_to_alert_p99_ms": w.get("p99"),
            "inbox_rows_max": max(s["inbox_rows"] for s in inside),
        }
        if dt > 0:
            ncpu = len(os.sched_getaffinity(0))
            row |= {
                "machine_busy_pct": round(100 * (b["cpu_machine"] - a["cpu_machine"]) / dt / ncpu),
                "ingest_cpu_pct": round(100 * (b["cpu_ingest"] - a["cpu_ingest"]) / dt),
                "workers_cpu_pct": round(100 * (b["cpu_workers"] - a["cpu_workers"]) / dt),
                "pg_for_workers_cpu_pct": round(
                    100 * (b["cpu_pg_workers"] - a["cpu_pg_workers"]) / dt
                ),
                "workers_runq_wait_pct": round(100 * (b["runq_workers"] - a["runq_workers"]) / dt),
                "worker_txns_per_s": round(txns / dt, 1),
                "readings_per_txn": round((b["evaluated"] - a["evaluated"]) / txns)
                if txns
                else None,
                "ms_per_txn": round(1000 * dt / txns, 1) if txns else None,
                # Less the harness's own count(*) at every sample.
                "inbox_tuples_scanned_per_txn": round(
                    (
                        b["inbox_seq_tuples_read"]
                        - a["inbox_seq_tuples_read"]
                        - sum(s["inbox_rows"] for s in inside)
                    )
                    / txns
                )
                if txns
                else None,
                "inbox_dead_tuples_max": max(s["inbox_dead_tuples"] for s in inside),
                "inbox_autovacuums": b["inbox_autovacuums"] - a["inbox_autovacuums"],
            }
        out.append(row)
    return out


# -- the benchmark -------------------------------------------------------------------------------


class AlertLatencyBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        drain_argv = ["--messages", str(args.messages), "--repeat", "1"]
        drain_argv += ["--per-kind", str(args.per_kind), "--timeout", str(args.timeout)]
        drain_argv += ["--admin-url", args.admin_url, "--timescaledb", args.timescaledb]
        if args.mosquitto_conf:
            drain_argv += ["--mosquitto-conf", args.mosquitto_conf]
        if args.keep_workdir:
            drain_argv.append("--keep-workdir")
        # Broker, database, fleet, backlog, clean-up and the drain itself are bench.drain's.
        self.d = DrainBench(drain.parse_args(drain_argv))
        self.problems = self.d.problems
        self.stamp = datetime.now(UTC).strftime("alert-latency-%Y%m%dT%H%M%SZ")
        self.backends = Backends(0, {})
        self.receiver: TimingReceiver | None = None
        self.hanging: HangingReceiver | None = None
        self.notify: IngestProcess | None = None

    def cleanup(self) -> None:
        try:
            self.d.cleanup()  # the services (the dispatcher too), broker, database, work dir
        finally:
            if self.receiver is not None:
                self.receiver.stop()
            if self.hanging is not None:
                self.hanging.close()

    @property
    def delivery(self) -> bool:
        return not self.args.no_delivery

    # -- phase 1 ---------------------------------------------------------------------------------

    def max_rate(self) -> dict[str, Any]:
        run = self.d.run_placewatch("max")
        print(
            f"R_max: {run['msgs_per_s']:,.0f} msg/s over the whole drain of {self.args.messages:,}"
            f" (steady, 10-90 %: {run['steady_msgs_per_s'] or 0:,.0f} msg/s)",
            flush=True,
        )
        return run

    def reset_tables(self) -> None:
        tables = [sql.Identifier(k.value) for k in KINDS]
        tables += [sql.Identifier(t) for t in ("dead_letters", "rule_inbox", "rule_state")]
        with self.d.connect() as conn:
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(tables)))
            row = conn.execute("SELECT count(*) FROM alerts").fetchone()
            if row and row[0]:
                raise BenchError(f"{row[0]} alerts before the live phase")
            conn.execute("VACUUM ANALYZE devices")
            conn.execute("CHECKPOINT")

    def setup_delivery(self) -> dict[str, Any]:
        """Start the receivers and apply the teams file: one team routed the rule's alerts,
        pointing at the timing receiver; with --hanging-endpoint a second, at the hanging one."""
        secret = new_secret()
        self.receiver = TimingReceiver(secret)
        self.receiver.start()
        route = {"kinds": ["flood_level"], "rules": [RULE_ID]}
        teams: list[dict[str, Any]] = [
            {
                "id": RECEIVER_TEAM,
                "name": "Bench flood operations",
                "routes": [route],
                "webhooks": [
                    {"id": RECEIVER_HOOK, "url": self.receiver.url, "secret_env": SECRET_ENV}
                ],
            }
        ]
        if self.args.hanging_endpoint:
            self.hanging = HangingReceiver()
            teams.append(
                {
                    "id": HANGING_TEAM,
                    "name": "Bench team with a hanging endpoint",
                    "routes": [route],
                    "webhooks": [
                        {"id": HANGING_HOOK, "url": self.hanging.url, "secret_env": SECRET_ENV}
                    ],
                }
            )
        spec = TeamsFile.model_validate({"council": COUNCIL, "teams": teams})
        os.environ[SECRET_ENV] = secret
        try:
            with self.d.connect() as conn:
                # The receivers are on http://127.0.0.1: opted in here and in notify's env.
                applied = apply_teams(conn, spec, TargetPolicy.local())
                endpoints = conn.execute(
                    "SELECT endpoint_id, url, max_concurrency FROM webhook_endpoints"
                    " ORDER BY endpoint_id"
                ).fetchall()
                leftovers = conn.execute(
                    "SELECT (SELECT count(*) FROM alert_outbox),"
                    " (SELECT count(*) FROM webhook_deliveries)"
                ).fetchone()
        finally:
            del os.environ[SECRET_ENV]
        if leftovers and any(leftovers):
            raise BenchError(f"outbox/deliveries not empty before the live phase: {leftovers}")
        return {
            "teams": applied.teams,
            "route": route,
            "endpoints": [
                {"endpoint_id": e, "url": u, "max_concurrency": c} for e, u, c in endpoints
            ],
            "notify_timeout_s": self.args.notify_timeout,
            "hanging_endpoint": self.args.hanging_endpoint,
            "packages": {p: metadata.version(p) for p in ("httpx", "standardwebhooks")},
        }

    # -- phase 2 ---------------------------------------------------------------------------------

    def start_services(self, rules_file: Path) -> tuple[IngestProcess, list[IngestProcess]]:
        assert self.d.db_url is not None and self.d.broker is not None
        ingest = IngestProcess(
            self.d.db_url, self.d.broker.port, LIVE_PREFIX, LIVE_CLIENT_ID, self.d.workdir
        )
        self.d.ingests.append(ingest)
        self.start(ingest)  # subscribed
        workers = []
        for i in range(self.args.workers):
            worker = IngestProcess(
                self.d.db_url,
                self.d.broker.port,
                LIVE_PREFIX,
                f"bench-rules-{i}",
                self.d.workdir,
                command=("rules", "run"),
                extra_env={
                    "PLACEWATCH_RULES_DEFAULTS": "false",
                    "PLACEWATCH_RULES_PATH": str(rules_file),
                }
                | (
                    {"PLACEWATCH_RULES_BATCH": str(self.args.rules_batch)}
                    if self.args.rules_batch
                    else {}
                ),
            )
            self.d.ingests.append(worker)
            self.start(worker)  # database reachable
            workers.append(worker)
        if self.delivery:
            self.notify = IngestProcess(
                self.d.db_url,
                self.d.broker.port,
                "unused",
                NOTIFY_CLIENT_ID,
                self.d.workdir,
                command=("notify",),
                extra_env={
                    "PLACEWATCH_LINK_SECRET": secrets.token_urlsafe(32),
                    "PLACEWATCH_NOTIFY_TIMEOUT_S": f"{self.args.notify_timeout:g}",
                    "PLACEWATCH_NOTIFY_ALLOW_HTTP": "true",
                    "PLACEWATCH_NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8",
                },
            )
            self.d.ingests.append(self.notify)
            self.start(self.notify)  # both loops connected
        return ingest, workers

    def start(self, proc: IngestProcess) -> None:
        try:
            proc.start(wait_ready=True)
        except (RuntimeError, TimeoutError) as exc:
            raise BenchError(str(exc)) from exc

    def run_live(self, rate: float) -> dict[str, Any]:
        assert self.d.broker is not None
        rules_file = self.d.workdir / "rules.yaml"
        rules_file.write_text(RULES_YAML)
        ingest, workers = self.start_services(rules_file)
        n = round(rate * self.args.seconds)
        spec_path = self.d.workdir / "publisher.json"
        result_path = self.d.workdir / "publisher-result.json"
        spec_path.write_text(
            json.dumps(
                {
                    "host": self.d.broker.host,
                    "port": self.d.broker.port,
                    "prefix": LIVE_PREFIX,
                    "council": COUNCIL,
                    "per_kind": self.args.per_kind,
                    "crossing_gauges": self.args.crossing_gauges,
                    "cycle_s": self.args.cycle,
                    "rate": rate,
                    "seconds": self.args.seconds,
                    "messages": n,
                    "result": str(result_path),
                }
            )
        )
        code = "import sys; from bench.alert_latency import publisher_main; "
        code += "sys.exit(publisher_main(sys.argv[1]))"
        with self.d.connect() as watch:
            pg_before = self.pg_activity(watch)
            meter = CpuMeter(self.d.dbname, self.d.broker_pid, {watch.info.backend_pid})
            assert self.d.db_url is not None
            pg_port = int(psycopg.conninfo.conninfo_to_dict(self.d.db_url).get("port") or 5432)
            services = {"ingest": [ingest.pid], "workers": [w.pid for w in workers]}
            if self.notify is not None:
                services["notify"] = [self.notify.pid]
            self.backends = Backends(pg_port, services)
            self.backends.sample(watch, baseline=True)
            cpu0 = {
                "ingest": process_cpu_seconds(ingest.pid),
                "rules workers": sum(process_cpu_seconds(w.pid) for w in workers),
                "notify": process_cpu_seconds(self.notify.pid if self.notify else None),
            }
            log = (self.d.workdir / "publisher.log").open("wb")
            child = subprocess.Popen(
                [sys.executable, "-c", code, str(spec_path)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
            )
            self.d.children.append(child)
            assert child.stdout is not None
            ready, _, _ = select.select([child.stdout], [], [], 60)
            if not ready or child.stdout.readline().strip() != b"started":
                raise BenchError(f"publisher did not start: {self.read_log('publisher.log')}")
            progress = Progress("live", n)
            t0 = time.monotonic()
            deadline = t0 + self.args.seconds * 2 + 120
            trace: list[dict[str, Any]] = []
            last_poll = 0.0
            while child.poll() is None:
                if time.monotonic() > deadline:
                    raise BenchError("publisher still running after its time limit")
                self.check_alive(ingest, workers)
                if time.monotonic() - last_poll >= 1.0:
                    last_poll = time.monotonic()
                    try:
                        s = self.sample(watch, ingest, workers, last_poll - t0)
                    except OSError:
                        continue  # a metrics page did not answer in 2 s: next second
                    trace.append(s)
                    progress.update(
                        int(s["received"]),
                        f"evaluated {s['evaluated']:,} alerts {s['alerts_opened']:,}"
                        f" inbox {s['inbox_rows']:,}"
                        + (
                            f" webhooks {s['webhooks_received']:,}"
                            if "webhooks_received" in s
                            else ""
                        ),
                    )
                    meter.sample_postgres()
                time.sleep(0.1)
            phase_s = time.monotonic() - t0
            cpu = meter.finish(
                phase_s,
                ingest=process_cpu_seconds(ingest.pid) - cpu0["ingest"],
                **{
                    "rules workers": sum(process_cpu_seconds(w.pid) for w in workers)
                    - cpu0["rules workers"]
                },
                **(
                    {
                        "notify": process_cpu_seconds(self.notify.pid) - cpu0["notify"],
                    }
                    if self.notify is not None
                    else {}
                ),
            )
            self.backends.sample(watch)
            cpu |= {f"of which postgres for {k}": v for k, v in self.backends.totals().items()}
            runq = self.backends.waits()
            progress.close()
            if not result_path.exists():
                raise BenchError(
                    f"publisher exited {child.returncode} without a result: "
                    f"{self.read_log('publisher.log')}"
                )
            published: dict[str, Any] = json.loads(result_path.read_text())
            cpu["publisher (own rusage)"] = published["cpu_seconds"]
            if (
                published["sent"] != n
                or not published["all_acked"]
                or published["refused_by_broker"]
            ):
                self.problems.append(
                    f"publisher sent {published['sent']} of {n}, all acknowledged: "
                    f"{published['all_acked']}, refused: {published['refused_by_broker']}"
                )
            catch_up = self.catch_up(watch, ingest, workers, published["sent"], t0, trace)
            if self.notify is not None:
                catch_up |= self.delivery_catch_up(watch, ingest, workers, t0, trace)
            pg_after = self.pg_activity(watch)
        worker_pages = [w.http("/metrics")[1] for w in workers]
        ingest_m = metric_sums(ingest.http("/metrics")[1], *INGEST_METRICS)
        worker_m = metric_sums("\n".join(worker_pages), *WORKER_METRICS)
        lag_buckets = histogram(worker_pages, LAG_METRIC)
        notify: dict[str, Any] = {}
        if self.notify is not None:
            page = self.notify.http("/metrics")[1]
            buckets = histogram([page], COMMIT_TO_DELIVERY_METRIC)
            notify = {
                "metrics": metric_sums(page, *NOTIFY_METRICS),
                "commit_to_delivery_histogram": buckets,
                "commit_to_delivery_p50": bucket_quantile(buckets, 0.5),
                "commit_to_delivery_p99": bucket_quantile(buckets, 0.99),
            }
            started = time.monotonic()
            # Stopping waits for attempts under way (a hanging endpoint's: up to its timeout).
            rc = self.notify.terminate(self.args.notify_timeout + 60)
            notify["stop_seconds"] = round(time.monotonic() - started, 2)
            if rc != 0:
                self.problems.append(f"notify exited {rc}")
        for proc in (*workers, ingest):
            rc = proc.terminate(60)
            if rc != 0:
                self.problems.append(f"{proc.command[0]} {proc.client_id} exited {rc}")
        self.d.end_session(LIVE_CLIENT_ID)
        return {
            "notify": notify,
            "rate_target": round(rate, 1),
            "messages_planned": n,
            "publisher": {k: v for k, v in published.items() if k != "expected"},
            "phase_seconds": round(phase_s, 2),
            "catch_up": catch_up,
            "ingest_metrics": ingest_m,
            "worker_metrics": worker_m,
            "evaluation_lag_histogram": lag_buckets,
            "evaluation_lag_p50": bucket_quantile(lag_buckets, 0.5),
            "evaluation_lag_p99": bucket_quantile(lag_buckets, 0.99),
            "cpu_seconds": cpu,
            "runqueue_wait_seconds": runq,
            "postgres_activity": {
                k: pg_after[k] - pg_before.get(k, 0)
                for k in pg_after
                if pg_after[k] != pg_before.get(k, 0)
            },
            "trace": trace,
            "expected": published["expected"],
        }

    def read_log(self, name: str) -> str:
        path = self.d.workdir / name
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def check_alive(self, ingest: IngestProcess, workers: list[IngestProcess]) -> None:
        for proc in (ingest, *workers, *([self.notify] if self.notify else [])):
            if not proc.alive():
                raise BenchError(f"{proc.command[0]} {proc.client_id} exited:\n{proc.log_tail()}")

    def sample(
        self,
        watch: psycopg.Connection[tuple[Any, ...]],
        ingest: IngestProcess,
        workers: list[IngestProcess],
        at: float,
    ) -> dict[str, Any]:
        im = metric_sums(ingest.http("/metrics")[1], *INGEST_METRICS)
        wm = metric_sums("\n".join(w.http("/metrics")[1] for w in workers), *WORKER_METRICS)
        row = watch.execute("SELECT count(*) FROM rule_inbox").fetchone()
        # The inbox's table statistics (flushed by the backends about once a second).
        stat = watch.execute(
            """SELECT n_dead_tup, seq_scan, seq_tup_read, autovacuum_count
               FROM pg_stat_user_tables WHERE relname = 'rule_inbox'"""
        ).fetchone() or (0, 0, 0, 0)
        self.backends.sample(watch)
        pg = self.backends.totals()
        runq = self.backends.waits()
        delivery: dict[str, Any] = {}
        if self.notify is not None and self.receiver is not None:
            delivery = {
                "webhooks_received": self.receiver.count(),
                "cpu_notify": round(process_cpu_seconds(self.notify.pid), 2),
                "cpu_pg_notify": pg.get("notify", 0.0),
                "runq_notify": runq.get("notify", 0.0),
            }
        return delivery | {
            "t": round(at, 2),
            "received": int(im["placewatch_ingest_received_total"]),
            "stored": int(im["placewatch_ingest_stored_total"]),
            "evaluated": int(wm["placewatch_rules_readings_total"]),
            "alerts_opened": int(wm["placewatch_rules_alerts_opened_total"]),
            "inbox_rows": int(row[0]) if row else -1,
            # Cumulative CPU-seconds, to tell a slow stretch from a busy machine.
            "cpu_machine": round(cpu_busy_seconds(), 2),
            "cpu_ingest": round(process_cpu_seconds(ingest.pid), 2),
            "cpu_workers": round(sum(process_cpu_seconds(w.pid) for w in workers), 2),
            "cpu_pg_ingest": pg["ingest"],
            "cpu_pg_workers": pg["workers"],
            # Runnable but not running (waiting for a CPU): the process and its backends.
            "runq_ingest": runq["ingest"],
            "runq_workers": runq["workers"],
            "worker_txns": int(wm[f"{LAG_METRIC}_count"]),
            "inbox_dead_tuples": int(stat[0]),
            "inbox_seq_scans": int(stat[1]),
            "inbox_seq_tuples_read": int(stat[2]),
            "inbox_autovacuums": int(stat[3]),
        }

    def catch_up(
        self,
        watch: psycopg.Connection[tuple[Any, ...]],
        ingest: IngestProcess,
        workers: list[IngestProcess],
        sent: int,
        t0: float,
        trace: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """After the last publish: until ingest has stored every message and the workers have
        evaluated every stored reading (inbox empty)."""
        started = time.monotonic()
        deadline = started + self.args.timeout
        stored_at: float | None = None
        last: dict[str, Any] | None = None
        while True:
            self.check_alive(ingest, workers)
            if time.monotonic() > deadline:
                raise BenchError(
                    f"not caught up {self.args.timeout} s after the last publish: {last}\n"
                    f"{ingest.log_tail(10)}"
                )
            try:
                last = s = self.sample(watch, ingest, workers, time.monotonic() - t0)
            except OSError:
                time.sleep(0.2)
                continue
            if stored_at is None and s["stored"] >= sent:
                stored_at = time.monotonic() - started
            if stored_at is not None and s["inbox_rows"] == 0 and s["evaluated"] >= s["stored"]:
                trace.append(s)
                break
            time.sleep(0.1)
        return {
            "seconds_to_all_stored": round(stored_at, 2),
            "seconds_to_all_evaluated": round(time.monotonic() - started, 2),
        }

    def delivery_catch_up(
        self,
        watch: psycopg.Connection[tuple[Any, ...]],
        ingest: IngestProcess,
        workers: list[IngestProcess],
        t0: float,
        trace: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """After the rules have caught up (every alert change committed): until the outbox is
        empty and none of the receiver's deliveries is pending (a hanging endpoint's may be)."""
        assert self.receiver is not None
        started = time.monotonic()
        deadline = started + self.args.timeout
        last: tuple[Any, ...] | None = None
        while True:
            self.check_alive(ingest, workers)
            if time.monotonic() > deadline:
                raise BenchError(
                    f"deliveries not settled {self.args.timeout} s after the rules caught up "
                    f"(outbox, pending, delivered, received): {last}"
                )
            row = watch.execute(
                """SELECT (SELECT count(*) FROM alert_outbox),
                          count(*) FILTER (WHERE state = 'pending'),
                          count(*) FILTER (WHERE state = 'delivered')
                   FROM webhook_deliveries WHERE endpoint_id = %s""",
                (RECEIVER_HOOK,),
            ).fetchone()
            assert row is not None
            last = (*row, self.receiver.count())
            if row[0] == 0 and row[1] == 0:
                break
            time.sleep(0.1)
        with contextlib.suppress(OSError):
            trace.append(self.sample(watch, ingest, workers, time.monotonic() - t0))
        return {"seconds_to_all_delivered": round(time.monotonic() - started, 2)}

    def pg_activity(self, conn: psycopg.Connection[tuple[Any, ...]]) -> dict[str, int]:
        """Checkpoints (whole server) and autovacuum/autoanalyze runs per table (this database),
        to tell latency spikes that coincide with them."""
        out: dict[str, int] = {}
        row = conn.execute(
            "SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter"
        ).fetchone()
        if row:
            out["checkpoints (server)"] = int(row[0]) + int(row[1])
        for relname, vac, ana in conn.execute(
            "SELECT relname, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables"
        ).fetchall():
            out[f"autovacuum {relname}"] = int(vac)
            out[f"autoanalyze {relname}"] = int(ana)
        return out

    # -- phase 3 ---------------------------------------------------------------------------------

    def analyse(self, live: dict[str, Any]) -> dict[str, Any]:
        with self.d.connect() as conn:
            alerts = conn.execute(
                """SELECT subject_id, opened_at, created_at, trigger_committed_at, resolved_at,
                          state, rule_id
                   FROM alerts ORDER BY alert_id"""
            ).fetchall()
            # Outbox rows still there, and those the dispatcher fanned out (and deleted): every
            # event is routed to the receiver's endpoint, so each counts once.
            outbox_opened = conn.execute(
                """SELECT (SELECT count(*) FROM alert_outbox WHERE event = 'opened')
                        + (SELECT count(DISTINCT outbox_id) FROM webhook_deliveries
                           WHERE event = 'opened')"""
            ).fetchone()
            rows = stored_readings(conn, COUNCIL)
            distinct = distinct_readings(conn, COUNCIL)
            dead = dead_letters(conn, LIVE_PREFIX)
        sent = live["publisher"]["sent"]
        if rows != sent or distinct != sent or dead:
            self.problems.append(
                f"live: {rows} readings stored ({distinct} distinct) of {sent} published, "
                f"{len(dead)} dead letters {[x[2:] for x in dead[:3]]}"
            )
        phase_start = _dt(live["publisher"]["first_publish_at"])
        assert phase_start is not None
        commit_to_alert: list[float] = []
        publish_to_alert: list[float] = []
        publish_to_commit: list[float] = []
        windows: dict[int, list[float]] = defaultdict(list)
        no_trigger = 0
        slowest: list[tuple[float, str, float]] = []
        by_device: dict[str, list[float]] = defaultdict(list)
        for subject, opened, created, trigger, _resolved, _state, _rule in alerts:
            publish_to_alert.append((created - opened).total_seconds())
            if trigger is None:
                no_trigger += 1
                continue
            lat = (created - trigger).total_seconds()
            commit_to_alert.append(lat)
            by_device[subject].append(lat)
            publish_to_commit.append((trigger - opened).total_seconds())
            at = (created - phase_start).total_seconds()
            windows[int(at // WINDOW_S)].append(lat)
            slowest.append((lat, subject, round(at, 2)))
        slowest.sort(reverse=True)
        if no_trigger:
            self.problems.append(f"{no_trigger} alerts without trigger_committed_at")
        verification = self.verify(alerts, live["expected"])
        if outbox_opened and int(outbox_opened[0]) != len(alerts):
            self.problems.append(
                f"{outbox_opened[0]} 'opened' outbox rows for {len(alerts)} alerts"
            )
        return {
            "alerts": len(alerts),
            "readings_stored": rows,
            "commit_to_alert_ms": stats_ms(commit_to_alert),
            "publish_to_alert_ms": stats_ms(publish_to_alert),
            "publish_to_commit_ms_triggering_readings": stats_ms(publish_to_commit),
            "by_window": window_table(
                live["trace"],
                [{"from_s": k * WINDOW_S, **stats_ms(v)} for k, v in sorted(windows.items())],
            ),
            "slowest_commit_to_alert": [
                {"ms": round(1000 * lat, 1), "device": dev, "created_s_into_phase": at}
                for lat, dev, at in slowest[:10]
            ],
            # Whether some devices wait longer than others every time (claim fairness).
            "devices_by_mean_commit_to_alert": [
                {"device": dev, "alerts": len(v), "mean_ms": round(1000 * statistics.fmean(v), 1)}
                for dev, v in sorted(by_device.items(), key=lambda kv: -statistics.fmean(kv[1]))[
                    :10
                ]
            ],
            "verification": verification,
        }

    def analyse_delivery(self, live: dict[str, Any]) -> dict[str, Any]:
        """Per alert event received: commit -> webhook received and publish -> webhook received,
        with where the time went; then the checks (every event fanned out and delivered, each
        webhook-id received once with its delivery's event, every signature verified)."""
        assert self.receiver is not None
        with self.d.connect() as conn:
            deliveries = conn.execute(
                """SELECT d.delivery_id, d.webhook_id, d.endpoint_id, d.event, d.alert_id,
                          d.outbox_id, d.state, d.attempts, d.event_committed_at, d.created_at,
                          d.delivered_at, a.opened_at, a.resolved_at,
                          (SELECT t.started_at FROM webhook_attempts t
                           WHERE t.delivery_id = d.delivery_id AND t.status BETWEEN 200 AND 299
                           ORDER BY t.id LIMIT 1) AS ok_started_at,
                          (SELECT count(*) FILTER (WHERE t.status BETWEEN 200 AND 299)
                           FROM webhook_attempts t WHERE t.delivery_id = d.delivery_id)
                          AS ok_attempts
                   FROM webhook_deliveries d JOIN alerts a USING (alert_id)
                   ORDER BY d.delivery_id"""
            ).fetchall()
            attempts = conn.execute(
                """SELECT d.endpoint_id,
                          CASE WHEN t.status BETWEEN 200 AND 299 THEN 'success'
                               WHEN t.status IS NOT NULL THEN 'http_error'
                               WHEN t.error LIKE 'timed out%' THEN 'timeout'
                               ELSE 'error' END,
                          count(*), round(max(t.latency_ms)::numeric, 1)
                   FROM webhook_attempts t JOIN webhook_deliveries d USING (delivery_id)
                   GROUP BY 1, 2 ORDER BY 1, 2"""
            ).fetchall()
            events = dict(
                conn.execute("SELECT event, count(*) FROM alert_events GROUP BY event").fetchall()
            )
            row = conn.execute("SELECT count(*) FROM alert_outbox").fetchone()
            outbox_left = int(row[0]) if row else -1
            endpoints = conn.execute(
                """SELECT endpoint_id, consecutive_failures, circuit_open_until
                   FROM webhook_endpoints ORDER BY endpoint_id"""
            ).fetchall()
            hung = conn.execute(
                """SELECT t.started_at, t.latency_ms, t.status, t.error
                   FROM webhook_attempts t JOIN webhook_deliveries d USING (delivery_id)
                   WHERE d.endpoint_id = %s ORDER BY t.started_at""",
                (HANGING_HOOK,),
            ).fetchall()
        received = self.receiver.received()
        phase_start = _dt(live["publisher"]["first_publish_at"])
        assert phase_start is not None
        mine = [d for d in deliveries if d[2] == RECEIVER_HOOK]
        commit_to_received: dict[str, list[float]] = defaultdict(list)
        publish_to_received: dict[str, list[float]] = defaultdict(list)
        parts: dict[str, list[float]] = defaultdict(list)
        windows: dict[int, list[float]] = defaultdict(list)
        slowest: list[tuple[float, dict[str, Any]]] = []
        by_alert: dict[int, list[Received]] = defaultdict(list)
        spans: list[tuple[float, float, float]] = []  # commit, received, latency
        not_received = wrong_event = not_delivered = not_once = 0
        examples: list[str] = []
        for (
            _id,
            webhook_id,
            _ep,
            event,
            alert_id,
            outbox_id,
            state,
            n_attempts,
            committed,
            fanned,
            delivered,
            opened_at,
            resolved_at,
            ok_started,
            ok_attempts,
        ) in mine:
            if state != "delivered":
                not_delivered += 1
                examples.append(f"{webhook_id} ({event} of alert {alert_id}) is {state}")
            if ok_attempts != 1:
                not_once += 1
                examples.append(f"{webhook_id}: {ok_attempts} successful attempts")
            got = received.get(webhook_id)
            if got is None:
                not_received += 1
                examples.append(f"{webhook_id} ({event} of alert {alert_id}) never received")
                continue
            if (got.type, got.alert_id, got.sequence) != (f"alert.{event}", alert_id, outbox_id):
                wrong_event += 1
                examples.append(
                    f"{webhook_id}: received {got.type} alert {got.alert_id} seq {got.sequence},"
                    f" delivery holds {event} alert {alert_id} seq {outbox_id}"
                )
            by_alert[alert_id].append(got)
            lat = got.received_at - committed.timestamp()
            spans.append((committed.timestamp(), got.received_at, lat))
            commit_to_received["all"].append(lat)
            commit_to_received[event].append(lat)
            happened = {"opened": opened_at, "resolved": resolved_at}.get(event)
            if happened is not None:
                publish_to_received[event].append(got.received_at - happened.timestamp())
            windows[int((committed - phase_start).total_seconds() // WINDOW_S)].append(lat)
            split = {
                "commit_to_fanned_out": (fanned - committed).total_seconds(),
                "fanned_out_to_attempt": (ok_started - fanned).total_seconds()
                if ok_started
                else None,
                "attempt_to_received": got.received_at - ok_started.timestamp()
                if ok_started
                else None,
                "received_to_recorded": delivered.timestamp() - got.received_at
                if delivered
                else None,
            }
            for k, v in split.items():
                if v is not None:
                    parts[k].append(v)
            if delivered is not None:
                parts["commit_to_recorded_db_clock"].append((delivered - committed).total_seconds())
            slowest.append(
                (
                    lat,
                    {
                        "ms": round(1000 * lat, 1),
                        "event": event,
                        "alert_id": alert_id,
                        "attempts": n_attempts,
                        "committed_s_into_phase": round(
                            (committed - phase_start).total_seconds(), 2
                        ),
                        **{
                            f"{k}_ms": round(1000 * v, 1) if v is not None else None
                            for k, v in split.items()
                        },
                    },
                )
            )
        slowest.sort(key=lambda x: -x[0])
        out_of_order = sum(
            1
            for got in by_alert.values()
            if [g.sequence for g in sorted(got, key=lambda g: g.received_at)]
            != sorted(g.sequence for g in got)
        )
        ids = {d[1] for d in mine}
        unknown = [w for w in received if w not in ids]
        event_counts = Counter(d[3] for d in mine)
        unrouted = {
            e: (n, event_counts.get(e, 0)) for e, n in events.items() if event_counts.get(e, 0) != n
        }
        rx = self.receiver.summary()
        checks = {
            "alert_events": events,
            "deliveries_to_receiver": dict(event_counts),
            "outbox_rows_left": outbox_left,
            "events_without_a_delivery_to_receiver": unrouted,
            "not_delivered": not_delivered,
            "not_exactly_one_successful_attempt": not_once,
            "delivered_but_not_received": not_received,
            "received_but_no_such_delivery": len(unknown),
            "received_event_differs_from_delivery": wrong_event,
            "alerts_with_events_received_out_of_order": out_of_order,
            **rx,
            "examples": examples[:10],
        }
        failed = {
            k: v
            for k, v in checks.items()
            if v
            and k
            not in ("alert_events", "deliveries_to_receiver", "requests", "distinct_webhook_ids")
        }
        if failed:
            self.problems.append(f"delivery checks: {failed}")
        hanging: dict[str, Any] | None = None
        if self.hanging is not None:
            theirs = [d for d in deliveries if d[2] == HANGING_HOOK]
            hanging = {
                "deliveries": len(theirs),
                "by_state": dict(Counter(d[6] for d in theirs)),
                "attempts_made": sum(d[7] for d in theirs),
                "connections_accepted": self.hanging.accepted,
                "endpoint_state_at_end": [
                    {"endpoint_id": e, "consecutive_failures": f, "circuit_open_until": c}
                    for e, f, c in endpoints
                    if e == HANGING_HOOK
                ],
            }
            # The good endpoint's events split by whether one of the hanging endpoint's
            # attempts was open (sent, unanswered) at any time between commit and receipt.
            busy = [
                (at.timestamp(), at.timestamp() + ms / 1000) for at, ms, _status, _error in hung
            ]
            beside: list[float] = []
            alone: list[float] = []
            for c0, r1, lat in spans:
                overlaps = any(h0 < r1 and c0 < h1 for h0, h1 in busy)
                (beside if overlaps else alone).append(lat)
            hanging |= {
                "attempts": [
                    {
                        "started_s_into_phase": round(at.timestamp() - phase_start.timestamp(), 2),
                        "latency_ms": round(ms, 1),
                        "status": status,
                        "error": error,
                    }
                    for at, ms, status, error in hung
                ],
                "good_commit_to_received_ms_while_a_hanging_attempt_was_open": stats_ms(beside),
                "good_commit_to_received_ms_while_none_was": stats_ms(alone),
            }
            if any(d[6] == "delivered" for d in theirs):
                self.problems.append("the hanging endpoint has delivered deliveries")
        return {
            "events_received": len(commit_to_received["all"]),
            "commit_to_received_ms": stats_ms(commit_to_received["all"]),
            "commit_to_received_ms_opened": stats_ms(commit_to_received["opened"]),
            "commit_to_received_ms_resolved": stats_ms(commit_to_received["resolved"]),
            "publish_to_received_ms_opened": stats_ms(publish_to_received["opened"]),
            "publish_to_received_ms_resolved": stats_ms(publish_to_received["resolved"]),
            "publish_to_received_ms_all": stats_ms(
                publish_to_received["opened"] + publish_to_received["resolved"]
            ),
            "breakdown_ms": {k: stats_ms(v) for k, v in parts.items()},
            "by_window": [
                {
                    "from_s": k * WINDOW_S,
                    **{x: y for x, y in stats_ms(v).items() if x in ("count", "p50", "p99", "max")},
                }
                for k, v in sorted(windows.items())
            ],
            "slowest_commit_to_received": [x for _, x in slowest[:10]],
            "attempts_by_endpoint": [
                {"endpoint_id": e, "outcome": o, "count": n, "max_latency_ms": float(m)}
                for e, o, n, m in attempts
            ],
            "hanging_endpoint": hanging,
            "checks": checks,
        }

    def verify(
        self, alerts: list[tuple[Any, ...]], expected: list[list[str | None]]
    ) -> dict[str, Any]:
        """Every expected alert opened once, at the expected reading, and cleared at the expected
        reading (or is still open); nothing else opened."""
        want: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
        for dev, opened, resolved in expected:
            assert dev is not None and opened is not None
            o = _dt(opened)
            assert o is not None
            want[dev].append((o, _dt(resolved)))
        got: dict[str, list[tuple[datetime, datetime | None, str]]] = defaultdict(list)
        other_rules = 0
        for subject, opened, _created, _trigger, resolved, state, rule in alerts:
            if rule != RULE_ID:
                other_rules += 1
                continue
            got[subject].append((opened, resolved, state))
        missing = unexpected = twice = wrong_resolution = 0
        examples: list[str] = []
        for dev in sorted(set(want) | set(got)):
            w = sorted(want.get(dev, []), key=lambda x: x[0])
            g = sorted(got.get(dev, []), key=lambda x: x[0])
            opens = Counter(x[0] for x in g)
            twice += sum(c - 1 for c in opens.values() if c > 1)
            w_open = {x[0]: x[1] for x in w}
            g_open = {x[0]: (x[1], x[2]) for x in g}
            for o in w_open.keys() - g_open.keys():
                missing += 1
                examples.append(f"missing {dev} opened {o.isoformat()}")
            for o in g_open.keys() - w_open.keys():
                unexpected += 1
                examples.append(f"unexpected {dev} opened {o.isoformat()}")
            for o in w_open.keys() & g_open.keys():
                got_resolved, state = g_open[o]
                if got_resolved != w_open[o] or (state == "resolved") != (w_open[o] is not None):
                    wrong_resolution += 1
                    examples.append(
                        f"{dev} opened {o.isoformat()}: resolved {got_resolved} ({state}), "
                        f"expected {w_open[o]}"
                    )
        n_expected = sum(len(v) for v in want.values())
        still_open = sum(1 for v in want.values() for _, r in v if r is None)
        if missing or unexpected or twice or wrong_resolution or other_rules:
            self.problems.append(
                f"alerts vs the traffic: {missing} missing, {unexpected} unexpected, {twice} "
                f"opened twice, {wrong_resolution} resolved wrongly, {other_rules} of other "
                f"rules; e.g. {examples[:3]}"
            )
        return {
            "expected_opens": n_expected,
            "expected_still_open_at_end": still_open,
            "opened": sum(len(v) for v in got.values()),
            "missing": missing,
            "unexpected": unexpected,
            "opened_twice": twice,
            "wrong_resolution": wrong_resolution,
            "other_rules": other_rules,
            "examples": examples[:10],
        }

    def scan_logs(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for path in sorted(self.d.workdir.glob("*.log")):
            if path.name.startswith("ingest-bench-ingest-"):
                continue  # the drain's ingest: bench.drain checks its log
            lines = path.read_text(errors="replace").splitlines()
            noisy = [x for x in lines if " WARNING " in x or " ERROR " in x or "Traceback" in x]
            counts[path.name] = len(noisy)
            if noisy:
                self.problems.append(
                    f"{path.name}: {len(noisy)} warning/error lines, e.g. {noisy[:3]}"
                )
        return counts

    # -- the whole benchmark --------------------------------------------------------------------

    def run(self, command: str) -> int:
        RESULTS.mkdir(parents=True, exist_ok=True)
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        machine = machine_info(self.args.admin_url)
        # Uncommitted changes the run used (the working tree, not only the commit).
        git_status = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True
        ).stdout.splitlines()
        print(f"command: {command}")
        print(
            f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
            f"{machine['ram_gib']} GiB RAM, load {machine['loadavg_at_start']}"
        )
        print(f"         {machine['postgresql']}")
        print(f"         {machine['mosquitto']}")
        print(f"         Python {machine['python']}, placewatch {machine['git_commit']}")
        setup = self.d.setup()
        print(
            f"setup: {setup['devices']} devices, storage {setup['storage_flavour']}, "
            f"broker {setup['mosquitto_conf']}",
            flush=True,
        )
        drained = self.max_rate()
        r_max = drained["steady_msgs_per_s"] or drained["msgs_per_s"]
        rate = self.args.rate or r_max * self.args.fraction
        self.reset_tables()
        delivery_setup = self.setup_delivery() if self.delivery else None
        print(
            f"live: {rate:,.0f} msg/s for {self.args.seconds:g} s, {self.args.workers} rules "
            f"worker(s), {self.args.crossing_gauges} gauges crossing {LEVEL_ABOVE} m every "
            f"{self.args.cycle:g} s"
            + (
                f"; notify -> receiver{' + a hanging endpoint' if self.hanging else ''}"
                if self.delivery
                else ""
            ),
            flush=True,
        )
        live = self.run_live(rate)
        figures = self.analyse(live)
        if self.delivery:
            figures["delivery"] = self.analyse_delivery(live)
            for name in ("db_errors", "errors"):
                value = live["notify"]["metrics"][f"placewatch_notify_{name}_total"]
                if value:
                    self.problems.append(f"notify: placewatch_notify_{name}_total = {value}")
        log_lines = self.scan_logs()
        self.d.stop_broker()
        pub = live["publisher"]
        if pub["achieved_rate"] is None or pub["achieved_rate"] < 0.95 * rate:
            self.problems.append(
                f"publisher reached {pub['achieved_rate']} msg/s of the {rate:.0f} asked"
            )
        for name in ("errors", "db_errors", "too_late"):
            value = live["worker_metrics"][f"placewatch_rules_{name}_total"]
            if value:
                self.problems.append(f"rules workers: placewatch_rules_{name}_total = {value}")
        expected = live.pop("expected")
        result = {
            "benchmark": "alert-latency",
            "started_at": started_at,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "machine": machine,
            "git_status_at_start": git_status,
            "setup": setup,
            "rule_file": RULES_YAML,
            "delivery_setup": delivery_setup,
            "max_rate": {
                "drain": drained,
                "r_max_msgs_per_s": r_max,
                "basis": "steady_msgs_per_s" if drained["steady_msgs_per_s"] else "msgs_per_s",
            },
            "live": {
                **live,
                "fraction": None if self.args.rate else self.args.fraction,
                "seconds": self.args.seconds,
                "workers": self.args.workers,
                "rules_batch": self.args.rules_batch
                or Settings.model_fields["rules_batch"].default,
                "crossing_gauges": self.args.crossing_gauges,
                "cycle_s": self.args.cycle,
                "expected_transitions": len(expected),
            },
            "figures": figures,
            "settings": {
                name: Settings.model_fields[name].default
                for name in (
                    "ingest_batch_max",
                    "ingest_batch_linger_ms",
                    "rules_batch",
                    "rules_poll_s",
                    "notify_batch",
                    "notify_poll_s",
                    "notify_timeout_s",
                    "notify_backoff_base_s",
                    "notify_breaker_failures",
                    "notify_breaker_open_s",
                )
            }
            | ({"notify_timeout_s": self.args.notify_timeout} if self.delivery else {}),
            "warning_log_lines": log_lines,
            "problems": self.problems,
        }
        out = RESULTS / f"{self.stamp}.json"
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        self.print_summary(r_max, drained, live, figures)
        print(f"results: {out.relative_to(ROOT)}")
        for problem in self.problems:
            print(f"PROBLEM: {problem}")
        return 1 if self.problems else 0

    def print_summary(
        self, r_max: float, drained: dict[str, Any], live: dict[str, Any], f: dict[str, Any]
    ) -> None:
        pub = live["publisher"]
        v = f["verification"]
        print()
        print(
            f"R_max (ingest alone, {self.args.messages:,}-message backlog): {r_max:,.0f} msg/s "
            f"(whole drain {drained['msgs_per_s']:,.0f} msg/s)"
        )
        print(
            f"live: asked {live['rate_target']:,.0f} msg/s, achieved {pub['achieved_rate']:,.0f} "
            f"msg/s ({pub['sent']:,} in {pub['seconds']:.1f} s; worst "
            f"{pub['behind_schedule_max_s']} s behind schedule); caught up "
            f"{live['catch_up']['seconds_to_all_evaluated']} s after the last publish"
        )
        print(
            f"alerts: {f['alerts']:,} opened, expected {v['expected_opens']:,} "
            f"({v['missing']} missing, {v['unexpected']} unexpected, {v['opened_twice']} twice, "
            f"{v['wrong_resolution']} resolved wrongly)"
        )
        rows: list[tuple[str, dict[str, Any]]] = [
            ("reading commit -> alert commit", f["commit_to_alert_ms"]),
            ("publish -> alert commit", f["publish_to_alert_ms"]),
            ("publish -> reading commit (trig.)", f["publish_to_commit_ms_triggering_readings"]),
        ]
        dl = f.get("delivery")
        if dl is not None:
            rows += [
                ("alert commit -> webhook received", dl["commit_to_received_ms"]),
                ("  opened events", dl["commit_to_received_ms_opened"]),
                ("  resolved events", dl["commit_to_received_ms_resolved"]),
                ("publish -> webhook received, opened", dl["publish_to_received_ms_opened"]),
                ("publish -> webhook rcvd, resolved", dl["publish_to_received_ms_resolved"]),
            ]
        print(f"{'ms':<36}{'count':>7}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
        for label, s in rows:
            if s["count"]:
                print(
                    f"{label:<36}{s['count']:>7}{s['p50']:>9}{s['p95']:>9}{s['p99']:>9}"
                    f"{s['max']:>9}"
                )
        if dl is not None:
            c = dl["checks"]
            good = " (good endpoint, beside a hanging one)" if dl["hanging_endpoint"] else ""
            events = sum(c["alert_events"].values())
            found = [
                f"{c['not_delivered']} not delivered",
                f"{c['delivered_but_not_received']} not received",
                f"{c['duplicate_requests']} duplicates",
                f"{c['signature_failures']} signature failures",
                f"{c['received_event_differs_from_delivery']} wrong events",
                f"outbox left {c['outbox_rows_left']}",
            ]
            print(
                f"webhooks{good}: {c['distinct_webhook_ids']:,} received for {events:,} alert "
                f"events; {', '.join(found)}; settled "
                f"{live['catch_up'].get('seconds_to_all_delivered')} s after the rules"
            )
            print(
                "  where the time went, p50 / p99 ms: "
                + ", ".join(
                    f"{k} {v.get('p50')} / {v.get('p99')}" for k, v in dl["breakdown_ms"].items()
                )
            )
            print(
                f"  notify's own commit -> delivery histogram: p50 "
                f"{live['notify']['commit_to_delivery_p50']}, p99 "
                f"{live['notify']['commit_to_delivery_p99']}"
            )
            if dl["hanging_endpoint"]:
                h = dl["hanging_endpoint"]
                print(
                    f"  hanging endpoint: {h['deliveries']} deliveries {h['by_state']}, "
                    f"{h['attempts_made']} attempts, {h['connections_accepted']} connections "
                    f"accepted; notify took {live['notify']['stop_seconds']} s to stop"
                )
                w = h["good_commit_to_received_ms_while_a_hanging_attempt_was_open"]
                o = h["good_commit_to_received_ms_while_none_was"]
                print(
                    f"  good endpoint, commit -> received while a hanging attempt was open: "
                    f"{w['count']} events, p50 {w.get('p50')} p99 {w.get('p99')} max "
                    f"{w.get('max')} ms; while none was: {o['count']} events, p50 "
                    f"{o.get('p50')} p99 {o.get('p99')} max {o.get('max')} ms"
                )
        print(
            "slowest devices, mean commit -> alert ms (alerts): "
            + ", ".join(
                f"{d['device']} {d['mean_ms']:.0f} ({d['alerts']})"
                for d in f["devices_by_mean_commit_to_alert"][:5]
            )
            + f"; all devices {f['commit_to_alert_ms'].get('mean', '-')}"
        )
        print(
            f"worker evaluation lag (histogram): p50 {live['evaluation_lag_p50']}, "
            f"p99 {live['evaluation_lag_p99']}, "
            f"{live['worker_metrics'][LAG_METRIC + '_count']:.0f} transactions"
        )
        print(
            f"\nper {WINDOW_S:g} s: commit -> alert ms, inbox, CPU % (machine of "
            f"{100 * len(os.sched_getaffinity(0))}, ingest, worker(s), PostgreSQL for the "
            "workers; time the workers and their backends waited for a CPU), worker "
            "transactions (per second, readings and ms per transaction), dead tuples in "
            "rule_inbox, autovacuums of rule_inbox"
        )
        print(
            f"{'from s':>6}{'alerts':>7}{'p50':>8}{'p99':>8}{'inbox':>7}{'mach':>6}{'ingest':>7}"
            f"{'worker':>7}{'pg-w':>6}{'runq':>6}{'txn/s':>7}{'rd/txn':>7}{'ms/txn':>7}"
            f"{'dead':>8}{'vac':>4}"
        )
        for w in f["by_window"]:
            print(
                f"{w['from_s']:>6.0f}{w['alerts']:>7}{w['commit_to_alert_p50_ms'] or '-':>8}"
                f"{w['commit_to_alert_p99_ms'] or '-':>8}{w['inbox_rows_max']:>7}"
                f"{w.get('machine_busy_pct', '-'):>6}{w.get('ingest_cpu_pct', '-'):>7}"
                f"{w.get('workers_cpu_pct', '-'):>7}{w.get('pg_for_workers_cpu_pct', '-'):>6}"
                f"{w.get('workers_runq_wait_pct', '-'):>6}"
                f"{w.get('worker_txns_per_s', '-'):>7}{w.get('readings_per_txn') or '-':>7}"
                f"{w.get('ms_per_txn') or '-':>7}{w.get('inbox_dead_tuples_max', '-'):>8}"
                f"{w.get('inbox_autovacuums', '-'):>4}"
            )
        print()
        print("cpu-s: " + ", ".join(f"{k} {x}" for k, x in live["cpu_seconds"].items()))
        print(
            "waited for a CPU (s, process + its PostgreSQL backends): "
            + ", ".join(f"{k} {x}" for k, x in live["runqueue_wait_seconds"].items())
        )
        if live["postgres_activity"]:
            print(
                "during the phase: "
                + ", ".join(f"{k} +{x}" for k, x in live["postgres_activity"].items())
            )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.alert_latency",
        description="Reading commit -> alert commit latency of the rules engine at half the "
        "maximum ingest rate, measured in the same run.",
    )
    p.add_argument("--messages", type=int, default=60_000, help="backlog drained for R_max (60000)")
    p.add_argument("--seconds", type=float, default=60, help="length of the live phase (60)")
    p.add_argument("--workers", type=int, default=1, help="rules workers (1)")
    p.add_argument(
        "--rules-batch",
        type=int,
        default=0,
        help="PLACEWATCH_RULES_BATCH for the workers (default: theirs, "
        f"{Settings.model_fields['rules_batch'].default} devices per transaction)",
    )
    p.add_argument("--fraction", type=float, default=0.5, help="live rate / R_max (0.5)")
    p.add_argument(
        "--rate", type=float, default=0, help="live rate in msg/s instead of a fraction of R_max"
    )
    p.add_argument(
        "--crossing-gauges",
        type=int,
        default=200,
        help="flood gauges that cross the threshold (200; the other gauges stay below)",
    )
    p.add_argument(
        "--cycle", type=float, default=10, help="seconds per above/below cycle of a gauge (10)"
    )
    p.add_argument("--per-kind", type=int, default=500, help="devices per kind (500)")
    p.add_argument(
        "--timeout", type=float, default=300, help="limit for the drain and the catch-up, s (300)"
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
    p.add_argument(
        "--hanging-endpoint",
        action="store_true",
        help="also route the alerts to a second team whose endpoint never answers",
    )
    p.add_argument(
        "--notify-timeout",
        type=float,
        default=10,
        help="PLACEWATCH_NOTIFY_TIMEOUT_S for the dispatcher (10)",
    )
    p.add_argument(
        "--no-delivery",
        action="store_true",
        help="no dispatcher and no receiver: the rules figures alone, as before",
    )
    p.add_argument("--keep-workdir", action="store_true", help="keep logs and broker data")
    args = p.parse_args(argv)
    args.admin_url = args.admin_url or server_url()  # resolved here, not on import
    if args.notify_timeout <= 0:
        p.error("--notify-timeout must be positive")
    if args.no_delivery and args.hanging_endpoint:
        p.error("--hanging-endpoint needs delivery (drop --no-delivery)")
    if args.messages < 1 or args.seconds <= 0 or args.workers < 1 or args.cycle <= 0:
        p.error("--messages, --seconds, --workers and --cycle must be positive")
    if not 0 < args.crossing_gauges <= args.per_kind:
        p.error("--crossing-gauges must be between 1 and --per-kind")
    if args.rate < 0 or args.rules_batch < 0 or not 0 < args.fraction <= 1:
        p.error("--rate and --rules-batch must be positive, --fraction within (0, 1]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench("bench.alert_latency", AlertLatencyBench(parse_args(argv)), argv)


if __name__ == "__main__":
    sys.exit(main())
