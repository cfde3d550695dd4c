"""/v1/alerts over real HTTP: keys and scopes, what each team may see, state changes with their
audit trail and webhook outbox, and the access audit of care data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.api.conftest import B, World, ago, bearer


def ids(response: httpx.Response) -> set[int]:
    assert response.status_code == 200, response.text
    return {a["id"] for a in response.json()["alerts"]}


def problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    return body


# --- keys and scopes ---------------------------------------------------------------------------


def test_missing_key_is_401_with_a_challenge(http: httpx.Client) -> None:
    r = http.get("/v1/alerts")
    body = problem(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Bearer pw_" in body["detail"]


@pytest.mark.parametrize(
    "token",
    ["nonsense", "pw_abcdefghijkl_" + "x" * 43, "pw_short_secret"],
    ids=["not-a-key", "unknown-key", "malformed"],
)
def test_bad_key_is_401(http: httpx.Client, token: str) -> None:
    r = http.get("/v1/alerts", headers=bearer(token))
    problem(r, 401, "unauthorized")
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_wrong_secret_revoked_and_expired_keys_are_401(world: World, http: httpx.Client) -> None:
    good = world.key("carers-a")
    key_id = good.split("_")[1]
    wrong_secret = f"pw_{key_id}_{'A' * 43}"
    revoked = world.key("carers-a", revoked=True)
    expired = world.key("carers-a", expires_at=ago(minutes=1))
    for token in (wrong_secret, revoked, expired):
        problem(http.get("/v1/alerts", headers=bearer(token)), 401, "unauthorized")
    assert http.get("/v1/alerts", headers=bearer(good)).status_code == 200


def test_x_api_key_header_and_last_used(world: World, http: httpx.Client) -> None:
    token = world.key("ops-a")
    key_id = token.split("_")[1]
    assert world.scalar("SELECT last_used_at FROM api_keys WHERE key_id = %s", key_id) is None
    assert http.get("/v1/alerts", headers={"X-API-Key": token}).status_code == 200
    first = world.scalar("SELECT last_used_at FROM api_keys WHERE key_id = %s", key_id)
    assert first is not None
    # Within the minute, further requests do not write again.
    assert http.get("/v1/alerts", headers={"X-API-Key": token}).status_code == 200
    assert world.scalar("SELECT last_used_at FROM api_keys WHERE key_id = %s", key_id) == first


def test_missing_scope_is_403_naming_it(world: World, http: httpx.Client) -> None:
    devices_only = world.key("carers-a", ["devices:read"])
    body = problem(http.get("/v1/alerts", headers=bearer(devices_only)), 403, "insufficient_scope")
    assert "alerts:read" in body["detail"]

    read_only = world.key("carers-a", ["alerts:read"])
    alert_id = world.care_alert("r-a1")
    r = http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=bearer(read_only), json={})
    assert "alerts:write" in problem(r, 403, "insufficient_scope")["detail"]
    assert world.scalar("SELECT state FROM alerts WHERE alert_id = %s", alert_id) == "open"


# --- visibility --------------------------------------------------------------------------------


def test_each_team_sees_only_its_alerts(
    world: World, http: httpx.Client, keys: dict[str, str]
) -> None:
    mine = world.care_alert("r-a2")
    theirs = world.care_alert("r-b1", site="oak-road")
    street = world.alert(kind="bin_fill")
    other_council_street = world.alert(B, kind="bin_fill")
    other_council_care = world.care_alert("r-x1", council=B)

    carers_a = ids(http.get("/v1/alerts", headers=bearer(keys["carers-a"]), params={"limit": 500}))
    assert mine in carers_a
    assert not carers_a & {theirs, street, other_council_street, other_council_care}

    carers_b = ids(http.get("/v1/alerts", headers=bearer(keys["carers-b"]), params={"limit": 500}))
    assert theirs in carers_b and mine not in carers_b

    ops = http.get("/v1/alerts", headers=bearer(keys["ops-a"]), params={"limit": 500})
    assert street in ids(ops) and other_council_street not in ids(ops)
    assert all(a["resident_id"] is None for a in ops.json()["alerts"]), "ops saw care data"

    # "*" means every resident of the team's own council, never another council's.
    carers_x = http.get("/v1/alerts", headers=bearer(keys["carers-x"]), params={"limit": 500})
    assert other_council_care in ids(carers_x)
    assert {a["council_id"] for a in carers_x.json()["alerts"]} == {B}


def test_another_teams_alert_is_404_for_get_and_actions(
    world: World, http: httpx.Client, keys: dict[str, str]
) -> None:
    theirs = world.care_alert("r-b1")
    h = bearer(keys["carers-a"])
    missing = 10**12
    for alert_id in (theirs, missing):
        body = problem(http.get(f"/v1/alerts/{alert_id}", headers=h), 404, "not_found")
        assert body["detail"] == f"no alert {alert_id} visible to this team"
        r = http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h, json={"note": "mine?"})
        problem(r, 404, "not_found")
        r = http.post(f"/v1/alerts/{alert_id}/resolve", headers=h, json={"note": "mine?"})
        problem(r, 404, "not_found")
    assert world.scalar("SELECT state FROM alerts WHERE alert_id = %s", theirs) == "open"
    # Operations cannot reach a resident's alert either.
    problem(http.get(f"/v1/alerts/{theirs}", headers=bearer(keys["ops-a"])), 404, "not_found")


def test_get_alert_with_events(world: World, http: httpx.Client, keys: dict[str, str]) -> None:
    alert_id = world.care_alert("r-a1", observed={"expected_active_slots": 30, "active_slots": 4})
    r = http.get(f"/v1/alerts/{alert_id}", headers=bearer(keys["carers-a"]))
    assert r.status_code == 200, r.text
    alert = r.json()
    assert alert["id"] == alert_id
    assert alert["subject"] == {"type": "resident", "id": "r-a1"}
    assert alert["observed"] == {"expected_active_slots": 30, "active_slots": 4}
    assert [e["event"] for e in alert["events"]] == ["opened"]


# --- state changes -----------------------------------------------------------------------------


def test_acknowledge_is_audited_and_delivered_once(
    world: World, http: httpx.Client, keys: dict[str, str]
) -> None:
    alert_id = world.care_alert("r-a1")
    key_id = keys["carers-a"].split("_")[1]
    actor = f"team:carers-a/key:{key_id}"
    h = bearer(keys["carers-a"])

    r = http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h, json={"note": "on my way"})
    assert r.status_code == 200, r.text
    alert = r.json()
    assert alert["state"] == "acknowledged" and alert["acknowledged_by"] == actor
    assert alert["events"][-1]["event"] == "acknowledged"
    assert alert["events"][-1]["actor"] == actor
    assert alert["events"][-1]["detail"] == {"note": "on my way"}
    outbox = world.execute(
        "SELECT event, payload FROM alert_outbox WHERE alert_id = %s ORDER BY id", alert_id
    )
    assert [o["event"] for o in outbox] == ["opened", "acknowledged"]
    assert outbox[1]["payload"]["actor"] == actor

    again = http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h)
    body = problem(again, 409, "already_acknowledged")
    assert actor in body["detail"]
    assert (
        world.scalar(
            "SELECT count(*) FROM alert_outbox WHERE alert_id = %s AND event = 'acknowledged'",
            alert_id,
        )
        == 1
    )


def test_acknowledge_without_body_and_bad_bodies(
    world: World, http: httpx.Client, keys: dict[str, str]
) -> None:
    h = bearer(keys["ops-a"])
    alert_id = world.alert()
    body = problem(
        http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h, json={"note": "x" * 2001}),
        422,
        "invalid_request",
    )
    assert body["problems"][0]["location"] == "body.note"
    r = http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h, json={"nope": 1})
    problem(r, 422, "invalid_request")
    r = http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h, json={"note": "a\x00b"})
    problem(r, 422, "invalid_request")
    assert http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h).status_code == 200


def test_resolve_needs_a_note_and_happens_once(
    world: World, http: httpx.Client, keys: dict[str, str]
) -> None:
    alert_id = world.care_alert("r-a2")
    h = bearer(keys["carers-a"])
    url = f"/v1/alerts/{alert_id}/resolve"
    problem(http.post(url, headers=h, json={}), 422, "invalid_request")
    problem(http.post(url, headers=h, json={"note": "   "}), 422, "invalid_request")

    r = http.post(url, headers=h, json={"note": "Visited: she is fine, sensor moved"})
    assert r.status_code == 200, r.text
    alert = r.json()
    assert alert["state"] == "resolved"
    assert alert["resolution_note"] == "Visited: she is fine, sensor moved"
    assert alert["events"][-1]["event"] == "resolved"
    assert (
        world.scalar(
            "SELECT count(*) FROM alert_outbox WHERE alert_id = %s AND event = 'resolved'", alert_id
        )
        == 1
    )

    problem(http.post(url, headers=h, json={"note": "again"}), 409, "already_resolved")
    r = http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h)
    assert "already resolved" in problem(r, 409, "already_resolved")["detail"]


# --- filters and paging ------------------------------------------------------------------------


def test_filters_and_keyset_paging(world: World, http: httpx.Client) -> None:
    token = world.key("ops-a")
    h = bearer(token)
    site = "filters-st"
    made = [
        world.alert(site=site, severity=sev, opened_at=ago(hours=h_ago))
        for sev, h_ago in (("info", 30), ("warning", 20), ("critical", 10), ("critical", 1))
    ]
    http.post(f"/v1/alerts/{made[0]}/acknowledge", headers=h)

    def query(**params: Any) -> list[int]:
        r = http.get("/v1/alerts", headers=h, params={"site": site, **params})
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["alerts"]]

    assert query() == sorted(made, reverse=True)
    assert query(severity="critical") == [made[3], made[2]]
    assert query(state="acknowledged") == [made[0]]
    assert set(query(state=["open", "acknowledged"])) == set(made)
    assert query(since=ago(hours=15).isoformat()) == [made[3], made[2]]
    assert query(until=ago(hours=15).isoformat()) == [made[1], made[0]]
    assert query(sensor_kind="flood_level") == []

    pages: list[int] = []
    before: int | None = None
    while True:
        params: dict[str, Any] = {"site": site, "limit": 3}
        if before is not None:
            params["before"] = before
        page = http.get("/v1/alerts", headers=h, params=params).json()
        pages += [a["id"] for a in page["alerts"]]
        before = page["next_before"]
        if before is None:
            break
    assert pages == sorted(made, reverse=True)


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 501}, "query.limit"),
        ({"state": "closed"}, "query.state.0"),
        ({"since": "2025-01-01T00:00:00"}, "query.since"),  # no time zone: ambiguous
        ({"before": "x"}, "query.before"),
        ({"site": "a\x00b"}, "query.site"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    http: httpx.Client, keys: dict[str, str], params: dict[str, Any], location: str
) -> None:
    r = http.get("/v1/alerts", headers=bearer(keys["ops-a"]), params=params)
    body = problem(r, 422, "invalid_request")
    assert [p["location"] for p in body["problems"]] == [location]
    assert location in body["detail"]


# --- access audit ------------------------------------------------------------------------------


def test_care_data_reads_are_audited_street_reads_are_not(
    world: World, http: httpx.Client, keys: dict[str, str]
) -> None:
    care = world.care_alert("r-a2", site="audit-court")
    street = world.alert(site="audit-st")
    key_a = keys["carers-a"].split("_")[1]

    mark = world.last_audit_id()
    assert ids(http.get("/v1/alerts", headers=bearer(keys["ops-a"]), params={"site": "audit-st"}))
    assert http.get(f"/v1/alerts/{street}", headers=bearer(keys["ops-a"])).status_code == 200
    assert world.audit_rows(mark) == [], "street-only answers are not care data"

    r = http.get("/v1/alerts", headers=bearer(keys["carers-a"]), params={"site": "audit-court"})
    assert ids(r) == {care}
    assert http.get(f"/v1/alerts/{care}", headers=bearer(keys["carers-a"])).status_code == 200
    listed, got = world.audit_rows(mark)
    for row in (listed, got):
        assert row["team_id"] == "carers-a"
        assert row["principal"] == f"key:{key_a}"
        assert row["resident_ids"] == ["r-a2"] and row["alert_ids"] == [care]
        assert row["remote_addr"] == "127.0.0.1"
    assert listed["action"] == "alerts.list" and got["action"] == "alerts.get"
    assert "site=audit-court" in listed["detail"]["query"]

    # A 404 shows nothing and records nothing.
    mark = world.last_audit_id()
    http.get(f"/v1/alerts/{care}", headers=bearer(keys["carers-b"]))
    assert world.audit_rows(mark) == []


def test_actions_on_care_alerts_are_audited(
    world: World, http: httpx.Client, keys: dict[str, str]
) -> None:
    alert_id = world.care_alert("r-a1")
    mark = world.last_audit_id()
    h = bearer(keys["carers-a"])
    http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h, json={"note": "going"})
    http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h)  # 409: still shows the state
    http.post(f"/v1/alerts/{alert_id}/resolve", headers=h, json={"note": "all well"})
    rows = world.audit_rows(mark)
    assert [(r["action"], r["detail"]["outcome"]) for r in rows] == [
        ("alerts.acknowledge", "acknowledged"),
        ("alerts.acknowledge", "already acknowledged"),
        ("alerts.resolve", "resolved"),
    ]
    assert all(r["alert_ids"] == [alert_id] for r in rows)


def test_old_alerts_stay_listed_by_opened_time(world: World, http: httpx.Client) -> None:
    """``since`` filters on opened_at (event time), not on when the row was written."""
    token = world.key("ops-a")
    late = world.alert(site="late-st", opened_at=ago(days=3))
    r = http.get(
        "/v1/alerts",
        headers=bearer(token),
        params={"site": "late-st", "since": ago(days=2).isoformat()},
    )
    assert ids(r) == set()
    r = http.get(
        "/v1/alerts",
        headers=bearer(token),
        params={"site": "late-st", "since": (ago(days=3) - timedelta(hours=1)).isoformat()},
    )
    assert ids(r) == {late}
