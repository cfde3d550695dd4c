"""Prometheus metrics of the webhook dispatcher."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("placewatch_notify_events", "Alert events fanned out from the outbox")
UNROUTED = Counter(
    "placewatch_notify_events_unrouted", "Alert events no team's routes matched (not sent)"
)
ATTEMPTS = Counter(
    "placewatch_notify_attempts",
    "Delivery attempts by endpoint and outcome (success, http_error, timeout, refused, error)",
    ["endpoint", "outcome"],
)
DELIVERED = Counter("placewatch_notify_delivered", "Deliveries made", ["endpoint"])
DEAD = Counter("placewatch_notify_dead", "Deliveries dead-lettered", ["endpoint"])
WITHDRAWN = Counter(
    "placewatch_notify_withdrawn",
    "Pending deliveries withdrawn because their team no longer sees the alert",
)
ATTEMPT_SECONDS = Histogram(
    "placewatch_notify_attempt_seconds",
    "Duration of one delivery attempt",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
COMMIT_TO_DELIVERY = Histogram(
    "placewatch_notify_commit_to_delivery_seconds",
    "From the commit of the alert change to the receiver's 2xx",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 300, 3600),
)
PENDING = Gauge("placewatch_notify_pending", "Deliveries waiting (all endpoints)")
CIRCUIT_OPEN = Gauge(
    "placewatch_notify_circuit_open", "1 while an endpoint's circuit is open", ["endpoint"]
)
DB_ERRORS = Counter("placewatch_notify_db_errors", "Failed dispatcher transactions (retried)")
ERRORS = Counter("placewatch_notify_errors", "Unexpected dispatcher errors (retried)", ["loop"])
