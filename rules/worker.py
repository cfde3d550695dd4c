"""``placewatch rules run``: the rules worker. Safe to run as N replicas.

Loop: claim inbox rows and evaluate them until the inbox is empty (one transaction per claim),
run the scheduled sweeps that are due, then sleep until a NOTIFY from ingest, the next sweep
deadline or the poll interval, whichever comes first. SIGHUP reloads the rule files (a file
with errors is reported and the rules in force are kept); SIGTERM finishes the transaction in
hand and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection

from ingest.store import is_transient
from ingest.writer import RULES_CHANNEL
from placewatch.health import HealthServer
from placewatch.settings import Settings
from rules import metrics
from rules.loader import RuleLoadError, RuleSet, default_rules_dir, load_rules
from rules.stream import Outcome, claim, evaluate_claims
from rules.sweeps import db_now, escalation_sweep, objective_sweep, silence_sweep

log = logging.getLogger(__name__)


def rule_paths(settings: Settings) -> list[Path]:
    paths = [default_rules_dir()] if settings.rules_defaults else []
    paths += [Path(p) for p in settings.rules_path.split(os.pathsep) if p]
    return paths


def load_configured_rules(settings: Settings) -> RuleSet:
    return load_rules(rule_paths(settings))


class RulesWorker:
    def __init__(self, settings: Settings, ruleset: RuleSet) -> None:
        self.settings = settings
        self.ruleset = ruleset
        self.actor = f"rules:{socket.gethostname()}:{os.getpid()}"
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._objective_runs: dict[str, datetime] = {}
        self._sweep_due: dict[str, datetime] = {}
        self._db_ok = False
        self._backoff = 0.5
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

    def request_stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    def readiness(self) -> tuple[bool, str]:
        return (True, "ok") if self._db_ok else (False, "database not reachable")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        s = self.settings
        health = HealthServer(s.rules_http_host, s.rules_http_port, ready=self.readiness)
        health.start()
        log.info("rules worker %s: %d rules", self.actor, len(self.ruleset.rules))
        try:
            while not self.stopping.is_set():
                try:
                    await self._serve()
                except (psycopg.Error, OSError) as exc:
                    if isinstance(exc, psycopg.Error) and not is_transient(exc):
                        raise
                    self._db_ok = False
                    metrics.DB_ERRORS.inc()
                    wait = self._backoff
                    log.warning("database error (%s); retrying in %.1fs", exc, wait)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), wait)
                    self._backoff = min(wait * 2, s.ingest_retry_max_s) * random.uniform(0.8, 1.2)
        finally:
            health.stop()
        log.info("rules worker stopped")

    async def _serve(self) -> None:
        url = self.settings.database_url
        async with (
            await AsyncConnection.connect(url, autocommit=True) as listener,
            await AsyncConnection.connect(url, autocommit=True) as conn,
        ):
            await listener.execute(f"LISTEN {RULES_CHANNEL}")
            listen = asyncio.create_task(self._listen(listener))
            self._db_ok = True
            self._backoff = 0.5
            try:
                while not self.stopping.is_set():
                    self._wake.clear()
                    await self.drain(conn)
                    next_due = await self.sweep(conn)
                    wait = (next_due - await db_now(conn)).total_seconds()
                    timeout = max(0.0, min(self.settings.rules_poll_s, wait))
                    if listen.done():
                        listen.result()  # the listener failed: raise its error
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout)
            finally:
                listen.cancel()
                with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                    await listen

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
        row = await (await conn.execute("SELECT count(*) FROM rule_inbox")).fetchone()
        metrics.INBOX.set(row[0] if row else 0)
        return total

    async def sweep(self, conn: AsyncConnection[Any]) -> datetime:
        """Run the timer-driven sweeps that are due; returns when the next one is. Each runs at
        its own next deadline (silence: the earliest device deadline, to the query's time) and
        at least every ``rules_sweep_max_s`` (devices heard again, reloaded rules)."""
        now = await db_now(conn)
        every = timedelta(seconds=self.settings.rules_sweep_max_s)
        out = Outcome()
        sweeps: dict[str, Callable[[], Awaitable[datetime | None]]] = {
            "silence": lambda: silence_sweep(conn, self.ruleset, self.actor, out),
            "objectives": lambda: objective_sweep(
                conn, self.ruleset, self.actor, out, self._objective_runs
            ),
            "escalation": lambda: escalation_sweep(conn, self.ruleset, self.actor, out),
        }
        for name, run_sweep in sweeps.items():
            if now < self._sweep_due.get(name, now):
                continue
            due = await run_sweep()
            self._sweep_due[name] = min(due, now + every) if due is not None else now + every
        metrics.count(out, None)
        return min(self._sweep_due.values())


def run(settings: Settings) -> None:
    ruleset = load_configured_rules(settings)
    asyncio.run(RulesWorker(settings, ruleset).run())
