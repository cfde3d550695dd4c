"""Keep a database loop of a worker running: on a fresh connection, reconnecting with jittered
backoff after any error. A worker that exits on a database error would stop its whole stage;
what its failed transaction held is rolled back and retried, so nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
from prometheus_client import Counter
from psycopg import AsyncConnection

from ingest.store import is_transient
from placewatch.health import HealthServer

log = logging.getLogger(__name__)

_IDLE_IN_TX_MS = 60_000

Body = Callable[[AsyncConnection[Any]], Awaitable[None]]


async def supervise(
    name: str,
    connect: Callable[[], Awaitable[AsyncConnection[Any]]],
    body: Body,
    stopping: asyncio.Event,
    ok: dict[str, bool],
    *,
    on_error: Callable[[str, bool], None],
    max_backoff_s: float,
) -> None:
    """Run ``body`` until ``stopping``; ``ok[name]`` tells readiness. ``on_error(name,
    transient)`` counts each failure (transient: a database or network error)."""
    backoff = 0.5
    while not stopping.is_set():
        try:
            async with await connect() as conn:
                ok[name] = True
                backoff = 0.5
                await body(conn)
        except Exception as exc:
            ok[name] = False
            transient = isinstance(exc, OSError) or (
                isinstance(exc, psycopg.Error) and is_transient(exc)
            )
            on_error(name, transient)
            if transient:
                log.warning("%s: database error (%s); retrying in %.1fs", name, exc, backoff)
            else:
                log.exception("%s: unexpected error; retrying in %.1fs", name, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), backoff)
            backoff = min(backoff * 2, max_backoff_s) * random.uniform(0.8, 1.2)


async def worker_connection(url: str, application_name: str) -> AsyncConnection[Any]:
    """A worker loop's connection: autocommit (transactions are explicit), TCP keepalives, and
    an idle-in-transaction timeout so that a worker that hangs (paused, partitioned) does not
    hold its locks for ever."""
    return await AsyncConnection.connect(
        url,
        autocommit=True,
        application_name=application_name,
        options=f"-c idle_in_transaction_session_timeout={_IDLE_IN_TX_MS}",
        keepalives=1,
        keepalives_idle=30,
    )


def counting(db_errors: Counter, errors: Counter, label: str = "{}") -> Callable[[str, bool], None]:
    """An ``on_error`` for :func:`supervise` that counts database errors, and other errors by
    loop (``errors`` has one label, ``label`` formats the loop's name into it)."""

    def count(loop: str, transient: bool) -> None:
        if transient:
            db_errors.inc()
        else:
            errors.labels(label.format(loop)).inc()

    return count


class SupervisedService:
    """A worker service: named loops, each supervised on its own connection; ready while every
    loop holds a connection; SIGTERM or SIGINT stops it; /metrics, /healthz and /readyz."""

    def __init__(
        self,
        database_url: str,
        application_name: str,
        wakes: Sequence[asyncio.Event],
        on_error: Callable[[str, bool], None],
        max_backoff_s: float,
    ) -> None:
        self.stopping = asyncio.Event()
        self._database_url = database_url
        self._application_name = application_name
        self._wakes = list(wakes)  # set on a stop, so that no loop sleeps through it
        self._on_error = on_error
        self._max_backoff_s = max_backoff_s
        self._ok: dict[str, bool] = {}

    async def connect(self) -> AsyncConnection[Any]:
        return await worker_connection(self._database_url, self._application_name)

    def request_stop(self) -> None:
        self.stopping.set()
        for wake in self._wakes:
            wake.set()

    def readiness(self) -> tuple[bool, str]:
        down = [name for name, ok in self._ok.items() if not ok]
        return (True, "ok") if not down else (False, "database not reachable: " + ", ".join(down))

    async def serve(
        self,
        health: HealthServer,
        loops: dict[str, Body],
        signals: dict[signal.Signals, Callable[[], None]] | None = None,
    ) -> None:
        """Run ``loops`` until a stop, ``health`` serving beside them."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        for sig, handler in (signals or {}).items():
            loop.add_signal_handler(sig, handler)
        self._ok = dict.fromkeys(loops, False)
        health.start()
        try:
            await asyncio.gather(
                *(
                    supervise(
                        name,
                        self.connect,
                        body,
                        self.stopping,
                        self._ok,
                        on_error=self._on_error,
                        max_backoff_s=self._max_backoff_s,
                    )
                    for name, body in loops.items()
                )
            )
        finally:
            health.stop()
