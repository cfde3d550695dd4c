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
    """Running mean of the hourly means over the pollutant's averaging period, blank without
    Defra's 75 % data capture (18 of 24 hours for PM, 6 of 8 for O3), as the daqi rule."""
    hours = int(p.averaging / timedelta(hours=1))
    window = (
        f"(PARTITION BY h.device_id ORDER BY h.bucket "
        f"RANGE BETWEEN interval '{hours - 1} hours' PRECEDING AND CURRENT ROW)"
    )
    col = f"h.{p.column}_avg"
    return (
        f"CASE WHEN count({col}) OVER {window} >= {math.ceil(0.75 * hours)} "
        f"THEN avg({col}) OVER {window} END"
    )


def _pollutant_panel(name: str) -> Json:
    p = POLLUTANTS[name]
    hours = int(p.averaging / timedelta(hours=1))
    # The running mean needs the hours before the range; the mean of the hour ending at t is
    # shown at t.
    query = f"""
        SELECT "time", metric, value FROM (
            SELECT h.bucket + interval '1 hour' AS "time", d.site || ' ' || h.device_id AS metric,
                   {_window(p)} AS value
            FROM air_quality_hourly h JOIN dashboard_devices d USING (council_id, device_id)
            WHERE {SELECTED} AND h.{p.column}_avg IS NOT NULL
              AND h.bucket >= $__timeFrom()::timestamptz - interval '{hours} hours'
              AND h.bucket < $__timeTo()::timestamptz
        ) m
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


def _daqi_now() -> Json:
    # The latest complete hour of each station.
    means = ",\n".join(f"{_window(POLLUTANTS[n])} AS {n}" for n in CHARTED)
    indices = ", ".join(f"{_index_sql(POLLUTANTS[n], n)} AS {n}" for n in CHARTED)
    labels = ", ".join(f'{n} AS "{POLLUTANTS[n].name}"' for n in CHARTED)
    query = f"""
        WITH means AS (
            SELECT h.device_id, h.bucket, {means},
                   row_number() OVER (PARTITION BY h.device_id ORDER BY h.bucket DESC) AS latest
            FROM air_quality_hourly h JOIN dashboard_devices d USING (council_id, device_id)
            WHERE {SELECTED} AND h.bucket > now() - interval '2 days'
              AND h.bucket + interval '1 hour' <= now()
        ), idx AS (
            SELECT device_id, bucket, {indices} FROM means WHERE latest = 1
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
    """Exceedances since 1 January (UTC, as the objective rule counts them) per station."""
    counts = []
    for o in OBJECTIVES.values():
        if o.period == timedelta(hours=1):
            periods = f"""SELECT h.device_id FROM air_quality_hourly h
                          WHERE h.council_id = '$council' AND h.bucket >= date_trunc('year', now())
                            AND h.{o.column}_avg > {o.limit_ugm3}"""
        else:
            # Calendar-day means of the hourly means, valid with 18 of 24 hours (75 %).
            periods = f"""SELECT device_id FROM (
                              SELECT h.device_id,
                                     date_bin('1 day', h.bucket, '2000-01-01 00:00+00') AS day,
                                     avg(h.{o.column}_avg) AS mean,
                                     count(h.{o.column}_avg) AS hours
                              FROM air_quality_hourly h
                              WHERE h.council_id = '$council'
                                AND h.bucket >= date_trunc('year', now())
                                AND h.bucket < date_bin('1 day', now(), '2000-01-01 00:00+00')
                              GROUP BY 1, 2) days
                          WHERE hours >= 18 AND mean > {o.limit_ugm3}"""
        count = f"SELECT count(*) FROM ({periods}) e WHERE e.device_id = d.device_id"
        counts.append(f'({count}) AS "{_column(o)}"')
    query = f"""
        SELECT d.site, d.device_id AS station, {", ".join(counts)}
        FROM dashboard_devices d
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
