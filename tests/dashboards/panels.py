"""Walking the committed dashboards: files, panels (rows included), targets, variables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dashboards.generate import JSON_DIR

Json = dict[str, Any]


def dashboard_files() -> list[Path]:
    return sorted(JSON_DIR.rglob("*.json"))


def load(path: Path) -> Json:
    board: Json = json.loads(path.read_text(encoding="utf-8"))
    return board


def panels(board: Json) -> Iterator[Json]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def targets(board: Json) -> Iterator[tuple[Json, Json]]:
    """(panel, target) for every query of every panel."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel, target


def datasource_uid(item: Json, panel: Json | None = None) -> str:
    source = item.get("datasource") or (panel or {}).get("datasource")
    assert isinstance(source, dict), f"no data source on {item}"
    return str(source["uid"])
