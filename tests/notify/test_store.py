"""The dispatcher's database steps without processes: fan-out, claims under several replicas,
withdrawal when routes change, redelivery; and an attempt at an unusable URL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from notify.fanout import fan_out
from notify.sender import client_for, send
from notify.store import WITHDRAWN, Delivery, Endpoint, claim, redeliver, withdraw_unrouted
from notify.targets import TargetPolicy
from placewatch.settings import Settings
from tests.notify.conftest import LINK_SECRET, DeliveryRig, one_team

LEASE = timedelta(seconds=30)


def settings(rig: DeliveryRig) -> Settings:
    return Settings(database_url=rig.database_url, link_secret=SecretStr(LINK_SECRET))


def run(rig: DeliveryRig, step: Any) -> Any:
    async def go() -> Any:
        async with await psycopg.AsyncConnection.connect(rig.database_url, autocommit=True) as c:
            return await step(c)

    return asyncio.run(go())


def test_an_event_waits_for_an_earlier_one_still_being_fanned_out(rig: DeliveryRig) -> None:
    one_team(rig, "http://127.0.0.1:9/hooks")
    alert = rig.open_alert()
    rig.acknowledge(alert)  # outbox: opened, then acknowledged
    with psycopg.connect(rig.database_url) as other:
        # Another replica's fan-out holds the "opened" row, not yet committed.
        other.execute("SELECT id FROM alert_outbox ORDER BY id LIMIT 1 FOR UPDATE")
        done = run(rig, lambda c: fan_out(c, settings(rig)))
        assert (done.events, done.deliveries) == (1, 1)  # "acknowledged" only
        assert run(rig, lambda c: claim(c, {"hook0": (4, 4)}, LEASE)) == []
    run(rig, lambda c: fan_out(c, settings(rig)))
    first: list[Delivery] = run(rig, lambda c: claim(c, {"hook0": (4, 4)}, LEASE))
    assert [d.event for d in first] == ["opened"]  # and "acknowledged" waits for it


def test_in_flight_across_replicas_is_capped(rig: DeliveryRig) -> None:
    one_team(rig, "http://127.0.0.1:9/hooks")
    for i in range(10):
        rig.open_alert(f"r{i}")
    run(rig, lambda c: fan_out(c, settings(rig)))
    a = run(rig, lambda c: claim(c, {"hook0": (4, 4)}, LEASE))
    b = run(rig, lambda c: claim(c, {"hook0": (4, 4)}, LEASE))  # a second replica
    assert (len(a), len(b)) == (4, 0)
    probe = run(rig, lambda c: claim(c, {"hook0": (1, 5)}, LEASE))
    assert len(probe) == 1  # up to the cap, never above this process's own slots


def test_deliveries_are_withdrawn_when_the_team_no_longer_sees_the_alert(
    rig: DeliveryRig,
) -> None:
    def carers(members: str) -> None:
        rig.teams(
            f"""
            council: COUNCIL
            resident_groups: {{north: [{members}]}}
            teams:
              - id: north
                name: North carers
                routes: [{{residents: north}}]
                webhooks: [{{id: north-hook, url: "http://127.0.0.1:9/", secret_env: RIG_SECRET}}]
            """
        )

    carers("res-1, res-2")
    rig.open_alert("inactivity", resident="res-1", kind="home_activity", site=None)
    run(rig, lambda c: fan_out(c, settings(rig)))
    carers("res-2")  # res-1 has moved to another team's caseload
    assert run(rig, lambda c: claim(c, {"north-hook": (4, 4)}, LEASE)) == []
    assert run(rig, withdraw_unrouted) == 1
    (d,) = rig.deliveries()
    assert (d["state"], d["last_error"]) == ("dead", WITHDRAWN)
    give_up = timedelta(hours=1)
    assert run(rig, lambda c: redeliver(c, give_up, endpoint_id="north-hook")) == 0
    carers("res-1, res-2")  # moved back: redelivery may send it again
    assert run(rig, lambda c: redeliver(c, give_up, endpoint_id="north-hook")) == 1


@pytest.mark.parametrize(
    ("url", "secret", "error"),
    [
        ("http://a:b/", "whsec_" + "A" * 43 + "=", "InvalidURL"),
        ("http://127.0.0.1:9/", "not-a-secret", "ValueError"),
    ],
)
def test_an_attempt_that_cannot_be_made_is_a_failed_attempt(
    url: str, secret: str, error: str
) -> None:
    endpoint = Endpoint("e", "t", url, secret, 1, 0, None)
    now = datetime.now(UTC)
    delivery = Delivery(1, "msg_1", "e", 1, "opened", "{}", 1, now, now)

    async def go() -> Any:
        async with client_for(endpoint, 2.0, TargetPolicy.local()) as client:
            return await send(client, endpoint, delivery, 2.0, TargetPolicy.local())

    attempt = asyncio.run(go())
    assert attempt.status is None and not attempt.ok
    assert attempt.error is not None and attempt.error.startswith(error)
