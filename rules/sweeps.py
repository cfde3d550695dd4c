"""Scheduled evaluation: silence, air-quality objectives and escalation of unacknowledged
alerts. Each sweep runs in its own transaction under a try-advisory-lock, so with N workers one
sweeps and the others skip; each returns when it next needs to run."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from rules import alerts
from rules.engine import SubjectState
from rules.kinds.objectives import AqsObjectiveRule, year_start
from rules.kinds.silence import Heard, SilenceRule
from rules.loader import RuleSet
from rules.model import DeviceView, Transition
from rules.registry import StateKey, device_view, load_active_states, load_states, save_states
from rules.stream import Outcome, apply_transition

log = logging.getLogger(__name__)

_SILENCE_LOCK = 0x706C_7369_6C65  # "plsile"
_OBJECTIVE_LOCK = 0x706C_6F62_6A65  # "plobje"
_ESCALATION_LOCK = 0x706C_6573_6361  # "plesca"


async def _try_lock(conn: AsyncConnection[Any], key: int) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def db_now(conn: AsyncConnection[Any]) -> datetime:
    cur = await conn.execute("SELECT clock_timestamp()")
    row = await cur.fetchone()
    assert row is not None
    value: datetime = row[0]
    return value.astimezone(UTC)  # calendar years are UTC years, whatever the session zone


def _subject(device: DeviceView, subject_type: str, subject_id: str) -> alerts.Subject:
    return alerts.Subject(
        device.council_id,
        subject_type,
        subject_id,
        sensor_kind=device.kind.value,
        site=device.site,
        resident_id=device.resident_id,
    )


def heard_by_subject(
    rule: SilenceRule, seen: list[tuple[DeviceView, float]]
) -> dict[tuple[str, str, str], tuple[Heard, DeviceView]]:
    """Group devices into the rule's subjects: last heard = the latest of its devices, limit =
    the longest of their limits (a home is silent only when all its sensors are)."""
    groups: dict[tuple[str, str, str], list[tuple[DeviceView, float, float]]] = defaultdict(list)
    for device, last_seen in seen:
        if not rule.applies_to(device):
            continue
        subject = rule.subject_of(device)
        limit = rule.limit_s(device)
        if subject is None or limit is None:
            continue
        groups[(device.council_id, *subject)].append((device, last_seen, limit))
    out = {}
    for (council_id, stype, sid), members in groups.items():
        last = max(m[1] for m in members)
        heard = Heard(stype, sid, last, max(m[2] for m in members), len(members))  # type: ignore[arg-type]
        out[(council_id, stype, sid)] = (heard, members[0][0])
    return out


async def silence_sweep(
    conn: AsyncConnection[Any], ruleset: RuleSet, actor: str, out: Outcome
) -> datetime | None:
    """Open silence alerts whose deadline passed, resolve those heard again. Returns the
    earliest future deadline (when to run next)."""
    rules = [r for r in ruleset.rules if isinstance(r, SilenceRule) and r.enabled]
    if not rules:
        return None
    async with conn.transaction():
        if not await _try_lock(conn, _SILENCE_LOCK):
            return None
        now = await db_now(conn)
        cur = await conn.execute(
            """SELECT council_id, device_id, kind, model, site, ward, resident_id, tags,
                      properties, expected_interval_s, last_seen
               FROM devices WHERE last_seen IS NOT NULL"""
        )
        seen = [(device_view(r), r[10].timestamp()) for r in await cur.fetchall()]
        subjects = {rule.id: heard_by_subject(rule, seen) for rule in rules}
        all_subjects = {s for by in subjects.values() for s in by}
        async with conn.cursor() as cur:
            states = await load_states(cur, all_subjects, [r.id for r in rules])
            active = await load_active_states(cur, [r.id for r in rules])
        touched: dict[StateKey, SubjectState] = {}
        next_due: float | None = None
        async with conn.cursor(row_factory=dict_row) as dcur:
            # A subject no longer watched (device removed or deselected, resident moved) would
            # otherwise keep its alert open forever.
            for key, state in active.items():
                rule = next(r for r in rules if r.id == key[0])
                if key[1:] in subjects[rule.id]:
                    continue
                gone = Transition(
                    False,
                    now.timestamp(),
                    f"{key[2]} {key[3]} is no longer watched by this rule",
                    {"reason": "no longer selected"},
                )
                await apply_transition(
                    dcur, rule, alerts.Subject(*key[1:]), state, gone, actor, None, out
                )
                state.active, state.last_transition_at = False, gone.at
                touched[key] = state
            for rule in rules:
                for (council_id, stype, sid), (heard, device) in subjects[rule.id].items():
                    key = (rule.id, council_id, stype, sid)
                    state = states.get(key) or SubjectState()
                    t = rule.evaluate(heard, now.timestamp(), state.active)
                    out.evaluations[rule.id] += 1
                    if t is not None:
                        state.active = t.opens
                        state.last_transition_at = t.at
                        await apply_transition(
                            dcur, rule, _subject(device, stype, sid), state, t, actor, None, out
                        )
                        touched[key] = state
                    if not state.active:
                        due = heard.last_seen + heard.limit_s
                        next_due = due if next_due is None else min(next_due, due)
        async with conn.cursor() as cur:
            await save_states(cur, touched)
    return datetime.fromtimestamp(next_due, UTC) if next_due is not None else None


async def objective_sweep(
    conn: AsyncConnection[Any],
    ruleset: RuleSet,
    actor: str,
    out: Outcome,
    last_run: dict[str, datetime],
) -> datetime | None:
    """Count each station's exceedances this year for every objective rule that is due."""
    rules = [r for r in ruleset.rules if isinstance(r, AqsObjectiveRule) and r.enabled]
    if not rules:
        return None
    async with conn.transaction():
        now = await db_now(conn)
        due = [r for r in rules if r.id not in last_run or now >= last_run[r.id] + r.every]
        if due and await _try_lock(conn, _OBJECTIVE_LOCK):
            cur = await conn.execute(
                """SELECT council_id, device_id, kind, model, site, ward, resident_id, tags,
                          properties, expected_interval_s
                   FROM devices WHERE kind = 'air_quality'"""
            )
            stations = [device_view(r) for r in await cur.fetchall()]
            for rule in due:
                await _objective(conn, rule, stations, now, actor, out)
                last_run[rule.id] = now
    return min(last_run.get(r.id, now) + r.every for r in rules)


async def _objective(
    conn: AsyncConnection[Any],
    rule: AqsObjectiveRule,
    stations: list[DeviceView],
    now: datetime,
    actor: str,
    out: Outcome,
) -> None:
    applicable = {(d.council_id, d.device_id): d for d in stations if rule.applies_to(d)}
    if not applicable:
        return
    exceedances = await objective_exceedances(conn, rule, year_start(now), now)
    subjects = [(c, "device", d) for c, d in applicable]
    async with conn.cursor() as cur:
        states = await load_states(cur, subjects, [rule.id])
    touched: dict[StateKey, SubjectState] = {}
    async with conn.cursor(row_factory=dict_row) as dcur:
        for key, device in applicable.items():
            skey = (rule.id, key[0], "device", key[1])
            state = states.get(skey) or SubjectState()
            since = (
                datetime.fromtimestamp(state.last_transition_at, UTC).year
                if state.active and state.last_transition_at is not None
                else None
            )
            t = rule.evaluate(exceedances.get(key, []), now.year, since)
            out.evaluations[rule.id] += 1
            if t is None:
                continue
            state.active = t.opens
            state.last_transition_at = t.at
            await apply_transition(
                dcur, rule, _subject(device, "device", key[1]), state, t, actor, None, out
            )
            touched[skey] = state
    async with conn.cursor() as cur:
        await save_states(cur, touched)


async def objective_exceedances(
    conn: AsyncConnection[Any], rule: AqsObjectiveRule, start: datetime, as_of: datetime
) -> dict[tuple[str, str], list[datetime]]:
    cur = await conn.execute(rule.objective.sql, {"start": start, "as_of": as_of})
    found: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for council_id, device_id, period_start in await cur.fetchall():
        found[(council_id, device_id)].append(period_start)
    return found


async def escalation_sweep(
    conn: AsyncConnection[Any], ruleset: RuleSet, actor: str, out: Outcome
) -> datetime | None:
    """Escalate, then re-notify, open alerts nobody acknowledged in their rule's time."""
    rules = {r.id: r for r in ruleset.rules if r.escalation is not None and r.enabled}
    if not rules:
        return None
    async with conn.transaction():
        if not await _try_lock(conn, _ESCALATION_LOCK):
            return None
        now = await db_now(conn)
        cur = await conn.execute(
            """SELECT alert_id, rule_id, escalations, last_notified_at FROM alerts
               WHERE state = 'open' AND rule_id = ANY(%s)
               ORDER BY alert_id FOR UPDATE SKIP LOCKED""",
            (list(rules),),
        )
        next_due: datetime | None = None
        async with conn.cursor(row_factory=dict_row) as dcur:
            for alert_id, rule_id, escalations, last_notified in await cur.fetchall():
                esc = rules[rule_id].escalation
                assert esc is not None
                wait: timedelta | None = esc.after if escalations == 0 else esc.repeat
                if wait is None or escalations > esc.max_renotify:
                    continue
                due = last_notified + wait
                if due <= now:
                    if await alerts.escalate_alert(
                        dcur, alert_id, actor, esc.severity, first=escalations == 0
                    ):
                        out.escalated[rule_id] += 1
                    due = now + (esc.repeat or timedelta(days=365))
                next_due = due if next_due is None else min(next_due, due)
    return next_due
