"""The whole path with every service running for real: a reading raises an alert (ingest, rules
worker), the dispatcher delivers it to the team's receiver, and the team acknowledges it,
through the API or by the link in the delivered event in a real browser. Acknowledging stops
escalation, is audited, and is itself delivered."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from placewatch.kinds import Kind
from storage.registry import DeviceSpec
from teams.keys import new_key
from tests.notify.conftest import DeliveryRig, wait_until
from tests.rules.conftest import RulesRig
from tests.support.api_server import ApiServer, serve_api
from tests.support.broker import Broker
from tests.support.browser import chromium
from tests.support.receivers import ReferenceReceiver

RULES = """
rules:
  - id: river-high
    kind: threshold
    severity: warning
    field: level_m
    above: 1.0
    escalation: {after: 2s, severity: critical, repeat: 1s, max_renotify: 20}
"""


class Stack:
    def __init__(self, rules: RulesRig, delivery: DeliveryRig, api: ApiServer) -> None:
        self.rules, self.delivery, self.api = rules, delivery, api
        self.receiver: ReferenceReceiver = delivery.receiver()
        delivery.teams(
            f"""
            council: COUNCIL
            teams:
              - id: river-ops
                name: River operations
                routes: [{{kinds: [flood_level]}}]
                webhooks: [{{id: river-ops-hook, url: "{self.receiver.url}",
                             secret_env: RIG_SECRET}}]
            """
        )
        key = new_key()
        with psycopg.connect(rules.database_url) as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, team_id, secret_hash, scopes)"
                " VALUES (%s, 'river-ops', %s, %s)",
                (key.key_id, key.secret_hash, ["alerts:read", "alerts:write"]),
            )
        self.key = key
        self.headers = {"authorization": f"Bearer {key.token}"}
        rules.register([DeviceSpec("", "gauge-1", Kind.FLOOD_LEVEL, site="mill-lane")])
        rules.write_rules(RULES)
        rules.ingest()
        rules.worker()
        # The dispatcher's links point at this API and are signed with its secret.
        delivery.dispatcher(link_secret=api.link_secret, public_url=api.url)

    def raise_alert(self) -> int:
        now = datetime.now(UTC).isoformat()
        self.rules.publish([self.rules.reading("flood_level", "gauge-1", time=now, level_m=1.6)])
        wait_until(lambda: len(self.receiver.events()) >= 1, 30, "the opened event delivered")
        event = self.receiver.events()[0]["event"]
        assert event["type"] == "alert.opened"
        return int(event["alert"]["id"])

    def events(self, alert_id: int) -> list[str]:
        rows = self.rules.query(
            "SELECT event FROM alert_events WHERE alert_id = %s ORDER BY id", alert_id
        )
        return [r["event"] for r in rows]

    def received(self) -> list[str]:
        return [e["event"]["type"] for e in self.receiver.events()]


@pytest.fixture
def stack(fresh_database: str, broker: Broker, tmp_path: Path) -> Iterator[Stack]:
    tag = uuid.uuid4().hex[:8]
    rules = RulesRig(f"r{tag}", f"pwack/{tag}", broker, fresh_database, tmp_path)
    delivery = DeliveryRig(fresh_database, tmp_path, council=rules.council)
    with serve_api(fresh_database, tmp_path) as api:
        yield Stack(rules, delivery, api)
        for proc in rules.procs + delivery.procs:
            if proc.alive():
                proc.kill()
        for r in delivery.receivers:
            r.stop()


def test_acknowledged_through_the_api_stops_escalation(stack: Stack) -> None:
    alert_id = stack.raise_alert()
    wait_until(lambda: "escalated" in stack.events(alert_id), 20, "escalated once unacknowledged")
    r = httpx.post(
        f"{stack.api.url}/v1/alerts/{alert_id}/acknowledge",
        json={"note": "crew on the way"},
        headers=stack.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "acknowledged"
    events_at_ack = stack.events(alert_id)
    assert events_at_ack[-1] == "acknowledged"
    # Re-notification every second would go on for 20; it stops at the acknowledgement.
    time.sleep(4)
    assert stack.events(alert_id) == events_at_ack
    row = stack.rules.query(
        "SELECT actor, detail FROM alert_events WHERE alert_id = %s AND event = 'acknowledged'",
        alert_id,
    )[0]
    assert row["actor"] == f"team:river-ops/key:{stack.key.key_id}"
    assert row["detail"] == {"note": "crew on the way"}
    # ... and the team's receiver is told, after everything that came before, in order.
    wait_until(
        lambda: stack.received()[-1:] == ["alert.acknowledged"], 20, "acknowledgement delivered"
    )
    got = stack.received()
    assert got[0] == "alert.opened" and "alert.escalated" in got
    assert len(got) == len(events_at_ack)
    seq = [e["event"]["sequence"] for e in stack.receiver.events()]
    assert seq == sorted(seq)


def test_acknowledged_in_a_browser_from_the_delivered_link(stack: Stack) -> None:
    alert_id = stack.raise_alert()
    link = stack.receiver.events()[0]["event"]["links"]["acknowledge"]
    assert link.startswith(f"{stack.api.url}/ack/")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 390, "height": 844}, java_script_enabled=False)
        page.goto(link)
        assert "level_m" in page.content() or "1.6" in page.content()
        page.get_by_label("Note").fill("Checked the gauge, crew on the way")
        page.get_by_role("button", name="Acknowledge").click()
        page.wait_for_load_state()
        assert "acknowledged" in page.content().lower()
    r = httpx.get(f"{stack.api.url}/v1/alerts/{alert_id}", headers=stack.headers)
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    wait_until(
        lambda: "alert.acknowledged" in stack.received(), 20, "the acknowledgement delivered"
    )
    actor = stack.rules.scalar(
        "SELECT actor FROM alert_events WHERE alert_id = %s AND event = 'acknowledged'", alert_id
    )
    assert actor.startswith("team:river-ops/link:msg_")
