"""Air quality: each pollutant against the UK Daily Air Quality Index bands, the index now at
each station, and this year's exceedances of the Air Quality Standards objectives. For
environmental health officers. Bands, averaging periods and objectives are the rules engine's
own (rules.kinds.daqi, rules.kinds.objectives), so the dashboard and the alerts agree."""

from __future__ import annotations

import math
from datetime import timedelta

from dashboards.panels import (
    Board,
    Json,
    Thresholds,
    device_variables,
    sql,
    table,
    threshold_colours,
    timeseries,
    value_colours,
)
from rules.kinds.daqi import POLLUTANTS, Pollutant
from rules.kinds.objectives import OBJECTIVES, Objective

# Pollutants the hourly roll-up can average as DAQI asks (SO2's 15-minute mean cannot be).
CHARTED = ("no2", "pm25", "pm10", "o3")
BAND_COLOURS = ("green", "yellow", "red", "purple")  # Low, Moderate, High, Very High

SELECTED = "d.council_id = '$council' AND d.site IN ($site) AND d.device_id IN ($station)"


def _band_thresholds(p: Pollutant) -> Thresholds:
    """Colour steps at the band edges: Low is index 1-3, Moderate 4-6, High 7-9, Very High 10.
    A mean is rounded half up before banding, so a band starts half a unit above the edge."""
    edges = (p.upper[2], p.upper[5], p.upper[8])
    return [(BAND_COLOURS[0], None)] + [
        (colour, edge + 0.5) for colour, edge in zip(BAND_COLOURS[1:], edges, strict=True)
    ]


def _index_sql(p: Pollutant, mean: str) -> str:
    """The DAQI index 1..10 of a mean, as rules.kinds.daqi.daqi_index computes it."""
    rounded = f"floor(round(({mean})::numeric, 6) + 0.5)"
    steps = " ".join(f"WHEN {rounded} <= {u} THEN {i}" for i, u in enumerate(p.upper, start=1))
    return f"CASE WHEN ({mean}) IS NULL THEN NULL {steps} ELSE 10 END"


def _window(p: Pollutant) -> str:
    """Running mean of one station's hourly means ``h`` over the pollutant's averaging period,
    blank without Defra's 75 % data capture (18 of 24 hours for PM, 6 of 8 for O3), as the daqi
    rule."""
    hours = int(p.averaging / timedelta(hours=1))
    window = (
        f"(ORDER BY h.bucket RANGE BETWEEN interval '{hours - 1} hours' PRECEDING AND CURRENT ROW)"
    )
    col = f"h.{p.column}_avg"
    if hours == 1:
        # The mean of one hour is that hour's mean (as avg() over it gives it, in float8).
        return f"CASE WHEN {col} IS NOT NULL THEN {col}::float8 END"
    return (
        f"CASE WHEN count({col}) OVER {window} >= {math.ceil(0.75 * hours)} "
        f"THEN avg({col}) OVER {window} END"
    )


def _pollutant_panel(name: str) -> Json:
    p = POLLUTANTS[name]
    hours = int(p.averaging / timedelta(hours=1))
    # The running mean needs the hours before the range; the mean of the hour ending at t is
    # shown at t.
    # Per station (LATERAL): its hours come in order from the roll-up's key, a few hundred rows
    # each, instead of every station's hours sorted together.
    query = f"""
        SELECT "time", metric, value FROM (
            SELECT m.bucket + interval '1 hour' AS "time", d.site || ' ' || d.device_id AS metric,
                   m.value
            FROM dashboard_devices d
            CROSS JOIN LATERAL (
                SELECT h.bucket, {_window(p)} AS value
                FROM air_quality_hourly h
                WHERE h.council_id = d.council_id AND h.device_id = d.device_id
                  AND h.{p.column}_avg IS NOT NULL
                  AND h.bucket >= $__timeFrom()::timestamptz - interval '{hours} hours'
                  AND h.bucket < $__timeTo()::timestamptz
            ) m
            WHERE {SELECTED}
        ) s
        WHERE $__timeFilter("time")
        ORDER BY 1"""
    return timeseries(
        f"{p.name}: {p.averaging_name}",
        sql(query, series=True),
        description=f"{p.name} {p.averaging_name} (µg/m³) at each station, on the DAQI bands: "
        "green Low, yellow Moderate, red High, purple Very High.",
        unit="conµgm3",
        thresholds=_band_thresholds(p),
        threshold_style="area",
        interval="1h",
    )


def _latest_mean(p: Pollutant) -> str:
    """The running mean of ``_window`` at a station's latest hour ``l.bucket``, as a plain
    aggregate over the hours ``s`` up to it: the same hours and the same 75 % rule."""
    hours = int(p.averaging / timedelta(hours=1))
    col = f"s.{p.column}_avg"
    frame = f"FILTER (WHERE s.bucket >= l.bucket - interval '{hours - 1} hours')"
    return (
        f"CASE WHEN count({col}) {frame} >= {math.ceil(0.75 * hours)} THEN avg({col}) {frame} END"
    )


def _daqi_now() -> Json:
    # The latest complete hour of each station, and each pollutant's running mean there: one
    # aggregate per station over the hours of its longest averaging period (not a running mean
    # of every hour, of which only the last would be kept).
    longest = max(int(POLLUTANTS[n].averaging / timedelta(hours=1)) for n in CHARTED)
    means = ",\n".join(f"{_latest_mean(POLLUTANTS[n])} AS {n}" for n in CHARTED)
    columns = ", ".join(f"h.{POLLUTANTS[n].column}_avg" for n in CHARTED)
    indices = ", ".join(f"{_index_sql(POLLUTANTS[n], n)} AS {n}" for n in CHARTED)
    labels = ", ".join(f'{n} AS "{POLLUTANTS[n].name}"' for n in CHARTED)
    query = f"""
        WITH hours AS (
            SELECT h.device_id, h.bucket, {columns}
            FROM air_quality_hourly h JOIN dashboard_devices d USING (council_id, device_id)
            WHERE {SELECTED} AND h.bucket > now() - interval '2 days'
              AND h.bucket + interval '1 hour' <= now()
        ), latest AS (
            SELECT device_id, max(bucket) AS bucket FROM hours GROUP BY device_id
        ), means AS (
            SELECT l.device_id, l.bucket, {means}
            FROM latest l JOIN hours s ON s.device_id = l.device_id
                                      AND s.bucket > l.bucket - interval '{longest} hours'
                                      AND s.bucket <= l.bucket
            GROUP BY l.device_id, l.bucket
        ), idx AS (
            SELECT device_id, bucket, {indices} FROM means
        ), overall AS (
            SELECT *, greatest({", ".join(CHARTED)}) AS daqi FROM idx
        )
        SELECT d.site, i.device_id AS station, i.bucket + interval '1 hour' AS "hour to",
               {labels}, daqi AS "DAQI",
               CASE WHEN daqi <= 3 THEN 'Low' WHEN daqi <= 6 THEN 'Moderate'
                    WHEN daqi <= 9 THEN 'High' WHEN daqi = 10 THEN 'Very High' END AS band
        FROM overall i JOIN dashboard_devices d ON d.council_id = '$council'
                                            AND d.device_id = i.device_id
        ORDER BY daqi DESC NULLS LAST, d.site, i.device_id"""
    return table(
        "DAQI now",
        sql(query),
        description="Each station's index for its latest complete hour: per pollutant and "
        "overall (the highest). Pollutants a station does not measure are empty.",
        overrides=[
            value_colours(
                "band",
                {"Low": "green", "Moderate": "yellow", "High": "red", "Very High": "purple"},
            )
        ],
    )


def _column(o: Objective) -> str:
    unit = "hours" if o.period == timedelta(hours=1) else "days"
    return f"{o.name} {unit} > {o.limit_ugm3:g} ({o.allowed} allowed)"


def _exceedance_colours(o: Objective) -> Json:
    """Orange once exceeded, red when more than the objective allows (breached for the year)."""
    return threshold_colours(_column(o), [("green", None), ("orange", 1), ("red", o.allowed + 1)])


def _objectives() -> Json:
    """Exceedances since 1 January (UTC, as the objective rule counts them) per station. Each
    objective's periods are counted per station in one pass over the council's hourly rows of
    the year (not once per station)."""
    counts, joins = [], []
    for i, o in enumerate(OBJECTIVES.values()):
        if o.period == timedelta(hours=1):
            periods = f"""SELECT h.device_id, count(*) AS n FROM air_quality_hourly h
                          WHERE h.council_id = '$council' AND h.bucket >= date_trunc('year', now())
                            AND h.{o.column}_avg > {o.limit_ugm3}
                          GROUP BY 1"""
        else:
            # Calendar-day means of the hourly means, valid with 18 of 24 hours (75 %).
            periods = f"""SELECT device_id, count(*) AS n FROM (
                              SELECT h.device_id,
                                     date_bin('1 day', h.bucket, '2000-01-01 00:00+00') AS day,
                                     avg(h.{o.column}_avg) AS mean,
                                     count(h.{o.column}_avg) AS hours
                              FROM air_quality_hourly h
                              WHERE h.council_id = '$council'
                                AND h.bucket >= date_trunc('year', now())
                                AND h.bucket < date_bin('1 day', now(), '2000-01-01 00:00+00')
                              GROUP BY 1, 2) days
                          WHERE hours >= 18 AND mean > {o.limit_ugm3}
                          GROUP BY 1"""
        joins.append(f"LEFT JOIN ({periods}) e{i} ON e{i}.device_id = d.device_id")
        counts.append(f'coalesce(e{i}.n, 0) AS "{_column(o)}"')
    query = f"""
        SELECT d.site, d.device_id AS station, {", ".join(counts)}
        FROM dashboard_devices d
        {" ".join(joins)}
        WHERE d.kind = 'air_quality' AND {SELECTED}
        ORDER BY d.site, d.device_id"""
    return table(
        "Objective exceedances this year",
        sql(query),
        description="Periods above each UK Air Quality Standards objective since 1 January, "
        "against the number the objective allows in a year: "
        + "; ".join(
            f"{o.name} {o.period_name} above {o.limit_ugm3:g} µg/m³, {o.allowed} allowed"
            for o in OBJECTIVES.values()
        )
        + ".",
        overrides=[_exceedance_colours(o) for o in OBJECTIVES.values()],
    )


def board() -> Json:
    b = Board(
        uid="placewatch-air",
        title="Air quality",
        description="Pollutants on the DAQI bands, the index now, objective exceedances.",
        variables=device_variables("air_quality", "station", "Station"),
        tags=["operations", "air-quality"],
    )
    b.add(_daqi_now(), width=14, height=9)
    b.add(_objectives(), width=10, height=9)
    for name in CHARTED:
        b.add(_pollutant_panel(name), width=12, height=9)
    return b.json()
