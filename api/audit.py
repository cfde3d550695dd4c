"""The access audit: who read or changed care data (anything about a resident), and when.

Written in the transaction that reads or changes the data, so a response carrying care data
is never sent without its audit row: if the insert fails, the request fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from starlette.requests import Request

from api.db import Cursor


@dataclass(frozen=True)
class Accessor:
    """Who is acting: a team, through one API key or one acknowledge link (or an operator at
    the command line: no team)."""

    team_id: str | None
    principal: str  # "key:<key id>", "link:<link id>" or "cli:<user>"
    remote_addr: str | None

    @classmethod
    def of(cls, request: Request, team_id: str, principal: str) -> Accessor:
        return cls(team_id, principal, request.client.host if request.client else None)

    @property
    def actor(self) -> str:
        """As written to alert_events and acknowledged_by / resolved_by."""
        return f"team:{self.team_id}/{self.principal}"


async def record_access(
    cur: Cursor,
    who: Accessor,
    action: str,
    rows: Iterable[Mapping[str, Any]],
    detail: Mapping[str, Any] | None = None,
) -> bool:
    """Audit ``action`` over ``rows`` (alerts or devices as read from the database) if any is
    about a resident; street-only answers are not care data and are not audited. Returns
    whether a row was written."""
    care = [r for r in rows if r.get("resident_id") is not None]
    if not care:
        return False
    residents = sorted({str(r["resident_id"]) for r in care})
    alert_ids = sorted({int(r["alert_id"]) for r in care if r.get("alert_id") is not None})
    await cur.execute(
        """INSERT INTO access_audit (team_id, principal, action, resident_ids, alert_ids,
                                     remote_addr, detail)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (
            who.team_id,
            who.principal,
            action,
            residents,
            alert_ids,
            who.remote_addr,
            Jsonb(dict(detail or {})),
        ),
    )
    return True
