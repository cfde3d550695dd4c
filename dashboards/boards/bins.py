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
# reading between two high ones is an echo (off the lid or a bag) and is left out. Computed per
# bin (LATERAL): its readings come in time order from the primary key, so the window functions
# need no sort, and no bin's readings wait for another's. One window pass marks emptyings,
# echoes and the latest reading (never an echo: an echo has a reading after it; never before
# the last emptying), so the fill now needs no sort either.
PREDICTION = f"""
    SELECT d.site, d.ward, d.device_id AS bin, f.fill_pct, f.rise_pct_h, f.at,
           CASE WHEN f.fill_pct >= 100 THEN f.at
                WHEN f.rise_pct_h > 0 AND f.readings >= 3
                  THEN f.at + (100 - f.fill_pct) / f.rise_pct_h * interval '1 hour'
           END AS full_at
    FROM dashboard_devices d
    CROSS JOIN LATERAL (
        SELECT max(time) AS at, count(*) AS readings,
               max(fill_pct) FILTER (WHERE latest) AS fill_pct,
               regr_slope(fill_pct, extract(epoch FROM time)) * 3600 AS rise_pct_h
        FROM (
            SELECT time, fill_pct, echo, latest,
                   max(time) FILTER (WHERE emptied) OVER () AS emptied_at
            FROM (
                SELECT b.time, b.fill_pct,
                       lag(b.fill_pct) OVER w - b.fill_pct >= {EMPTIED_DROP_PCT}
                         AND lag(b.fill_pct) OVER w - lead(b.fill_pct) OVER w
                             >= {EMPTIED_DROP_PCT} AS emptied,
                       lag(b.fill_pct) OVER w - b.fill_pct >= {EMPTIED_DROP_PCT}
                         AND lag(b.fill_pct) OVER w - lead(b.fill_pct) OVER w
                             < {EMPTIED_DROP_PCT}
                         AND lead(b.fill_pct) OVER w - b.fill_pct >= {EMPTIED_DROP_PCT} AS echo,
                       lead(b.time) OVER w IS NULL AS latest
                FROM bin_fill b
                WHERE b.council_id = d.council_id AND b.device_id = d.device_id
                  AND b.time > now() - interval '3 days' AND b.fill_pct IS NOT NULL
                WINDOW w AS (ORDER BY b.time)
            ) recent
        ) marked
        WHERE time >= coalesce(emptied_at, '-infinity') AND echo IS NOT TRUE
        HAVING count(*) > 0
    ) f
    WHERE {SELECTED_BINS}
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
                """SELECT $__timeGroupAlias(bucket, $__interval), site AS metric,
                          sum(fill) / nullif(sum(bins), 0) AS fill
                   FROM (SELECT h.bucket, d.site, sum(h.fill_pct_avg::float8) AS fill,
                                count(h.fill_pct_avg) AS bins
                         FROM bin_fill_hourly h
                         JOIN dashboard_devices d USING (council_id, device_id)
                         WHERE d.council_id = '$council' AND d.site IN ($site)
                           AND d.device_id IN ($bin) AND $__timeFilter(h.bucket)
                         GROUP BY 1, 2) s
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
