"""The fault suite's publisher (``bench.chaos``), run as a child process::

    python -m bench.chaos_publisher SPEC.json

Publishes native readings from a simulated fleet at ``rate`` msg/s (QoS 1, MQTT 5, paced against
the monotonic clock) until SIGTERM, every reading stamped with the wall clock when it is made, so
each message is identified by (kind, device, time). Flood gauges follow a square wave around the
suite's threshold rule (the first ``crossing_gauges`` spend half of every ``cycle_s`` above
``LEVEL_ABOVE`` and half below ``LEVEL_CLEAR``; the others stay low), so alerts open and clear all
along. paho reconnects by itself when the broker restarts and sends again what the broker had not
acknowledged. On SIGTERM it stops publishing, waits (bounded) for the broker's PUBACKs, and writes
to ``spec["result"]`` every message: kind, device, time, when it was sent and when the broker
acknowledged it (``null``: never). A message the broker acknowledged is one the broker accepted:
from then on delivering it is the broker's and placewatch's business.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from placewatch.kinds import Kind
from simulators.basic import ReadingGenerator, fleet

_stop = threading.Event()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _stop.set()


def publisher_main(spec_path: str) -> int:
    spec: dict[str, Any] = json.loads(Path(spec_path).read_text())
    signal.signal(signal.SIGTERM, _on_sigterm)
    devices = fleet(spec["council"], int(spec["per_kind"]))
    by_kind: dict[Kind, list[Any]] = {}
    for d in devices:
        by_kind.setdefault(d.kind, []).append(d)
    longest = max(len(v) for v in by_kind.values())
    order = [by_kind[k][i] for i in range(longest) for k in by_kind if i < len(by_kind[k])]
    gauges = by_kind[Kind.FLOOD_LEVEL]
    cycle, crossing = float(spec["cycle_s"]), int(spec["crossing_gauges"])
    offset = {g.device_id: k * cycle / max(1, crossing) for k, g in enumerate(gauges[:crossing])}
    rng = random.Random(int(spec["seed"]))
    gen = ReadingGenerator(devices, spec["prefix"], seed=int(spec["seed"]))
    rate = float(spec["rate"])

    lock = threading.Lock()
    acked_at: dict[int, float] = {}  # mid -> time.time() of the PUBACK, for in-flight mids
    records: list[list[Any]] = []  # [kind, device, time iso, sent_at, acked_at | None]
    by_mid: dict[int, int] = {}  # in-flight mid -> index in records
    connects: list[float] = []
    disconnects: list[float] = []

    def on_publish(client: paho.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        now = time.time()
        with lock:
            idx = by_mid.pop(mid, None)
            if idx is None:
                acked_at[mid] = now  # PUBACK before publish() returned
            elif records[idx][4] is None:
                records[idx][4] = now

    def on_connect(client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        connects.append(time.time())

    def on_disconnect(client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        disconnects.append(time.time())

    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=spec["client_id"],
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.max_inflight_messages_set(int(spec.get("max_inflight", 1000)))
    client.max_queued_messages_set(0)  # unlimited: publishes while disconnected are kept
    client.reconnect_delay_set(1, 2)
    client.on_publish = on_publish
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.connect(spec["host"], int(spec["port"]))
    client.loop_start()
    last_time: dict[str, datetime] = {}
    wall0 = time.time()
    print("started", flush=True)
    t0 = time.monotonic()
    sent = 0
    status_path = Path(spec["status"])
    last_status = 0.0
    try:
        while not _stop.is_set():
            now = time.monotonic()
            due = t0 + sent / rate
            if due > now:
                _stop.wait(due - now)
                continue
            device = order[sent % len(order)]
            if device.kind is Kind.FLOOD_LEVEL:
                at = datetime.now(UTC)
                prev = last_time.get(device.device_id)
                if prev is not None and at <= prev:
                    at = prev + timedelta(microseconds=1)
                last_time[device.device_id] = at
                if device.device_id in offset:
                    since = at.timestamp() - wall0 - offset[device.device_id]
                    high = since >= 0 and since % cycle < cycle / 2
                    level = rng.uniform(1.1, 1.4) if high else rng.uniform(0.3, 0.7)
                else:
                    level = rng.uniform(0.3, 0.75)
                iso = at.isoformat()
                body = {"level_m": round(level, 3), "battery_pct": 97.0, "time": iso}
                topic = f"{spec['prefix']}/{device.council_id}/flood_level/{device.device_id}"
                payload = json.dumps(body, separators=(",", ":")).encode()
            else:
                topic, payload = gen.next_for(device)
                iso = json.loads(payload)["time"]
            # Not under the lock: paho calls on_publish from its thread holding its own locks.
            info = client.publish(topic, payload, qos=1)
            with lock:
                idx = len(records)
                early = acked_at.pop(info.mid, None)
                records.append([device.kind.value, device.device_id, iso, time.time(), early])
                if early is None:
                    by_mid[info.mid] = idx
            sent += 1
            if now - last_status >= 1.0:
                last_status = now
                with lock:
                    pending = len(by_mid)
                status_path.write_text(json.dumps({"sent": sent, "unacked": pending}))
        stopped_at = time.time()
        deadline = time.monotonic() + float(spec.get("ack_timeout_s", 120))
        while time.monotonic() < deadline:
            with lock:
                if not by_mid:
                    break
            time.sleep(0.1)
    finally:
        client.disconnect()
        client.loop_stop()
    acked = sum(1 for r in records if r[4] is not None)
    result = {
        "sent": sent,
        "acked": acked,
        "seconds": round(stopped_at - wall0, 3),
        "achieved_rate": round(sent / (stopped_at - wall0), 1) if stopped_at > wall0 else None,
        "first_publish_at": datetime.fromtimestamp(wall0, UTC).isoformat(),
        "connects": connects,
        "disconnects": disconnects,
        "records": records,
    }
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(publisher_main(sys.argv[1]))
