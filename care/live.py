"""The care sweep: the rules worker's timer that runs each resident's care monitors.

Every care rule keeps one ``CareMonitor`` per resident, saved as JSON in ``rule_state.data``
with ``evaluated_until`` (the last tick evaluated). Each sweep reads the readings stored since
then, up to the last tick at least ``settle`` ago (so readings still in flight are in) and no
later than the resident's latest reading (so a backfill stored while the worker runs is judged
as it arrives, not as empty days), and runs the monitor over them: the same code and tick grid
as the evaluation replay and the backtest, hence the same alerts for the same data. A reading
stored later than that, with an event time already evaluated, is kept but not seen by the care
rules (home hubs report within seconds).

The sweep runs under one advisory lock, in one transaction with the alerts and the states it
changes, so with N workers one evaluates and a crash rolls back to the last saved state.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from care.readings import expected_silence, reading_span, resident_events
from placewatch.kinds import Kind
from rules import alerts
from rules.engine import SubjectState
from rules.kinds.care import CareRule
from rules.loader import RuleSet
from rules.model import DeviceView, Transition
from rules.registry import StateKey, all_devices, load_active_states, load_states, save_states
from rules.stream import Outcome, apply_transition
from rules.sweeps import db_now, try_xact_lock
from rules.units import utc

_CARE_LOCK = 0x706C_6361_7265  # "plcare"
SETTLE_S = 120.0


def residents(
    rule: CareRule, devices: list[DeviceView]
) -> dict[tuple[str, str], dict[str, DeviceView]]:
    """The residents a rule watches, with their devices by id."""
    out: dict[tuple[str, str], dict[str, DeviceView]] = defaultdict(dict)
    for d in devices:
        subject = rule.subject_of(d)
        if subject is not None and rule.applies_to(d):
            out[(d.council_id, subject[1])][d.device_id] = d
    return out


def history_start(rule: CareRule, now: float) -> float:
    """How far back a monitor starts for a resident it has never seen: the days it keeps."""
    return now - rule.window_days * 2 * 86400.0


async def care_sweep(
    conn: AsyncConnection[Any],
    ruleset: RuleSet,
    actor: str,
    out: Outcome,
    settle_s: float = SETTLE_S,
) -> datetime | None:
    """Run every care monitor up to the last settled tick; returns when the next tick is due."""
    rules: list[CareRule] = [r for r in ruleset.rules if isinstance(r, CareRule) and r.enabled]
    if not rules:
        return None
    async with conn.transaction():
        if not await try_xact_lock(conn, _CARE_LOCK):
            return None
        now = await db_now(conn)
        async with conn.cursor() as c:
            devices = await all_devices(c, kind=Kind.HOME_ACTIVITY)
        watched = {r.id: residents(r, devices) for r in rules}
        due, next_due = await _due(conn, rules, watched, now.timestamp(), settle_s)
        async with conn.cursor() as c:
            states = await load_states(c, {k[1:] for k in due}, [r.id for r in rules])
            active = await load_active_states(c, [r.id for r in rules])
        touched: dict[StateKey, SubjectState] = {}
        cache: dict[tuple[Any, ...], Any] = {}
        async with conn.cursor(row_factory=dict_row) as dcur:
            for key, state in active.items():
                rule = next(r for r in rules if r.id == key[0])
                if (key[1], key[3]) not in watched[rule.id]:
                    gone = Transition(
                        False,
                        now.timestamp(),
                        f"resident {key[3]} is no longer watched by this rule: not selected "
                        "or no devices registered",
                        {"reason": "not watched"},
                    )
                    await apply_transition(
                        dcur, rule, alerts.Subject(*key[1:]), state, gone, actor, None, out
                    )
                    state.active, state.last_transition_at = False, gone.at
                    touched[key] = state
            for key in sorted(due):
                rule = next(r for r in rules if r.id == key[0])
                state = states.get(key) or SubjectState()
                by_id = watched[rule.id][(key[1], key[3])]
                if await _run(
                    conn, dcur, rule, key, state, by_id, now, settle_s, actor, out, cache
                ):
                    touched[key] = state
        async with conn.cursor() as c:
            await save_states(c, touched)
    return utc(next_due) if next_due is not None else None


def _settled(rule: CareRule, now: float, settle_s: float) -> float:
    """The last tick at least ``settle_s`` ago: how far a sweep evaluates."""
    tick = rule.every.total_seconds()
    return (now - settle_s) // tick * tick


async def _due(
    conn: AsyncConnection[Any],
    rules: list[CareRule],
    watched: dict[str, dict[tuple[str, str], dict[str, DeviceView]]],
    now: float,
    settle_s: float,
) -> tuple[list[StateKey], float | None]:
    """The (rule, resident) monitors with a settled tick to evaluate, read without their saved
    state (a sweep runs every few seconds; a monitor moves every ``every``); and when the next
    one is due."""
    cur = await conn.execute(
        """SELECT rule_id, council_id, subject_id, evaluated_until FROM rule_state
           WHERE subject_type = 'resident' AND rule_id = ANY(%s)""",
        ([r.id for r in rules],),
    )
    evaluated = {(r[0], r[1], r[2]): r[3] for r in await cur.fetchall()}
    due: list[StateKey] = []
    next_due: float | None = None
    for rule in rules:
        until = _settled(rule, now, settle_s)
        for council_id, rid in watched[rule.id]:
            last = evaluated.get((rule.id, council_id, rid))
            if last is None or until > last.timestamp():
                due.append((rule.id, council_id, "resident", rid))
                last_s = until
            else:
                last_s = last.timestamp()
            nxt = last_s + rule.every.total_seconds() + settle_s
            next_due = nxt if next_due is None else min(next_due, nxt)
    return due, next_due


async def _run(
    conn: AsyncConnection[Any],
    dcur: alerts.Cursor,
    rule: CareRule,
    key: StateKey,
    state: SubjectState,
    devices: dict[str, DeviceView],
    now: datetime,
    settle_s: float,
    actor: str,
    out: Outcome,
    cache: dict[tuple[Any, ...], Any],
) -> bool:
    """Advance one resident's monitor for one rule to the last settled tick its readings reach;
    False if there is nothing new (no reading up to that tick: a monitor started on nothing would
    count empty days)."""
    _, council_id, _, rid = key
    monitor = rule.monitor()
    if not state.data or not monitor.load(state.data):
        monitor = rule.monitor()
        state.evaluated_until = None
    monitor.expect(expected_silence(devices))
    first, latest = await reading_span(conn, council_id, rid)
    if first is None or latest is None:
        return False
    # No further than the resident's latest reading: while a backfill (or a hub's buffered
    # upload) is still arriving, the days not stored yet are not judged as days without data.
    # A hub that stays silent stops its monitors here; home-hub-offline tells the provider,
    # and when it reports again the gap is evaluated as missing data, as it happened.
    tick = rule.every.total_seconds()
    until = min(_settled(rule, now.timestamp(), settle_s), latest.timestamp() // tick * tick)
    after = state.evaluated_until
    if after is None:
        if first.timestamp() > until:
            return False
        after = max(first.timestamp() - 1e-3, history_start(rule, now.timestamp()))
    elif until <= after:
        return False
    # Events depend on the rule's devices too (which door is the front door, where a sensor is).
    span = (council_id, rid, after, until, tuple(sorted(devices)))
    if span not in cache:
        cache[span] = await resident_events(conn, council_id, rid, utc(after), utc(until), devices)
    subject = alerts.Subject.of(next(iter(devices.values())), "resident", rid)
    for _, transition in monitor.run(cache[span], until):
        out.evaluations[rule.id] += 1
        await apply_transition(dcur, rule, subject, state, transition, actor, None, out)
        state.active, state.last_transition_at = transition.opens, transition.at
    state.data = monitor.to_dict()
    state.evaluated_until = until
    return True
