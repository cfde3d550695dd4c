"""``placewatch rules backtest``: what the rules would have raised over stored readings.

Stream rules are stepped through each device's readings exactly as the live workers step them
(``rules.engine``), from a blank state at ``start``; silence is judged from the gaps between
receive times; objectives are counted as of ``end``; care rules run each resident's readings
from ``start`` through a fresh monitor on the live tick grid. The session is set READ ONLY:
live alerts and rule state are never touched.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from care.live import residents
from care.readings import expected_silence, resident_events
from placewatch.kinds import Kind
from rules.durations import format_duration
from rules.engine import SubjectState, step_through
from rules.kinds.care import CareRule
from rules.kinds.objectives import AqsObjectiveRule, year_start
from rules.kinds.silence import SilenceRule, gaps
from rules.loader import AnyRule, RuleSet
from rules.model import DeviceView, Rule
from rules.registry import DeviceKey, all_devices, load_series
from rules.sweeps import objective_exceedances
from rules.units import clock, utc

# Devices whose readings are held in memory at once.
_CHUNK = 200


@dataclass(frozen=True)
class Fired:
    rule_id: str
    council_id: str
    subject_type: str
    subject_id: str
    opened_at: datetime
    resolved_at: datetime | None
    summary: str

    def key(self) -> tuple[str, str, str, str, datetime]:
        return (self.rule_id, self.council_id, self.subject_type, self.subject_id, self.opened_at)


async def backtest(
    conn: AsyncConnection[Any],
    ruleset: RuleSet,
    start: datetime,
    end: datetime,
    rule_id: str | None = None,
    council_id: str | None = None,
) -> list[Fired]:
    rules = [r for r in ruleset.rules if r.enabled and (rule_id is None or r.id == rule_id)]
    fired: list[Fired] = []
    # Read-only for the whole session, and one short transaction per chunk rather than one
    # long snapshot (which would hold back vacuum of the inbox the live workers churn).
    await conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    async with conn.cursor() as cur:
        devices = await all_devices(cur, council_id)
    stream = [r for r in rules if r.stream]
    silence = [r for r in rules if isinstance(r, SilenceRule)]
    by_kind: dict[Kind, list[DeviceView]] = defaultdict(list)
    for d in devices:
        by_kind[d.kind].append(d)
    received: dict[DeviceKey, list[float]] = {}
    for kind, kind_devices in by_kind.items():
        for i in range(0, len(kind_devices), _CHUNK):
            chunk = kind_devices[i : i + _CHUNK]
            async with conn.transaction():
                fired += await _stream_chunk(
                    conn, kind, chunk, stream, silence, start, end, received
                )
    # Silence after every chunk: a home's or a site's devices may span chunks.
    fired += _silence(silence, devices, received, start, end)
    for rule in rules:
        if isinstance(rule, AqsObjectiveRule):
            fired += await _objective(conn, rule, devices, start, end)
        if isinstance(rule, CareRule):
            fired += await _care(conn, rule, devices, start, end)
    return sorted(fired, key=lambda f: (f.opened_at, f.rule_id, f.subject_id))


async def _stream_chunk(
    conn: AsyncConnection[Any],
    kind: Kind,
    devices: list[DeviceView],
    stream: list[AnyRule],
    silence: list[SilenceRule],
    start: datetime,
    end: datetime,
    received: dict[DeviceKey, list[float]],
) -> list[Fired]:
    """Step the stream rules through a chunk of devices; keep their receive times (only those
    silence rules watch) in ``received``."""
    plans: dict[DeviceKey, list[Rule]] = {}
    lookback = timedelta(0)
    for d in devices:
        rules: list[Rule] = [r for r in stream if r.applies_to(d)]
        if rules:
            plans[(d.council_id, d.device_id)] = rules
            lookback = max(lookback, *(r.lookback() for r in rules))
    silence_limits = [
        lim for r in silence for d in devices if r.applies_to(d) and (lim := r.limit_s(d))
    ]
    lookback = max(lookback, timedelta(seconds=max(silence_limits, default=0)))
    keys = [(d.council_id, d.device_id) for d in devices]
    async with conn.cursor() as cur:
        series = await load_series(cur, kind, {k: (start - lookback, end) for k in keys})
    out: list[Fired] = []
    for d in devices:
        key = (d.council_id, d.device_id)
        for rule in plans.get(key, []):
            state = SubjectState()
            transitions = step_through(
                rule, d, series[key], state, start.timestamp(), end.timestamp()
            )
            out += _pair(rule.id, d.council_id, "device", d.device_id, transitions)
        if any(r.applies_to(d) for r in silence):
            received[key] = series[key].received
    return out


def _pair(
    rule_id: str, council_id: str, stype: str, sid: str, transitions: list[Any]
) -> list[Fired]:
    fired: list[Fired] = []
    for t in transitions:
        if t.opens:
            fired.append(Fired(rule_id, council_id, stype, sid, utc(t.at), None, t.summary))
        elif fired and fired[-1].resolved_at is None:
            last = fired[-1]
            fired[-1] = Fired(*last.key()[:5], utc(t.at), last.summary)
    return fired


def _silence(
    rules: list[SilenceRule],
    devices: list[DeviceView],
    received: dict[DeviceKey, list[float]],
    start: datetime,
    end: datetime,
) -> list[Fired]:
    """Gaps in receive times reaching each subject's limit, and a silence still going on at
    ``end``."""
    out: list[Fired] = []
    for rule in rules:
        groups: dict[tuple[str, str, str], tuple[list[float], float]] = {}
        for d in devices:
            subject = rule.subject_of(d)
            limit = rule.limit_s(d)
            device_times = received.get((d.council_id, d.device_id))
            # As live, where a device never heard is not watched.
            if not rule.applies_to(d) or subject is None or limit is None or not device_times:
                continue
            gkey = (d.council_id, *subject)
            times, lim = groups.get(gkey, ([], 0.0))
            groups[gkey] = (times + device_times, max(lim, limit))
        for (council_id, stype, sid), (times, limit) in groups.items():
            spans: list[tuple[float, float | None]] = list(gaps(times, limit))
            if times and max(times) + limit <= end.timestamp():
                spans.append((max(times) + limit, None))  # still silent at the end
            for silent_from, heard in spans:
                if not start.timestamp() <= silent_from <= end.timestamp():
                    continue
                what = "device" if stype == "device" else f"{stype}'s devices"
                summary = (
                    f"{what} not heard since {clock(silent_from - limit)}: silent for "
                    f"{format_duration(limit)}"
                )
                resolved = utc(heard) if heard is not None else None
                out.append(
                    Fired(rule.id, council_id, stype, sid, utc(silent_from), resolved, summary)
                )
    return out


async def _objective(
    conn: AsyncConnection[Any],
    rule: AqsObjectiveRule,
    devices: list[DeviceView],
    start: datetime,
    end: datetime,
) -> list[Fired]:
    found = await objective_exceedances(conn, rule, year_start(end), end)
    out = []
    for d in devices:
        if not rule.applies_to(d):
            continue
        t = rule.evaluate(found.get((d.council_id, d.device_id), []), end.year)
        if t is not None and t.opens and start.timestamp() <= t.at <= end.timestamp():
            out.append(
                Fired(rule.id, d.council_id, "device", d.device_id, utc(t.at), None, t.summary)
            )
    return out


async def _care(
    conn: AsyncConnection[Any],
    rule: CareRule,
    devices: list[DeviceView],
    start: datetime,
    end: datetime,
) -> list[Fired]:
    """Each resident's readings through a fresh monitor, on the live worker's tick grid."""
    out: list[Fired] = []
    for (council_id, rid), by_id in residents(rule, devices).items():
        monitor = rule.monitor()
        monitor.expect(expected_silence(by_id))
        until = end.timestamp() // monitor.params.tick_s * monitor.params.tick_s
        async with conn.transaction():
            # From ``start`` inclusive, as live starts at the first reading itself.
            after = start - timedelta(milliseconds=1)
            events = await resident_events(conn, council_id, rid, after, utc(until), by_id)
        transitions = [t for _, t in monitor.run(events, until)]
        out += _pair(rule.id, council_id, "resident", rid, transitions)
    return out


def render(fired: list[Fired]) -> str:
    if not fired:
        return "no alerts would have fired"
    lines = [f"{len(fired)} alerts would have fired:"]
    for f in fired:
        until = f"resolved {clock(f.resolved_at.timestamp())}" if f.resolved_at else "still open"
        lines.append(
            f"  {clock(f.opened_at.timestamp())}  {f.rule_id}  {f.subject_type} "
            f"{f.council_id}/{f.subject_id}  ({until})\n      {f.summary}"
        )
    return "\n".join(lines)
