"""Rule files: YAML with a top-level ``rules:`` list, validated at load. Any error names the
file, the line and the field, so a bad deployment file is fixed without guessing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from placewatch.yamlconfig import ConfigLoadError, ConfigProblem, load_yaml
from rules.kinds.bins import BinTimeToFullRule
from rules.kinds.care import (
    ActivityDeclineRule,
    InactivityRule,
    LongOccupancyRule,
    NotUpRule,
)
from rules.kinds.daqi import DaqiRule
from rules.kinds.objectives import AqsObjectiveRule
from rules.kinds.rate import RateOfChangeRule
from rules.kinds.silence import SilenceRule
from rules.kinds.threshold import LowBatteryRule, ThresholdRule

AnyRule = Annotated[
    ThresholdRule
    | LowBatteryRule
    | RateOfChangeRule
    | SilenceRule
    | BinTimeToFullRule
    | DaqiRule
    | AqsObjectiveRule
    | InactivityRule
    | NotUpRule
    | LongOccupancyRule
    | ActivityDeclineRule,
    Field(discriminator="kind"),
]
RULE_KINDS = (
    "threshold",
    "low_battery",
    "rate_of_change",
    "silence",
    "bin_time_to_full",
    "daqi",
    "aqs_objective",
    "inactivity",
    "not_up",
    "long_occupancy",
    "activity_decline",
)


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[AnyRule] = Field(default_factory=list)


_FILE = TypeAdapter(_RuleFile)


# Rule files report problems the way every placewatch YAML file does.
RuleProblem = ConfigProblem
RuleLoadError = ConfigLoadError


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[AnyRule, ...]
    sources: tuple[str, ...]

    def by_id(self, rule_id: str) -> AnyRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    @property
    def stream(self) -> tuple[AnyRule, ...]:
        return tuple(r for r in self.rules if r.stream and r.enabled)


def default_rules_dir() -> Path:
    return Path(str(resources.files("rules") / "defaults"))


def rule_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
        elif p.exists():
            files.append(p)
        else:
            raise RuleLoadError([RuleProblem(str(p), None, "", "no such file or directory")])
    return files


def load_rules(paths: Iterable[Path]) -> RuleSet:
    """Load and validate every rule file; all problems of all files are reported at once."""
    problems: list[RuleProblem] = []
    rules: list[AnyRule] = []
    seen: dict[str, str] = {}
    files = rule_files(paths)
    for path in files:
        loaded = _load_file(path, problems)
        for rule, line in loaded:
            if rule.id in seen:
                problems.append(
                    RuleProblem(
                        str(path),
                        line,
                        "id",
                        f"rule id {rule.id!r} is already defined in {seen[rule.id]}",
                    )
                )
                continue
            seen[rule.id] = f"{path}:{line}"
            rules.append(rule)
    if problems:
        raise RuleLoadError(problems)
    return RuleSet(tuple(rules), tuple(map(str, files)))


def _load_file(path: Path, problems: list[RuleProblem]) -> list[tuple[AnyRule, int | None]]:
    loaded = load_yaml(
        path,
        _FILE,
        problems,
        synthetic={*RULE_KINDS, "float", "PropertyRef"},
        hints={
            "float": "expected a number or {property: <device setting>}",
            "PropertyRef": "expected a number or {property: <device setting>}",
        },
    )
    if loaded.value is None:
        return []
    return [(rule, loaded.line_of(("rules", i))) for i, rule in enumerate(loaded.value.rules)]
