"""Ingest's heartbeat: "connected, subscribed, writing, not saturated", every few seconds.

Rules read it before calling devices silent: when the pipeline itself stalls every device looks
silent, and that is one outage, not an alert per device (see ``rules.sweeps.SilenceGate``).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

HEARTBEAT_S = 2.0
# A gap longer than this between heartbeats means ingest was not healthy in between: its
# ``healthy_since`` starts again.
HEARTBEAT_GAP_S = 10.0


async def beat(conn: AsyncConnection[Any], client_id: str) -> None:
    await conn.execute(
        """INSERT INTO ingest_heartbeats (client_id, healthy_since, seen_at)
           VALUES (%(id)s, now(), now())
           ON CONFLICT (client_id) DO UPDATE
           SET healthy_since = CASE
                   WHEN ingest_heartbeats.seen_at < now() - %(gap)s * interval '1 second'
                   THEN now() ELSE ingest_heartbeats.healthy_since END,
               seen_at = now()""",
        {"id": client_id, "gap": HEARTBEAT_GAP_S},
    )
