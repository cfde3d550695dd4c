"""A lean MQTT 5 (or 3.1.1) publisher (QoS 0 or 1) for backfills and load: what paho does per
publish costs about 140 µs of CPU on a benchmark machine (a core at 7,000 msg/s); this builds
each PUBLISH in a few lines, writes many per system call, and counts PUBACKs on a reader
thread, keeping within the broker's Receive Maximum. No reconnection: runs that use it are
bounded, and a deterministic simulation can simply be run again (ingest drops what it already
stored).
Long live runs use paho (``simulators.basic.Publisher``), which reconnects.

A broker that refuses MQTT 5 (amqtt, the embedded broker, knows only 3.1.1) is asked again with
3.1.1 unless a protocol is given; ``broker_protocol`` finds out the same for paho users.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

from placewatch import mqtt_wire as wire

_FLUSH_BYTES = 64 * 1024
# 3.1.1 has no Receive Maximum: the window used then, unless ``max_inflight`` gives one. It is
# Mosquitto's max_inflight_messages in broker/mosquitto.conf (amqtt sets no limit).
V311_WINDOW = 1000


def broker_protocol(
    host: str,
    port: int,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 10.0,
) -> int:
    """The protocol level to use with this broker: 5 (``wire.MQTT_5``) unless it refuses MQTT 5
    as an unacceptable protocol version, then 4 (3.1.1). Connects once with a throwaway clean
    session (``wire.probe_packet``) to find out."""
    probe = wire.probe_packet(f"pw-probe-{os.getpid()}", username, password)
    if wire.connack_reason(host, port, probe, timeout) == 0x84:
        return wire.MQTT_311
    return wire.MQTT_5


def receive_maximum(props: bytes) -> int:
    """Receive Maximum from CONNACK properties; 65,535 when absent."""
    found = wire.parse_properties(props, 0)[0].get(wire.RECEIVE_MAXIMUM) if props else None
    return found if isinstance(found, int) else 65_535


class WirePublisher:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        max_inflight: int | None = None,
        flush_bytes: int = _FLUSH_BYTES,
        protocol: int | None = None,
    ) -> None:
        """``flush_bytes``: publishes are written once this many bytes wait (one system call
        for many); 0 sends each at once, for latency measurements. ``protocol``: 5 or 4
        (3.1.1); None tries 5, then 3.1.1 if the broker refuses 5."""
        if qos not in (0, 1):
            raise ValueError("the wire publisher sends QoS 0 or 1")
        self.qos = qos
        self.level = protocol or wire.MQTT_5
        while True:
            self._sock = socket.create_connection((host, port), timeout=10)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock.sendall(wire.probe_packet(client_id, username, password, self.level))
            self._buf = bytearray()
            kind, connack = self._read_one()
            reason = (
                wire.parse_connack(connack[:2], wire.MQTT_311).reason
                if kind == wire.CONNACK and len(connack) >= 2
                else None
            )
            if reason == 0x84 and protocol is None and self.level >= wire.MQTT_5:
                self._sock.close()
                self.level = wire.MQTT_311
                continue
            if reason != 0:
                self._sock.close()
                text = wire.reason_text(reason) if reason is not None else "no CONNACK"
                raise ConnectionError(f"broker refused the connection (CONNACK {text})")
            break
        window = receive_maximum(connack[2:]) if self.level >= wire.MQTT_5 else V311_WINDOW
        self.window = min(window, max_inflight) if max_inflight else window
        self._sock.settimeout(None)
        self._cond = threading.Condition()
        self.sent = self.acked = self.refused = 0
        self._error: BaseException | None = None
        self._next_id = 0
        self._out = bytearray()
        self._flush_bytes = flush_bytes
        self._props = b"\x00" if self.level >= wire.MQTT_5 else b""  # PUBLISH: no properties
        self._reader = threading.Thread(target=self._read_acks, daemon=True, name="puback-reader")
        self._reader.start()

    def _read_one(self) -> tuple[int, bytes]:
        while True:
            if len(self._buf) >= 2 and (parsed := wire.read_varint(self._buf, 1)) is not None:
                length, i = parsed
                if len(self._buf) >= i + length:
                    kind = self._buf[0] & 0xF0
                    packet = bytes(self._buf[i : i + length])
                    del self._buf[: i + length]
                    return kind, packet
            chunk = self._sock.recv(65_536)
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            self._buf += chunk

    def _read_acks(self) -> None:
        buf = b""
        try:
            while True:
                chunk = self._sock.recv(262_144)
                if not chunk:
                    raise ConnectionError("the broker closed the connection")
                buf += chunk
                acked = refused = 0
                i, n = 0, len(buf)
                while i + 2 <= n:
                    parsed = wire.read_varint(buf, i + 1)
                    if parsed is None:
                        break
                    length, start = parsed
                    if start + length > n:
                        break
                    kind = buf[i] & 0xF0
                    if kind == 0x40:  # PUBACK: a reason code of 0x80 or more refuses it
                        acked += 1
                        refused += length > 2 and buf[start + 2] >= 0x80
                    elif kind == 0xE0:
                        reason = buf[start] if length else 0
                        raise ConnectionError(f"the broker disconnected us (reason {reason:#x})")
                    i = start + length
                buf = buf[i:]
                if acked:
                    with self._cond:
                        self.acked += acked
                        self.refused += refused
                        self._cond.notify_all()
        except (OSError, ConnectionError) as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def publish(self, topic: str, payload: bytes) -> None:
        if self.qos:
            if self.sent - self.acked >= self.window:
                self.flush()
                with self._cond:
                    while self.sent - self.acked >= self.window and self._error is None:
                        self._cond.wait(1.0)
            if self._error is not None:
                raise ConnectionError(f"publisher: {self._error}")
            self._next_id = self._next_id % 65_535 + 1
            body = wire.string(topic) + self._next_id.to_bytes(2, "big") + self._props + payload
            self._out += b"\x32" + wire.varint(len(body)) + body
        else:
            body = wire.string(topic) + self._props + payload
            self._out += b"\x30" + wire.varint(len(body)) + body
        self.sent += 1
        if len(self._out) >= self._flush_bytes:
            self.flush()

    def flush(self) -> None:
        if self._out:
            self._sock.sendall(self._out)
            self._out.clear()

    def backlog(self) -> int:
        return self.sent - self.acked if self.qos else 0

    def wait_acked(self, timeout: float = 60.0) -> bool:
        """Block until the broker has acknowledged every publish (QoS 1)."""
        self.flush()
        if not self.qos:
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.acked < self.sent and self._error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return self.acked >= self.sent

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.flush()
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT, normal
        with contextlib.suppress(OSError):
            self._sock.close()
