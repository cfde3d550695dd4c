"""Alerts for tests, written the way the rules engine writes one: the row, its 'opened' event
and its outbox row (``rules.alerts.record``), so delivery and the API see the real thing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from rules.alerts import record


def open_test_alert(
    database_url: str,
    council: str,
    rule_id: str,
    subject: tuple[str, str],
    *,
    kind: str = "bin_fill",
    site: str | None = "high-st",
    resident: str | None = None,
    severity: str = "warning",
    summary: str = "fill 91 % above 80 %",
    observed: dict[str, Any] | None = None,
    opened_at: datetime | None = None,
) -> int:
    async def go() -> int:
        async with (
            await psycopg.AsyncConnection.connect(database_url) as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(
                """INSERT INTO alerts (council_id, rule_id, rule_kind, subject_type, subject_id,
                                       sensor_kind, site, resident_id, severity, opened_at,
                                       summary, observed)
                   VALUES (%s, %s, 'threshold', %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   RETURNING *""",
                (
                    council,
                    rule_id,
                    *subject,
                    kind,
                    site,
                    resident,
                    severity,
                    opened_at or datetime.now(UTC),
                    summary,
                    Jsonb(observed or {"value": 91, "threshold": 80}),
                ),
            )
            row = await cur.fetchone()
            assert row is not None
            await record(cur, row, "opened", "rules:test", {})
            return int(row["alert_id"])

    return asyncio.run(go())
