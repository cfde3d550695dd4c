"""The acknowledge page over HTTP: every outcome has its page and status, the link is single-use
and bound to the team's routes, and what it shows and does is audited. (The same page in a
real browser, with the keyboard: test_ack_browser.py.)"""

from __future__ import annotations

import base64
import time
import uuid
from unittest import mock

import httpx
from itsdangerous import TimestampSigner
from pydantic import SecretStr

from notify.links import AckLink, ack_url
from placewatch.settings import Settings
from tests.api.conftest import World, bearer
from tests.support.api_server import ApiServer

DECLINE = {
    "expected_active_half_hours": 31,
    "active_half_hours": 6,
    "last_activity_at": "2025-03-04T09:12:00+00:00",
    "last_activity_sensor": "kitchen motion",
}


def link(api: ApiServer, alert_id: int, team: str = "carers-a") -> tuple[str, str]:
    """(path of the acknowledge link, its link id), as the dispatcher makes them."""
    link_id = f"msg_{uuid.uuid4().hex}"
    url = ack_url(api.settings(), AckLink(alert_id, team, link_id))
    return url.removeprefix(api.url), link_id


def tamper(url: str) -> str:
    """The link with its payload edited (the alert id in it changed), signature kept. (Editing
    the signature's last character can leave its decoded bytes as they were.)"""
    head, _, token = url.rpartition("/")
    payload, sep, rest = token.partition(".")
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    edited = base64.urlsafe_b64encode(decoded.replace(b"[", b"[9", 1)).rstrip(b"=").decode()
    return f"{head}/{edited}{sep}{rest}"


def test_page_explains_the_alert(world: World, api: ApiServer, http: httpx.Client) -> None:
    alert_id = world.care_alert(
        "r-a1",
        summary="Activity much lower than usual <today>",
        observed=DECLINE,
        severity="critical",
    )
    path, link_id = link(api, alert_id)
    mark = world.last_audit_id()

    r = http.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src" not in r.headers["Content-Security-Policy"]  # default-src 'none'
    page = r.text
    assert '<html lang="en-GB">' in page
    assert "Activity much lower than usual &lt;today&gt;" in page  # autoescaped
    assert "For North telecare team" in page
    assert "Resident r-a1" in page and "elm-court" in page
    assert "Critical" in page
    # Expected vs observed, last activity in UK local time (GMT in March).
    assert "Expected active half hours</dt><dd>31" in page
    assert "Active half hours</dt><dd>6" in page
    assert "Last activity</dt><dd>Tue 4 Mar 2025, 09:12 GMT" in page
    assert '<label for="note">Note (optional)</label>' in page
    assert 'maxlength="2000"' in page
    assert ">Acknowledge</button>" in page

    (audit,) = world.audit_rows(mark)
    assert audit["action"] == "ack_page.view" and audit["principal"] == f"link:{link_id}"
    assert audit["team_id"] == "carers-a" and audit["alert_ids"] == [alert_id]


def test_acknowledge_once(world: World, api: ApiServer, http: httpx.Client) -> None:
    alert_id = world.care_alert("r-a2")
    path, link_id = link(api, alert_id)
    actor = f"team:carers-a/link:{link_id}"

    r = http.post(path, data={"note": "  Calling her daughter now  "})
    assert r.status_code == 200, r.text
    assert "Alert acknowledged" in r.text and "Calling her daughter now" in r.text
    alert = world.execute("SELECT * FROM alerts WHERE alert_id = %s", alert_id)[0]
    assert alert["state"] == "acknowledged" and alert["acknowledged_by"] == actor
    event = world.execute(
        "SELECT actor, detail FROM alert_events WHERE alert_id = %s AND event = 'acknowledged'",
        alert_id,
    )
    assert event == [{"actor": actor, "detail": {"note": "Calling her daughter now"}}]
    assert (
        world.scalar(
            "SELECT count(*) FROM alert_outbox WHERE alert_id = %s AND event = 'acknowledged'",
            alert_id,
        )
        == 1
    )
    use = world.execute("SELECT * FROM ack_link_uses WHERE link_id = %s", link_id)
    assert [(u["alert_id"], u["team_id"], u["outcome"]) for u in use] == [
        (alert_id, "carers-a", "acknowledged")
    ]
    actions = [r["action"] for r in world.audit_rows() if r["principal"] == f"link:{link_id}"]
    assert actions == ["ack_page.acknowledge"]

    for again in (http.get(path), http.post(path, data={"note": ""})):
        assert again.status_code == 410
        assert "This link has already been used" in again.text
        assert "It was used on " in again.text and "acknowledged" in again.text
        assert "<form" not in again.text
    assert (
        world.scalar(
            "SELECT count(*) FROM alert_events WHERE alert_id = %s AND event = 'acknowledged'",
            alert_id,
        )
        == 1
    )


def test_invalid_tampered_and_expired_links(
    world: World, api: ApiServer, http: httpx.Client
) -> None:
    alert_id = world.care_alert("r-a1")
    path, _ = link(api, alert_id)
    for bad in (tamper(path), "/ack/not-a-token", path[:30]):
        r = http.get(bad)
        assert r.status_code == 400 and "This link is not valid" in r.text, bad
        assert http.post(bad, data={"note": "x"}).status_code == 400

    # Signed by someone else (another secret): invalid, not expired.
    other = Settings(link_secret=SecretStr("not-the-servers-secret"), public_url=api.url)
    foreign = ack_url(other, AckLink(alert_id, "carers-a", "msg_x"))
    assert http.get(foreign.removeprefix(api.url)).status_code == 400

    # Signed long ago: expired (the TTL is checked against the signing time).
    long_ago = int(time.time()) - api.settings().link_ttl_s - 60
    with mock.patch.object(TimestampSigner, "get_timestamp", return_value=long_ago):
        old, _ = link(api, alert_id)
    for r in (http.get(old), http.post(old, data={"note": ""})):
        assert r.status_code == 410 and "This link has expired" in r.text
    assert world.scalar("SELECT state FROM alerts WHERE alert_id = %s", alert_id) == "open"


def test_link_only_works_while_the_team_sees_the_alert(
    world: World, api: ApiServer, http: httpx.Client
) -> None:
    alert_id = world.care_alert("r-a1")
    # A link naming carers-b for carers-a's resident (routes changed, or a forged team).
    path, _ = link(api, alert_id, team="carers-b")
    for r in (http.get(path), http.post(path, data={"note": ""})):
        assert r.status_code == 404 and "This link is not valid" in r.text
    assert world.scalar("SELECT state FROM alerts WHERE alert_id = %s", alert_id) == "open"


def test_already_acknowledged_by_someone_else(
    world: World, api: ApiServer, http: httpx.Client, keys: dict[str, str]
) -> None:
    alert_id = world.care_alert("r-a1")
    path, link_id = link(api, alert_id)
    r = http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=bearer(keys["carers-a"]))
    assert r.status_code == 200

    page = http.get(path)
    assert page.status_code == 200
    assert "Already acknowledged" in page.text
    assert "North telecare team (through the alerts API) acknowledged this alert on" in page.text
    assert "<form" not in page.text
    posted = http.post(path, data={"note": "me too"})
    assert posted.status_code == 409 and "Already acknowledged" in posted.text
    assert world.execute("SELECT * FROM ack_link_uses WHERE link_id = %s", link_id) == []


def test_resolved_alert(
    world: World, api: ApiServer, http: httpx.Client, keys: dict[str, str]
) -> None:
    alert_id = world.care_alert("r-a2")
    path, _ = link(api, alert_id)
    r = http.post(
        f"/v1/alerts/{alert_id}/resolve",
        headers=bearer(keys["carers-a"]),
        json={"note": "false alarm"},
    )
    assert r.status_code == 200
    page = http.get(path)
    assert page.status_code == 200 and "This alert is resolved" in page.text
    assert "<form" not in page.text
    posted = http.post(path, data={"note": ""})
    assert posted.status_code == 409 and "It can no longer be acknowledged" in posted.text


def test_overlong_note_is_explained_and_nothing_happens(
    world: World, api: ApiServer, http: httpx.Client
) -> None:
    alert_id = world.care_alert("r-a1")
    path, link_id = link(api, alert_id)
    r = http.post(path, data={"note": "x" * 2001})
    assert r.status_code == 400
    assert "<title>Error: " in r.text
    assert "The note must be 2,000 characters or fewer (it has 2,001)." in r.text
    assert 'aria-invalid="true"' in r.text and 'aria-describedby="note-hint note-error"' in r.text
    assert world.scalar("SELECT state FROM alerts WHERE alert_id = %s", alert_id) == "open"
    assert world.execute("SELECT * FROM ack_link_uses WHERE link_id = %s", link_id) == []
    refused = [r for r in world.audit_rows() if r["principal"] == f"link:{link_id}"]
    assert [r["detail"]["outcome"] for r in refused] == ["note refused"]  # it showed the alert
    # The carer shortens it and tries again with the same link.
    assert http.post(path, data={"note": "x" * 2000}).status_code == 200


def test_street_alert_page_is_not_care_data(
    world: World, api: ApiServer, http: httpx.Client
) -> None:
    alert_id = world.alert(site="high-st")
    path, _ = link(api, alert_id, team="ops-a")
    mark = world.last_audit_id()
    r = http.get(path)
    assert r.status_code == 200 and "Threshold</dt><dd>80" in r.text
    assert "Value</dt><dd>91" in r.text
    assert world.audit_rows(mark) == []
