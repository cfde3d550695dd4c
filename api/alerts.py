"""``/v1/alerts``: list, read, acknowledge, resolve — only what the caller's team may see.

State changes go through ``rules.alerts`` so each writes its audit event and outbox row (the
webhook) in the same transaction as the change, exactly as a rules worker's changes do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from psycopg.rows import DictRow
from pydantic import AwareDatetime

from api import queries
from api.audit import record_access
from api.auth import Caller, require
from api.db import Cursor, transaction
from api.errors import AUTH_RESPONSES, CONFLICT, NOT_FOUND, ApiError, not_found
from api.schemas import (
    MAX_ID,
    AcknowledgeRequest,
    Alert,
    AlertDetail,
    AlertPage,
    AlertState,
    ResolveRequest,
    SensorKind,
    Severity,
    TextQuery,
)
from rules.alerts import acknowledge_alert, resolve_alert

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=AUTH_RESPONSES)

Reader = Annotated[Caller, Depends(require("alerts:read"))]
Writer = Annotated[Caller, Depends(require("alerts:write"))]
AlertId = Annotated[int, Path(ge=1, le=MAX_ID, description="The alert's id")]


async def _detail(cur: Cursor, row: DictRow) -> AlertDetail:
    return AlertDetail.of({**row, "events": await queries.alert_events(cur, row["alert_id"])})


@router.get("", response_model=AlertPage, summary="List alerts the team can see")
async def list_alerts(
    request: Request,
    caller: Reader,
    state: Annotated[list[AlertState] | None, Query(description="Repeat for several")] = None,
    severity: Severity | None = None,
    site: TextQuery = None,
    sensor_kind: SensorKind | None = None,
    rule_id: TextQuery = None,
    resident_id: TextQuery = None,
    since: Annotated[AwareDatetime | None, Query(description="opened_at at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="opened_at before")] = None,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only alerts with a smaller id (paging)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertPage:
    f = queries.AlertFilter(
        states=list(state) if state else None,
        severity=severity,
        site=site,
        sensor_kind=sensor_kind,
        rule_id=rule_id,
        resident_id=resident_id,
        since=since,
        until=until,
        before=before,
    )
    async with transaction(request) as cur:
        rows = await queries.list_alerts(cur, caller.principal.team_id, f, limit)
        await record_access(cur, caller.accessor, "alerts.list", rows, _filters(request))
    return AlertPage(
        alerts=[Alert.of(r) for r in rows],
        next_before=int(rows[-1]["alert_id"]) if len(rows) == limit else None,
    )


def _filters(request: Request) -> dict[str, list[str]]:
    """The query as asked, for the audit: what was being looked for."""
    params = request.query_params
    return {"query": [f"{k}={v}" for k, v in params.multi_items()]}


@router.get(
    "/{alert_id}",
    response_model=AlertDetail,
    responses=NOT_FOUND,
    summary="One alert with its events",
)
async def get_alert(request: Request, caller: Reader, alert_id: AlertId) -> AlertDetail:
    async with transaction(request) as cur:
        row = await queries.visible_alert(cur, caller.principal.team_id, alert_id)
        if row is None:
            raise not_found(f"alert {alert_id}")
        await record_access(cur, caller.accessor, "alerts.get", [row])
        return await _detail(cur, row)


@router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertDetail,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Say someone is dealing with it (stops escalation)",
)
async def acknowledge(
    request: Request,
    caller: Writer,
    alert_id: AlertId,
    body: Annotated[AcknowledgeRequest | None, Body()] = None,
) -> AlertDetail:
    note = body.note if body else None

    async def change(cur: Cursor, row: DictRow) -> bool:
        return await acknowledge_alert(
            cur, alert_id, caller.accessor.actor, note, row["council_id"]
        )

    return await _change(request, caller, alert_id, "acknowledge", change)


@router.post(
    "/{alert_id}/resolve",
    response_model=AlertDetail,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Close the alert with a note saying why",
)
async def resolve(
    request: Request, caller: Writer, alert_id: AlertId, body: ResolveRequest
) -> AlertDetail:
    async def change(cur: Cursor, row: DictRow) -> bool:
        return await resolve_alert(
            cur, alert_id, caller.accessor.actor, note=body.note, council_id=row["council_id"]
        )

    return await _change(request, caller, alert_id, "resolve", change)


async def _change(
    request: Request,
    caller: Caller,
    alert_id: int,
    verb: Literal["acknowledge", "resolve"],
    change: Callable[[Cursor, DictRow], Awaitable[bool]],
) -> AlertDetail:
    """Apply ``change`` to a visible alert; 409 saying by whom and when if the alert was
    already past that state."""
    team = caller.principal.team_id
    async with transaction(request) as cur:
        row = await queries.visible_alert(cur, team, alert_id)
        if row is None:
            raise not_found(f"alert {alert_id}")
        done = await change(cur, row)
        row = await queries.visible_alert(cur, team, alert_id) or row
        outcome = f"{verb}d" if done else f"already {row['state']}"
        # A refusal shows the alert's state too: audited, and so committed, before the 409.
        await record_access(cur, caller.accessor, f"alerts.{verb}", [row], {"outcome": outcome})
        result = await _detail(cur, row)
    if not done:
        raise _conflict(result)
    return result


def _conflict(alert: AlertDetail) -> ApiError:
    if alert.state == "resolved":
        by, at = alert.resolved_by, alert.resolved_at
    else:
        by, at = alert.acknowledged_by, alert.acknowledged_at
    return ApiError(
        409,
        f"already_{alert.state}",
        f"alert {alert.id} is already {alert.state} (by {by} at {_iso(at)})",
    )


def _iso(at: datetime | None) -> str:
    return at.isoformat() if at else "an unknown time"
