"""MQTT 5 QoS 1 consumer on asyncio, acknowledging only what the caller says is committed.

Why not paho or aiomqtt: the delivery contract needs PUBACK only after the database COMMIT, and
paho-mqtt 2 (which aiomqtt wraps) does offer manual acks, but profiling the drain benchmark showed
paho's receive path taking half of ingest's CPU: a ``select`` and three ``recv`` calls per packet,
a 27-field ``Properties`` object and an ``MQTTMessage`` per PUBLISH, a topic matcher, and a thread
hop into asyncio (docs/benchmarks.md). A subscriber needs a small part of the protocol: CONNECT,
SUBSCRIBE, PUBLISH in, PUBACK out, PINGREQ and DISCONNECT (``ingest.mqtt_wire``). Here one
``data_received`` call parses every complete packet in a chunk, on the event loop, with no thread.

Backpressure: we ask the broker for a window (Receive Maximum) and enforce it ourselves.
Mosquitto 2.0.x honours the window only while nothing is acknowledged: each PUBACK lets it send up
to a whole window more (eclipse/mosquitto#2301; see broker/README.md), so a slow database would
otherwise let an unbounded backlog pile up here. So the consumer counts the messages (and bytes)
it holds, received and not yet acknowledged; at either limit it stops parsing and pauses reading
the socket: TCP pushes back on the broker, and the broker keeps the rest in our persistent session.
It resumes as soon as a committed batch is acknowledged. Keep-alive pings go on while paused.

Acknowledgements carry the connection generation they were received on. After a reconnect the
broker resends every unacknowledged message of the session (DUP set) and may reuse packet ids, so
an ack for an old generation is dropped rather than risk acknowledging a different message. The
old copies are still stored (after a broker crash they may exist nowhere else); the resent copies
are stored idempotently and acknowledged.

MQTT 3.1.1: unless ``MqttOptions.protocol`` pins a version, the first connection is preceded by
a probe (``wire.probe_packet``, a throwaway clean session): a broker that refuses MQTT 5
("unacceptable protocol version", as amqtt, the embedded broker, does) is then spoken to in
3.1.1, and so is one that refuses our MQTT 5 CONNECT that way later.
The contract is the same: no clean session, QoS 1, PUBACK only after the commit. What 3.1.1 lacks
is only advisory here: without Receive Maximum the broker does not know our window, so the window
is the message and byte limits above (pause reading, TCP pushes back) plus the broker's own
in-flight limit; without session expiry the broker keeps the session as long as it likes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from placewatch import mqtt_wire as wire

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 10.0


class _RefusedError(Exception):
    """The broker answered CONNECT with a failure reason (bad credentials, not authorised...)."""


class _DowngradeError(Exception):
    """The broker refused MQTT 5: connect again at once with 3.1.1."""


@dataclass(slots=True)  # not frozen: frozen dataclasses cost more to build, one per message
class Message:
    topic: str
    payload: bytes
    mid: int
    dup: bool
    received_at: float  # time.time() when the packet was read
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
    # TLS (``client_ssl_context``); None for plain TCP. The broker's certificate must name
    # ``host`` (checked against ``server_hostname``).
    tls: ssl.SSLContext | None = None
    # CONNECT protocol level: 5 or 4 (3.1.1); None: 5, and 3.1.1 if the broker refuses 5
    # (``wire.protocol_level`` reads the setting's "5", "3.1.1" or "auto").
    protocol: int | None = None


def client_ssl_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A verifying client context: the system's CAs, or only ``ca_file`` if given (a private
    CA); with ``cert_file`` (and ``key_file``) a client certificate for mutual TLS."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


class _Connection(asyncio.Protocol):
    """One TCP connection: splits the byte stream into packets and hands them to the consumer."""

    def __init__(self, consumer: MqttConsumer) -> None:
        self.consumer = consumer
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.paused = False  # reading paused at the window
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.connack: asyncio.Future[wire.Connack] = asyncio.get_running_loop().create_future()
        self.pong: asyncio.Future[None] | None = None  # a PINGRESP awaited
        self.last_read = time.monotonic()
        self.last_write = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        lost = exc or ConnectionError("the broker closed the connection")
        for waiting in (self.connack, self.pong, self.consumer.suback):
            if waiting is not None and not waiting.done():
                waiting.set_exception(lost)
                waiting.exception()  # retrieved: nobody may be awaiting it any more

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.last_write = time.monotonic()

    def data_received(self, data: bytes) -> None:
        self.last_read = time.monotonic()
        self.buffer += data
        self.parse()

    def parse(self) -> None:
        """Handle every complete packet in the buffer; stop at the window, leaving the rest."""
        buf = self.buffer
        consumer = self.consumer
        pos, end = 0, len(buf)
        now = time.time()
        arrived = 0
        try:
            while pos < end:
                # Remaining length: one or two bytes for every reading; the general case after.
                if pos + 2 < end and buf[pos + 1] < 0x80:
                    length, start = buf[pos + 1], pos + 2
                elif pos + 3 < end and buf[pos + 2] < 0x80:
                    length, start = (buf[pos + 1] & 0x7F) | buf[pos + 2] << 7, pos + 3
                else:
                    got = wire.read_varint(buf, pos + 1)
                    if got is None:
                        break
                    length, start = got
                stop = start + length
                if stop > end:
                    break
                first = buf[pos]
                if first & 0xF0 == wire.PUBLISH:
                    if not consumer.accepting:
                        pass  # stopping: left unacknowledged, the broker resends it next time
                    elif not consumer.room_for(length):
                        self.pause()
                        break
                    else:
                        consumer.received(self._publish(first, bytes(buf[start:stop]), now))
                        arrived += 1
                else:
                    self.consumer.control(first, bytes(buf[start:stop]))
                pos = stop
        except (wire.ProtocolError, IndexError) as exc:  # IndexError: a packet cut short
            log.error("malformed packet from the broker (%r): reconnecting", exc)
            pos = end
            if self.transport is not None:
                self.transport.abort()
        finally:
            del buf[:pos]
            if arrived:
                consumer.wake()

    def _publish(self, first: int, body: bytes, now: float) -> Message:
        qos = (first >> 1) & 3
        n = int.from_bytes(body[:2], "big")
        raw_topic = body[2 : 2 + n]
        pos = 2 + n
        mid = 0
        if qos:
            mid = int.from_bytes(body[pos : pos + 2], "big")
            pos += 2
        if self.consumer.level < wire.MQTT_5:
            props_len = 0  # 3.1.1 has no properties
        elif body[pos] == 0:  # no properties: what devices send
            props_len, pos = 0, pos + 1
        else:
            got = wire.read_varint(body, pos)
            if got is None:
                raise wire.ProtocolError("PUBLISH properties cut short")
            props_len, pos = got
        try:
            topic = raw_topic.decode()
        except UnicodeDecodeError:  # brokers should refuse these; keep it for the dead letters
            topic = raw_topic.decode("utf-8", "backslashreplace")
        return Message(
            topic, body[pos + props_len :], mid, bool(first & 0x08), now, self.consumer.generation
        )

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        """Room again: parse what is buffered, then read the socket if still under the window."""
        if not self.paused:
            return
        self.paused = False
        self.last_read = time.monotonic()  # nothing could be heard while paused
        self.parse()
        if not self.paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class MqttConsumer:
    """Subscribes with QoS 1 on a persistent session and hands messages to the event loop."""

    def __init__(self, options: MqttOptions, loop: asyncio.AbstractEventLoop) -> None:
        self._opt = options
        self._loop = loop
        self._buffer: deque[Message] = deque()
        # Messages received and not yet acknowledged or released; at most ``receive_maximum``.
        self._held = 0
        self._held_bytes = 0
        self._ready = asyncio.Event()
        self.generation = 0
        self.accepting = True  # False once stopping
        self._stopping = False
        self._conn: _Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.suback: asyncio.Future[list[int]] | None = None  # the SUBACK awaited
        self.connected = False
        self.subscribed = asyncio.Event()
        self.level = options.protocol or wire.MQTT_5  # the protocol level of the connection
        self._probed = options.protocol is not None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = self._loop.create_task(self._run())

    def pause(self) -> None:
        """Take no more messages (graceful stop); what is buffered can still be acknowledged.
        Reading goes on (a PINGRESP must get through) but new PUBLISHes are left to the broker."""
        self.accepting = False
        if self._conn is not None:
            self._conn.resume()

    async def stop(self) -> None:
        """Disconnect cleanly; the session (and anything unacknowledged) stays on the broker.

        A PINGREQ round trip first: the broker answers it after the PUBACKs sent before it, so
        they are known to be applied. Without it, Mosquitto (one packet per socket per loop
        turn) could let our next connection take the session over before it had read them all,
        and resend messages already stored (measured in tests/ingest/test_mqtt.py)."""
        self._stopping = True
        self.pause()
        conn = self._conn
        if conn is not None and conn.transport is not None:
            if self.connected:
                conn.pong = self._loop.create_future()
                conn.write(wire.PINGREQ_PACKET)
                with contextlib.suppress(TimeoutError, ConnectionError):
                    await asyncio.wait_for(asyncio.shield(conn.pong), 2)
            conn.write(wire.DISCONNECT_PACKET)
            conn.transport.close()  # flushes the DISCONNECT (and queued PUBACKs) first
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.closed), 5)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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

    async def wait_for_more(self) -> None:
        """Until the next packets arrive (whatever is buffered already)."""
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
        conn = self._conn
        mids: list[int] = []
        if self.connected and conn is not None:
            gen = self.generation
            # mid 0: a QoS 0 delivery, which has no packet id and takes no PUBACK.
            mids = [m.mid for m in messages if m.generation == gen and m.mid]
            if mids:
                conn.write(wire.pubacks(mids))
        self.release(messages)
        return len(mids)

    def release(self, messages: Sequence[Message]) -> None:
        """Stop holding these messages (acknowledged, or given up to the broker to resend)."""
        self._held -= len(messages)
        self._held_bytes -= sum(len(m.payload) for m in messages)
        if self._conn is not None:
            self._conn.resume()

    # -- called by the connection ---------------------------------------------------------------

    def room_for(self, size: int) -> bool:
        """Whether one more message fits the window; one is always let in, however large, so a
        big one cannot stall us."""
        return self._held == 0 or (
            self._held < self._opt.receive_maximum
            and self._held_bytes + size <= self._opt.max_held_bytes
        )

    def received(self, message: Message) -> None:
        self._held += 1
        self._held_bytes += len(message.payload)
        self._buffer.append(message)

    def wake(self) -> None:
        self._ready.set()

    def control(self, first: int, body: bytes) -> None:
        """Every packet but PUBLISH."""
        kind = first & 0xF0
        conn = self._conn
        if kind == wire.CONNACK and conn is not None and not conn.connack.done():
            connack = wire.parse_connack(body, self.level)
            if connack.reason < 0x80:
                # Now, not when _session resumes: resent messages may follow in the same chunk
                # and must carry the new generation to be acknowledged.
                self.generation += 1
                self.connected = True
            conn.connack.set_result(connack)
        elif kind == wire.SUBACK and self.suback is not None and not self.suback.done():
            self.suback.set_result(wire.parse_suback(body, self.level)[1])
        elif kind == wire.DISCONNECT:
            log.warning(
                "the broker closed the connection: %s",
                wire.reason_text(wire.parse_disconnect(body)),
            )
        elif kind == wire.PINGRESP:
            if conn is not None and conn.pong is not None and not conn.pong.done():
                conn.pong.set_result(None)
        else:
            raise wire.ProtocolError(f"unexpected packet type 0x{first:02x}")

    # -- the connection loop --------------------------------------------------------------------

    async def _run(self) -> None:
        delay = RECONNECT_MIN_S
        failing = False
        while not self._stopping:
            try:
                await self._session()
                delay = RECONNECT_MIN_S
                failing = False
            except _DowngradeError:
                log.warning(
                    "the broker at %s:%s refused MQTT 5: using MQTT 3.1.1",
                    self._opt.host,
                    self._opt.port,
                )
                self.level = wire.MQTT_311
                continue
            except _RefusedError as exc:
                log.error("broker refused connection: %s", exc)
            except ssl.SSLError as exc:  # before OSError, its base: a setup fault, not a blip
                if not failing:
                    log.error(
                        "TLS with the broker at %s:%s failed (%s): check the broker's certificate"
                        " and PLACEWATCH_MQTT_TLS_CA_FILE; retrying",
                        self._opt.host,
                        self._opt.port,
                        f"certificate verify failed: {exc.verify_message}"
                        if isinstance(exc, ssl.SSLCertVerificationError)
                        else exc.reason or exc,
                    )
                failing = True
            except (OSError, TimeoutError, ConnectionError, wire.ProtocolError) as exc:
                if not failing:
                    log.warning(
                        "cannot reach the broker at %s:%s (%s); retrying",
                        self._opt.host,
                        self._opt.port,
                        exc or type(exc).__name__,
                    )
                failing = True
            finally:
                if self.connected and not self._stopping:
                    log.warning("disconnected from the broker; reconnecting")
                self.connected = False
                self.subscribed.clear()
                self._conn = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _session(self) -> None:
        """Connect, subscribe, and keep the connection alive until it closes."""
        o = self._opt
        if not self._probed:
            self.level = await self._probe()
            self._probed = True
        _, conn = await asyncio.wait_for(
            self._loop.create_connection(
                lambda: _Connection(self),
                o.host,
                o.port,
                ssl=o.tls,
                server_hostname=o.host if o.tls is not None else None,
            ),
            CONNECT_TIMEOUT_S,
        )
        self._conn = conn
        try:
            conn.write(
                wire.connect_packet(
                    o.client_id,
                    o.keepalive_s,
                    o.session_expiry_s,
                    o.receive_maximum,
                    o.username,
                    o.password,
                    self.level,
                )
            )
            connack = await asyncio.wait_for(asyncio.shield(conn.connack), CONNECT_TIMEOUT_S)
            if connack.reason == 0x84 and self.level >= wire.MQTT_5 and o.protocol is None:
                raise _DowngradeError
            if connack.reason >= 0x80:
                detail = f" ({connack.reason_string})" if connack.reason_string else ""
                raise _RefusedError(f"{wire.reason_text(connack.reason)}{detail}")
            if self.generation > 1 and not connack.session_present:
                log.warning(
                    "the broker has no session for %s any more (expired, or lost in a broker"
                    " crash): messages published while we were away may be gone",
                    o.client_id,
                )
            log.info(
                "connected to %s:%s as %s with MQTT %s (session present: %s)",
                o.host,
                o.port,
                o.client_id,
                "5" if self.level >= wire.MQTT_5 else "3.1.1",
                connack.session_present,
            )
            keepalive = connack.server_keepalive_s or o.keepalive_s
            pinger = asyncio.create_task(self._keep_alive(conn, keepalive))
            try:
                await self._subscribe(conn)
                await asyncio.shield(conn.closed)
            finally:
                pinger.cancel()
        finally:
            if conn.transport is not None and not conn.closed.done():
                conn.transport.abort()

    async def _probe(self) -> int:
        """MQTT 5, unless the broker refuses it as an unacceptable protocol version."""
        o = self._opt
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                o.host, o.port, ssl=o.tls, server_hostname=o.host if o.tls is not None else None
            ),
            CONNECT_TIMEOUT_S,
        )
        try:
            writer.write(wire.probe_packet(f"{o.client_id}-probe", o.username, o.password))
            try:
                head = await asyncio.wait_for(reader.readexactly(4), CONNECT_TIMEOUT_S)
            except asyncio.IncompleteReadError:
                raise ConnectionError("the broker closed the connection") from None
            with contextlib.suppress(OSError):
                writer.write(wire.DISCONNECT_PACKET)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        if head[0] & 0xF0 == wire.CONNACK and head[3] == 0x01:
            log.info("the broker at %s:%s refuses MQTT 5: using MQTT 3.1.1", o.host, o.port)
            return wire.MQTT_311
        return wire.MQTT_5

    async def _subscribe(self, conn: _Connection) -> None:
        # Subscribing again on a resumed session is harmless and repairs a lost subscription.
        self.suback = self._loop.create_future()
        conn.write(wire.subscribe_packet(1, self._opt.topics, self.level))
        # amqtt answers a resumed session's SUBSCRIBE only once the messages queued for it are
        # all acknowledged (our commits): wait on while packets keep coming or we hold some.
        while True:
            try:
                reasons = await asyncio.wait_for(asyncio.shield(self.suback), CONNECT_TIMEOUT_S)
                break
            except TimeoutError:
                if not conn.paused and time.monotonic() - conn.last_read > CONNECT_TIMEOUT_S:
                    raise
        topics = ", ".join(self._opt.topics)
        if any(r >= 0x80 for r in reasons):
            log.error(
                "subscription to %s refused: %s", topics, ", ".join(map(wire.reason_text, reasons))
            )
            return
        log.info("subscribed to %s", topics)
        self.subscribed.set()

    async def _keep_alive(self, conn: _Connection, keepalive_s: int) -> None:
        """PINGREQ when we have sent nothing for half the keep-alive; drop a connection that has
        been silent for 1.5 keep-alives while we were reading (a paused reader hears nothing)."""
        if keepalive_s <= 0:
            return
        while True:
            await asyncio.sleep(keepalive_s / 4)
            now = time.monotonic()
            if now - conn.last_write >= keepalive_s / 2:
                conn.write(wire.PINGREQ_PACKET)
            if not conn.paused and now - conn.last_read > keepalive_s * 1.5:
                log.warning(
                    "no packet from the broker for %.0f s: reconnecting", now - conn.last_read
                )
                if conn.transport is not None:
                    conn.transport.abort()
                return
