"""MQTT packet encoding and parsing (OASIS MQTT 5.0, section 3, and MQTT 3.1.1) for our two
lean clients.

``ingest.mqtt`` (the QoS 1 subscriber) sends CONNECT, SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT
and reads CONNACK, SUBACK, PUBLISH, PINGRESP and DISCONNECT; ``simulators.wire`` (the load
publisher) shares the encoding. Pure functions over bytes, tested without a broker; both clients
are tested against a real Mosquitto, and against amqtt (the embedded broker, 3.1.1 only).

MQTT 5 is the protocol placewatch is built for. 3.1.1 (protocol level 4) is the fallback for
brokers that refuse 5, such as amqtt: the packets are the same without properties, so there is
no Receive Maximum and no session expiry (a session without clean start lasts until the broker
drops it), and CONNACK and SUBACK carry 3.1.1 return codes, which ``parse_connack`` and
``parse_suback`` map to the MQTT 5 reason codes so callers check one set.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 0x82, 0x90, 0xC0, 0xD0, 0xE0

MQTT_5, MQTT_311 = 5, 4  # protocol levels in CONNECT

PINGREQ_PACKET = bytes((PINGREQ, 0))
DISCONNECT_PACKET = bytes((DISCONNECT, 0))  # normal disconnection; the session is kept

# Property identifiers used here (section 2.2.2.2).
_SESSION_EXPIRY, RECEIVE_MAXIMUM, _SERVER_KEEP_ALIVE, _REASON_STRING = 0x11, 0x21, 0x13, 0x1F
# Property id → value size in bytes; 0 = variable byte integer, -1 = UTF-8 string or binary,
# -2 = string pair. Needed to skip the properties we do not use.
_PROPERTY_SIZE = {
    0x01: 1, 0x02: 4, 0x03: -1, 0x08: -1, 0x09: -1, 0x0B: 0, 0x11: 4, 0x12: -1, 0x13: 2,
    0x15: -1, 0x16: -1, 0x17: 1, 0x18: 4, 0x19: 1, 0x1A: -1, 0x1C: -1, 0x1F: -1, 0x21: 2,
    0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x26: -2, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1,
}  # fmt: skip

REASONS = {
    0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
    0x83: "implementation specific error", 0x84: "unsupported protocol version",
    0x85: "client identifier not valid", 0x86: "bad user name or password",
    0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned",
    0x8B: "server shutting down", 0x8C: "bad authentication method", 0x8D: "keep alive timeout",
    0x8E: "session taken over", 0x8F: "topic filter invalid", 0x90: "topic name invalid",
    0x93: "receive maximum exceeded", 0x95: "packet too large", 0x97: "quota exceeded",
    0x98: "administrative action", 0x99: "payload format invalid",
    0x9A: "retain not supported", 0x9B: "QoS not supported", 0x9C: "use another server",
    0x9D: "server moved", 0x9E: "shared subscriptions not supported",
    0x9F: "connection rate exceeded", 0xA1: "subscription identifiers not supported",
    0xA2: "wildcard subscriptions not supported",
}  # fmt: skip


# MQTT 3.1.1 CONNACK return codes → the MQTT 5 reason codes that mean the same.
_V311_CONNACK = {1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87}


def protocol_level(name: str) -> int | None:
    """A protocol setting ("5", "3.1.1", "auto") as a CONNECT level; None for auto."""
    levels = {"5": MQTT_5, "5.0": MQTT_5, "3.1.1": MQTT_311, "4": MQTT_311, "auto": None}
    try:
        return levels[name.strip().lower()]
    except KeyError:
        raise ValueError(f"MQTT protocol {name!r}: use 5, 3.1.1 or auto") from None


class ProtocolError(Exception):
    """The broker sent something this client cannot parse: the connection is dropped."""


def reason_text(code: int) -> str:
    return f"{REASONS.get(code, 'reason')} (0x{code:02x})"


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """(value, position after it), or None if the buffer ends inside it."""
    value, shift = 0, 0
    for i in range(pos, min(pos + 4, len(buf))):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    if len(buf) - pos >= 4:
        raise ProtocolError("variable byte integer longer than 4 bytes")
    return None


def string(s: str | bytes) -> bytes:
    """A UTF-8 string or binary data: two-byte length, then the bytes."""
    data = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(data)) + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + varint(len(body)) + body


def connect_packet(
    client_id: str,
    keepalive_s: int,
    session_expiry_s: int,
    receive_maximum: int,
    username: str | None = None,
    password: str | None = None,
    level: int = MQTT_5,
) -> bytes:
    """CONNECT without clean start: resume the persistent session if the broker has it.

    With ``level`` 4 (3.1.1) there are no properties: the session expiry and the window are not
    sent (the broker keeps the session until it drops it; the window is ours alone)."""
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = string("MQTT") + bytes((level, flags)) + struct.pack("!H", keepalive_s)
    if level >= MQTT_5:
        props = struct.pack(
            "!BIBH", _SESSION_EXPIRY, session_expiry_s, RECEIVE_MAXIMUM, receive_maximum
        )
        body += varint(len(props)) + props
    body += string(client_id)
    if username is not None:
        body += string(username)
    if password is not None:
        body += string(password.encode())
    return _packet(CONNECT, body)


def probe_packet(
    client_id: str,
    username: str | None = None,
    password: str | None = None,
    level: int = MQTT_5,
) -> bytes:
    """A CONNECT with clean start, keep-alive 0 and no properties: the publishers' and the
    probes'. At MQTT 5 it tells which protocol a broker speaks: a 3.1.1-only broker answers
    CONNACK return code 1, "unacceptable protocol version".

    Not our real CONNECT: amqtt reads a CONNECT field by field as 3.1.1 before it checks the
    level, takes the properties' first bytes for the client id's length and waits for that many
    bytes (about 2 kB for ours) that never come. With no properties it reads to the end."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    no_properties = b"\x00" if level >= MQTT_5 else b""
    body = string("MQTT") + bytes((level, flags, 0, 0)) + no_properties + string(client_id)
    if username is not None:
        body += string(username)
    if password is not None:
        body += string(password.encode())
    return _packet(CONNECT, body)


def subscribe_packet(packet_id: int, topics: tuple[str, ...], level: int = MQTT_5) -> bytes:
    """QoS 1; with MQTT 5, retained messages only on a new subscription (a resumed one has had
    them). 3.1.1 has no such option (and no properties)."""
    options = 0x01 | 0x10 if level >= MQTT_5 else 0x01
    body = struct.pack("!H", packet_id) + (varint(0) if level >= MQTT_5 else b"")
    body += b"".join(string(t) + bytes((options,)) for t in topics)
    return _packet(SUBSCRIBE, body)


def pubacks(packet_ids: list[int]) -> bytes:
    """PUBACKs with reason 0 (success) and no properties: the 4-byte short form."""
    return b"".join(struct.pack("!BBH", PUBACK, 2, mid) for mid in packet_ids)


@dataclass(frozen=True, slots=True)
class Connack:
    session_present: bool
    reason: int
    server_keepalive_s: int | None
    reason_string: str | None


def parse_properties(body: bytes, pos: int) -> tuple[dict[int, int | str], int]:
    """The integer and string properties we read, keyed by id; position after the block."""
    got = read_varint(body, pos)
    if got is None:
        raise ProtocolError("properties cut short")
    length, pos = got
    end = pos + length
    if end > len(body):
        raise ProtocolError("properties longer than the packet")
    out: dict[int, int | str] = {}
    while pos < end:
        ident = body[pos]
        size = _PROPERTY_SIZE.get(ident)
        pos += 1
        if size is None:
            raise ProtocolError(f"unknown property 0x{ident:02x}")
        if size == 0:
            got = read_varint(body, pos)
            if got is None:
                raise ProtocolError("property cut short")
            out[ident], pos = got
        elif size > 0:
            out[ident] = int.from_bytes(body[pos : pos + size], "big")
            pos += size
        else:
            for _ in range(-size):
                (n,) = struct.unpack_from("!H", body, pos)
                out[ident] = body[pos + 2 : pos + 2 + n].decode("utf-8", "replace")
                pos += 2 + n
    if pos != end:
        raise ProtocolError("properties overrun their length")
    return out, end


def parse_connack(body: bytes, level: int = MQTT_5) -> Connack:
    """A 3.1.1 return code (1-5) becomes the MQTT 5 reason code meaning the same, also when we
    sent an MQTT 5 CONNECT: a broker that knows only 3.1.1 refuses it with return code 1,
    "unacceptable protocol version", which is 0x84 here."""
    if len(body) < 2:
        raise ProtocolError("CONNACK too short")
    props: dict[int, int | str] = {}
    if level >= MQTT_5 and len(body) > 2:
        props, _ = parse_properties(body, 2)
    keepalive = props.get(_SERVER_KEEP_ALIVE)
    reason_string = props.get(_REASON_STRING)
    reason = body[1]
    if 0 < reason < 0x80:  # never an MQTT 5 CONNACK reason
        reason = _V311_CONNACK.get(reason, 0x80)
    return Connack(
        session_present=bool(body[0] & 1),
        reason=reason,
        server_keepalive_s=keepalive if isinstance(keepalive, int) else None,
        reason_string=reason_string if isinstance(reason_string, str) else None,
    )


def parse_suback(body: bytes, level: int = MQTT_5) -> tuple[int, list[int]]:
    """(packet id, one reason code per topic filter); 3.1.1's failure (0x80) is "unspecified
    error" in MQTT 5 too."""
    if len(body) < 3:
        raise ProtocolError("SUBACK too short")
    (packet_id,) = struct.unpack_from("!H", body, 0)
    pos = parse_properties(body, 2)[1] if level >= MQTT_5 else 2
    return packet_id, list(body[pos:])


def parse_disconnect(body: bytes) -> int:
    """The broker's reason for closing (0 when it gave none)."""
    return body[0] if body else 0


def connack_reason(host: str, port: int, packet: bytes, timeout: float) -> int | None:
    """Send one CONNECT (``probe_packet``) on a connection of its own and disconnect: the
    CONNACK's reason code (3.1.1 return codes as MQTT 5's), None if no CONNACK came. Blocking:
    for probes before a client starts, not for the event loop."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(packet)
        got = b""
        while len(got) < 4:
            chunk = sock.recv(64)
            if not chunk:
                break
            got += chunk
        with contextlib.suppress(OSError):
            sock.sendall(DISCONNECT_PACKET)
    if len(got) < 4 or got[0] & 0xF0 != CONNACK:
        return None
    return parse_connack(got[2:4], MQTT_311).reason
