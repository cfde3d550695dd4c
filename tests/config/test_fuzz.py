"""Property-based bad input for every YAML file placewatch loads (hypothesis): rule files, the
teams file, the devices file, device model files and simulator scenarios.

Each shipped or documented file is parsed, then mutated the ways hand-edited files go wrong (a
key dropped, renamed or added, a value of another type, a list where a mapping was, text where
a number was) and written back as YAML; arbitrary text goes in too. The loader must either
accept the file or raise ``ConfigLoadError`` whose every problem names the file and says what
is wrong; any other exception is a crash an operator would see as a traceback.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from devices.models import ModelCatalog, builtin_models, load_model_file
from devices.registry_file import load_devices_file
from placewatch.yamlconfig import ConfigLoadError
from rules.loader import default_rules_dir, load_rules
from simulators.scenario import load_scenario
from teams.config import load_teams_file
from tests.devices.test_registry_file import GOOD as DEVICES_FILE

ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CATALOG = ModelCatalog.of(builtin_models())


def _read(text: str) -> Any:
    return YAML(typ="safe").load(text)


def _write(doc: Any) -> str:
    out = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.dump(doc, out)
    return out.getvalue()


SEEDS: dict[str, Any] = {
    "rules": _read((default_rules_dir() / "placewatch.yaml").read_text()),
    "teams": _read((ROOT / "examples" / "teams.yaml").read_text()),
    "devices": _read(DEVICES_FILE),
    "model": _read((ROOT / "devices" / "models" / "milesight-em500-swl.yaml").read_text()),
    "scenario": _read((ROOT / "simulators" / "scenarios" / "care-pilot.yaml").read_text()),
}

LOADERS: dict[str, Callable[[Path], object]] = {
    "rules": lambda p: load_rules([p]),
    "teams": load_teams_file,
    "devices": lambda p: load_devices_file(p, CATALOG),
    "model": load_model_file,
    "scenario": lambda p: load_scenario(str(p)),
}

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "5m", "-1h", "1e999", "NaN", "*", "${HOME}", "x" * 500, "0x10", "{}"]),
    st.text(max_size=20),
)
JUNK = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(doc: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node's path in the document (the root included)."""
    found = [at]
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += _paths(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += _paths(v, (*at, i))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn, seed: Any) -> Any:
    """The seed document with one to four of the edits people make by mistake."""
    doc = _read(_write(seed))  # a deep copy
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            doc = draw(JUNK)
            continue
        parent = _parent(doc, path)
        key = path[-1]
        edit = draw(st.sampled_from(["replace", "drop", "rename", "add", "wrap", "stringify"]))
        if edit == "replace":
            parent[key] = draw(JUNK)
        elif edit == "drop":
            del parent[key]
        elif edit == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = parent.pop(key)
        elif edit == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["id", "extra", "type", "when", "every"]))] = draw(JUNK)
        elif edit == "wrap":
            parent[key] = [parent[key]]
        elif edit == "stringify":
            parent[key] = str(parent[key])
    return doc


def _check(loader: str, text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{loader}.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            LOADERS[loader](path)
        except ConfigLoadError as exc:
            assert exc.problems, text
            for problem in exc.problems:
                assert problem.file == str(path) and problem.message.strip(), (problem, text)


@pytest.mark.parametrize("loader", sorted(SEEDS))
def test_the_seed_files_load(loader: str) -> None:
    """The mutations start from files that load, so each refusal is the mutation's doing."""
    _check(loader, _write(SEEDS[loader]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.yaml"
        path.write_text(_write(SEEDS[loader]), encoding="utf-8")
        LOADERS[loader](path)


@pytest.mark.parametrize("loader", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_mutated_files_load_or_say_what_is_wrong(loader: str, data: st.DataObject) -> None:
    _check(loader, _write(data.draw(mutated(SEEDS[loader]))))


@pytest.mark.parametrize("loader", sorted(SEEDS))
@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    )
)
def test_arbitrary_text_loads_or_says_what_is_wrong(loader: str, text: str) -> None:
    _check(loader, text)
