"""What a team may read, in SQL. Every query goes through ``placewatch_team_sees_alert`` or
``placewatch_team_sees_device`` (migration 0003), the definition the dispatcher routes by, so
what a team is sent and what it can read never diverge. Joining ``teams`` on the row's council
keeps each team inside its own council.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import DictRow

from api.db import Cursor
from rules.kinds.silence import SILENT_AFTER_INTERVALS

_VISIBLE_ALERTS = """
    SELECT a.* FROM alerts a JOIN teams t ON t.council_id = a.council_id
    WHERE t.team_id = %(team)s
      AND placewatch_team_sees_alert(t.team_id, a.council_id, a.site, a.sensor_kind,
                                     a.severity, a.rule_id, a.resident_id)
"""


@dataclass(frozen=True)
class AlertFilter:
    states: list[str] | None = None
    severity: str | None = None
    site: str | None = None
    sensor_kind: str | None = None
    rule_id: str | None = None
    resident_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None


async def list_alerts(cur: Cursor, team: str, f: AlertFilter, limit: int) -> list[DictRow]:
    """Newest first by id: keyset pagination on ``before`` stays correct while alerts open."""
    await cur.execute(
        _VISIBLE_ALERTS
        + """
          AND (%(states)s::text[] IS NULL OR a.state = ANY (%(states)s::text[]))
          AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)
          AND (%(site)s::text IS NULL OR a.site = %(site)s)
          AND (%(kind)s::text IS NULL OR a.sensor_kind = %(kind)s)
          AND (%(rule)s::text IS NULL OR a.rule_id = %(rule)s)
          AND (%(resident)s::text IS NULL OR a.resident_id = %(resident)s)
          AND (%(since)s::timestamptz IS NULL OR a.opened_at >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR a.opened_at < %(until)s)
          AND (%(before)s::bigint IS NULL OR a.alert_id < %(before)s)
        ORDER BY a.alert_id DESC
        LIMIT %(limit)s""",
        {
            "team": team,
            "states": f.states,
            "severity": f.severity,
            "site": f.site,
            "kind": f.sensor_kind,
            "rule": f.rule_id,
            "resident": f.resident_id,
            "since": f.since,
            "until": f.until,
            "before": f.before,
            "limit": limit,
        },
    )
    return await cur.fetchall()


async def visible_alert(cur: Cursor, team: str, alert_id: int) -> DictRow | None:
    await cur.execute(_VISIBLE_ALERTS + " AND a.alert_id = %(id)s", {"team": team, "id": alert_id})
    return await cur.fetchone()


async def alert_events(cur: Cursor, alert_id: int) -> list[DictRow]:
    await cur.execute(
        "SELECT id, event, at, actor, detail FROM alert_events WHERE alert_id = %s ORDER BY id",
        (alert_id,),
    )
    return await cur.fetchall()


@dataclass(frozen=True)
class DeviceFilter:
    kind: str | None = None
    site: str | None = None
    ward: str | None = None
    status: str | None = None
    device_id: str | None = None


async def list_devices(
    cur: Cursor, team: str, f: DeviceFilter, limit: int, offset: int = 0
) -> list[DictRow]:
    await cur.execute(
        """
        SELECT d.council_id, d.device_id, d.kind, d.model, d.site, d.ward, d.latitude,
               d.longitude, d.resident_id, d.expected_interval_s, d.tags, d.first_seen,
               d.last_seen, d.last_reading_at, s.status,
               (SELECT count(*) FROM alerts a
                WHERE a.council_id = d.council_id AND a.subject_type = 'device'
                  AND a.subject_id = d.device_id AND a.state <> 'resolved'
                  AND placewatch_team_sees_alert(t.team_id, a.council_id, a.site,
                                                 a.sensor_kind, a.severity, a.rule_id,
                                                 a.resident_id)) AS open_alerts
        FROM devices d
        JOIN teams t ON t.council_id = d.council_id
        CROSS JOIN LATERAL (
            SELECT CASE
                WHEN d.last_seen IS NULL THEN 'silent'
                WHEN d.last_seen < now() - %(factor)s * d.expected_interval_s
                                           * interval '1 second' THEN 'silent'
                ELSE 'ok' END AS status
        ) s
        WHERE t.team_id = %(team)s
          AND placewatch_team_sees_device(t.team_id, d.council_id, d.site, d.kind,
                                          d.resident_id)
          AND (%(kind)s::text IS NULL OR d.kind = %(kind)s)
          AND (%(site)s::text IS NULL OR d.site = %(site)s)
          AND (%(ward)s::text IS NULL OR d.ward = %(ward)s)
          AND (%(status)s::text IS NULL OR s.status = %(status)s)
          AND (%(device)s::text IS NULL OR d.device_id = %(device)s)
        ORDER BY d.device_id
        LIMIT %(limit)s OFFSET %(offset)s""",
        {
            "factor": SILENT_AFTER_INTERVALS,
            "team": team,
            "kind": f.kind,
            "site": f.site,
            "ward": f.ward,
            "status": f.status,
            "device": f.device_id,
            "limit": limit,
            "offset": offset,
        },
    )
    return await cur.fetchall()


async def visible_device(cur: Cursor, team: str, device_id: str) -> DictRow | None:
    rows = await list_devices(cur, team, DeviceFilter(device_id=device_id), limit=1)
    return rows[0] if rows else None
