"""Alerts and deliveries: what was raised, and whether the teams' webhook endpoints took it and
how fast. For the platform's operators and the teams' integrators. Care alerts appear here by
id and rule only: their explanations are for carers (Home activity board)."""

from __future__ import annotations

from dashboards.panels import (
    Board,
    Json,
    council_variable,
    query_variable,
    sql,
    stat,
    table,
    threshold_colours,
    timeseries,
    value_colours,
)

DELIVERIES = "w.council_id = '$council' AND w.team_id IN ($team)"
ALERT_STATE_COLOURS = {"open": "red", "acknowledged": "orange", "resolved": "green"}


def board() -> Json:
    b = Board(
        uid="placewatch-deliveries",
        title="Alerts and deliveries",
        description="Alerts raised, webhook outcomes and latency, endpoint health.",
        variables=[
            council_variable(),
            query_variable(
                "team",
                "Team",
                "SELECT team_id AS __value, name AS __text FROM teams "
                "WHERE council_id = '$council' ORDER BY name",
            ),
        ],
        tags=["operations", "delivery"],
    )
    b.add(
        stat(
            "Deliveries in range",
            sql(
                f"""SELECT count(*) FILTER (WHERE state = 'delivered') AS delivered,
                           count(*) FILTER (WHERE state = 'pending') AS pending,
                           count(*) FILTER (WHERE state = 'dead') AS dead
                    FROM webhook_deliveries w
                    WHERE {DELIVERIES} AND $__timeFilter(w.created_at)"""
            ),
            description="Alert events sent to the selected teams' endpoints, by outcome. Dead: "
            "not taken before the give-up time (placewatch webhooks redeliver sends them again).",
            overrides=[threshold_colours("dead", [("green", None), ("red", 1)], cell=None)],
        ),
        width=8,
        height=5,
    )
    b.add(
        timeseries(
            "Webhook attempts by outcome",
            sql(
                f"""SELECT $__timeGroupAlias(a.started_at, $__interval),
                           CASE WHEN a.status BETWEEN 200 AND 299 THEN 'accepted (2xx)'
                                WHEN a.status IS NULL THEN 'no answer'
                                ELSE 'refused (' || a.status || ')' END AS metric,
                           count(*) AS attempts
                    FROM webhook_attempts a JOIN webhook_deliveries w USING (delivery_id)
                    WHERE {DELIVERIES} AND $__timeFilter(a.started_at)
                    GROUP BY 1, 2 ORDER BY 1""",
                series=True,
            ),
            description="Every POST to an endpoint: accepted, refused with a status, or no "
            "answer (timeout, connection refused).",
            bars=True,
            stack=True,
            interval="5m",
        ),
        width=16,
        height=8,
    )
    b.add(
        timeseries(
            "Commit to delivery latency",
            sql(
                f"""SELECT $__timeGroupAlias(w.delivered_at, $__interval), l.metric,
                           percentile_cont(l.q) WITHIN GROUP (ORDER BY
                               extract(epoch FROM w.delivered_at - w.event_committed_at)) AS value
                    FROM webhook_deliveries w
                    CROSS JOIN (VALUES ('p50', 0.5), ('p99', 0.99)) l(metric, q)
                    WHERE {DELIVERIES} AND w.state = 'delivered'
                      AND $__timeFilter(w.delivered_at)
                    GROUP BY 1, 2, l.q ORDER BY 1""",
                series=True,
            ),
            description="From the commit of the alert change to the endpoint's 2xx, including "
            "retries: median and 99th percentile per interval.",
            unit="s",
            interval="5m",
        ),
        width=12,
        height=8,
    )
    b.add(
        table(
            "Endpoints",
            sql(
                """SELECT e.endpoint_id AS endpoint, e.team_id AS team, e.enabled,
                           CASE WHEN e.circuit_open_until > now() THEN 'open until '
                                     || to_char(e.circuit_open_until, 'HH24:MI:SS')
                                ELSE 'closed' END AS circuit,
                           count(w.delivery_id) FILTER (WHERE w.state = 'delivered') AS delivered,
                           count(w.delivery_id) FILTER (WHERE w.state = 'pending') AS pending,
                           count(w.delivery_id) FILTER (WHERE w.state = 'dead') AS dead,
                           round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch
                               FROM w.delivered_at - w.event_committed_at)))::numeric, 2)
                               AS "p95 latency s",
                           max(w.delivered_at) AS "last delivered"
                    FROM webhook_endpoints e
                    JOIN teams t ON t.team_id = e.team_id
                    LEFT JOIN webhook_deliveries w
                           ON w.endpoint_id = e.endpoint_id AND $__timeFilter(w.created_at)
                    WHERE t.council_id = '$council' AND e.team_id IN ($team)
                    GROUP BY e.endpoint_id, e.team_id, e.enabled, e.circuit_open_until
                    ORDER BY dead DESC, pending DESC, endpoint"""
            ),
            description="Each endpoint in the time range: outcomes, latency, and its circuit "
            "breaker (open: failing, attempts paused).",
        ),
        width=12,
        height=8,
    )
    b.add(
        table(
            "Alerts",
            sql(
                """SELECT a.alert_id AS id, a.opened_at AS opened, a.severity, a.state,
                          a.rule_id AS rule, a.subject_type || ' ' || a.subject_id AS subject,
                          a.acknowledged_at - a.opened_at AS "to acknowledge",
                          a.resolved_at - a.opened_at AS "open for",
                          CASE WHEN a.resident_id IS NULL THEN a.summary
                               ELSE '(care alert: see Home activity)' END AS summary
                   FROM alerts a
                   WHERE a.council_id = '$council' AND $__timeFilter(a.opened_at)
                   ORDER BY a.opened_at DESC LIMIT 500"""
            ),
            description="Alerts opened in the time range, newest first, with how long they "
            "took to acknowledge and resolve.",
            overrides=[value_colours("state", ALERT_STATE_COLOURS)],
        ),
        width=24,
        height=10,
    )
    return b.json()
