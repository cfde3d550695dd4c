"""Pipeline health, from Prometheus: ingest rate, rejects by reason, lag, commit latency, the
rules workers and the webhook dispatcher. For whoever runs the platform."""

from __future__ import annotations

from dashboards.panels import PROMETHEUS, Board, Json, promql, query_variable, stat, timeseries

RATE = "[$__rate_interval]"
JOBS = 'job=~"$job"'


def _quantiles(metric: str, *, by: str = "") -> list[Json]:
    group = f"le{', ' + by if by else ''}"
    legend = f"{{{{{by}}}}} " if by else ""
    return [
        promql(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{JOBS}}}{RATE})))",
            f"{legend}p{round(q * 100)}",
        )
        for q in (0.5, 0.99)
    ]


def board() -> Json:
    b = Board(
        uid="placewatch-pipeline",
        title="Pipeline health",
        description="Ingest, rules and delivery from the services' Prometheus metrics.",
        variables=[
            query_variable(
                "job",
                "Service",
                'label_values(up{job=~"placewatch-.*"}, job)',
                source=PROMETHEUS,
            )
        ],
        tags=["platform"],
        time_from="now-6h",
        refresh="30s",
    )
    b.add(
        stat(
            "Services up",
            promql(f"sum by (job) (up{{{JOBS}}})", "{{job}}"),
            description="Instances of each placewatch service Prometheus can scrape.",
            thresholds=[("red", None), ("green", 1)],
        ),
        width=8,
        height=5,
    )
    b.add(
        stat(
            "Held and waiting",
            promql(f"sum(placewatch_ingest_pending_messages{{{JOBS}}})", "held by ingest"),
            description="Messages ingest has received but not yet acknowledged (bounded by "
            "INGEST_RECEIVE_MAXIMUM).",
        ),
        width=4,
        height=5,
    )
    b.add(
        stat(
            "Broker connection",
            promql(f"min(placewatch_ingest_mqtt_connected{{{JOBS}}})", "ingest connected"),
            description="1 while every ingest replica is connected to the broker.",
            thresholds=[("red", None), ("green", 1)],
        ),
        width=4,
        height=5,
    )
    b.add(
        stat(
            "Rules inbox",
            promql(f"max(placewatch_rules_inbox_rows{{{JOBS}}})", "device batches waiting"),
            description="Committed reading batches waiting for a rules worker.",
            thresholds=[("green", None), ("orange", 1000)],
        ),
        width=4,
        height=5,
    )
    b.add(
        stat(
            "Webhooks pending",
            promql(f"max(placewatch_notify_pending{{{JOBS}}})", "deliveries pending"),
            description="Deliveries waiting for their endpoint (all endpoints).",
            thresholds=[("green", None), ("orange", 100)],
        ),
        width=4,
        height=5,
    )
    b.add(
        timeseries(
            "Ingest rate",
            promql(
                f"sum by (kind) (rate(placewatch_ingest_stored_total{{{JOBS}}}{RATE}))",
                "stored {{kind}}",
            ),
            promql(f"sum(rate(placewatch_ingest_received_total{{{JOBS}}}{RATE}))", "received"),
            promql(f"sum(rate(placewatch_ingest_acked_total{{{JOBS}}}{RATE}))", "acknowledged"),
            promql(f"sum(rate(placewatch_ingest_duplicates_total{{{JOBS}}}{RATE}))", "duplicates"),
            description="Messages taken from the broker, readings committed by kind, "
            "acknowledgements (after commit) and redelivered duplicates absorbed.",
            unit="reqps",
        ),
    )
    b.add(
        timeseries(
            "Rejects by reason",
            promql(
                f"sum by (reason) (rate(placewatch_ingest_rejected_total{{{JOBS}}}{RATE}))",
                "{{reason}}",
            ),
            description="Messages stored as dead letters, by reason (placewatch status lists "
            "them; placewatch replay retries them after a fix).",
            unit="reqps",
            stack=True,
        ),
    )
    b.add(
        timeseries(
            "Commit latency",
            *_quantiles("placewatch_ingest_commit_seconds"),
            description="Time to commit one ingest batch (median, 99th percentile).",
            unit="s",
        ),
        width=8,
    )
    b.add(
        timeseries(
            "Event lag",
            *_quantiles("placewatch_ingest_event_lag_seconds"),
            description="From a reading's event time to its commit: device and network delay "
            "plus any backlog.",
            unit="s",
        ),
        width=8,
    )
    b.add(
        timeseries(
            "Rules lag",
            *_quantiles("placewatch_rules_evaluation_lag_seconds"),
            description="From a reading's commit to its evaluation by a rules worker.",
            unit="s",
        ),
        width=8,
    )
    b.add(
        timeseries(
            "Alerts opened and resolved",
            promql(
                f"sum by (rule) (rate(placewatch_rules_alerts_opened_total{{{JOBS}}}{RATE}))",
                "opened {{rule}}",
            ),
            promql(
                f"sum(rate(placewatch_rules_alerts_resolved_total{{{JOBS}}}{RATE}))", "resolved"
            ),
            description="Alert transitions per second, opened by rule.",
            unit="reqps",
        ),
        width=8,
    )
    b.add(
        timeseries(
            "Webhook deliveries",
            promql(
                f"sum by (endpoint) (rate(placewatch_notify_delivered_total{{{JOBS}}}{RATE}))",
                "delivered {{endpoint}}",
            ),
            promql(
                f"sum by (endpoint) (rate(placewatch_notify_dead_total{{{JOBS}}}{RATE}))",
                "dead {{endpoint}}",
            ),
            promql(f"sum(rate(placewatch_notify_attempts_total{{{JOBS}}}{RATE}))", "attempts"),
            description="Deliveries made and dead-lettered per endpoint, and all attempts.",
            unit="reqps",
        ),
        width=8,
    )
    b.add(
        timeseries(
            "Commit to delivery",
            *_quantiles("placewatch_notify_commit_to_delivery_seconds"),
            description="From the alert change's commit to the endpoint's 2xx.",
            unit="s",
        ),
        width=8,
    )
    b.add(
        timeseries(
            "Errors",
            promql(f"sum(rate(placewatch_ingest_db_errors_total{{{JOBS}}}{RATE}))", "ingest db"),
            promql(f"sum(rate(placewatch_rules_db_errors_total{{{JOBS}}}{RATE}))", "rules db"),
            promql(
                f"sum by (rule) (rate(placewatch_rules_errors_total{{{JOBS}}}{RATE}))",
                "rule {{rule}}",
            ),
            promql(f"sum(rate(placewatch_notify_db_errors_total{{{JOBS}}}{RATE}))", "notify db"),
            promql(
                f"sum by (loop) (rate(placewatch_notify_errors_total{{{JOBS}}}{RATE}))",
                "notify {{loop}}",
            ),
            description="Failed transactions (retried) and rule evaluations that raised. "
            "Anything above zero for long deserves a look at the logs.",
            unit="reqps",
        ),
        width=24,
    )
    return b.json()
