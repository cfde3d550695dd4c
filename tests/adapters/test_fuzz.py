"""Property-based bad input (hypothesis): arbitrary bytes, arbitrary JSON and mutated real
envelopes on every kind of topic through ``ingest.decode.decode``, and arbitrary decoded payloads
and settings through every built-in model (and models using every option).

Nothing escapes: decoding gives a Decoded, a Rejected with a known reason and a bounded detail,
or a non-empty list of Pending uplinks; mapping gives a reading or a ``MappingError``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.mapping import MappingError, to_reading
from devices.models import MODEL_ADAPTER, DeviceModel, builtin_models
from ingest.decode import Decoded, DecodeOptions, Pending, Rejected, decode
from ingest.mqtt import Message
from ingest.uplinks import CounterKey, _Counter, _delta, _Device
from placewatch.kinds import Kind, Reading
from placewatch.rejections import Reason
from tests.support.uplinks import sample

PREFIX = "pw"
OPTIONS = DecodeOptions(PREFIX)  # no age limit: old times must not hide later stages
REASONS = {v for k, v in vars(Reason).items() if k.isupper()}
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOPICS = [
    "v3/app@ttn/devices/dev-1/up",
    "v3/app@ttn/devices/dev-1/join",
    "v3/app@ttn/devices/dev-1/down/queued",
    "v3/app/devices/dev-1/up",
    "v3/app@ttn/devices//up",
    "application/app-1/device/0101010101010101/event/up",
    "application/app-1/device/0101010101010101/event/join",
    "application/app-1/device/up",
    "application//device//event/up",
    f"{PREFIX}/sutton/senml",
    f"{PREFIX}/sutton/senml/dev-1",
    f"{PREFIX}/sutton/senml/a/b",
    *(f"{PREFIX}/sutton/{k.value}/dev-1" for k in Kind),
    f"{PREFIX}/sutton/weather/dev-1",
    f"{PREFIX}/sutton",
    f"{PREFIX}//bin_fill/",
    "elsewhere/entirely",
]

# Strings devices send, and strings meant to break parsers and unit libraries.
STRINGS = [
    "2000 mm",
    "200 cm",
    "2 m",
    "0.25 bar",
    "3.9 µg⋅m⁻³",
    "4.2e-8 kg/m3",
    "50 °F",
    "7 Cel",
    "81 %RH",
    "92 %EL",
    "2.2 kW",
    "open",
    "OPEN",
    "trigger",
    "tilt",
    "normal",
    "NaN",
    "nan",
    "-Infinity",
    "1e999",
    "1e-999",
    "-0",
    "0x10",
    "١٢٣",  # Arabic-Indic digits
    "²",
    "5 9**9**9",
    "5 (",
    "5 1/0",
    "5 m**(1/0)",
    "5 " + "m*" * 50,
    "1" * 400,
    "\x00",
    "\ud800",  # a lone surrogate
    "2025-04-16T11:54:13.697237014Z",
    "2025-04-16T11:54:13",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
]
KEYS = [
    # Envelopes
    "uplink_message",
    "decoded_payload",
    "rx_metadata",
    "time",
    "received_at",
    "f_cnt",
    "simulated",
    "end_device_ids",
    "dev_eui",
    "device_id",
    "version_ids",
    "brand_id",
    "model_id",
    "object",
    "rxInfo",
    "gwTime",
    "nsTime",
    "deviceInfo",
    "devEui",
    "tags",
    "model",
    "deduplicationId",
    # SenML
    "bn",
    "bt",
    "bu",
    "bv",
    "bs",
    "n",
    "t",
    "u",
    "v",
    "vs",
    "vb",
    "vd",
    "s",
    # Decoded fields and native names
    "value",
    "unit",
    "distance",
    "battery",
    "tilt",
    "level",
    "motion",
    "pm2_5_mass_concentration",
    "air_temperature",
    "fill_pct",
    "distance_mm",
    "level_m",
    "pm25_ugm3",
    "sensor",
    "motion_count",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**1000)  # beyond a float
    | st.integers(min_value=-(10**1000), max_value=-(10**300))
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(STRINGS)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), inner, max_size=6)
    ),
    max_leaves=25,
)
# JSON Python reads badly: numbers too long for int(), nesting deeper than the stack.
RAW_FRAGMENTS = [
    b"9" * 5000,
    b"-" + b"1" * 4400,
    b"1" * 4300 + b".5",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"NaN",
    b"-Infinity",
    b'"\\ud800"',
    b'"\\u0000"',
]


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


def message(topic: str, payload: bytes, received_at: float | None = None) -> Message:
    return Message(topic, payload, 1, False, received_at or time.time(), 1)


def check(topic: str, payload: bytes) -> Decoded | Rejected | list[Pending]:
    out = decode(message(topic, payload), OPTIONS)
    if isinstance(out, Rejected):
        assert out.reason in REASONS, out.reason
        assert isinstance(out.detail, str) and out.detail.strip(), out
        assert len(out.detail) <= 1_000, len(out.detail)
    elif isinstance(out, Decoded):
        assert out.reading.time.tzinfo is not None
    else:
        assert isinstance(out, list) and out, "an accepted message carries at least one uplink"
        for p in out:
            assert isinstance(p, Pending)
            u = p.uplink
            assert isinstance(u.fields, dict) and u.time.tzinfo is not None
            assert u.dedupe_key and u.network in ("ttn", "chirpstack", "senml")
            assert u.dev_eui is None or (len(u.dev_eui) == 16 and u.dev_eui == u.dev_eui.lower())
            map_everywhere(u.fields, u.time)
    return out


def map_everywhere(fields: dict[str, Any], when: datetime) -> None:
    """What ingest would do next with an uplink's fields, for every model: only MappingError."""
    for m in [*BUILTIN, *EXTRA]:
        mapped(m.kind, m, fields, when, {"depth_mm": 2500, "mounting_height_m": 3})
    for kind in Kind:
        mapped(kind, None, fields, when, {})


def mapped(
    kind: Kind,
    m: DeviceModel | None,
    fields: dict[str, Any],
    when: datetime,
    device_settings: dict[str, Any],
) -> Reading | MappingError:
    counters: dict[CounterKey, _Counter | None] = {}
    device = _Device("sutton", "dev-1", kind, m.id if m else None, device_settings, "active")
    try:
        reading = to_reading(
            kind, m, fields, when, device_settings, _delta(counters, device, when, [])
        )
    except MappingError as exc:
        assert exc.reason in REASONS and exc.detail.strip(), exc
        assert len(exc.detail) <= 1_100, len(exc.detail)
        return exc
    for name, value in reading.model_dump().items():
        assert not (isinstance(value, float) and not math.isfinite(value)), (name, value)
    return reading


BUILTIN = builtin_models()
EXTRA = [
    MODEL_ADAPTER.validate_python(spec)
    for spec in [
        {
            "id": "test/gauge",
            "kind": "flood_level",
            "name": "every numeric option",
            "defaults": {"sensor_datum_m": 0.5},
            "fields": {
                "level_m": {
                    "from": ["pressure", "p.value"],
                    "unit": "bar",
                    "as": "mH2O",
                    "scale": 1.0,
                    "add_setting": "sensor_datum_m",
                },
                "battery_pct": {"from": "battery", "unit": "%"},
            },
        },
        {
            "id": "test/radar",
            "kind": "flood_level",
            "name": "level from distance",
            "fields": {
                "level_m": {"from": "distance", "unit": "mm", "transform": "level_from_distance"}
            },
        },
        {
            "id": "test/door",
            "kind": "home_activity",
            "name": "states and counters",
            "fields": {
                "sensor": {"setting": "sensor"},
                "door_open": {"from": "DOOR_OPEN_TIMES", "cumulative": True, "above": 0},
                "occupied": {"from": "state", "map": {"open": True, "closed": False, "1": True}},
                "power_w": {"from": "power", "unit": "kW"},
                "motion_count": {"from": "motion", "cumulative": True},
            },
        },
        {
            "id": "test/bin",
            "kind": "bin_fill",
            "name": "fill with a map",
            "fields": {
                "fill_pct": {"from": "distance", "unit": "cm", "transform": "fill_from_distance"},
                "fire": {"from": "temp", "unit": "°C", "as": "degree_Celsius", "above": 70},
                "tilt": {"from": "tilt", "map": {"tilt": True, "normal": False}},
            },
        },
    ]
]
ALL_MODELS = [*BUILTIN, *EXTRA]


# --- decode -------------------------------------------------------------------------------------


@FUZZ
@given(topic=st.sampled_from(TOPICS) | st.text(max_size=40), payload=st.binary(max_size=300))
def test_arbitrary_bytes(topic: str, payload: bytes) -> None:
    check(topic, payload)


@FUZZ
@given(topic=st.sampled_from(TOPICS), value=json_values)
def test_arbitrary_json(topic: str, value: Any) -> None:
    check(topic, dumps(value))


@FUZZ
@given(
    topic=st.sampled_from(TOPICS),
    value=json_values,
    fragment=st.sampled_from(RAW_FRAGMENTS),
)
def test_json_python_reads_badly_anywhere(topic: str, value: Any, fragment: bytes) -> None:
    # The fragment replaces one string in an arbitrary document (or is the document).
    text = dumps([value, "@@"] if not isinstance(value, dict) else {**value, "n": "@@"})
    check(topic, text.replace(b'"@@"', fragment, 1))
    check(topic, fragment)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def _envelopes() -> list[tuple[str, Any]]:
    now = datetime.now(UTC) - timedelta(minutes=5)
    ttn = copy.deepcopy(sample("ttn-v3-uplink.json"))
    ttn["uplink_message"]["rx_metadata"][0]["time"] = now.isoformat()
    ttn["uplink_message"]["decoded_payload"] = {
        "distance": "2000 mm",
        "battery": 92,
        "tilt": "tilt",
    }
    cs = copy.deepcopy(sample("chirpstack-v4-up.json"))
    cs["rxInfo"][0]["gwTime"] = now.isoformat()
    cs["object"] = {"level": {"value": 35, "unit": "cm"}, "battery": 90}
    cs["deviceInfo"]["tags"] = {"model": "milesight-iot/em500-swl", "sensor_datum_m": "1.2 m"}
    pack = [
        {
            "bn": "urn:dev:eui:0101010101010101:",
            "bt": now.timestamp(),
            "bu": "Cel",
            "n": "temperature_c",
            "v": 7,
        },
        {"n": "humidity_pct", "u": "%RH", "v": 81},
        {"bn": "aq-2:", "t": 60, "n": "no2_ugm3", "u": "kg/m3", "v": 4.2e-8},
        {"n": "DOOR_OPEN_TIMES", "s": 4},
    ]
    native = {"time": now.isoformat(), "fill_pct": 40, "distance_mm": 900, "tilt": False}
    return [
        ("v3/app@ttn/devices/eui-70b3d52dd600035a/up", ttn),
        ("application/app-1/device/0101010101010101/event/up", cs),
        (f"{PREFIX}/sutton/senml", pack),
        (f"{PREFIX}/sutton/senml/dev-1", [{"n": "level_m", "u": "cm", "v": 35}]),
        (f"{PREFIX}/sutton/bin_fill/bin-1", native),
    ]


ENVELOPES = _envelopes()


def test_the_unmutated_envelopes_are_accepted() -> None:
    # Otherwise the mutations below would only ever test refusals.
    for topic, doc in ENVELOPES:
        out = check(topic, dumps(doc))
        assert not isinstance(out, Rejected), out


@FUZZ
@given(data=st.data(), envelope=st.sampled_from(ENVELOPES), value=json_values)
def test_real_envelopes_with_one_part_replaced(
    data: st.DataObject, envelope: tuple[str, Any], value: Any
) -> None:
    topic, doc = envelope
    path = data.draw(st.sampled_from(_paths(doc)), label="path")
    delete = bool(path) and data.draw(st.booleans(), label="delete")
    check(topic, dumps(_replace(doc, path, value, delete)))


@FUZZ
@given(data=st.data(), envelope=st.sampled_from(ENVELOPES), fragment=st.sampled_from(RAW_FRAGMENTS))
def test_real_envelopes_with_json_python_reads_badly(
    data: st.DataObject, envelope: tuple[str, Any], fragment: bytes
) -> None:
    topic, doc = envelope
    path = data.draw(st.sampled_from([p for p in _paths(doc) if p]), label="path")
    text = dumps(_replace(doc, path, "@@", delete=False)).replace(b'"@@"', fragment, 1)
    check(topic, text)


# --- mapping ------------------------------------------------------------------------------------

setting_values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(
        ["1100", "1.1 m", "250 mm", "deep", "5 kg", "5 9**9**9", "", "motion", "door"]
    )
)
SETTING_KEYS = ["depth_mm", "blind_zone_mm", "mounting_height_m", "sensor_datum_m", "sensor"]
field_values = scalars | st.dictionaries(
    st.sampled_from(["value", "unit", "displayName"]),
    scalars | st.sampled_from(["mm", "cm", "bar", "kg/m3", "°F", "9**9**9", "(", "1/0", "%"]),
    max_size=3,
)


@FUZZ
@given(
    m=st.sampled_from([*ALL_MODELS, None]),
    kind=st.sampled_from(list(Kind)),
    data=st.data(),
    device_settings=st.dictionaries(st.sampled_from(SETTING_KEYS), setting_values, max_size=5),
)
def test_mapping_raises_only_mapping_errors(
    m: DeviceModel | None, kind: Kind, data: st.DataObject, device_settings: dict[str, Any]
) -> None:
    names = (
        [s.split(".")[0] for spec in m.fields.values() for s in spec.sources]
        if m
        else [*KEYS[-6:], "battery_pct", "tilt", "no2_ugm3", "power_w", "door_open"]
    )
    payload = data.draw(
        st.dictionaries(st.sampled_from(names) | st.text(max_size=6), field_values, max_size=6),
        label="payload",
    )
    when = datetime(2025, 1, 1, tzinfo=UTC)
    out = mapped(
        m.kind if m and data.draw(st.booleans()) else kind, m, payload, when, device_settings
    )
    if isinstance(out, Reading) and m is not None:
        assert out.time == when
