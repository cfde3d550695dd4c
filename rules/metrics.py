"""Prometheus metrics of the rules workers."""

from prometheus_client import Counter, Gauge, Histogram

from rules.stream import Outcome

EVALUATIONS = Counter(
    "placewatch_rules_evaluations",
    "Rule evaluations (a rule over one subject's new readings)",
    ["rule"],
)
READINGS = Counter("placewatch_rules_readings", "Committed readings evaluated")
OPENED = Counter("placewatch_rules_alerts_opened", "Alerts opened", ["rule"])
RESOLVED = Counter("placewatch_rules_alerts_resolved", "Alerts resolved by their rule", ["rule"])
ESCALATED = Counter(
    "placewatch_rules_alerts_escalated", "Unacknowledged alerts escalated or re-notified", ["rule"]
)
TOO_LATE = Counter(
    "placewatch_rules_too_late",
    "Evaluations that skipped readings older than the allowed lateness",
)
ERRORS = Counter("placewatch_rules_errors", "Rule evaluations that raised", ["rule"])
DB_ERRORS = Counter("placewatch_rules_db_errors", "Failed rules transactions (retried)")
LAG_SECONDS = Histogram(
    "placewatch_rules_evaluation_lag_seconds",
    "From the reading's commit to the commit of its evaluation",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
INBOX = Gauge(
    "placewatch_rules_inbox_rows", "Inbox rows waiting for evaluation (counted up to 1,000,000)"
)
SILENCE_HELD = Gauge(
    "placewatch_rules_silence_held",
    "1 while silence alerts are held back because ingest is not (or only just) healthy",
)
RELOADS = Counter("placewatch_rules_reloads", "Rule file reloads", ["result"])
RULES_LOADED = Gauge("placewatch_rules_loaded", "Rules in force")


def count(outcome: Outcome, lag_s: float | None) -> None:
    """Record a committed outcome (never one that rolled back)."""
    READINGS.inc(outcome.readings)
    for name, counter in (
        ("evaluations", EVALUATIONS),
        ("opened", OPENED),
        ("resolved", RESOLVED),
        ("escalated", ESCALATED),
        ("errors", ERRORS),
    ):
        for rule, n in getattr(outcome, name).items():
            counter.labels(rule).inc(n)
    TOO_LATE.inc(outcome.too_late)
    if lag_s is not None:
        LAG_SECONDS.observe(lag_s)
