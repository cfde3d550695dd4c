"""2,000 random, mutated and valid network server, SenML and native messages through a live
ingest: it stays up, and every distinct message is stored as readings or kept as a dead letter
with a reason."""

from __future__ import annotations

import hashlib
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest.decode import Decoded, DecodeOptions, Rejected, decode
from ingest.mqtt import Message
from tests.support.pipeline import Pipeline
from tests.support.traffic import wait_until
from tests.support.uplinks import chirpstack_up, new_eui, ttn_uplink

N = 2_000


def junk(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.choice([0, -1, 10**20, 3.5, 1e300, -273.15, 140])
    if choice == 3:
        return rng.choice(["", "2000 mm", "open", "NaN", "∞", "\x00", "1.5 bar", "x" * 300])
    if choice == 4:
        return rng.uniform(-1e6, 1e6)
    if choice == 5:
        return {"value": junk(rng, depth + 1), "unit": rng.choice(["mm", "kg", "°C", "?"])}
    if choice == 6:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["distance", "battery", "level", "tilt", "time", "n", "v", "bn", "object"]
    return {rng.choice(keys): junk(rng, depth + 1) for _ in range(rng.randrange(5))}


def mutated(rng: random.Random, payload: bytes) -> bytes:
    body = json.loads(payload)
    node = body
    for _ in range(rng.randrange(1, 3)):
        if not isinstance(node, dict) or not node:
            break
        key = rng.choice(sorted(node))
        if rng.random() < 0.5 and isinstance(node[key], dict):
            node = node[key]
        else:
            node[key] = junk(rng)
            break
    return json.dumps(body).encode()


def test_random_input_is_all_accounted_for(pipe: Pipeline, tmp_path: Path) -> None:
    rng = random.Random(20261123)
    ttn_app, cs_app = f"{pipe.council}-fuzz@ttn", f"{pipe.council}-cs"
    bin_eui, gauge_eui = new_eui(), new_eui()
    devices = {
        "council": pipe.council,
        "applications": [
            {"network": "ttn", "application": ttn_app},
            {"network": "chirpstack", "application": cs_app},
        ],
        "devices": [
            {
                "id": "bin-1",
                "model": "milesight-iot/em310-udl",
                "dev_eui": bin_eui,
                "settings": {"depth_mm": 1500},
            },
            {"id": "gauge-1", "model": "milesight-iot/em500-swl", "dev_eui": gauge_eui},
            {"id": "aq-1", "kind": "air_quality"},
        ],
    }
    (tmp_path / "d.yaml").write_text(json.dumps(devices))
    ingest = pipe.ingest(start=False)
    ingest.cli("devices", "import", str(tmp_path / "d.yaml"))
    ingest.start()

    base = datetime.now(UTC) - timedelta(days=1)
    messages: list[tuple[str, bytes]] = []
    for i in range(N):
        when = base + timedelta(seconds=37 * i)
        good = [
            ttn_uplink(
                ttn_app,
                "bin-1",
                bin_eui,
                when,
                {
                    "battery": rng.randrange(0, 120),
                    "distance": rng.randrange(0, 3000),
                    "tilt": rng.choice(["normal", "tilt"]),
                },
                f_cnt=i,
            ),
            chirpstack_up(
                cs_app,
                gauge_eui,
                when,
                {"battery": 90, "level": rng.uniform(-10, 400)},
                profile="Milesight EM500-SWL",
            ),
            (
                f"{pipe.prefix}/{pipe.council}/senml",
                json.dumps(
                    [
                        {
                            "bn": "aq-1:",
                            "bt": when.timestamp(),
                            "n": "no2_ugm3",
                            "u": "kg/m3",
                            "v": rng.uniform(-1e-8, 2e-7),
                        }
                    ]
                ).encode(),
            ),
            (
                pipe.topic("air_quality", "aq-1"),
                json.dumps({"time": when.isoformat(), "pm25_ugm3": rng.uniform(-5, 80)}).encode(),
            ),
        ]
        topic, payload = rng.choice(good)
        roll = rng.random()
        if roll < 0.25:
            payload = mutated(rng, payload)
        elif roll < 0.35:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        elif roll < 0.45:
            payload = json.dumps(junk(rng)).encode()
        messages.append((topic, payload))
    pipe.publish(messages)
    distinct = set(messages)
    wait_until(lambda: ingest.metric("placewatch_ingest_acked_total") >= N, 120, "all acked")
    assert ingest.alive() and ingest.http("/readyz")[0] == 200

    letters = {
        bytes(sha): reason
        for sha, reason in pipe.conn.execute(
            "SELECT message_sha256, reason FROM dead_letters"
            " WHERE council_id = %s OR topic LIKE %s OR topic LIKE %s",
            (pipe.council, f"v3/{ttn_app}/%", f"application/{cs_app}/%"),
        ).fetchall()
    }
    stored = {
        (device, t)
        for kind in ("bin_fill", "flood_level", "air_quality")
        for device, t in pipe.conn.execute(
            f"SELECT device_id, time FROM {kind} WHERE council_id = %s",
            (pipe.council,),
        ).fetchall()
    }
    names = {"bin-1": "bin-1", bin_eui: "bin-1", gauge_eui: "gauge-1", "aq-1": "aq-1"}
    options = DecodeOptions(pipe.prefix, max_age_s=366 * 86_400)
    unaccounted, kept, readings = [], 0, 0
    for topic, payload in distinct:
        sha = hashlib.sha256(topic.encode() + b"\0" + payload).digest()
        if sha in letters:
            assert letters[sha], topic
            kept += 1
            continue
        # Not a dead letter: then every reading it carries is stored.
        out = decode(Message(topic, payload, 0, False, time.time(), 0), options)
        assert not isinstance(out, Rejected), (topic, payload[:200], out)
        keys = (
            [(out.address.device_id, out.reading.time)]
            if isinstance(out, Decoded)
            else [
                (names.get(p.uplink.dev_eui or p.uplink.device_name or ""), p.uplink.time)
                for p in out
            ]
        )
        if not keys or not all(k in stored for k in keys):
            unaccounted.append((topic, payload[:200]))
        readings += len(keys)
    assert not unaccounted, unaccounted[:5]
    assert kept > 300 and readings > 300, (kept, readings)  # both paths were exercised
    assert len(stored) <= readings
