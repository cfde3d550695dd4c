"""Prometheus metrics of the ingest stage."""

import math
from bisect import bisect_right
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class BatchHistogram(Collector):
    """A histogram observed a batch at a time: one call per batch instead of one per reading
    (``Histogram.observe`` per reading was 5 % of ingest's CPU in the drain profile)."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self._name, self._doc = name, documentation
        self._bounds = buckets
        self._counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self._sum = 0.0
        REGISTRY.register(self)

    def observe_many(self, values: list[float]) -> None:
        ordered = sorted(values)
        below = 0
        for i, bound in enumerate(self._bounds):
            upto = bisect_right(ordered, bound)  # bucket le=bound holds v <= bound
            self._counts[i] += upto - below
            below = upto
        self._counts[-1] += len(ordered) - below
        self._sum += math.fsum(ordered)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative, running = [], 0
        for bound, n in zip(
            (*map(floatToGoString, self._bounds), "+Inf"), self._counts, strict=True
        ):
            running += n
            cumulative.append((bound, running))
        yield HistogramMetricFamily(self._name, self._doc, buckets=cumulative, sum_value=self._sum)


RECEIVED = Counter("placewatch_ingest_received", "Messages taken from the broker")
STORED = Counter("placewatch_ingest_stored", "Readings committed", ["kind"])
DUPLICATES = Counter(
    "placewatch_ingest_duplicates", "Readings already stored (re-delivery), not stored again"
)
REJECTED = Counter("placewatch_ingest_rejected", "Messages stored as dead letters", ["reason"])
ACKED = Counter("placewatch_ingest_acked", "Messages acknowledged to the broker after commit")
DB_ERRORS = Counter(
    "placewatch_ingest_db_errors", "Failed batch transactions", ["class"]
)  # class: transient (retried) | data (batch bisected)
BATCH_SIZE = Histogram(
    "placewatch_ingest_batch_size",
    "Messages per committed batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
COMMIT_SECONDS = Histogram(
    "placewatch_ingest_commit_seconds",
    "Time to store one batch, retries included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENT_LAG_SECONDS = BatchHistogram(
    "placewatch_ingest_event_lag_seconds",
    "Receive time minus event time of stored readings",
    buckets=(0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400),
)
PENDING = Gauge("placewatch_ingest_pending_messages", "Messages received but not yet acknowledged")
PENDING_BYTES = Gauge(
    "placewatch_ingest_pending_bytes", "Payload bytes received but not yet acknowledged"
)
MQTT_CONNECTED = Gauge("placewatch_ingest_mqtt_connected", "1 while connected to the broker")
