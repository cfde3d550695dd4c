"""ChirpStack v4 ``up`` events (JSON marshaler), on the real sample
(../shared/data/payloads/chirpstack-v4-up.json) changed one field at a time."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters import EnvelopeError, Uplink
from adapters.chirpstack import parse_chirpstack
from devices.models import ModelHints
from tests.support.uplinks import sample

APP = "17c82e96-be03-4f38-aef3-f83d48582d97"
TOPIC = f"application/{APP}/device/0101010101010101/event/up"
EVENT_TIME = datetime(2022, 7, 18, 9, 34, 15, 775023, UTC)  # "time", nanoseconds cut
DECODED = {"distance": 2116, "battery": 92, "tilt": "tilt"}


def body(decoded: dict[str, Any] | None = DECODED) -> dict[str, Any]:
    b: dict[str, Any] = copy.deepcopy(sample("chirpstack-v4-up.json"))
    if decoded is not None:
        b["object"] = copy.deepcopy(decoded)
    return b


def parse(b: dict[str, Any] | bytes, topic: str = TOPIC) -> Uplink:
    payload = b if isinstance(b, bytes) else json.dumps(b).encode()
    uplinks = parse_chirpstack(topic, payload)
    assert len(uplinks) == 1
    return uplinks[0]


def refused(b: dict[str, Any] | bytes, topic: str = TOPIC) -> EnvelopeError:
    payload = b if isinstance(b, bytes) else json.dumps(b).encode()
    with pytest.raises(EnvelopeError) as info:
        parse_chirpstack(topic, payload)
    assert info.value.detail
    return info.value


def test_the_real_sample_with_a_codec() -> None:
    u = parse(body())
    assert u.network == "chirpstack"
    assert u.application == APP
    assert u.council_id is None
    assert u.dev_eui == "0101010101010101"
    assert u.device_name == "0101010101010101"
    assert u.time == EVENT_TIME  # the sample's gateway has neither gwTime nor nsTime
    assert u.fields == DECODED
    assert u.hints == ModelHints(chirpstack_profile="Test device-profile", tags={"key": "value"})
    assert u.dedupe_key == "chirpstack:3ac7e3c4-4401-4b8d-9386-a5c902f9202d"


def test_the_real_sample_has_no_codec() -> None:
    e = refused(body(decoded=None))
    assert e.reason == "not_decoded"
    assert "codec" in e.detail and "replay" in e.detail


@pytest.mark.parametrize("obj", [None, [], "x", 1])
def test_object_that_is_not_an_object_is_not_decoded(obj: Any) -> None:
    b = body()
    b["object"] = obj
    assert refused(b).reason == "not_decoded"


def test_gateway_time_first_then_network_server_time_then_event_time() -> None:
    b = body()
    gw = b["rxInfo"][0]
    b["rxInfo"] = [
        {**gw, "nsTime": "2022-07-18T09:34:15.100000000Z"},
        {**gw, "nsTime": "2022-07-18T09:34:15.050000000+00:00"},
        {**gw, "gwTime": "2022-07-18T09:34:14.900000Z"},
        {**gw, "gwTime": "2022-07-18T09:34:14.800000001Z"},
        {**gw, "gwTime": "bad"},
        "not a gateway",
    ]
    assert parse(b).time == datetime(2022, 7, 18, 9, 34, 14, 800000, UTC)
    for g in b["rxInfo"]:
        if isinstance(g, dict):
            g.pop("gwTime", None)
    assert parse(b).time == datetime(2022, 7, 18, 9, 34, 15, 50000, UTC)
    b["rxInfo"] = {"not": "a list"}
    assert parse(b).time == EVENT_TIME


def test_no_time_at_all_is_refused() -> None:
    b = body()
    del b["time"]
    e = refused(b)
    assert e.reason == "missing_field" and "time" in e.detail


def test_dev_eui_lower_case_from_device_info_else_the_topic() -> None:
    b = body()
    b["deviceInfo"]["devEui"] = "24E124136B316582"
    assert parse(b).dev_eui == "24e124136b316582"
    del b["deviceInfo"]["devEui"]
    u = parse(b, f"application/{APP}/device/24E124136B316583/event/up")
    assert u.dev_eui == "24e124136b316583"
    assert u.device_name == "24e124136b316583"
    u = parse(b, f"application/{APP}/device/not-an-eui/event/up")
    assert (u.dev_eui, u.device_name) == (None, "not-an-eui")


def test_tags_become_hints_and_only_strings_are_kept() -> None:
    b = body()
    b["deviceInfo"]["tags"] = {"model": "elsys/ers", "depth_mm": "1100", "n": 3, "x": None}
    b["deviceInfo"]["deviceProfileName"] = "Milesight EM310-UDL"
    assert parse(b).hints == ModelHints(
        chirpstack_profile="Milesight EM310-UDL",
        tags={"model": "elsys/ers", "depth_mm": "1100"},
    )
    b["deviceInfo"] = "nonsense"
    assert parse(b).hints == ModelHints()


def test_dedupe_key_is_the_deduplication_id() -> None:
    a, b = body(), body({"distance": 1})
    b["rxInfo"][0]["gwTime"] = "2022-07-18T09:34:14Z"  # other gateway details: same uplink
    assert parse(a).dedupe_key == parse(b).dedupe_key
    b["deduplicationId"] = "another"
    assert parse(b).dedupe_key == "chirpstack:another"
    del b["deduplicationId"]
    assert parse(b).dedupe_key == "chirpstack:0101010101010101:2022-07-18T09:34:14+00:00"


@pytest.mark.parametrize(
    "event", ["join", "ack", "txack", "log", "status", "location", "integration"]
)
def test_other_events_are_not_uplinks(event: str) -> None:
    e = refused(
        b'{"devAddr": "00189440"}', f"application/{APP}/device/0101010101010101/event/{event}"
    )
    assert e.reason == "not_an_uplink"
    assert repr(event) in e.detail


@pytest.mark.parametrize(
    "topic",
    [
        f"application/{APP}/device/0101010101010101/up",
        f"application/{APP}/devices/0101010101010101/event/up",
        f"application/{APP}/device/0101010101010101/event/up/more",
        f"application/{APP}",
        "application/",
    ],
)
def test_malformed_topics(topic: str) -> None:
    e = refused(body(), topic)
    assert e.reason == "invalid_topic" and repr(topic) in e.detail


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid_json"),
        (b"\x08\x01\x12\x04", "invalid_json"),  # the protobuf marshaler
        (b"[1, 2]", "not_an_object"),
        (b"true", "not_an_object"),
        (b'{"object": ' + b"1" * 5000 + b"}", "invalid_json"),
    ],
)
def test_not_json_or_not_an_object(payload: bytes, reason: str) -> None:
    assert refused(payload).reason == reason
