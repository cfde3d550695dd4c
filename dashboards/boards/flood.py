"""Flood: river and gully levels against each gauge's typical range and alert level, and how
fast they are rising. For flood and highways teams. Typical range and alert level are the
registry's per-gauge properties (``typical_low_m``, ``typical_high_m``, ``alert_level_m``)."""

from __future__ import annotations

from dashboards.panels import Board, Json, device_variables, sql, table, timeseries, value_colours

SELECTED = "d.council_id = '$council' AND d.site IN ($site) AND d.device_id IN ($gauge)"
PROPS = """(d.properties->>'typical_low_m')::float8 AS typical_low_m,
           (d.properties->>'typical_high_m')::float8 AS typical_high_m,
           (d.properties->>'alert_level_m')::float8 AS alert_level_m"""

STATUS_COLOURS = {
    "above alert level": "red",
    "above typical": "orange",
    "typical": "green",
    "below typical": "blue",
}


def _gauges_now() -> Json:
    query = f"""
        SELECT site, gauge, level_m AS "level m", typical_low_m AS "typical low m",
               typical_high_m AS "typical high m", alert_level_m AS "alert level m",
               CASE WHEN level_m >= alert_level_m THEN 'above alert level'
                    WHEN level_m > typical_high_m THEN 'above typical'
                    WHEN level_m < typical_low_m THEN 'below typical'
                    WHEN level_m IS NOT NULL THEN 'typical' END AS status,
               round(((level_m - hour_ago_m)
                      / nullif(extract(epoch FROM at - hour_ago_at) / 3600, 0))::numeric, 3)
                   AS "rise m/h",
               at AS "reading at"
        FROM (
            SELECT d.site, d.device_id AS gauge, {PROPS}, now_.level_m, now_.time AS at,
                   before.level_m AS hour_ago_m, before.time AS hour_ago_at
            FROM dashboard_devices d
            LEFT JOIN LATERAL (
                SELECT f.level_m, f.time FROM flood_level f
                WHERE f.council_id = d.council_id AND f.device_id = d.device_id
                ORDER BY f.time DESC LIMIT 1) now_ ON true
            LEFT JOIN LATERAL (
                SELECT f.level_m, f.time FROM flood_level f
                WHERE f.council_id = d.council_id AND f.device_id = d.device_id
                  AND f.time <= now_.time - interval '1 hour'
                ORDER BY f.time DESC LIMIT 1) before ON true
            WHERE d.kind = 'flood_level' AND {SELECTED}
        ) g
        ORDER BY level_m / nullif(alert_level_m, 0) DESC NULLS LAST, site, gauge"""
    return table(
        "Gauges now",
        sql(query),
        description="Each gauge's latest level against its typical range and alert level, "
        "and its rise over the last hour.",
        overrides=[value_colours("status", STATUS_COLOURS)],
    )


def _levels() -> Json:
    # One panel per gauge (repeated by Grafana), each with the gauge's own reference lines.
    levels = f"""
        SELECT $__timeGroupAlias(f.time, $__interval), f.device_id || ' level' AS metric,
               avg(f.level_m) AS value
        FROM flood_level f JOIN dashboard_devices d USING (council_id, device_id)
        WHERE {SELECTED} AND $__timeFilter(f.time)
        GROUP BY 1, 2 ORDER BY 1"""
    # A second query: $__timeGroupAlias gives epoch seconds or a timestamp depending on the
    # TimescaleDB option, so the reference lines cannot share a UNION with it.
    references = f"""
        SELECT t."time", d.device_id || ' ' || r.name AS metric, r.value
        FROM dashboard_devices d
        CROSS JOIN (VALUES ($__timeFrom()::timestamptz), ($__timeTo()::timestamptz)) t("time")
        CROSS JOIN LATERAL (VALUES
            ('typical low', (d.properties->>'typical_low_m')::float8),
            ('typical high', (d.properties->>'typical_high_m')::float8),
            ('alert level', (d.properties->>'alert_level_m')::float8)) r(name, value)
        WHERE d.kind = 'flood_level' AND {SELECTED} AND r.value IS NOT NULL
        ORDER BY 1"""
    return timeseries(
        "Level: $gauge",
        sql(levels, series=True),
        sql(references, series=True),
        description="Water level (m above the gauge datum) with the gauge's typical range "
        "and alert level.",
        unit="lengthm",
        interval="15m",
        repeat="gauge",
        repeatDirection="h",
        maxPerRow=3,
    )


def _rise() -> Json:
    # Per gauge (LATERAL): its hours come in order from the roll-up's key, so the window sorts
    # nothing.
    query = f"""
        SELECT "time", metric, value FROM (
            SELECT r.bucket + interval '1 hour' AS "time", d.device_id AS metric, r.value
            FROM dashboard_devices d
            CROSS JOIN LATERAL (
                SELECT h.bucket,
                       (h.level_m_avg - lag(h.level_m_avg) OVER w)
                         / (extract(epoch FROM h.bucket - lag(h.bucket) OVER w) / 3600) AS value
                FROM flood_level_hourly h
                WHERE h.council_id = d.council_id AND h.device_id = d.device_id
                  AND h.bucket >= $__timeFrom()::timestamptz - interval '2 hours'
                  AND h.bucket < $__timeTo()::timestamptz
                WINDOW w AS (ORDER BY h.bucket)
            ) r
            WHERE {SELECTED}
        ) r
        WHERE $__timeFilter("time") AND value IS NOT NULL
        ORDER BY 1"""
    return timeseries(
        "Rate of rise",
        sql(query, series=True),
        description="Change of each gauge's hourly mean level from the hour before (m/h). "
        "The river-rising-fast rule alerts on the same measure over readings.",
        unit="m/h",
        interval="1h",
    )


def board() -> Json:
    b = Board(
        uid="placewatch-flood",
        title="Flood",
        description="Levels against typical range and alert levels, rate of rise.",
        variables=device_variables("flood_level", "gauge", "Gauge"),
        tags=["operations", "flood"],
    )
    b.add(_gauges_now(), width=14, height=9)
    b.add(_rise(), width=10, height=9)
    b.add(_levels(), width=8, height=8)
    return b.json()
