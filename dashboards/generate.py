"""Render the dashboards to the JSON files Grafana provisions (``dashboards/json/<Folder>/``)
and check that the committed files are current."""

from __future__ import annotations

import json
from pathlib import Path

from dashboards.boards import FOLDERS

ROOT = Path(__file__).parent
JSON_DIR = ROOT / "json"


def render() -> dict[Path, str]:
    """Relative path -> file text, for every dashboard."""
    files: dict[Path, str] = {}
    for folder, boards in FOLDERS.items():
        for board in boards:
            dashboard = board()
            name = dashboard["uid"].removeprefix("placewatch-")
            files[Path(folder) / f"{name}.json"] = json.dumps(dashboard, indent=2) + "\n"
    return files


def stale(json_dir: Path = JSON_DIR) -> list[str]:
    """What differs between the rendered dashboards and the files: changed, missing or extra."""
    wanted = render()
    present = {p.relative_to(json_dir) for p in json_dir.rglob("*.json")}
    problems = [
        f"{path}: {'differs' if path in present else 'missing'}"
        for path, text in sorted(wanted.items())
        if path not in present or (json_dir / path).read_text(encoding="utf-8") != text
    ]
    problems += [f"{path}: not generated (remove it)" for path in sorted(present - set(wanted))]
    return problems


def write(json_dir: Path = JSON_DIR) -> list[Path]:
    """Write every dashboard and remove files no board makes; returns the files written."""
    wanted = render()
    for path in json_dir.rglob("*.json"):
        if path.relative_to(json_dir) not in wanted:
            path.unlink()
    for path, text in wanted.items():
        (json_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (json_dir / path).write_text(text, encoding="utf-8")
    return sorted(json_dir / p for p in wanted)
