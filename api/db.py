"""The connection pool the app holds, and the one way request handlers reach the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from placewatch.settings import Settings

Cursor = AsyncCursor[DictRow]
Pool = AsyncConnectionPool[AsyncConnection[DictRow]]


@dataclass
class AppState:
    settings: Settings
    pool: Pool
    # key id -> monotonic time this process last wrote api_keys.last_used_at.
    key_touches: dict[str, float] = field(default_factory=dict)


def make_pool(settings: Settings) -> Pool:
    return AsyncConnectionPool(
        settings.database_url,
        connection_class=AsyncConnection[DictRow],
        # UTC on the wire; pages convert to Europe/London for people.
        kwargs={"row_factory": dict_row, "options": "-c TimeZone=UTC"},
        min_size=1,
        max_size=10,
        # A request waits this long for a connection, then answers 503 rather than hang.
        timeout=5.0,
        open=False,
        name="placewatch-api",
    )


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.placewatch
    return state


@asynccontextmanager
async def transaction(request: Request) -> AsyncIterator[Cursor]:
    """A cursor in a transaction that commits when the block ends without an exception.

    Handlers open it themselves (not as a dependency) so the commit, and with it the access
    audit of what is returned, happens before the response is sent.
    """
    async with (
        app_state(request).pool.connection() as conn,
        conn.transaction(),
        conn.cursor() as cur,
    ):
        yield cur
