"""Regressions found in review: a monitor started before a home's first reading."""

from __future__ import annotations

import json
from datetime import date

import pytest

from rules.kinds.care import InactivityRule
from tests.care.residents import LONDON, Resident
from tests.care.test_detectors import run_in_chunks

HOUR = 3600.0


def test_days_before_the_first_reading_are_not_valid_and_live_matches_backtest() -> None:
    rule = InactivityRule.model_validate({"id": "inactivity", "kind": "inactivity"})
    home = Resident(date(2024, 1, 8), 4, seed=3)
    home.fall(home.at(2, "11:00"), resume=home.at(2, "14:00"))  # 3 h: under the 4 h warm-up limit
    events = home.events()
    whole = rule.monitor(LONDON).run(events, home.end)  # the backtest: from the first reading

    # A monitor whose ticks begin 8 days before the hub's first reading (a caller that starts
    # it early), run in 3-hour chunks through a JSON round trip, as live runs it.
    tick = rule.every.total_seconds()
    registered = (home.begin - 8 * 86400) // tick * tick
    ends = [registered + k * 3 * HOUR for k in range(int((home.end - registered) // (3 * HOUR)))]
    live, state = run_in_chunks(rule, events, [*ends, home.end])

    before = [d for d in json.loads(state)["model"]["days"] if d["day"] < home.start.toordinal()]
    assert before and not any(d["valid"] for d in before)
    assert live == whole


def test_the_tick_must_divide_an_hour() -> None:
    # A 2 h grid misses 23:00 local half the year, and the decline would never decide.
    for every in ("2h", "7m", "30s"):
        with pytest.raises(ValueError, match="must divide an hour"):
            InactivityRule.model_validate({"id": "x", "kind": "inactivity", "every": every})
    for every in ("1m", "5m", "15m", "1h"):
        InactivityRule.model_validate({"id": "x", "kind": "inactivity", "every": every})
