"""The MQTT 5 (and 3.1.1) packet codec, checked against the specifications' encodings and
paho's."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from placewatch import mqtt_wire as wire


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),  # the largest a packet may declare (spec 1.5.5)
    ],
)
def test_variable_byte_integers_as_the_specification_gives_them(value: int, encoded: bytes) -> None:
    assert wire.varint(value) == encoded
    assert wire.read_varint(b"\x30" + encoded + b"rest", 1) == (value, 1 + len(encoded))


def test_a_varint_cut_short_waits_for_more_and_a_fifth_byte_is_refused() -> None:
    assert wire.read_varint(b"\x80\x80", 0) is None
    with pytest.raises(wire.ProtocolError, match="longer than 4 bytes"):
        wire.read_varint(b"\x80\x80\x80\x80\x01", 0)


def test_connect_asks_to_resume_the_session_with_its_window() -> None:
    packet = wire.connect_packet("ingest-1", 30, 86_400, 10_000, "ingest", "s3cret")
    assert packet[0] == wire.CONNECT
    length, pos = wire.read_varint(packet, 1) or (0, 0)
    body = packet[pos:]
    assert len(body) == length
    assert body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0x80 | 0x40  # user name and password, and no clean start
    assert body[8:10] == (30).to_bytes(2, "big")
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 86_400
    props.ReceiveMaximum = 10_000
    assert body[10:].startswith(props.pack())  # type: ignore[no-untyped-call]
    assert body.endswith(b"\x00\x08ingest-1\x00\x06ingest\x00\x06s3cret")


def test_subscribe_asks_for_qos_1_and_retained_only_when_new() -> None:
    packet = wire.subscribe_packet(7, ("a/#", "$share/g/b/#"))
    assert packet == b"\x82\x18\x00\x07\x00\x00\x03a/#\x11\x00\x0c$share/g/b/#\x11"


def test_pubacks_are_the_short_success_form() -> None:
    assert wire.pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"


def test_connack_with_properties_paho_encodes() -> None:
    props = Properties(PacketTypes.CONNACK)  # type: ignore[no-untyped-call]
    props.ServerKeepAlive = 20
    props.ReasonString = "welcome"
    props.TopicAliasMaximum = 10
    props.AssignedClientIdentifier = "x"
    props.UserProperty = ("k", "v")
    connack = wire.parse_connack(b"\x01\x00" + props.pack())  # type: ignore[no-untyped-call]
    assert connack == wire.Connack(True, 0, 20, "welcome")
    refused = wire.parse_connack(b"\x00\x86\x00")
    assert not refused.session_present and wire.reason_text(refused.reason).startswith("bad user")


def test_suback_gives_one_reason_per_filter() -> None:
    assert wire.parse_suback(b"\x00\x07\x00\x01\x87") == (7, [1, 0x87])


def test_properties_that_overrun_the_packet_are_refused() -> None:
    with pytest.raises(wire.ProtocolError):
        wire.parse_connack(b"\x00\x00\x05\x13\x00")
    with pytest.raises(wire.ProtocolError, match="unknown property"):
        wire.parse_connack(b"\x00\x00\x02\x7e\x00")


def test_a_3_1_1_connect_has_no_properties_and_keeps_the_session() -> None:
    packet = wire.connect_packet("ingest-1", 30, 86_400, 10_000, "ingest", "pw", wire.MQTT_311)
    length, pos = wire.read_varint(packet, 1) or (0, 0)
    body = packet[pos:]
    assert len(body) == length
    # level 4; user name, password, no clean session; keep-alive; then the payload at once
    assert body == b"\x00\x04MQTT\x04\xc0\x00\x1e\x00\x08ingest-1\x00\x06ingest\x00\x02pw"


def test_a_3_1_1_subscribe_is_qos_1_without_properties() -> None:
    packet = wire.subscribe_packet(7, ("a/#",), wire.MQTT_311)
    assert packet == b"\x82\x08\x00\x07\x00\x03a/#\x01"


def test_3_1_1_return_codes_read_as_mqtt_5_reasons() -> None:
    assert wire.parse_connack(b"\x01\x00", wire.MQTT_311) == wire.Connack(True, 0, None, None)
    refused = {
        code: wire.parse_connack(bytes((0, code)), wire.MQTT_311).reason for code in (1, 4, 5)
    }
    assert refused == {1: 0x84, 4: 0x86, 5: 0x87}
    # A 3.1.1-only broker answers our MQTT 5 CONNECT with a 3.1.1 CONNACK: 1 is 0x84 then too.
    assert wire.reason_text(wire.parse_connack(b"\x00\x01").reason).startswith("unsupported")
    assert wire.parse_suback(b"\x00\x07\x01\x80", wire.MQTT_311) == (7, [1, 0x80])


def test_the_probe_is_mqtt_5_with_clean_start_and_no_properties() -> None:
    packet = wire.probe_packet("p", "u", "pw")
    assert packet == b"\x10\x15\x00\x04MQTT\x05\xc2\x00\x00\x00\x00\x01p\x00\x01u\x00\x02pw"


@pytest.mark.parametrize(
    ("setting", "level"), [("5", 5), ("3.1.1", 4), ("auto", None), (" AUTO ", None)]
)
def test_protocol_settings(setting: str, level: int | None) -> None:
    assert wire.protocol_level(setting) == level


def test_an_unknown_protocol_setting_is_refused() -> None:
    with pytest.raises(ValueError, match=r"5, 3\.1\.1 or auto"):
        wire.protocol_level("3.1")


def test_the_clean_connect_is_whole_in_both_versions() -> None:
    """The publishers' and probes' CONNECT: its length counts the payload too."""
    v5 = wire.probe_packet("p", "u", "pw")
    assert v5 == b"\x10\x15\x00\x04MQTT\x05\xc2\x00\x00\x00\x00\x01p\x00\x01u\x00\x02pw"
    v311 = wire.probe_packet("p", level=wire.MQTT_311)
    assert v311 == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01p"  # clean session, no props
