"""The care detectors. Each watches one resident's ``ActivityModel`` at every tick and opens or
clears one kind of alert, explaining expected against observed in plain words and numbers.

- ``Inactivity``: no activity for longer than the resident's usual maximum at this time of day.
- ``NotUp``: no activity yet this morning, later than the usual latest getting-up time.
- ``LongOccupancy``: in bed or in the chair far longer than usual for a session started then.
- ``Decline``: today's active quarter-hours far below the baseline (negative-binomial lower
  tail), or below it day after day (CUSUM).

None of them fires while the hub is offline (that is the provider's "hub offline" alert) or,
except ``Decline`` and ``LongOccupancy``, while the resident is out. Until ``warmup_days`` valid
days are known, the first three use safe fixed limits and ``Decline`` stays silent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

from care.activity import SLOT_S, ActivityModel
from care.baseline import CountFit, baseline_days, quantile
from rules.durations import format_duration
from rules.model import Transition


def _last(m: ActivityModel) -> dict[str, Any]:
    """Where and when the resident was last active, for every explanation."""
    if m.last_activity is None:
        return {"last_activity": None, "last_where": None}
    return {"last_activity": m.last_activity, "last_where": m.last_where}


def _last_words(m: ActivityModel) -> str:
    if m.last_activity is None:
        return "no activity seen yet"
    where = f" ({m.last_where})" if m.last_where else ""
    return f"last activity {m.local.when(m.last_activity)}{where}"


def _cap_today(caps: dict[str, float], m: ActivityModel, limit: float) -> dict[str, float]:
    """Remember the limit in force on a day with an alert: what that day teaches the baseline
    is capped there. A real incident (hours on the floor) must not teach that such quiet is
    usual; a false alarm still raises the next limit, by one ``factor``."""
    assert m.today is not None
    day = str(m.today.day)
    if caps.get(day, limit) < limit:
        return caps
    kept = dict(sorted(caps.items(), key=lambda kv: int(kv[0]))[-59:])
    return {**kept, day: limit}


def _capped(value: float, day: int, caps: dict[str, float]) -> float:
    cap = caps.get(str(day))
    return value if cap is None else min(value, cap)


class Detector(Protocol):
    name: ClassVar[str]

    def tick(self, m: ActivityModel, t: float, active: bool) -> Transition | None: ...

    def state(self) -> dict[str, Any]: ...

    def load(self, state: dict[str, Any]) -> None: ...


@dataclass
class _Stateful:
    """Detector state that persists between evaluations (``rule_state.data``)."""

    _state_fields: ClassVar[tuple[str, ...]] = ()

    def state(self) -> dict[str, Any]:
        full = asdict(self)
        return {k: full[k] for k in self._state_fields}

    def load(self, state: dict[str, Any]) -> None:
        for k in self._state_fields:
            if k in state:
                setattr(self, k, state[k])


# -- acute inactivity -------------------------------------------------------------------------


@dataclass
class Inactivity(_Stateful):
    name: ClassVar[str] = "inactivity"
    _state_fields: ClassVar[tuple[str, ...]] = ("opened_after", "open_limit", "caps")

    factor: float = 1.2
    quantile: float = 1.0
    floor_s: float = 3600.0
    warmup_days: int = 7
    warmup_limit_s: float = 4 * 3600.0
    warmup_from_min: int = 9 * 60
    warmup_to_min: int = 21 * 60
    split_day_types: bool = False  # weekdays and weekends apart (when 4+ of the type are known)
    opened_after: float | None = None  # the last activity before the open alert
    open_limit: float = 0.0
    caps: dict[str, float] = field(default_factory=dict)  # alert days: day → limit (s)

    def limit(self, m: ActivityModel, t: float) -> tuple[float, str] | None:
        """The time without activity that is unusual now, and what it rests on."""
        days = baseline_days(m, t, by_day_type=self.split_day_types)
        hour = m.local.dt(t).hour
        usual = []
        for d in days:
            seen = [g for h in (hour - 1, hour, hour + 1) if (g := d.max_gap_by_hour[h % 24])]
            if seen:
                usual.append(_capped(max(seen), d.day, self.caps))
        if len(days) < self.warmup_days or not usual:
            # Learning: a fixed limit by day only, raised by any longer spell already seen.
            minutes = m.local.minutes(t)
            if not self.warmup_from_min <= minutes < self.warmup_to_min:
                return None
            longest = max(
                (_capped(g, d.day, self.caps) for d in days for g in d.max_gap_by_hour if g),
                default=0.0,
            )
            limit = max(self.warmup_limit_s, longest * self.factor)
            return limit, "the default while their routine is being learnt"
        typical = quantile(usual, self.quantile)
        basis = (
            f"usually active again within {format_duration(typical)} at this time "
            f"({len(usual)} days)"
        )
        after = [
            _capped(g, d.day, self.caps)
            for d in days
            if (g := d.max_gap_by_where.get(m.last_where))
        ]
        if after and quantile(after, self.quantile) > typical:
            # Some places are followed by long quiet spells (a nap after the bedroom).
            typical = quantile(after, self.quantile)
            basis = (
                f"usually active again within {format_duration(typical)} after the "
                f"{m.last_where} ({len(after)} days)"
            )
        return max(self.floor_s, typical * self.factor), basis

    def tick(self, m: ActivityModel, t: float, active: bool) -> Transition | None:
        if active:
            self.caps = _cap_today(self.caps, m, self.open_limit)
            if m.last_activity is not None and m.last_activity != self.opened_after:
                self.opened_after = None
                where = f" ({m.last_where})" if m.last_where else ""
                return Transition(
                    False,
                    m.last_activity,
                    f"active again at {m.local.clock(m.last_activity)}{where}",
                    _last(m),
                )
            return None
        elapsed, since = m.observed_quiet(), m.quiet_since()
        if elapsed is None or since is None or not m.watching(t):
            return None
        found = self.limit(m, t)
        if found is None or elapsed <= found[0]:
            return None
        limit, basis = found
        self.opened_after, self.open_limit = m.last_activity, limit
        self.caps = _cap_today(self.caps, m, limit)
        if since == m.last_activity:
            where = f" ({m.last_where})" if m.last_where else ""
            quiet = f"no activity since {m.local.clock(since)}{where}"
        else:
            quiet = f"no activity since data came back at {m.local.clock(since)}"
        summary = f"{quiet}, {format_duration(elapsed)} ago; {basis}"
        observed = {"inactive_s": round(elapsed), "limit_s": round(limit), **_last(m)}
        return Transition(True, t, summary, observed)


# -- not up by the usual time -----------------------------------------------------------------


@dataclass
class NotUp(_Stateful):
    name: ClassVar[str] = "not_up"
    _state_fields: ClassVar[tuple[str, ...]] = ("opened_day", "opened_after", "caps")

    margin_s: float = 30 * 60.0
    quantile: float = 1.0
    warmup_days: int = 7
    warmup_latest_min: float = 10 * 60 + 30
    split_day_types: bool = False
    opened_day: int | None = None
    opened_after: float | None = None  # the last activity before the open alert
    caps: dict[str, float] = field(default_factory=dict)  # alert days: day → limit (min)

    def latest(self, m: ActivityModel, t: float) -> tuple[float, str]:
        days = baseline_days(m, t, by_day_type=self.split_day_types)
        ups = [
            _capped(d.first_up_min, d.day, self.caps) for d in days if d.first_up_min is not None
        ]
        if len(days) < self.warmup_days or not ups:
            # Learning: a fixed time, or later if they have been up later already.
            latest = max([self.warmup_latest_min, *ups])
            return latest, "the default while their routine is being learnt"
        latest = quantile(ups, self.quantile)
        return latest, f"usually up by {_hhmm(latest)} ({len(ups)} days)"

    def tick(self, m: ActivityModel, t: float, active: bool) -> Transition | None:
        today = m.today
        assert today is not None
        if active:
            # Open until the resident is seen up, over midnight too (a fall in the night).
            if m.last_activity is not None and m.last_activity != self.opened_after:
                self.opened_after = None
                where = f" ({m.last_where})" if m.last_where else ""
                up = m.last_activity
                return Transition(False, up, f"up at {m.local.clock(up)}{where}", _last(m))
            return None
        minutes = m.local.minutes(t)
        if today.first_up is not None or minutes < m.p.day_start_min:
            return None
        if not m.present(t) or m.out(t) or self.opened_day == today.day:
            return None
        if not m.data_since(m.local.at(today.day, m.p.day_start_min)):
            return None  # the morning's data was lost: whether they got up is not known
        latest, basis = self.latest(m, t)
        if minutes <= latest + self.margin_s / 60:
            return None
        self.opened_day, self.opened_after = today.day, m.last_activity
        self.caps = _cap_today(self.caps, m, latest + self.margin_s / 60)
        summary = f"no activity yet this morning at {m.local.clock(t)}; {basis}; {_last_words(m)}"
        observed = {"usual_latest": _hhmm(latest), "now": m.local.clock(t), **_last(m)}
        return Transition(True, t, summary, observed)


def _hhmm(minutes: float) -> str:
    h, mm = divmod(round(minutes), 60)
    return f"{h % 24:02d}:{mm:02d}"


# -- in bed or in the chair far longer than usual ---------------------------------------------


@dataclass
class LongOccupancy(_Stateful):
    name: ClassVar[str] = "long_occupancy"
    _state_fields: ClassVar[tuple[str, ...]] = ("open_session", "caps")

    places: tuple[str, ...] = ("bed", "chair")
    factor: float = 1.2
    floor_s: float = 3600.0
    around_h: float = 2.0  # sessions started within this many hours of this one are compared
    warmup_days: int = 7
    warmup_limit_s: dict[str, float] = field(
        default_factory=lambda: {"bed": 12 * 3600.0, "chair": 4 * 3600.0}
    )
    open_session: list[Any] | None = None  # [place, since, limit]
    caps: dict[str, float] = field(default_factory=dict)  # alert days: day → limit (s)

    def limit(self, m: ActivityModel, t: float, place: str, since: float) -> tuple[float, str]:
        days = baseline_days(m, t, by_day_type=False)
        hour = m.local.minutes(since) / 60
        durations = [
            _capped(s.duration_s, d.day, self.caps)
            for d in days
            for s in d.sessions
            if s.place == place and _hours_apart(s.start_hour, hour) <= self.around_h
        ]
        if len(days) < self.warmup_days or not durations:
            # Learning, or a session at an unusual time: a fixed limit, or longer if longer
            # sessions in that place have been seen already.
            seen = max(
                (
                    _capped(s.duration_s, d.day, self.caps)
                    for d in days
                    for s in d.sessions
                    if s.place == place
                ),
                default=0,
            )
            default = max(self.warmup_limit_s.get(place, 4 * 3600.0), seen * self.factor)
            return default, "the default for sessions not seen before at this time"
        typical = quantile(durations, 1.0)
        basis = f"usually up within {format_duration(typical)} when starting then"
        return max(self.floor_s, typical * self.factor), basis

    def tick(self, m: ActivityModel, t: float, active: bool) -> Transition | None:
        if active and self.open_session is not None:
            place, since, limit = self.open_session
            self.caps = _cap_today(self.caps, m, limit)
            now = m.occupied.get(place)
            if now is None or now[0] != since:
                self.open_session = None
                at = m.last_activity if m.last_activity is not None else t
                return Transition(False, at, f"out of the {place} at {m.local.clock(at)}", _last(m))
            return None
        if not m.present(t):
            return None
        for place, (since, where) in sorted(m.occupied.items()):
            if place not in self.places:
                continue
            limit, basis = self.limit(m, t, place, since)
            if t - since <= limit:
                continue
            self.open_session = [place, since, limit]
            self.caps = _cap_today(self.caps, m, limit)
            summary = (
                f"in the {place}{f' ({where})' if where and where != place else ''} since "
                f"{m.local.clock(since)}, {format_duration(t - since)}; {basis}"
            )
            observed = {"place": place, "since": since, "limit_s": round(limit), **_last(m)}
            return Transition(True, t, summary, observed)
        return None


def _hours_apart(a: float, b: float) -> float:
    d = abs(a - b) % 24
    return min(d, 24 - d)


# -- sharp decline in daily activity ----------------------------------------------------------


@dataclass
class Decline(_Stateful):
    name: ClassVar[str] = "activity_decline"
    _state_fields: ClassVar[tuple[str, ...]] = (
        "decided_day",
        "cusum",
        "excluded",
        "normal_run",
        "cooldown_until",
        "recent",
    )

    alpha: float = 0.005  # a day this unlikely under the baseline is a sharp decline
    k: float = 0.5  # CUSUM allowance, in standard deviations
    h: float = 4.0  # CUSUM decision level
    clear_days: int = 2  # consecutive days back within one sd of usual to clear
    cooldown_days: int = 3
    warmup_days: int = 7
    decided_day: int | None = None
    cusum: float = 0.0
    excluded: list[int] = field(default_factory=list)
    normal_run: int = 0
    cooldown_until: int | None = None
    recent: list[int] = field(default_factory=list)  # the last days' indices

    def tick(self, m: ActivityModel, t: float, active: bool) -> Transition | None:
        today = m.today
        assert today is not None
        if m.local.minutes(t) < m.p.index_to_min or self.decided_day == today.day:
            return None
        self.decided_day = today.day
        if today.missing_s > m.p.max_missing_s or not m.present(t):
            return None  # not enough data today to judge
        if today.out_s > 0.5 * m.index_slots * SLOT_S:
            return None  # mostly away: a day out is not a decline
        x = m.index(today.slots)
        days = [
            d
            for d in baseline_days(m, t, exclude=self.excluded, by_day_type=False)
            if not d.mostly_away
        ]
        if len(days) < self.warmup_days:
            return None
        fit = CountFit.of([d.active_slots for d in days])
        tail = fit.lower_tail(x)
        self.cusum = max(0.0, self.cusum + (fit.mean - x) / fit.sd - self.k)
        self.recent = [*self.recent[-4:], x]
        slots = m.index_slots
        window = f"{_hhmm(m.p.index_from_min)} and {_hhmm(m.p.index_to_min)}"
        usual = f"a usual {fit.mean:.0f} (sd {fit.sd:.1f}, {len(days)} days)"
        observed = {
            "active_slots": x,
            "usual_mean": round(fit.mean, 1),
            "usual_sd": round(fit.sd, 1),
            "lower_tail": round(tail, 5),
            "cusum": round(self.cusum, 2),
            "recent": list(self.recent),
            **_last(m),
        }
        if active:
            self.excluded = [*self.excluded[-60:], today.day]
            self.normal_run = self.normal_run + 1 if x >= fit.mean - fit.sd else 0
            if self.normal_run < self.clear_days:
                return None
            self.cusum, self.normal_run = 0.0, 0
            self.cooldown_until = today.day + self.cooldown_days
            summary = (
                f"activity back to usual: active {x} of {slots} quarter-hours between "
                f"{window} today against {usual}"
            )
            return Transition(False, t, summary, observed)
        if self.cooldown_until is not None and today.day <= self.cooldown_until:
            self.cusum = 0.0
            return None
        sharp = tail < self.alpha
        if not sharp and self.cusum <= self.h:
            return None
        self.excluded = [*self.excluded[-60:], today.day]
        self.normal_run = 0
        if sharp:
            why = f"as low or lower on {tail:.1%} of such days"
        else:
            why = f"below usual day after day (last days: {', '.join(map(str, self.recent))})"
        summary = (
            f"active {x} of {slots} quarter-hours between {window} today against {usual}; "
            f"{why}; {_last_words(m)}"
        )
        return Transition(True, t, summary, observed)
