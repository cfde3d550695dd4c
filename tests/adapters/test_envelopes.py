"""TTN, ChirpStack and SenML envelopes → uplinks, on the real samples with one change each."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters import EnvelopeError, adapt
from adapters.senml import parse_senml
from tests.support.uplinks import sample

TTN_TOPIC = "v3/starter-kit@docs-test-account/devices/eui-70b3d52dd600035a/up"
CS_TOPIC = "application/17c82e96/device/0101010101010101/event/up"


def ttn(**change: Any) -> bytes:
    body = copy.deepcopy(sample("ttn-v3-uplink.json"))
    for path, value in change.items():
        node = body
        *parents, last = path.split("__")
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return json.dumps(body).encode()


def chirpstack(**fields: Any) -> bytes:
    body = copy.deepcopy(sample("chirpstack-v4-up.json"))
    body.update(fields)
    return json.dumps(body).encode()


def reason_of(topic: str, payload: bytes) -> str:
    with pytest.raises(EnvelopeError) as err:
        adapt(topic, payload, "placewatch", 0)
    assert err.value.detail
    return err.value.reason


def test_ttn_sample_gives_gateway_time_eui_and_hints() -> None:
    (up,) = adapt(TTN_TOPIC, ttn(), "placewatch", 0) or []
    assert up.network == "ttn" and up.application == "starter-kit@docs-test-account"
    assert up.dev_eui == "70b3d52dd600035a" and up.device_name == "eui-70b3d52dd600035a"
    # The gateway's time (11:54:13.697…), not the server's received_at (…13.787 / …13.995).
    assert up.time == datetime(2025, 4, 16, 11, 54, 13, 697237, tzinfo=UTC)
    assert (up.hints.ttn_brand, up.hints.ttn_model) == ("mclimate", "mc-button")
    assert up.fields["singlePressEventCounter"] == 16
    assert up.dedupe_key == "ttn:70b3d52dd600035a:14:2025-04-16T11:54:13.787593298Z"


def test_ttn_time_falls_back_to_the_network_server() -> None:
    (up,) = adapt(TTN_TOPIC, ttn(uplink_message__rx_metadata=[{"rssi": -40}]), "p", 0) or []
    assert up.time == datetime(2025, 4, 16, 11, 54, 13, 787593, tzinfo=UTC)
    body = ttn(uplink_message__rx_metadata=None, uplink_message__received_at=None)
    (up,) = adapt(TTN_TOPIC, body, "p", 0) or []
    assert up.time == datetime(2025, 4, 16, 11, 54, 13, 995136, tzinfo=UTC)


def test_ttn_frame_zero_has_no_f_cnt() -> None:
    (up,) = adapt(TTN_TOPIC, ttn(uplink_message__f_cnt=None), "p", 0) or []
    assert ":0:" in up.dedupe_key


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (TTN_TOPIC.replace("/up", "/join"), b"{}", "not_an_uplink"),
        (TTN_TOPIC.replace("/up", "/down/queued"), b"{}", "not_an_uplink"),
        ("v3/no-tenant/devices/x/up", b"{}", "invalid_topic"),
        (TTN_TOPIC, b"{", "invalid_json"),
        (TTN_TOPIC, b"[1]", "not_an_object"),
        (TTN_TOPIC, ttn(simulated=True), "simulated_uplink"),
        (TTN_TOPIC, ttn(uplink_message__decoded_payload=None), "not_decoded"),
        (TTN_TOPIC, ttn(uplink_message=None), "missing_field"),
        (CS_TOPIC, chirpstack(), "not_decoded"),  # the real sample has no codec output
        (CS_TOPIC.replace("/up", "/status"), b"{}", "not_an_uplink"),
        ("application/x/device/y/up", b"{}", "invalid_topic"),
        (CS_TOPIC, b"\xff\xfe", "invalid_json"),
    ],
)
def test_what_is_not_a_decoded_uplink_has_its_reason(
    topic: str, payload: bytes, reason: str
) -> None:
    assert reason_of(topic, payload) == reason


def test_chirpstack_gateway_time_tags_and_dedupe_id() -> None:
    rx = [
        {"gatewayId": "a", "gwTime": "2022-07-18T09:34:15.5Z", "nsTime": "2022-07-18T09:34:15.6Z"},
        {"gatewayId": "b", "gwTime": "2022-07-18T09:34:15.4Z"},
    ]
    (up,) = adapt(CS_TOPIC, chirpstack(object={"level": 2}, rxInfo=rx), "p", 0) or []
    assert up.time == datetime(2022, 7, 18, 9, 34, 15, 400000, tzinfo=UTC)
    assert up.dev_eui == "0101010101010101" and up.application == "17c82e96"
    assert up.hints.chirpstack_profile == "Test device-profile"
    assert up.hints.tags == {"key": "value"}
    assert up.dedupe_key == "chirpstack:3ac7e3c4-4401-4b8d-9386-a5c902f9202d"
    # No gateway time: the network server's, then the event's.
    ns_only = [{"gatewayId": "a", "nsTime": "2022-07-18T09:34:15.6Z"}]
    (up,) = adapt(CS_TOPIC, chirpstack(object={}, rxInfo=ns_only), "p", 0) or []
    assert up.time == datetime(2022, 7, 18, 9, 34, 15, 600000, tzinfo=UTC)
    (up,) = adapt(CS_TOPIC, chirpstack(object={}, rxInfo=[]), "p", 0) or []
    assert up.time == datetime(2022, 7, 18, 9, 34, 15, 775023, tzinfo=UTC)


def pack(*records: Any) -> bytes:
    return json.dumps(list(records)).encode()


def test_senml_resolves_base_fields_and_groups_by_device_and_time() -> None:
    uplinks = parse_senml(
        "sutton",
        None,
        pack(
            {
                "bn": "urn:dev:eui:70B3D52DD600035A:",
                "bt": 1.7e9,
                "bu": "m",
                "n": "level_m",
                "v": 1.2,
            },
            {"n": "battery_pct", "u": "%EL", "v": 80},
            {"t": 60, "n": "level_m", "v": 1.3},
            {"bn": "bin-7:", "n": "fill_pct", "u": "%", "v": 40, "t": 0},
            {"n": "tilt", "vb": True},
        ),
        0,
    )
    by = {(u.device_name, u.time.timestamp()): u for u in uplinks}
    gauge = by[("urn:dev:eui:70B3D52DD600035A", 1.7e9)]
    assert gauge.dev_eui == "70b3d52dd600035a" and gauge.council_id == "sutton"
    assert gauge.fields == {
        "level_m": {"value": 1.2, "unit": "m"},
        "battery_pct": {"value": 80.0, "unit": "%EL"},
    }
    assert by[("urn:dev:eui:70B3D52DD600035A", 1.7e9 + 60)].fields == {
        "level_m": {"value": 1.3, "unit": "m"}
    }
    bin7 = by[("bin-7", 1.7e9)]
    assert bin7.dev_eui is None and bin7.fields == {
        "fill_pct": {"value": 40.0, "unit": "%"},
        "tilt": True,
    }


def test_senml_relative_times_base_value_and_topic_device() -> None:
    (up,) = parse_senml("c", "hall", pack({"bv": 10, "n": "motion_count", "v": 2, "t": -30}), 1e9)
    assert up.time.timestamp() == 1e9 - 30  # below 2**28: relative to receipt
    assert up.device_name == "hall" and up.fields == {"motion_count": 12.0}
    (up,) = parse_senml("c", "meter", pack({"n": "energy", "s": 1234.5}), 1e9)
    assert up.fields == {"energy": 1234.5}


@pytest.mark.parametrize(
    ("payload", "reason", "says"),
    [
        (b"[]", "not_an_object", "non-empty JSON array"),
        (b'{"n": "x"}', "not_an_object", "non-empty JSON array"),
        (pack({"bn": "d:", "n": "x", "v": 1}, "oops"), "not_an_object", "[1]"),
        (pack({"bn": "d:", "n": "x"}), "missing_field", "[0]: record has a name but no value"),
        (pack({"n": "fill_pct", "v": 1}), "missing_field", "names no device"),
        (pack({"bn": "d:", "n": "x", "v": "1"}), "invalid_value", "[0].v='1'"),
        (pack({"bn": "d:", "n": "x", "vd": "AQID"}), "invalid_value", "[0].vd"),
        (pack({"bn": 7, "n": "x", "v": 1}), "invalid_value", "[0].bn=7"),
        (pack({"bn": "d:", "bt": 1e300, "n": "x", "v": 1}), "invalid_value", "out of range"),
    ],
)
def test_senml_errors_name_the_record(payload: bytes, reason: str, says: str) -> None:
    with pytest.raises(EnvelopeError) as err:
        parse_senml("c", None, payload, 1e9)
    assert err.value.reason == reason and says in err.value.detail, err.value.detail


def test_native_and_malformed_prefix_topics_are_left_to_native_decoding() -> None:
    assert adapt("placewatch/sutton/bin_fill/b1", b"{}", "placewatch", 0) is None
    assert adapt("placewatch/sutton/senml/a/b", b"[]", "placewatch", 0) is None
    assert adapt("elsewhere/x", b"{}", "placewatch", 0) is None
