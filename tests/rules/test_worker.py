"""The rules worker against real ingest, broker and database: alerts raised once, cleared once,
audited, written to the outbox, and the same as the backtest says."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from placewatch.kinds import Kind
from storage.registry import DeviceSpec
from tests.rules.conftest import RulesRig
from tests.support.traffic import wait_until

FLOOD_RULES = """
rules:
  - id: river-high
    kind: threshold
    severity: critical
    select: {kind: flood_level}
    field: level_m
    above: {property: alert_level_m}
    clear: 0.9
    clear_for: 5m
"""


def _gauge(device_id: str, **props: float) -> DeviceSpec:
    return DeviceSpec("", device_id, Kind.FLOOD_LEVEL, site="river", properties=dict(props))


def test_hovering_level_raises_one_alert_and_clears_once(rig: RulesRig) -> None:
    rig.register([_gauge("gauge-1", alert_level_m=1.0)])
    rig.write_rules(FLOOD_RULES)
    rig.ingest()
    rig.worker()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    levels = [0.5] * 30 + [0.95, 1.02, 0.97, 1.05, 0.93, 1.08, 0.99, 1.01] * 5 + [0.6] * 20
    rig.publish(
        rig.reading(
            "flood_level", "gauge-1", time=(start + timedelta(minutes=i)).isoformat(), level_m=v
        )
        for i, v in enumerate(levels)
    )
    wait_until(
        lambda: rig.scalar("SELECT count(*) FROM alerts WHERE state = 'resolved'") == 1,
        30,
        "the alert to open and clear",
    )
    alerts = rig.alerts()
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    first_above = start + timedelta(minutes=31)  # 1.02 after 0.95
    assert alert["opened_at"] == first_above
    # Cleared after five minutes at 0.6 (the first 0.6 is at minute 70).
    assert alert["resolved_at"] == start + timedelta(minutes=75)
    assert alert["observed"]["threshold"] == 1.0
    assert "above 1 m" in alert["summary"]
    assert alert["site"] == "river" and alert["sensor_kind"] == "flood_level"
    events = rig.query("SELECT event, actor FROM alert_events ORDER BY id")
    assert [e["event"] for e in events] == ["opened", "resolved"]
    assert all(e["actor"].startswith("rules:") for e in events)
    outbox = rig.query("SELECT event, payload FROM alert_outbox ORDER BY id")
    assert [o["event"] for o in outbox] == ["opened", "resolved"]
    assert outbox[0]["payload"]["schema"] == "placewatch.alert-event/1"
    assert outbox[1]["payload"]["alert"]["state"] == "resolved"
    # Every reading was evaluated: the inbox is empty.
    assert rig.scalar("SELECT count(*) FROM rule_inbox") == 0
    fired = rig.backtest(start - timedelta(hours=1), datetime.now(UTC))
    assert [(f.rule_id, f.subject_id, f.opened_at, f.resolved_at) for f in fired] == [
        ("river-high", "gauge-1", alert["opened_at"], alert["resolved_at"])
    ]


BURST_RULES = """
rules:
  - id: level-high
    kind: threshold
    select: {kind: flood_level}
    field: level_m
    above: 1.0
    for: 5m
    clear: 0.8
    clear_for: 5m
  - id: level-rising
    kind: rate_of_change
    select: {kind: flood_level}
    field: level_m
    rise_per_hour: 0.6
    window: 20m
  - id: battery
    kind: low_battery
    below: 20
    clear_above: 30
"""


def _burst(rig: RulesRig, devices: int, per_device: int, seed: int) -> list[tuple[str, bytes]]:
    """Readings a minute apart per gauge, in the past, with excursions above 1 m and a draining
    battery, published round-robin across gauges the way a fleet reports."""
    import math
    import random

    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=per_device + 10)
    shapes = [(rng.uniform(60, 150), rng.uniform(0, 2 * math.pi)) for _ in range(devices)]
    messages = []
    for i in range(per_device):
        for d, (period, phase) in enumerate(shapes):
            level = 0.5 + 0.65 * max(0.0, math.sin(2 * math.pi * i / period + phase))
            level += rng.gauss(0, 0.03)
            battery = max(0.0, 40 - 35 * i / per_device + rng.gauss(0, 0.5))
            at = start + timedelta(minutes=i, seconds=d % 60)
            messages.append(
                rig.reading(
                    "flood_level",
                    f"g{d:03d}",
                    time=at.isoformat(),
                    level_m=round(level, 3),
                    battery_pct=round(battery, 1),
                )
            )
    return messages


def _signature(rows: list[tuple[str, str, datetime, datetime | None]]) -> list[tuple[object, ...]]:
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


@pytest.mark.slow
@pytest.mark.parametrize("kill", [False, True], ids=["steady", "sigkill"])
def test_two_workers_on_a_50k_burst_match_the_backtest(
    rig: RulesRig, kill: bool, request: pytest.FixtureRequest
) -> None:
    devices, per_device = 100, 500
    rig.register(_gauge(f"g{d:03d}") for d in range(devices))
    rig.write_rules(BURST_RULES)
    rig.ingest()
    # Small claims, so that both workers take part with only 100 devices.
    workers = [rig.worker("w0", rules_batch="10"), rig.worker("w1", rules_batch="10")]
    messages = _burst(rig, devices, per_device, seed=7)
    assert len(messages) == 50_000
    kills = 0
    if kill:
        import threading

        publisher = threading.Thread(target=rig.publish, args=(messages,))
        publisher.start()
        # SIGKILL a worker three times while the burst is being stored and evaluated, and
        # restart it.
        for stored in (12_000, 25_000, 38_000):

            def reached(n: int = stored) -> bool:
                return bool(rig.scalar("SELECT count(*) FROM flood_level") >= n)

            wait_until(reached, 60, f"{stored} readings stored")
            workers[0].kill()
            kills += 1
            workers[0].start()
        publisher.join()
    else:
        rig.publish(messages)

    def settled() -> bool:
        stored = rig.scalar("SELECT count(*) FROM flood_level")
        return bool(stored == 50_000 and rig.scalar("SELECT count(*) FROM rule_inbox") == 0)

    wait_until(settled, 180, "all readings stored and evaluated")
    live = _signature(
        [(a["rule_id"], a["subject_id"], a["opened_at"], a["resolved_at"]) for a in rig.alerts()]
    )
    start = datetime.now(UTC) - timedelta(days=1)
    expected = _signature(
        [
            (f.rule_id, f.subject_id, f.opened_at, f.resolved_at)
            for f in rig.backtest(start, datetime.now(UTC))
        ]
    )
    by_rule = {
        r: sum(1 for e in expected if e[0] == r) for r in ("level-high", "level-rising", "battery")
    }
    print(f"kills={kills} alerts={len(live)} expected={len(expected)} by rule={by_rule}")
    assert all(n > 50 for n in by_rule.values()), by_rule  # the burst exercises every rule
    assert live == expected
    # One opened event per alert, one resolved per resolved alert: nothing raised twice.
    events = rig.query("SELECT event, count(*) AS n FROM alert_events GROUP BY event")
    counts = {e["event"]: e["n"] for e in events}
    assert counts.get("opened") == len(live)
    assert counts.get("resolved", 0) == sum(1 for a in live if a[3] is not None)
    assert rig.scalar("SELECT count(*) FROM alert_outbox") == sum(counts.values())
    both = rig.query("SELECT count(DISTINCT actor) AS n FROM alert_events")[0]["n"]
    assert both >= 2, "both workers took part"
    for w in workers:
        assert w.alive()


def test_late_readings_within_the_allowed_lateness_are_evaluated_by_event_time(
    rig: RulesRig,
) -> None:
    rig.register(
        [
            DeviceSpec("", "gauge-a", Kind.FLOOD_LEVEL, tags=("river-wandle",)),
            DeviceSpec("", "gauge-b", Kind.FLOOD_LEVEL),
        ]
    )
    rig.write_rules(
        """
        rules:
          - id: wandle-high
            kind: threshold
            select: {tag: river-wandle}
            field: level_m
            above: 1.0
            clear: 0.8
            clear_for: 0s
        """
    )
    rig.ingest()
    worker = rig.worker(rules_allowed_lateness_s="600")
    now = datetime.now(UTC).replace(microsecond=0)
    rig.publish(
        rig.reading(
            "flood_level",
            dev,
            time=(now - timedelta(minutes=30 - i)).isoformat(),
            level_m=0.5 if dev == "gauge-a" else 1.5,
        )
        for i in range(31)
        for dev in ("gauge-a", "gauge-b")
    )
    wait_until(
        lambda: (
            rig.scalar("SELECT evaluated_until FROM rule_state WHERE subject_id = 'gauge-a'") == now
        ),
        20,
        "the in-order readings to be evaluated",
    )
    late = now - timedelta(minutes=5, seconds=-30)  # 5 min behind, within 10 min
    too_late = now - timedelta(minutes=20, seconds=-30)  # 20 min behind
    rig.publish([rig.reading("flood_level", "gauge-a", time=late.isoformat(), level_m=1.5)])
    wait_until(
        lambda: rig.scalar("SELECT count(*) FROM alerts WHERE state = 'resolved'") == 1,
        20,
        "the late reading's alert",
    )
    rig.publish([rig.reading("flood_level", "gauge-a", time=too_late.isoformat(), level_m=1.5)])
    wait_until(lambda: worker.metric("placewatch_rules_too_late_total") >= 1, 20, "too late")
    alerts = rig.alerts()
    assert [(a["subject_id"], a["opened_at"], a["resolved_at"]) for a in alerts] == [
        ("gauge-a", late, late + timedelta(seconds=30))  # cleared by the next stored reading
    ]
    # gauge-b is above 1 m all along but not tagged: never selected.
    # The backtest steps through every stored reading, so it also shows the reading that came
    # too late for the live rules.
    out = subprocess.run(
        [sys.executable, "-m", "placewatch", "rules", "backtest", "--from", "1h", "--json"],
        env=worker.env(),  # the worker's rule files
        capture_output=True,
        text=True,
        check=True,
    )
    fired = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(f["subject"]["id"], f["opened_at"]) for f in fired] == [
        ("gauge-a", too_late.isoformat()),
        ("gauge-a", late.isoformat()),
    ]
    assert worker.metric("placewatch_rules_alerts_opened_total") == 1
