"""The care detectors on a simulated resident (``tests.care.residents``): what opens, when, what
the explanation says, what clears it; the data-quality gate and the warm-up; the count model; and
that a monitor saved and restored between any two moments gives the same alerts as one run.

Monitors are built from the rule kinds with their defaults (``rule.monitor(tz)``), as the live
worker and the evaluation do. Limits are read from the rules, not copied here, so the tests follow
parameter tuning and check behaviour.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TypeAlias

import pytest

from care.activity import SLOT_S
from care.baseline import CountFit, baseline_days, quantile
from care.events import HomeEvent, Signal
from care.monitor import CareMonitor
from rules.durations import format_duration
from rules.kinds.care import (
    ActivityDeclineRule,
    CareRule,
    InactivityRule,
    LongOccupancyRule,
    NotUpRule,
)
from rules.model import Transition
from tests.care.residents import LONDON, Resident, Routine

START = date(2024, 1, 8)  # a Monday; no change of the clocks for the next six weeks
HOUR = 3600.0
Alerts: TypeAlias = list[tuple[str, Transition]]


# -- helpers ------------------------------------------------------------------------------------


def inactivity(**kw: object) -> InactivityRule:
    return InactivityRule.model_validate({"id": "inactivity", "kind": "inactivity", **kw})


def not_up(**kw: object) -> NotUpRule:
    return NotUpRule.model_validate({"id": "not-up", "kind": "not_up", **kw})


def long_occupancy(**kw: object) -> LongOccupancyRule:
    return LongOccupancyRule.model_validate({"id": "occupancy", "kind": "long_occupancy", **kw})


def decline(**kw: object) -> ActivityDeclineRule:
    return ActivityDeclineRule.model_validate({"id": "decline", "kind": "activity_decline", **kw})


def every_rule() -> list[CareRule]:
    return [inactivity(), not_up(), long_occupancy(), decline()]


def watch(events: Sequence[HomeEvent], until: float, *rules: CareRule) -> Alerts:
    """Every rule's monitor over the events in one go; transitions in time order."""
    alerts: Alerts = []
    for rule in rules:
        alerts += rule.monitor(LONDON).run(events, until)
    return sorted(alerts, key=lambda a: a[1].at)


def opened(alerts: Alerts, name: str) -> list[Transition]:
    return [t for n, t in alerts if n == name and t.opens]


def cleared(alerts: Alerts, name: str) -> list[Transition]:
    return [t for n, t in alerts if n == name and not t.opens]


def between(alerts: Alerts, start: float, end: float) -> Alerts:
    return [(n, t) for n, t in alerts if start <= t.at < end]


def clock(t: float) -> str:
    return datetime.fromtimestamp(t, LONDON).strftime("%H:%M")


def local_minutes(t: float) -> float:
    d = datetime.fromtimestamp(t, LONDON)
    return d.hour * 60 + d.minute + d.second / 60


def hhmm(mins: float) -> str:
    h, m = divmod(round(mins), 60)
    return f"{h:02d}:{m:02d}"


def words_s(text: str) -> float:
    """A duration as ``format_duration`` writes it ("1 h 5 min", "38 min") → seconds."""
    units = {"d": 86400, "h": 3600, "min": 60, "s": 1}
    parts = re.findall(r"(\d+) (d|h|min|s)\b", text)
    assert parts, text
    return float(sum(int(n) * units[u] for n, u in parts))


def usual_within(summary: str) -> float:
    """The "usually active again within …" figure of an inactivity explanation, in seconds."""
    found = re.search(r"usually active again within ((?:\d+ (?:d|h|min|s) ?)+)", summary)
    assert found, summary
    return words_s(found[1])


def tick_s(rule: CareRule) -> float:
    return rule.every.total_seconds()


# -- 1. acute inactivity ---------------------------------------------------------------------


def test_a_fall_opens_inactivity_within_two_hours_and_activity_clears_it() -> None:
    home = Resident(START, 20, seed=11)
    fall, found = home.at(20, "11:00"), home.at(20, "14:00")
    home.fall(fall, resume=found, where="kitchen")
    rule = inactivity()
    alerts = watch(home.events(), home.end, *every_rule())

    # Nineteen ordinary days: nothing at all, from any of the four rules.
    assert between(alerts, home.begin, home.at(20, 0)) == []
    # Day 20: the inactivity alert and its clearing, nothing else.
    assert [(n, t.opens) for n, t in alerts] == [("inactivity", True), ("inactivity", False)]
    alert, clear = alerts[0][1], alerts[1][1]

    limit = alert.observed["limit_s"]
    assert rule.floor.total_seconds() <= limit < 2 * HOUR
    # Opens at the first tick after a hub report past the limit (quiet counts only while the
    # hub proves it is reporting): not before, and within two hours of the fall.
    report_s = home.routine.report_every_s
    assert fall + limit < alert.at <= fall + limit + report_s + tick_s(rule)
    assert alert.at <= fall + 2 * HOUR
    inactive = alert.observed["inactive_s"]
    assert limit < inactive <= round(alert.at - fall)
    assert alert.at - fall - inactive < report_s
    assert alert.observed["last_activity"] == fall
    assert alert.observed["last_where"] == "kitchen"
    assert alert.summary.startswith("no activity since 11:00 (kitchen), ")
    assert f"{format_duration(inactive)} ago" in alert.summary
    # Expected: the resident's longest usual quiet spell at this time, under the limit (the
    # simulated routine never goes quiet much longer than 45 minutes).
    usual = usual_within(alert.summary)
    assert 10 * 60 <= usual <= 50 * 60
    assert usual <= limit
    days = re.search(r"\((\d+) days\)", alert.summary)
    assert days and 5 <= int(days[1]) <= 19, alert.summary

    assert clear.at == found
    assert clear.summary == "active again at 14:00 (kitchen)"


def test_going_out_through_the_front_door_is_not_inactivity_and_rearms_on_return() -> None:
    leave_at, back_at, fall_at = "10:00", "16:00", "16:30"

    # Out for six hours, back at 16:00 (door, then motion a few minutes later): no alert.
    home = Resident(START, 20, seed=12)
    leave, back = home.at(20, leave_at), home.at(20, back_at)
    home.outing(leave, back)
    events = home.events()
    assert inactivity().monitor(LONDON).run(events, home.end) == []

    monitor = inactivity().monitor(LONDON)
    noon = home.at(20, "13:00")
    monitor.run([e for e in events if e.at <= noon], noon)
    assert monitor.model.out(noon)
    assert not monitor.model.watching(noon)

    # The same day with a fall half an hour after coming back: detected.
    home = Resident(START, 20, seed=12).outing(leave, back)
    fall = home.at(20, fall_at)
    home.fall(fall)
    alerts = inactivity().monitor(LONDON).run(home.events(), home.end)
    assert between(alerts, leave, back) == []
    assert [(n, t.opens) for n, t in alerts] == [("inactivity", True)]
    alert = alerts[0][1]
    assert fall < alert.at <= fall + 2 * HOUR
    assert alert.summary.startswith(f"no activity since {fall_at} (hall)")
    assert "usually active again within" in alert.summary


def test_a_second_fall_is_detected_as_fast_as_the_first() -> None:
    home = Resident(START, 26, seed=11)
    first, second = home.at(20, "11:00"), home.at(26, "11:00")
    home.fall(first, resume=first + 3 * HOUR, where="kitchen")
    home.fall(second, resume=second + 6 * HOUR, where="kitchen")
    alerts = opened(inactivity().monitor(LONDON).run(home.events(), home.end), "inactivity")
    assert [home.day_of(t.at) for t in alerts] == [20, 26]
    assert alerts[0].at - first <= 2 * HOUR  # 12:05
    # The first fall's day is left out of the baseline, so the second is caught as fast.
    assert alerts[1].at - second <= 2 * HOUR


# -- 3. the data-quality gate ---------------------------------------------------------------


def test_a_long_outage_makes_the_day_invalid_and_leaves_it_out_of_baselines() -> None:
    home = Resident(START, 21, seed=13)
    down, up = home.at(20, "10:00"), home.at(20, "16:00")
    home.outage(down, up)
    events = home.events()
    assert not [e for e in events if down <= e.at < up]
    rules = [inactivity(), not_up()]
    monitors = [r.monitor(LONDON) for r in rules]

    midway = home.at(20, "13:00")
    alerts = [a for m in monitors for a in m.run([e for e in events if e.at <= midway], midway)]
    for m in monitors:
        assert not m.model.present(midway)
        assert not m.model.watching(midway)
    alerts += [a for m in monitors for a in m.run([e for e in events if e.at > midway], home.end)]
    # Nothing opens during the outage: quiet counts only up to the hub's last report.
    assert [a for a in alerts if a[1].opens and down <= a[1].at < up] == []

    model = monitors[0].model
    assert model.present(home.end)
    summaries = {d.day: d for d in model.days}
    outage_day = home.date(20).toordinal()
    assert summaries[outage_day].valid is False
    assert summaries[outage_day].missing_s >= 5 * HOUR
    assert all(summaries[home.date(d).toordinal()].valid for d in (1, 19, 21))
    baseline = baseline_days(model, home.end, by_day_type=False)
    assert outage_day not in [d.day for d in baseline]
    assert len(baseline) == 20


def test_a_daytime_outage_raises_no_inactivity_or_not_up_alert() -> None:
    home = Resident(START, 21, seed=13)
    home.outage(home.at(20, "10:00"), home.at(20, "16:00"))
    alerts = watch(home.events(), home.end, inactivity(), not_up())
    assert alerts == []


def test_the_hub_coming_back_while_the_resident_is_out_raises_no_inactivity_alert() -> None:
    # The resident went out at 15:00 during the outage (the door was not seen) and comes back at
    # 17:00; the hub is back at 16:00: the time without data is not counted as quiet.
    home = Resident(START, 21, seed=13)
    home.outage(home.at(20, "10:00"), home.at(20, "16:00"))
    home.outing(home.at(20, "15:00"), home.at(20, "17:00"))
    alerts = inactivity(offline_after="30m").monitor(LONDON).run(home.events(), home.end)
    assert alerts == []


def test_the_hub_coming_back_after_a_morning_outage_raises_no_not_up_alert() -> None:
    home = Resident(START, 21, seed=13)
    home.outage(home.at(20, "04:00"), home.at(20, "10:00"))
    home.outing(home.at(20, "09:30"), home.at(20, "11:30"))
    alerts = not_up().monitor(LONDON).run(home.events(), home.end)
    assert alerts == []


def test_a_silent_motion_sensor_holds_inactivity_back_and_restarts_the_quiet() -> None:
    # A periodic motion sensor ("pir", a report every 15 min) stops at 11:00 on day 20, just as
    # the resident stops moving; the hub's other reports carry on. The quiet is not the
    # resident's until the sensor is heard again at 15:00, and counts from then.
    home = Resident(START, 21, seed=12)
    stop, back = home.at(20, "11:00"), home.at(20, "15:00")
    home.fall(stop, resume=home.at(20, "20:00"))
    pir = [
        HomeEvent(t, "pir", Signal.MOTION, 0, "hall")
        for t in range(int(home.begin), int(home.end), 900)
        if not stop <= t < back
    ]
    events = sorted([*home.events(), *pir], key=lambda e: e.at)

    plain = opened(watch(events, home.end, inactivity()), "inactivity")
    assert [home.day_of(t.at) for t in plain] == [20]
    assert plain[0].at < back  # without the gate, the silence passes for stillness

    monitor = inactivity().monitor(LONDON)
    monitor.expect({"pir": 1800.0})
    midway = home.at(20, "14:00")
    gated = monitor.run([e for e in events if e.at <= midway], midway)
    assert monitor.model.silent_sensors(midway) == ["pir"]
    assert not monitor.model.present(midway)
    gated += monitor.run([e for e in events if e.at > midway], home.end)
    found = opened(gated, "inactivity")
    assert [home.day_of(t.at) for t in found] == [20]
    alert = found[0]
    assert alert.at > back + alert.observed["limit_s"]
    assert "since data came back at 15:00" in alert.summary


# -- 4. warm-up -----------------------------------------------------------------------------


def fall_on(day: int, seed: int = 14) -> tuple[Resident, Alerts]:
    """Ordinary days, then on ``day`` a fall at 10:00, found at 19:00."""
    home = Resident(START, day, seed=seed)
    home.fall(home.at(day, "10:00"), resume=home.at(day, "19:00"))
    return home, inactivity().monitor(LONDON).run(home.events(), home.end)


def test_inactivity_uses_the_fixed_limit_until_warmup_days_then_the_baseline() -> None:
    rule = inactivity()
    warm = rule.warmup_days
    fixed = rule.warmup_limit.total_seconds()

    # On day `warm` only warm - 1 days are known: the fixed limit.
    home, alerts = fall_on(warm)
    assert [(n, t.opens) for n, t in alerts] == [("inactivity", True), ("inactivity", False)]
    learning = alerts[0][1]
    fall = home.at(warm, "10:00")
    assert learning.observed["limit_s"] == fixed
    assert fall + fixed < learning.at <= fall + fixed + tick_s(rule)
    assert learning.summary.startswith("no activity since 10:00 (hall), ")
    assert learning.summary.endswith("the default while their routine is being learnt")

    # The next day `warm` days are known: the resident's own, much shorter, limit.
    home, alerts = fall_on(warm + 1)
    assert [(n, t.opens) for n, t in alerts] == [("inactivity", True), ("inactivity", False)]
    learnt = alerts[0][1]
    fall = home.at(warm + 1, "10:00")
    assert learnt.observed["limit_s"] < fixed
    assert fall + learnt.observed["limit_s"] < learnt.at <= fall + 2 * HOUR
    assert "usually active again within" in learnt.summary
    assert re.search(r"\((\d+) days\)", learnt.summary)
    assert "routine is being learnt" not in learnt.summary
    assert "learnt" not in learnt.summary


def test_decline_stays_silent_during_warmup() -> None:
    rule = decline()
    home = Resident(START, rule.warmup_days, seed=14).decline(2, 0.7)
    assert rule.monitor(LONDON).run(home.events(), home.end) == []
    # The same drop once the baseline is known is an alert (the warm-up, not the data, kept it
    # quiet).
    home = Resident(START, rule.warmup_days + 2, seed=14).decline(rule.warmup_days + 2, 0.7)
    alerts = rule.monitor(LONDON).run(home.events(), home.end)
    assert [(n, t.opens) for n, t in alerts] == [("activity_decline", True)]


# -- 5. not up ------------------------------------------------------------------------------


def test_staying_in_bed_opens_not_up_after_the_usual_latest_time_and_getting_up_clears() -> None:
    rule = not_up()
    home = Resident(START, 15, seed=15).late_wake(15, "13:00")
    alerts = rule.monitor(LONDON).run(home.events(), home.end)
    assert [(n, t.opens) for n, t in alerts] == [("not_up", True), ("not_up", False)]
    alert, clear = alerts[0][1], alerts[1][1]

    latest = quantile([local_minutes(home.woke[d]) for d in range(1, 15)], rule.quantile)
    due = home.at(15, latest) + rule.margin.total_seconds()
    assert due - 1 < alert.at <= due + tick_s(rule)
    assert home.day_of(alert.at) == 15
    assert f"usually up by {hhmm(latest)} (14 days)" in alert.summary
    assert alert.summary.startswith(f"no activity yet this morning at {clock(alert.at)}")
    assert alert.observed["usual_latest"] == hhmm(latest)

    assert clear.at == home.at(15, "13:00")
    assert clear.summary == "up at 13:00 (bedroom)"


def test_not_up_is_not_raised_when_away_overnight() -> None:
    home = Resident(START, 15, seed=15)
    home.outing(home.at(14, "19:00"), None)
    events = home.events()
    assert watch(events, home.end, not_up(), inactivity()) == []
    monitor = not_up().monitor(LONDON)
    monitor.run(events, home.at(15, "12:00"))
    assert monitor.model.out(home.at(15, "12:00"))
    assert monitor.model.today is not None and monitor.model.today.first_up is None


# -- 6. long occupancy ----------------------------------------------------------------------


def test_a_long_chair_session_opens_long_occupancy_and_getting_up_clears_it() -> None:
    home = Resident(START, 15, seed=16, routine=Routine(chair=("14:00", 60)))
    home.chair_session(15, "14:00", 300)
    alerts = long_occupancy().monitor(LONDON).run(home.events(), home.end)
    assert [(n, t.opens) for n, t in alerts] == [
        ("long_occupancy", True),
        ("long_occupancy", False),
    ]
    alert, clear = alerts[0][1], alerts[1][1]

    sat = home.at(15, "14:00")
    usual = max(s.duration_s for d in range(1, 15) for s in home.sessions[d])
    assert 50 * 60 <= usual <= 70 * 60
    assert sat + usual < alert.at <= sat + 3 * HOUR
    assert alert.observed["place"] == "chair"
    assert alert.observed["since"] == sat
    assert alert.at - sat > alert.observed["limit_s"] >= usual
    assert alert.summary.startswith("in the chair (living room) since 14:00, ")
    assert f"{format_duration(alert.at - sat)}; " in alert.summary
    assert f"usually up within {format_duration(usual)}" in alert.summary

    assert clear.at == sat + 300 * 60
    assert clear.summary == "out of the chair at 19:00"


# -- 7. decline -----------------------------------------------------------------------------


def test_an_ordinary_six_weeks_raise_no_decline() -> None:
    home = Resident(START, 42, seed=17)
    assert decline().monitor(LONDON).run(home.events(), home.end) == []


def run_decline(share: float, seed: int = 17) -> tuple[Resident, Alerts]:
    """28 ordinary days, ``share`` of the active quarter-hours lost on days 29-35, then an
    ordinary week."""
    home = Resident(START, 42, seed=seed).decline(29, share, to_day=35)
    return home, decline().monitor(LONDON).run(home.events(), home.end)


def test_losing_half_the_activity_opens_decline_at_once_and_a_normal_run_clears_it() -> None:
    rule = decline()
    home, alerts = run_decline(0.5)
    assert [(n, t.opens) for n, t in alerts] == [
        ("activity_decline", True),
        ("activity_decline", False),
    ]
    alert, clear = alerts[0][1], alerts[1][1]
    assert home.day_of(alert.at) in (29, 30)
    assert clock(alert.at) >= "23:00"

    slots = (23 - 7) * HOUR // SLOT_S
    x, mean, sd = (alert.observed[k] for k in ("active_slots", "usual_mean", "usual_sd"))
    assert 40 <= mean <= slots and x <= 0.65 * mean
    assert alert.summary.startswith(
        f"active {x} of {slots:.0f} quarter-hours between 07:00 and 23:00 today "
        f"against a usual {mean:.0f} (sd {sd:.1f}, 28 days); as low or lower on "
    )
    assert alert.observed["lower_tail"] < rule.alpha

    # Back to the routine from day 36: cleared after clear_days ordinary days.
    assert home.day_of(clear.at) == 36 + rule.clear_days - 1
    assert clear.summary.startswith("activity back to usual: active ")


def test_losing_a_third_of_the_activity_opens_decline_later_day_after_day() -> None:
    half, sharp = run_decline(0.5)
    home, alerts = run_decline(0.3)
    assert [(n, t.opens) for n, t in alerts] == [
        ("activity_decline", True),
        ("activity_decline", False),
    ]
    alert = alerts[0][1]
    # Not one day is low enough on its own: the CUSUM path, two or three days in.
    assert home.day_of(alert.at) > half.day_of(sharp[0][1].at)
    assert 30 <= home.day_of(alert.at) <= 32
    assert "below usual day after day (last days: " in alert.summary
    recent = alert.observed["recent"]
    assert all(x < alert.observed["usual_mean"] - alert.observed["usual_sd"] for x in recent[-2:])


# -- 8. the count model ---------------------------------------------------------------------


def test_poisson_lower_tail_against_a_hand_computation() -> None:
    fit = CountFit(mean=4.0, var=4.0)
    assert fit.lower_tail(1) == pytest.approx(math.exp(-4) * (1 + 4), rel=1e-12)
    assert fit.lower_tail(0) == pytest.approx(math.exp(-4), rel=1e-12)
    assert fit.lower_tail(1.7) == fit.lower_tail(1)
    assert fit.lower_tail(-1) == 0.0


def nb_pmf(k: int, mean: float, var: float) -> float:
    r = mean * mean / (var - mean)
    p = r / (r + mean)
    return math.exp(
        math.lgamma(k + r)
        - math.lgamma(r)
        - math.lgamma(k + 1)
        + r * math.log(p)
        + k * math.log(1 - p)
    )


@pytest.mark.parametrize(("mean", "var"), [(5.0, 12.0), (40.0, 90.0), (0.8, 3.0)])
def test_negative_binomial_lower_tail_against_the_pmf(mean: float, var: float) -> None:
    fit = CountFit(mean, var)
    tails = [fit.lower_tail(x) for x in range(0, 120)]
    for x in (0, 1, 3, round(mean), round(mean + 2 * math.sqrt(var))):
        exact = sum(nb_pmf(k, mean, var) for k in range(x + 1))
        assert tails[x] == pytest.approx(exact, rel=1e-9)
    assert all(a <= b for a, b in itertools.pairwise(tails))
    assert tails[-1] == pytest.approx(1.0, abs=1e-6)
    # Over-dispersion fattens the lower tail against a Poisson of the same mean.
    assert fit.lower_tail(1) > CountFit(mean, mean).lower_tail(1)


def test_count_fit_of_daily_counts() -> None:
    assert CountFit.of([50, 52, 54]).var == 52  # under-dispersed: floored at the mean (Poisson)
    fit = CountFit.of([40, 60, 50, 30, 70])
    assert fit.mean == 50 and fit.var == 250 and fit.sd == pytest.approx(math.sqrt(250))


# -- 9. persistence -------------------------------------------------------------------------


def incidents() -> Resident:
    """Sixteen days across the spring change of the clocks (31 March 2024), with a morning in
    bed, a fall, a long chair session and two days of sharply lower activity."""
    home = Resident(
        date(2024, 3, 20), 16, seed=21, routine=Routine(bed_sensor=True, chair=("13:00", 60))
    )
    home.late_wake(9, "12:00")
    home.fall(home.at(10, "11:00"), resume=home.at(10, "14:00"))
    home.chair_session(11, "13:00", 300)
    home.decline(12, 0.7, to_day=13)
    return home


Chunks = Callable[[float, float, float], list[float]]  # (begin, incident day, end) → chunk ends
MINUTES_7, HOURS_3 = 7 * 60.0, 3 * HOUR


def steps(begin: float, end: float, size_s: float) -> list[float]:
    return [min(end, begin + (i + 1) * size_s) for i in range(math.ceil((end - begin) / size_s))]


def three_hours(begin: float, incident: float, end: float) -> list[float]:
    return steps(begin, end, HOURS_3)


def seven_minutes(begin: float, incident: float, end: float) -> list[float]:
    """Seven-minute chunks through the day of the incident (a state save at every one of them
    costs a few milliseconds, so not for all sixteen days), three-hour chunks elsewhere."""
    before = steps(begin, incident, HOURS_3)
    during = steps(incident, incident + 86400, MINUTES_7)
    return [*before, *during, *steps(incident + 86400, end, HOURS_3)]


def mixed(begin: float, incident: float, end: float) -> list[float]:
    """Seeded arbitrary sizes, from a second to a day and a half."""
    rng = random.Random(5)
    out, t = [], begin
    while t < end:
        t = min(end, t + rng.choice([1.0, MINUTES_7, HOURS_3, rng.uniform(1, 36 * HOUR)]))
        out.append(t)
    return out


def run_in_chunks(rule: CareRule, events: list[HomeEvent], ends: list[float]) -> tuple[Alerts, str]:
    """Run chunk after chunk, through a JSON round trip of the state and a new monitor each
    time, as the live worker does."""
    times = [e.at for e in events]
    alerts: Alerts = []
    state: str | None = None
    done = 0
    for until in ends:
        monitor: CareMonitor = rule.monitor(LONDON)
        if state is not None:
            assert monitor.load(json.loads(state))
        upto = bisect_right(times, until)
        alerts += monitor.run(events[done:upto], until)
        done = upto
        state = json.dumps(monitor.to_dict())
    assert state is not None
    return alerts, state


@pytest.mark.parametrize("chunks", [seven_minutes, three_hours, mixed], ids=["7min", "3h", "mixed"])
@pytest.mark.parametrize("rule", every_rule(), ids=lambda r: r.kind)
def test_saving_and_restoring_between_chunks_gives_the_same_alerts(
    rule: CareRule, chunks: Chunks
) -> None:
    home = incidents()
    events = home.events()
    whole = rule.monitor(LONDON)
    expected = whole.run(events, home.end)
    assert opened(expected, rule.detector().name) and cleared(expected, rule.detector().name)

    incident = home.at(home.day_of(opened(expected, rule.detector().name)[0].at), 0)
    alerts, state = run_in_chunks(rule, events, chunks(events[0].at, incident, home.end))
    assert alerts == expected
    assert json.loads(state) == json.loads(json.dumps(whole.to_dict()))


def test_the_incidents_open_the_expected_alerts() -> None:
    """What the persistence scenario raises, so the test above compares real transitions."""
    home = incidents()
    alerts = watch(home.events(), home.end, *every_rule())
    by_day = sorted({(n, home.day_of(t.at)) for n, t in alerts if t.opens})
    assert ("not_up", 9) in by_day
    assert ("inactivity", 10) in by_day
    assert ("long_occupancy", 11) in by_day
    assert ("activity_decline", 12) in by_day
    assert cleared(alerts, "activity_decline")
    assert {n for n, _ in alerts} == {"inactivity", "not_up", "long_occupancy", "activity_decline"}
