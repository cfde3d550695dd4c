"""Scenario files: the example borough loads with the devices the issue asks for, identities are
stable, and every problem in a file is reported with its file, line and field."""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from placewatch.kinds import Kind
from placewatch.yamlconfig import ConfigLoadError
from simulators.scenario import is_scenario, load_scenario, scenario_path

BOROUGH = Path(__file__).resolve().parents[2] / "simulators" / "scenarios" / "borough.yaml"


def test_example_borough_has_the_fleet_of_the_issue() -> None:
    scenario = load_scenario("borough")
    devices = scenario.devices()
    kinds = Counter(d.kind for d in devices)
    assert kinds[Kind.BIN_FILL] == 300
    assert kinds[Kind.AIR_QUALITY] == 20
    assert kinds[Kind.FLOOD_LEVEL] == 15
    assert len(scenario.residents) == 40
    assert kinds[Kind.HOME_ACTIVITY] == 40 * 5
    assert scenario.council_id == "borough"
    assert scenario.council_name


def test_device_identities_are_readable_stable_and_unique() -> None:
    first, second = load_scenario("borough").devices(), load_scenario(str(BOROUGH)).devices()
    assert first == second  # by name or by path, and every time
    ids = [d.device_id for d in first]
    euis = [d.dev_eui for d in first]
    assert len(set(ids)) == len(ids) and len(set(euis)) == len(euis)
    assert all(eui and re.fullmatch(r"[0-9a-f]{16}", eui) for eui in euis)
    patterns = {
        Kind.BIN_FILL: r"bin-\d{4}",
        Kind.AIR_QUALITY: r"aq-\d{2}",
        Kind.FLOOD_LEVEL: r"gauge-\d{2}",
        Kind.HOME_ACTIVITY: r"home-\d{2}-(motion|door|power|bed|chair)",
    }
    assert all(re.fullmatch(patterns[d.kind], d.device_id) for d in first)


def test_devices_carry_the_settings_rules_and_adapters_need() -> None:
    devices = load_scenario("borough").devices()
    for d in devices:
        assert d.expected_interval_s and d.site and d.ward and d.tags
        assert d.latitude is not None and d.longitude is not None
        if d.kind is Kind.BIN_FILL:
            assert d.properties["depth_mm"] > d.properties["blind_zone_mm"] > 0
        elif d.kind is Kind.FLOOD_LEVEL:
            p = d.properties
            assert p["typical_low_m"] < p["typical_high_m"] < p["alert_level_m"]
            assert d.model == "milesight-iot/em500-swl"
            assert p["sensor_datum_m"] < p["typical_low_m"]
            assert set(d.tags) & {"river", "gully"}
        elif d.kind is Kind.HOME_ACTIVITY:
            assert d.resident_id and re.fullmatch(r"r-\d{4}", d.resident_id)
            assert d.device_id.endswith(d.properties["sensor"])
            assert "care-pilot" in d.tags
    models = Counter(d.model for d in devices)
    assert models["milesight-iot/em310-udl"] == 280
    assert models["decentlab/dl-pm"] == 8
    assert models["elsys/ers"] == 10
    assert models["placewatch-sim"] > 0  # native devices too


def test_network_applications() -> None:
    apps = load_scenario("borough").applications()
    assert {(a.network, a.application) for a in apps} == {
        ("ttn", "borough-streets@borough"),
        ("ttn", "borough-air@borough"),
        ("ttn", "borough-care@borough"),
        ("chirpstack", "6f1d2c3a-4b5e-4f60-8a7b-9c0d1e2f3a4b"),
    }


def test_is_scenario() -> None:
    doc = YAML(typ="safe").load(BOROUGH.read_text())
    assert is_scenario(doc)
    assert not is_scenario({"council": "camden", "devices": []})
    assert not is_scenario({"scenario": "borough"})
    assert not is_scenario({"scenario": {"description": "no name"}})
    assert not is_scenario(["scenario"])


def test_unknown_scenario_names_the_built_in_ones() -> None:
    with pytest.raises(ConfigLoadError, match="borough"):
        scenario_path("atlantis")


_SMALL = """\
scenario:
  name: small
council: {id: small, name: Small}
wards: [{id: w1}]
sites:
  - {id: street, ward: w1, type: high-street, lat: 51.5, lon: -0.1}
bins:
  - group: b
    count: 3
    sites: [street]
    fill_per_day: 0.3
    collection: {start: "06:00"}
homes:
  - group: h
    count: 2
    sites: [street]
events:
  - kind: fall
    resident: r-0001
    at: day 1 10:00
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    with pytest.raises(ConfigLoadError) as caught:
        load_scenario(str(path))
    return [str(p) for p in caught.value.problems]


def _line(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_a_small_scenario_loads(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(_SMALL)
    scenario = load_scenario(str(path))
    assert [d.device_id for d in scenario.devices()][:3] == ["bin-0001", "bin-0002", "bin-0003"]
    assert sorted(scenario.residents) == ["r-0001", "r-0002"]


@pytest.mark.parametrize(
    ("change", "fragment", "field", "message"),
    [
        (("count: 3", "count: -3"), "count: -3", "bins[0].count", "greater than or equal to 1"),
        (("sites: [street]\n    fill", "sites: [street, avenue]\n    fill"), "[street, avenue]",
         "bins[0].sites[1]", "no site 'avenue'"),
        (("resident: r-0001", "resident: r-0099"), "r-0099", "events[0].resident",
         "no resident 'r-0099'"),
        (("at: day 1 10:00", "at: tomorrow"), "tomorrow", "events[0].at", "is not a time"),
        (("kind: fall", "kind: flood"), "kind: flood", "events[0].kind", ""),
        (("ward: w1, type", "ward: w9, type"), "ward: w9", "sites[0].ward", "no ward 'w9'"),
        (("count: 2", "count: 2\n    network: lora"), "network: lora", "homes[0].network",
         "unknown network 'lora'"),
        (("count: 3", "count: 3\n    model: acme/bin"), "model: acme/bin", "bins[0].model",
         "unknown model"),
        (("count: 3", "count: 3\n    model: elsys/ers"), "model: elsys/ers", "bins[0].model",
         "is a home_activity device"),
        (('start: "06:00"', 'start: "6 am"'), "6 am", "bins[0].collection.start",
         "not a time of day"),
    ],
)  # fmt: skip
def test_problems_name_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], fragment: str, field: str, message: str
) -> None:
    text = _SMALL.replace(*change)
    assert text != _SMALL
    problems = _problems(tmp_path, text)
    where = f"{tmp_path / 'scenario.yaml'}:{_line(text, fragment)}: {field}: "
    assert any(p.startswith(where) and message in p for p in problems), problems


def test_missing_required_parts_are_reported(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        scenario: {name: x}
        council: {id: x, name: X}
        """)
    problems = _problems(tmp_path, text)
    assert any(": wards: Field required" in p for p in problems), problems
    assert any(": sites: Field required" in p for p in problems), problems
