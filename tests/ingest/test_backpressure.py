"""A slow database must not let a broker backlog pile up in ingest's memory.

Mosquitto 2.0.x lets each PUBACK release up to a whole Receive Maximum of new messages, so the
bound has to be enforced by ingest itself (see ingest/mqtt.py). Here every reading insert is made
slow, acknowledgements trickle, and the messages ingest holds must stay within the window.
"""

from __future__ import annotations

import time

import pytest

from placewatch.kinds import KINDS
from simulators.basic import ReadingGenerator
from tests.support.pipeline import Pipeline
from tests.support.traffic import wait_until

WINDOW = 1_000
BACKLOG = 20_000


@pytest.mark.slow
def test_held_messages_stay_within_the_window_when_commits_are_slow(pipe: Pipeline) -> None:
    devices = pipe.register(per_kind=10)
    ingest = pipe.ingest(ingest_receive_maximum=str(WINDOW), ingest_batch_max="200")
    assert ingest.terminate() == 0  # the persistent session now exists; the broker queues for it
    pipe.publish(
        m for _, m in zip(range(BACKLOG), ReadingGenerator(devices, pipe.prefix), strict=False)
    )
    held = []
    try:
        pipe.conn.execute(
            "CREATE FUNCTION test_slow() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN PERFORM pg_sleep(0.1); RETURN NULL; END$$"
        )
        for kind in KINDS:
            pipe.conn.execute(
                f"CREATE TRIGGER test_slow AFTER INSERT ON {kind.value}"
                " FOR EACH STATEMENT EXECUTE FUNCTION test_slow()"
            )
        ingest.start()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            held.append(ingest.metric("placewatch_ingest_pending_messages"))
            time.sleep(0.1)
        acked_while_slow = ingest.metric("placewatch_ingest_acked_total")
    finally:
        for kind in KINDS:
            pipe.conn.execute(f"DROP TRIGGER IF EXISTS test_slow ON {kind.value}")
        pipe.conn.execute("DROP FUNCTION IF EXISTS test_slow()")
    assert acked_while_slow > 2 * WINDOW, "acknowledgements must have flowed while slow"
    assert max(held) <= WINDOW, f"held up to {max(held):.0f} messages"
    wait_until(lambda: pipe.stored() == BACKLOG, 90, f"{BACKLOG} readings")
    assert pipe.distinct() == BACKLOG
    assert ingest.terminate() == 0
