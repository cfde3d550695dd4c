"""From the alert outbox to deliveries: one row per alert event and endpoint whose team's
routes match the alert. Safe with N dispatchers: outbox rows are taken ``FOR UPDATE SKIP
LOCKED`` and deleted in the transaction that writes their deliveries, so each event is fanned
out exactly once and nothing is lost if a dispatcher dies half-way (its transaction rolls back).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from notify.links import AckLink, ack_url
from placewatch.settings import Settings

DELIVERIES_CHANNEL = "placewatch_webhook_deliveries"
# Events whose alert is still open carry a link to acknowledge it.
_ACKNOWLEDGEABLE = {"opened", "escalated", "renotified"}


@dataclass(frozen=True)
class FanOut:
    events: int
    deliveries: int
    unrouted: int


def delivery_body(settings: Settings, row: dict[str, Any], team_id: str, webhook_id: str) -> str:
    """The exact JSON sent (and signed) on every attempt of one delivery."""
    payload: dict[str, Any] = row["payload"]
    alert_id = int(row["alert_id"])
    base = settings.public_url.rstrip("/")
    acknowledge = None
    if row["event"] in _ACKNOWLEDGEABLE and payload["alert"]["state"] == "open":
        acknowledge = ack_url(settings, AckLink(alert_id, team_id, webhook_id))
    body = {
        "schema": payload["schema"],
        "type": f"alert.{row['event']}",
        "timestamp": row["created_at"].isoformat(),
        "sequence": row["id"],
        **{k: v for k, v in payload.items() if k != "schema"},
        "links": {"alert": f"{base}/v1/alerts/{alert_id}", "acknowledge": acknowledge},
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


async def fan_out(conn: AsyncConnection[Any], settings: Settings) -> FanOut:
    """Fan out up to ``notify_batch`` outbox events in one transaction."""
    # Bounded from fan-out, not from the event: a dispatcher that was down does not dead-letter
    # what it has never tried.
    give_up_s = settings.notify_give_up_after_s
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """WITH batch AS (
                   SELECT id, council_id, alert_id, event, payload, created_at
                   FROM alert_outbox ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
               SELECT b.*, r.endpoint_id, r.team_id
               FROM batch b
               LEFT JOIN LATERAL (
                   SELECT e.endpoint_id, e.team_id
                   FROM webhook_endpoints e JOIN teams t USING (team_id)
                   WHERE e.enabled AND t.council_id = b.council_id
                     AND placewatch_team_sees_alert(
                         e.team_id, b.council_id, b.payload #>> '{alert,site}',
                         b.payload #>> '{alert,sensor_kind}', b.payload #>> '{alert,severity}',
                         b.payload #>> '{alert,rule_id}', b.payload #>> '{alert,resident_id}')
               ) r ON true
               ORDER BY b.id, r.endpoint_id""",
            (settings.notify_batch,),
        )
        rows = await cur.fetchall()
        if not rows:
            return FanOut(0, 0, 0)
        deliveries = []
        for row in rows:
            if row["endpoint_id"] is None:
                continue
            webhook_id = f"msg_{uuid.uuid4().hex}"
            created: datetime = row["created_at"]
            deliveries.append(
                (
                    webhook_id,
                    row["endpoint_id"],
                    row["team_id"],
                    row["id"],
                    row["alert_id"],
                    row["council_id"],
                    row["event"],
                    delivery_body(settings, row, row["team_id"], webhook_id),
                    created,
                    give_up_s,
                )
            )
        if deliveries:
            await cur.executemany(
                """INSERT INTO webhook_deliveries
                       (webhook_id, endpoint_id, team_id, outbox_id, alert_id, council_id, event,
                        body, event_committed_at, give_up_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,
                           clock_timestamp() + make_interval(secs => %s))
                   ON CONFLICT (outbox_id, endpoint_id) DO NOTHING""",
                deliveries,
            )
            await cur.execute(f"SELECT pg_notify('{DELIVERIES_CHANNEL}', '')")
        ids = sorted({row["id"] for row in rows})
        await cur.execute("DELETE FROM alert_outbox WHERE id = ANY(%s)", (ids,))
        unrouted = len({row["id"] for row in rows if row["endpoint_id"] is None})
        return FanOut(len(ids), len(deliveries), unrouted)
