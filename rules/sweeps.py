"""Scheduled evaluation: silence, air-quality objectives, escalation of unacknowledged alerts,
and reconciliation of alerts whose rule no longer watches their subject. Each sweep runs in its
own transaction under a try-advisory-lock, so with N workers one sweeps and the others skip;
each returns when it next needs to run."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.errors import LockNotAvailable
from psycopg.rows import dict_row

from placewatch.kinds import Kind
from rules import alerts, metrics
from rules.engine import SubjectState
from rules.kinds.objectives import AqsObjectiveRule, year_start
from rules.kinds.silence import Heard, SilenceRule
from rules.loader import RuleSet
from rules.model import DeviceView, Transition
from rules.registry import (
    StateKey,
    all_devices,
    heard_devices,
    load_active_states,
    load_devices,
    load_states,
    save_states,
)
from rules.stream import Outcome, apply_transition
from rules.units import utc
from storage import retention
from storage.rollups import materialised_here, pending, refresh_rollups

log = logging.getLogger(__name__)

_SILENCE_LOCK = 0x706C_7369_6C65  # "plsile"
_OBJECTIVE_LOCK = 0x706C_6F62_6A65  # "plobje"
_ESCALATION_LOCK = 0x706C_6573_6361  # "plesca"
_RECONCILE_LOCK = 0x706C_7265_636F  # "plreco"
# Early in January the last hour and day of the old year complete: count that year too.
_YEAR_END_GRACE = timedelta(days=2)


async def try_xact_lock(conn: AsyncConnection[Any], key: int) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def db_now(conn: AsyncConnection[Any]) -> datetime:
    cur = await conn.execute("SELECT clock_timestamp()")
    row = await cur.fetchone()
    assert row is not None
    value: datetime = row[0]
    return value.astimezone(UTC)  # calendar years are UTC years, whatever the session zone


async def inbox_backlog(conn: AsyncConnection[Any], cap: int = 1_000_000) -> int:
    """Inbox rows waiting, counted up to ``cap`` (a full count of a huge backlog is slow)."""
    cur = await conn.execute("SELECT count(*) FROM (SELECT 1 FROM rule_inbox LIMIT %s) s", (cap,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _resolve_unwatched(
    dcur: alerts.Cursor,
    rule: Any,
    key: StateKey,
    state: SubjectState,
    now: datetime,
    why: str,
    actor: str,
    out: Outcome,
) -> None:
    gone = Transition(
        False,
        now.timestamp(),
        f"{key[2]} {key[3]} is no longer watched by this rule: {why}",
        {"reason": why},
    )
    await apply_transition(dcur, rule, alerts.Subject(*key[1:]), state, gone, actor, None, out)
    state.active, state.last_transition_at = False, gone.at


# -- silence ---------------------------------------------------------------------------------


# Whether this process last found the gate open (so that only changes are logged).
_gate_open = [True]


@dataclass(frozen=True)
class SilenceGate:
    """Silence alerts are held back unless every ingest heard from in the last ``forget_s``
    has a fresh heartbeat (within ``stale_s``) and has been healthy for ``grace_s``. A stalled
    pipeline makes every device look silent: that is one outage (ingest's own metrics and
    /readyz), not an alert per device or a "hub offline" for every home."""

    stale_s: float
    grace_s: float
    forget_s: float

    async def check(self, conn: AsyncConnection[Any], now: datetime) -> tuple[bool, str]:
        cur = await conn.execute(
            """SELECT count(*), count(*) FILTER (WHERE seen_at >= %(now)s - %(stale)s * i),
                      max(healthy_since)
               FROM ingest_heartbeats, (SELECT interval '1 second' AS i) u
               WHERE seen_at >= %(now)s - %(forget)s * i""",
            {"now": now, "stale": self.stale_s, "forget": self.forget_s},
        )
        row = await cur.fetchone()
        total, fresh, newest_recovery = row if row else (0, 0, None)
        if not total:
            return False, "no ingest has reported healthy lately"
        if fresh < total:
            return False, f"{total - fresh} of {total} ingest processes not healthy"
        if newest_recovery is not None and now - newest_recovery < timedelta(seconds=self.grace_s):
            return False, "ingest recovered less than the grace period ago"
        return True, "ok"


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
        heard = Heard(
            stype,  # type: ignore[arg-type]
            sid,
            max(m[1] for m in members),
            max(m[2] for m in members),
            len(members),
        )
        out[(council_id, stype, sid)] = (heard, members[0][0])
    return out


async def silence_sweep(
    conn: AsyncConnection[Any], ruleset: RuleSet, actor: str, out: Outcome, gate: SilenceGate
) -> datetime | None:
    """Open silence alerts whose deadline passed (while the gate is open), resolve those heard
    again or no longer watched. Returns the earliest future deadline."""
    rules = [r for r in ruleset.rules if isinstance(r, SilenceRule) and r.enabled]
    if not rules:
        return None
    async with conn.transaction():
        now = await db_now(conn)
        may_open, why = await gate.check(conn, now)
        metrics.SILENCE_HELD.set(0 if may_open else 1)  # every worker says so, sweeping or not
        if may_open != _gate_open[0]:
            _gate_open[0] = may_open
            if may_open:
                log.info("silence alerts no longer held back")
            else:
                log.warning("silence alerts held back: %s", why)
        if not await try_xact_lock(conn, _SILENCE_LOCK):
            return None
        async with conn.cursor() as c:
            seen = await heard_devices(c)
        subjects = {rule.id: heard_by_subject(rule, seen) for rule in rules}
        all_subjects = {s for by in subjects.values() for s in by}
        async with conn.cursor() as c:
            states = await load_states(c, all_subjects, [r.id for r in rules])
            active = await load_active_states(c, [r.id for r in rules])
        touched: dict[StateKey, SubjectState] = {}
        next_due: float | None = None
        async with conn.cursor(row_factory=dict_row) as dcur:
            for key, state in active.items():
                rule = next(r for r in rules if r.id == key[0])
                if key[1:] not in subjects[rule.id]:
                    await _resolve_unwatched(
                        dcur, rule, key, state, now, "not selected or not registered", actor, out
                    )
                    touched[key] = state
            for rule in rules:
                for (council_id, stype, sid), (heard, device) in subjects[rule.id].items():
                    key = (rule.id, council_id, stype, sid)
                    state = states.get(key) or SubjectState()
                    t = rule.evaluate(heard, now.timestamp(), state.active)
                    out.evaluations[rule.id] += 1
                    if t is not None and (not t.opens or may_open):
                        state.active = t.opens
                        state.last_transition_at = t.at
                        await apply_transition(
                            dcur,
                            rule,
                            alerts.Subject.of(device, stype, sid),
                            state,
                            t,
                            actor,
                            None,
                            out,
                        )
                        touched[key] = state
                    if not state.active:
                        due = heard.last_seen + heard.limit_s
                        next_due = due if next_due is None else min(next_due, due)
        async with conn.cursor() as c:
            await save_states(c, touched)
    if not may_open:
        return None  # look again at the sweep period, not at past deadlines
    return utc(next_due) if next_due is not None else None


# -- objectives ------------------------------------------------------------------------------


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
        if await try_xact_lock(conn, _OBJECTIVE_LOCK):
            # Last runs are kept in the database, so N workers count once per period between
            # them, and a restart does not count again at once.
            cur = await conn.execute(
                "SELECT rule_id, last_run_at FROM rule_timers WHERE rule_id = ANY(%s)",
                ([r.id for r in rules],),
            )
            last_run.update({str(rid): at for rid, at in await cur.fetchall()})
            due = [r for r in rules if r.id not in last_run or now >= last_run[r.id] + r.every]
            if due:
                async with conn.cursor() as c:
                    stations = await all_devices(c, kind=Kind.AIR_QUALITY)
            for rule in due:
                await _objective(conn, rule, stations, now, actor, out)
                await conn.execute(
                    """INSERT INTO rule_timers (rule_id, last_run_at) VALUES (%s, %s)
                       ON CONFLICT (rule_id) DO UPDATE SET last_run_at = excluded.last_run_at""",
                    (rule.id, now),
                )
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
    years = [now.year]
    if now - year_start(now) < _YEAR_END_GRACE:
        years.insert(0, now.year - 1)
    found = {
        y: await objective_exceedances(
            conn, rule, datetime(y, 1, 1, tzinfo=UTC), min(now, datetime(y + 1, 1, 1, tzinfo=UTC))
        )
        for y in years
    }
    subjects = [(c, "device", d) for c, d in applicable]
    async with conn.cursor() as c:
        states = await load_states(c, subjects, [rule.id])
    touched: dict[StateKey, SubjectState] = {}
    async with conn.cursor(row_factory=dict_row) as dcur:
        for key, device in applicable.items():
            skey = (rule.id, key[0], "device", key[1])
            state = states.get(skey) or SubjectState()
            subject = alerts.Subject.of(device, "device", key[1])
            alerted: list[int] = list(state.data.get("alerted_years", []))
            for year in years:
                alert_year = state.data.get("year") if state.active else None
                if isinstance(alert_year, int) and alert_year < year:
                    over = rule.year_over(year)
                    await apply_transition(
                        dcur,
                        rule,
                        alerts.Subject.of(device, "device", key[1]),
                        state,
                        over,
                        actor,
                        None,
                        out,
                    )
                    state.active, state.last_transition_at = False, over.at
                    touched[skey] = state
                out.evaluations[rule.id] += 1
                if state.active or year in alerted:
                    continue  # this year's alert is open, or was raised already
                opened = rule.evaluate(found[year].get(key, []), year)
                if opened is None:
                    continue
                state.active, state.last_transition_at = True, opened.at
                alerted = [*alerted[-2:], year]
                state.data = {**state.data, "alerted_years": alerted, "year": year}
                await apply_transition(dcur, rule, subject, state, opened, actor, None, out)
                touched[skey] = state
    async with conn.cursor() as c:
        await save_states(c, touched)


async def _hourly_aggregate(conn: AsyncConnection[Any]) -> bool:
    cur = await conn.execute("SELECT flavour FROM schema_migrations ORDER BY version LIMIT 1")
    row = await cur.fetchone()
    return bool(row and row[0] == "timescaledb")


async def objective_exceedances(
    conn: AsyncConnection[Any], rule: AqsObjectiveRule, start: datetime, as_of: datetime
) -> dict[tuple[str, str], list[datetime]]:
    query = rule.objective.sql(await _hourly_aggregate(conn))
    cur = await conn.execute(query.encode(), {"start": start, "as_of": as_of})
    found: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for council_id, device_id, period_start in await cur.fetchall():
        found[(council_id, device_id)].append(period_start)
    return found


# -- hourly roll-ups (plain PostgreSQL) --------------------------------------------------------

# A refresh that has far to go (a first one over a long history) stops after this long and
# continues at the next sweep, so the other sweeps are not held up.
ROLLUP_BUDGET_S = 5.0
ROLLUP_RETRY = timedelta(seconds=10)


async def rollup_sweep(conn: AsyncConnection[Any]) -> datetime | None:
    """Refresh the materialised hourly roll-ups (storage/rollups.py) when there is anything to
    do: a new hour to materialise, or late changes the triggers logged (so a backfill shows in
    the roll-ups within a sweep interval). With N workers one refreshes each roll-up and the
    others skip it. On TimescaleDB there is nothing to do: the continuous aggregates' policies
    refresh them."""
    if await materialised_here(conn) is not None or not await pending(conn):
        return None
    try:
        results = await refresh_rollups(conn, budget_s=ROLLUP_BUDGET_S)
    except LockNotAvailable:
        # Writers kept the invalidation lock past every try: leave them be, come back soon.
        log.warning("roll-up refresh gave way to writers; trying again shortly")
        return await db_now(conn) + ROLLUP_RETRY
    for r in results:
        if r.buckets or r.invalidated_devices:
            log.info(
                "roll-up %s: %d hourly rows written (%d devices' late changes) in %.2f s,"
                " materialised to %s",
                r.relation,
                r.buckets,
                r.invalidated_devices,
                r.seconds,
                r.watermark,
            )
    behind = any(not r.caught_up for r in results)
    return await db_now(conn) if behind else None


# -- retention ---------------------------------------------------------------------------------

# A run that spent its budget (or found another worker deleting) looks again this soon.
RETENTION_RETRY = timedelta(seconds=60)


@dataclass
class RetentionSchedule:
    """When this worker next deletes expired data (storage/retention.py): every ``interval``,
    sooner while a run had more to delete than its budget allowed."""

    interval: timedelta
    batch: int
    budget_s: float
    days: dict[str, int]
    next_at: datetime | None = None
    checked_periods: bool = False


async def retention_sweep(conn: AsyncConnection[Any], schedule: RetentionSchedule) -> datetime:
    """Delete what has outlived its period, in bounded batches, through the owner's function
    (the worker's role may not delete directly). The periods are the database's: configured
    ones that differ are reported, since only the owner may record them."""
    now = await db_now(conn)
    if schedule.next_at is not None and now < schedule.next_at:
        return schedule.next_at
    try:
        if not schedule.checked_periods:
            for line in retention.differences(await retention.policies(conn), schedule.days):
                log.warning(
                    "retention: %s; run `placewatch storage retention` as the owner to record it",
                    line,
                )
            schedule.checked_periods = True
        results = await retention.purge(conn, batch=schedule.batch, budget_s=schedule.budget_s)
    except (errors.InsufficientPrivilege, errors.UndefinedTable, errors.UndefinedFunction) as exc:
        # Not migrated to 0008 yet, or the grants not run (docs/storage.md, "Database roles"):
        # say so once an interval rather than stop the other sweeps.
        log.error("retention not run: %s", exc)
        schedule.next_at = now + schedule.interval
        return schedule.next_at
    for r in results:
        if r.deleted:
            log.info(
                "retention: %d rows of %s deleted (before %s)", r.deleted, r.data_class, r.cutoff
            )
    done = all(r.done for r in results)
    schedule.next_at = await db_now(conn) + (schedule.interval if done else RETENTION_RETRY)
    return schedule.next_at


# -- escalation ------------------------------------------------------------------------------

_DUE = """a.last_notified_at + make_interval(
              secs => CASE WHEN a.escalations = 0 THEN r.after_s ELSE r.repeat_s END)"""
_ESCALATING = """
    FROM alerts a
    JOIN unnest(%(ids)s::text[], %(after)s::float8[], %(repeat)s::float8[], %(max)s::int[])
         AS r(rule_id, after_s, repeat_s, max_renotify) USING (rule_id)
    WHERE a.state = 'open'
      AND (a.escalations = 0 OR (r.repeat_s IS NOT NULL AND a.escalations <= r.max_renotify))"""


async def escalation_sweep(
    conn: AsyncConnection[Any], ruleset: RuleSet, actor: str, out: Outcome
) -> datetime | None:
    """Escalate, then re-notify, open alerts nobody acknowledged in their rule's time. Only
    the alerts that are due are locked."""
    rules = {r.id: r for r in ruleset.rules if r.escalation is not None and r.enabled}
    if not rules:
        return None
    esc = {rid: r.escalation for rid, r in rules.items() if r.escalation is not None}
    params: dict[str, Any] = {
        "ids": list(esc),
        "after": [e.after.total_seconds() for e in esc.values()],
        "repeat": [e.repeat.total_seconds() if e.repeat else None for e in esc.values()],
        "max": [e.max_renotify for e in esc.values()],
    }
    async with conn.transaction():
        if not await try_xact_lock(conn, _ESCALATION_LOCK):
            return None
        now = await db_now(conn)
        cur = await conn.execute(
            f"""SELECT a.alert_id, a.rule_id, a.escalations {_ESCALATING} AND {_DUE} <= %(now)s
                ORDER BY a.alert_id FOR UPDATE OF a SKIP LOCKED""",
            {**params, "now": now},
        )
        async with conn.cursor(row_factory=dict_row) as dcur:
            for alert_id, rule_id, escalations in await cur.fetchall():
                first = escalations == 0
                if await alerts.escalate_alert(dcur, alert_id, actor, esc[rule_id].severity, first):
                    out.escalated[rule_id] += 1
        cur = await conn.execute(f"SELECT min({_DUE}) {_ESCALATING}", params)
        row = await cur.fetchone()
    return row[0] if row and row[0] else None


# -- reconciliation --------------------------------------------------------------------------


async def reconcile_sweep(
    conn: AsyncConnection[Any],
    ruleset: RuleSet,
    actor: str,
    out: Outcome,
    untouched_for: timedelta,
) -> datetime | None:
    """Resolve alerts of rules that were removed or disabled, or that no longer select their
    device (a tag removed, a device re-registered as another model): otherwise nothing would
    ever clear them. Only states no worker has touched for ``untouched_for`` are considered,
    so a worker that has not reloaded yet does not resolve what reloaded ones just opened.
    Silence rules reconcile their own subjects."""
    enabled = {r.id: r for r in ruleset.rules if r.enabled}
    async with conn.transaction():
        if not await try_xact_lock(conn, _RECONCILE_LOCK):
            return None
        now = await db_now(conn)
        async with conn.cursor() as c:
            await c.execute("SELECT DISTINCT rule_id FROM rule_state WHERE active")
            rule_ids = [r[0] for r in await c.fetchall()]
            active = await load_active_states(c, rule_ids, untouched_since=now - untouched_for)
            devices = await load_devices(c, {(k[1], k[3]) for k in active if k[2] == "device"})
        touched: dict[StateKey, SubjectState] = {}
        async with conn.cursor(row_factory=dict_row) as dcur:
            for key, state in active.items():
                rule = enabled.get(key[0])
                why = None
                if rule is None:
                    why = "rule removed or disabled"
                elif isinstance(rule, SilenceRule):
                    continue
                elif key[2] == "device":
                    device = devices.get((key[1], key[3]))
                    if device is None or not rule.applies_to(device):
                        why = "device not registered or no longer selected"
                if why is not None:
                    stand_in = rule or _Removed(key[0])
                    await _resolve_unwatched(dcur, stand_in, key, state, now, why, actor, out)
                    touched[key] = state
        async with conn.cursor() as c:
            await save_states(c, touched)
    return None


@dataclass(frozen=True)
class _Removed:
    """A rule that is no longer loaded, for resolving what it left open."""

    id: str
