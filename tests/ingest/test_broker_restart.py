"""Ingest reconnects to a restarted broker by itself and resumes its persistent session."""

from __future__ import annotations

from simulators.basic import ReadingGenerator
from tests.support.pipeline import Pipeline
from tests.support.traffic import wait_until


def test_reconnects_after_broker_restart(pipe: Pipeline) -> None:
    pipe.broker.require_mosquitto("sessions and queues saved across a broker restart")
    devices = pipe.register(per_kind=2)
    stream = iter(ReadingGenerator(devices, pipe.prefix))
    ingest = pipe.ingest()
    pipe.publish(next(stream) for _ in range(500))
    wait_until(lambda: pipe.stored() == 500, 30, "first 500")

    pipe.broker.stop()  # clean stop: the broker saves sessions and queues
    pipe.broker.start()
    pipe.publish(next(stream) for _ in range(500))  # queued for ingest's session
    wait_until(lambda: pipe.stored() == 1000, 60, "500 more after the restart")
    wait_until(lambda: ingest.http("/readyz")[0] == 200, 30, "ready again")
    assert ingest.starts == 1 and ingest.alive()
    assert pipe.distinct() == 1000
