"""Rule files: the shipped defaults load, and every problem of a bad file is reported with its
file, line and field path. Durations as written in rule files."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rules.durations import format_duration, parse_duration
from rules.kinds.threshold import ThresholdRule
from rules.loader import (
    RULE_KINDS,
    RuleLoadError,
    RuleProblem,
    default_rules_dir,
    load_rules,
)
from rules.model import PropertyRef


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_of(paths: list[Path]) -> list[RuleProblem]:
    with pytest.raises(RuleLoadError) as caught:
        load_rules(paths)
    return caught.value.problems


# --------------------------------------------------------------------------------------------
# The shipped defaults


def test_shipped_defaults_load() -> None:
    ruleset = load_rules([default_rules_dir()])
    ids = [r.id for r in ruleset.rules]
    assert ids == [
        "bin-needs-collection",
        "bin-fire",
        "river-above-alert-level",
        "river-rising-fast",
        "air-quality-daqi-high",
        "no2-hourly-objective",
        "pm10-daily-objective",
        "battery-low",
        "device-silent",
        "home-hub-offline",
        "home-sensor-silent",
        "care-inactivity",
        "care-not-up",
        "care-long-occupancy",
        "care-activity-decline",
    ]
    assert {r.kind for r in ruleset.rules} == set(RULE_KINDS)
    assert len(ruleset.sources) == 1 and ruleset.sources[0].endswith("placewatch.yaml")
    # Stream rules are evaluated per reading; silence and objectives run on a timer.
    assert {r.id for r in ruleset.stream} == {
        "bin-needs-collection",
        "bin-fire",
        "river-above-alert-level",
        "river-rising-fast",
        "air-quality-daqi-high",
        "battery-low",
    }

    river = ruleset.by_id("river-above-alert-level")
    assert isinstance(river, ThresholdRule)
    assert river.above == PropertyRef(property="alert_level_m")
    assert river.clear == PropertyRef(property="typical_high_m")
    assert river.for_ == timedelta(minutes=10)
    assert river.clear_for == timedelta(minutes=30)
    assert river.escalation is not None
    assert river.escalation.after == timedelta(minutes=30)
    assert river.escalation.repeat == timedelta(hours=1)
    fire = ruleset.by_id("bin-fire")
    assert isinstance(fire, ThresholdRule)
    assert fire.above == 60 and fire.clear == 40 and fire.severity == "critical"
    assert ruleset.by_id("no-such-rule") is None


# --------------------------------------------------------------------------------------------
# Problems: file, line and field


BAD = """
rules:
  - id: ok-rule
    kind: threshold
    field: level_m
    above: 1.0

  - id: wrong-field
    kind: threshold
    select: {kind: flood_level}
    above: 2
    field: fill_pct
    for: 10 minutes

  - id: unknown-kind
    kind: thresold
    field: level_m

  - id: missing-field
    kind: rate_of_change
    rise_per_hour: 0.3

  - id: typo
    kind: low_battery
    belwo: 10
  - id: both-directions
    kind: threshold
    field: level_m
    above: 1
    below: 2
  - id: nested
    kind: threshold
    field: level_m
    above: 1
    select: {kind: flood, ward: [w1]}
    escalation:
      after: soon
      max_renotify: -1
  - id: Not_An_Id
    kind: silence
    for: 10
"""


def test_each_problem_has_its_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path / "council.yaml", BAD)
    problems = problems_of([path])
    assert all(p.file == str(path) for p in problems)
    found = [(p.line, p.field) for p in problems]
    assert found == [
        (11, "rules[1].field"),  # not a measurement of the selected kind
        (12, "rules[1].for"),  # "10 minutes"
        (15, "rules[2].kind"),  # no such kind
        (18, "rules[3].field"),  # missing: on the rule's line
        (24, "rules[4].belwo"),  # not a field
        (25, "rules[5]"),  # above and below: the rule as a whole
        (34, "rules[6].select.kind"),
        (36, "rules[6].escalation.after"),
        (37, "rules[6].escalation.max_renotify"),
        (38, "rules[7].id"),
        (40, "rules[7].for"),  # silence has no "for"
    ]
    by_field = {p.field: p for p in problems}
    assert (
        "'fill_pct' is not a numeric measurement of flood_level"
        in by_field["rules[1].field"].message
    )
    assert "level_m" in by_field["rules[1].field"].message  # says what would do
    assert "'10 minutes' is not a duration" in by_field["rules[1].for"].message
    assert "'thresold'" in by_field["rules[2].kind"].message
    assert "Field required" in by_field["rules[3].field"].message
    assert "give exactly one of above or below" in by_field["rules[5]"].message
    assert "'soon' is not a duration" in by_field["rules[6].escalation.after"].message
    assert str(by_field["rules[1].field"]).startswith(f"{path}:11: rules[1].field: ")


def test_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    syntax = write(
        tmp_path / "a.yaml",
        """
        rules:
          - id: a
            kind: threshold
            field: level_m: x
            above: 1
        """,
    )
    invalid = write(
        tmp_path / "b.yaml",
        """
        rules:
          - id: b
            kind: low_battery
            below: 200
        """,
    )
    ignored = write(tmp_path / "notes.txt", "not: [a rule file")
    problems = problems_of([tmp_path])
    assert [(p.file, p.line, p.field) for p in problems] == [
        (str(syntax), 4, ""),
        (str(invalid), 4, "rules[0].below"),
    ]
    assert problems[0].message.startswith("not valid YAML: mapping values are not allowed")
    assert str(problems[0]) == f"{syntax}:4: {problems[0].message}"
    assert ignored.exists()


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tabs.yaml"
    path.write_text("rules:\n  - id: a\n\tkind: threshold\n", encoding="utf-8")
    (problem,) = problems_of([path])
    assert problem.line == 3
    assert problem.message.startswith("not valid YAML")

    dup = write(
        tmp_path / "dupkey.yaml",
        """
        rules:
          - id: a
            kind: low_battery
            below: 10
            below: 12
        """,
    )
    (problem,) = problems_of([dup])
    assert problem.line == 5
    assert "duplicate key" in problem.message


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    first = write(
        tmp_path / "10-council.yaml",
        """
        rules:
          - id: shared
            kind: low_battery
        """,
    )
    second = write(
        tmp_path / "20-site.yaml",
        """
        # a site's own rules
        rules:
          - id: other
            kind: low_battery

          - id: shared
            kind: low_battery
            below: 15
          - id: other
            kind: low_battery
        """,
    )
    problems = problems_of([tmp_path])
    assert [(p.file, p.line, p.field) for p in problems] == [
        (str(second), 6, "id"),
        (str(second), 9, "id"),
    ]
    assert f"'shared' is already defined in {first}:2" in problems[0].message
    assert f"'other' is already defined in {second}:3" in problems[1].message


def test_top_level_problems(tmp_path: Path) -> None:
    typo = write(tmp_path / "typo.yaml", "rule:\n  - id: x\n")
    (problem,) = problems_of([typo])
    assert (problem.line, problem.field) == (1, "rule")

    listed = write(tmp_path / "list.yaml", "- id: x\n  kind: low_battery\n")
    (problem,) = problems_of([listed])
    assert (problem.line, problem.field) == (1, "")

    with pytest.raises(RuleLoadError, match="no such file or directory"):
        load_rules([tmp_path / "missing.yaml"])


def test_empty_and_good_files_load(tmp_path: Path) -> None:
    write(tmp_path / "empty.yaml", "")
    write(
        tmp_path / "rules.yml",
        """
        rules:
          - id: frost
            kind: threshold
            select: {kind: [air_quality], ward: w1}
            field: temperature_c
            below: 0
            for: 1h30m
            clear: 2
        """,
    )
    ruleset = load_rules([tmp_path])
    assert [r.id for r in ruleset.rules] == ["frost"]
    (frost,) = ruleset.rules
    assert isinstance(frost, ThresholdRule)
    assert frost.for_ == timedelta(hours=1, minutes=30)
    assert frost.select.ward == ["w1"]  # a single value is a list of one
    assert len(ruleset.sources) == 2


# --------------------------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("7d", 7 * 86400),
        ("2w", 14 * 86400),
        ("1.5h", 5400),
        ("500ms", 0.5),
        (" 2h ", 7200),
        (0, 0),
    ],
)
def test_durations_parse(text: Any, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text",
    ["10", "30 minutes", "", "1h30", "m", "-5m", "5 mins", "1h30x", 10, 1.5, True, None],
)
def test_durations_reject(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_bare_number_asks_for_a_unit(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.yaml",
        """
        rules:
          - id: r
            kind: threshold
            field: level_m
            above: 1
            for: 10
        """,
    )
    (problem,) = problems_of([path])
    assert (problem.line, problem.field) == (6, "rules[0].for")
    assert "give a unit" in problem.message


def test_format_duration() -> None:
    assert format_duration(timedelta(minutes=15)) == "15 min"
    assert format_duration(timedelta(hours=1, minutes=40)) == "1 h 40 min"
    assert format_duration(timedelta(days=7)) == "7 d"
    assert format_duration(45) == "45 s"
    assert format_duration(0) == "0 s"
