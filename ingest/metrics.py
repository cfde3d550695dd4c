"""Prometheus metrics of the ingest stage."""

from prometheus_client import Counter, Gauge, Histogram

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
EVENT_LAG_SECONDS = Histogram(
    "placewatch_ingest_event_lag_seconds",
    "Receive time minus event time of stored readings",
    buckets=(0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400),
)
PENDING = Gauge("placewatch_ingest_pending_messages", "Messages received but not yet acknowledged")
PENDING_BYTES = Gauge(
    "placewatch_ingest_pending_bytes", "Payload bytes received but not yet acknowledged"
)
MQTT_CONNECTED = Gauge("placewatch_ingest_mqtt_connected", "1 while connected to the broker")
