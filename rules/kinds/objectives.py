"""``aqs_objective``: counts a station's exceedances of a UK Air Quality Standards objective
this calendar year and alerts when the count reaches ``warn_at`` (default: one more than the
objective allows, i.e. the objective is breached for the year).

Limit values (Air Quality Standards Regulations 2010; see docs/rules.md): NO2 200 µg/m³ as a
1-hour mean, not to be exceeded more than 18 times a calendar year; PM10 50 µg/m³ as a (fixed,
calendar-day) 24-hour mean, not more than 35 times. Hourly means come from
``air_quality_hourly`` (a continuous aggregate) on TimescaleDB and from the raw table on
PostgreSQL; a day counts when at least 18 of its hours have data (75 % capture).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from placewatch.kinds import Kind
from rules.durations import Duration
from rules.model import Rule, Transition
from rules.units import clock


@dataclass(frozen=True)
class Objective:
    name: str
    column: str
    limit_ugm3: float
    period: timedelta
    period_name: str
    allowed: int

    def sql(self, hourly_aggregate: bool) -> str:
        """(council_id, device_id, period start) of each exceedance completed in [start, as_of).

        From the hourly continuous aggregate on TimescaleDB; from the raw table, filtered on
        time before bucketing, on plain PostgreSQL (the hourly view there would aggregate the
        whole history before filtering)."""
        col = self.column
        if hourly_aggregate:
            hours = f"""SELECT council_id, device_id, bucket AS hour, {col}_avg AS mean
                        FROM air_quality_hourly
                        WHERE bucket >= %(start)s AND bucket < %(as_of)s
                          AND {col}_avg IS NOT NULL"""
        else:
            hours = f"""SELECT council_id, device_id,
                               date_bin('1 hour', time, '2000-01-01 00:00+00') AS hour,
                               avg({col}) AS mean
                        FROM air_quality
                        WHERE time >= %(start)s AND time < %(as_of)s AND {col} IS NOT NULL
                        GROUP BY 1, 2, 3"""
        if self.period == timedelta(hours=1):
            return f"""SELECT council_id, device_id, hour FROM ({hours}) h
                       WHERE mean > {self.limit_ugm3} AND hour + interval '1 hour' <= %(as_of)s
                       ORDER BY 1, 2, 3"""
        # Fixed calendar-day means of the hourly means, valid with 18 of 24 hours (75 %).
        return f"""SELECT council_id, device_id, day FROM (
                       SELECT council_id, device_id,
                              date_bin('1 day', hour, '2000-01-01 00:00+00') AS day,
                              avg(mean) AS mean, count(*) AS hours
                       FROM ({hours}) h GROUP BY 1, 2, 3) d
                   WHERE hours >= 18 AND mean > {self.limit_ugm3}
                     AND day + interval '1 day' <= %(as_of)s
                   ORDER BY 1, 2, 3"""


OBJECTIVES: dict[str, Objective] = {
    "no2": Objective("NO2", "no2_ugm3", 200, timedelta(hours=1), "hourly mean", 18),
    "pm10": Objective("PM10", "pm10_ugm3", 50, timedelta(days=1), "daily mean", 35),
}


def year_start(at: datetime) -> datetime:
    return datetime(at.year, 1, 1, tzinfo=UTC)


class AqsObjectiveRule(Rule):
    kind: Literal["aqs_objective"]
    kinds: ClassVar[tuple[Kind, ...] | None] = (Kind.AIR_QUALITY,)
    stream = False
    pollutant: Literal["no2", "pm10"]
    warn_at: int | None = Field(default=None, ge=1)
    every: Duration = timedelta(minutes=10)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.every < timedelta(seconds=10):
            raise ValueError("every must be at least 10s")
        return self

    @property
    def objective(self) -> Objective:
        return OBJECTIVES[self.pollutant]

    @property
    def alert_count(self) -> int:
        return self.warn_at if self.warn_at is not None else self.objective.allowed + 1

    def lookback(self) -> timedelta:
        return timedelta(0)

    def evaluate(self, exceedances: list[datetime], year: int) -> Transition | None:
        """The alert for ``year`` if the station's exceedances (period starts, sorted) reach
        ``alert_count``, dated when the period that reached it ended. An alert stands for its
        year (``rules.sweeps`` closes it when the next one starts): a count revised down
        later the same year does not clear it."""
        o = self.objective
        n = len(exceedances)
        if n < self.alert_count:
            return None
        observed = {
            "pollutant": o.name,
            "limit_ugm3": o.limit_ugm3,
            "period": o.period_name,
            "year": year,
            "exceedances": n,
            "allowed": o.allowed,
            "alert_at": self.alert_count,
            "latest": exceedances[-1].isoformat(),
        }
        crossed = exceedances[self.alert_count - 1] + o.period
        verdict = "objective breached" if n > o.allowed else "approaching the objective"
        summary = (
            f"{o.name} {o.period_name} above {o.limit_ugm3:g} µg/m³ {n} times in {year} "
            f"(allowed {o.allowed}): {verdict}; latest {clock(exceedances[-1].timestamp())}"
        )
        return Transition(True, crossed.timestamp(), summary, observed)

    def year_over(self, year: int) -> Transition:
        """Closing an alert of an earlier year when ``year`` starts."""
        at = datetime(year, 1, 1, tzinfo=UTC).timestamp()
        summary = f"new year {year}: {self.objective.name} exceedances are counted again"
        return Transition(False, at, summary, {"year": year})
