"""Delivery end to end: outbox -> dispatcher -> the reference receiver, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.notify.conftest import DeliveryRig, one_team, wait_until
from tests.support.receivers import ReferenceReceiver

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "schemas" / "alert-event.v1.json").read_text()
)


def test_signed_event_verified_by_reference_receiver(rig: DeliveryRig) -> None:
    receiver = rig.receiver()
    one_team(rig, receiver)
    rig.dispatcher()
    alert_id = rig.open_alert()
    wait_until(lambda: len(receiver.events()) == 1, 20, "the event reached the receiver")

    (got,) = receiver.events()
    event = got["event"]
    jsonschema.validate(event, SCHEMA)
    assert event["type"] == "alert.opened"
    assert event["alert"]["id"] == alert_id
    assert event["alert"]["summary"] == "fill 91 % above 80 %"
    assert event["links"]["acknowledge"].startswith("http://127.0.0.1:9/ack/")
    (delivery,) = rig.deliveries()
    assert delivery["webhook_id"] == got["webhook_id"]
    assert delivery["state"] == "delivered" and delivery["attempts"] == 1
    assert rig.scalar("SELECT count(*) FROM alert_outbox") == 0

    # Acknowledged: the next event follows, in order, without an acknowledge link.
    rig.acknowledge(alert_id)
    wait_until(lambda: len(receiver.events()) == 2, 20, "the acknowledgement event arrived")
    second = receiver.events()[1]["event"]
    jsonschema.validate(second, SCHEMA)
    assert second["type"] == "alert.acknowledged"
    assert second["sequence"] > event["sequence"]
    assert second["links"]["acknowledge"] is None
    assert second["alert"]["acknowledged_by"] == "test"


def test_wrong_secret_is_refused_and_retried_not_lost(rig: DeliveryRig) -> None:
    receiver = rig.receiver()
    one_team(rig, receiver)
    rig.query("UPDATE webhook_endpoints SET secret = %s RETURNING 1", "whsec_" + "A" * 43 + "=")
    rig.dispatcher()
    rig.open_alert()
    wait_until(
        lambda: (rig.scalar("SELECT max(attempts) FROM webhook_deliveries") or 0) >= 2,
        20,
        "retries after the receiver refused the signature",
    )
    assert receiver.events() == []
    errors = {r["error"] for r in rig.query("SELECT error FROM webhook_attempts")}
    assert errors == {"HTTP 401: signature not verified: No matching signature found"}
    # The right secret: the same delivery (same webhook-id) goes through.
    rig.query("UPDATE webhook_endpoints SET secret = %s RETURNING 1", rig.secret)
    wait_until(lambda: len(receiver.events()) == 1, 20, "delivered once the secret is right")
    assert receiver.events()[0]["webhook_id"] == rig.deliveries()[0]["webhook_id"]


def test_routes_send_each_team_only_its_alerts(rig: DeliveryRig) -> None:
    north, south, ops = rig.receiver(), rig.receiver(), rig.receiver()
    rig.teams(
        f"""
        council: COUNCIL
        resident_groups:
          north: [res-1, res-2]
          south: [res-3]
        teams:
          - id: north-carers
            name: North carers
            routes: [{{residents: north}}]
            webhooks: [{{id: north-hook, url: "{north.url}", secret_env: RIG_SECRET}}]
          - id: south-carers
            name: South carers
            routes: [{{residents: south, min_severity: critical}}]
            webhooks: [{{id: south-hook, url: "{south.url}", secret_env: RIG_SECRET}}]
          - id: ops
            name: Street operations
            routes: [{{kinds: [bin_fill, flood_level], min_severity: warning}}]
            webhooks: [{{id: ops-hook, url: "{ops.url}", secret_env: RIG_SECRET}}]
        """
    )
    rig.dispatcher()

    def home(rule: str, resident: str, severity: str = "warning") -> int:
        return rig.open_alert(
            rule, resident=resident, kind="home_activity", site=None, severity=severity
        )

    a_north = home("inactivity", "res-2")
    a_south_warn = home("inactivity", "res-3")
    a_south_crit = home("fall", "res-3", "critical")
    a_nobody = home("inactivity", "res-9")
    a_bin = rig.open_alert("bin-full")
    a_info = rig.open_alert("bin-info", severity="info")
    a_flood = rig.open_alert("river", kind="flood_level", severity="critical")
    wait_until(
        lambda: (
            rig.scalar("SELECT count(*) FROM alert_outbox") == 0
            and rig.scalar("SELECT count(*) FROM webhook_deliveries WHERE state <> 'delivered'")
            == 0
        ),
        20,
        "every event fanned out and delivered",
    )

    def got(r: ReferenceReceiver) -> set[int]:
        return {e["event"]["alert"]["id"] for e in r.events()}

    assert got(north) == {a_north}
    assert got(south) == {a_south_crit}  # its route wants critical only
    assert got(ops) == {a_bin, a_flood}  # no resident's alert, nothing below warning
    assert a_nobody not in got(north) | got(south) | got(ops)
    assert a_south_warn not in got(south) and a_info not in got(ops)
    assert rig.dispatcher_metric("placewatch_notify_events_unrouted_total") == 3
