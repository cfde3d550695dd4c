"""The Things Stack v3 uplinks: identity, event time, dedupe key and every deliberate refusal,
on the real sample (../shared/data/payloads/ttn-v3-uplink.json) changed one field at a time."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from adapters import EnvelopeError, Uplink
from adapters.ttn import parse_ttn
from devices.models import ModelHints
from tests.support.uplinks import sample

TOPIC = "v3/starter-kit@ttn/devices/eui-70b3d52dd600035a/up"
# The sample's times, cut from nanoseconds to microseconds.
GATEWAY_TIME = datetime(2025, 4, 16, 11, 54, 13, 697237, UTC)
UPLINK_RECEIVED = datetime(2025, 4, 16, 11, 54, 13, 787593, UTC)
TOP_RECEIVED = datetime(2025, 4, 16, 11, 54, 13, 995136, UTC)


def body() -> dict[str, Any]:
    return copy.deepcopy(sample("ttn-v3-uplink.json"))


def parse(b: dict[str, Any] | bytes, topic: str = TOPIC) -> Uplink:
    payload = b if isinstance(b, bytes) else json.dumps(b).encode()
    uplinks = parse_ttn(topic, payload)
    assert len(uplinks) == 1
    return uplinks[0]


def refused(b: dict[str, Any] | bytes, topic: str = TOPIC) -> EnvelopeError:
    payload = b if isinstance(b, bytes) else json.dumps(b).encode()
    with pytest.raises(EnvelopeError) as info:
        parse_ttn(topic, payload)
    assert info.value.detail, "a refusal explains itself"
    return info.value


def test_the_real_sample() -> None:
    u = parse(body())
    assert u.network == "ttn"
    assert u.application == "starter-kit@ttn"  # from the topic, which the broker ACL vouches for
    assert u.council_id is None
    assert u.dev_eui == "70b3d52dd600035a"  # lower-cased
    assert u.device_name == "eui-70b3d52dd600035a"
    assert u.time == GATEWAY_TIME
    assert u.fields == sample("ttn-v3-uplink.json")["uplink_message"]["decoded_payload"]
    assert u.hints == ModelHints(ttn_brand="mclimate", ttn_model="mc-button")
    assert u.dedupe_key == "ttn:70b3d52dd600035a:14:2025-04-16T11:54:13.787593298Z"


def test_event_time_is_the_earliest_gateway_time() -> None:
    b = body()
    first = b["uplink_message"]["rx_metadata"][0]
    b["uplink_message"]["rx_metadata"] = [
        {**first, "time": "2025-04-16T11:54:13.900000000Z"},
        {"gateway_ids": {"gateway_id": "no-gps"}},  # no time: a gateway without GPS
        {**first, "time": "not a time"},
        {**first, "time": "2025-04-16T11:54:13"},  # no offset: ambiguous, ignored
        # Earliest in absolute time although not in text: 12:54:13.5+01:00 is 11:54:13.5Z.
        {**first, "time": "2025-04-16T12:54:13.500000001+01:00"},
        "not a gateway",
        {**first, "time": "2025-04-16T11:54:13.600000000Z"},
    ]
    u = parse(b)
    assert u.time == datetime(2025, 4, 16, 11, 54, 13, 500000, UTC)
    assert u.time.utcoffset() == timedelta(hours=1)  # the instant, kept with its offset
    assert u.time.astimezone(UTC) == datetime(2025, 4, 16, 11, 54, 13, 500000, UTC)


@pytest.mark.parametrize(
    "gateways",
    [None, [], [{"gateway_ids": {"gateway_id": "g"}}], [{"time": "garbage"}], "not a list"],
)
def test_without_a_gateway_time_the_network_server_time(gateways: Any) -> None:
    b = body()
    if gateways is None:
        del b["uplink_message"]["rx_metadata"]
    else:
        b["uplink_message"]["rx_metadata"] = gateways
    assert parse(b).time == UPLINK_RECEIVED


def test_then_the_top_level_received_at() -> None:
    b = body()
    del b["uplink_message"]["rx_metadata"]
    del b["uplink_message"]["received_at"]
    u = parse(b)
    assert u.time == TOP_RECEIVED
    assert u.dedupe_key == "ttn:70b3d52dd600035a:14:2025-04-16T11:54:13.995136483Z"


def test_no_time_at_all_is_refused() -> None:
    b = body()
    del b["uplink_message"]["rx_metadata"]
    del b["uplink_message"]["received_at"]
    del b["received_at"]
    assert refused(b).reason == "missing_field"


def test_nanosecond_times_are_cut_to_microseconds() -> None:
    b = body()
    b["uplink_message"]["rx_metadata"][0]["time"] = "2025-04-16T11:54:13.999999999Z"
    assert parse(b).time == datetime(2025, 4, 16, 11, 54, 13, 999999, UTC)
    b["uplink_message"]["rx_metadata"][0]["time"] = "2025-04-16T11:54:13Z"  # none at all
    assert parse(b).time == datetime(2025, 4, 16, 11, 54, 13, tzinfo=UTC)


def test_frame_zero_has_no_f_cnt() -> None:
    b = body()
    del b["uplink_message"]["f_cnt"]  # TTS leaves out zero values
    u = parse(b)
    assert u.fields and u.time == GATEWAY_TIME
    assert u.dedupe_key == "ttn:70b3d52dd600035a:0:2025-04-16T11:54:13.787593298Z"


def test_dedupe_key_is_dev_eui_frame_and_receipt() -> None:
    a, b = body(), body()
    b["uplink_message"]["decoded_payload"] = {"other": 1}  # same uplink, another decoding
    b["uplink_message"]["rx_metadata"] = []
    assert parse(a).dedupe_key == parse(b).dedupe_key
    b["uplink_message"]["f_cnt"] = 15
    assert parse(a).dedupe_key != parse(b).dedupe_key
    c = body()
    c["uplink_message"]["received_at"] = "2025-04-16T11:54:13.787593299Z"
    assert parse(a).dedupe_key != parse(c).dedupe_key
    d = body()
    d["end_device_ids"]["dev_eui"] = "70B3D52DD600035B"
    assert parse(a).dedupe_key != parse(d).dedupe_key


@pytest.mark.parametrize(
    "eui", [None, "", "70B3D52DD60003", "70B3D52DD600035Z", 7, "0x70B3D52DD6003"]
)
def test_without_a_valid_dev_eui_the_device_id_names_it(eui: Any) -> None:
    b = body()
    if eui is None:
        del b["end_device_ids"]["dev_eui"]
    else:
        b["end_device_ids"]["dev_eui"] = eui
    u = parse(b)
    assert u.dev_eui is None
    assert u.device_name == "eui-70b3d52dd600035a"
    assert u.dedupe_key.startswith("ttn:eui-70b3d52dd600035a:14:")


def test_device_id_from_the_topic_when_the_body_lacks_it() -> None:
    b = body()
    del b["end_device_ids"]
    u = parse(b, "v3/app@tenant/devices/bin-7/up")
    assert (u.device_name, u.dev_eui, u.application) == ("bin-7", None, "app@tenant")


def test_version_ids_become_model_hints() -> None:
    b = body()
    b["uplink_message"]["version_ids"] = {"brand_id": "milesight-iot", "model_id": "em310-udl"}
    assert parse(b).hints == ModelHints(ttn_brand="milesight-iot", ttn_model="em310-udl")
    del b["uplink_message"]["version_ids"]
    assert parse(b).hints == ModelHints()
    b["uplink_message"]["version_ids"] = {"brand_id": 3, "model_id": ""}
    assert parse(b).hints == ModelHints()


@pytest.mark.parametrize("flag", [True, 1, "yes"])
def test_simulated_uplinks_are_refused(flag: Any) -> None:
    b = body()
    b["simulated"] = flag
    assert refused(b).reason == "simulated_uplink"


def test_simulated_false_is_a_real_uplink() -> None:
    b = body()
    b["simulated"] = False
    assert parse(b).time == GATEWAY_TIME


@pytest.mark.parametrize("decoded", [None, [], "x", 3])
def test_without_a_decoded_payload_not_decoded(decoded: Any) -> None:
    b = body()
    if decoded is None:
        del b["uplink_message"]["decoded_payload"]
    else:
        b["uplink_message"]["decoded_payload"] = decoded
    e = refused(b)
    assert e.reason == "not_decoded"
    assert "payload formatter" in e.detail and "replay" in e.detail


@pytest.mark.parametrize("up", [None, {}, [], "x"])
def test_without_uplink_message_missing_field(up: Any) -> None:
    b = body()
    if up is None:
        del b["uplink_message"]
    else:
        b["uplink_message"] = up
    e = refused(b)
    assert e.reason == "missing_field" and "uplink_message" in e.detail


@pytest.mark.parametrize(
    "event", ["join", "down/queued", "down/sent", "down/ack", "service/data", "location/solved"]
)
def test_other_events_are_not_uplinks(event: str) -> None:
    e = refused(body(), f"v3/app@ttn/devices/dev-1/{event}")
    assert e.reason == "not_an_uplink"
    assert repr(event) in e.detail


def test_the_event_is_judged_before_the_payload() -> None:
    # A join carries no uplink_message: refused as a join, not as a malformed uplink.
    assert refused(b"{}", "v3/app@ttn/devices/dev-1/join").reason == "not_an_uplink"


@pytest.mark.parametrize(
    "topic",
    [
        "v3/app/devices/dev-1/up",  # no tenant
        "v3/app@ttn/device/dev-1/up",
        "v3/app@ttn/devices/dev-1",
        "v3/app@ttn",
        "v3",
        "v2/app@ttn/devices/dev-1/up",
    ],
)
def test_malformed_topics(topic: str) -> None:
    e = refused(body(), topic)
    assert e.reason == "invalid_topic"
    assert repr(topic) in e.detail


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"\x00\x01binary", "invalid_json"),
        (b"[]", "not_an_object"),
        (b"null", "not_an_object"),
        (b"42", "not_an_object"),
        (b'"uplink"', "not_an_object"),
        (b'[{"uplink_message": {}}]', "not_an_object"),
    ],
)
def test_not_json_or_not_an_object(payload: bytes, reason: str) -> None:
    assert refused(payload).reason == reason


def test_json_python_cannot_read_is_invalid_json() -> None:
    # Valid JSON that Python's parser refuses: a 5000-digit number, nesting deeper than its
    # recursion limit. A refusal with a reason, not an exception out of the adapter.
    huge = b'{"uplink_message": {"f_cnt": ' + b"9" * 5000 + b"}}"
    deep = b'{"uplink_message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for payload in (huge, deep):
        e = refused(payload)
        assert e.reason == "invalid_json", e.detail
        assert len(e.detail) < 1_000


def test_fields_are_the_decoded_payload_as_is() -> None:
    b = body()
    decoded = {"distance": "2000 mm", "battery": {"value": 92, "unit": "%"}, "tilt": "tilt"}
    b["uplink_message"]["decoded_payload"] = decoded
    assert parse(b).fields == decoded


def test_offset_times_keep_their_instant() -> None:
    b = body()
    b["uplink_message"]["rx_metadata"][0]["time"] = "2025-04-16T13:54:13.5+02:00"
    t = parse(b).time
    assert t == datetime(2025, 4, 16, 11, 54, 13, 500000, UTC)
    assert t.tzinfo == timezone(timedelta(hours=2))
