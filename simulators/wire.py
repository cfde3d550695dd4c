"""A lean MQTT 5 publisher (QoS 0 or 1) for backfills and load: what paho does per publish costs
about 140 µs of CPU on a benchmark machine (a core at 7,000 msg/s); this builds each PUBLISH
in a few lines, writes many per system call, and counts PUBACKs on a reader thread, keeping
within the broker's Receive Maximum. No reconnection: runs that use it are bounded, and a
deterministic simulation can simply be run again (ingest drops what it already stored).
Long live runs use paho (``simulators.basic.Publisher``), which reconnects.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

_FLUSH_BYTES = 64 * 1024


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _read_varint(buf: bytes | bytearray, i: int) -> tuple[int, int] | None:
    """(value, index after it), or None if the buffer ends inside it."""
    value, shift = 0, 0
    while i < len(buf):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return value, i
        shift += 7
    return None


def receive_maximum(props: bytes) -> int:
    """Receive Maximum (property 0x21) from CONNACK properties; 65,535 when absent."""
    parsed = _read_varint(props, 0)
    if parsed is None:
        return 65_535
    length, i = parsed
    end = i + length
    while i < end:
        ident = props[i]
        i += 1
        if ident == 0x21:
            return int.from_bytes(props[i : i + 2], "big")
        if ident in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):  # one byte
            i += 1
        elif ident in (0x13, 0x22, 0x23):  # two-byte integers
            i += 2
        elif ident in (0x02, 0x11, 0x18, 0x27):  # four-byte integers
            i += 4
        elif ident == 0x0B:  # variable byte integer
            parsed = _read_varint(props, i)
            i = parsed[1] if parsed else end
        elif ident == 0x26:  # user property: two strings
            for _ in range(2):
                i += 2 + int.from_bytes(props[i : i + 2], "big")
        else:  # strings and binary data
            i += 2 + int.from_bytes(props[i : i + 2], "big")
    return 65_535


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
    ) -> None:
        """``flush_bytes``: publishes are written once this many bytes wait (one system call
        for many); 0 sends each at once, for latency measurements."""
        if qos not in (0, 1):
            raise ValueError("the wire publisher sends QoS 0 or 1")
        self.qos = qos
        self._sock = socket.create_connection((host, port), timeout=10)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        flags = 0x02  # clean start
        payload = _utf8(client_id)
        if username is not None:
            flags |= 0x80
            payload += _utf8(username)
            if password is not None:
                flags |= 0x40
                payload += _utf8(password)
        # Protocol "MQTT" v5, flags, keep-alive 0 (off), no properties.
        body = _utf8("MQTT") + bytes([5, flags, 0, 0, 0]) + payload
        self._sock.sendall(b"\x10" + _varint(len(body)) + body)
        self._buf = bytearray()
        kind, connack = self._read_one()
        if kind != 0x20 or len(connack) < 2 or connack[1] != 0:
            code = connack[1] if len(connack) > 1 else None
            raise ConnectionError(f"broker refused the connection (CONNACK reason {code})")
        window = receive_maximum(connack[2:])
        self.window = min(window, max_inflight) if max_inflight else window
        self._sock.settimeout(None)
        self._cond = threading.Condition()
        self.sent = self.acked = self.refused = 0
        self._error: BaseException | None = None
        self._next_id = 0
        self._out = bytearray()
        self._flush_bytes = flush_bytes
        self._reader = threading.Thread(target=self._read_acks, daemon=True, name="puback-reader")
        self._reader.start()

    def _read_one(self) -> tuple[int, bytes]:
        while True:
            if len(self._buf) >= 2 and (parsed := _read_varint(self._buf, 1)) is not None:
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
                    parsed = _read_varint(buf, i + 1)
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
            body = _utf8(topic) + self._next_id.to_bytes(2, "big") + b"\x00" + payload
            self._out += b"\x32" + _varint(len(body)) + body
        else:
            body = _utf8(topic) + b"\x00" + payload
            self._out += b"\x30" + _varint(len(body)) + body
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
