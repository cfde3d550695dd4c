"""Publish rate of the simulator's load mode, against references in the same run.

Run from the repository root::

    .venv/bin/python -m bench.publish_rate [--devices 10000] [--processes 2] [--seconds 20]
                                           [--repeat 3] [--messages 200000] [--queued]

One private Mosquitto (``broker/mosquitto.conf``, free port, temp dir) serves every run. Each
repetition, interleaved so that drift on the machine affects all alike:

* **load**: ``python -m placewatch simulate --load --devices D --processes P --duration S`` as a
  subprocess; its own figure (messages ÷ first publish to last PUBACK) is parsed from its output.
* **wire**: the load mode's publisher (``simulators.wire.WirePublisher``, QoS 1, the broker's
  Receive Maximum in flight) sending N payloads of the same fleet, built beforehand, from one
  process: what the protocol costs without generating readings. First publish to last PUBACK.
* **paho**: ``simulators.basic.Publisher`` (paho-mqtt, QoS 1, 1,000 in flight) publishing the
  same N payloads from one process, as the simulator's live mode does: first publish to last
  PUBACK.

``mosquitto_pub -l`` is no reference: at QoS 1, Mosquitto 2.0.11's client leaves at the end of
its input without sending what it still queues (a subscriber counted 3,000 to 68,000 of 200,000).

With ``--queued`` a persistent QoS 1 session subscribes to everything first, so the broker
stores every message for it (as when ingest is behind) instead of dropping what nobody reads.
CPU-seconds per run: the whole machine, the broker, and the publisher processes. Results are
printed and written to ``bench/results/publish-rate-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.drain import (
    children_cpu_seconds,
    cpu_busy_seconds,
    host_info,
    process_cpu_seconds,
)
from placewatch.kinds import KINDS
from simulators.basic import Publisher, ReadingGenerator, fleet
from simulators.wire import WirePublisher
from tests.support.broker import Broker, free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
_LOAD_LINE = re.compile(r"load: ([\d,]+) messages .*?([\d.]+) s: ([\d,]+) msg/s")


def machine() -> dict[str, Any]:
    return {**host_info(), "paho-mqtt": metadata.version("paho-mqtt")}


class Cpu:
    """CPU-seconds over one run: the machine, the broker, and the publisher processes."""

    def __init__(self, broker_pid: int | None) -> None:
        self.broker_pid = broker_pid
        self.busy0 = cpu_busy_seconds()
        self.broker0 = process_cpu_seconds(broker_pid)
        self.children0 = children_cpu_seconds()
        self.own0 = time.process_time()
        self.t0 = time.monotonic()

    def finish(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        publisher = children_cpu_seconds() - self.children0 + time.process_time() - self.own0
        out = {
            "capacity": elapsed * len(os.sched_getaffinity(0)),
            "machine_busy": cpu_busy_seconds() - self.busy0,
            "mosquitto": process_cpu_seconds(self.broker_pid) - self.broker0,
            "publisher": publisher,
        }
        return {k: round(v, 2) for k, v in out.items()}


@contextlib.contextmanager
def queued_session(broker: Broker, topic: str, enabled: bool) -> Iterator[None]:
    """A persistent QoS 1 subscriber that is away: the broker keeps every message for it."""
    if not enabled:
        yield
        return
    client = f"bench-queue-{os.getpid()}-{time.monotonic_ns()}"
    base = ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv5"]
    subprocess.run(
        [*base, "-i", client, "-q", "1", "-t", topic, "-c", "-x", "600", "-E"], check=True
    )
    try:
        yield
    finally:  # a clean start with the same id removes the session and its queue
        subprocess.run([*base, "-i", client, "-t", topic, "-E"], check=False)


def run_load(broker: Broker, args: argparse.Namespace, run: int) -> dict[str, Any]:
    prefix = f"bench/load{run}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLACEWATCH_")}
    env |= {
        "PLACEWATCH_MQTT_HOST": broker.host,
        "PLACEWATCH_MQTT_PORT": str(broker.port),
        "PLACEWATCH_TOPIC_PREFIX": prefix,
    }
    cmd = [
        sys.executable, "-m", "placewatch", "simulate", "--load",
        "--devices", str(args.devices), "--processes", str(args.processes),
        "--duration", str(args.seconds), "--no-register", "--no-progress",
    ]  # fmt: skip
    with queued_session(broker, f"{prefix}/#", args.queued):
        cpu = Cpu(broker.process.pid if broker.process else None)
        out = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=args.seconds + 300
        )
        usage = cpu.finish()
    m = _LOAD_LINE.search(out.stdout)
    if out.returncode != 0 or m is None or "acknowledged all: True" not in out.stdout:
        raise RuntimeError(f"load run failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    sent, seconds = int(m[1].replace(",", "")), float(m[2])
    return {
        "what": "load",
        "command": shlex.join(cmd[2:]),
        "messages": sent,
        "seconds": seconds,
        "msgs_per_s": round(sent / seconds),
        "cpu_seconds": usage,
        "output": out.stdout.strip().splitlines(),
    }


def run_wire(
    broker: Broker, args: argparse.Namespace, messages: list[tuple[str, bytes]], run: int
) -> dict[str, Any]:
    prefix = f"bench/wire{run}"
    topics = [(f"{prefix}/{topic}", payload) for topic, payload in messages]
    with queued_session(broker, f"{prefix}/#", args.queued):
        cpu = Cpu(broker.process.pid if broker.process else None)
        pub = WirePublisher(broker.host, broker.port, f"bench-wire-{run}")
        try:
            t0 = time.monotonic()
            for topic, payload in topics:
                pub.publish(topic, payload)
            acked = pub.wait_acked(300) and not pub.refused
            seconds = time.monotonic() - t0
        finally:
            pub.close()
        usage = cpu.finish()
    if not acked:
        raise RuntimeError("wire: not every message was acknowledged")
    return {
        "what": "wire",
        "command": "simulators.wire.WirePublisher, QoS 1, pre-built payloads, one process",
        "messages": len(messages),
        "seconds": round(seconds, 3),
        "msgs_per_s": round(len(messages) / seconds),
        "cpu_seconds": usage,
    }


def run_paho(
    broker: Broker, args: argparse.Namespace, messages: list[tuple[str, bytes]], run: int
) -> dict[str, Any]:
    prefix = f"bench/paho{run}"
    with queued_session(broker, f"{prefix}/#", args.queued):
        cpu = Cpu(broker.process.pid if broker.process else None)
        pub = Publisher(broker.host, broker.port, client_id=f"bench-paho-{run}", max_inflight=1000)
        try:
            t0 = time.monotonic()
            for topic, payload in messages:
                while pub.backlog() > 1000:
                    time.sleep(0.0005)
                pub.publish(f"{prefix}/{topic}", payload)
            acked = pub.wait_acked(300)
            seconds = time.monotonic() - t0
        finally:
            pub.close()
        usage = cpu.finish()
    if not acked:
        raise RuntimeError("paho: not every message was acknowledged")
    return {
        "what": "paho",
        "command": "simulators.basic.Publisher, QoS 1, 1,000 in flight, one process",
        "messages": len(messages),
        "seconds": round(seconds, 3),
        "msgs_per_s": round(len(messages) / seconds),
        "cpu_seconds": usage,
    }


def payloads(n: int, devices: int) -> list[tuple[str, bytes]]:
    """N readings of the same fleet the load mode uses (topic after the prefix, payload)."""
    fleet_ = fleet("load", max(1, devices // len(KINDS)))
    stream = iter(ReadingGenerator(fleet_, "x", seed=1))
    out = []
    for _ in range(n):
        topic, payload = next(stream)
        out.append((topic.split("/", 1)[1], payload))
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--devices", type=int, default=10_000, help="load mode's fleet (default 10000)")
    p.add_argument(
        "--processes", type=int, default=len(os.sched_getaffinity(0)),
        help="load mode's publishing processes (default: one per CPU)",
    )  # fmt: skip
    p.add_argument("--seconds", type=float, default=20, help="each load run (default 20)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    p.add_argument(
        "--messages", type=int, default=200_000,
        help="messages of each reference run (default 200000)",
    )  # fmt: skip
    p.add_argument(
        "--queued", action="store_true",
        help="a persistent subscriber that is away: the broker stores every message",
    )  # fmt: skip
    p.add_argument("--skip-references", action="store_true", help="measure load mode only")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    info = machine()
    print(f"machine: {info}")
    messages = payloads(args.messages, args.devices)
    workdir = Path(tempfile.mkdtemp(prefix="pw-bench-pub-"))
    broker = Broker("127.0.0.1", free_port(), workdir)
    broker.start()
    runs: list[dict[str, Any]] = []
    try:
        for i in range(args.repeat):
            runs.append(run_load(broker, args, i))
            if not args.skip_references:
                runs.append(run_wire(broker, args, messages, i))
                runs.append(run_paho(broker, args, messages, i))
            for r in runs[-3 if not args.skip_references else -1 :]:
                rate, cpu = r["msgs_per_s"], r["cpu_seconds"]
                print(f"run {i + 1} {r['what']:14} {rate:>8,} msg/s  cpu {cpu}")
    finally:
        broker.stop()
    summary = {
        what: statistics.median(r["msgs_per_s"] for r in runs if r["what"] == what)
        for what in ("load", "wire", "paho")
        if any(r["what"] == what for r in runs)
    }
    print("median msg/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in summary.items()))
    if "wire" in summary:
        print(f"load / wire (one process, pre-built): {summary['load'] / summary['wire']:.2f}")
    if "paho" in summary:
        print(f"load / paho: {summary['load'] / summary['paho']:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"publish-rate-{started:%Y%m%dT%H%M%SZ}.json"
    command = shlex.join([".venv/bin/python", "-m", "bench.publish_rate", *(argv or sys.argv[1:])])
    path.write_text(
        json.dumps(
            {
                "command": command,
                "started": started.isoformat(),
                "machine": info,
                "args": vars(args),
                "runs": runs,
                "median_msgs_per_s": summary,
            },
            indent=2,
        )
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
