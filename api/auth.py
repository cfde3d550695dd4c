"""API keys: ``Authorization: Bearer pw_...`` (or ``X-API-Key: pw_...``), one scope per operation.

401 for a key that is missing or not live (without saying which: a caller probing key ids
learns nothing), 403 naming the scope for a live key that lacks it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.audit import Accessor
from api.db import AppState, app_state
from api.errors import ApiError
from teams.keys import SCOPES, Principal, check_key, parse_key

# Writing last_used_at on every request would make every read a write; a minute is precise
# enough to tell a key in use from one that can be revoked.
TOUCH_EVERY_S = 60.0

# Declared as security schemes so the OpenAPI document (and clients generated from it, and
# schemathesis) know how to send the key. auto_error=False: we answer 401 ourselves.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="pw_<key id>_<secret>",
    description="A team's API key (`placewatch keys create TEAM`)",
)
_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="The same key, for clients that cannot set Authorization",
)


@dataclass(frozen=True)
class Caller:
    principal: Principal
    accessor: Accessor


def _unauthorized(detail: str, invalid: bool) -> ApiError:
    challenge = 'Bearer realm="placewatch"' + (', error="invalid_token"' if invalid else "")
    return ApiError(401, "unauthorized", detail, {"WWW-Authenticate": challenge})


async def _principal(state: AppState, token: str) -> Principal | None:
    parsed = parse_key(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    async with state.pool.connection() as conn:
        cur = await conn.execute(
            """SELECT k.key_id, k.team_id, k.secret_hash, k.scopes, k.expires_at, k.revoked_at,
                      t.council_id
               FROM api_keys k JOIN teams t USING (team_id) WHERE k.key_id = %s""",
            (key_id,),
        )
        return check_key(await cur.fetchone(), secret, datetime.now(UTC))


async def _touch(state: AppState, key_id: str) -> None:
    now = time.monotonic()
    if now - state.key_touches.get(key_id, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
        return
    state.key_touches[key_id] = now
    # The condition keeps N replicas to about one write a minute per key between them.
    async with state.pool.connection() as conn:
        await conn.execute(
            """UPDATE api_keys SET last_used_at = now()
               WHERE key_id = %s
                 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')""",
            (key_id,),
        )


def require(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency that authenticates the caller and checks it holds ``scope``."""
    assert scope in SCOPES, scope

    async def authenticate(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_header)],
    ) -> Caller:
        token = bearer.credentials if bearer else header
        if not token:
            raise _unauthorized(
                "an API key is required: send Authorization: Bearer pw_...", invalid=False
            )
        state = app_state(request)
        principal = await _principal(state, token)
        if principal is None:
            raise _unauthorized("the API key is invalid, revoked or expired", invalid=True)
        if scope not in principal.scopes:
            raise ApiError(
                403,
                "insufficient_scope",
                f"this API key lacks the scope {scope!r}",
                {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        await _touch(state, principal.key_id)
        return Caller(principal, Accessor.of(request, principal.team_id, f"key:{principal.key_id}"))

    return authenticate
