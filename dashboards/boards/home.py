"""Home activity: the carer view. Residents appear only by their pseudonymous id; their homes'
sensors only through the hourly roll-up (the dashboards' role cannot read raw home readings or
the care rules' state). For telecare teams: open care alerts first, then each resident's
activity against their own usual."""

from __future__ import annotations

from dashboards.panels import (
    LOCAL_TZ,
    SEVERITY_COLOURS,
    Board,
    Json,
    by_severity,
    council_variable,
    query_variable,
    sql,
    table,
    threshold_colours,
    timeseries,
    value_colours,
)

BASELINE_DAYS = 28

# An active hour: any motion or door opening, per resident and local hour. Being in bed or in
# the chair is not activity; nor is appliance power here, because the roll-up counts readings
# above 0 W and a kettle's standby draw is that (the care rules use 20 W, on raw readings).
# Grouped by UTC hour first (five sensors' rows to one), then by local hour (two UTC hours are
# one local hour when the clocks go back): the time zone is applied to a fifth of the rows.
ACTIVE_HOURS = f"""
    SELECT resident_id, (bucket AT TIME ZONE '{LOCAL_TZ}') AS local_hour,
           bool_or(active) AS active
    FROM (SELECT resident_id, bucket, bool_or(motion_count > 0 OR door_opens > 0) AS active
          FROM home_activity_hourly
          WHERE council_id = '$council' AND resident_id IN ($resident)
            AND bucket >= {{since}}
          GROUP BY 1, 2) utc
    GROUP BY 1, 2
"""


def _care_alerts() -> Json:
    query = f"""
        SELECT a.resident_id AS resident, a.state, a.severity, a.rule_id AS rule,
               a.opened_at AS since, a.acknowledged_at AS acknowledged, a.resolved_at AS resolved,
               a.summary
        FROM alerts a
        WHERE a.council_id = '$council' AND a.resident_id IN ($resident)
          AND (a.state <> 'resolved' OR $__timeFilter(a.opened_at))
        ORDER BY a.state = 'resolved', {by_severity("a.severity")}, a.opened_at DESC
        LIMIT 200"""
    return table(
        "Care alerts",
        sql(query),
        description="Open and acknowledged care alerts first (each with its explanation: "
        "expected against observed), then those resolved in the time range.",
        overrides=[value_colours("severity", SEVERITY_COLOURS)],
    )


def _today_against_usual() -> Json:
    # Each day's active hours up to the hour of day it is now, so that today so far is
    # compared with the same part of other days. (No SQL comments in panel queries: Grafana
    # releases differ in whether they strip them before expanding macros.)
    since = f"now() - interval '{BASELINE_DAYS + 1} days'"
    query = f"""
        WITH hours AS ({ACTIVE_HOURS.format(since=since)}),
        local_now AS (SELECT (now() AT TIME ZONE '{LOCAL_TZ}') AS t),
        days AS (
            SELECT resident_id, local_hour::date AS day,
                   count(*) FILTER (WHERE active) AS active_hours
            FROM hours, local_now
            WHERE local_hour::time <= local_now.t::time
            GROUP BY 1, 2
        )
        SELECT r.resident_id AS resident,
               coalesce(t.active_hours, 0) AS "active hours today",
               round(u.usual, 1) AS "usual by now",
               round(100.0 * coalesce(t.active_hours, 0) / nullif(u.usual, 0)) AS "% of usual",
               u.days AS "days in baseline"
        FROM (SELECT DISTINCT resident_id FROM hours) r
        CROSS JOIN local_now
        LEFT JOIN days t ON t.resident_id = r.resident_id AND t.day = local_now.t::date
        LEFT JOIN LATERAL (
            SELECT avg(active_hours) AS usual, count(*) AS days FROM days b
            WHERE b.resident_id = r.resident_id AND b.day < local_now.t::date
        ) u ON true
        ORDER BY "% of usual" NULLS FIRST, resident"""
    return table(
        "Today against usual",
        sql(query),
        description=f"Hours with activity today so far, against the resident's mean over the "
        f"last {BASELINE_DAYS} days up to the same time of day. A low share is worth a look; "
        "the care rules judge it properly (15-minute slots, weekday and weekend, lower tail).",
        overrides=[
            threshold_colours(
                "% of usual",
                [("red", None), ("orange", 50), ("green", 75)],
                cell="color-background",
            )
        ],
    )


def _daily_activity() -> Json:
    since = f"$__timeFrom()::timestamptz - interval '{BASELINE_DAYS + 1} days'"
    query = f"""
        WITH hours AS ({ACTIVE_HOURS.format(since=since)}),
        days AS (
            SELECT resident_id, local_hour::date AS day, count(*) FILTER (WHERE active) AS n
            FROM hours GROUP BY 1, 2
        ), with_usual AS (
            SELECT resident_id, day, n,
                   avg(n) OVER (PARTITION BY resident_id ORDER BY day
                                ROWS BETWEEN {BASELINE_DAYS} PRECEDING AND 1 PRECEDING) AS usual
            FROM days
        )
        SELECT "time", metric, value FROM (
            SELECT day::timestamp AT TIME ZONE '{LOCAL_TZ}' AS "time",
                   resident_id AS metric, n::float8 AS value FROM with_usual
            UNION ALL
            SELECT day::timestamp AT TIME ZONE '{LOCAL_TZ}', resident_id || ' usual', usual
            FROM with_usual
        ) s
        WHERE $__timeFilter("time")
        ORDER BY 1"""
    return timeseries(
        "Active hours per day",
        sql(query, series=True),
        description=f"Hours with activity per local day (today so far), with the mean of the "
        f"{BASELINE_DAYS} days before ('usual').",
        interval="1d",
    )


def board() -> Json:
    b = Board(
        uid="placewatch-home",
        title="Home activity",
        description="Carer view: care alerts, each resident's activity against their usual.",
        variables=[
            council_variable(),
            query_variable(
                "resident",
                "Resident",
                """SELECT DISTINCT resident_id FROM dashboard_devices
                   WHERE council_id = '$council' AND resident_id IS NOT NULL ORDER BY 1""",
            ),
        ],
        tags=["care"],
        refresh="5m",
    )
    b.add(_care_alerts(), width=24, height=9)
    b.add(_today_against_usual(), width=10, height=10)
    b.add(_daily_activity(), width=14, height=10)
    return b.json()
