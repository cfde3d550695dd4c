"""/v1/devices over real HTTP: visibility by routes, silent or ok, open alert counts, audit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import World, ago, bearer


@pytest.fixture(scope="module", autouse=True)
def heard(world: World) -> None:
    """bin-1 heard just now; bin-2 an hour ago (> 3 x 10 min: silent); flood-1 days ago but
    with no expected interval (ok); home-a1 two minutes ago; home-b1 never (silent)."""
    for device, when in (
        ("bin-1", ago(seconds=5)),
        ("bin-2", ago(hours=1)),
        ("flood-1", ago(days=10)),
        ("home-a1", ago(minutes=2)),
    ):
        world.execute(
            "UPDATE devices SET last_seen = %s, last_reading_at = %s, first_seen = %s"
            " WHERE device_id = %s",
            when,
            when,
            ago(days=30),
            device,
        )
    world.alert(subject=("device", "bin-2"), site="market")
    resolved = world.alert(subject=("device", "bin-1"), site="high-st", rule_id="fill")
    world.execute("UPDATE alerts SET state = 'resolved' WHERE alert_id = %s", resolved)


def listing(http: httpx.Client, token: str, **params: Any) -> dict[str, dict[str, Any]]:
    r = http.get("/v1/devices", headers=bearer(token), params=params)
    assert r.status_code == 200, r.text
    return {d["device_id"]: d for d in r.json()["devices"]}


def test_operations_see_street_devices_with_status(
    http: httpx.Client, keys: dict[str, str]
) -> None:
    devices = listing(http, keys["ops-a"])
    assert set(devices) == {"bin-1", "bin-2", "flood-1"}
    assert {d: v["status"] for d, v in devices.items()} == {
        "bin-1": "ok",
        "bin-2": "silent",
        "flood-1": "ok",
    }
    assert devices["bin-2"]["open_alerts"] == 1
    assert devices["bin-1"]["open_alerts"] == 0  # its alert is resolved
    assert devices["bin-1"]["last_seen"] is not None and devices["bin-1"]["ward"] == "north"


def test_filters_and_paging(http: httpx.Client, keys: dict[str, str]) -> None:
    token = keys["ops-a"]
    assert set(listing(http, token, status="silent")) == {"bin-2"}
    assert set(listing(http, token, kind="flood_level")) == {"flood-1"}
    assert set(listing(http, token, ward="north")) == {"bin-1", "flood-1"}
    assert set(listing(http, token, site="market")) == {"bin-2"}

    first = http.get("/v1/devices", headers=bearer(token), params={"limit": 2}).json()
    assert [d["device_id"] for d in first["devices"]] == ["bin-1", "bin-2"]
    assert first["next_offset"] == 2
    rest = http.get("/v1/devices", headers=bearer(token), params={"limit": 2, "offset": 2}).json()
    assert [d["device_id"] for d in rest["devices"]] == ["flood-1"]
    assert rest["next_offset"] is None

    r = http.get("/v1/devices", headers=bearer(token), params={"status": "asleep"})
    assert r.status_code == 422 and r.json()["problems"][0]["location"] == "query.status"


def test_carers_see_only_their_residents_devices(http: httpx.Client, keys: dict[str, str]) -> None:
    assert set(listing(http, keys["carers-a"])) == {"home-a1"}
    b = listing(http, keys["carers-b"])
    assert set(b) == {"home-b1"} and b["home-b1"]["status"] == "silent"  # never heard
    assert set(listing(http, keys["carers-x"])) == {"home-x1"}

    r = http.get("/v1/devices/home-b1", headers=bearer(keys["carers-a"]))
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = http.get("/v1/devices/home-a1", headers=bearer(keys["carers-a"]))
    assert r.status_code == 200 and r.json()["resident_id"] == "r-a1"
    r = http.get("/v1/devices/bin-1", headers=bearer(keys["carers-a"]))
    assert r.status_code == 404
    r = http.get("/v1/devices/bad%20id", headers=bearer(keys["carers-a"]))
    assert r.status_code == 422


def test_device_reads_of_residents_are_audited(
    world: World, http: httpx.Client, keys: dict[str, str]
) -> None:
    mark = world.last_audit_id()
    listing(http, keys["ops-a"])
    assert http.get("/v1/devices/bin-1", headers=bearer(keys["ops-a"])).status_code == 200
    assert world.audit_rows(mark) == []

    listing(http, keys["carers-a"])
    assert http.get("/v1/devices/home-a1", headers=bearer(keys["carers-a"])).status_code == 200
    rows = world.audit_rows(mark)
    assert [(r["action"], r["resident_ids"], r["alert_ids"]) for r in rows] == [
        ("devices.list", ["r-a1"], []),
        ("devices.get", ["r-a1"], []),
    ]


def test_devices_scope(world: World, http: httpx.Client) -> None:
    alerts_only = world.key("ops-a", ["alerts:read"])
    r = http.get("/v1/devices", headers=bearer(alerts_only))
    assert r.status_code == 403 and "devices:read" in r.json()["detail"]
