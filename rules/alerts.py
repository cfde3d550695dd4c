"""Alert lifecycle in the database: open, resolve, acknowledge, escalate.

Each change updates ``alerts``, appends to ``alert_events`` (the audit trail) and writes an
``alert_outbox`` row for delivery, all in the caller's transaction, so an alert change and its
notification commit together or not at all. The unique index ``alerts_one_open`` makes a second
open alert for the same rule and subject impossible, whatever two workers race to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncCursor
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from rules.model import DeviceView, Rule, Severity, Transition
from rules.units import utc

PAYLOAD_SCHEMA = "placewatch.alert-event/1"
SEVERITY_ORDER = ("info", "warning", "critical")
Event = Literal["opened", "acknowledged", "escalated", "renotified", "resolved"]
Cursor = AsyncCursor[DictRow]


@dataclass(frozen=True)
class Subject:
    council_id: str
    subject_type: str
    subject_id: str
    sensor_kind: str | None = None
    site: str | None = None
    resident_id: str | None = None

    @classmethod
    def of(cls, device: DeviceView, subject_type: str, subject_id: str) -> Subject:
        """A subject seen through one of its devices (for routing: kind, site, resident)."""
        return cls(
            device.council_id,
            subject_type,
            subject_id,
            sensor_kind=device.kind.value,
            site=device.site,
            resident_id=device.resident_id,
        )


def _ts(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def event_payload(alert: DictRow, event: Event, actor: str) -> dict[str, Any]:
    """The alert event as delivered (schema versioned; see docs/rules.md)."""
    return {
        "schema": PAYLOAD_SCHEMA,
        "event": event,
        "actor": actor,
        "alert": {
            "id": alert["alert_id"],
            "council_id": alert["council_id"],
            "rule_id": alert["rule_id"],
            "rule_kind": alert["rule_kind"],
            "subject": {"type": alert["subject_type"], "id": alert["subject_id"]},
            "sensor_kind": alert["sensor_kind"],
            "site": alert["site"],
            "resident_id": alert["resident_id"],
            "severity": alert["severity"],
            "state": alert["state"],
            "summary": alert["summary"],
            "observed": alert["observed"],
            "opened_at": _ts(alert["opened_at"]),
            "acknowledged_at": _ts(alert["acknowledged_at"]),
            "acknowledged_by": alert["acknowledged_by"],
            "resolved_at": _ts(alert["resolved_at"]),
            "resolution": alert["resolution"],
            "resolution_note": alert["resolution_note"],
            "escalations": alert["escalations"],
        },
    }


async def record(
    cur: Cursor, alert: DictRow, event: Event, actor: str, detail: dict[str, Any]
) -> None:
    """Audit row and outbox row for one change of ``alert`` (the row after the change)."""
    await cur.execute(
        "INSERT INTO alert_events (alert_id, council_id, event, actor, detail)"
        " VALUES (%s, %s, %s, %s, %s)",
        (alert["alert_id"], alert["council_id"], event, actor, Jsonb(detail)),
    )
    await cur.execute(
        "INSERT INTO alert_outbox (council_id, alert_id, event, payload) VALUES (%s, %s, %s, %s)",
        (alert["council_id"], alert["alert_id"], event, Jsonb(event_payload(alert, event, actor))),
    )
    await cur.execute("SELECT pg_notify('placewatch_alert_outbox', '')")


async def open_alert(
    cur: Cursor,
    rule: Rule,
    subject: Subject,
    transition: Transition,
    actor: str,
    trigger_committed_at: datetime | None = None,
) -> tuple[int, bool]:
    """Open an alert; returns (alert id, whether this call opened it). If one is already open
    for the rule and subject, that one is returned and nothing is written."""
    # ON CONFLICT DO NOTHING locks nothing: the open alert it met may be resolved by a person
    # before we read it. Then the insert is simply tried again.
    for _ in range(5):
        await cur.execute(
            """INSERT INTO alerts (council_id, rule_id, rule_kind, subject_type, subject_id,
                                   sensor_kind, site, resident_id, severity, opened_at, summary,
                                   observed, trigger_committed_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (council_id, rule_id, subject_type, subject_id)
                   WHERE state <> 'resolved' DO NOTHING
               RETURNING *""",
            (
                subject.council_id,
                rule.id,
                getattr(rule, "kind", type(rule).__name__),
                subject.subject_type,
                subject.subject_id,
                subject.sensor_kind,
                subject.site,
                subject.resident_id,
                rule.severity,
                utc(transition.at),
                transition.summary,
                Jsonb(transition.observed),
                trigger_committed_at,
            ),
        )
        row = await cur.fetchone()
        if row is not None:
            break
        await cur.execute(
            """SELECT alert_id FROM alerts
               WHERE council_id = %s AND rule_id = %s AND subject_type = %s
                 AND subject_id = %s AND state <> 'resolved'""",
            (subject.council_id, rule.id, subject.subject_type, subject.subject_id),
        )
        existing = await cur.fetchone()
        if existing is not None:
            return int(existing["alert_id"]), False
    else:
        raise RuntimeError(f"could not open or find the open alert of {rule.id} {subject}")
    await record(cur, row, "opened", actor, {"summary": transition.summary})
    return int(row["alert_id"]), True


async def resolve_alert(
    cur: Cursor,
    alert_id: int,
    actor: str,
    *,
    transition: Transition | None = None,
    note: str | None = None,
    council_id: str | None = None,
) -> bool:
    """Resolve an open or acknowledged alert, by a rule (``transition``: the condition
    cleared) or by a person (``note``). False if it was already resolved or not found."""
    at = utc(transition.at) if transition else None
    resolution = (
        {"summary": transition.summary, "observed": transition.observed} if transition else None
    )
    await cur.execute(
        """UPDATE alerts
           SET state = 'resolved', resolved_at = coalesce(%s, clock_timestamp()),
               resolved_by = %s, resolution = %s, resolution_note = %s,
               updated_at = clock_timestamp()
           WHERE alert_id = %s AND state <> 'resolved'
             AND (%s::text IS NULL OR council_id = %s)
           RETURNING *""",
        (
            at,
            actor,
            Jsonb(resolution) if resolution else None,
            note,
            alert_id,
            council_id,
            council_id,
        ),
    )
    row = await cur.fetchone()
    if row is None:
        return False
    detail = {"summary": transition.summary} if transition else {"note": note}
    await record(cur, row, "resolved", actor, detail)
    return True


async def acknowledge_alert(
    cur: Cursor, alert_id: int, actor: str, note: str | None = None, council_id: str | None = None
) -> bool:
    await cur.execute(
        """UPDATE alerts
           SET state = 'acknowledged', acknowledged_at = clock_timestamp(),
               acknowledged_by = %s, updated_at = clock_timestamp()
           WHERE alert_id = %s AND state = 'open' AND (%s::text IS NULL OR council_id = %s)
           RETURNING *""",
        (actor, alert_id, council_id, council_id),
    )
    row = await cur.fetchone()
    if row is None:
        return False
    await record(cur, row, "acknowledged", actor, {"note": note})
    return True


async def escalate_alert(
    cur: Cursor, alert_id: int, actor: str, severity: Severity | None, first: bool
) -> bool:
    """Not acknowledged in time: the first time escalate (severity raised to ``severity`` if
    that is higher, never lowered), afterwards re-notify."""
    await cur.execute(
        """UPDATE alerts
           SET escalations = escalations + 1, last_notified_at = clock_timestamp(),
               severity = CASE
                   WHEN array_position(%(order)s, %(to)s::text)
                        > array_position(%(order)s, severity) THEN %(to)s::text
                   ELSE severity END,
               updated_at = clock_timestamp()
           WHERE alert_id = %(id)s AND state = 'open'
           RETURNING *""",
        {"order": list(SEVERITY_ORDER), "to": severity if first else None, "id": alert_id},
    )
    row = await cur.fetchone()
    if row is None:
        return False
    event: Event = "escalated" if first else "renotified"
    await record(cur, row, event, actor, {"escalations": row["escalations"]})
    return True
