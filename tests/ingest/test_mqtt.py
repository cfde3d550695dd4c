"""The MQTT consumer against the tests' broker (Mosquitto with the project's config, or the
embedded amqtt): delivery, acknowledgement after commit, redelivery, the window, reconnection;
MQTT 5, and MQTT 3.1.1 (chosen by itself with amqtt, pinned here with Mosquitto)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt import Message, MqttConsumer, MqttOptions
from placewatch import mqtt_wire as wire
from simulators.wire import broker_protocol
from tests.support.broker import Broker


def paho_protocol(broker: Broker) -> MQTTProtocolVersion:
    v5 = broker_protocol(broker.host, broker.port) == wire.MQTT_5
    return MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311


@pytest.fixture
def prefix() -> str:
    return f"pwtest/mqtt/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def publisher(broker: Broker) -> Iterator[Callable[..., None]]:
    protocol = paho_protocol(broker)
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=protocol)
    client.connect(broker.host, broker.port)
    client.loop_start()

    def publish(topic: str, payload: bytes, properties: Properties | None = None) -> None:
        if protocol != MQTTProtocolVersion.MQTTv5:
            properties = None  # 3.1.1 has none
        client.publish(topic, payload, qos=1, properties=properties).wait_for_publish(5)

    yield publish
    client.disconnect()
    client.loop_stop()


@pytest.fixture
async def consumers(broker: Broker, prefix: str) -> AsyncIterator[Callable[..., MqttConsumer]]:
    started: list[MqttConsumer] = []
    client_id = f"pwtest-{uuid.uuid4().hex[:8]}"

    def make(
        receive_maximum: int = 100,
        max_held_bytes: int = 2**20,
        keepalive_s: int = 30,
        protocol: int | None = None,
    ) -> MqttConsumer:
        consumer = MqttConsumer(
            MqttOptions(
                broker.host,
                broker.port,
                client_id,
                (f"{prefix}/#",),
                session_expiry_s=300,
                receive_maximum=receive_maximum,
                max_held_bytes=max_held_bytes,
                keepalive_s=keepalive_s,
                protocol=protocol,
            ),
            asyncio.get_running_loop(),
        )
        consumer.start()
        started.append(consumer)
        return consumer

    yield make
    for consumer in started:
        await consumer.stop()
    # End the session: a clean start with no expiry (3.1.1: a clean session) discards it.
    protocol = paho_protocol(broker)
    end = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=None if protocol == MQTTProtocolVersion.MQTTv5 else True,
    )
    if protocol == MQTTProtocolVersion.MQTTv5:
        end.connect(broker.host, broker.port, clean_start=True)
    else:
        end.connect(broker.host, broker.port)
    end.disconnect()


async def until(check: Callable[[], bool], what: str, within: float = 10) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - the state lives in the consumer, polled
            await asyncio.sleep(0.02)
    assert check(), what


async def receive(consumer: MqttConsumer, n: int) -> list[Message]:
    got: list[Message] = []
    async with asyncio.timeout(10):
        while len(got) < n:
            await consumer.wait_for_messages()
            got += consumer.take(n - len(got))
    return got


async def test_messages_arrive_with_topic_payload_and_packet_id(
    consumers: Callable[..., MqttConsumer], publisher: Callable[..., None], prefix: str
) -> None:
    consumer = consumers()
    await asyncio.wait_for(consumer.subscribed.wait(), 10)
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = "application/json"
    props.UserProperty = ("gateway", "gw-1")
    props.MessageExpiryInterval = 600
    payloads = [b'{"n": %d}' % i for i in range(50)]
    for i, payload in enumerate(payloads):
        publisher(f"{prefix}/c1/bin_fill/d{i}", payload, props if i % 2 else None)
    got = await receive(consumer, 50)
    assert [m.payload for m in got] == payloads  # properties skipped, payload intact
    assert [m.topic for m in got] == [f"{prefix}/c1/bin_fill/d{i}" for i in range(50)]
    assert all(m.mid and not m.dup and m.generation == 1 for m in got)
    assert consumer.held == 50 and consumer.held_bytes == sum(map(len, payloads))
    assert consumer.ack(got) == 50
    assert consumer.held == 0 and consumer.held_bytes == 0


async def test_unacknowledged_messages_come_again_on_the_next_connection(
    consumers: Callable[..., MqttConsumer], publisher: Callable[..., None], prefix: str
) -> None:
    first = consumers()
    await asyncio.wait_for(first.subscribed.wait(), 10)
    for i in range(10):
        publisher(f"{prefix}/c1/flood_level/g{i}", b"%d" % i)
    got = await receive(first, 10)
    first.ack(got[:4])  # "committed"; the other six were not
    await first.stop()

    second = consumers()
    again = await receive(second, 6)
    assert [m.payload for m in again] == [b"%d" % i for i in range(4, 10)]
    assert all(m.dup for m in again)
    second.ack(again)
    await asyncio.sleep(0.3)
    assert second.buffered == 0  # the four acknowledged ones never came back


async def test_held_messages_stay_within_the_window_until_acknowledged(
    consumers: Callable[..., MqttConsumer], publisher: Callable[..., None], prefix: str
) -> None:
    consumer = consumers(receive_maximum=5)
    await asyncio.wait_for(consumer.subscribed.wait(), 10)
    for i in range(40):
        publisher(f"{prefix}/c1/air_quality/s{i}", b"x" * 10)
    await until(lambda: consumer.held == 5, "a full window")
    await asyncio.sleep(0.3)
    assert consumer.held == 5, "no more than the window before an ack"
    seen = 0
    while seen < 40:
        batch = await receive(consumer, min(5, 40 - seen))
        assert consumer.held <= 5
        consumer.ack(batch)
        seen += len(batch)
    assert consumer.held == 0


async def test_the_byte_limit_holds_but_always_lets_one_message_in(
    consumers: Callable[..., MqttConsumer], publisher: Callable[..., None], prefix: str
) -> None:
    consumer = consumers(receive_maximum=100, max_held_bytes=1000)
    await asyncio.wait_for(consumer.subscribed.wait(), 10)
    publisher(f"{prefix}/c1/bin_fill/big", b"b" * 5000)  # larger than the limit on its own
    for i in range(10):
        publisher(f"{prefix}/c1/bin_fill/d{i}", b"s" * 400)
    big = await receive(consumer, 1)
    await asyncio.sleep(0.3)
    assert consumer.held == 1 and consumer.held_bytes == 5000
    consumer.ack(big)
    small = await receive(consumer, 2)
    await asyncio.sleep(0.3)
    assert consumer.held_bytes == 800 and consumer.buffered == 0  # a third would pass 1000
    consumer.ack(small)
    for _ in range(4):  # two at a time, as the limit allows
        pair = await receive(consumer, 2)
        assert consumer.held == 2
        consumer.ack(pair)
    assert consumer.held == 0


async def test_a_broker_restart_reconnects_and_old_acknowledgements_are_dropped(
    broker: Broker,
    consumers: Callable[..., MqttConsumer],
    publisher: Callable[..., None],
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker.require_mosquitto("sessions saved across a broker restart")
    consumer = consumers(keepalive_s=5)
    await asyncio.wait_for(consumer.subscribed.wait(), 10)
    publisher(f"{prefix}/c1/bin_fill/d1", b"before")
    (old,) = await receive(consumer, 1)
    caplog.set_level(logging.INFO, logger="ingest.mqtt")
    broker.stop()
    await until(lambda: not consumer.connected, "the disconnection")
    assert not consumer.subscribed.is_set()
    broker.start()
    await until(lambda: consumer.subscribed.is_set(), "a new subscription", within=30)
    assert consumer.generation == 2
    # The broker resends the unacknowledged message (its session was saved on shutdown) with a
    # packet id that may belong to another message now: the old copy must not be acknowledged.
    (again,) = await receive(consumer, 1)
    assert again.payload == b"before" and again.dup and again.generation == 2
    assert consumer.ack([old]) == 0
    assert consumer.ack([again]) == 1
    assert "session present: True" in caplog.text


async def test_mqtt_3_1_1_keeps_the_contract(
    broker: Broker,
    consumers: Callable[..., MqttConsumer],
    publisher: Callable[..., None],
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Pinned to 3.1.1 (with Mosquitto; amqtt gets it anyway): delivery, our own window without
    Receive Maximum, and redelivery of what was not acknowledged, on the persistent session."""
    caplog.set_level(logging.INFO, logger="ingest.mqtt")
    first = consumers(receive_maximum=5, protocol=wire.MQTT_311)
    await asyncio.wait_for(first.subscribed.wait(), 10)
    assert first.level == wire.MQTT_311 and "with MQTT 3.1.1" in caplog.text
    for i in range(12):
        publisher(f"{prefix}/c1/bin_fill/d{i}", b"%d" % i)
    await until(lambda: first.held == 5, "a full window")
    await asyncio.sleep(0.3)
    assert first.held == 5, "no more than our window before an ack"
    got = await receive(first, 5)
    first.ack(got)
    more = await receive(first, 5)  # the next five, not acknowledged: "not committed"
    assert [m.payload for m in got + more] == [b"%d" % i for i in range(10)]
    await first.stop()

    second = consumers(receive_maximum=5, protocol=wire.MQTT_311)
    again = await receive(second, 5)
    assert [m.payload for m in again] == [b"%d" % i for i in range(5, 10)]
    assert all(m.dup for m in again)
    second.ack(again)
    rest = await receive(second, 2)
    assert [m.payload for m in rest] == [b"10", b"11"]
    second.ack(rest)


async def test_a_broker_that_refuses_mqtt_5_is_spoken_to_in_3_1_1() -> None:
    """What amqtt does, from a fake broker that answers the way it does (CONNACK return code 1
    and close for MQTT 5), so it is tested whichever broker the tests have."""
    levels: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readexactly(9)  # fixed header (one length byte), "MQTT", level
        levels.append(head[8])
        if levels[-1] == wire.MQTT_5:
            writer.write(b"\x20\x02\x00\x01")
            writer.close()
            return
        writer.write(b"\x20\x02\x00\x00")  # accepted
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    consumer = MqttConsumer(
        MqttOptions("127.0.0.1", port, "t", ("p/#",), 60, 10), asyncio.get_running_loop()
    )
    consumer.start()
    try:
        await until(lambda: wire.MQTT_311 in levels, "a 3.1.1 CONNECT")
        assert levels[0] == wire.MQTT_5 and consumer.level == wire.MQTT_311
    finally:
        await consumer.stop()
        server.close()


async def test_a_real_connect_refused_as_mqtt_5_is_made_again_in_3_1_1() -> None:
    """A broker that took the probe but refuses the MQTT 5 CONNECT with return code 1 (say, a
    3.1.1 broker put in place of a 5 one) is spoken to in 3.1.1 at once."""
    levels: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readexactly(9)
        levels.append(head[8])
        probe = len(levels) == 1
        refuse = head[8] == wire.MQTT_5 and not probe
        writer.write(b"\x20\x02\x00\x01" if refuse else b"\x20\x03\x00\x00\x00")
        if refuse or probe:
            writer.close()
            return
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    consumer = MqttConsumer(
        MqttOptions("127.0.0.1", port, "t", ("p/#",), 60, 10), asyncio.get_running_loop()
    )
    consumer.start()
    try:
        await until(lambda: len(levels) >= 3, "three CONNECTs")
        assert levels[:3] == [wire.MQTT_5, wire.MQTT_5, wire.MQTT_311]
    finally:
        await consumer.stop()
        server.close()


async def test_packets_split_anywhere_by_tcp_are_put_back_together() -> None:
    from ingest.mqtt import _Connection
    from placewatch import mqtt_wire as wire

    def publish(topic: bytes, mid: int, payload: bytes, props: bytes = b"\x00") -> bytes:
        body = len(topic).to_bytes(2, "big") + topic + mid.to_bytes(2, "big") + props + payload
        return bytes((0x32,)) + wire.varint(len(body)) + body

    stream = (
        publish(b"p/c/bin_fill/a", 1, b"x" * 200)  # a two-byte remaining length
        + b"\xd0\x00"  # PINGRESP
        + publish(b"p/c/bin_fill/b", 2, b"{}", props=b"\x05\x02\x00\x00\x02\x58")
    )
    consumer = MqttConsumer(
        MqttOptions("127.0.0.1", 1, "t", ("p/#",), 60, 10), asyncio.get_running_loop()
    )
    conn = _Connection(consumer)
    for i in range(len(stream)):
        conn.data_received(stream[i : i + 1])
    got = consumer.take(10)
    assert [(m.topic, m.mid, m.payload) for m in got] == [
        ("p/c/bin_fill/a", 1, b"x" * 200),
        ("p/c/bin_fill/b", 2, b"{}"),
    ]
    assert not conn.buffer


async def test_3_1_1_publishes_have_no_properties() -> None:
    from ingest.mqtt import _Connection

    body = b"\x00\x0ep/c/bin_fill/a\x00\x07" + b'{"v": 1}'
    consumer = MqttConsumer(
        MqttOptions("127.0.0.1", 1, "t", ("p/#",), 60, 10, protocol=wire.MQTT_311),
        asyncio.get_running_loop(),
    )
    _Connection(consumer).data_received(b"\x32" + wire.varint(len(body)) + body)
    (got,) = consumer.take(10)
    assert (got.topic, got.mid, got.payload) == ("p/c/bin_fill/a", 7, b'{"v": 1}')
