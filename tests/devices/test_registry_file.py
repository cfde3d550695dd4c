"""The devices file: a council's devices and network server applications, with every problem
named by file, line and field before anything is registered."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.models import ModelCatalog, builtin_models
from devices.registry_file import load_devices_file
from placewatch.kinds import Kind
from placewatch.yamlconfig import ConfigLoadError, ConfigProblem
from storage.registry import DeviceSpec, NetworkApplication

CATALOG = ModelCatalog.of(builtin_models())

GOOD = """\
council: sutton
name: London Borough of Sutton
applications:
  - {network: ttn, application: sutton-bins@ttn, auto_register: true}
  - {network: chirpstack, application: 17c82e96-be03-4f38-aef3-f83d48582d97}
devices:
  - id: bin-0001
    model: milesight-iot/em310-udl      # the kind follows from the model
    dev_eui: 24E124136B316582
    site: high-street
    ward: central
    location: [51.3618, -0.1945]
    expected_interval: 30m
    tags: [lid-sensor]
    settings: {depth_mm: 1100}
  - id: r-0007-hall
    kind: home_activity                  # no model: the device sends native fields
    resident: r-0007
    settings: {sensor: motion}
  - id: gauge-wandle
    kind: flood_level
    model: milesight-iot/em500-swl
    expected_interval: 1h30m
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devices.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigLoadError) as info:
        load_devices_file(path, CATALOG)
    return info.value.problems


def test_a_good_file(tmp_path: Path) -> None:
    spec, devices, applications = load_devices_file(write(tmp_path, GOOD), CATALOG)
    assert (spec.council, spec.name) == ("sutton", "London Borough of Sutton")
    assert applications == [
        NetworkApplication("ttn", "sutton-bins@ttn", True),
        NetworkApplication("chirpstack", "17c82e96-be03-4f38-aef3-f83d48582d97", False),
    ]
    assert devices == [
        DeviceSpec(
            council_id="sutton",
            device_id="bin-0001",
            kind=Kind.BIN_FILL,
            model="milesight-iot/em310-udl",
            site="high-street",
            ward="central",
            latitude=51.3618,
            longitude=-0.1945,
            expected_interval_s=1800,
            properties={"depth_mm": 1100},
            tags=("lid-sensor",),
            dev_eui="24e124136b316582",  # lower case, as uplinks are looked up
        ),
        DeviceSpec(
            council_id="sutton",
            device_id="r-0007-hall",
            kind=Kind.HOME_ACTIVITY,
            resident_id="r-0007",
            properties={"sensor": "motion"},
        ),
        DeviceSpec(
            council_id="sutton",
            device_id="gauge-wandle",
            kind=Kind.FLOOD_LEVEL,
            model="milesight-iot/em500-swl",
            expected_interval_s=5400,
        ),
    ]


def test_json_is_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, '{"council": "merton", "devices": [{"id": "a", "kind": "bin_fill"}]}')
    spec, devices, applications = load_devices_file(path, CATALOG)
    assert spec.name is None and applications == []
    assert [(d.device_id, d.kind) for d in devices] == [("a", Kind.BIN_FILL)]


def test_a_model_from_the_database_is_known(tmp_path: Path) -> None:
    from devices.models import MODEL_ADAPTER

    door = MODEL_ADAPTER.validate_python(
        {
            "id": "dragino/lds02",
            "kind": "home_activity",
            "name": "door",
            "fields": {"sensor": {"value": "door"}, "door_open": {"from": "open"}},
        }
    )
    path = write(tmp_path, "council: sutton\ndevices:\n  - {id: door-1, model: dragino/lds02}\n")
    with pytest.raises(ConfigLoadError):
        load_devices_file(path, CATALOG)
    _, devices, _ = load_devices_file(path, ModelCatalog.of(builtin_models(), [door]))
    assert devices[0].kind is Kind.HOME_ACTIVITY


DEVICES = "council: sutton\ndevices:\n  - id: ok-1\n    kind: bin_fill\n"


@pytest.mark.parametrize(
    ("entry", "line", "field", "message"),
    [
        (
            "  - id: bin-2\n    model: milesight-iot/em999\n",
            6,
            "devices[1].model",
            "unknown model 'milesight-iot/em999'; see `placewatch models list`",
        ),
        (
            "  - id: bin-2\n    site: x\n",
            5,
            "devices[1].kind",
            "give the device's kind, or a model (which implies it)",
        ),
        (
            "  - id: bin-2\n    kind: flood_level\n    model: milesight-iot/em310-udl\n",
            6,
            "devices[1].kind",
            "model milesight-iot/em310-udl makes bin_fill readings, not flood_level",
        ),
        ("  - id: ok-1\n    kind: bin_fill\n", 5, "devices[1].id", "device 'ok-1' is listed twice"),
        (
            "  - id: bin-2\n    kind: bin_fill\n    dev_eui: 24E124136B31658\n",
            7,
            "devices[1].dev_eui",
            "String should match pattern",
        ),
        (
            "  - id: bin 2\n    kind: bin_fill\n",
            5,
            "devices[1].id",
            "String should match pattern",
        ),
        (
            "  - id: bin-2\n    kind: bins\n",
            6,
            "devices[1].kind",
            "Input should be 'bin_fill'",
        ),
        (
            "  - id: bin-2\n    kind: bin_fill\n    location: [91, 0]\n",
            7,
            "devices[1].location[0]",
            "Input should be less than or equal to 90",
        ),
        (
            "  - id: bin-2\n    kind: bin_fill\n    expected_interval: 30\n",
            7,
            "devices[1].expected_interval",
            "give a unit",
        ),
        (
            "  - id: bin-2\n    kind: bin_fill\n    settings: {depth_mm: [1]}\n",
            7,
            "devices[1].settings.depth_mm",
            "a number, text or true/false is expected",
        ),
        (
            "  - id: bin-2\n    kind: bin_fill\n    colour: red\n",
            7,
            "devices[1].colour",
            "Extra inputs are not permitted",
        ),
    ],
)
def test_device_problems_name_file_line_and_field(
    tmp_path: Path, entry: str, line: int, field: str, message: str
) -> None:
    path = write(tmp_path, DEVICES + entry)
    found = problems(path)
    assert [(p.file, p.line, p.field) for p in found][:1] == [(str(path), line, field)], found
    assert message in found[0].message


def test_a_dev_eui_listed_twice_is_a_problem_before_the_database_sees_it(tmp_path: Path) -> None:
    # The registry holds one device per DevEUI (a unique index): the file must say so, with
    # the line, rather than fail inside the import's transaction.
    path = write(
        tmp_path,
        "council: sutton\ndevices:\n"
        "  - {id: bin-1, kind: bin_fill, dev_eui: 24E124136B316582}\n"
        "  - {id: bin-2, kind: bin_fill, dev_eui: 24e124136b316582}\n",
    )
    assert problems(path) == [
        ConfigProblem(
            str(path),
            4,
            "devices[1].dev_eui",
            "DevEUI 24e124136b316582 is listed twice (device 'bin-1')",
        )
    ]


def test_every_device_problem_in_one_pass(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "council: sutton\ndevices:\n"
        "  - {id: a, model: acme/x}\n"
        "  - {id: b}\n"
        "  - {id: c, kind: bin_fill}\n"
        "  - {id: c, kind: bin_fill}\n",
    )
    assert [(p.line, p.field) for p in problems(path)] == [
        (3, "devices[0].model"),
        (4, "devices[1].kind"),
        (6, "devices[3].id"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            "council: sutton\napplications:\n  - {network: ttn, application: bins}\n",
            3,
            "applications[0]",
            "a TTN application is '<application id>@<tenant id>'",
        ),
        (
            "council: sutton\napplications:\n  - {network: loriot, application: x}\n",
            3,
            "applications[0].network",
            "Input should be 'ttn' or 'chirpstack'",
        ),
        (
            "council: sutton\napplications:\n  - {network: chirpstack, application: ''}\n",
            3,
            "applications[0].application",
            "at least 1 character",
        ),
        ("council: Sutton Council\n", 1, "council", "String should match pattern"),
        ("name: Sutton\n", 1, "council", "Field required"),
        ("council: sutton\ndevices: {id: a}\n", 2, "devices", "Input should be a valid list"),
    ],
)
def test_file_problems(tmp_path: Path, text: str, line: int, field: str, message: str) -> None:
    path = write(tmp_path, text)
    [p] = problems(path)
    assert (p.file, p.line, p.field) == (str(path), line, field)
    assert message in p.message


def test_not_a_devices_file(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "")) == [
        ConfigProblem(str(tmp_path / "devices.yaml"), None, "", "file is empty")
    ]
    [p] = problems(write(tmp_path, "council: [\n"))
    assert p.line == 2 and "not valid YAML" in p.message
