"""The demo's timeline: the example borough with its residents' incidents where a demo sees them.

The care rules judge a resident only against at least a week of their own days
(``warmup_days``), and the borough's own incidents fall on days 2 to 6 of a run, too early. The
demo therefore plays the borough (``simulators/scenarios/borough.yaml``) with every event moved
``SHIFT_DAYS`` later and written as an absolute time, so that the backfill (the past, as fast
as the broker takes it) holds the baseline days and the decline, and the fall happens early in
the accelerated live part: it is placed at the latest 10:40 (the scenario's time of day) that
leaves ``FALL_LEAD`` before now, and the live part starts an hour before it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ruamel.yaml import YAML

from simulators.scenario import scenario_path
from simulators.when import DayTime, parse_when

SCENARIO = "borough"
COUNCIL = "borough"
SHIFT_DAYS = 5  # the fall (day 5) on day 10, the decline (day 2) from day 7: after a week
FALL_LEAD = timedelta(hours=5)  # the fall at least this long before now (an alert needs ~3 h)
LIVE_BEFORE_FALL = timedelta(hours=1)
_TIME_KEYS = ("start", "at", "on", "until")


@dataclass(frozen=True)
class Timeline:
    start: datetime  # the backfill's first moment: local midnight of day 0
    live: datetime  # the backfill ends and the accelerated live part starts here
    fall: datetime
    speed: float  # simulated seconds per second in the live part, until it meets the clock
    fall_resident: str
    decline_resident: str

    @property
    def backfill_days(self) -> float:
        return (self.live - self.start).total_seconds() / 86400


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    return y


def _resident(doc: Any, kind: str) -> str:
    return str(next(e["resident"] for e in doc["events"] if e["kind"] == kind))


def _fall_day_time(doc: Any) -> DayTime:
    for event in doc["events"]:
        if event["kind"] == "fall":
            when = parse_when(event["at"])
            assert isinstance(when, DayTime), "the borough's fall is written as 'day N HH:MM'"
            return when
    raise ValueError("the scenario has no fall")


def plan(now: datetime, catch_up_s: float) -> tuple[Timeline, str]:
    """The timeline for a demo started at ``now`` whose live part meets the clock after about
    ``catch_up_s`` seconds, and the scenario's YAML text with the events at absolute times."""
    doc = _yaml().load(scenario_path(SCENARIO).read_text(encoding="utf-8"))
    tz = ZoneInfo(str(doc["scenario"]["timezone"]))
    fall = _fall_day_time(doc)
    local_now = now.astimezone(tz)
    hours, minutes = divmod(fall.minute, 60)
    fall_at = local_now.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    while fall_at > local_now - FALL_LEAD:
        fall_at = (fall_at - timedelta(days=1)).replace(hour=hours, minute=minutes)
    fall_at = fall_at.replace(tzinfo=tz)  # the wall time again after a DST change
    day0 = fall_at.date() - timedelta(days=fall.day + SHIFT_DAYS)
    start = datetime.combine(day0, datetime.min.time(), tz)
    for event in doc["events"]:
        for key in _TIME_KEYS:
            if key in event and isinstance(when := parse_when(event[key]), DayTime):
                moved = DayTime(when.day + SHIFT_DAYS, when.minute)
                event[key] = moved.resolve(day0, tz).isoformat().replace("+00:00", "Z")
    doc["scenario"]["description"] = (
        f"{doc['scenario']['description']} (placewatch demo: events {SHIFT_DAYS} days later)"
    )
    live = fall_at.astimezone(UTC) - LIVE_BEFORE_FALL
    speed = max(60.0, (now - live).total_seconds() / catch_up_s)
    out = io.StringIO()
    _yaml().dump(doc, out)
    timeline = Timeline(
        start.astimezone(UTC),
        live,
        fall_at.astimezone(UTC),
        speed,
        _resident(doc, "fall"),
        _resident(doc, "decline"),
    )
    return timeline, out.getvalue()


TEAMS = Path(__file__).resolve().parents[2] / "deploy" / "teams.yaml"


def teams_yaml(receiver_url: str) -> str:
    """The example borough's teams (``deploy/teams.yaml``, as docker compose applies them), every
    webhook delivering to the demo's receiver with the demo's secret."""
    doc = _yaml().load(TEAMS.read_text(encoding="utf-8"))
    for team in doc["teams"]:
        for hook in team.get("webhooks", []):
            hook["url"] = receiver_url
            hook["secret_env"] = "PLACEWATCH_DEMO_WEBHOOK_SECRET"
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def write_files(workdir: Path, scenario_text: str, receiver_url: str) -> tuple[Path, Path]:
    scenario = workdir / "borough-demo.yaml"
    scenario.write_text(scenario_text, encoding="utf-8")
    teams = workdir / "teams.yaml"
    teams.write_text(teams_yaml(receiver_url), encoding="utf-8")
    return scenario, teams
