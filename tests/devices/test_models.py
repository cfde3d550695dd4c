"""Device model files: the built-in ones load and map their real examples; a bad file names
file, line and field for every problem; the catalog finds a model from an uplink's hints."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devices.commands import run_models_command
from devices.mapping import to_reading
from devices.models import (
    MODEL_ADAPTER,
    DeviceModel,
    ModelCatalog,
    ModelHints,
    builtin_models,
    catalog_of,
    load_model_file,
    spec_json,
)
from placewatch.kinds import Kind
from placewatch.settings import Settings
from placewatch.yamlconfig import ConfigLoadError, ConfigProblem
from tests.support.uplinks import decoded_examples, ttn_uplink

BUILTIN = {m.id: m for m in builtin_models()}
T = datetime(2025, 4, 16, 12, 0, tzinfo=UTC)


def test_the_four_built_in_models() -> None:
    assert {(i, m.kind) for i, m in BUILTIN.items()} == {
        ("milesight-iot/em310-udl", Kind.BIN_FILL),
        ("milesight-iot/em500-swl", Kind.FLOOD_LEVEL),
        ("decentlab/dl-pm", Kind.AIR_QUALITY),
        ("elsys/ers", Kind.HOME_ACTIVITY),
    }
    for m in BUILTIN.values():
        assert m.match.ttn is not None and m.match.chirpstack is not None, m.id


@pytest.mark.parametrize("model_id", sorted(BUILTIN))
def test_a_model_survives_the_database(model_id: str) -> None:
    # `models import` stores spec_json; ingest reads it back with the same adapter.
    m = BUILTIN[model_id]
    spec = spec_json(m)
    assert "from" in str(spec) and "source" not in str(spec)  # the file's own keys
    assert MODEL_ADAPTER.validate_python(spec) == m


# What each real decoded example (decoded-examples.json) becomes with these settings.
SETTINGS: dict[str, dict[str, Any]] = {
    "bin_fill": {"depth_mm": 2500},
    "flood_level": {"sensor_datum_m": 0.5},
    "air_quality": {},
    "home_activity": {},
}
EXPECTED: dict[str, dict[str, Any]] = {
    "bin_fill": {
        "fill_pct": pytest.approx((2500 - 2116) / (2500 - 250) * 100),
        "distance_mm": 2116.0,
        "tilt": True,
        "battery_pct": 92.0,
    },
    "flood_level": {"level_m": pytest.approx(0.52), "battery_pct": 92.0},
    "air_quality": {
        "pm25_ugm3": pytest.approx(3.9),
        "pm10_ugm3": pytest.approx(3.9),
        "temperature_c": pytest.approx(24.35660461425781),
        "humidity_pct": pytest.approx(41.63221740722656),
    },
    "home_activity": {"sensor": "motion", "motion_count": 6},
}


@pytest.mark.parametrize("example", decoded_examples(), ids=lambda e: str(e["model_id"]))
def test_every_built_in_model_maps_its_real_example(example: dict[str, Any]) -> None:
    catalog = ModelCatalog.of(builtin_models())
    m = catalog.match(ModelHints(ttn_brand=example["brand_id"], ttn_model=example["model_id"]))
    assert m is not None and m.kind.value == example["kind"]
    assert m.id == f"{example['brand_id']}/{example['model_id']}"
    reading = to_reading(m.kind, m, example["decoded_payload"], T, SETTINGS[example["kind"]])
    assert reading.model_dump(exclude_none=True, exclude={"time"}) == EXPECTED[example["kind"]]
    assert reading.time == T


# --- model files with problems --------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigLoadError) as info:
        load_model_file(path)
    assert str(info.value) == "\n".join(map(str, info.value.problems))
    return info.value.problems


HEAD = "id: acme/thing\nkind: bin_fill\nname: Acme thing\nfields:\n"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            "  fill_pct: {from: d, value: 3}\n",
            "fields.fill_pct",
            "give exactly one of from, setting, value",
        ),
        ("  fill_pct: {unit: mm}\n", "fields.fill_pct", "give exactly one of from, setting, value"),
        (
            "  fill_pct: {from: d, transform: fill_from_depth}\n",
            "fields.fill_pct.transform",
            "Input should be 'fill_from_distance' or 'level_from_distance' (got 'fill_from_depth')",
        ),
        (
            "  fill_pct: {from: d, units: mm}\n",
            "fields.fill_pct.units",
            "Extra inputs are not permitted (got 'mm')",
        ),
        ("  fill_pct: {from: ''}\n", "fields.fill_pct.from", "at least 1 item"),
        ("  fill_pct: {from: []}\n", "fields.fill_pct.from", "at least 1 item"),
        (
            "  fill_pct: {from: d, scale: ten}\n",
            "fields.fill_pct.scale",
            "Input should be a valid number",
        ),
        (
            "  level_m: {from: level}\n",
            "fields.level_m",
            "not a field of bin_fill; fields are battery_pct, distance_mm, fill_pct, fire, "
            "temperature_c, tilt",
        ),
        ("  battery_pct: {from: b, unit: kg}\n", "fields.battery_pct", "cannot convert 'kg'"),
        (
            "  fill_pct: {from: d, unit: kg, transform: fill_from_distance}\n",
            "fields.fill_pct",
            "cannot convert 'kg' to 'millimeter'",
        ),
        (
            "  tilt: {from: t, unit: mm}\n",
            "fields.tilt",
            "has no unit, so unit 'mm' cannot apply",
        ),
        (
            "  temperature_c: {from: t, unit: wibble}\n",
            "fields.temperature_c",
            "unknown unit 'wibble'",
        ),
        # A unit pint would evaluate for ever, and ones its parser chokes on: problems, not hangs
        # or tracebacks.
        ("  temperature_c: {from: t, unit: '9**9**9'}\n", "fields.temperature_c", "unknown unit"),
        ("  temperature_c: {from: t, unit: '1/0'}\n", "fields.temperature_c", "unknown unit"),
        ("  temperature_c: {from: t, unit: '('}\n", "fields.temperature_c", "unknown unit"),
    ],
)
def test_a_problem_names_file_line_and_field(
    tmp_path: Path, fields: str, field: str, message: str
) -> None:
    path = write(tmp_path, HEAD + "  distance_mm: {from: distance, unit: mm}\n" + fields)
    found = problems(path)
    assert len(found) == 1, found
    p = found[0]
    assert (p.file, p.line, p.field) == (str(path), 6, field)
    assert message in p.message
    assert str(p).startswith(f"{path}:6: {field}: ")


def test_top_level_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "id: Acme Thing\nkind: bins\nname: x\ncolour: red\nfields: {}\n",
    )
    by_field = {p.field: (p.line, p.message) for p in problems(path)}
    assert by_field["id"][0] == 1 and "should match pattern" in by_field["id"][1]
    assert by_field["kind"] == (
        2,
        "Input should be 'bin_fill', 'air_quality', 'flood_level' or 'home_activity' (got 'bins')",
    )
    assert by_field["colour"] == (4, "Extra inputs are not permitted (got 'red')")
    assert by_field["fields"][0] == 5 and "at least 1 item" in by_field["fields"][1]


def test_a_missing_field_is_reported_at_its_parent(tmp_path: Path) -> None:
    path = write(tmp_path, "id: acme/thing\nkind: bin_fill\nfields:\n  fill_pct: {from: d}\n")
    assert problems(path) == [ConfigProblem(str(path), 1, "name", "Field required")]


def test_every_field_problem_in_one_pass(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + "  level_m: {from: level}\n"
        + "  fill_pct: {from: d, unit: mm, transform: fill_from_distance}\n"
        + "  battery_pct: {from: b, unit: V}\n"
        + "  fire: {from: f, unit: Cel}\n",
    )
    assert [(p.line, p.field) for p in problems(path)] == [
        (5, "fields.level_m"),
        (7, "fields.battery_pct"),
        (8, "fields.fire"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("id: acme/thing\nkind: bin_fill\n  name: x\n", 3, "not valid YAML"),
        ("fields: [\n", 2, "not valid YAML"),
        ("", None, "file is empty"),
    ],
)
def test_files_that_are_not_models(
    tmp_path: Path, text: str, line: int | None, message: str
) -> None:
    path = write(tmp_path, text)
    [p] = problems(path)
    assert p.line == line and message in p.message


def test_a_missing_file(tmp_path: Path) -> None:
    [p] = problems(tmp_path / "nope.yaml")
    assert p.file == str(tmp_path / "nope.yaml") and "No such file" in p.message


def test_a_good_file_with_every_option(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
# Comments are fine.
id: acme/gauge-2
kind: flood_level
name: Acme pressure gauge
match:
  ttn: {brand_id: acme, model_id: gauge-2}
  chirpstack: {device_profile: Acme Gauge}
  tag: acme-gauge
defaults: {sensor_datum_m: 1.5}
fields:
  level_m: {from: [pressure, p], unit: bar, as: mH2O, add_setting: sensor_datum_m}
  battery_pct: {from: bat.percent, unit: "%", scale: 1}
notes: vented cable
""",
    )
    m = load_model_file(path)
    assert isinstance(m, DeviceModel)
    assert m.fields["level_m"].sources == ["pressure", "p"]
    assert m.fields["level_m"].convert_to == "mH2O"
    r = to_reading(m.kind, m, {"p": 0.1, "bat": {"percent": 80}}, T, {})
    assert r.model_dump(exclude={"time"}) == {
        "level_m": pytest.approx(1.5 + 10_000 / 9_806.65),
        "battery_pct": 80.0,
    }


# --- the catalog ------------------------------------------------------------------------------


def test_catalog_matches_network_server_hints() -> None:
    c = ModelCatalog.of(builtin_models())
    assert c.match(ModelHints(ttn_brand="milesight-iot", ttn_model="em310-udl")) is c.get(
        "milesight-iot/em310-udl"
    )
    assert c.match(ModelHints(chirpstack_profile="Decentlab DL-PM")) is c.get("decentlab/dl-pm")
    assert c.match(ModelHints(tags={"model": "elsys/ers"})) is c.get("elsys/ers")
    # A model tag wins over the other hints.
    assert c.match(
        ModelHints(ttn_brand="elsys", ttn_model="ers", tags={"model": "decentlab/dl-pm"})
    ) is c.get("decentlab/dl-pm")


@pytest.mark.parametrize(
    "hints",
    [
        ModelHints(),
        ModelHints(ttn_brand="milesight-iot"),  # the brand alone is not a model
        ModelHints(ttn_brand="milesight-iot", ttn_model="em300-th"),
        ModelHints(ttn_brand="em310-udl", ttn_model="milesight-iot"),
        ModelHints(chirpstack_profile="milesight em310-udl"),  # profile names match exactly
        ModelHints(tags={"model": "acme/unknown"}),
        ModelHints(tags={"brand": "elsys"}),
    ],
)
def test_catalog_finds_nothing_for_other_hints(hints: ModelHints) -> None:
    assert ModelCatalog.of(builtin_models()).match(hints) is None


def test_catalog_match_by_a_models_own_tag() -> None:
    m = MODEL_ADAPTER.validate_python(
        {
            "id": "acme/door",
            "kind": "home_activity",
            "name": "door",
            "match": {"tag": "acme-door"},
            "fields": {"sensor": {"value": "door"}, "door_open": {"from": "open"}},
        }
    )
    c = ModelCatalog.of(builtin_models(), [m])
    assert c.match(ModelHints(tags={"model": "acme-door"})) is m
    assert c.match(ModelHints(tags={"model": "acme/door"})) is m
    assert c.source == {**{i: "built-in" for i in BUILTIN}, "acme/door": "database"}


def test_a_model_tag_wins_over_the_device_profile() -> None:
    # A ChirpStack device whose profile names one model and whose "model" tag names another:
    # the tag is the device's own, more specific word, by model id or by the model's tag.
    m = MODEL_ADAPTER.validate_python(
        {
            "id": "acme/bin",
            "kind": "bin_fill",
            "name": "bin",
            "match": {"tag": "acme-bin"},
            "fields": {"fill_pct": {"from": "f"}},
        }
    )
    c = ModelCatalog.of(builtin_models(), [m])
    for tag in ("acme-bin", "acme/bin"):
        hints = ModelHints(chirpstack_profile="Milesight EM310-UDL", tags={"model": tag})
        assert c.match(hints) is m, tag
    # Without the tag, the profile.
    assert c.match(ModelHints(chirpstack_profile="Milesight EM310-UDL")) is c.get(
        "milesight-iot/em310-udl"
    )


def test_stored_models_override_built_in_ones_and_bad_rows_are_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = spec_json(BUILTIN["milesight-iot/em310-udl"])
    spec["defaults"] = {"blind_zone_mm": 300}
    with caplog.at_level(logging.ERROR, logger="devices.models"):
        c = catalog_of(
            [
                ("milesight-iot/em310-udl", spec),
                ("acme/broken", {"id": "acme/broken", "kind": "bin_fill"}),
            ],
            builtin_models(),
        )
    m = c.get("milesight-iot/em310-udl")
    assert m is not None and m.defaults == {"blind_zone_mm": 300}
    assert c.source["milesight-iot/em310-udl"] == "database"
    assert c.get("acme/broken") is None and len(c.models) == 4
    assert "acme/broken" in caplog.text


@pytest.mark.parametrize(
    ("text", "line", "field", "messages"),
    [
        (
            "defaults: {depth_mm: [1100]}\nfields:\n  fill_pct: {from: d}\n",
            4,
            "defaults.depth_mm",
            ["a number, text or true/false is expected"],
        ),
        (
            "fields:\n  fill_pct: {value: {x: 1}}\n",
            5,
            "fields.fill_pct.value",
            ["a number, text or true/false is expected"],
        ),
        (
            "fields:\n  tilt: {from: t, map: {tilt: [1]}}\n",
            5,
            "fields.tilt.map.tilt",
            ["a number, text or true/false is expected"],
        ),
        (
            "fields:\n  fill_pct: {from: 5}\n",
            5,
            "fields.fill_pct.from",
            ["Input should be a valid string (got 5)", "Input should be a valid list (got 5)"],
        ),
    ],
)
def test_a_wrong_value_is_one_problem_at_its_own_field(
    tmp_path: Path, text: str, line: int, field: str, messages: list[str]
) -> None:
    # Not one problem per member of the value's type union, each at a made-up field such as
    # "defaults.depth_mm.float".
    path = write(tmp_path, "id: acme/thing\nkind: bin_fill\nname: Acme thing\n" + text)
    assert problems(path) == [ConfigProblem(str(path), line, field, m) for m in messages]


# --- `placewatch models check FILE --payload SAMPLE` (no database) -------------------------------

EM310_FILE = "devices/models/milesight-em310-udl.yaml"


def check(capsys: pytest.CaptureFixture[str], sample: Path, *settings: str) -> tuple[int, str]:
    args = argparse.Namespace(
        models_command="check",
        file=Path(__file__).parents[2] / EM310_FILE,
        payload=sample,
        setting=list(settings),
    )
    code = run_models_command(args, Settings())
    return code, capsys.readouterr().out


def test_models_check_maps_a_sample_and_a_whole_uplink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "decoded.json"
    sample.write_text('{"battery": 92, "distance": "2116 mm", "tilt": "tilt"}')
    code, out = check(capsys, sample, "depth_mm=2500")
    assert code == 0 and "model milesight-iot/em310-udl (bin_fill) is valid: 4 fields" in out
    assert '"distance_mm": 2116.0' in out and '"tilt": true' in out
    _, payload = ttn_uplink("a@ttn", "bin-1", "24e124136b316582", T, {"distance": 250})
    sample.write_bytes(payload)
    code, out = check(capsys, sample, "depth_mm=2500")
    assert code == 0 and '"fill_pct": 100.0' in out and '"time": "2025-04-16T12:00:00Z"' in out
    code, out = check(capsys, sample)  # no depth: the reason, and a failing exit code
    assert code == 1 and "rejected (missing_setting)" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"distance": ', "cannot read the sample: Expecting value"),
        (b"\xff\xfe\x00", "cannot read the sample"),
        (b'"2116 mm"', "a sample is a JSON object of decoded fields, or a whole uplink"),
        (b"42", "a sample is a JSON object of decoded fields, or a whole uplink"),
        (b"[1, 2]", "not_an_object: [0]: a SenML record must be an object"),
        (b'{"uplink_message": {}}', "missing_field: uplink_message: field required"),
    ],
)
def test_models_check_explains_a_bad_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    sample = tmp_path / "sample.json"
    sample.write_bytes(content)
    with pytest.raises(SystemExit) as info:
        check(capsys, sample, "depth_mm=2500")
    assert str(info.value).startswith(f"{sample}: ") and message in str(info.value)


def test_models_check_a_missing_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        check(capsys, tmp_path / "nope.json")
    assert "No such file" in str(info.value)
