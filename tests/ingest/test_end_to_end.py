"""Ingest against a real broker and database: stored once, rejected with reasons, never stuck."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

from simulators.basic import ReadingGenerator
from tests.support.pipeline import Pipeline
from tests.support.traffic import wait_until


def _ts(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def bad_messages(prefix: str, council: str, n: int) -> list[tuple[str, bytes, str, str]]:
    """``n`` distinct bad messages: (topic, payload, expected reason, text the detail names)."""
    bin_t = f"{prefix}/{council}/bin_fill/bin-00000"
    air_t = f"{prefix}/{council}/air_quality/aq-00000"
    flood_t = f"{prefix}/{council}/flood_level/gauge-00000"
    home_t = f"{prefix}/{council}/home_activity/home-00000"
    makers: list[Callable[[int], tuple[str, bytes, str, str]]] = [
        lambda i: (
            bin_t,
            f'{{"time": "{_ts()}", "fill_pct": {i}'.encode(),
            "invalid_json",
            "Invalid JSON",
        ),
        lambda i: (bin_t, f"[1, 2, {i}]".encode(), "not_an_object", "payload"),
        lambda i: (
            bin_t,
            json.dumps({"fill_pct": 50, "seq": i}).encode(),
            "missing_field",
            "time: Field required",
        ),
        lambda i: (
            bin_t,
            json.dumps({"time": _ts(-i), "fill_pct": 140 + i}).encode(),
            "out_of_range",
            "fill_pct=",
        ),
        lambda i: (
            air_t,
            json.dumps({"time": _ts(-i), "pm25_ugm3": -1 - i}).encode(),
            "out_of_range",
            "pm25_ugm3=",
        ),
        lambda i: (
            flood_t,
            json.dumps({"time": _ts(-i), "level_m": 1, "levl": i}).encode(),
            "unknown_field",
            "levl=",
        ),
        lambda i: (
            flood_t,
            json.dumps({"time": _ts(-i), "level_m": f"high-{i}"}).encode(),
            "invalid_value",
            "level_m=",
        ),
        lambda i: (
            flood_t,
            f'{{"time": "{_ts(-i)}", "level_m": NaN, "x{i}": 1}}'.encode(),
            "out_of_range",
            "level_m=",
        ),
        lambda i: (
            flood_t,
            json.dumps({"time": "2026-01-01T00:00:00", "level_m": i}).encode(),
            "invalid_value",
            "time=",
        ),
        lambda i: (
            bin_t,
            json.dumps({"time": _ts(86_400 + i), "fill_pct": 5}).encode(),
            "future_timestamp",
            "time=",
        ),
        lambda i: (
            flood_t,
            json.dumps({"time": i, "level_m": 1.0}).encode(),
            "too_old",
            "days before it was received",
        ),
        lambda i: (
            f"{prefix}/{council}/bin_fill/ghost-{i}",
            json.dumps({"time": _ts(-i), "fill_pct": 5}).encode(),
            "unknown_device",
            f"ghost-{i}",
        ),
        lambda i: (
            f"{prefix}/{council}/flood_level/bin-00001",
            json.dumps({"time": _ts(-i), "level_m": 1.0}).encode(),
            "kind_mismatch",
            "registered as bin_fill",
        ),
        lambda i: (f"{prefix}/{council}/weather/ws-{i}", b"{}", "unknown_kind", "weather"),
        lambda i: (
            f"{prefix}/{council}/bin_fill/",
            f'{{"n": {i}}}'.encode(),
            "invalid_topic",
            "is not",
        ),
        # A topic longer than a btree key (the dead-letter key is a hash, not the topic).
        lambda i: (
            f"{prefix}/{council}/bin_fill/{i:04d}" + "x" * 4000,
            json.dumps({"time": _ts(-i), "fill_pct": 5}).encode(),
            "unknown_device",
            "is not registered",
        ),
        lambda i: (
            f"{prefix}/{council}/bin_fill",
            f'{{"n": {i}}}'.encode(),
            "invalid_topic",
            "is not",
        ),
        lambda i: (
            f"{prefix}/{council}/bin_fill/b-{i}/up",
            b"{}",
            "invalid_topic",
            "is not",
        ),
        # A NUL in a field name must not break the dead-letter store (PostgreSQL text refuses
        # NUL): the detail shows it escaped.
        lambda i: (
            bin_t,
            json.dumps({"time": _ts(-i), "fill_pct": 5, f"a\u0000{i}": 1}).encode(),
            "unknown_field",
            "a\\x00",
        ),
        lambda i: (
            bin_t,
            json.dumps({"time": _ts(-i)}).encode(),
            "missing_field",
            "fill_pct, distance_mm",
        ),
        lambda i: (
            home_t,
            json.dumps({"time": _ts(-i), "sensor": "motion"}).encode(),
            "missing_field",
            "motion_count",
        ),
    ]
    return [makers[i % len(makers)](i) for i in range(n)]


def test_valid_and_malformed_interleaved(pipe: Pipeline) -> None:
    """Acceptance 3: 1,000 bad messages among 1,000 good ones; every one accounted for."""
    council, prefix = pipe.council, pipe.prefix
    devices = pipe.register(per_kind=5)
    good = [m for _, m in zip(range(1000), ReadingGenerator(devices, prefix, seed=1), strict=False)]
    bad = bad_messages(prefix, council, 1000)
    mixed: list[tuple[str, bytes]] = [*good, *((t, p) for t, p, _, _ in bad)]
    random.Random(3).shuffle(mixed)

    ingest = pipe.ingest()
    assert pipe.publish(mixed) == 2000
    wait_until(
        lambda: pipe.stored() >= 1000 and len(pipe.dead_letters()) >= 1000,
        60,
        "1000 stored and 1000 dead letters",
    )

    assert pipe.stored() == 1000
    stored = {(t, p): (r, d) for t, p, r, d in pipe.dead_letters()}
    assert len(stored) == 1000
    for topic, payload, reason, mention in bad:
        got_reason, detail = stored[(topic, payload)]
        assert got_reason == reason, (payload, detail)
        assert mention in detail, (reason, detail)
    assert ingest.alive(), "the consumer must never stop on bad input"
    assert ingest.metric("placewatch_ingest_rejected_total") == 1000
    assert ingest.metric("placewatch_ingest_acked_total") == 2000
    assert ingest.terminate() == 0


def test_redelivered_message_is_stored_once_and_device_seen(pipe: Pipeline) -> None:
    council, prefix = pipe.council, pipe.prefix
    devices = pipe.register(per_kind=1)
    messages = [m for _, m in zip(range(40), ReadingGenerator(devices, prefix), strict=False)]
    ingest = pipe.ingest()
    pipe.publish(messages + messages[:10] + messages[:5])
    wait_until(lambda: ingest.metric("placewatch_ingest_acked_total") >= 55, 30, "all acked")

    assert pipe.stored() == 40
    assert ingest.metric("placewatch_ingest_duplicates_total") == 15
    row = pipe.conn.execute(
        "SELECT count(*), count(last_seen), count(first_seen) FROM devices WHERE council_id = %s",
        (council,),
    ).fetchone()
    assert row == (4, 4, 4)
    bad = pipe.publish([(f"{prefix}/{council}/bin_fill/x", b"not json")] * 3)
    assert bad == 3
    wait_until(lambda: ingest.metric("placewatch_ingest_acked_total") >= 58, 30, "bad acked")
    rows = pipe.conn.execute(
        "SELECT occurrences FROM dead_letters WHERE topic = %s", (f"{prefix}/{council}/bin_fill/x",)
    ).fetchall()
    assert rows == [(3,)], "one dead letter row per distinct payload, counting receipts"


def test_distance_converted_to_fill_with_bin_depth(pipe: Pipeline) -> None:
    pipe.register(per_kind=1)  # bins have depth_mm 1200
    pipe.ingest()
    payload = json.dumps({"time": _ts(), "distance_mm": 300}).encode()
    pipe.publish([(pipe.topic("bin_fill", "bin-00000"), payload)])
    wait_until(lambda: pipe.stored() == 1, 30, "the reading")
    row = pipe.conn.execute(
        "SELECT fill_pct, distance_mm FROM bin_fill WHERE council_id = %s", (pipe.council,)
    ).fetchone()
    assert row == (75.0, 300.0)


def test_row_refused_by_database_is_isolated_into_dead_letters(pipe: Pipeline) -> None:
    """A row the model accepts but the database refuses must not block its batch.

    The refusal comes from a trigger (a rule the models do not mirror), scoped to this test's
    council; a trigger rather than a CHECK constraint, which TimescaleDB before 2.20 cannot add
    to a hypertable with compression enabled.
    """
    council = pipe.council
    pipe.register(per_kind=1)
    name = f"test_cap_{council}"
    try:
        pipe.conn.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN"
            f" IF NEW.council_id = '{council}' AND NEW.level_m >= 100 THEN"
            f" RAISE check_violation USING MESSAGE = '{name}: level above the gauge';"
            " END IF; RETURN NEW; END$$"
        )
        pipe.conn.execute(
            f"CREATE TRIGGER {name} BEFORE INSERT ON flood_level"
            f" FOR EACH ROW EXECUTE FUNCTION {name}()"
        )
        topic = pipe.topic("flood_level", "gauge-00000")
        msgs = [
            (topic, json.dumps({"time": _ts(-i), "level_m": 500 if i == 7 else 1.0}).encode())
            for i in range(20)
        ]
        ingest = pipe.ingest(ingest_batch_linger_ms="500")
        pipe.publish(msgs)
        wait_until(lambda: ingest.metric("placewatch_ingest_acked_total") >= 20, 30, "all acked")
    finally:
        pipe.conn.execute(f"DROP TRIGGER IF EXISTS {name} ON flood_level")
        pipe.conn.execute(f"DROP FUNCTION IF EXISTS {name}()")
    assert pipe.stored() == 19
    letters = pipe.dead_letters()
    assert [(r, b'"level_m": 500' in p) for _, p, r, _ in letters] == [("storage_error", True)]
    assert f"CheckViolation: {name}: level above the gauge" in letters[0][3]
    assert ingest.alive()


def test_sigterm_flushes_and_health_endpoints(pipe: Pipeline) -> None:
    prefix = pipe.prefix
    devices = pipe.register(per_kind=2)
    # A long linger keeps a batch open, so SIGTERM arrives with messages not yet committed.
    ingest = pipe.ingest(ingest_batch_linger_ms="3000")
    assert ingest.http("/healthz")[0] == 200
    assert ingest.http("/readyz") == (200, "ok\n")
    pipe.publish(m for _, m in zip(range(100), ReadingGenerator(devices, prefix), strict=False))
    wait_until(
        lambda: ingest.metric("placewatch_ingest_pending_messages") + pipe.stored() >= 100,
        10,
        "all 100 messages to reach ingest",
    )
    assert ingest.terminate() == 0
    assert pipe.stored() == 100


def test_sigterm_is_bounded_while_a_statement_waits_on_a_lock(pipe: Pipeline) -> None:
    """A batch stuck behind a lock (a migration, say) must not hold a stop past its deadline;
    what it held is stored by the next run."""
    pipe.register(per_kind=1)
    topic = pipe.topic("flood_level", "gauge-00000")
    msgs = [(topic, json.dumps({"time": _ts(-i), "level_m": 1.0}).encode()) for i in range(50)]
    ingest = pipe.ingest(ingest_stop_timeout_s="3")
    with psycopg.connect(pipe.database_url) as locker:
        locker.execute("LOCK TABLE flood_level IN ACCESS EXCLUSIVE MODE")
        pipe.publish(msgs)
        wait_until(lambda: ingest.metric("placewatch_ingest_pending_messages") == 50, 10, "held")
        started = time.monotonic()
        assert ingest.terminate(timeout=60) == 0
        took = time.monotonic() - started
        locker.rollback()
    assert took < 3 + 7, f"stop took {took:.1f} s"
    assert pipe.stored() == 0
    ingest.start()
    wait_until(lambda: pipe.stored() == 50, 30, "the 50 readings after the restart")
