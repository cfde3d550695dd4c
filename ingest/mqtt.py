"""MQTT 5 consumer with manual acknowledgement, bridged from paho's network thread to asyncio.

Why paho directly and not aiomqtt: the delivery contract needs PUBACK only after the database
COMMIT, and aiomqtt 2.x has no public manual-ack API, whereas paho-mqtt 2.x has ``manual_ack``.
paho runs its own network thread (``loop_start``), which also reconnects by itself; messages
cross to the event loop through a deque and one wake-up per burst, not one call per message.

Backpressure: we ask the broker for a window (MQTT 5 Receive Maximum) and enforce it ourselves.
Mosquitto 2.0.x honours the window only while nothing is acknowledged: each PUBACK lets it send up
to a whole window more (eclipse/mosquitto#2301; see broker/README.md), so a slow database would
otherwise let an unbounded backlog pile up here. So the consumer counts the messages it holds
(received, not yet acknowledged) and, at the limit, blocks paho's network thread inside
``on_message``: paho stops reading the socket, TCP pushes back on the broker, and the broker keeps
the rest in our persistent session. The thread resumes as soon as a committed batch is
acknowledged. While it waits no PINGREQ goes out: Mosquitto 2.0.11 kept the connection through a
30 s outage with a 5 s keepalive (measured); a broker that closes it instead costs only a
reconnect, after which it resends what was not acknowledged and dedupe absorbs the repeats.

Acknowledgements carry the connection generation they were received on. After a reconnect the
broker resends every unacknowledged message of the session (DUP set) and may reuse packet ids, so
an ack for an old generation is dropped rather than risk acknowledging a different message; the
resent copy is stored idempotently and acknowledged instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
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
    topic: str
    session_expiry_s: int
    receive_maximum: int
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
        self._room = threading.Condition()
        self._ready = asyncio.Event()
        self._wake_pending = False
        self._lock = threading.Lock()
        self._generation = 0
        self._limit = options.receive_maximum
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

    async def wait_for_messages(self) -> None:
        if not self._buffer:
            self._ready.clear()
            await self._ready.wait()

    def take(self, limit: int) -> list[Message]:
        """Up to ``limit`` buffered messages from the current connection, oldest first."""
        out: list[Message] = []
        buf = self._buffer
        gen = self._generation
        stale = 0
        while buf and len(out) < limit:
            msg = buf.popleft()
            if msg.generation == gen:
                out.append(msg)
            else:
                stale += 1  # the broker resends it on the new connection; this copy is dropped
        if stale:
            self._release(stale)
        return out

    def ack(self, messages: Iterable[Message]) -> int:
        """Acknowledge committed messages; returns how many acks were sent."""
        sent = count = 0
        with self._lock:
            gen = self._generation
            for msg in messages:
                count += 1
                # mid 0: a QoS 0 delivery, which has no packet id and takes no PUBACK.
                if self.connected and msg.generation == gen and msg.mid:
                    rc = self._client.ack(msg.mid, 1)
                    if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                        sent += 1
        self._release(count)
        return sent

    def release(self, count: int) -> None:
        """Give up holding ``count`` messages without acknowledging them (the broker resends)."""
        self._release(count)

    def _release(self, count: int) -> None:
        with self._room:
            self._held -= count
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
        log.info(
            "connected to %s:%s as %s (session present: %s)",
            self._opt.host,
            self._opt.port,
            self._opt.client_id,
            flags.session_present,
        )
        # Subscribing again on a resumed session is harmless and repairs a lost subscription.
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe(self._opt.topic, options=options)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("subscription to %s refused: %s", self._opt.topic, reasons)
            return
        log.info("subscribed to %s", self._opt.topic)
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
        with self._room:
            # At the window: stop reading (see the module docstring) until a batch is acked.
            self._room.wait_for(lambda: self._held < self._limit or not self._accepting)
            if not self._accepting:
                return  # stopping: left unacknowledged, the broker resends it to the next session
            self._held += 1
        self._buffer.append(
            Message(
                msg.topic, bytes(msg.payload), msg.mid, bool(msg.dup), time.time(), self._generation
            )
        )
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        self._ready.set()
