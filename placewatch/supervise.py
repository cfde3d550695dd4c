"""Keep a database loop of a worker running: on a fresh connection, reconnecting with jittered
backoff after any error. A worker that exits on a database error would stop its whole stage;
what its failed transaction held is rolled back and retried, so nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from prometheus_client import Counter
from psycopg import AsyncConnection

from ingest.store import is_transient

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
