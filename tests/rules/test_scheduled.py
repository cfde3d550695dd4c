"""Timer-driven rules against the real pipeline: silence (precise, surviving restarts, per
device and per home), escalation of unacknowledged alerts, air-quality objectives, and rule
files reloaded on SIGHUP."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg

from placewatch.kinds import Kind
from storage.registry import DeviceSpec
from tests.rules.conftest import RulesRig
from tests.support.traffic import wait_until


def _now() -> str:
    return datetime.now(UTC).isoformat()


def test_silence_detected_within_5_percent_and_survives_a_restart(rig: RulesRig) -> None:
    rig.register(
        [DeviceSpec("", f"aq-{i}", Kind.AIR_QUALITY, expected_interval_s=10) for i in range(3)]
        + [
            DeviceSpec(
                "",
                f"home-{r}-{s}",
                Kind.HOME_ACTIVITY,
                resident_id=f"res-{r}",
                expected_interval_s=10,
            )
            for r in ("a", "b")
            for s in ("pir", "door")
        ]
    )
    rig.write_rules(
        """
        rules:
          - id: silent
            kind: silence
            select: {kind: air_quality}
            factor: 2
          - id: hub-offline
            kind: silence
            select: {kind: home_activity}
            per: resident
            factor: 2
        """
    )
    rig.ingest()
    worker = rig.worker(rules_silence_grace_s="0")
    # Everyone reports once; then only aq-0 and resident a's door sensor keep reporting.
    rig.publish(rig.reading("air_quality", f"aq-{i}", time=_now(), no2_ugm3=20) for i in range(3))
    rig.publish(
        rig.reading("home_activity", f"home-{r}-{s}", time=_now(), sensor="motion", motion_count=1)
        for r in ("a", "b")
        for s in ("pir", "door")
    )
    deadline = time.monotonic() + 26
    while time.monotonic() < deadline:
        rig.publish(
            [
                rig.reading("air_quality", "aq-0", time=_now(), no2_ugm3=20),
                rig.reading(
                    "home_activity", "home-a-door", time=_now(), sensor="door", door_open=False
                ),
            ]
        )
        time.sleep(2)
    rows = rig.query(
        """SELECT a.rule_id, a.subject_type, a.subject_id,
                  extract(epoch FROM a.created_at - a.opened_at) AS error_s,
                  a.observed
           FROM alerts a ORDER BY a.subject_id"""
    )
    got = {(r["rule_id"], r["subject_type"], r["subject_id"]) for r in rows}
    assert got == {
        ("silent", "device", "aq-1"),
        ("silent", "device", "aq-2"),
        ("hub-offline", "resident", "res-b"),
    }
    for r in rows:
        # opened_at is the deadline (last heard + 20 s): the error is how late we noticed.
        assert r["observed"]["limit_s"] == 20
        print(f"{r['subject_id']}: detected {float(r['error_s']):.3f} s after the deadline")
        assert 0 <= float(r["error_s"]) < 0.05 * 20
    # Killed and restarted: the alerts stay single, and clear when the device is heard again.
    worker.kill()
    worker.start()
    rig.publish([rig.reading("air_quality", "aq-1", time=_now(), no2_ugm3=20)])
    wait_until(
        lambda: rig.scalar("SELECT state FROM alerts WHERE subject_id = 'aq-1'") == "resolved",
        15,
        "aq-1's silence alert to clear",
    )
    time.sleep(2)
    assert rig.scalar("SELECT count(*) FROM alerts") == 3
    assert rig.scalar("SELECT count(*) FROM alerts WHERE state <> 'resolved'") == 2
    # The backtest finds the same silences from the stored receive times.
    live = sorted(
        (a["rule_id"], a["subject_id"], a["opened_at"], a["resolved_at"]) for a in rig.alerts()
    )
    past = rig.backtest(datetime.now(UTC) - timedelta(minutes=10), datetime.now(UTC))
    assert sorted((f.rule_id, f.subject_id, f.opened_at, f.resolved_at) for f in past) == live
    # A device taken out of the registry is no longer watched: its alert does not stay open.
    with psycopg.connect(rig.database_url) as conn:
        conn.execute("DELETE FROM devices WHERE device_id = 'aq-2'")
    wait_until(
        lambda: rig.scalar("SELECT state FROM alerts WHERE subject_id = 'aq-2'") == "resolved",
        15,
        "aq-2's alert to be resolved",
    )
    assert "no longer watched" in rig.scalar(
        "SELECT resolution->>'summary' FROM alerts WHERE subject_id = 'aq-2'"
    )


def test_silence_is_held_back_while_ingest_is_down(rig: RulesRig) -> None:
    """A stalled pipeline makes every device look silent: no alert storm, and the devices that
    are really silent are still found once ingest is back."""
    rig.register([DeviceSpec("", f"aq-{i}", Kind.AIR_QUALITY) for i in range(2)])
    rig.write_rules(
        """
        rules:
          - id: silent
            kind: silence
            after: 20s
        """
    )
    ingest = rig.ingest()
    worker = rig.worker(rules_silence_grace_s="3")
    rig.publish(rig.reading("air_quality", f"aq-{i}", time=_now(), no2_ugm3=20) for i in range(2))
    wait_until(lambda: rig.scalar("SELECT count(last_seen) FROM devices") == 2, 10, "storage")
    heard = time.monotonic()
    ingest.kill()
    time.sleep(max(0.0, heard + 25 - time.monotonic()))  # past both deadlines
    assert rig.scalar("SELECT count(*) FROM alerts") == 0
    assert worker.metric("placewatch_rules_silence_held") == 1
    ingest.start()
    rig.publish([rig.reading("air_quality", "aq-0", time=_now(), no2_ugm3=20)])
    wait_until(lambda: rig.scalar("SELECT count(*) FROM alerts") == 1, 20, "aq-1's alert")
    alert = rig.alerts()[0]
    assert alert["subject_id"] == "aq-1"
    # Dated at its deadline, when it really went silent, though found only after recovery.
    last_seen = rig.scalar("SELECT last_seen FROM devices WHERE device_id = 'aq-1'")
    assert alert["opened_at"] == last_seen + timedelta(seconds=20)
    assert worker.metric("placewatch_rules_silence_held") == 0


def test_unacknowledged_alert_escalates_then_stops_once_acknowledged(rig: RulesRig) -> None:
    rig.register([DeviceSpec("", "gauge-1", Kind.FLOOD_LEVEL)])
    rig.write_rules(
        """
        rules:
          - id: river-high
            kind: threshold
            severity: warning
            field: level_m
            above: 1.0
            escalation: {after: 2s, severity: critical, repeat: 2s, max_renotify: 1}
        """
    )
    rig.ingest()
    rig.worker()
    rig.publish([rig.reading("flood_level", "gauge-1", time=_now(), level_m=1.4)])
    wait_until(lambda: rig.scalar("SELECT count(*) FROM alert_events") >= 3, 20, "escalation")
    time.sleep(3)  # max_renotify 1: nothing after the one re-notification
    events = [e["event"] for e in rig.query("SELECT event FROM alert_events ORDER BY id")]
    assert events == ["opened", "escalated", "renotified"]
    alert = rig.alerts()[0]
    assert alert["severity"] == "critical" and alert["escalations"] == 2
    # Acknowledge through the CLI, as an operator would.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "placewatch",
            "alerts",
            "ack",
            str(alert["alert_id"]),
            "--by",
            "duty-officer",
            "--note",
            "on my way",
        ],
        env={**rig.procs[0].env()},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "done" in out.stdout
    outbox = [o["event"] for o in rig.query("SELECT event FROM alert_outbox ORDER BY id")]
    assert outbox == ["opened", "escalated", "renotified", "acknowledged"]
    assert rig.alerts()[0]["acknowledged_by"] == "cli:duty-officer"


def test_no2_objective_breached_on_the_19th_exceedance(rig: RulesRig) -> None:
    rig.register([DeviceSpec("", "aq-1", Kind.AIR_QUALITY)])
    rig.write_rules(
        """
        rules:
          - id: no2-objective
            kind: aqs_objective
            pollutant: no2
            every: 10s
        """
    )
    rig.ingest(ingest_max_age_days="0")
    # 19 clock hours with an hourly mean above 200 µg/m³ (four readings each), within this
    # year, among hours well below.
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=60)
    if base.year != datetime.now(UTC).year:
        base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    messages = []
    for h in range(40):
        high = h % 2 == 0 and h < 38  # hours 0, 2, …, 36: 19 of them
        for q in range(4):
            value = 180 + 50 * high + (q - 1.5) * 4  # mean 230 or 180
            at = base + timedelta(hours=h, minutes=15 * q)
            messages.append(rig.reading("air_quality", "aq-1", time=at.isoformat(), no2_ugm3=value))
    rig.publish(messages)
    wait_until(lambda: rig.scalar("SELECT count(*) FROM air_quality") == 160, 20, "storage")
    rig.worker()
    wait_until(lambda: rig.scalar("SELECT count(*) FROM alerts") == 1, 30, "the objective alert")
    alert = rig.alerts()[0]
    assert alert["observed"]["exceedances"] == 19
    assert alert["observed"]["allowed"] == 18
    # Opened when the 19th exceeding hour (hour 36) ended.
    assert alert["opened_at"] == base + timedelta(hours=37)
    assert "objective breached" in alert["summary"]


def test_sighup_reloads_rules_and_keeps_them_when_the_file_is_bad(rig: RulesRig) -> None:
    rig.register([DeviceSpec("", "gauge-1", Kind.FLOOD_LEVEL)])
    path = rig.write_rules(
        """
        rules:
          - id: very-high
            kind: threshold
            field: level_m
            above: 5
        """
    )
    rig.ingest()
    worker = rig.worker()
    rig.publish([rig.reading("flood_level", "gauge-1", time=_now(), level_m=1.5)])
    wait_until(lambda: rig.scalar("SELECT count(*) FROM rule_state") == 1, 15, "evaluation")
    assert rig.scalar("SELECT count(*) FROM alerts") == 0
    path.write_text(
        path.read_text() + "  - id: high\n    kind: threshold\n    field: level_m\n    above: 1.0\n"
    )
    worker.signal(signal.SIGHUP)
    wait_until(lambda: worker.metric("placewatch_rules_reloads_total") == 1, 10, "reload")
    rig.publish([rig.reading("flood_level", "gauge-1", time=_now(), level_m=1.6)])
    wait_until(lambda: rig.scalar("SELECT count(*) FROM alerts") == 1, 15, "the new rule's alert")
    assert rig.alerts()[0]["rule_id"] == "high"
    path.write_text(path.read_text() + "  - id: broken\n    kind: threshold\n    above: x\n")
    worker.signal(signal.SIGHUP)
    wait_until(lambda: worker.metric("placewatch_rules_reloads_total") == 2, 10, "reload")
    assert worker.alive()
    assert "rules.yaml:13" in worker.log_tail() and "not reloaded" in worker.log_tail()
    assert worker.metric("placewatch_rules_loaded") == 2


def test_alerts_of_rules_that_no_longer_watch_their_device_are_resolved(rig: RulesRig) -> None:
    rig.register(
        [
            DeviceSpec("", "gauge-1", Kind.FLOOD_LEVEL, tags=("wandle",)),
            DeviceSpec("", "gauge-2", Kind.FLOOD_LEVEL),
        ]
    )
    path = rig.write_rules(
        """
        rules:
          - id: wandle-high
            kind: threshold
            select: {tag: wandle}
            field: level_m
            above: 1.0
          - id: any-high
            kind: threshold
            field: level_m
            above: 1.0
        """
    )
    rig.ingest()
    worker = rig.worker(rules_reconcile_after_s="0")
    rig.publish(rig.reading("flood_level", f"gauge-{i}", time=_now(), level_m=1.5) for i in (1, 2))
    wait_until(lambda: rig.scalar("SELECT count(*) FROM alerts") == 3, 15, "three alerts")
    # The tag comes off gauge-1: wandle-high no longer watches it.
    with psycopg.connect(rig.database_url) as conn:
        conn.execute("UPDATE devices SET tags = '{}' WHERE device_id = 'gauge-1'")
    wait_until(
        lambda: rig.scalar("SELECT state FROM alerts WHERE rule_id = 'wandle-high'") == "resolved",
        15,
        "wandle-high's alert to be resolved",
    )
    # any-high is taken out of the rule file and the file reloaded: its alerts are resolved.
    path.write_text(path.read_text().split("  - id: any-high")[0])
    worker.signal(signal.SIGHUP)
    wait_until(
        lambda: rig.scalar("SELECT count(*) FROM alerts WHERE state <> 'resolved'") == 0,
        15,
        "any-high's alerts to be resolved",
    )
    reasons = {
        r["rule_id"]: r["reason"]
        for r in rig.query(
            "SELECT rule_id, resolution->'observed'->>'reason' AS reason FROM alerts"
        )
    }
    assert reasons == {
        "wandle-high": "device not registered or no longer selected",
        "any-high": "rule removed or disabled",
    }
