"""MQTT 5 consumer with manual acknowledgement, bridged from paho's network thread to asyncio.

Why paho directly and not aiomqtt: the delivery contract needs PUBACK only after the database
COMMIT, and aiomqtt 2.x has no public manual-ack API, whereas paho-mqtt 2.x has ``manual_ack``.
paho runs its own network thread (``loop_start``), which also reconnects by itself; messages
cross to the event loop through a deque and one wake-up per burst, not one call per message.

Backpressure: we ask the broker for a window (MQTT 5 Receive Maximum) and enforce it ourselves.
Mosquitto 2.0.x honours the window only while nothing is acknowledged: each PUBACK lets it send up
to a whole window more (eclipse/mosquitto#2301; see broker/README.md), so a slow database would
otherwise let an unbounded backlog pile up here. So the consumer counts the messages (and bytes)
it holds, received and not yet acknowledged, and at either limit blocks paho's network thread inside
``on_message``: paho stops reading the socket, TCP pushes back on the broker, and the broker keeps
the rest in our persistent session. The thread resumes as soon as a committed batch is
acknowledged. While it waits no PINGREQ goes out: Mosquitto 2.0.11 kept the connection through a
30 s outage with a 5 s keepalive (measured); a broker that closes it instead costs only a
reconnect, after which it resends what was not acknowledged and dedupe absorbs the repeats.

Acknowledgements carry the connection generation they were received on. After a reconnect the
broker resends every unacknowledged message of the session (DUP set) and may reuse packet ids, so
an ack for an old generation is dropped rather than risk acknowledging a different message. The
old copies are still stored (after a broker crash they may exist nowhere else); the resent copies
are stored idempotently and acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Message:
    topic: str
    payload: bytes
    mid: int
    dup: bool
    received_at: float  # time.time() when paho handed it over
    generation: int


@dataclass(frozen=True)
class MqttOptions:
    host: str
    port: int
    client_id: str
    topics: tuple[str, ...]
    session_expiry_s: int
    receive_maximum: int
    max_held_bytes: int = 64 * 2**20
    keepalive_s: int = 30
    username: str | None = None
    password: str | None = None


class MqttConsumer:
    """Subscribes with QoS 1 on a persistent session and hands messages to the event loop."""

    def __init__(self, options: MqttOptions, loop: asyncio.AbstractEventLoop) -> None:
        self._opt = options
        self._loop = loop
        self._buffer: deque[Message] = deque()
        # Messages received and not yet acknowledged or released; at most ``receive_maximum``.
        self._held = 0
        self._held_bytes = 0
        self._room = threading.Condition()
        self._ready = asyncio.Event()
        self._wake_pending = False
        self._lock = threading.Lock()
        self._generation = 0
        self._limit = options.receive_maximum
        self._byte_limit = options.max_held_bytes
        self._accepting = True
        self.connected = False
        self.subscribed = asyncio.Event()
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if options.username:
            self._client.username_pw_set(options.username, options.password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.suppress_exceptions = True  # a failing callback is logged, not fatal

    # -- lifecycle (event loop side) ----------------------------------------------------------

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._opt.session_expiry_s
        props.ReceiveMaximum = self._opt.receive_maximum
        self._client.connect_async(
            self._opt.host,
            self._opt.port,
            keepalive=self._opt.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def pause(self) -> None:
        """Take no more messages (graceful stop); what is buffered can still be acknowledged."""
        self._accepting = False
        with self._room:
            self._room.notify_all()

    def stop(self) -> None:
        """Disconnect cleanly; the session (and anything unacknowledged) stays on the broker."""
        self.pause()
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def held(self) -> int:
        """Messages received and not yet acknowledged or released (buffered + in a batch)."""
        return self._held

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    async def wait_for_messages(self) -> None:
        if not self._buffer:
            self._ready.clear()
            await self._ready.wait()

    def take(self, limit: int) -> list[Message]:
        """Up to ``limit`` buffered messages, oldest first.

        Messages from an earlier connection are stored too (after a broker crash they may exist
        nowhere else); only their acknowledgement is skipped, see ``ack``.
        """
        buf = self._buffer
        return [buf.popleft() for _ in range(min(limit, len(buf)))]

    def ack(self, messages: Sequence[Message]) -> int:
        """Acknowledge committed messages; returns how many acks were sent."""
        sent = 0
        with self._lock:
            gen = self._generation
            for msg in messages:
                # mid 0: a QoS 0 delivery, which has no packet id and takes no PUBACK.
                if self.connected and msg.generation == gen and msg.mid:
                    rc = self._client.ack(msg.mid, 1)
                    if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                        sent += 1
        self.release(messages)
        return sent

    def release(self, messages: Sequence[Message]) -> None:
        """Stop holding these messages (acknowledged, or given up to the broker to resend)."""
        with self._room:
            self._held -= len(messages)
            self._held_bytes -= sum(len(m.payload) for m in messages)
            self._room.notify_all()

    # -- paho callbacks (network thread) --------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("broker refused connection: %s", reason)
            return
        with self._lock:
            self._generation += 1
            self.connected = True
        if self._generation > 1 and not flags.session_present:
            log.warning(
                "the broker has no session for %s any more (expired, or lost in a broker crash):"
                " messages published while we were away may be gone",
                self._opt.client_id,
            )
        log.info(
            "connected to %s:%s as %s (session present: %s)",
            self._opt.host,
            self._opt.port,
            self._opt.client_id,
            flags.session_present,
        )
        # Subscribing again on a resumed session is harmless and repairs a lost subscription.
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(topic, options) for topic in self._opt.topics])

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("subscription to %s refused: %s", ", ".join(self._opt.topics), reasons)
            return
        log.info("subscribed to %s", ", ".join(self._opt.topics))
        self._loop.call_soon_threadsafe(self.subscribed.set)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self.connected = False
        if reason.is_failure:
            log.warning("disconnected from broker: %s; paho reconnects by itself", reason)
        self._loop.call_soon_threadsafe(self.subscribed.clear)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            self._accept(msg)
        except Exception:
            # Never let an exception reach paho: it would end the network thread silently.
            topic = getattr(msg, "_topic", b"")
            log.exception("could not take a message on %r; it stays unacknowledged", topic)

    def _accept(self, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers should refuse these; keep it for the dead letters
            topic = bytes(getattr(msg, "_topic", b"")).decode("utf-8", "backslashreplace")
        message = Message(
            topic, bytes(msg.payload), msg.mid, bool(msg.dup), time.time(), self._generation
        )
        size = len(message.payload)
        with self._room:
            # At the window: stop reading (see the module docstring) until a batch is acked.
            # One message is always let in, however large, so a big one cannot stall us.
            self._room.wait_for(
                lambda: (
                    not self._accepting
                    or self._held == 0
                    or (self._held < self._limit and self._held_bytes + size <= self._byte_limit)
                )
            )
            if not self._accepting:
                return  # stopping: left unacknowledged, the broker resends it to the next session
            self._held += 1
            self._held_bytes += size
        self._buffer.append(message)
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        self._ready.set()
