"""Envelopes have the shapes of the real samples in shared/data/payloads: the same keys and
nesting, zero values left out as the network servers do, vendor payloads like the vendors'
decoders, SenML units converted, and network metadata that is the same under the same seed."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.decode import Decoded, DecodeOptions, decode
from ingest.mqtt import Message
from simulators.dynamics import Emission
from simulators.engine import emissions
from simulators.envelopes import Encoder, prune
from simulators.scenario import Scenario, load_scenario

PAYLOADS = Path(__file__).resolve().parents[3] / "shared" / "data" / "payloads"
START = datetime(2026, 11, 2, tzinfo=UTC)
UNTIL = datetime(2026, 11, 2, 6, tzinfo=UTC)


def _sample(name: str) -> Any:
    path = PAYLOADS / name
    if not path.exists():
        pytest.skip(f"{path} is not here (shared/ sits beside the repository)")
    return json.loads(path.read_text())


def _decoded_example(model_id: str) -> dict[str, Any]:
    for example in _sample("decoded-examples.json"):
        if f"{example['brand_id']}/{example['model_id']}" == model_id:
            payload: dict[str, Any] = example["decoded_payload"]
            return payload
    raise AssertionError(model_id)


@pytest.fixture(scope="module")
def borough() -> Scenario:
    return load_scenario("borough")


@pytest.fixture(scope="module")
def stream(borough: Scenario) -> list[Emission]:
    return list(emissions(borough, 3, START, UNTIL))


def _of(stream: list[Emission], model: str | None, sensor: str | None = None) -> Iterator[Emission]:
    for e in stream:
        if (e.device.model.model_id if e.device.model else None) == model and (
            sensor is None or e.device.sensor == sensor
        ):
            yield e


def _keys(value: Any, prefix: str = "") -> set[str]:
    """Dotted key paths of a JSON value (lists by their first element)."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(prefix + k)
            out |= _keys(v, f"{prefix}{k}.")
    elif isinstance(value, list) and value:
        out |= _keys(value[0], prefix + "[].")
    return out


def _zero_fields(value: Any, skip: frozenset[str]) -> list[str]:
    bad = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k in skip:
                continue
            if v in ("", 0, False, {}, []) and v is not True:
                bad.append(k)
            bad += _zero_fields(v, skip)
    elif isinstance(value, list):
        for v in value:
            bad += _zero_fields(v, skip)
    return bad


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_prune_drops_what_protobuf_json_omits() -> None:
    assert prune({"a": 0, "b": "", "c": False, "d": 0.0, "e": {"f": 0}, "g": True, "h": 1}) == {
        "g": True,
        "h": 1,
    }
    assert prune({"kept": {"motion": 0}}, frozenset({"kept"})) == {"kept": {"motion": 0}}


def test_ttn_uplinks_are_shaped_like_the_sample(borough: Scenario, stream: list[Emission]) -> None:
    sample = _sample("ttn-v3-uplink.json")
    encoder = Encoder(borough, "pw", "mixed", seed=3)
    bins = [e for e in _of(stream, "milesight-iot/em310-udl") if e.device.device_id == "bin-0001"]
    assert len(bins) >= 3
    bodies = []
    for e in bins[:3]:
        topic, payload = encoder.encode(e)
        assert topic == "v3/borough-streets@borough/devices/bin-0001/up"
        body = json.loads(payload)
        bodies.append(body)
        assert _keys(body) - {
            "uplink_message.decoded_payload." + k for k in ("battery", "distance", "tilt")
        } <= _keys(sample)
        ids = body["end_device_ids"]
        assert ids["device_id"] == "bin-0001"
        assert ids["application_ids"] == {"application_id": "borough-streets"}
        assert ids["dev_eui"] == e.device.spec.dev_eui.upper()  # type: ignore[union-attr]
        up = body["uplink_message"]
        assert up["version_ids"]["brand_id"] == "milesight-iot"
        assert up["version_ids"]["model_id"] == "em310-udl"
        assert up["network_ids"]["tenant_id"] == "borough"
        rx = up["rx_metadata"][0]
        assert abs(_time(rx["time"]) - e.t_us / 1e6) < 1e-6  # the gateway time is the event time
        assert 0.05 <= _time(up["received_at"]) - e.t_us / 1e6 <= 0.301
        assert rx["rssi"] < 0 and rx["gateway_ids"]["gateway_id"]
        assert set(up["decoded_payload"]) == set(_decoded_example("milesight-iot/em310-udl"))
        assert up["decoded_payload"]["distance"] == round(e.fields["distance_mm"])
        raw = base64.b64decode(up["frm_payload"])
        assert raw[:2] == bytes([1, 0x75]) and raw[3:5] == bytes([3, 0x82])
        assert int.from_bytes(raw[5:7], "little") == up["decoded_payload"]["distance"]
        assert _zero_fields(body, frozenset({"decoded_payload"})) == []
    # f_cnt counts up per device, and like TTN the first frame's 0 is left out.
    assert "f_cnt" not in bodies[0]["uplink_message"]
    assert [b["uplink_message"]["f_cnt"] for b in bodies[1:]] == [1, 2]


def test_chirpstack_events_are_shaped_like_the_sample(
    borough: Scenario, stream: list[Emission]
) -> None:
    sample = _sample("chirpstack-v4-up.json")
    gauge = next(_of(stream, "milesight-iot/em500-swl"))
    topic, payload = Encoder(borough, "pw", "mixed", seed=3).encode(gauge)
    spec = gauge.device.spec
    assert (
        topic == f"application/6f1d2c3a-4b5e-4f60-8a7b-9c0d1e2f3a4b/device/{spec.dev_eui}/event/up"
    )
    body = json.loads(payload)
    extra = {"fCnt", "fPort", "object", "adr", "confirmed", "deviceInfo.deviceClassEnabled"}
    extra |= {f"deviceInfo.tags.{k}" for k in body["deviceInfo"]["tags"]}
    extra |= {f"object.{k}" for k in body["object"]}
    extra |= {f"rxInfo.[].{k}" for k in ("gwTime", "nsTime", "channel", "crcStatus")}
    extra |= {"rxInfo.[].metadata.region_config_id"}
    assert _keys(body) - extra <= _keys(sample)
    assert set(_keys(sample)) - _keys(body) <= {
        "deviceInfo.tags.key",
        "rxInfo.[].metadata.region_name",
    }
    info = body["deviceInfo"]
    assert info["devEui"] == spec.dev_eui and info["deviceName"] == spec.device_id
    assert info["deviceProfileName"] == "Milesight EM500-SWL"
    assert info["applicationId"] == "6f1d2c3a-4b5e-4f60-8a7b-9c0d1e2f3a4b"
    assert info["tags"]["sensor_datum_m"] == str(spec.properties["sensor_datum_m"])
    uuid.UUID(body["deduplicationId"])
    gw_time = _time(body["rxInfo"][0]["gwTime"])
    assert abs(gw_time - gauge.t_us / 1e6) < 1e-6
    assert 0.05 <= _time(body["time"]) - gw_time <= 0.301
    assert set(body["object"]) == set(_decoded_example("milesight-iot/em500-swl"))
    datum = spec.properties["sensor_datum_m"]
    assert body["object"]["level"] == round((gauge.fields["level_m"] - datum) * 100)
    assert _zero_fields(body, frozenset({"object", "tags"})) == []


def test_network_metadata_follows_the_seed(borough: Scenario, stream: list[Emission]) -> None:
    gauges = list(_of(stream, "milesight-iot/em500-swl"))[:20]
    encoders = [Encoder(borough, "pw", "chirpstack", seed) for seed in (3, 3, 4)]
    runs = [[encoder.encode(g)[1] for g in gauges] for encoder in encoders]
    assert runs[0] == runs[1]
    ids = [{json.loads(p)["deduplicationId"] for p in run} for run in runs]
    assert len(ids[0]) == 20 and ids[0] == ids[1] and not ids[0] & ids[2]


def test_vendor_payloads_match_the_vendors_decoders(
    borough: Scenario, stream: list[Emission]
) -> None:
    encoder = Encoder(borough, "pw", "ttn", seed=3)
    pm = json.loads(encoder.encode(next(_of(stream, "decentlab/dl-pm")))[1])
    decoded = pm["uplink_message"]["decoded_payload"]
    example = _decoded_example("decentlab/dl-pm")
    assert set(decoded) <= set(example)
    for key, value in decoded.items():
        if isinstance(value, dict):
            assert value["unit"] == example[key]["unit"] and value["displayName"]
        else:
            assert isinstance(value, int)
    ers = json.loads(encoder.encode(next(_of(stream, "elsys/ers", "motion")))[1])
    assert set(ers["uplink_message"]["decoded_payload"]) == set(_decoded_example("elsys/ers"))


def test_native_devices_over_a_network_send_their_native_fields(
    borough: Scenario, stream: list[Emission]
) -> None:
    door = next(e for e in stream if e.device.device_id == "home-31-door")
    body = json.loads(Encoder(borough, "pw", "mixed", seed=3).encode(door)[1])
    assert body["uplink_message"]["decoded_payload"] == {
        k: v for k, v in door.fields.items()
    }  # door_open False stays: decoder output is not pruned
    assert "version_ids" not in body["uplink_message"]


def test_senml_records(borough: Scenario, stream: list[Emission]) -> None:
    encoder = Encoder(borough, "pw", "senml", seed=3)
    seen: set[str] = set()
    for e in stream[:3000]:
        topic, payload = encoder.encode(e)
        assert topic == "pw/borough/senml"
        records = json.loads(payload)
        assert records[0]["bn"] == f"{e.device.device_id}:"
        assert records[0]["bt"] == e.t_us / 1e6
        assert all("bn" not in r and "bt" not in r for r in records[1:])
        for r in [{k: v for k, v in records[0].items() if k not in ("bn", "bt")}, *records[1:]]:
            name = r["n"]
            seen.add(name)
            native = e.fields[name]
            if isinstance(native, bool):
                assert r == {"n": name, "vb": native}
            elif isinstance(native, str):
                assert r == {"n": name, "vs": native}
            elif name == "distance_mm":
                assert r["u"] == "m" and r["v"] == pytest.approx(native / 1000)
            elif name.endswith("_ugm3"):
                assert r["u"] == "kg/m3" and r["v"] == pytest.approx(native * 1e-9, rel=1e-5)
            else:
                unit = {"fill_pct": "%", "battery_pct": "%EL", "humidity_pct": "%RH"}
                unit |= {"temperature_c": "Cel", "power_w": "W", "level_m": "m"}
                unit |= {"motion_count": "count"}
                assert r["u"] == unit[name] and r["v"] == native
    assert {"distance_mm", "no2_ugm3", "motion_count", "occupied", "sensor", "level_m"} <= seen


def test_native_messages_pass_ingest_validation(borough: Scenario, stream: list[Emission]) -> None:
    encoder = Encoder(borough, "pw", "native", seed=3)
    for e in stream:
        topic, payload = encoder.encode(e)
        out = decode(Message(topic, payload, 1, False, time.time(), 1), DecodeOptions("pw"))
        assert isinstance(out, Decoded), (topic, payload, out)
        assert out.reading.time.timestamp() == e.t_us / 1e6
        assert "room_temperature_c" not in payload.decode()  # vendor-only fields stay out
