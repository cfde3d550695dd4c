"""``placewatch dashboards push`` against the in-process fake of Grafana's HTTP API
(``tests/support/grafana.py``; Grafana itself cannot run here), on small files of its own in the
layout of ``dashboards/``."""

from __future__ import annotations

import argparse
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards.grafana_env import expand_env
from dashboards.push import MESSAGE, PushError, folder_uid, push
from dashboards.push_command import add_push_arguments, run_push
from tests.support.grafana import FakeGrafana

DB_PASSWORD = "s3cr3t-db-pässword"
ADMIN_PASSWORD = "grafana-admin-pw-42"

ENV = {
    "PLACEWATCH_GRAFANA_DB_HOST": "timescaledb:5432",
    "PLACEWATCH_GRAFANA_DB_USER": "grafana_reader",
    "PLACEWATCH_GRAFANA_DB_PASSWORD": DB_PASSWORD,
}

DATASOURCES = """\
apiVersion: 1
datasources:
  - name: placewatch-postgres
    type: grafana-postgresql-datasource
    uid: placewatch-postgres
    access: proxy
    url: ${PLACEWATCH_GRAFANA_DB_HOST}
    user: $PLACEWATCH_GRAFANA_DB_USER
    database: placewatch
    jsonData:
      sslmode: disable
      postgresVersion: 1600
      timescaledb: true
    secureJsonData:
      password: ${PLACEWATCH_GRAFANA_DB_PASSWORD}
    isDefault: true
    editable: false
  - name: placewatch-prometheus
    type: prometheus
    uid: placewatch-prometheus
    access: proxy
    url: http://prometheus:9090
    jsonData:
      timeInterval: 15s
    isDefault: false
    editable: false
"""

PROVIDER = """\
apiVersion: 1
providers:
  - name: placewatch
    type: file
    allowUiUpdates: false
    options:
      path: /var/lib/grafana/dashboards/placewatch
      foldersFromFilesStructure: true
"""


def dashboard(uid: str, title: str, panel: str = "Fill level") -> dict[str, Any]:
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "tags": ["placewatch"],
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-7d", "to": "now"},
        "panels": [
            {
                "id": 1,
                "type": "timeseries",
                "title": panel,
                "datasource": {
                    "type": "grafana-postgresql-datasource",
                    "uid": "placewatch-postgres",
                },
                "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
                "targets": [{"refId": "A", "rawSql": "SELECT 1", "format": "time_series"}],
            }
        ],
    }


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "dashboards"
    (base / "provisioning/datasources").mkdir(parents=True)
    (base / "provisioning/dashboards").mkdir(parents=True)
    (base / "provisioning/datasources/placewatch.yaml").write_text(DATASOURCES, encoding="utf-8")
    (base / "provisioning/dashboards/placewatch.yaml").write_text(PROVIDER, encoding="utf-8")
    write_json(base / "json/Bins/bins.json", dashboard("placewatch-bins", "Bins"))
    write_json(base / "json/Bins/collections.json", dashboard("placewatch-collections", "Runs"))
    write_json(base / "json/Care/care.json", dashboard("placewatch-care", "Care homes"))
    return base


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    with FakeGrafana(user="admin", password=ADMIN_PASSWORD, token="glsa_test_token") as fake:
        yield fake


def do_push(grafana: FakeGrafana, root: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("auth", ("admin", ADMIN_PASSWORD))
    kwargs.setdefault("environ", ENV)
    return push(grafana.url, root=root, **kwargs)


ALL_ITEMS = [
    "datasource placewatch-postgres",
    "datasource placewatch-prometheus",
    "folder placewatch-bins",
    "folder placewatch-care",
    "dashboard placewatch-bins",
    "dashboard placewatch-collections",
    "dashboard placewatch-care",
]


def test_first_push_creates_everything_as_the_files_say(grafana: FakeGrafana, root: Path) -> None:
    report = do_push(grafana, root)

    assert report.created == ALL_ITEMS
    assert report.updated == [] and report.unchanged == [] and report.warnings == []

    postgres = grafana.datasources["placewatch-postgres"]
    assert postgres["name"] == "placewatch-postgres"
    assert postgres["type"] == "grafana-postgresql-datasource"
    assert postgres["url"] == "timescaledb:5432"  # ${VAR} expanded
    assert postgres["user"] == "grafana_reader"  # $VAR expanded
    assert postgres["database"] == "placewatch"
    assert postgres["isDefault"] is True
    assert postgres["jsonData"] == {
        "sslmode": "disable",
        "postgresVersion": 1600,
        "timescaledb": True,
    }
    assert grafana.secrets["placewatch-postgres"] == {"password": DB_PASSWORD}
    prometheus = grafana.datasources["placewatch-prometheus"]
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["isDefault"] is False
    assert grafana.secrets["placewatch-prometheus"] == {}

    assert {uid: f["title"] for uid, f in grafana.folders.items()} == {
        "placewatch-bins": "Bins",
        "placewatch-care": "Care",
    }
    assert grafana.dashboard_folders == {
        "placewatch-bins": "placewatch-bins",
        "placewatch-collections": "placewatch-bins",
        "placewatch-care": "placewatch-care",
    }
    stored = grafana.dashboards["placewatch-bins"]
    expected = dashboard("placewatch-bins", "Bins")
    assert {k: v for k, v in stored.items() if k not in ("id", "version")} == {
        k: v for k, v in expected.items() if k not in ("id", "version")
    }
    assert grafana.dashboard_messages["placewatch-bins"] == [MESSAGE]
    saves = [r.body for r in grafana.requests if r.path == "/api/dashboards/db"]
    assert all(body["overwrite"] is True and body["message"] == MESSAGE for body in saves)
    assert {body["dashboard"]["uid"]: body["folderUid"] for body in saves} == {
        "placewatch-bins": "placewatch-bins",
        "placewatch-collections": "placewatch-bins",
        "placewatch-care": "placewatch-care",
    }


def test_second_push_reports_all_unchanged_and_writes_nothing(
    grafana: FakeGrafana, root: Path
) -> None:
    do_push(grafana, root)
    grafana.forget_requests()

    report = do_push(grafana, root)

    assert report.created == [] and report.updated == []
    assert report.unchanged == ALL_ITEMS
    assert grafana.requests, "the second push reads what Grafana has"
    assert {r.method for r in grafana.requests} == {"GET"}


def test_a_changed_dashboard_file_updates_only_that_dashboard(
    grafana: FakeGrafana, root: Path
) -> None:
    do_push(grafana, root)
    grafana.forget_requests()
    write_json(root / "json/Bins/bins.json", dashboard("placewatch-bins", "Bins", "Fill (%)"))

    report = do_push(grafana, root)

    assert report.updated == ["dashboard placewatch-bins"]
    assert report.created == []
    assert len(report.unchanged) == len(ALL_ITEMS) - 1
    assert [(r.method, r.path) for r in grafana.writes()] == [("POST", "/api/dashboards/db")]
    assert grafana.dashboards["placewatch-bins"]["panels"][0]["title"] == "Fill (%)"
    assert grafana.dashboards["placewatch-bins"]["version"] == 2
    assert grafana.dashboard_messages["placewatch-bins"] == [MESSAGE, MESSAGE]


def test_a_dashboard_moved_to_another_folder_is_updated_and_a_new_folder_created(
    grafana: FakeGrafana, root: Path
) -> None:
    do_push(grafana, root)
    (root / "json/Bins/collections.json").rename(root / "json/Care/collections.json")
    (root / "json/Collection runs").mkdir()
    (root / "json/Care/collections.json").rename(root / "json/Collection runs/collections.json")

    report = do_push(grafana, root)

    assert report.created == ["folder placewatch-collection-runs"]
    assert report.updated == ["dashboard placewatch-collections"]
    assert grafana.folders["placewatch-collection-runs"]["title"] == "Collection runs"
    assert grafana.dashboard_folders["placewatch-collections"] == "placewatch-collection-runs"


def test_a_folder_renamed_in_grafana_gets_its_title_back(grafana: FakeGrafana, root: Path) -> None:
    do_push(grafana, root)
    grafana.folders["placewatch-care"]["title"] = "Renamed by hand"
    grafana.forget_requests()

    report = do_push(grafana, root)

    assert report.updated == ["folder placewatch-care"]
    assert [(r.method, r.path) for r in grafana.writes()] == [
        ("PUT", "/api/folders/placewatch-care")
    ]
    assert grafana.folders["placewatch-care"]["title"] == "Care"


def test_a_changed_datasource_is_updated_without_resending_its_secret(
    grafana: FakeGrafana, root: Path
) -> None:
    do_push(grafana, root)
    grafana.forget_requests()

    report = do_push(grafana, root, environ={**ENV, "PLACEWATCH_GRAFANA_DB_HOST": "db:5433"})

    assert report.updated == ["datasource placewatch-postgres"]
    [write] = grafana.writes()
    assert (write.method, write.path) == ("PUT", "/api/datasources/uid/placewatch-postgres")
    assert "secureJsonData" not in write.body
    assert grafana.datasources["placewatch-postgres"]["url"] == "db:5433"
    assert grafana.secrets["placewatch-postgres"] == {"password": DB_PASSWORD}  # kept


def test_secrets_are_sent_again_only_when_asked_or_missing(
    grafana: FakeGrafana, root: Path
) -> None:
    do_push(grafana, root)

    changed = {**ENV, "PLACEWATCH_GRAFANA_DB_PASSWORD": "rotated"}
    assert do_push(grafana, root, environ=changed).updated == []  # cannot be compared
    assert grafana.secrets["placewatch-postgres"] == {"password": DB_PASSWORD}

    report = do_push(grafana, root, environ=changed, update_secrets=True)
    assert report.updated == ["datasource placewatch-postgres"]  # the only one with secrets
    assert grafana.secrets["placewatch-postgres"] == {"password": "rotated"}

    grafana.secrets["placewatch-postgres"].clear()  # e.g. someone removed it by hand
    grafana.forget_requests()
    assert do_push(grafana, root, environ=changed).updated == ["datasource placewatch-postgres"]
    [write] = grafana.writes()
    assert write.body["secureJsonData"] == {"password": "rotated"}


def test_a_field_removed_from_the_file_is_reset(grafana: FakeGrafana, root: Path) -> None:
    do_push(grafana, root)
    text = (root / "provisioning/datasources/placewatch.yaml").read_text(encoding="utf-8")
    text = text.replace("    database: placewatch\n", "")
    (root / "provisioning/datasources/placewatch.yaml").write_text(text, encoding="utf-8")

    assert do_push(grafana, root).updated == ["datasource placewatch-postgres"]
    assert grafana.datasources["placewatch-postgres"]["database"] == ""
    assert do_push(grafana, root).updated == []


def test_an_unset_variable_expands_to_nothing_with_a_warning(
    grafana: FakeGrafana, root: Path
) -> None:
    env = {k: v for k, v in ENV.items() if k != "PLACEWATCH_GRAFANA_DB_PASSWORD"}
    report = do_push(grafana, root, environ=env)
    assert grafana.secrets["placewatch-postgres"] == {"password": ""}
    assert report.warnings == [
        "datasource placewatch-postgres: secureJsonData.password is empty "
        "(is its environment variable set?)"
    ]


def test_token_auth(grafana: FakeGrafana, root: Path) -> None:
    assert do_push(grafana, root, auth="glsa_test_token").created == ALL_ITEMS


@pytest.mark.parametrize("auth", [("admin", "wrong"), ("someone", ADMIN_PASSWORD), "bad-token"])
def test_wrong_credentials(grafana: FakeGrafana, root: Path, auth: Any) -> None:
    with pytest.raises(PushError) as caught:
        do_push(grafana, root, auth=auth)
    message = str(caught.value)
    assert message.startswith(f"Grafana refused the credentials (401) at {grafana.url}: ")
    assert "Invalid" in message  # Grafana's own message
    assert ADMIN_PASSWORD not in message
    assert grafana.writes() == []


def test_unreachable_grafana_names_the_url(root: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    expected = re.escape(f"cannot reach Grafana at {url}: ") + ".*refused"
    with pytest.raises(PushError, match=expected):
        push(url, auth=("admin", "admin"), root=root, environ=ENV, timeout=2)


def test_grafana_refusals_name_item_status_and_message(grafana: FakeGrafana, root: Path) -> None:
    # A folder of that title already exists under another uid (e.g. made by hand).
    grafana.folders["by-hand"] = {"id": 99, "uid": "by-hand", "title": "Care", "version": 1}
    with pytest.raises(PushError) as caught:
        do_push(grafana, root)
    assert str(caught.value) == (
        f"folder placewatch-care: Grafana answered 409 at {grafana.url}: "
        "a folder with the same name already exists"
    )


def test_a_read_only_datasource_says_where_to_change_it(grafana: FakeGrafana, root: Path) -> None:
    do_push(grafana, root)
    grafana.datasources["placewatch-prometheus"]["readOnly"] = True
    grafana.datasources["placewatch-prometheus"]["url"] = "http://elsewhere:9090"
    with pytest.raises(PushError, match=r"datasource placewatch-prometheus: .* 403 .*readonly"):
        do_push(grafana, root)


def test_a_url_with_a_sub_path(grafana: FakeGrafana, root: Path) -> None:
    # grafana-client would ask http://host/grafanaapi/... for http://host/grafana.
    with pytest.raises(PushError, match=r"Grafana answered 404 at http://127\.0\.0\.1:\d+/grafana"):
        push(f"{grafana.url}/grafana", auth=("admin", ADMIN_PASSWORD), root=root, environ=ENV)
    assert grafana.requests[0].path == "/grafana/api/datasources/uid/placewatch-postgres"


def test_bad_files_are_refused_before_any_request(grafana: FakeGrafana, root: Path) -> None:
    write_json(root / "json/Care/copy.json", dashboard("placewatch-care", "Copy"))
    with pytest.raises(PushError, match=r"uid placewatch-care is also the uid of .*care\.json"):
        do_push(grafana, root)
    (root / "json/Care/copy.json").unlink()

    path = root / "provisioning/datasources/placewatch.yaml"
    path.write_text(DATASOURCES.replace("${PLACEWATCH_GRAFANA_DB_PASSWORD}", "${PW:-hunter2}"))
    with pytest.raises(PushError) as caught:
        do_push(grafana, root)
    assert str(caught.value) == (
        f"{path}: datasources[0].secureJsonData.password: '${{PW:-...}}': Grafana's provisioning "
        "has no ${NAME:-default} syntax (it would expand to an empty string); use ${NAME} and "
        "set NAME"
    )
    assert grafana.requests == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$A", "a$b"),
        ("${A}", "a"),  # expanded twice, as in Grafana: "a$b", then $b is unset
        ("$A-${B}", "a$b-bee"),
        ("$$A", "$A"),
        ("price: $$5", "price: $5"),
        ("$UNSET|${UNSET}", "|"),
        ("$__env{B}", "bee"),
        ("50$", "50$"),
        ("$ x", "$ x"),
        ("${}x", "x"),
        ("${open", "open"),
    ],
)
def test_expand_env_as_grafana(value: str, expected: str) -> None:
    assert expand_env(value, {"A": "a$b", "B": "bee"}) == expected


def test_expand_env_refuses_shell_defaults() -> None:
    with pytest.raises(ValueError, match=r"no \$\{NAME:-default\} syntax"):
        expand_env("${PORT:-3000}", {"PORT": "1"})


def test_expand_env_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-a-file\n", encoding="utf-8")
    assert expand_env(f"$__file{{{tmp_path / 'secret'}}}", {}) == "from-a-file"


@pytest.mark.parametrize(
    ("title", "uid"),
    [
        ("Care", "placewatch-care"),
        ("Bins & Collections", "placewatch-bins-collections"),
        ("  Pflege Übersicht 2 ", "placewatch-pflege-bersicht-2"),
    ],
)
def test_folder_uid(title: str, uid: str) -> None:
    assert folder_uid(title) == uid


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_push_arguments(parser)
    return parser.parse_args(argv)


def test_run_push_prints_items_and_summary_but_never_a_secret(
    grafana: FakeGrafana, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        **ENV,
        "PLACEWATCH_GRAFANA_URL": grafana.url,
        "PLACEWATCH_GRAFANA_PASSWORD": ADMIN_PASSWORD,
    }
    assert run_push(parse("--root", str(root)), env) == 0
    assert run_push(parse("--root", str(root), "--update-secrets"), env) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[:8] == [
        *(f"created {item}" for item in ALL_ITEMS),
        f"pushed to {grafana.url}: 7 created, 0 updated, 0 unchanged",
    ]
    assert "updated datasource placewatch-postgres" in lines[8:]
    assert lines[-1] == f"pushed to {grafana.url}: 0 created, 1 updated, 6 unchanged"
    assert err == ""

    bad = {**env, "PLACEWATCH_GRAFANA_PASSWORD": "nope-" + ADMIN_PASSWORD}
    assert run_push(parse("--root", str(root)), bad) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        f"dashboards push: Grafana refused the credentials (401) at {grafana.url}"
    )

    for text in (out, err, *lines):
        assert DB_PASSWORD not in text and ADMIN_PASSWORD not in text


def test_run_push_credentials(
    grafana: FakeGrafana, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**ENV, "PLACEWATCH_GRAFANA_URL": grafana.url}
    # No credentials at all: Grafana's initial admin/admin, with a hint when refused.
    assert run_push(parse("--root", str(root)), env) == 1
    assert "admin/admin was tried" in capsys.readouterr().err

    assert run_push(parse("--root", str(root), "--token", "glsa_test_token"), env) == 0
    capsys.readouterr()

    both = {**env, "PLACEWATCH_GRAFANA_TOKEN": "glsa_test_token"}
    assert run_push(parse("--root", str(root), "--user", "admin"), both) == 1
    assert "not both" in capsys.readouterr().err

    assert run_push(parse("--root", str(root), "--user", "admin"), env) == 1
    assert "--user needs --password" in capsys.readouterr().err

    url_with_login = f"http://admin:{ADMIN_PASSWORD}@127.0.0.1:1"
    assert run_push(parse("--root", str(root), "--url", url_with_login), env) == 1
    err = capsys.readouterr().err
    assert "holds credentials" in err and ADMIN_PASSWORD not in err


def test_cli_defaults() -> None:
    args = parse()
    assert args.url is None and args.token is None and args.user is None
    assert args.update_secrets is False and args.timeout == 10
