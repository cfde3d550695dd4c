"""The generated password file and ACL on a real Mosquitto (broker/compose/mosquitto.conf):
anonymous and wrong passwords refused, a device publishes only its own topic, ingest only reads.

A denied publish: with MQTT 5 QoS 1 Mosquitto 2.0 answers PUBACK "Not authorized" (0x87) and
drops the message. Each test checks both, using a later allowed publish as a marker: the broker
handles packets in order, so a denied message that got through would arrive before it."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from ingest.mqtt import MqttConsumer, MqttOptions
from placewatch.brokeracl import INGEST_USER, device_topic, device_username
from tests.broker.conftest import DEVICE_A, DEVICE_B, PREFIX, SecureBroker

NOT_AUTHORIZED = 0x87
TOPIC_A, TOPIC_B = device_topic(PREFIX, DEVICE_A), device_topic(PREFIX, DEVICE_B)
USER_A = device_username(DEVICE_A.council_id, DEVICE_A.device_id)


class Client:
    """A paho MQTT 5 client that records CONNACK and PUBACK reason codes."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.c = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"pwtest-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if username is not None:
            self.c.username_pw_set(username, password)
        self.connack: int | None = None
        self.pubacks: dict[int, int] = {}
        self.connected = threading.Event()
        self.acked = threading.Condition()
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.connected.wait(5)

    def _on_connect(self, c: object, u: object, f: object, rc: ReasonCode, p: object) -> None:
        self.connack = rc.value
        self.connected.set()

    def _on_publish(self, c: object, u: object, mid: int, rc: ReasonCode, p: object) -> None:
        with self.acked:
            self.pubacks[mid] = rc.value
            self.acked.notify_all()

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish QoS 1 and return the PUBACK's reason code."""
        info = self.c.publish(topic, payload, qos=1)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.pubacks, 5), "no PUBACK"
            return self.pubacks[info.mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
async def ingest(secure_broker: SecureBroker) -> AsyncIterator[MqttConsumer]:
    """ingest's own consumer, logged in as the ingest user, on a throwaway session."""
    b = secure_broker.broker
    consumer = MqttConsumer(
        MqttOptions(
            b.host,
            b.port,
            f"pwtest-ingest-{uuid.uuid4().hex[:8]}",
            (f"{PREFIX}/#",),
            session_expiry_s=0,
            receive_maximum=100,
            username=INGEST_USER,
            password=secure_broker.passwords[INGEST_USER],
        ),
        asyncio.get_running_loop(),
    )
    consumer.start()
    await asyncio.wait_for(consumer.subscribed.wait(), 10)
    yield consumer
    await consumer.stop()


async def received(consumer: MqttConsumer, marker: bytes) -> list[tuple[str, bytes]]:
    """Everything delivered up to and including ``marker``."""
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(10):
        while not any(p == marker for _, p in got):
            await consumer.wait_for_messages()
            batch = consumer.take(100)
            consumer.ack(batch)
            got += [(m.topic, m.payload) for m in batch]
    return got


def connect(secure_broker: SecureBroker, user: str | None, password: str | None) -> Client:
    return Client(secure_broker.broker.port, user, password)


async def test_anonymous_and_wrong_password_refused(secure_broker: SecureBroker) -> None:
    for user, password in (
        (None, None),
        (USER_A, "not-the-password"),
        (USER_A, None),
        ("camden/nobody", "x"),
    ):
        client = await asyncio.to_thread(connect, secure_broker, user, password)
        try:
            assert client.connack is not None and client.connack >= 0x80, (user, client.connack)
        finally:
            client.close()


async def test_device_publishes_only_its_own_topic(
    secure_broker: SecureBroker, ingest: MqttConsumer
) -> None:
    a = await asyncio.to_thread(connect, secure_broker, USER_A, secure_broker.passwords[USER_A])
    try:
        assert a.connack == 0
        assert await asyncio.to_thread(a.publish, TOPIC_B, b"as B") == NOT_AUTHORIZED
        for other in (
            f"{PREFIX}/camden/flood_level/{DEVICE_A.device_id}",  # own id, another kind
            f"{PREFIX}/leeds/bin_fill/{DEVICE_A.device_id}",  # another council
            f"{TOPIC_A}/extra",
            "v3/app@ttn/devices/x/up",
            f"{PREFIX}/camden/senml",  # the council's SenML topic: for bridges, not devices
            f"{PREFIX}/camden/senml/{DEVICE_B.device_id}",
        ):
            assert await asyncio.to_thread(a.publish, other, b"elsewhere") == NOT_AUTHORIZED
        own_senml = f"{PREFIX}/camden/senml/{DEVICE_A.device_id}"
        assert await asyncio.to_thread(a.publish, own_senml, b"own senml") == 0
        assert await asyncio.to_thread(a.publish, TOPIC_A, b"own") == 0
        got = await received(ingest, b"own")
        assert got == [(own_senml, b"own senml"), (TOPIC_A, b"own")]
    finally:
        a.close()


async def test_ingest_cannot_publish(secure_broker: SecureBroker, ingest: MqttConsumer) -> None:
    pw = secure_broker.passwords
    i = await asyncio.to_thread(connect, secure_broker, INGEST_USER, pw[INGEST_USER])
    a = await asyncio.to_thread(connect, secure_broker, USER_A, pw[USER_A])
    try:
        assert i.connack == 0
        assert await asyncio.to_thread(i.publish, TOPIC_A, b"from ingest") == NOT_AUTHORIZED
        assert await asyncio.to_thread(a.publish, TOPIC_A, b"marker") == 0
        assert await received(ingest, b"marker") == [(TOPIC_A, b"marker")]
    finally:
        i.close()
        a.close()
