"""The installed package is the whole project: ``pip install .`` (the Dockerfile) installs
only the packages listed in pyproject's ``[tool.setuptools] packages``, and one left out
breaks every command that imports it (``placewatch demo`` is imported by the CLI's parser)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    top = {name for name in listed if "." not in name}
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for name in top
        for init in (ROOT / name).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), "packages missing from pyproject's [tool.setuptools]"
    assert listed - found == set(), "listed in pyproject but not a package"
