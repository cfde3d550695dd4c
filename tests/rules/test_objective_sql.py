"""The objective counts, both ways they are computed: from the hourly continuous aggregate
(TimescaleDB) and from the raw table (PostgreSQL). On plain PostgreSQL the aggregate's
stand-in is the view with the same columns, so both SQL variants run and must agree."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from placewatch.kinds import Kind
from rules.kinds.objectives import AqsObjectiveRule
from rules.model import DeviceView
from rules.registry import all_devices
from rules.stream import Outcome
from rules.sweeps import _objective
from storage.registry import DeviceSpec, register

Conn = psycopg.Connection[Any]


def _count(
    url: str, rule: AqsObjectiveRule, aggregate: bool, start: datetime, as_of: datetime
) -> Any:
    async def run() -> Any:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            cur = await conn.execute(
                rule.objective.sql(aggregate).encode(), {"start": start, "as_of": as_of}
            )
            return await cur.fetchall()

    return asyncio.run(run())


def test_hourly_and_daily_exceedances_agree_from_aggregate_and_raw(
    conn: Conn, database_url: str
) -> None:
    council = f"obj{uuid.uuid4().hex[:8]}"
    conn.execute("INSERT INTO councils VALUES (%s, 'Objectives')", (council,))
    base = datetime(2026, 3, 1, tzinfo=UTC)
    rows = []
    for h in range(24 * 3):  # three days, readings every 15 minutes
        for q in range(4):
            at = base + timedelta(hours=h, minutes=15 * q)
            day = h // 24
            no2 = 230.0 if h % 5 == 0 else 150.0  # hours 0, 5, 10, … exceed 200
            # Day 0 above 50 all day; day 1 below; day 2 above but only 17 hours of PM data.
            pm10 = None if day == 2 and h % 24 >= 17 else (70.0 if day != 1 else 30.0)
            rows.append((at, council, "aq-1", no2, pm10, at))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO air_quality (time, council_id, device_id, no2_ugm3, pm10_ugm3,"
            " received_at) VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )
    as_of = base + timedelta(days=3)
    for pollutant, expected in (
        ("no2", [base + timedelta(hours=h) for h in range(0, 72, 5)]),
        ("pm10", [base]),  # day 1 is below; day 2 has too little data (17 of 24 hours)
    ):
        rule = AqsObjectiveRule.model_validate(
            {"id": "o", "kind": "aqs_objective", "pollutant": pollutant}
        )
        results = []
        for aggregate in (True, False):
            found = [
                r[2] for r in _count(database_url, rule, aggregate, base, as_of) if r[0] == council
            ]
            results.append(found)
        assert results[0] == results[1] == expected, pollutant
    # A period counts only once complete: as of 10:30 the 10:00 hour is not yet in.
    rule = AqsObjectiveRule.model_validate({"id": "o", "kind": "aqs_objective", "pollutant": "no2"})
    mid = base + timedelta(hours=10, minutes=30)
    for aggregate in (True, False):
        found = [r[2] for r in _count(database_url, rule, aggregate, base, mid) if r[0] == council]
        assert found == [base, base + timedelta(hours=5)]


async def test_a_breach_completed_by_the_last_hour_of_the_year_is_raised_for_that_year(
    conn: Conn, database_url: str
) -> None:
    council = f"obj{uuid.uuid4().hex[:8]}"
    register(conn, council, "Year end", [DeviceSpec(council, "aq-ye", Kind.AIR_QUALITY)])
    eve = datetime(2026, 12, 31, tzinfo=UTC)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO air_quality (time, council_id, device_id, no2_ugm3, received_at)"
            " VALUES (%s, %s, 'aq-ye', %s, %s)",
            [
                (eve + timedelta(hours=h, minutes=15 * q), council, 230.0 if h >= 5 else 90.0, eve)
                for h in range(24)
                for q in range(4)
            ],
        )
    rule = AqsObjectiveRule.model_validate(
        {"id": f"no2-{council}", "kind": "aqs_objective", "pollutant": "no2"}
    )
    station = [v for v in await _stations(database_url) if v.council_id == council]

    async def sweep_at(now: datetime) -> Outcome:
        out = Outcome()
        url = database_url
        async with (
            await psycopg.AsyncConnection.connect(url, autocommit=True) as c,
            c.transaction(),
        ):
            await _objective(c, rule, station, now, "test", out)
        return out

    # 23:30 on 31 December: 18 complete hours above 200 so far, the 19th not yet complete.
    assert not (await sweep_at(eve + timedelta(hours=23, minutes=30))).opened
    # Just after midnight the last hour of 2026 is complete: 2026's breach is raised, dated
    # when it completed, and closed at once because 2027 has begun.
    out = await sweep_at(datetime(2027, 1, 1, 0, 30, tzinfo=UTC))
    assert out.opened[rule.id] == 1 and out.resolved[rule.id] == 1
    rows = conn.execute(
        "SELECT opened_at, resolved_at, observed->>'year' FROM alerts WHERE rule_id = %s",
        (rule.id,),
    ).fetchall()
    midnight = datetime(2027, 1, 1, tzinfo=UTC)
    assert rows == [(midnight, midnight, "2026")]
    # Later sweeps raise nothing more for 2026.
    for later in (timedelta(hours=1), timedelta(days=1), timedelta(days=5)):
        again = await sweep_at(midnight + later)
        assert not again.opened and not again.resolved


async def _stations(url: str) -> list[DeviceView]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c, c.cursor() as cur:
        return await all_devices(cur)
