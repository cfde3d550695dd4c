"""Loaders that turn public smart-home data sets into ``HomeEvent`` streams for evaluation.

Each format module reads one data set's files and nothing else; ``load_home`` picks one by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from care.formats import kasteren, nears, ordonez
from care.formats._log import HomeLog

__all__ = ["FORMATS", "HomeLog", "load_home"]

FORMATS: dict[str, Callable[[Path], HomeLog]] = {
    "nears": nears.load,
    "ordonez": ordonez.load,
    "kasteren": kasteren.load,
}


def load_home(fmt: str, path: str | Path) -> HomeLog:
    """Load ``path`` as data set format ``fmt`` (a key of ``FORMATS``)."""
    loader = FORMATS.get(fmt)
    if loader is None:
        raise ValueError(f"unknown home data format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    return loader(Path(path))
