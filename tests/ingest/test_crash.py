"""Acceptance 2: SIGKILL the ingest process at random moments; nothing lost, nothing twice."""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from simulators.basic import Publisher, ReadingGenerator, run_simulation
from tests.support.pipeline import Pipeline
from tests.support.traffic import wait_until

TOTAL = 20_000


@pytest.mark.slow
def test_sigkill_three_times_during_20k_messages(pipe: Pipeline) -> None:
    prefix = pipe.prefix
    seed = int(os.environ.get("PLACEWATCH_TEST_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"seed {seed}")
    devices = pipe.register(per_kind=25)
    # Small batches, so kills land between receive, commit and acknowledgement of many batches.
    ingest = pipe.ingest(ingest_batch_max="300", ingest_batch_linger_ms="20")

    publisher = Publisher(pipe.broker.host, pipe.broker.port, qos=1)
    sent: list[int] = []
    rate = 2_000.0  # messages/s: publishing takes ~10 s
    worker = threading.Thread(
        target=lambda: sent.append(
            run_simulation(
                publisher, ReadingGenerator(devices, prefix, seed=seed), rate=rate, count=TOTAL
            )
        ),
    )
    worker.start()
    moments = sorted(rng.uniform(0.5, TOTAL / rate - 0.5) for _ in range(3))
    started = time.monotonic()
    kills = []
    for moment in moments:
        time.sleep(max(0.0, moment - (time.monotonic() - started)))
        stored_before = pipe.stored()
        ingest.kill()
        kills.append((round(moment, 2), stored_before))
        time.sleep(rng.uniform(0.0, 1.0))
        ingest.start()
    worker.join(120)
    assert publisher.wait_acked(60), "broker did not acknowledge every publish"
    publisher.close()
    assert sent == [TOTAL]
    print(f"killed at (s, stored so far): {kills}")

    wait_until(lambda: pipe.stored() >= TOTAL, 90, f"{TOTAL} readings")
    time.sleep(1)  # anything re-delivered late must still not make a second row
    assert ingest.starts == 4
    assert all(0 < n < TOTAL for _, n in kills[1:]), f"kills should land mid-stream: {kills}"
    assert pipe.stored() == TOTAL
    assert pipe.distinct() == TOTAL
    assert pipe.dead_letters() == []
    assert ingest.terminate() == 0


def test_crash_between_commit_and_ack_is_absorbed_by_dedupe(pipe: Pipeline) -> None:
    """The narrowest window: the batch is committed, the process dies before any PUBACK. The
    broker resends every message; each is recognised and none is stored twice."""
    devices = pipe.register(per_kind=5)
    messages = [m for _, m in zip(range(200), ReadingGenerator(devices, pipe.prefix), strict=False)]
    ingest = pipe.ingest(ingest_batch_linger_ms="2000", test_exit_after_commits="1")
    pipe.publish(messages)
    assert ingest.process is not None and ingest.process.wait(30) == 137
    assert pipe.stored() == 200  # committed before the crash

    # Same client id: the same session, with the same unacknowledged messages.
    del ingest.extra_env["PLACEWATCH_TEST_EXIT_AFTER_COMMITS"]
    ingest.start()
    wait_until(lambda: ingest.metric("placewatch_ingest_acked_total") >= 200, 30, "redelivery")
    assert ingest.metric("placewatch_ingest_duplicates_total") == 200
    assert pipe.stored() == 200
    assert pipe.dead_letters() == []
