"""Publishing test traffic and reading back what was stored."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql

from placewatch.kinds import KINDS
from simulators.basic import Publisher, fleet
from storage.registry import DeviceSpec, register
from tests.support.broker import Broker


def register_fleet(database_url: str, council: str, per_kind: int) -> list[DeviceSpec]:
    devices = fleet(council, per_kind)
    with psycopg.connect(database_url) as conn:
        register(conn, council, f"Test council {council}", devices)
    return devices


def publish_all(broker: Broker, messages: Iterable[tuple[str, bytes]], qos: int = 1) -> int:
    """Publish and wait until the broker has acknowledged every message."""
    pub = Publisher(broker.host, broker.port, qos=qos)
    n = 0
    try:
        for topic, payload in messages:
            pub.publish(topic, payload)
            n += 1
        # 120 s, or more for a large run (the 100,000-message fuzz) on a busy machine.
        assert pub.wait_acked(max(120, n / 250)), "broker did not acknowledge every publish"
    finally:
        pub.close()
    return n


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stored_readings(conn: psycopg.Connection[Any], council: str) -> int:
    total = 0
    for kind in KINDS:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE council_id = %s").format(
                sql.Identifier(kind.value)
            ),
            (council,),
        ).fetchone()
        total += int(row[0]) if row else 0
    return total


def distinct_readings(conn: psycopg.Connection[Any], council: str) -> int:
    total = 0
    for kind in KINDS:
        row = conn.execute(
            sql.SQL(
                "SELECT count(DISTINCT (device_id, time)) FROM {} WHERE council_id = %s"
            ).format(sql.Identifier(kind.value)),
            (council,),
        ).fetchone()
        total += int(row[0]) if row else 0
    return total


def dead_letters(conn: psycopg.Connection[Any], prefix: str) -> list[tuple[str, bytes, str, str]]:
    """(topic, payload, reason, detail) of every dead letter under a topic prefix."""
    rows = conn.execute(
        "SELECT topic, payload, reason, detail FROM dead_letters WHERE topic LIKE %s",
        (prefix + "/%",),
    ).fetchall()
    return [(str(t), bytes(p), str(r), str(d)) for t, p, r, d in rows]
