"""Acceptance: ``placewatch simulate --scenario borough --backfill 7d`` fills a week through the
real broker and a real ingest process into a fresh database, and the stored data behaves like
the place: bins emptied on their rounds and never over full, NO2 peaking in the rush hours,
the storm lifting the gauges over their typical range, the decline and the fall showing in the
residents' activity. One backfill serves every test of the module."""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from placewatch.cli import build_parser
from placewatch.settings import Settings
from simulators.bins import collection_times
from simulators.commands import run_scenario_command
from simulators.engine import RunResult
from simulators.scenario import Scenario, load_scenario
from simulators.timeline import Timeline
from storage.migrate import Flavour, migrate
from tests.support.broker import Broker
from tests.support.ingest import IngestProcess
from tests.support.postgres import create_database, drop_database

Conn = psycopg.Connection[tuple[Any, ...]]
TZ = "Europe/London"


@dataclass
class Week:
    conn: Conn
    scenario: Scenario
    timeline: Timeline
    result: RunResult


@pytest.fixture(scope="module")
def week(flavour: Flavour, broker: Broker) -> Iterator[Week]:
    url = create_database(f"pwtest_sim_{flavour.value}")
    migrate(url, "on" if flavour is Flavour.TIMESCALEDB else "off")
    logdir = Path(tempfile.mkdtemp(prefix="pw-sim-"))
    prefix = f"pwtest/{uuid.uuid4().hex[:10]}"
    ingest = IngestProcess(
        database_url=url,
        mqtt_port=broker.port,
        prefix=prefix,
        client_id=f"ingest-sim-{uuid.uuid4().hex[:8]}",
        logdir=logdir,
        # No rules worker here: nothing would empty the rules inbox.
        extra_env={"PLACEWATCH_INGEST_RULES_INBOX": "false"},
    )
    ingest.start()
    try:
        settings = Settings(
            database_url=url, mqtt_host=broker.host, mqtt_port=broker.port, topic_prefix=prefix
        )
        argv = ["simulate", "--scenario", "borough", "--backfill", "7d", "--no-progress"]
        result = run_scenario_command(build_parser().parse_args(argv), settings)
        assert result.acknowledged and result.published > 100_000
        deadline = time.monotonic() + 180
        while ingest.metric("placewatch_ingest_acked_total") < result.published:
            assert time.monotonic() < deadline, f"ingest is behind:\n{ingest.log_tail()}"
            assert ingest.alive(), ingest.log_tail()
            time.sleep(0.5)
        assert result.plan is not None
        scenario = load_scenario("borough")
        timeline = Timeline(scenario, 0, result.plan.start, result.plan.until)
        with psycopg.connect(url, autocommit=True) as conn:
            yield Week(conn, scenario, timeline, result)
    finally:
        ingest.terminate()
        drop_database(url)


def _when(t: float) -> datetime:
    return datetime.fromtimestamp(t).astimezone()


def test_the_week_is_stored_whole(week: Week) -> None:
    """Every message published is a stored reading: valid, in range, none lost or refused."""
    stored = 0
    for kind in ("bin_fill", "air_quality", "flood_level", "home_activity"):
        row = week.conn.execute(f"SELECT count(*) FROM {kind}").fetchone()
        assert row is not None and row[0] > 0, kind
        assert row[0] == week.result.by_kind[kind]
        stored += row[0]
    assert stored == week.result.published
    assert week.conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
    span = week.conn.execute("SELECT min(time), max(time) FROM bin_fill").fetchone()
    assert span is not None
    assert span[1] - span[0] > timedelta(days=7)


def test_bins_are_emptied_on_their_rounds_and_never_over_full(week: Week) -> None:
    rows = week.conn.execute(
        "SELECT device_id, extract(epoch FROM time), fill_pct FROM bin_fill ORDER BY 1, 2"
    ).fetchall()
    readings: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
    for device_id, t, fill in rows:
        readings[device_id].append((float(t), float(fill)))
    assert max(f for series in readings.values() for _, f in series) <= 100
    devices = week.scenario.by_id()
    tl = week.timeline
    rounds = emptied = dropped = 0
    for device_id, series in readings.items():
        device = devices[device_id]
        every = device.every_s
        times = collection_times(device, tl, tl.start + every, tl.end - 2 * every)
        assert times, f"{device_id} has no collection round in the week"
        for tc in times:
            rounds += 1
            before = [f for t, f in series if tc - 2 * every < t <= tc]
            after = [f for t, f in series if tc < t <= tc + 2 * every]
            assert after, f"{device_id}: no reading after the round at {_when(tc)}"
            emptied += min(after) <= 20
            dropped += bool(before) and max(before) >= min(after) + 10
    assert rounds > 1_000
    assert emptied == rounds, f"{rounds - emptied} rounds left a bin more than 20 % full"
    # Bins collected daily hold little, but nearly every round takes something away.
    assert dropped >= 0.9 * rounds


def test_no2_peaks_in_the_rush_hours(week: Week) -> None:
    rows = week.conn.execute(
        """SELECT extract(hour FROM time AT TIME ZONE %s)::int AS hour, avg(no2_ugm3)
           FROM air_quality WHERE no2_ugm3 IS NOT NULL GROUP BY 1""",
        (TZ,),
    ).fetchall()
    by_hour = {int(h): float(v) for h, v in rows}
    rush = statistics.mean(by_hour[h] for h in (7, 8, 17, 18))
    night = statistics.mean(by_hour[h] for h in (2, 3))
    assert rush > 1.5 * night, by_hour


def test_the_storm_takes_the_gauges_above_their_typical_range(week: Week) -> None:
    storm = week.timeline.storms[0]
    stuck = {d for d, ev in week.timeline.devices.items() if ev.stuck}
    rows = week.conn.execute(
        """SELECT f.device_id, (d.properties->>'typical_high_m')::float,
                  max(f.level_m) FILTER (WHERE f.time < to_timestamp(%(start)s)),
                  max(f.level_m) FILTER (WHERE f.time >= to_timestamp(%(start)s)
                                           AND f.time < to_timestamp(%(end)s) + interval '12 h')
           FROM flood_level f JOIN devices d USING (council_id, device_id)
           GROUP BY 1, 2""",
        {"start": storm.start, "end": storm.end},
    ).fetchall()
    assert len(rows) == 15
    for device_id, high, before, during in rows:
        assert before < high, f"{device_id} above its typical range before the storm"
        if (
            device_id not in stuck
            or min(s for s, _ in week.timeline.devices[device_id].stuck) > storm.end
        ):
            assert during > high, f"{device_id}: {during} m never above {high} m in the storm"


def _active_slots(conn: Conn, resident: str) -> dict[str, int]:
    """The active-slots index: 15-minute slots with motion, per local day."""
    rows = conn.execute(
        """SELECT (time AT TIME ZONE %s)::date AS day,
                  count(DISTINCT date_bin('15 minutes', time, '2000-01-01'))
           FROM home_activity
           WHERE resident_id = %s AND sensor = 'motion' AND motion_count > 0
           GROUP BY 1""",
        (TZ, resident),
    ).fetchall()
    return {str(day): int(n) for day, n in rows}


def test_the_decline_shows_in_the_active_slots_index(week: Week) -> None:
    tl = week.timeline
    decline = tl.residents["r-0012"].declines[0]
    index = _active_slots(week.conn, "r-0012")

    def day(n: int) -> str:
        return str(tl.day0 + timedelta(days=n))

    before = [index.get(day(n), 0) for n in range(tl.first_day(), tl.day_of(decline.start))]
    full = tl.day_of(decline.start + decline.over_s)
    after = [index.get(day(n), 0) for n in range(full, tl.day_of(tl.end))]  # whole days only
    assert len(before) >= 2 and len(after) >= 2
    observed_share = 1 - statistics.mean(after) / statistics.mean(before)
    assert observed_share == pytest.approx(decline.share, abs=0.15), (before, after)
    # A resident without a decline keeps their level.
    other = _active_slots(week.conn, "r-0013")
    steady = [other.get(day(n), 0) for n in range(tl.first_day(), tl.day_of(tl.end))]
    assert min(steady) > 0.6 * statistics.mean(steady)


def test_after_the_fall_nothing_moves(week: Week) -> None:
    fall = week.timeline.residents["r-0007"].fall
    activity = """SELECT count(*) FILTER (WHERE motion_count > 0 OR door_open OR occupied
                                            OR power_w > 100),
                         count(*)
                  FROM home_activity WHERE resident_id = 'r-0007'
                    AND time >= to_timestamp(%s) AND time < to_timestamp(%s)"""
    after = week.conn.execute(activity, (fall + 900, week.timeline.end)).fetchone()
    before = week.conn.execute(activity, (fall - 6 * 3600, fall)).fetchone()
    assert after is not None and before is not None
    assert after[1] > 100, "the sensors keep reporting"
    assert after[0] == 0, "activity after the fall"
    assert before[0] > 10, "the resident was active before"


def test_not_getting_up_and_the_hub_outage(week: Week) -> None:
    tl = week.timeline
    ((day, until),) = tl.residents["r-0021"].stays_in_bed.items()
    morning = """SELECT bool_and(occupied) FILTER (WHERE sensor = 'bed'),
                        count(*) FILTER (WHERE motion_count > 0)
                 FROM home_activity WHERE resident_id = 'r-0021'
                   AND time >= to_timestamp(%s) AND time < to_timestamp(%s)"""
    in_bed = week.conn.execute(morning, (tl.at(day, 8 * 60), until - 900)).fetchone()
    usual = week.conn.execute(morning, (tl.at(day - 1, 8 * 60), tl.at(day - 1, 13 * 60))).fetchone()
    assert in_bed is not None and usual is not None
    assert in_bed[0] is True and in_bed[1] <= 3
    assert usual[0] is False and usual[1] >= 8
    ((start, end),) = tl.residents["r-0030"].outages
    heard = """SELECT count(*) FROM home_activity WHERE resident_id = 'r-0030'
               AND time >= to_timestamp(%s) AND time < to_timestamp(%s)"""
    assert week.conn.execute(heard, (start, end)).fetchone() == (0,)
    for span in ((start - 3600, start), (end, end + 3600)):
        row = week.conn.execute(heard, span).fetchone()
        assert row is not None and row[0] > 0


def test_the_bin_fire(week: Week) -> None:
    ((start, end, _),) = week.timeline.devices["bin-0290"].fires
    rows = week.conn.execute(
        """SELECT time >= to_timestamp(%s) AND time < to_timestamp(%s), max(temperature_c),
                  bool_or(fire)
           FROM bin_fill WHERE device_id = 'bin-0290' GROUP BY 1""",
        (start, end),
    ).fetchall()
    during = {bool(k): (float(t), bool(f)) for k, t, f in rows}
    assert during[True][0] > 80 and during[True][1]
    before = week.conn.execute(
        "SELECT max(temperature_c) FROM bin_fill WHERE device_id = 'bin-0290' AND time < to_timestamp(%s)",  # noqa: E501
        (start,),
    ).fetchone()
    assert before is not None and before[0] < 40
