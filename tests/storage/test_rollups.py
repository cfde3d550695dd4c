"""The materialised hourly roll-ups of plain PostgreSQL (migration 0006, storage/rollups.py):
the *_hourly views answer exactly what aggregating the raw readings answers, before a refresh,
after one, with late readings and deletions, and while writers and other refreshers run; the
refresh is idempotent; on TimescaleDB it does nothing (the policies refresh the aggregates)."""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from rules.sweeps import rollup_sweep
from storage.migrate import Flavour
from storage.rollups import BY_RELATION, ROLLUPS, Rollup, pending, refresh_sync

Conn = psycopg.Connection[Any]
COUNCIL = "rollups"
HOUR = timedelta(hours=1)


@pytest.fixture
def url(flavour: Flavour, fresh_database: str) -> str:
    if flavour is not Flavour.POSTGRES:
        pytest.skip("plain PostgreSQL's materialised roll-ups")
    with psycopg.connect(fresh_database, autocommit=True) as c:
        c.execute("INSERT INTO councils VALUES (%s, 'Roll-ups'), ('other', 'Other')", (COUNCIL,))
    return fresh_database


@pytest.fixture
def db(url: str) -> Any:
    with psycopg.connect(url, autocommit=True) as c:
        yield c


def _now(conn: Conn) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value.astimezone(UTC)


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _rounded(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(round(v, 4) if isinstance(v, float) else v for v in row) for row in rows]


def view_rows(conn: Conn, r: Rollup) -> list[tuple[Any, ...]]:
    cols = ", ".join(("bucket", *r.groups, *r.columns))
    order = ", ".join(str(i) for i in range(1, len(r.groups) + 2))
    return _rounded(conn.execute(f"SELECT {cols} FROM {r.relation} ORDER BY {order}").fetchall())


def raw_rows(conn: Conn, r: Rollup) -> list[tuple[Any, ...]]:
    """What the views of 0001 answered: every raw reading aggregated at query time."""
    order = ", ".join(str(i) for i in range(1, len(r.groups) + 2))
    query = f"SELECT * FROM ({r.aggregate(f'FROM {r.source}')}) a ORDER BY {order}"
    return _rounded(conn.execute(query).fetchall())


def assert_agree(conn: Conn) -> None:
    for r in ROLLUPS:
        assert view_rows(conn, r) == raw_rows(conn, r), r.relation


def materialised(conn: Conn, relation: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {relation}_materialized").fetchone()
    return int(row[0]) if row else 0


def insert(
    conn: Conn, kind: str, device: str, times: list[datetime], council: str = COUNCIL
) -> None:
    rnd = random.Random(f"{kind}{device}{len(times)}")
    with conn.cursor() as cur:
        if kind == "bin_fill":
            cur.executemany(
                "INSERT INTO bin_fill (time, council_id, device_id, fill_pct, battery_pct, fire,"
                " received_at) VALUES (%s, %s, %s, %s, %s, %s, now()) ON CONFLICT DO NOTHING",
                [(t, council, device, rnd.uniform(0, 100), 50.0, False) for t in times],
            )
        elif kind == "air_quality":
            cur.executemany(
                "INSERT INTO air_quality (time, council_id, device_id, no2_ugm3, pm25_ugm3,"
                " pm10_ugm3, o3_ugm3, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now())"
                " ON CONFLICT DO NOTHING",
                [
                    (t, council, device, rnd.uniform(0, 300), rnd.uniform(0, 80), 20.0, None)
                    for t in times
                ],
            )
        elif kind == "flood_level":
            cur.executemany(
                "INSERT INTO flood_level (time, council_id, device_id, level_m, received_at)"
                " VALUES (%s, %s, %s, %s, now()) ON CONFLICT DO NOTHING",
                [(t, council, device, rnd.uniform(0.2, 2.0)) for t in times],
            )
        else:
            sensor = rnd.choice(["motion", "door", "power", "bed", "chair"])
            cur.executemany(
                "INSERT INTO home_activity (time, council_id, device_id, resident_id, sensor,"
                " motion_count, door_open, power_w, occupied, received_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT DO NOTHING",
                [
                    (
                        t,
                        council,
                        device,
                        "res-1",
                        sensor,
                        rnd.randint(0, 4),
                        rnd.random() < 0.3,
                        rnd.choice([0.0, 1.5, 900.0]),
                        rnd.random() < 0.5,
                    )
                    for t in times
                ],
            )


def fill(conn: Conn, end: datetime, hours: int = 30) -> None:
    """Every kind, two devices each, readings every 10 minutes for ``hours`` up to ``end``."""
    times = [end - timedelta(minutes=10 * k) for k in range(hours * 6)]
    for r in ROLLUPS:
        insert(conn, r.source, "d1", times)
        insert(conn, r.source, "d2", times[1::2])
        insert(conn, r.source, "d3", times[::5], council="other")


def test_the_views_equal_the_raw_aggregate_before_and_after_a_refresh(db: Conn, url: str) -> None:
    now = _now(db)
    fill(db, now)
    assert_agree(db)  # nothing materialised yet: everything from raw rows
    results = refresh_sync(url)
    assert all(res.skipped is None and res.caught_up for res in results)
    for res in results:
        assert res.watermark == _hour(now)
        assert materialised(db, res.relation) > 0
    assert_agree(db)
    # The live tail: a reading of the current hour, no refresh.
    insert(db, "bin_fill", "d1", [now + timedelta(seconds=1)])
    insert(db, "home_activity", "d9", [now + timedelta(seconds=1)])
    assert_agree(db)
    # The materialised part holds complete hours only.
    row = db.execute("SELECT max(bucket) FROM bin_fill_hourly_materialized").fetchone()
    assert row is not None and row[0] < _hour(now)


def test_late_readings_and_deletions_are_recomputed_by_the_next_refresh(db: Conn, url: str) -> None:
    now = _now(db)
    fill(db, now)
    refresh_sync(url)
    two_days = _hour(now) - timedelta(hours=20) + timedelta(minutes=3)
    insert(db, "flood_level", "d1", [two_days, two_days + timedelta(minutes=1)])
    insert(db, "flood_level", "late-only", [two_days])  # a device whose hour did not exist
    db.execute(
        "DELETE FROM bin_fill WHERE device_id = 'd2' AND time < %s", (now - timedelta(hours=5),)
    )
    logged = db.execute(
        "SELECT DISTINCT relation, device_id FROM rollup_invalidations ORDER BY 1, 2"
    ).fetchall()
    assert logged == [
        ("bin_fill_hourly", "d2"),
        ("flood_level_hourly", "d1"),
        ("flood_level_hourly", "late-only"),
    ]
    # Until the refresh, those hours are as materialised (as on TimescaleDB).
    assert view_rows(db, BY_RELATION["flood_level_hourly"]) != raw_rows(
        db, BY_RELATION["flood_level_hourly"]
    )
    results = {res.relation: res for res in refresh_sync(url)}
    assert results["flood_level_hourly"].invalidated_devices == 2
    assert results["bin_fill_hourly"].invalidated_devices == 1
    assert_agree(db)
    row = db.execute("SELECT count(*) FROM rollup_invalidations").fetchone()
    assert row == (0,)


def test_the_rules_worker_sweep_refreshes_when_there_is_something_to_do(db: Conn, url: str) -> None:
    async def sweep() -> tuple[bool, bool]:
        """(pending before, pending after) one roll-up sweep, as the rules worker runs it."""
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            before = await pending(conn)
            await rollup_sweep(conn)
            return before, await pending(conn)

    now = _now(db)
    fill(db, now)
    assert asyncio.run(sweep()) == (True, False)  # the first refresh
    assert_agree(db)
    late = _hour(now) - timedelta(hours=10) + timedelta(minutes=7)
    insert(db, "flood_level", "d1", [late])
    assert asyncio.run(sweep()) == (True, False)  # the logged late reading
    assert_agree(db)


def test_a_refresh_is_idempotent(db: Conn, url: str) -> None:
    fill(db, _now(db))
    refresh_sync(url)
    before = {
        r.relation: db.execute(f"TABLE {r.table} ORDER BY 1, 2, 3").fetchall() for r in ROLLUPS
    }
    again = refresh_sync(url)
    assert all(res.buckets == 0 and res.invalidated_devices == 0 for res in again)
    after = {
        r.relation: db.execute(f"TABLE {r.table} ORDER BY 1, 2, 3").fetchall() for r in ROLLUPS
    }
    assert after == before
    assert_agree(db)


def test_a_first_refresh_goes_a_step_at_a_time_and_can_stop_on_its_budget(
    db: Conn, url: str
) -> None:
    now = _now(db)
    fill(db, now, hours=30)
    part = refresh_sync(url, relations=["air_quality_hourly"], step=HOUR, budget_s=0.0)
    assert part[0].steps == 1 and not part[0].caught_up
    assert part[0].watermark is not None and part[0].watermark < _hour(now)
    assert_agree(db)  # part materialised, the rest from raw rows
    rest = refresh_sync(url, relations=["air_quality_hourly"], step=timedelta(hours=7))
    assert rest[0].caught_up and rest[0].watermark == _hour(now)
    assert_agree(db)


def test_two_refreshers_and_late_writers_at_once(db: Conn, url: str) -> None:
    """Refreshers walk the watermark up an hour at a time while writers store readings all
    over the history: whatever the interleaving, nothing is lost or counted twice."""
    now = _now(db)
    fill(db, now, hours=24)
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            with psycopg.connect(url, autocommit=True) as w:
                while not stop.is_set():
                    kind = rnd.choice([r.source for r in ROLLUPS])
                    at = now - timedelta(seconds=rnd.randint(0, 26 * 3600))
                    with w.transaction():
                        insert(w, kind, f"w{seed}-{rnd.randint(0, 3)}", [at, at + HOUR])
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(s,)) for s in (1, 2)]
    for t in writers:
        t.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            rounds = list(pool.map(lambda _: refresh_sync(url, step=HOUR), range(6)))
    finally:
        stop.set()
        for t in writers:
            t.join()
    assert not errors, errors
    done = [res for results in rounds for res in results]
    assert any(res.skipped is None and res.steps > 1 for res in done)
    assert all(res.skipped in (None, "busy") for res in done)
    refresh_sync(url, wait=True)
    assert_agree(db)


def test_truncate_empties_the_rollup(db: Conn, url: str) -> None:
    fill(db, _now(db))
    refresh_sync(url)
    db.execute("TRUNCATE bin_fill")
    assert materialised(db, "bin_fill_hourly") == 0
    assert view_rows(db, BY_RELATION["bin_fill_hourly"]) == []
    now = _now(db)
    insert(db, "bin_fill", "d1", [now - timedelta(minutes=20 * k) for k in range(9)])
    r = BY_RELATION["bin_fill_hourly"]
    assert view_rows(db, r) == raw_rows(db, r)  # all from raw rows again
    refresh_sync(url)
    assert materialised(db, "bin_fill_hourly") > 0
    assert_agree(db)


def test_since_recomputes_what_bypassed_the_triggers(db: Conn, url: str) -> None:
    now = _now(db)
    fill(db, now)
    refresh_sync(url)
    db.execute("ALTER TABLE air_quality DISABLE TRIGGER rollup_inserted")
    try:
        insert(db, "air_quality", "bulk", [now - timedelta(hours=10)])
    finally:
        db.execute("ALTER TABLE air_quality ENABLE TRIGGER rollup_inserted")
    refresh_sync(url)
    r = BY_RELATION["air_quality_hourly"]
    assert view_rows(db, r) != raw_rows(db, r)
    refresh_sync(url, since=now - timedelta(hours=12), wait=True)
    assert_agree(db)


def test_the_grafana_role_reads_the_rollups_not_the_raw_home_readings(db: Conn, url: str) -> None:
    from tests.support.postgres import grafana_login_url

    fill(db, _now(db), hours=3)
    refresh_sync(url)
    with psycopg.connect(grafana_login_url(url), autocommit=True) as g:
        for r in ROLLUPS:
            g.execute(f"SELECT * FROM {r.relation} LIMIT 1")
            g.execute(f"SELECT * FROM {r.table} LIMIT 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            g.execute("SELECT * FROM home_activity LIMIT 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            g.execute("SELECT * FROM rollup_invalidations LIMIT 1")


@pytest.mark.timescaledb_only
def test_the_refresh_does_nothing_on_timescaledb(flavour: Flavour, fresh_database: str) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as c:
        c.execute("INSERT INTO councils VALUES (%s, 'Roll-ups')", (COUNCIL,))
        fill(c, _now(c), hours=3)
        results = refresh_sync(fresh_database)
        assert [res.skipped for res in results] == ["timescaledb"] * len(ROLLUPS)
        row = c.execute("SELECT to_regclass('rollup_watermarks')").fetchone()
        assert row == (None,)
        # The continuous aggregates still answer from real-time aggregation.
        for r in ROLLUPS:
            assert view_rows(c, r) == raw_rows(c, r), r.relation
