"""Dead letters replayed after the fix (here: registering the unknown device) are stored once."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg

from placewatch.kinds import Kind
from storage.registry import DeviceSpec, register
from tests.support.pipeline import Pipeline
from tests.support.traffic import wait_until


def test_replay_after_registering_unknown_device(pipe: Pipeline) -> None:
    with psycopg.connect(pipe.database_url) as c:
        register(c, pipe.council, "Replay", [])
    base = datetime.now(UTC) - timedelta(hours=1)
    topic = pipe.topic("flood_level", "new-gauge")
    msgs = [
        (
            topic,
            json.dumps(
                {"time": (base + timedelta(minutes=i)).isoformat(), "level_m": i / 10}
            ).encode(),
        )
        for i in range(30)
    ]
    msgs.append((topic, b'{"level_m": "broken"'))
    ingest = pipe.ingest()
    pipe.publish(msgs)
    wait_until(lambda: len(pipe.dead_letters()) == 31, 30, "31 dead letters")
    assert {r for _, _, r, _ in pipe.dead_letters()} == {"unknown_device", "invalid_json"}

    with psycopg.connect(pipe.database_url) as c:
        register(
            c, pipe.council, "Replay", [DeviceSpec(pipe.council, "new-gauge", Kind.FLOOD_LEVEL)]
        )

    def replay() -> str:
        out = subprocess.run(
            [sys.executable, "-m", "placewatch", "replay", "--council", pipe.council],
            env=ingest.env(),
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    first = replay()
    assert "30 stored" in first and "invalid_json: 1" in first, first
    assert pipe.stored() == 30
    pending = pipe.conn.execute(
        "SELECT reason FROM dead_letters WHERE topic LIKE %s AND replayed_at IS NULL",
        (pipe.prefix + "/%",),
    ).fetchall()
    assert pending == [("invalid_json",)]
    assert "0 stored" in replay()
    assert pipe.stored() == 30
