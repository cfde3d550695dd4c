"""The basic simulator emits payloads the ingest models accept, distinct per device and time."""

from __future__ import annotations

import itertools
import time
import uuid

from ingest.decode import Decoded, DecodeOptions, decode
from ingest.mqtt import Message
from placewatch.kinds import KINDS
from simulators.basic import Publisher, ReadingGenerator, fleet
from tests.support.broker import Broker


def test_fleet_covers_every_kind_with_settings() -> None:
    devices = fleet("sutton", per_kind=5)
    assert len(devices) == 20
    assert {d.kind for d in devices} == set(KINDS)
    assert all(d.properties.get("depth_mm") for d in devices if d.kind.value == "bin_fill")
    assert all(d.resident_id for d in devices if d.kind.value == "home_activity")


def test_generated_messages_are_valid_and_distinct() -> None:
    devices = fleet("sutton", per_kind=3)
    messages = list(itertools.islice(ReadingGenerator(devices, "pw", seed=7), 2_000))
    keys = set()
    for topic, payload in messages:
        out = decode(Message(topic, payload, 1, False, time.time(), 1), DecodeOptions("pw"))
        assert isinstance(out, Decoded), (topic, payload, out)
        keys.add((out.address.device_id, out.reading.time))
    assert len(keys) == 2_000


def test_more_messages_than_paho_has_ids_all_reach_the_broker(broker: Broker) -> None:
    """paho keys unacknowledged messages by a 16-bit id: 70,000 published without waiting must
    all be acknowledged by the broker. Before the publisher bounded its backlog, a message that
    got the id of an unacknowledged one replaced it in paho's queue: never sent, never
    acknowledged, and this wait never ended."""
    n = 70_000
    topic = f"pwtest/{uuid.uuid4().hex[:8]}/ids"
    pub = Publisher(broker.host, broker.port, qos=1)
    try:
        for i in range(n):
            pub.publish(topic, str(i).encode())
        assert pub.wait_acked(180), f"{pub.backlog()} never acknowledged"
        assert pub.backlog() == 0
    finally:
        pub.close()
