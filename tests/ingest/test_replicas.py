"""Two ingest replicas on one shared subscription share the stream: each message stored once."""

from __future__ import annotations

from simulators.basic import ReadingGenerator
from tests.support.pipeline import Pipeline
from tests.support.traffic import wait_until


def test_two_replicas_on_a_shared_subscription(pipe: Pipeline) -> None:
    pipe.broker.require_mosquitto("shared subscriptions, which amqtt 0.12.1 does not implement")
    devices = pipe.register(per_kind=5)
    group = f"g{pipe.council}"
    first = pipe.ingest(ingest_shared_group=group)
    second = pipe.ingest(ingest_shared_group=group)
    assert first.client_id != second.client_id
    pipe.publish(
        m for _, m in zip(range(4000), ReadingGenerator(devices, pipe.prefix), strict=False)
    )
    wait_until(lambda: pipe.stored() == 4000, 60, "4000 readings")
    counts = [p.metric("placewatch_ingest_acked_total") for p in (first, second)]
    assert sum(counts) == 4000 and min(counts) > 0, counts  # both took a share
    assert first.metric("placewatch_ingest_duplicates_total") == 0
    assert second.metric("placewatch_ingest_duplicates_total") == 0
