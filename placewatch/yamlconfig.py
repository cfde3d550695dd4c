"""YAML configuration files validated by pydantic, with errors that name file, line and field.

Used by the rule files and the teams file: ruamel.yaml keeps each node's line, pydantic's error
locations are walked down the document to find it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.reader import ReaderError

T = TypeVar("T")


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigLoadError(Exception):
    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


@dataclass(frozen=True)
class LoadedYaml(Generic[T]):
    value: T | None
    doc: Any  # the round-trip document, for line look-ups (None if empty or unreadable)

    def line_of(self, path: tuple[Any, ...]) -> int | None:
        return locate(self.doc, path, ())[1]


def load_yaml(
    path: Path,
    adapter: TypeAdapter[T],
    problems: list[ConfigProblem],
    *,
    synthetic: Collection[str] = (),
    hints: dict[str, str] | None = None,
) -> LoadedYaml[T]:
    """Parse and validate one file, appending every problem to ``problems``.

    ``synthetic``: location parts pydantic adds that are not in the document (a union's tag);
    ``hints``: a clearer message when the location contains the key.
    """
    yaml = YAML(typ="rt")
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        problems.append(ConfigProblem(str(path), line, "", f"not valid YAML: {exc.problem}"))
        return LoadedYaml(None, None)
    except ReaderError as exc:  # a control character: not a MarkedYAMLError, but it says where
        problems.append(ConfigProblem(str(path), None, "", f"not valid YAML: {exc}"))
        return LoadedYaml(None, None)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(ConfigProblem(str(path), None, "", str(exc)))
        return LoadedYaml(None, None)
    if doc is None:
        return LoadedYaml(None, None)
    try:
        return LoadedYaml(adapter.validate_python(plain(doc)), doc)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc += ("kind",)
            field, line = locate(doc, loc, synthetic)
            value = f" (got {err['input']!r})" if _is_scalar(err.get("input")) else ""
            message = err["msg"].removeprefix("Value error, ")
            for key, hint in (hints or {}).items():
                if key in loc:
                    message = hint
            problem = ConfigProblem(str(path), line, field, message + value)
            if problem not in problems:
                problems.append(problem)
        return LoadedYaml(None, doc)


def plain(node: Any) -> Any:
    # ruamel's round-trip types subclass dict/list; plain ones keep pydantic's messages simple.
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def locate(
    doc: Any, loc: tuple[int | str, ...], synthetic: Collection[str]
) -> tuple[str, int | None]:
    """Dotted field path and the line of the deepest node of ``loc`` present in the YAML."""
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
        elif isinstance(key, str) and key not in synthetic:
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
