"""``placewatch rules run``: the rules worker. Safe to run as N replicas.

Two loops, each on its own connection. The stream loop claims devices with new readings and
evaluates them until the inbox is empty (one transaction per claim), then sleeps until a NOTIFY
from ingest or the poll interval. The sweep loop runs the timer-driven sweeps (silence,
objectives, escalation, reconciliation, care) and, on plain PostgreSQL, the refresh of the hourly
roll-ups, each at its own deadline. SIGHUP reloads the rule
files (a file with errors is reported and the rules in force are kept); SIGTERM finishes the
transactions in hand and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection

from care.live import care_sweep
from ingest.heartbeat import HEARTBEAT_GAP_S
from ingest.writer import RULES_CHANNEL
from placewatch.health import HealthServer
from placewatch.settings import Settings
from placewatch.supervise import SupervisedService, counting
from rules import metrics
from rules.loader import RuleLoadError, RuleSet, default_rules_dir, load_rules
from rules.stream import Outcome, claim, evaluate_claims
from rules.sweeps import (
    RetentionSchedule,
    SilenceGate,
    db_now,
    escalation_sweep,
    inbox_backlog,
    objective_sweep,
    reconcile_sweep,
    retention_sweep,
    rollup_sweep,
    silence_sweep,
)

log = logging.getLogger(__name__)

_SWEEP_GAP = timedelta(milliseconds=100)
# An ingest not heard of for this long is taken as retired (it no longer holds silence back).
_FORGET_INGEST_S = 3600.0


def rule_paths(settings: Settings) -> list[Path]:
    paths = [default_rules_dir()] if settings.rules_defaults else []
    paths += [Path(p) for p in settings.rules_path.split(os.pathsep) if p]
    return paths


def load_configured_rules(settings: Settings) -> RuleSet:
    return load_rules(rule_paths(settings))


class RulesWorker(SupervisedService):
    def __init__(self, settings: Settings, ruleset: RuleSet) -> None:
        self._wake = asyncio.Event()  # new readings (NOTIFY), a reload, a stop
        self._sweep_wake = asyncio.Event()  # a reload, a stop
        super().__init__(
            settings.database_url,
            "placewatch-rules",
            wakes=(self._wake, self._sweep_wake),
            # Labelled "(stream)", "(sweeps)": apart from the rule ids that share the label.
            on_error=counting(metrics.DB_ERRORS, metrics.ERRORS, "({})"),
            max_backoff_s=settings.ingest_retry_max_s,
        )
        self.settings = settings
        self.ruleset = ruleset
        self.actor = f"rules:{socket.gethostname()}:{os.getpid()}"
        self._objective_runs: dict[str, datetime] = {}
        self._sweep_due: dict[str, datetime] = {}
        self._retention = RetentionSchedule(
            interval=timedelta(seconds=settings.retention_interval_s),
            batch=settings.retention_batch,
            budget_s=settings.retention_budget_s,
            days=dict(settings.retention_days),
        )
        metrics.RULES_LOADED.set(len(ruleset.rules))

    def reload(self) -> None:
        try:
            self.ruleset = load_configured_rules(self.settings)
        except RuleLoadError as exc:
            metrics.RELOADS.labels("error").inc()
            log.error("rule files not reloaded; the rules in force stay:\n%s", exc)
            return
        metrics.RELOADS.labels("ok").inc()
        metrics.RULES_LOADED.set(len(self.ruleset.rules))
        self._objective_runs.clear()
        self._sweep_due.clear()
        log.info("reloaded %d rules from %s", len(self.ruleset.rules), self.ruleset.sources)
        self._wake.set()
        self._sweep_wake.set()

    async def run(self) -> None:
        s = self.settings
        log.info("rules worker %s: %d rules", self.actor, len(self.ruleset.rules))
        # Two loops on their own connections: a steady stream of readings never holds the
        # timers back, and a slow sweep never holds the readings back.
        await self.serve(
            HealthServer(s.rules_http_host, s.rules_http_port, ready=self.readiness),
            {"stream": self._stream_loop, "sweeps": self._sweep_loop},
            {signal.SIGHUP: self.reload},
        )
        log.info("rules worker stopped")

    async def _stream_loop(self, conn: AsyncConnection[Any]) -> None:
        async with await self.connect() as listener:
            await listener.execute(f"LISTEN {RULES_CHANNEL}")
            listen = asyncio.create_task(self._listen(listener))
            try:
                while not self.stopping.is_set():
                    self._wake.clear()
                    await self.drain(conn)
                    if listen.done():
                        listen.result()  # the listener failed: raise its error
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.rules_poll_s)
            finally:
                listen.cancel()
                with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                    await listen

    async def _sweep_loop(self, conn: AsyncConnection[Any]) -> None:
        while not self.stopping.is_set():
            self._sweep_wake.clear()
            next_due = await self.sweep(conn)
            wait = max(0.0, (next_due - await db_now(conn)).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sweep_wake.wait(), wait)

    async def _listen(self, listener: AsyncConnection[Any]) -> None:
        async for _ in listener.notifies():
            self._wake.set()

    async def drain(self, conn: AsyncConnection[Any]) -> int:
        """Evaluate until the inbox is empty (or a stop is requested); returns readings."""
        total = 0
        allowed = timedelta(seconds=self.settings.rules_allowed_lateness_s)
        while not self.stopping.is_set():
            out = Outcome()
            async with conn.transaction():
                claims = await claim(conn, self.settings.rules_batch, out)
                await evaluate_claims(conn, self.ruleset, claims, allowed, self.actor, out)
                lag_from = out.oldest_enqueued
            # Committed: now count it.
            lag = None
            if lag_from is not None:
                lag = (await db_now(conn) - lag_from).total_seconds()
            metrics.count(out, lag)
            total += out.readings
            if out.claimed_rows == 0:
                break
        return total

    async def sweep(self, conn: AsyncConnection[Any]) -> datetime:
        """Run the timer-driven sweeps that are due; returns when the next one is. Each runs at
        its own next deadline (silence: the earliest device deadline, to the query's time) and
        at least every ``rules_sweep_max_s`` (devices heard again, reloaded rules)."""
        now = await db_now(conn)
        every = timedelta(seconds=self.settings.rules_sweep_max_s)
        gate = SilenceGate(
            stale_s=HEARTBEAT_GAP_S,
            grace_s=self.settings.rules_silence_grace_s,
            forget_s=_FORGET_INGEST_S,
        )
        untouched = timedelta(seconds=self.settings.rules_reconcile_after_s)
        rules, actor = self.ruleset, self.actor
        sweeps: dict[str, Callable[[Outcome], Awaitable[datetime | None]]] = {
            "silence": lambda out: silence_sweep(conn, rules, actor, out, gate),
            "objectives": lambda out: objective_sweep(
                conn, rules, actor, out, self._objective_runs
            ),
            "escalation": lambda out: escalation_sweep(conn, rules, actor, out),
            "reconcile": lambda out: reconcile_sweep(conn, rules, actor, out, untouched),
            "care": lambda out: care_sweep(
                conn, rules, actor, out, self.settings.rules_care_settle_s
            ),
            "rollups": lambda out: rollup_sweep(conn),
            "retention": lambda out: retention_sweep(conn, self._retention),
        }
        for name, run_sweep in sweeps.items():
            if self.stopping.is_set():
                break
            if now < self._sweep_due.get(name, now):
                continue
            out = Outcome()
            due = await run_sweep(out)
            metrics.count(out, None)  # committed
            # Not sooner than a moment from now (a due item locked by someone else must not
            # make the loop spin), not later than `every`.
            soonest = now + _SWEEP_GAP
            self._sweep_due[name] = max(min(due, now + every), soonest) if due else now + every
        metrics.INBOX.set(await inbox_backlog(conn))
        return min(self._sweep_due.values(), default=now + every)


def run(settings: Settings) -> None:
    ruleset = load_configured_rules(settings)
    asyncio.run(RulesWorker(settings, ruleset).run())
