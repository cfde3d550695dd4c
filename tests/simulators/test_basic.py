"""The basic simulator emits payloads the ingest models accept, distinct per device and time."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

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
    all be acknowledged and delivered, none replaced by a later one with the same id."""
    n = 70_000
    topic = f"pwtest/{uuid.uuid4().hex[:8]}/ids"
    got: set[bytes] = set()
    done = threading.Event()

    def on_message(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        got.add(bytes(msg.payload))
        if len(got) == n:
            done.set()

    sub = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    sub.on_message = on_message
    sub.connect(broker.host, broker.port)
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    time.sleep(0.5)  # subscribed before the first publish
    pub = Publisher(broker.host, broker.port, qos=1)
    try:
        for i in range(n):
            pub.publish(topic, str(i).encode())
        assert pub.wait_acked(180), f"{pub.backlog()} never acknowledged"
        done.wait(60)
    finally:
        pub.close()
        sub.loop_stop()
        sub.disconnect()
    assert len(got) == n
