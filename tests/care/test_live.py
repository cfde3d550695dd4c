"""Acceptance: the care-pilot scenario's incidents raise the right care alerts through the live
pipeline (simulator → real broker → ingest → rules worker), and the backtest of the same stored
readings gives exactly the alerts the live worker raised.

Three weeks are backfilled (the rules need a baseline) while a rules worker with the shipped
default rules runs, then it catches up. One run serves every test of the module.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from placewatch.cli import build_parser
from placewatch.settings import Settings
from rules.backtest import Fired, backtest
from rules.kinds.care import CareRule
from rules.worker import load_configured_rules
from simulators.commands import run_scenario_command
from simulators.engine import RunResult
from storage.migrate import Flavour, migrate
from tests.support.broker import Broker
from tests.support.care import care_monitors_caught_up
from tests.support.ingest import IngestProcess
from tests.support.postgres import create_database, drop_database

TZ = ZoneInfo("Europe/London")
CARE_RULES = ("care-inactivity", "care-not-up", "care-long-occupancy", "care-activity-decline")
RESIDENTS = 6


@dataclass
class Pilot:
    url: str
    result: RunResult
    day0: date
    evaluated_until: datetime

    def local(self, day: int, hhmm: str) -> datetime:
        h, m = map(int, hhmm.split(":"))
        return datetime.combine(self.day0 + timedelta(days=day), datetime.min.time(), TZ).replace(
            hour=h, minute=m
        )

    def alerts(self, resident: str, rule_id: str | None = None) -> list[dict[str, Any]]:
        with psycopg.connect(self.url, row_factory=dict_row) as conn:
            return conn.execute(
                """SELECT * FROM alerts WHERE subject_type = 'resident' AND subject_id = %s
                     AND (%s::text IS NULL OR rule_id = %s) AND rule_id = ANY(%s)
                   ORDER BY opened_at""",
                (resident, rule_id, rule_id, list(CARE_RULES)),
            ).fetchall()


def _wait(what: str, until: Any, timeout: float, proc: IngestProcess) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"{what}:\n{proc.log_tail()}"
        assert proc.alive(), proc.log_tail()
        time.sleep(0.5)


@pytest.fixture(scope="module")
def pilot(flavour: Flavour, broker: Broker) -> Iterator[Pilot]:
    url = create_database(f"pwtest_care_{flavour.value}")
    migrate(url, "on" if flavour is Flavour.TIMESCALEDB else "off")
    logdir = Path(tempfile.mkdtemp(prefix="pw-care-"))
    prefix = f"pwtest/{uuid.uuid4().hex[:10]}"

    def proc(name: str, command: tuple[str, ...]) -> IngestProcess:
        return IngestProcess(
            database_url=url,
            mqtt_port=broker.port,
            prefix=prefix,
            client_id=f"{name}-{uuid.uuid4().hex[:8]}",
            logdir=logdir,
            command=command,
        )

    ingest = proc("ingest-care", ("ingest",))
    worker = proc("rules-care", ("rules", "run"))
    ingest.cli("devices", "import", "care-pilot")
    ingest.start()
    # The worker runs while the history arrives, as in a live deployment taking a hub's upload:
    # care monitors advance with the stored readings, not with the clock.
    worker.start()
    try:
        settings = Settings(
            database_url=url, mqtt_host=broker.host, mqtt_port=broker.port, topic_prefix=prefix
        )
        argv = ["simulate", "--scenario", "care-pilot", "--backfill", "21d", "--no-progress"]
        result = run_scenario_command(build_parser().parse_args(argv), settings)
        assert result.acknowledged and result.plan is not None
        _wait(
            "ingest is behind",
            lambda: ingest.metric("placewatch_ingest_acked_total") >= result.published,
            180,
            ingest,
        )

        def caught_up() -> bool:
            return care_monitors_caught_up(url, list(CARE_RULES)) == len(CARE_RULES) * RESIDENTS

        _wait("the care sweep did not catch up", caught_up, 180, worker)
        worker.terminate()
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT max(evaluated_until) FROM rule_state WHERE rule_id = ANY(%s)",
                (list(CARE_RULES),),
            ).fetchone()
        assert row is not None
        day0 = result.plan.start.astimezone(TZ).date()
        yield Pilot(url, result, day0, row[0])
    finally:
        for p in (worker, ingest):
            if p.alive():
                p.terminate()
        drop_database(url)


def test_the_fall_raises_inactivity_once_quiet_beyond_the_usual(pilot: Pilot) -> None:
    fall = pilot.local(19, "10:40")
    found = pilot.alerts("r-0001", "care-inactivity")
    after = [a for a in found if a["opened_at"] > fall]
    assert after, found
    alert = after[0]
    # At the first tick after a report past the resident's own limit (the motion sensor reports
    # every 15 minutes), the same day, counted from the last activity: the fall, or a little
    # before it when the resident was sitting still (the simulated day varies with the date).
    limit = timedelta(seconds=alert["observed"]["limit_s"])
    last = datetime.fromtimestamp(alert["observed"]["last_activity"], UTC)
    assert fall - timedelta(hours=1) < last <= fall
    assert last + limit < alert["opened_at"] <= last + limit + timedelta(minutes=25)
    assert alert["opened_at"] < pilot.local(20, "00:00")
    assert alert["state"] == "open"  # nobody moves again
    assert alert["severity"] == "critical"
    assert "no activity since 10:" in alert["summary"]
    assert "usually active again within" in alert["summary"]
    # The explanation carries the numbers behind it, and where the resident was last seen.
    observed = alert["observed"]
    assert observed["inactive_s"] > observed["limit_s"] >= 3600
    assert observed["last_where"] == "hall"


def test_the_decline_raises_activity_decline_within_two_days(pilot: Pilot) -> None:
    # The decline starts on day 14 and reaches its share over a day.
    found = pilot.alerts("r-0002", "care-activity-decline")
    assert found, pilot.alerts("r-0002")
    first = found[0]
    assert pilot.local(14, "00:00") < first["opened_at"] <= pilot.local(16, "23:59")
    assert "quarter-hours between 07:00 and 23:00" in first["summary"]
    assert "usual" in first["summary"]


def test_a_morning_in_bed_raises_not_up_and_clears_when_up(pilot: Pilot) -> None:
    found = [
        a
        for a in pilot.alerts("r-0003", "care-not-up")
        if pilot.local(17, "05:00") <= a["opened_at"] <= pilot.local(17, "13:30")
    ]
    assert len(found) == 1, pilot.alerts("r-0003")
    alert = found[0]
    assert "usually up by" in alert["summary"]
    assert alert["resolved_at"] is not None
    assert pilot.local(17, "13:25") <= alert["resolved_at"] <= pilot.local(17, "14:30")


def test_a_hub_outage_raises_no_care_alert_and_is_not_a_baseline_day(pilot: Pilot) -> None:
    start, end = pilot.local(12, "09:00"), pilot.local(12, "17:00")
    during = [
        a for a in pilot.alerts("r-0004") if start <= a["opened_at"] <= end + timedelta(hours=1)
    ]
    assert during == []
    with psycopg.connect(pilot.url) as conn:
        row = conn.execute(
            """SELECT data FROM rule_state WHERE rule_id = 'care-activity-decline'
                 AND subject_id = 'r-0004'"""
        ).fetchone()
    assert row is not None
    days = {d["day"]: d for d in row[0]["model"]["days"]}
    outage_day = days[(pilot.day0 + timedelta(days=12)).toordinal()]
    assert outage_day["valid"] is False
    assert outage_day["missing_s"] >= 7 * 3600
    assert days[(pilot.day0 + timedelta(days=11)).toordinal()]["valid"] is True


def test_the_backtest_gives_the_alerts_the_live_worker_raised(pilot: Pilot) -> None:
    rules = load_configured_rules(Settings(rules_defaults=True, rules_path=""))
    care = rules.__class__(tuple(r for r in rules.rules if isinstance(r, CareRule)), rules.sources)

    async def run() -> list[Fired]:
        async with await psycopg.AsyncConnection.connect(pilot.url, autocommit=True) as conn:
            start = datetime.combine(pilot.day0 - timedelta(days=1), datetime.min.time(), TZ)
            return await backtest(conn, care, start, pilot.evaluated_until)

    replayed = {(f.rule_id, f.subject_id, f.opened_at, f.resolved_at) for f in asyncio.run(run())}
    with psycopg.connect(pilot.url) as conn:
        live = {
            (r[0], r[1], r[2], r[3])
            for r in conn.execute(
                """SELECT rule_id, subject_id, opened_at, resolved_at FROM alerts
                   WHERE rule_id = ANY(%s)""",
                (list(CARE_RULES),),
            ).fetchall()
        }
    assert len(live) >= 3  # the incidents above, at least
    assert live == replayed
