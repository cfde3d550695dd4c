"""The teams file: problems reported with file, line and field; applied declaratively to the
database (routes, endpoints and group members become exactly the file's), in one transaction,
with webhook secrets from the environment, a file, or generated once."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import psycopg
import pytest

from notify.signing import new_secret, secret_key
from placewatch.yamlconfig import ConfigLoadError, ConfigProblem
from teams.config import RouteSpec, TeamsFile, apply_teams, load_teams_file

Conn = psycopg.Connection[tuple[object, ...]]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "teams.yaml"


def _write(tmp_path: Path, text: str, council: str = "camden") -> Path:
    path = tmp_path / f"teams-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n").replace("COUNCIL", council), "utf-8")
    return path


def _load(tmp_path: Path, text: str, council: str = "camden") -> TeamsFile:
    return load_teams_file(_write(tmp_path, text, council))


# --------------------------------------------------------------------------------------------
# Loading


def test_example_file_loads() -> None:
    spec = load_teams_file(EXAMPLE)
    assert spec.council == "demo"
    assert [t.id for t in spec.teams] == ["north-carers", "street-ops"]
    assert spec.teams[0].routes[0].residents == "north-caseload"
    assert spec.teams[1].routes[0].residents is None  # street alerts only
    assert all(w.secret_env for t in spec.teams for w in t.webhooks)


def test_defaults(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        """
        council: camden
        teams:
          - id: ops
            name: Operations
            routes: [{}]
            webhooks:
              - id: ops-hook
                url: https://ops.example.org/hook
        """,
    )
    assert spec.resident_groups == {}
    # An empty route matches street alerts of every site, kind, rule and severity.
    assert spec.teams[0].routes == [RouteSpec()]
    assert RouteSpec().residents is None and RouteSpec().min_severity is None
    hook = spec.teams[0].webhooks[0]
    assert (hook.secret_env, hook.secret_file) == (None, None)
    assert (hook.max_concurrency, hook.enabled) == (4, True)


BAD_FILES = {
    "unknown-key": (
        """
        council: camden
        teams:
          - id: north
            name: North
            colour: red
            routes: [{}]
        """,
        5,
        "teams[0].colour",
        "Extra inputs are not permitted",
    ),
    "bad-team-id": (
        """
        council: camden
        teams:
          - id: North_Carers
            name: North
            routes: [{}]
        """,
        3,
        "teams[0].id",
        "should match pattern",
    ),
    "unknown-kind": (
        """
        council: camden
        teams:
          - id: north
            name: North
            routes:
              - sites: [high-st]
              - kinds: [bin_fill, toaster]
        """,
        7,
        "teams[0].routes[1].kinds[1]",
        "'toaster'",
    ),
    "unknown-severity": (
        """
        council: camden
        teams:
          - id: north
            name: North
            routes:
              - min_severity: urgent
        """,
        6,
        "teams[0].routes[0].min_severity",
        "'info', 'warning' or 'critical'",
    ),
    "no-routes": (
        """
        council: camden
        teams:
          - id: north
            name: North
            routes: []
        """,
        5,
        "teams[0].routes",
        "at least 1 item",
    ),
    "both-secret-sources": (
        """
        council: camden
        teams:
          - id: north
            name: North
            routes: [{}]
            webhooks:
              - id: north-hook
                url: https://crm.example.org/hook
                secret_env: NORTH_SECRET
                secret_file: /run/secrets/north
        """,
        7,
        "teams[0].webhooks[0]",
        "give secret_env or secret_file, not both",
    ),
    "bad-url": (
        """
        council: camden
        teams:
          - id: north
            name: North
            routes: [{}]
            webhooks:
              - id: north-hook
                url: ftp://crm.example.org/hook
        """,
        8,
        "teams[0].webhooks[0].url",
        "should match pattern",
    ),
    "star-group": (
        """
        council: camden
        resident_groups:
          north: [r-1]
          '*': [r-2]
        teams: []
        """,
        2,
        "resident_groups",
        "'*' means every resident and cannot be a group id",
    ),
    "missing-council": (
        """
        teams: []
        """,
        1,
        "council",
        "Field required",
    ),
}


@pytest.mark.parametrize(("text", "line", "field", "message"), BAD_FILES.values(), ids=BAD_FILES)
def test_bad_file_is_reported_with_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigLoadError) as caught:
        load_teams_file(path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), line, field)
    assert message in problem.message
    assert str(path) in str(caught.value)


REPEATED_TEAMS = """
council: camden
teams:
  - id: north
    name: North
    routes: [{}]
  - id: north
    name: North again
    routes: [{}]
"""

REPEATED_WEBHOOKS = """
council: camden
teams:
  - id: north
    name: North
    routes: [{}]
    webhooks: [{id: hook, url: "https://a.example/h"}]
  - id: south
    name: South
    routes: [{}]
    webhooks: [{id: hook, url: "https://b.example/h"}]
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (REPEATED_TEAMS, "team id 'north' is already used at line 3"),
        (REPEATED_WEBHOOKS, "webhook id 'hook' is already used at line 6"),
    ],
    ids=["teams", "webhooks"],
)
def test_repeated_ids_are_reported(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigLoadError) as caught:
        load_teams_file(path)
    [problem] = caught.value.problems
    assert problem.file == str(path)
    assert problem.message == message


def test_repeated_team_id_problem_points_at_the_repeat(tmp_path: Path) -> None:
    path = _write(tmp_path, REPEATED_TEAMS)
    with pytest.raises(ConfigLoadError) as caught:
        load_teams_file(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (6, "teams[1].id")


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        council: Camden
        teams:
          - id: north
            name: ""
            routes:
              - residents: '*'
                sites: high-st
        """,
    )
    with pytest.raises(ConfigLoadError) as caught:
        load_teams_file(path)
    assert [(p.line, p.field) for p in caught.value.problems] == [
        (1, "council"),
        (4, "teams[0].name"),
        (7, "teams[0].routes[0].sites"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ConfigProblem("", None, "", "the file is empty")),
        ("council: [camden\n", ConfigProblem("", 2, "", "not valid YAML")),
    ],
    ids=["empty", "not-yaml"],
)
def test_unusable_file_is_reported(tmp_path: Path, text: str, expected: ConfigProblem) -> None:
    path = tmp_path / "teams.yaml"
    path.write_text(text)
    with pytest.raises(ConfigLoadError) as caught:
        load_teams_file(path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (str(path), expected.line)
    assert problem.message.startswith(expected.message)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigLoadError, match=r"nowhere\.yaml"):
        load_teams_file(tmp_path / "nowhere.yaml")


# --------------------------------------------------------------------------------------------
# Applying


@pytest.fixture
def council(conn: Conn) -> str:
    council_id = f"c{uuid.uuid4().hex[:10]}"
    conn.execute(
        "INSERT INTO councils (council_id, name) VALUES (%s, 'Teams tests')", (council_id,)
    )
    return council_id


def _state(conn: Conn, council: str) -> dict[str, list[tuple[object, ...]]]:
    """The council's teams, routes, endpoints and groups, without generated ids and times."""
    return {
        "teams": conn.execute(
            "SELECT team_id, name FROM teams WHERE council_id = %s ORDER BY 1", (council,)
        ).fetchall(),
        "routes": conn.execute(
            """SELECT r.team_id, r.sites, r.sensor_kinds, r.rule_ids, r.min_severity,
                      r.resident_group
               FROM team_routes r JOIN teams t USING (team_id) WHERE t.council_id = %s
               ORDER BY r.route_id""",
            (council,),
        ).fetchall(),
        "endpoints": conn.execute(
            """SELECT e.endpoint_id, e.team_id, e.url, e.secret, e.enabled, e.max_concurrency
               FROM webhook_endpoints e JOIN teams t USING (team_id) WHERE t.council_id = %s
               ORDER BY 1""",
            (council,),
        ).fetchall(),
        "groups": conn.execute(
            "SELECT group_id, resident_id FROM resident_groups WHERE council_id = %s ORDER BY 1, 2",
            (council,),
        ).fetchall(),
    }


def _endpoints(conn: Conn, council: str) -> dict[str, tuple[object, ...]]:
    """endpoint id -> (team, url, secret, enabled, max_concurrency)."""
    return {str(row[0]): row[1:] for row in _state(conn, council)["endpoints"]}


FILE = """
council: COUNCIL
resident_groups:
  north-COUNCIL: [r-0001, r-0002]
teams:
  - id: carers-COUNCIL
    name: North telecare team
    routes:
      - residents: north-COUNCIL
      - residents: '*'
        rules: [fall-detected]
        min_severity: critical
    webhooks:
      - id: crm-COUNCIL
        url: https://crm.example.org/hooks/placewatch
        secret_env: PW_TEST_CRM_SECRET
        max_concurrency: 2
  - id: street-COUNCIL
    name: Street operations
    routes:
      - sites: [high-st, market-sq]
        kinds: [bin_fill, flood_level]
"""


def test_apply_writes_teams_routes_endpoints_and_groups(
    conn: Conn, council: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    monkeypatch.setenv("PW_TEST_CRM_SECRET", secret)
    result = apply_teams(conn, _load(tmp_path, FILE, council))
    carers, street = f"carers-{council}", f"street-{council}"
    assert result.teams == [carers, street]
    assert result.new_secrets == {}
    assert _state(conn, council) == {
        "teams": sorted([(carers, "North telecare team"), (street, "Street operations")]),
        "routes": [
            (carers, None, None, None, None, f"north-{council}"),
            (carers, None, None, ["fall-detected"], "critical", "*"),
            (street, ["high-st", "market-sq"], ["bin_fill", "flood_level"], None, None, None),
        ],
        "endpoints": [
            (
                f"crm-{council}",
                carers,
                "https://crm.example.org/hooks/placewatch",
                secret,
                True,
                2,
            )
        ],
        "groups": [(f"north-{council}", "r-0001"), (f"north-{council}", "r-0002")],
    }


def test_apply_twice_gives_the_same_rows(
    conn: Conn, council: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PW_TEST_CRM_SECRET", new_secret())
    spec = _load(tmp_path, FILE, council)
    apply_teams(conn, spec)
    first = _state(conn, council)
    second_result = apply_teams(conn, spec)
    assert _state(conn, council) == first
    assert second_result.new_secrets == {}


def test_changed_routes_replace_the_old_ones(
    conn: Conn, council: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PW_TEST_CRM_SECRET", new_secret())
    apply_teams(conn, _load(tmp_path, FILE, council))
    changed = FILE.replace(
        "      - sites: [high-st, market-sq]\n        kinds: [bin_fill, flood_level]\n",
        "      - kinds: [air_quality]\n        min_severity: warning\n",
    )
    assert changed != FILE
    apply_teams(conn, _load(tmp_path, changed, council))
    street_routes = [r for r in _state(conn, council)["routes"] if r[0] == f"street-{council}"]
    assert street_routes == [(f"street-{council}", None, ["air_quality"], None, "warning", None)]


def test_group_members_become_exactly_those_listed(
    conn: Conn, council: str, tmp_path: Path
) -> None:
    base = """
    council: COUNCIL
    resident_groups:
      north: [r-1, r-2]
      south: [r-3]
    """
    apply_teams(conn, _load(tmp_path, base, council))
    apply_teams(
        conn,
        _load(tmp_path, "council: COUNCIL\nresident_groups:\n  north: [r-2, r-4]\n", council),
    )
    # north replaced; south, not named the second time, left alone.
    assert _state(conn, council)["groups"] == [
        ("north", "r-2"),
        ("north", "r-4"),
        ("south", "r-3"),
    ]


def test_teams_the_file_does_not_name_are_left_alone(
    conn: Conn, council: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PW_TEST_CRM_SECRET", new_secret())
    apply_teams(conn, _load(tmp_path, FILE, council))
    before = _state(conn, council)
    only_new = f"""
    council: {council}
    teams:
      - id: extra-{council}
        name: Extra
        routes: [{{}}]
    """
    apply_teams(conn, _load(tmp_path, only_new, council))
    after = _state(conn, council)
    assert after["teams"] == sorted([*before["teams"], (f"extra-{council}", "Extra")])
    assert after["endpoints"] == before["endpoints"]
    assert after["routes"][: len(before["routes"])] == before["routes"]


def _hooks_file(*hook_ids: str) -> str:
    hooks = "".join(
        f"      - id: {h}-COUNCIL\n        url: https://{h}.example.org/hook\n" for h in hook_ids
    )
    return "council: COUNCIL\nteams:\n  - id: ops-COUNCIL\n    name: Ops\n    routes: [{}]\n" + (
        f"    webhooks:\n{hooks}" if hooks else ""
    )


def test_removed_webhook_endpoint_is_deleted(conn: Conn, council: str, tmp_path: Path) -> None:
    apply_teams(conn, _load(tmp_path, _hooks_file("alpha", "beta"), council))
    kept = _endpoints(conn, council)[f"alpha-{council}"]
    apply_teams(conn, _load(tmp_path, _hooks_file("alpha"), council))
    assert _endpoints(conn, council) == {f"alpha-{council}": kept}


def test_removing_every_webhook_endpoint_deletes_them(
    conn: Conn, council: str, tmp_path: Path
) -> None:
    apply_teams(conn, _load(tmp_path, _hooks_file("alpha", "beta"), council))
    apply_teams(conn, _load(tmp_path, _hooks_file(), council))
    assert _endpoints(conn, council) == {}


def _add_delivery(conn: Conn, council: str, endpoint_id: str, team_id: str) -> None:
    row = conn.execute(
        """INSERT INTO alerts (council_id, rule_id, rule_kind, subject_type, subject_id,
                               severity, opened_at, summary)
           VALUES (%s, 'r', 'threshold', 'device', 'dev-1', 'warning', now(), 'test')
           RETURNING alert_id""",
        (council,),
    ).fetchone()
    assert row is not None
    conn.execute(
        """INSERT INTO webhook_deliveries (webhook_id, endpoint_id, team_id, outbox_id, alert_id,
                                          council_id, event, body, give_up_at,
                                          event_committed_at)
           VALUES (%s, %s, %s, 1, %s, %s, 'alert.opened', '{}', now() + interval '1 day', now())""",
        (f"msg_{uuid.uuid4().hex}", endpoint_id, team_id, row[0], council),
    )


def test_removed_webhook_endpoint_with_deliveries_is_disabled_not_deleted(
    conn: Conn, council: str, tmp_path: Path
) -> None:
    apply_teams(conn, _load(tmp_path, _hooks_file("alpha", "beta"), council))
    beta = f"beta-{council}"
    _add_delivery(conn, council, beta, f"ops-{council}")
    secret = _endpoints(conn, council)[beta][2]

    apply_teams(conn, _load(tmp_path, _hooks_file("alpha"), council))
    assert _endpoints(conn, council)[beta][3] is False  # enabled
    assert _endpoints(conn, council)[f"alpha-{council}"][3] is True

    # Named again: enabled again, with the secret it had.
    result = apply_teams(conn, _load(tmp_path, _hooks_file("alpha", "beta"), council))
    assert _endpoints(conn, council)[beta][2:4] == (secret, True)
    assert result.new_secrets == {}


# --------------------------------------------------------------------------------------------
# Webhook secrets


def _one_hook(source: str) -> str:
    return (
        "council: COUNCIL\nteams:\n  - id: ops-COUNCIL\n    name: Ops\n    routes: [{}]\n"
        "    webhooks:\n      - id: hook-COUNCIL\n        url: https://ops.example.org/hook\n"
        + (f"        {source}\n" if source else "")
    )


def _secret(conn: Conn, council: str) -> object:
    return _endpoints(conn, council)[f"hook-{council}"][2]


def test_secret_from_an_environment_variable(
    conn: Conn, council: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = new_secret(), new_secret()
    monkeypatch.setenv("PW_TEST_HOOK_SECRET", first)
    spec = _load(tmp_path, _one_hook("secret_env: PW_TEST_HOOK_SECRET"), council)
    assert apply_teams(conn, spec).new_secrets == {}
    assert _secret(conn, council) == first
    # Rotated in the environment: the next apply takes the new one.
    monkeypatch.setenv("PW_TEST_HOOK_SECRET", second)
    apply_teams(conn, spec)
    assert _secret(conn, council) == second


def test_secret_from_a_file(conn: Conn, council: str, tmp_path: Path) -> None:
    secret = new_secret()
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(secret + "\n")
    spec = _load(tmp_path, _one_hook(f"secret_file: {secret_file}"), council)
    assert apply_teams(conn, spec).new_secrets == {}
    assert _secret(conn, council) == secret


def test_secret_generated_when_none_given_is_reported_once(
    conn: Conn, council: str, tmp_path: Path
) -> None:
    spec = _load(tmp_path, _one_hook(""), council)
    first = apply_teams(conn, spec)
    hook = f"hook-{council}"
    assert list(first.new_secrets) == [hook]
    assert len(secret_key(first.new_secrets[hook])) == 32
    assert _secret(conn, council) == first.new_secrets[hook]

    second = apply_teams(conn, spec)
    assert second.new_secrets == {}
    assert _secret(conn, council) == first.new_secrets[hook]


def test_endpoint_keeps_its_secret_when_the_source_is_dropped(
    conn: Conn, council: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    monkeypatch.setenv("PW_TEST_HOOK_SECRET", secret)
    apply_teams(conn, _load(tmp_path, _one_hook("secret_env: PW_TEST_HOOK_SECRET"), council))
    result = apply_teams(conn, _load(tmp_path, _one_hook(""), council))
    assert result.new_secrets == {}
    assert _secret(conn, council) == secret


def test_unset_environment_variable_names_webhook_and_variable(
    conn: Conn, council: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PW_TEST_UNSET_SECRET", raising=False)
    spec = _load(tmp_path, _one_hook("secret_env: PW_TEST_UNSET_SECRET"), council)
    with pytest.raises(ValueError, match=rf"webhook hook-{council}: .*PW_TEST_UNSET_SECRET"):
        apply_teams(conn, spec)
    assert _state(conn, council)["teams"] == []


@pytest.mark.parametrize(
    ("value", "message"),
    [("not-a-secret", "starts with 'whsec_'"), ("whsec_AAAA", "24 to 64 bytes, not 3")],
    ids=["no-prefix", "too-short"],
)
def test_malformed_secret_names_the_webhook_and_the_reason(
    conn: Conn,
    council: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv("PW_TEST_BAD_SECRET", value)
    spec = _load(tmp_path, _one_hook("secret_env: PW_TEST_BAD_SECRET"), council)
    with pytest.raises(ValueError, match=rf"webhook hook-{council}: .*{message}"):
        apply_teams(conn, spec)


def test_unreadable_secret_file_names_the_webhook(conn: Conn, council: str, tmp_path: Path) -> None:
    spec = _load(tmp_path, _one_hook(f"secret_file: {tmp_path / 'absent'}"), council)
    with pytest.raises(ValueError, match=rf"webhook hook-{council}: cannot read secret_file"):
        apply_teams(conn, spec)


# --------------------------------------------------------------------------------------------
# Refusals


def test_unknown_council_is_refused(conn: Conn, tmp_path: Path) -> None:
    council = f"nowhere-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ValueError, match=f"council '{council}' is not registered"):
        apply_teams(conn, _load(tmp_path, "council: COUNCIL\nteams: []\n", council))


def test_team_of_another_council_is_refused_and_nothing_is_written(
    conn: Conn, council: str, tmp_path: Path
) -> None:
    other = f"c{uuid.uuid4().hex[:10]}"
    conn.execute("INSERT INTO councils (council_id, name) VALUES (%s, 'Other')", (other,))
    shared = f"shared-{council}"
    apply_teams(
        conn,
        _load(
            tmp_path,
            f"council: {other}\nteams:\n  - {{id: {shared}, name: Theirs, routes: [{{}}]}}\n",
        ),
    )
    ours = f"""
    council: {council}
    resident_groups:
      north: [r-1]
    teams:
      - id: first-{council}
        name: Fine
        routes: [{{}}]
      - id: {shared}
        name: Ours
        routes: [{{residents: '*'}}]
    """
    with pytest.raises(ValueError, match=f"team '{shared}' already belongs to another council"):
        apply_teams(conn, _load(tmp_path, ours))
    # One transaction: neither the group nor the first team was written.
    assert _state(conn, council) == {"teams": [], "routes": [], "endpoints": [], "groups": []}
    assert _state(conn, other)["teams"] == [(shared, "Theirs")]
    assert _state(conn, other)["routes"] == [(shared, None, None, None, None, None)]


def test_webhook_of_another_team_is_refused(conn: Conn, council: str, tmp_path: Path) -> None:
    apply_teams(conn, _load(tmp_path, _hooks_file("alpha"), council))
    theft = f"""
    council: {council}
    teams:
      - id: thief-{council}
        name: Thief
        routes: [{{}}]
        webhooks:
          - id: alpha-{council}
            url: https://thief.example.org/hook
    """
    with pytest.raises(ValueError, match=f"webhook 'alpha-{council}' already belongs"):
        apply_teams(conn, _load(tmp_path, theft))
    assert _endpoints(conn, council)[f"alpha-{council}"][:2] == (
        f"ops-{council}",
        "https://alpha.example.org/hook",
    )


def test_a_route_naming_a_group_that_exists_nowhere_is_refused(
    conn: Conn, council: str, tmp_path: Path
) -> None:
    text = f"""
    council: {council}
    resident_groups: {{north-caseload: [r-1]}}
    teams:
      - id: t-{council}
        name: Carers
        routes: [{{residents: north-caseloed}}]
    """
    with pytest.raises(ValueError, match=r"north-caseloed .*define them under resident_groups"):
        apply_teams(conn, _load(tmp_path, text, council))
    assert _state(conn, council)["teams"] == []
    # A group already in the database (from an earlier file) is fine.
    apply_teams(conn, _load(tmp_path, text.replace("caseloed", "caseload"), council))
    later = f"""
    council: {council}
    teams:
      - id: t2-{council}
        name: Night carers
        routes: [{{residents: north-caseload}}]
    """
    apply_teams(conn, _load(tmp_path, later, council))


@pytest.mark.parametrize(
    ("route", "field"),
    [("{sites: []}", "sites"), ("{kinds: []}", "kinds"), ("{rules: []}", "rules")],
)
def test_an_empty_list_in_a_route_is_refused(tmp_path: Path, route: str, field: str) -> None:
    path = _write(
        tmp_path,
        f"""
        council: camden
        teams:
          - id: north
            name: North
            routes: [{route}]
        """,
    )
    with pytest.raises(ConfigLoadError) as caught:
        load_teams_file(path)
    [problem] = caught.value.problems
    assert problem.field == f"teams[0].routes[0].{field}"


def test_a_url_httpx_cannot_use_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        council: camden
        teams:
          - id: north
            name: North
            routes: [{}]
            webhooks: [{id: hook, url: "http://a:b/"}]
        """,
    )
    with pytest.raises(ConfigLoadError) as caught:
        load_teams_file(path)
    [problem] = caught.value.problems
    assert problem.field == "teams[0].webhooks[0].url"
    assert "not a usable URL" in problem.message
