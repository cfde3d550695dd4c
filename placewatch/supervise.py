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
from psycopg import AsyncConnection

from ingest.store import is_transient

log = logging.getLogger(__name__)

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
