"""The committed dashboards: current with their code, well formed, and wired to the data
sources provisioning creates."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from dashboards.generate import JSON_DIR, render, stale, write
from dashboards.run import dashboard_files, datasource_uid, load, panels, targets

PROVISIONING = JSON_DIR.parent / "provisioning"


def _provisioned_datasources() -> set[str]:
    doc = YAML(typ="safe").load(PROVISIONING / "datasources" / "placewatch.yaml")
    return {d["uid"] for d in doc["datasources"]}


def test_committed_json_is_what_the_code_generates() -> None:
    assert stale() == [], "run: placewatch dashboards generate"


def test_stale_names_a_changed_a_missing_and_an_extra_file(tmp_path: Path) -> None:
    write(tmp_path)
    assert stale(tmp_path) == []
    first, second = sorted(render())[:2]
    (tmp_path / first).write_text("{}")
    (tmp_path / second).unlink()
    (tmp_path / "Care" / "old.json").write_text("{}")
    assert stale(tmp_path) == [
        f"{first}: differs",
        f"{second}: missing",
        "Care/old.json: not generated (remove it)",
    ]
    write(tmp_path)
    assert stale(tmp_path) == []


def test_every_dashboard_parses_with_unique_uids_and_panel_ids() -> None:
    boards = [load(p) for p in dashboard_files()]
    assert len(boards) == 7
    uids = [b["uid"] for b in boards]
    assert len(set(uids)) == len(uids)
    titles = {b["title"] for b in boards}
    assert titles == {
        "Operations overview",
        "Bins",
        "Air quality",
        "Flood",
        "Home activity",
        "Alerts and deliveries",
        "Pipeline health",
    }
    for b in boards:
        ids = [p["id"] for p in panels(b)]
        assert len(set(ids)) == len(ids), b["uid"]


def test_every_panel_is_on_the_grid_and_explained() -> None:
    for path in dashboard_files():
        board = load(path)
        for panel in panels(board):
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, (path.name, panel["title"])
            if panel["type"] != "row":
                assert panel["description"], (path.name, panel["title"])
                assert panel["targets"], (path.name, panel["title"])


def test_no_panel_sql_holds_a_comment() -> None:
    """Grafana releases differ in whether they strip SQL comments before expanding macros (12.x
    patch releases do, 11.x does not): with none, every release sends the same statement."""
    for path in dashboard_files():
        for panel, target in targets(load(path)):
            assert "--" not in target.get("rawSql", ""), (path.name, panel["title"])


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_every_data_source_uid_is_provisioned(path: Path) -> None:
    provisioned = _provisioned_datasources()
    board = load(path)
    used = {datasource_uid(t, p) for p, t in targets(board)}
    used |= {datasource_uid(v) for v in board["templating"]["list"]}
    used |= {datasource_uid(p) for p in panels(board) if p["type"] != "row"}
    assert used <= provisioned, used - provisioned


def test_dashboards_are_in_the_folders_the_provider_makes() -> None:
    provider = YAML(typ="safe").load(PROVISIONING / "dashboards" / "placewatch.yaml")
    options = provider["providers"][0]["options"]
    assert options["foldersFromFilesStructure"] is True
    folders = {p.parent.name for p in dashboard_files()}
    assert folders == {"Operations", "Care", "Platform"}
    assert {p.stem for p in (JSON_DIR / "Care").glob("*.json")} == {"home"}
