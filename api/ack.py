"""The acknowledge page: ``/ack/{token}`` from the link in an alert event.

A carer opens it on a phone, reads why the alert was raised and presses Acknowledge. No login:
the signed, expiring token is the credential, and ``ack_link_uses`` makes it single-use. Plain
HTML forms, no JavaScript. The team named in the link must still see the alert (its routes may
have changed since), otherwise the link is treated as invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Form, Request, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from psycopg.rows import DictRow
from psycopg_pool import PoolTimeout

from api import queries
from api.audit import Accessor, record_access
from api.db import Cursor, app_state, transaction
from api.render import alert_view, describe_actor, local_time
from api.schemas import NOTE_MAX
from notify.links import AckLink, LinkProblem, read_token
from rules.alerts import acknowledge_alert

_HERE = Path(__file__).parent
templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
)

# The token is in the URL: never cached, never sent on as a Referer. No scripts, no framing.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}

# What each refusal says. Status: 400 tampered, 404 no such alert for this team (the same
# words: the page must not tell a guesser which), 410 expired or used, 503 database down.
_NOT_VALID = (
    "This link is not valid",
    "The link may be incomplete or changed. Open it again from the original message, making "
    "sure you copy all of it.",
)
_PROBLEMS: dict[str, tuple[int, str, str]] = {
    "invalid": (400, *_NOT_VALID),
    "unknown": (404, *_NOT_VALID),
    "expired": (
        410,
        "This link has expired",
        "Links to acknowledge an alert only work for a limited time. The alert may still need "
        "attention: acknowledge it in your team's usual system or contact your team.",
    ),
    "used": (410, "This link has already been used", ""),
    "unavailable": (
        503,
        "Sorry, the service is unavailable",
        "Please try again in a few minutes. If the alert is urgent, contact your team now.",
    ),
}


def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(
        request,
        template,
        {"note_max": NOTE_MAX, **context},
        status_code=status,
        headers=PAGE_HEADERS,
    )


def _problem(request: Request, kind: str, detail: str | None = None) -> Response:
    status, title, text = _PROBLEMS[kind]
    return _page(request, "problem.html", status, title=title, text=detail or text)


class _PageRoute(APIRoute):
    """A database outage answers with a page a carer can read, not a JSON error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (PoolTimeout, psycopg.OperationalError):
                return _problem(request, "unavailable")

        return guarded


router = APIRouter(route_class=_PageRoute, include_in_schema=False)


async def _team_names(cur: Cursor, council_id: str) -> dict[str, str]:
    await cur.execute("SELECT team_id, name FROM teams WHERE council_id = %s", (council_id,))
    return {r["team_id"]: r["name"] for r in await cur.fetchall()}


async def _used_at(cur: Cursor, link_id: str) -> DictRow | None:
    await cur.execute("SELECT used_at, outcome FROM ack_link_uses WHERE link_id = %s", (link_id,))
    return await cur.fetchone()


async def _alert_page(
    request: Request,
    cur: Cursor,
    alert: DictRow,
    team_id: str,
    status: int = 200,
    **context: Any,
) -> Response:
    """The alert explained; with the form while it is open, else who acknowledged or resolved
    it and when."""
    names = await _team_names(cur, alert["council_id"])
    return _page(
        request,
        "alert.html",
        status,
        alert=alert_view(alert),
        team_name=names.get(team_id, ""),
        acknowledged_by=describe_actor(alert["acknowledged_by"], names),
        acknowledged_at=local_time(alert["acknowledged_at"]),
        resolved_by=describe_actor(alert["resolved_by"], names),
        resolved_at=local_time(alert["resolved_at"]),
        **context,
    )


def _used(request: Request, use: Mapping[str, Any]) -> Response:
    return _problem(
        request,
        "used",
        f"It was used on {local_time(use['used_at'])} and the alert was "
        f"{str(use['outcome']).replace('_', ' ')}. Each link works once.",
    )


def _link(request: Request, token: str) -> AckLink | LinkProblem:
    return read_token(app_state(request).settings, token)


def _who(request: Request, link: AckLink) -> Accessor:
    return Accessor.of(request, link.team_id, f"link:{link.link_id}")


@router.get("/ack/{token}")
async def view(request: Request, token: str) -> Response:
    link = _link(request, token)
    if isinstance(link, LinkProblem):
        return _problem(request, link.reason)
    who = _who(request, link)
    async with transaction(request) as cur:
        alert = await queries.visible_alert(cur, link.team_id, link.alert_id)
        if alert is None:
            return _problem(request, "unknown")
        use = await _used_at(cur, link.link_id)
        outcome = "used" if use else alert["state"]
        await record_access(cur, who, "ack_page.view", [alert], {"outcome": outcome})
        if use is not None:
            return _used(request, use)
        return await _alert_page(request, cur, alert, link.team_id)


@router.post("/ack/{token}")
async def acknowledge(request: Request, token: str, note: Annotated[str, Form()] = "") -> Response:
    link = _link(request, token)
    if isinstance(link, LinkProblem):
        return _problem(request, link.reason)
    who = _who(request, link)
    note = note.strip()
    error = _note_error(note)
    async with transaction(request) as cur:
        alert = await queries.visible_alert(cur, link.team_id, link.alert_id)
        if alert is None:
            return _problem(request, "unknown")
        use = await _used_at(cur, link.link_id)
        if use is not None:
            outcome = "used"
        elif error:
            outcome = "note refused"
        else:
            done = await acknowledge_alert(
                cur, link.alert_id, who.actor, note or None, alert["council_id"]
            )
            if done:
                await cur.execute(
                    "INSERT INTO ack_link_uses (link_id, alert_id, team_id, outcome)"
                    " VALUES (%s, %s, %s, 'acknowledged')",
                    (link.link_id, link.alert_id, link.team_id),
                )
            alert = await queries.visible_alert(cur, link.team_id, link.alert_id) or alert
            outcome = "acknowledged" if done else f"already {alert['state']}"
        await record_access(cur, who, "ack_page.acknowledge", [alert], {"outcome": outcome})
        if use is not None:
            return _used(request, use)
        if error:
            return await _alert_page(request, cur, alert, link.team_id, 400, note=note, error=error)
        if outcome != "acknowledged":
            # Someone else got there first, or it was resolved: the page says who and when.
            return await _alert_page(request, cur, alert, link.team_id, 409)
        return _page(
            request,
            "done.html",
            alert=alert_view(alert),
            acknowledged_at=local_time(alert["acknowledged_at"]),
            note=note,
        )


def _note_error(note: str) -> str | None:
    if len(note) > NOTE_MAX:
        return f"The note must be {NOTE_MAX:,} characters or fewer (it has {len(note):,})."
    if "\x00" in note:
        return "The note contains a character that cannot be saved."
    return None
