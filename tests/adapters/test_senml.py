"""SenML packs (RFC 8428): resolution of base fields, devices and times, and refusals that name
the record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters import EnvelopeError, Uplink, adapt
from adapters.senml import parse_senml
from devices.models import ModelHints

RECEIVED = 1_750_000_000.25
T0 = 1_700_000_000.0  # an absolute time (> 2**28)


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def parse(pack: Any, device: str | None = None, council: str = "sutton") -> list[Uplink]:
    return parse_senml(council, device, json.dumps(pack).encode(), RECEIVED)


def one(pack: Any, device: str | None = None) -> Uplink:
    uplinks = parse(pack, device)
    assert len(uplinks) == 1, uplinks
    return uplinks[0]


def refused(pack: Any, device: str | None = None) -> EnvelopeError:
    payload = pack if isinstance(pack, bytes) else json.dumps(pack).encode()
    with pytest.raises(EnvelopeError) as info:
        parse_senml("sutton", device, payload, RECEIVED)
    assert info.value.detail
    return info.value


def test_rfc_8428_multiple_data_points_example() -> None:
    # RFC 8428 §5.1.2, with the base time of §5.1.3.
    u = one(
        [
            {
                "bn": "urn:dev:ow:10e2073a01080063:",
                "bt": 1.320067464e09,
                "n": "voltage",
                "u": "V",
                "v": 120.1,
            },
            {"n": "current", "u": "A", "v": 1.2},
        ]
    )
    assert u.network == "senml" and u.council_id == "sutton" and u.application is None
    assert u.device_name == "urn:dev:ow:10e2073a01080063"
    assert u.time == at(1.320067464e09)
    assert u.fields == {
        "voltage": {"value": 120.1, "unit": "V"},
        "current": {"value": 1.2, "unit": "A"},
    }
    assert u.hints == ModelHints()


def test_base_unit_and_base_value() -> None:
    u = one(
        [
            {"bn": "gauge-1:", "bt": T0, "bu": "m", "bv": 10.0, "n": "a", "v": 0.5},
            {"n": "b", "v": -1},
            {"n": "c", "u": "cm", "v": 5},  # its own unit; the base value still adds
            {"n": "d", "vs": "open"},  # base value and unit apply to numbers only
            {"n": "e", "vb": True},
        ]
    )
    assert u.fields == {
        "a": {"value": 10.5, "unit": "m"},
        "b": {"value": 9.0, "unit": "m"},
        "c": {"value": 15.0, "unit": "cm"},
        "d": "open",
        "e": True,
    }


def test_a_record_without_a_unit_is_a_plain_number() -> None:
    assert one([{"bn": "d:", "bt": T0, "n": "motion_count", "v": 3}]).fields == {
        "motion_count": 3.0
    }


def test_base_fields_change_mid_pack() -> None:
    uplinks = parse(
        [
            {"bn": "a:", "bt": T0, "bu": "Cel", "n": "temperature_c", "v": 7},
            {"bn": "b:", "n": "temperature_c", "v": 8},  # base unit and time carry over
            {"bu": "%RH", "n": "humidity_pct", "v": 80},
            {"bt": T0 + 60, "n": "humidity_pct", "v": 81},
        ]
    )
    assert [(u.device_name, u.time, u.fields) for u in uplinks] == [
        ("a", at(T0), {"temperature_c": {"value": 7.0, "unit": "Cel"}}),
        (
            "b",
            at(T0),
            {
                "temperature_c": {"value": 8.0, "unit": "Cel"},
                "humidity_pct": {"value": 80.0, "unit": "%RH"},
            },
        ),
        ("b", at(T0 + 60), {"humidity_pct": {"value": 81.0, "unit": "%RH"}}),
    ]


def test_times_below_2_pow_28_are_relative_to_receipt() -> None:
    uplinks = parse(
        [
            {"bn": "d:", "n": "x", "v": 1},  # no time: now
            {"n": "x", "t": -60, "v": 2},  # a minute ago
            {"bt": -120, "n": "x", "t": 0, "v": 3},
            {"bt": 2**28 - 1, "n": "x", "v": 4},  # still relative: 8.5 years ahead
            {"bt": 2**28, "n": "x", "v": 5},  # absolute: 1978
        ]
    )
    times = {u.fields["x"]: u.time for u in uplinks}
    assert times == {
        1.0: at(RECEIVED),
        2.0: at(RECEIVED - 60),
        3.0: at(RECEIVED - 120),
        4.0: at(RECEIVED + 2**28 - 1),
        5.0: at(2**28),
    }


def test_absolute_base_time_with_relative_offsets() -> None:
    # RFC 8428 §5.1.4: one base time, per-record offsets (here with a device in the base name).
    uplinks = parse(
        [
            {
                "bn": "urn:dev:ow:10e2073a01080063:",
                "bt": 1.320067464e09,
                "bu": "%RH",
                "n": "humidity",
                "v": 20,
            },
            {"n": "humidity", "t": 60, "v": 20.3},
            {"n": "humidity", "t": 120, "v": 20.7},
        ]
    )
    assert [(u.time, u.fields["humidity"]) for u in uplinks] == [
        (at(1.320067464e09), {"value": 20.0, "unit": "%RH"}),
        (at(1.320067464e09 + 60), {"value": 20.3, "unit": "%RH"}),
        (at(1.320067464e09 + 120), {"value": 20.7, "unit": "%RH"}),
    ]
    assert {u.device_name for u in uplinks} == {"urn:dev:ow:10e2073a01080063"}


def test_one_uplink_per_device_and_time() -> None:
    uplinks = parse(
        [
            {"bn": "aq-1:", "bt": T0, "n": "no2_ugm3", "v": 40},
            {"n": "pm10_ugm3", "v": 20},
            {"t": 600, "n": "no2_ugm3", "v": 41},
            {"bn": "aq-2:", "n": "no2_ugm3", "v": 30},
            {"bn": "aq-1:", "n": "pm25_ugm3", "t": 600, "v": 9},
        ]
    )
    assert [(u.device_name, u.time, sorted(u.fields)) for u in uplinks] == [
        ("aq-1", at(T0), ["no2_ugm3", "pm10_ugm3"]),
        ("aq-1", at(T0 + 600), ["no2_ugm3", "pm25_ugm3"]),
        ("aq-2", at(T0), ["no2_ugm3"]),
    ]
    assert len({u.dedupe_key for u in uplinks}) == 3
    assert all(u.dedupe_key.startswith("senml:sutton:") for u in uplinks)


def test_the_same_pack_gives_the_same_dedupe_keys() -> None:
    pack = [{"bn": "aq-1:", "bt": T0, "n": "no2_ugm3", "v": 40}]
    assert one(pack).dedupe_key == one(pack).dedupe_key
    assert parse_senml("merton", None, json.dumps(pack).encode(), RECEIVED)[0].dedupe_key != (
        one(pack).dedupe_key
    )


def test_urn_dev_eui_names_give_a_dev_eui() -> None:
    u = one([{"bn": "urn:dev:eui:24E124136B316582:", "bt": T0, "n": "distance", "v": 1}])
    assert u.dev_eui == "24e124136b316582"
    assert u.device_name == "urn:dev:eui:24E124136B316582"
    u = one([{"bn": "urn:dev:mac:0024befffe804ff1:", "bt": T0, "n": "x", "v": 1}])
    assert u.dev_eui == "0024befffe804ff1"
    for name in ("urn:dev:eui:24e124136b31658:", "urn:dev:eui:24e124136b3165820:", "bin-1:"):
        assert one([{"bn": name, "bt": T0, "n": "x", "v": 1}]).dev_eui is None


def test_a_topic_that_names_the_device_allows_bare_names() -> None:
    u = one([{"bt": T0, "n": "level_m", "u": "m", "v": 1.5}], device="gauge-7")
    assert (u.device_name, u.fields) == ("gauge-7", {"level_m": {"value": 1.5, "unit": "m"}})
    # A name that carries another device is refused there (test_a_device_topic_speaks_...).
    # Names with slashes: the device is everything before the last one.
    u = one([{"bn": "site/gauge-9/", "bt": T0, "n": "level_m", "v": 1}])
    assert (u.device_name, list(u.fields)) == ("site/gauge-9", ["level_m"])


def test_a_name_that_names_no_device_is_refused_with_its_index() -> None:
    e = refused([{"bn": "d:", "bt": T0, "n": "x", "v": 1}, {"bn": "", "n": "level_m", "v": 2}])
    assert e.reason == "missing_field"
    assert e.detail.startswith("[1]:") and "'level_m'" in e.detail
    assert refused([{"bn": "d:", "v": 1}]).reason == "missing_field"  # a device, no field


def test_sums_are_values() -> None:
    u = one([{"bn": "door-1:", "bt": T0, "n": "DOOR_OPEN_TIMES", "s": 104}])
    assert u.fields == {"DOOR_OPEN_TIMES": 104.0}
    u = one([{"bn": "meter:", "bt": T0, "n": "energy", "u": "Wh", "s": 1500}])
    assert u.fields == {"energy": {"value": 1500.0, "unit": "Wh"}}
    # With both, the value is the reading (the sum is the integral of it).
    assert one([{"bn": "p:", "bt": T0, "n": "power", "v": 2, "s": 9}]).fields == {"power": 2.0}


def test_base_sum_adds_to_sums() -> None:
    u = one([{"bn": "door-1:", "bt": T0, "bs": 100, "n": "DOOR_OPEN_TIMES", "s": 4}])
    assert u.fields == {"DOOR_OPEN_TIMES": 104.0}


def test_must_understand_fields_refuse_the_pack() -> None:
    # RFC 8428 §4.4: a field whose name ends in "_" changes the meaning of the record; a reader
    # that does not know it must reject the whole pack, not read it as if it were absent.
    e = refused([{"bn": "d:", "bt": T0, "n": "x", "v": 1}, {"n": "y", "v": 2, "ver_": 3}])
    assert e.reason == "invalid_value"
    assert e.detail == "[1].ver_: a must-understand field this reader does not know"
    # Unknown fields without the "_" are extensions that may be ignored.
    assert one([{"bn": "d:", "bt": T0, "n": "x", "v": 1, "ext": 3}]).fields == {"x": 1.0}


def test_data_values_are_refused_with_the_record_index() -> None:
    e = refused([{"bn": "d:", "bt": T0, "n": "x", "v": 1}, {"n": "blob", "vd": "aGVsbG8"}])
    assert e.reason == "invalid_value" and e.detail.startswith("[1].vd")


@pytest.mark.parametrize(
    ("record", "where"),
    [
        ({"n": "x", "v": "1"}, "[1].v="),
        ({"n": "x", "v": True}, "[1].v="),
        ({"n": "x", "v": None}, "[1].v="),
        ({"n": "x", "s": "4"}, "[1].s="),
        ({"n": "x", "vs": 4}, "[1].vs="),
        ({"n": "x", "vb": "true"}, "[1].vb="),
        ({"n": 5, "v": 1}, "[1].n="),
        ({"bn": 5, "v": 1}, "[1].bn="),
        ({"bu": 5, "n": "x", "v": 1}, "[1].bu="),
        ({"u": 5, "n": "x", "v": 1}, "[1].u="),
        ({"u": ["m"], "n": "x", "v": 1}, "[1].u="),
        ({"bt": "now", "n": "x", "v": 1}, "[1].bt="),
        ({"n": "x", "t": [1], "v": 1}, "[1].t="),
        ({"bv": {"v": 1}, "n": "x", "v": 1}, "[1].bv="),
    ],
)
def test_wrong_types_are_refused_with_the_record_index(record: dict[str, Any], where: str) -> None:
    e = refused([{"bn": "d:", "bt": T0, "n": "ok", "v": 1}, record])
    assert e.reason == "invalid_value"
    assert e.detail.startswith(where), e.detail


def test_a_named_record_without_a_value_is_refused() -> None:
    e = refused([{"bn": "d:", "bt": T0, "n": "x", "v": 1}, {"n": "y", "t": 5}])
    assert e.reason == "missing_field" and e.detail.startswith("[1]:")


def test_a_pack_of_base_fields_only_is_refused_not_dropped() -> None:
    # Nothing to store: it must not vanish as zero uplinks (nothing is silently dropped).
    for pack in ([{"bn": "d:"}], [{"bn": "d:", "bt": T0}, {"bu": "m"}]):
        e = refused(pack)
        assert e.reason == "missing_field" and "value" in e.detail


def test_non_finite_numbers_are_refused() -> None:
    for payload in (
        b'[{"bn": "d:", "n": "x", "v": NaN}]',
        b'[{"bn": "d:", "bt": Infinity, "v": 1}]',
    ):
        e = refused(payload)
        assert e.reason == "invalid_value" and e.detail.startswith("[0].")


def test_numbers_beyond_a_float_are_refused() -> None:
    e = refused(b'[{"bn": "d:", "n": "x", "v": ' + b"9" * 4000 + b"}]")
    assert e.reason == "invalid_value" and e.detail.startswith("[0].v=")
    assert len(e.detail) < 1_000  # the number is not repeated in full


def test_times_beyond_a_datetime_are_refused() -> None:
    e = refused([{"bn": "d:", "bt": 1e300, "n": "x", "v": 1}])
    assert e.reason == "invalid_value" and "out of range" in e.detail


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid_json"),
        (b"\xa1\x00", "invalid_json"),  # CBOR SenML: kept for later, not read here
        (b"[", "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b"[]", "not_an_object"),
        (b"{}", "not_an_object"),
        (b'{"bn": "d:", "v": 1}', "not_an_object"),
        (b'[{"bn": "d:", "n": "x", "v": 1}, 3]', "not_an_object"),
    ],
)
def test_not_a_pack(payload: bytes, reason: str) -> None:
    e = refused(payload)
    assert e.reason == reason
    assert len(e.detail) < 1_000


def test_a_huge_value_in_a_refusal_is_shortened() -> None:
    e = refused([{"bn": "d:", "n": list(range(100_000)), "v": 1}])
    assert e.reason == "invalid_value" and e.detail.startswith("[0].n=[0, 1, 2")
    assert len(e.detail) <= 1_000


@pytest.mark.parametrize(
    ("topic", "device"),
    [
        ("pw/sutton/senml", None),
        ("pw/sutton/senml/gauge-7", "gauge-7"),
    ],
)
def test_routing_by_topic(topic: str, device: str | None) -> None:
    pack = json.dumps([{"bt": T0, "n": "x", "v": 1}]).encode()
    if device is None:
        with pytest.raises(EnvelopeError):  # bare names need the topic's device
            adapt(topic, pack, "pw", RECEIVED)
        pack = json.dumps([{"bn": "g:", "bt": T0, "n": "x", "v": 1}]).encode()
    uplinks = adapt(topic, pack, "pw", RECEIVED)
    assert uplinks is not None and len(uplinks) == 1
    assert uplinks[0].council_id == "sutton"
    assert uplinks[0].device_name == (device or "g")


@pytest.mark.parametrize(
    "names",
    [
        [{"bn": "gauge-8:", "bt": T0, "n": "x", "v": 1}],
        [{"bt": T0, "n": "x", "v": 1}, {"n": "gauge-8:x", "v": 2}],
        [{"bn": "urn:dev:eui:0011223344556677:", "bt": T0, "n": "x", "v": 1}],
    ],
    ids=["base-name", "second-record", "eui-urn"],
)
def test_a_device_topic_speaks_for_its_device_only(names: list[dict[str, object]]) -> None:
    with pytest.raises(EnvelopeError) as exc:
        adapt("pw/sutton/senml/gauge-7", json.dumps(names).encode(), "pw", RECEIVED)
    assert exc.value.reason == "invalid_value"
    assert "gauge-7" in exc.value.detail and "bare field names" in exc.value.detail
    # Naming the topic's own device is fine.
    pack = [{"bn": "gauge-7:", "bt": T0, "n": "x", "v": 1}]
    [u] = adapt("pw/sutton/senml/gauge-7", json.dumps(pack).encode(), "pw", RECEIVED) or []
    assert u.device_name == "gauge-7"


@pytest.mark.parametrize(
    "topic", ["pw/sutton/senml/a/b", "pw/sutton/bin_fill/bin-1", "pw//senml", "other/sutton/senml"]
)
def test_other_topics_are_not_senml(topic: str) -> None:
    assert adapt(topic, b"[]", "pw", RECEIVED) is None
