"""The Things Stack, ChirpStack and SenML uplinks through a live ingest: real devices connected
by configuration (a devices file, model files), unknown devices held and replayed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from tests.support.pipeline import Pipeline
from tests.support.traffic import wait_until
from tests.support.uplinks import chirpstack_up, decoded_examples, new_eui, ttn_uplink

# What each real decoded example (decoded-examples.json) must become, with the settings below.
SETTINGS: dict[str, dict[str, Any]] = {
    "bin_fill": {"depth_mm": 2500},  # blind zone: the model's default, 250 mm
    "flood_level": {"sensor_datum_m": 0.5},
    "air_quality": {},
    "home_activity": {},
}
EXPECTED: dict[str, dict[str, Any]] = {
    "bin_fill": {
        "fill_pct": pytest.approx((2500 - 2116) / (2500 - 250) * 100, abs=1e-4),
        "distance_mm": 2116,
        "tilt": True,
        "battery_pct": 92,
    },
    "flood_level": {"level_m": pytest.approx(0.52), "battery_pct": 92},
    "air_quality": {
        "pm25_ugm3": pytest.approx(3.9, abs=1e-5),
        "pm10_ugm3": pytest.approx(3.9, abs=1e-5),
        "temperature_c": pytest.approx(24.3566, abs=1e-3),
        "humidity_pct": pytest.approx(41.6322, abs=1e-3),
        "no2_ugm3": None,
    },
    "home_activity": {"sensor": "motion", "motion_count": 6, "resident_id": "r-0042"},
}
PROFILES = {
    "em310-udl": "Milesight EM310-UDL",
    "em500-swl": "Milesight EM500-SWL",
    "dl-pm": "Decentlab DL-PM",
    "ers": "Elsys ERS",
}


def devices_file(path: Path, council: str, body: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"council": council, **body}), encoding="utf-8")  # JSON is YAML
    return path


def row(pipe: Pipeline, kind: str, device: str) -> dict[str, Any]:
    cur = pipe.conn.execute(
        sql.SQL("SELECT * FROM {} WHERE council_id = %s AND device_id = %s").format(
            sql.Identifier(kind)
        ),
        (pipe.council, device),
    )
    names = [c.name for c in cur.description or []]
    rows = cur.fetchall()
    assert len(rows) == 1, f"{device}: {len(rows)} rows"
    return dict(zip(names, rows[0], strict=True))


def test_four_real_models_through_both_network_servers(pipe: Pipeline, tmp_path: Path) -> None:
    ttn_app, cs_app = f"{pipe.council}-sensors@ttn", new_eui() + "-app"
    devices, messages = [], []
    when = datetime.now(UTC).replace(microsecond=123456) - timedelta(minutes=5)
    for example in decoded_examples():
        kind, model = example["kind"], example["model_id"]
        for network in ("ttn", "chirpstack"):
            eui = new_eui()
            name = f"{network}-{model}"
            devices.append(
                {
                    "id": name,
                    "dev_eui": eui.upper(),
                    # Through TTN the registry names the model; through ChirpStack the device
                    # profile in the uplink finds it.
                    **({"model": f"{example['brand_id']}/{model}"} if network == "ttn" else {}),
                    "kind": kind,
                    "resident": "r-0042" if kind == "home_activity" else None,
                    "settings": SETTINGS[kind],
                }
            )
            if network == "ttn":
                messages.append(
                    ttn_uplink(ttn_app, name, eui, when, example["decoded_payload"], f_cnt=0)
                )
            else:
                messages.append(
                    chirpstack_up(
                        cs_app, eui, when, example["decoded_payload"], profile=PROFILES[model]
                    )
                )
    apps = [
        {"network": "ttn", "application": ttn_app},
        {"network": "chirpstack", "application": cs_app},
    ]
    ingest = pipe.ingest()
    out = ingest.cli(
        "devices",
        "import",
        str(
            devices_file(
                tmp_path / "d.yaml", pipe.council, {"applications": apps, "devices": devices}
            )
        ),
    )
    assert "registered 8 devices and 2 network applications" in out
    pipe.publish(messages)
    wait_until(lambda: pipe.stored() == 8, 30, "8 readings")
    for d in devices:
        stored = row(pipe, d["kind"], d["id"])
        assert stored["time"] == when, d["id"]  # the gateway's time, not the server's
        for field, value in EXPECTED[d["kind"]].items():
            assert stored[field] == value, (d["id"], field, stored[field])
    assert pipe.conn.execute(
        "SELECT count(*) FROM dead_letters WHERE council_id = %s", (pipe.council,)
    ).fetchone() == (0,)


DOOR_MODEL = """\
# Dragino LDS02 door contact: not built in, connected by this file alone.
id: dragino/lds02
kind: home_activity
name: Dragino LDS02 door sensor
match:
  ttn: {brand_id: dragino, model_id: lds02}
fields:
  sensor: {value: door}
  # The device counts openings since it was switched on: opened since the last uplink?
  door_open: {from: DOOR_OPEN_TIMES, cumulative: true, above: 0}
"""


def test_a_new_model_by_mapping_file_alone(pipe: Pipeline, tmp_path: Path) -> None:
    model = tmp_path / "lds02.yaml"
    model.write_text(DOOR_MODEL)
    ingest = pipe.ingest(start=False)
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps({"DOOR_OPEN_STATUS": 0, "DOOR_OPEN_TIMES": 7, "BAT_V": 3.05}))
    checked = ingest.cli("models", "check", str(model), "--payload", str(sample))
    assert "model dragino/lds02 (home_activity) is valid" in checked
    assert '"sensor": "door"' in checked and '"door_open": false' in checked, checked
    assert "imported 1 models: dragino/lds02" in ingest.cli("models", "import", str(model))
    assert "dragino/lds02" in ingest.cli("models", "list")

    app, eui = f"{pipe.council}-homes@ttn", new_eui()
    ingest.cli(
        "devices",
        "import",
        str(
            devices_file(
                tmp_path / "d.yaml",
                pipe.council,
                {
                    "applications": [{"network": "ttn", "application": app}],
                    "devices": [
                        {
                            "id": "front-door",
                            "model": "dragino/lds02",
                            "dev_eui": eui,
                            "resident": "r-0007",
                        }
                    ],
                },
            )
        ),
    )
    ingest.start()
    base = datetime.now(UTC) - timedelta(hours=1)
    totals = [100, 100, 101, 104, 104, 2]  # the last: the device restarted its count
    pipe.publish(
        ttn_uplink(
            app,
            "front-door",
            eui,
            base + timedelta(minutes=10 * i),
            {"DOOR_OPEN_TIMES": n, "BAT_V": 3.0},
            brand_model=("dragino", "lds02"),
            f_cnt=i + 1,
        )
        for i, n in enumerate(totals)
    )
    wait_until(lambda: pipe.stored() == len(totals), 30, "the door readings")
    opened = pipe.conn.execute(
        "SELECT door_open, sensor, resident_id FROM home_activity"
        " WHERE council_id = %s ORDER BY time",
        (pipe.council,),
    ).fetchall()
    assert [o for o, _, _ in opened] == [False, False, True, True, False, True]
    assert {(s, r) for _, s, r in opened} == {("door", "r-0007")}
    assert pipe.conn.execute(
        "SELECT value FROM device_counters WHERE council_id = %s", (pipe.council,)
    ).fetchall() == [(2.0,)]


def test_unknown_device_is_held_then_replayed_once(pipe: Pipeline, tmp_path: Path) -> None:
    app, eui = f"{pipe.council}-bins@ttn", new_eui()
    ingest = pipe.ingest(start=False)
    register_app = {"applications": [{"network": "ttn", "application": app}]}
    ingest.cli(
        "devices", "import", str(devices_file(tmp_path / "a.yaml", pipe.council, register_app))
    )
    ingest.start()
    base = datetime.now(UTC) - timedelta(hours=2)
    pipe.publish(
        ttn_uplink(
            app,
            "bin-new",
            eui,
            base + timedelta(minutes=15 * i),
            {"battery": 90, "distance": 1000 - 50 * i, "tilt": "normal"},
            brand_model=("milesight-iot", "em310-udl"),
            f_cnt=i + 1,
        )
        for i in range(8)
    )
    held = f"SELECT reason, detail FROM dead_letters WHERE topic LIKE 'v3/{app}/%%'"
    wait_until(lambda: len(pipe.conn.execute(held).fetchall()) == 8, 30, "8 dead letters")
    reasons = pipe.conn.execute(held).fetchall()
    assert {r for r, _ in reasons} == {"unknown_device"}
    assert f"DevEUI {eui} is not registered in council {pipe.council!r}" in reasons[0][1]

    ingest.cli(
        "devices",
        "import",
        str(
            devices_file(
                tmp_path / "d.yaml",
                pipe.council,
                {
                    **register_app,
                    "devices": [
                        {
                            "id": "bin-new",
                            "model": "milesight-iot/em310-udl",
                            "dev_eui": eui,
                            "settings": {"depth_mm": 1250},
                        }
                    ],
                },
            )
        ),
    )
    assert "8 stored" in ingest.cli("replay", "--council", pipe.council)
    assert "0 stored" in ingest.cli("replay", "--council", pipe.council)
    fills = pipe.conn.execute(
        "SELECT fill_pct FROM bin_fill WHERE council_id = %s ORDER BY time", (pipe.council,)
    ).fetchall()
    assert [round(f, 1) for (f,) in fills] == [
        round((1250 - (1000 - 50 * i)) / 1000 * 100, 1) for i in range(8)
    ]


def test_auto_registered_device_waits_in_quarantine(pipe: Pipeline, tmp_path: Path) -> None:
    app, eui = f"{pipe.council}-auto@ttn", new_eui()
    ingest = pipe.ingest(start=False)
    ingest.cli(
        "devices",
        "import",
        str(
            devices_file(
                tmp_path / "a.yaml",
                pipe.council,
                {
                    "applications": [{"network": "ttn", "application": app, "auto_register": True}],
                },
            )
        ),
    )
    ingest.start()
    when = datetime.now(UTC) - timedelta(minutes=30)
    level = {"battery": 80, "level": 35}
    pipe.publish(
        [
            ttn_uplink(
                app, "river-wandle", eui, when, level, brand_model=("milesight-iot", "em500-swl")
            ),
            # No model named: cannot be registered, kind unknown.
            ttn_uplink(app, "mystery", new_eui(), when, {"x": 1}),
        ]
    )
    letters = f"SELECT reason, detail FROM dead_letters WHERE topic LIKE 'v3/{app}/%%'"
    wait_until(lambda: len(pipe.conn.execute(letters).fetchall()) == 2, 30, "2 dead letters")
    by_reason = dict(pipe.conn.execute(letters).fetchall())
    assert (
        "registered as 'river-wandle' (milesight-iot/em500-swl) in quarantine"
        in by_reason["quarantined_device"]
    )
    assert "names no known model" in by_reason["unknown_device"]
    listed = ingest.cli("devices", "list", "--council", pipe.council, "--quarantined")
    assert "river-wandle" in listed and "[quarantined]" in listed and "1 devices" in listed

    assert "0 stored" in ingest.cli(
        "replay", "--council", pipe.council
    )  # still held: not approved yet
    ingest.cli(
        "devices",
        "approve",
        "river-wandle",
        "--council",
        pipe.council,
        "--setting",
        "sensor_datum_m=1.25",
    )
    assert "1 stored" in ingest.cli("replay", "--council", pipe.council)
    stored = row(pipe, "flood_level", "river-wandle")
    assert stored["level_m"] == pytest.approx(1.6) and stored["time"] == when
    shown = ingest.cli("devices", "show", "river-wandle", "--council", pipe.council)
    assert '"sensor_datum_m": 1.25' in shown and eui in shown


def test_senml_and_non_uplink_events(pipe: Pipeline, tmp_path: Path) -> None:
    # Subscribed to every ChirpStack event (the default is uplinks only): the others are kept.
    ingest = pipe.ingest(start=False, ingest_network_topics='["application/+/device/+/event/+"]')
    cs_app, eui = new_eui() + "-cs", new_eui()
    ingest.cli(
        "devices",
        "import",
        str(
            devices_file(
                tmp_path / "d.yaml",
                pipe.council,
                {
                    "applications": [{"network": "chirpstack", "application": cs_app}],
                    "devices": [
                        {"id": "aq-senml", "kind": "air_quality"},
                        {"id": "cs-gauge", "kind": "flood_level", "dev_eui": eui},
                    ],
                },
            )
        ),
    )
    ingest.start()
    t0 = (datetime.now(UTC) - timedelta(minutes=10)).timestamp()
    pack = [
        {"bn": "aq-senml:", "bt": t0, "n": "no2_ugm3", "u": "kg/m3", "v": 4.2e-8},
        {"n": "humidity_pct", "u": "%RH", "v": 81},
        {"n": "temperature_c", "u": "Cel", "v": 7.5},
        {"t": 600, "n": "no2_ugm3", "u": "kg/m3", "v": 5.0e-8},
    ]
    with open(Path(__file__).parents[3] / "shared/data/payloads/chirpstack-v4-up.json", "rb") as f:
        undecoded = f.read()  # the real sample: no codec, so no "object"
    pipe.publish(
        [
            (f"{pipe.prefix}/{pipe.council}/senml", json.dumps(pack).encode()),
            (f"application/{cs_app}/device/{eui}/event/up", undecoded),
            (f"application/{cs_app}/device/{eui}/event/join", b'{"devAddr": "00189440"}'),
        ]
    )
    wait_until(lambda: pipe.stored() == 2, 30, "2 SenML readings")
    aq = pipe.conn.execute(
        "SELECT no2_ugm3, humidity_pct, temperature_c FROM air_quality WHERE council_id = %s"
        " ORDER BY time",
        (pipe.council,),
    ).fetchall()
    assert aq == [
        (pytest.approx(42.0), pytest.approx(81.0), pytest.approx(7.5)),
        (pytest.approx(50.0), None, None),
    ]
    letters = f"SELECT reason FROM dead_letters WHERE topic LIKE 'application/{cs_app}/%%'"
    wait_until(lambda: len(pipe.conn.execute(letters).fetchall()) == 2, 30, "2 dead letters")
    assert sorted(r for (r,) in pipe.conn.execute(letters).fetchall()) == [
        "not_an_uplink",
        "not_decoded",
    ]
