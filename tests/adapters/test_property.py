"""Arbitrary bytes and JSON at every adapter and every built-in model: nothing escapes but a
rejection with a reason (property-based, hypothesis)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.mapping import MappingError, to_reading
from devices.models import builtin_models
from ingest.decode import Decoded, DecodeOptions, Pending, Rejected, decode
from ingest.mqtt import Message
from tests.support.uplinks import sample

TOPICS = [
    "v3/app@ttn/devices/dev-1/up",
    "v3/app@ttn/devices/dev-1/join",
    "application/app-1/device/0101010101010101/event/up",
    "placewatch/sutton/senml",
    "placewatch/sutton/senml/dev-1",
    "placewatch/sutton/bin_fill/bin-1",
    "placewatch/sutton/home_activity/h-1",
]
OPTIONS = DecodeOptions("placewatch")
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["2000 mm", "1e999", "NaN", "open", "-0", "3 furlongs", "°C", ""]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "v",
                    "n",
                    "bn",
                    "bt",
                    "t",
                    "u",
                    "vs",
                    "vb",
                    "s",
                    "value",
                    "unit",
                    "time",
                    "fill_pct",
                    "distance",
                    "level",
                    "battery",
                    "motion",
                    "object",
                    "rxInfo",
                    "uplink_message",
                    "decoded_payload",
                    "rx_metadata",
                    "deviceInfo",
                ]
            )
            | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


def check(topic: str, payload: bytes) -> None:
    out = decode(Message(topic, payload, 1, False, time.time(), 1), OPTIONS)
    if isinstance(out, Rejected):
        assert out.reason and out.detail
    elif isinstance(out, list):
        assert all(isinstance(p, Pending) for p in out)
    else:
        assert isinstance(out, Decoded)


@FAST
@given(st.sampled_from(TOPICS), st.binary(max_size=200))
def test_arbitrary_bytes(topic: str, payload: bytes) -> None:
    check(topic, payload)


@FAST
@given(st.sampled_from(TOPICS), json_values)
def test_arbitrary_json(topic: str, body: Any) -> None:
    check(topic, json.dumps(body).encode())


def mutate(base: dict[str, Any], path: list[str], value: Any) -> bytes:
    body = json.loads(json.dumps(base))
    node = body
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return json.dumps(body).encode()


@FAST
@given(
    st.sampled_from(
        [
            ["uplink_message", "decoded_payload"],
            ["uplink_message", "rx_metadata"],
            ["uplink_message", "received_at"],
            ["uplink_message", "version_ids"],
            ["end_device_ids", "dev_eui"],
            ["end_device_ids"],
            ["received_at"],
            ["simulated"],
        ]
    ),
    json_values,
)
def test_real_ttn_uplink_with_one_field_replaced(path: list[str], value: Any) -> None:
    check(TOPICS[0], mutate(sample("ttn-v3-uplink.json"), path, value))


@FAST
@given(
    st.sampled_from(
        [
            ["object"],
            ["rxInfo"],
            ["time"],
            ["deviceInfo", "devEui"],
            ["deviceInfo", "tags"],
            ["deviceInfo"],
            ["deduplicationId"],
        ]
    ),
    json_values,
)
def test_real_chirpstack_event_with_one_field_replaced(path: list[str], value: Any) -> None:
    check(TOPICS[2], mutate(sample("chirpstack-v4-up.json"), path, value))


MODELS = builtin_models()


@FAST
@given(
    st.sampled_from(MODELS),
    st.dictionaries(
        st.sampled_from(
            [
                "distance",
                "battery",
                "tilt",
                "level",
                "motion",
                "pm2_5_mass_concentration",
                "pm10_mass_concentration",
                "air_temperature",
                "air_humidity",
            ]
        ),
        json_values,
    ),
    st.dictionaries(
        st.sampled_from(["depth_mm", "blind_zone_mm", "sensor_datum_m"]), json_values, max_size=3
    ),
)
def test_every_builtin_model_only_raises_mapping_errors(
    model: Any, payload: dict[str, Any], device_settings: dict[str, Any]
) -> None:
    try:
        to_reading(model.kind, model, payload, datetime.now(UTC), device_settings)
    except MappingError as exc:
        assert exc.reason and exc.detail
