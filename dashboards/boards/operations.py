"""Operations overview: where the estate's devices are and which need a visit, and the open
street alerts. For the operations room (waste, highways, flood and environment teams)."""

from __future__ import annotations

from dashboards.panels import (
    SEVERITY_COLOURS,
    Board,
    Json,
    bargauge,
    by_severity,
    device_variables,
    geomap,
    query_variable,
    sql,
    table,
    timeseries,
    value_colours,
)

LOW_BATTERY_PCT = 20

# Each device's status now. "Silent": no reading stamped within twice its expected interval
# (event time, so a device replaying old data does not look current). "Low battery": its latest
# street reading says so, or a low-battery alert is open (home sensors' raw readings are not
# readable by the dashboards' role; their alerts are). Quarantined devices (auto-registered,
# with no site yet) are listed whatever the ward and site selection.
DEVICE_STATUS = f"""
    SELECT d.device_id, d.kind, d.site, d.ward, d.latitude, d.longitude, d.last_reading_at,
           b.battery_pct,
           CASE
             WHEN d.status = 'quarantined' THEN 'quarantined'
             WHEN d.last_reading_at IS NULL THEN 'never heard'
             WHEN d.last_reading_at
                  < now() - 2 * coalesce(d.expected_interval_s, 3600) * interval '1 second'
               THEN 'silent'
             WHEN b.battery_pct < {LOW_BATTERY_PCT} OR EXISTS (
                    SELECT 1 FROM alerts a
                    WHERE a.council_id = d.council_id AND a.subject_type = 'device'
                      AND a.subject_id = d.device_id AND a.rule_kind = 'low_battery'
                      AND a.state <> 'resolved')
               THEN 'low battery'
             ELSE 'ok'
           END AS status
    FROM dashboard_devices d
    LEFT JOIN LATERAL (
        (SELECT battery_pct FROM bin_fill r
         WHERE d.kind = 'bin_fill' AND r.council_id = d.council_id AND r.device_id = d.device_id
         ORDER BY r.time DESC LIMIT 1)
        UNION ALL
        (SELECT battery_pct FROM air_quality r
         WHERE d.kind = 'air_quality' AND r.council_id = d.council_id
           AND r.device_id = d.device_id
         ORDER BY r.time DESC LIMIT 1)
        UNION ALL
        (SELECT battery_pct FROM flood_level r
         WHERE d.kind = 'flood_level' AND r.council_id = d.council_id
           AND r.device_id = d.device_id
         ORDER BY r.time DESC LIMIT 1)
    ) b ON true
    WHERE d.council_id = '$council' AND d.kind IN ($kind)
      AND (d.status = 'quarantined' OR (d.ward IN ($ward) AND d.site IN ($site)))
"""

STATUS_COLOURS = {
    "ok": "green",
    "low battery": "orange",
    "silent": "red",
    "never heard": "purple",
    "quarantined": "blue",
}

# Street alerts only: care alerts (about a resident) are for carers, on the Home activity board.
STREET_ALERTS = "a.council_id = '$council' AND a.resident_id IS NULL"


def board() -> Json:
    variables = device_variables(None)[:3]
    variables.append(
        query_variable(
            "kind",
            "Sensor kind",
            "SELECT DISTINCT kind FROM dashboard_devices WHERE council_id = '$council' ORDER BY 1",
        )
    )
    b = Board(
        uid="placewatch-operations",
        title="Operations overview",
        description="Devices by status on a map, open street alerts, devices to visit.",
        variables=variables,
        tags=["operations"],
    )
    b.add(
        geomap(
            "Devices by status",
            sql(f"SELECT * FROM ({DEVICE_STATUS}) s WHERE latitude IS NOT NULL"),
            description="Street sensors at their registered positions, coloured by status. "
            "Home sensors are not shown: their position is a resident's home.",
            colour_field="status",
            overrides=[value_colours("status", STATUS_COLOURS)],
        ),
        width=14,
        height=14,
    )
    b.add(
        bargauge(
            "Open street alerts by severity",
            sql(
                f"""SELECT s.severity, count(a.alert_id) AS "open alerts"
                    FROM unnest(ARRAY['critical', 'warning', 'info']) WITH ORDINALITY
                         AS s(severity, rank)
                    LEFT JOIN alerts a ON a.severity = s.severity AND a.state <> 'resolved'
                         AND {STREET_ALERTS}
                    GROUP BY s.severity, s.rank ORDER BY s.rank"""
            ),
            description="Open or acknowledged alerts about street sensors and sites.",
            thresholds=[("green", None), ("orange", 1)],
        ),
        width=10,
        height=5,
    )
    b.add(
        table(
            "Device count by status",
            sql(
                f"""SELECT status, count(*) AS devices FROM ({DEVICE_STATUS}) s
                    GROUP BY status ORDER BY count(*) DESC"""
            ),
            description="Every registered device of the selection (home sensors included), "
            "by status.",
            overrides=[value_colours("status", STATUS_COLOURS)],
        ),
        width=10,
        height=9,
    )
    b.add(
        table(
            "Devices silent or low on battery",
            sql(
                f"""SELECT status, kind, site, device_id AS device, last_reading_at AS
                           "last reading", battery_pct AS "battery %"
                    FROM ({DEVICE_STATUS}) s WHERE status <> 'ok'
                    ORDER BY status, last_reading_at NULLS FIRST"""
            ),
            description="Devices to visit: no reading within twice their expected interval, "
            f"battery under {LOW_BATTERY_PCT} % or a low-battery alert open, never heard, or "
            "auto-registered and waiting for approval.",
            overrides=[value_colours("status", STATUS_COLOURS)],
        ),
        width=12,
        height=10,
    )
    b.add(
        table(
            "Open street alerts",
            sql(
                f"""SELECT a.opened_at AS opened, a.severity, a.state, a.rule_id AS rule,
                           a.subject_id AS subject, a.site, a.summary
                    FROM alerts a WHERE {STREET_ALERTS} AND a.state <> 'resolved'
                    ORDER BY {by_severity("a.severity")}, a.opened_at DESC
                    LIMIT 200"""
            ),
            description="What the street rules have raised and nobody has resolved yet.",
            overrides=[value_colours("severity", SEVERITY_COLOURS)],
        ),
        width=12,
        height=10,
    )
    b.add(
        timeseries(
            "Street alerts opened",
            sql(
                f"""SELECT $__timeGroupAlias(a.opened_at, $__interval), a.severity AS metric,
                           count(*) AS alerts
                    FROM alerts a WHERE {STREET_ALERTS} AND $__timeFilter(a.opened_at)
                    GROUP BY 1, 2 ORDER BY 1""",
                series=True,
            ),
            description="Alerts opened per interval, by severity.",
            bars=True,
            stack=True,
            interval="1h",
        ),
    )
    b.add(
        timeseries(
            "Readings stored",
            sql(
                """SELECT $__timeGroupAlias(bucket, $__interval), kind AS metric,
                          sum(readings) AS readings
                   FROM (SELECT bucket, kind, sum(readings) AS readings
                         FROM (SELECT bucket, council_id, readings,
                                      'bin_fill' AS kind FROM bin_fill_hourly
                               UNION ALL
                               SELECT bucket, council_id, readings,
                                      'air_quality' FROM air_quality_hourly
                               UNION ALL
                               SELECT bucket, council_id, readings,
                                      'flood_level' FROM flood_level_hourly
                               UNION ALL
                               SELECT bucket, council_id, readings,
                                      'home_activity' FROM home_activity_hourly) r
                         WHERE council_id = '$council' AND $__timeFilter(bucket)
                           AND kind IN ($kind)
                         GROUP BY 1, 2) h
                   GROUP BY 1, 2 ORDER BY 1""",
                series=True,
            ),
            description="Readings per interval by sensor kind (hourly roll-ups). A gap is "
            "a stretch with nothing stored: check Pipeline health.",
            stack=True,
            interval="1h",
        ),
    )
    return b.json()
