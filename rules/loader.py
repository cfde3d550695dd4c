"""Rule files: YAML with a top-level ``rules:`` list, validated at load. Any error names the
file, the line and the field, so a bad deployment file is fixed without guessing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from rules.kinds.bins import BinTimeToFullRule
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
    | AqsObjectiveRule,
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
)


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[AnyRule] = Field(default_factory=list)


_FILE = TypeAdapter(_RuleFile)


@dataclass(frozen=True)
class RuleProblem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class RuleLoadError(Exception):
    def __init__(self, problems: Sequence[RuleProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


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
    yaml = YAML(typ="rt")
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        problems.append(RuleProblem(str(path), line, "", f"not valid YAML: {exc.problem}"))
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(RuleProblem(str(path), None, "", str(exc)))
        return []
    if doc is None:
        return []
    try:
        parsed = _FILE.validate_python(_plain(doc))
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc += ("kind",)
            field, line = _locate(doc, loc)
            value = f" (got {err['input']!r})" if _is_scalar(err.get("input")) else ""
            message = err["msg"].removeprefix("Value error, ")
            if "float" in loc or "PropertyRef" in loc:
                message = "expected a number or {property: <device setting>}"
            problem = RuleProblem(str(path), line, field, message + value)
            if problem not in problems:
                problems.append(problem)
        return []
    return [(rule, _line_of(doc, ("rules", i))) for i, rule in enumerate(parsed.rules)]


def _plain(node: Any) -> Any:
    # ruamel's round-trip types subclass dict/list; plain ones keep pydantic's messages simple.
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _locate(doc: Any, loc: tuple[int | str, ...]) -> tuple[str, int | None]:
    """Dotted field path and the line of the deepest node of ``loc`` present in the YAML (a
    discriminated union adds the rule kind to the path, which is not in the document)."""
    parts: list[str] = []
    node = doc
    line: int | None = _line(doc, None)
    for key in loc:
        if isinstance(node, dict) and key in node:
            line = _line(node, key) or line
            parts.append(str(key))
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            line = _line(node, key) or line
            parts.append(f"[{key}]")
            node = node[key]
        elif isinstance(key, str) and key not in {*RULE_KINDS, "float", "PropertyRef"}:
            parts.append(key)  # a missing field: reported on its parent's line
    field = ".".join(parts).replace(".[", "[")
    return field, line


def _line(node: Any, key: Any) -> int | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is None:
            return int(lc.line) + 1
        pos = lc.key(key) if isinstance(node, dict) else lc.item(key)
        return int(pos[0]) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _line_of(doc: Any, path: tuple[Any, ...]) -> int | None:
    return _locate(doc, path)[1]
