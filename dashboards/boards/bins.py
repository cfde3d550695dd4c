"""Bins: how full the bins are by site, when each will be full, and today's collection list.
For waste teams planning rounds."""

from __future__ import annotations

from dashboards.panels import (
    LOCAL_TZ,
    Board,
    Json,
    bargauge,
    device_variables,
    sql,
    stat,
    table,
    threshold_colours,
    timeseries,
)

COLLECT_AT_PCT = 80.0
# A fall of this much between readings is an emptying (as the time-to-full rule's default).
EMPTIED_DROP_PCT = 30
FILL_THRESHOLDS = [("green", None), ("yellow", 60.0), ("orange", COLLECT_AT_PCT), ("red", 95.0)]

SELECTED_BINS = "d.council_id = '$council' AND d.site IN ($site) AND d.device_id IN ($bin)"

# Per bin: the fill now, and its rise since the last emptying (least squares over the readings
# of the last three days after it), giving the moment it reaches 100 %. As the time-to-full rule
# (rules.kinds.bins.last_emptying): an emptying is a fall the next reading confirms; a single low
# reading between two high ones is an echo (off the lid or a bag) and is left out.
PREDICTION = f"""
    WITH recent AS (
        SELECT b.device_id, b.time, b.fill_pct,
               lag(b.fill_pct) OVER w - b.fill_pct AS fall,
               lag(b.fill_pct) OVER w - lead(b.fill_pct) OVER w AS fall_after
        FROM bin_fill b JOIN dashboard_devices d USING (council_id, device_id)
        WHERE {SELECTED_BINS} AND b.time > now() - interval '3 days' AND b.fill_pct IS NOT NULL
        WINDOW w AS (PARTITION BY b.device_id ORDER BY b.time)
    ), marked AS (
        SELECT *,
               max(time) FILTER (WHERE fall >= {EMPTIED_DROP_PCT}
                                   AND fall_after >= {EMPTIED_DROP_PCT})
                   OVER (PARTITION BY device_id) AS emptied_at,
               fall >= {EMPTIED_DROP_PCT} AND fall_after < {EMPTIED_DROP_PCT}
                   AND lead(fill_pct) OVER (PARTITION BY device_id ORDER BY time) - fill_pct
                       >= {EMPTIED_DROP_PCT} AS echo
        FROM recent
    ), fit AS (
        SELECT device_id, max(time) AS at, count(*) AS readings,
               (array_agg(fill_pct ORDER BY time DESC))[1] AS fill_pct,
               regr_slope(fill_pct, extract(epoch FROM time)) * 3600 AS rise_pct_h
        FROM marked
        WHERE time >= coalesce(emptied_at, '-infinity') AND echo IS NOT TRUE
        GROUP BY device_id
    )
    SELECT d.site, d.ward, f.device_id AS bin, f.fill_pct, f.rise_pct_h, f.at,
           CASE WHEN f.fill_pct >= 100 THEN f.at
                WHEN f.rise_pct_h > 0 AND f.readings >= 3
                  THEN f.at + (100 - f.fill_pct) / f.rise_pct_h * interval '1 hour'
           END AS full_at
    FROM fit f JOIN dashboard_devices d ON d.council_id = '$council' AND d.device_id = f.device_id
"""

END_OF_TODAY = (
    f"(date_trunc('day', now() AT TIME ZONE '{LOCAL_TZ}') + interval '1 day') "
    f"AT TIME ZONE '{LOCAL_TZ}'"
)


def board() -> Json:
    b = Board(
        uid="placewatch-bins",
        title="Bins",
        description="Fill by site, predicted full, and today's collection list.",
        variables=device_variables("bin_fill", "bin", "Bin"),
        tags=["operations", "waste"],
    )
    b.add(
        stat(
            "Bins to collect today",
            sql(
                f"""SELECT count(*) FILTER (WHERE fill_pct >= {COLLECT_AT_PCT}) AS "full now",
                           count(*) FILTER (WHERE fill_pct < {COLLECT_AT_PCT}
                                            AND full_at < {END_OF_TODAY}) AS "full by tonight",
                           count(*) AS "bins reporting"
                    FROM ({PREDICTION}) p"""
            ),
            description=f"Bins at {COLLECT_AT_PCT} % or more, and bins predicted to be full "
            "before midnight (local time), of those that reported in the last three days.",
            overrides=[
                threshold_colours(name, [("green", None), ("orange", 1)], cell=None)
                for name in ("full now", "full by tonight")
            ],
        ),
        width=8,
        height=5,
    )
    b.add(
        bargauge(
            "Fill by site",
            sql(
                f"""SELECT site, round(avg(fill_pct)::numeric, 1) AS "mean fill",
                           round(max(fill_pct)::numeric, 1) AS "fullest"
                    FROM ({PREDICTION}) p GROUP BY site ORDER BY avg(fill_pct) DESC"""
            ),
            description="Each site's bins now: mean fill and the fullest bin.",
            unit="percent",
            thresholds=FILL_THRESHOLDS,
            max_value=100,
        ),
        width=16,
        height=10,
    )
    b.add(
        table(
            "Today's collection list",
            sql(
                f"""SELECT ward, site, bin, round(fill_pct::numeric) AS "fill %",
                           full_at AS "predicted full",
                           CASE WHEN fill_pct >= {COLLECT_AT_PCT} THEN 'full now'
                                ELSE 'full by tonight' END AS why
                    FROM ({PREDICTION}) p
                    WHERE fill_pct >= {COLLECT_AT_PCT} OR full_at < {END_OF_TODAY}
                    ORDER BY ward, site, full_at NULLS FIRST, bin"""
            ),
            description="The round for today, by ward and site: full now, or predicted full "
            "before midnight.",
        ),
        width=12,
        height=12,
    )
    b.add(
        table(
            "Predicted full",
            sql(
                f"""SELECT site, bin, round(fill_pct::numeric) AS "fill %",
                           round(rise_pct_h::numeric, 2) AS "rise %/h",
                           full_at AS "predicted full", at AS "last reading"
                    FROM ({PREDICTION}) p ORDER BY full_at NULLS LAST, fill_pct DESC"""
            ),
            description="When each bin reaches 100 %, from its rise since it was last emptied "
            f"(a fall of {EMPTIED_DROP_PCT} points or more between readings). Empty when a "
            "bin is not filling.",
        ),
        width=12,
        height=12,
    )
    b.add(
        timeseries(
            "Fill by site",
            sql(
                """SELECT $__timeGroupAlias(h.bucket, $__interval), d.site AS metric,
                          avg(h.fill_pct_avg) AS fill
                   FROM bin_fill_hourly h JOIN dashboard_devices d USING (council_id, device_id)
                   WHERE d.council_id = '$council' AND d.site IN ($site)
                     AND d.device_id IN ($bin) AND $__timeFilter(h.bucket)
                   GROUP BY 1, 2 ORDER BY 1""",
                series=True,
            ),
            description="Mean fill of each site's bins (hourly roll-up): the saw-tooth is "
            "filling and collection rounds.",
            unit="percent",
            interval="1h",
        ),
        width=24,
        height=9,
    )
    return b.json()
