"""Times as scenario files and the command line write them.

A scenario's events are written relative to the run's first day (``day 3 14:20``: local time on
the fourth day), so one file serves a backfill ending today and a replay of any past week alike;
an absolute ISO date-time also works. Times of day are ``HH:MM`` in the scenario's timezone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator

from rules.durations import parse_duration, parse_time_of_day

_DAY = re.compile(r"^day\s*(\d{1,4})(?:\s+(\d{1,2}):(\d{2}))?$")


@dataclass(frozen=True)
class DayTime:
    """``day N HH:MM``: local time on the run's day N (day 0 is the local date of the start)."""

    day: int
    minute: int

    def resolve(self, day0: date, tz: ZoneInfo) -> datetime:
        hours, minutes = divmod(self.minute, 60)
        local = datetime.combine(day0 + timedelta(days=self.day), time(hours, minutes), tz)
        return local.astimezone(UTC)


def parse_when(value: Any) -> DayTime | datetime:
    if isinstance(value, datetime):
        # YAML timestamps arrive as naive UTC when written with Z.
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        if m := _DAY.match(text):
            minute = parse_time_of_day(f"{m[2]}:{m[3]}") if m[2] else 0
            return DayTime(int(m[1]), minute)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                raise ValueError(f"{value!r} has no UTC offset (write e.g. {text}Z)")
            return moment
    raise ValueError(
        f"{value!r} is not a time: write 'day 3 14:20' or an ISO date-time with offset"
    )


When = Annotated[DayTime | datetime, BeforeValidator(parse_when)]


def resolve(when: DayTime | datetime, day0: date, tz: ZoneInfo) -> datetime:
    return when.resolve(day0, tz) if isinstance(when, DayTime) else when.astimezone(UTC)


def local_midnight(moment: datetime, tz: ZoneInfo) -> datetime:
    """The start of ``moment``'s local day, in UTC."""
    local = moment.astimezone(tz)
    return datetime.combine(local.date(), time(0), tz).astimezone(UTC)


def parse_cli_time(text: str, now: datetime, start: datetime | None = None) -> datetime:
    """``--start``/``--until``: ``now``, an ISO date or date-time (UTC unless it says), a
    duration ago (``7d``), or ``+DURATION`` after ``start``."""
    text = text.strip()
    if text == "now":
        return now
    if text.startswith("+"):
        if start is None:
            raise ValueError(f"{text!r}: a time after the start needs a start")
        return start + parse_duration(text[1:])
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a time: give now, an ISO date-time, a duration ago such as 7d, "
            "or +DURATION after the start"
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)
