"""Stream evaluation: claim inbox rows, evaluate the readings they announce, store the outcome,
all in one transaction.

Claiming locks devices (transaction-scoped try-locks, so workers never take the same device)
and deletes their inbox rows; the deletion commits with the alerts and rule state it led to. A
worker killed midway rolls back: the rows reappear and are evaluated again from the same state.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from placewatch.kinds import Kind
from rules import alerts
from rules.engine import SubjectState, step_through
from rules.loader import RuleSet
from rules.model import Rule, Transition
from rules.registry import (
    DeviceKey,
    StateKey,
    load_devices,
    load_series,
    load_states,
    save_states,
)
from rules.units import utc

log = logging.getLogger(__name__)


@dataclass
class Claim:
    """The inbox rows of one device taken in one transaction."""

    council_id: str
    device_id: str
    kind: Kind
    segments: list[tuple[datetime, datetime, datetime]] = field(default_factory=list)

    @property
    def min_time(self) -> datetime:
        return min(s[0] for s in self.segments)

    @property
    def max_time(self) -> datetime:
        return max(s[1] for s in self.segments)

    def committed_at(self, at: float) -> datetime:
        """When the reading at event time ``at`` was committed (its inbox row's time)."""
        for lo, hi, enqueued in self.segments:
            if lo.timestamp() <= at <= hi.timestamp():
                return enqueued
        return max(s[2] for s in self.segments)


@dataclass
class Outcome:
    claimed_rows: int = 0
    readings: int = 0
    evaluations: Counter[str] = field(default_factory=Counter)
    opened: Counter[str] = field(default_factory=Counter)
    resolved: Counter[str] = field(default_factory=Counter)
    escalated: Counter[str] = field(default_factory=Counter)
    too_late: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    oldest_enqueued: datetime | None = None


async def claim(conn: AsyncConnection[Any], limit: int, out: Outcome) -> list[Claim]:
    """Take devices, not rows: among the devices of the oldest inbox rows, lock up to ``limit``
    that no other worker holds (a try-lock per device, for this transaction), then take every
    inbox row of those devices. A device's readings are thus evaluated by one worker at a time
    and in event-time order, even when its rows were split across ingest batches; try-locks
    never wait, so workers cannot deadlock."""
    devices: list[tuple[str, str]] = []
    window = limit * 4
    for _ in range(3):
        cur = await conn.execute(
            # Oldest first: the try-lock is applied to devices in the order of their oldest
            # waiting row, and stops at the limit (a volatile filter is not pushed below the
            # sort), so no device waits behind others that came later.
            """SELECT c, d FROM (
                   SELECT council_id AS c, device_id AS d, min(id) AS oldest
                   FROM (SELECT council_id, device_id, id FROM rule_inbox ORDER BY id LIMIT %s) w
                   GROUP BY 1, 2
                   ORDER BY oldest
               ) s
               WHERE pg_try_advisory_xact_lock(hashtextextended(c || '/' || d, 1885))
               LIMIT %s""",
            (window, limit),
        )
        devices = [(str(c), str(d)) for c, d in await cur.fetchall()]
        if devices:
            break
        row = await (
            await conn.execute("SELECT count(*) > %s FROM rule_inbox", (window,))
        ).fetchone()
        if not (row and row[0]):
            return []  # empty, or every device in it is being evaluated by another worker
        window *= 8
    if not devices:
        return []
    cur = await conn.execute(
        """DELETE FROM rule_inbox i
           USING unnest(%s::text[], %s::text[]) AS k(c, d)
           WHERE i.council_id = k.c AND i.device_id = k.d
           RETURNING i.council_id, i.device_id, i.kind, i.min_time, i.max_time, i.enqueued_at,
                     i.readings""",
        ([c for c, _ in devices], [d for _, d in devices]),
    )
    claims: dict[DeviceKey, Claim] = {}
    for council_id, device_id, kind, lo, hi, enqueued, n in await cur.fetchall():
        c = claims.setdefault((council_id, device_id), Claim(council_id, device_id, Kind(kind)))
        c.segments.append((lo, hi, enqueued))
        out.claimed_rows += 1
        out.readings += n
        if out.oldest_enqueued is None or enqueued < out.oldest_enqueued:
            out.oldest_enqueued = enqueued
    return list(claims.values())


async def evaluate_claims(
    conn: AsyncConnection[Any],
    ruleset: RuleSet,
    claims: list[Claim],
    allowed_lateness: timedelta,
    actor: str,
    out: Outcome,
) -> None:
    """Evaluate every stream rule on the claimed readings; call inside the claiming
    transaction."""
    if not claims:
        return
    keys = [(c.council_id, c.device_id) for c in claims]
    async with conn.cursor() as cur:
        devices = await load_devices(cur, keys)
        rules_for: dict[DeviceKey, list[Rule]] = {
            k: [r for r in ruleset.stream if r.applies_to(d)] for k, d in devices.items()
        }
        states = await load_states(
            cur,
            [(c, "device", d) for c, d in keys],
            [r.id for r in ruleset.stream],
        )
        plans = _plan(claims, rules_for, states, allowed_lateness, out)
        series_by_kind: dict[Kind, dict[DeviceKey, tuple[datetime, datetime]]] = defaultdict(dict)
        for key, plan in plans.items():
            series_by_kind[plan.claim.kind][key] = (plan.fetch_from, plan.fetch_to)
        series = {}
        for kind, ranges in series_by_kind.items():
            series.update(await load_series(cur, kind, ranges))
    touched: dict[StateKey, SubjectState] = {}
    async with conn.cursor(row_factory=dict_row) as dcur:
        for key, plan in sorted(plans.items()):
            device = devices[key]
            for rule, state_key, start, end in plan.steps:
                state = states.get(state_key) or SubjectState()
                try:
                    transitions = step_through(rule, device, series[key], state, start, end)
                except Exception:  # a rule must not stop the stream for every other rule
                    log.exception("rule %s failed on device %s/%s", rule.id, *key)
                    out.errors[rule.id] += 1
                    continue
                out.evaluations[rule.id] += 1
                subject = alerts.Subject.of(device, "device", device.device_id)
                for t in transitions:
                    await apply_transition(dcur, rule, subject, state, t, actor, plan.claim, out)
                touched[state_key] = state
    async with conn.cursor() as cur:
        await save_states(cur, touched)


@dataclass
class _Plan:
    claim: Claim
    fetch_from: datetime
    fetch_to: datetime
    steps: list[tuple[Rule, StateKey, float, float]]


def _plan(
    claims: list[Claim],
    rules_for: dict[DeviceKey, list[Rule]],
    states: dict[StateKey, SubjectState],
    allowed_lateness: timedelta,
    out: Outcome,
) -> dict[DeviceKey, _Plan]:
    """Which range of readings each rule steps through, and which readings to fetch."""
    plans: dict[DeviceKey, _Plan] = {}
    lateness = allowed_lateness.total_seconds()
    for c in claims:
        key = (c.council_id, c.device_id)
        steps: list[tuple[Rule, StateKey, float, float]] = []
        fetch_from = fetch_to = None
        for rule in rules_for.get(key, []):
            state_key = (rule.id, c.council_id, "device", c.device_id)
            state = states.get(state_key)
            start, end = c.min_time.timestamp(), c.max_time.timestamp()
            if state is not None and state.evaluated_until is not None:
                floor = state.evaluated_until - lateness
                if start < floor:
                    out.too_late += 1  # stored, but older than rules will reconsider
                    start = floor
                end = max(end, state.evaluated_until)
            if start > end:
                continue
            steps.append((rule, state_key, start, end))
            lo = start - rule.lookback().total_seconds()
            fetch_from = lo if fetch_from is None else min(fetch_from, lo)
            fetch_to = end if fetch_to is None else max(fetch_to, end)
        if steps and fetch_from is not None and fetch_to is not None:
            plans[key] = _Plan(
                c,
                utc(fetch_from),
                utc(fetch_to),
                steps,
            )
    return plans


async def apply_transition(
    cur: alerts.Cursor,
    rule: Rule,
    subject: alerts.Subject,
    state: SubjectState,
    t: Transition,
    actor: str,
    claim: Claim | None,
    out: Outcome,
) -> None:
    if t.opens:
        committed = claim.committed_at(t.at) if claim else None
        alert_id, opened = await alerts.open_alert(cur, rule, subject, t, actor, committed)
        state.alert_id = alert_id
        if opened:
            out.opened[rule.id] += 1
    else:
        if state.alert_id is not None and await alerts.resolve_alert(
            cur, state.alert_id, actor, transition=t
        ):
            out.resolved[rule.id] += 1
        state.alert_id = None
