"""Deliveries in the database: lease a batch per endpoint, record each attempt's outcome,
dead-letter what is overdue, and put dead letters back for redelivery.

A delivery is leased (``lease_until``) for one attempt and the lease committed before the HTTP
request, so no transaction stays open while a receiver takes its time. A dispatcher that dies
mid-attempt leaves a lease that runs out; another one then sends the same delivery again,
under the same webhook-id, which is what receivers de-duplicate on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from notify.policy import RetryPolicy


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    team_id: str
    url: str
    secret: str
    max_concurrency: int
    consecutive_failures: int
    circuit_open_until: datetime | None


@dataclass(frozen=True)
class Delivery:
    delivery_id: int
    webhook_id: str
    endpoint_id: str
    alert_id: int
    event: str
    body: str
    attempts: int  # including the one now leased
    give_up_at: datetime
    event_committed_at: datetime


@dataclass(frozen=True)
class Recorded:
    """What recording an attempt left: the delivery's state ("superseded" if another replica
    has taken it over since) and the endpoint's circuit as it now is."""

    state: str
    consecutive_failures: int
    circuit_open_until: datetime | None


@dataclass(frozen=True)
class Attempt:
    started_at: datetime
    latency_s: float
    status: int | None
    error: str | None
    retry_after: timedelta | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def load_endpoints(conn: AsyncConnection[Any]) -> dict[str, Endpoint]:
    cur = await conn.execute(
        """SELECT endpoint_id, team_id, url, secret, max_concurrency, consecutive_failures,
                  circuit_open_until
           FROM webhook_endpoints WHERE enabled"""
    )
    return {row[0]: Endpoint(*row) for row in await cur.fetchall()}


async def claim(
    conn: AsyncConnection[Any], slots: dict[str, tuple[int, int]], lease: timedelta
) -> list[Delivery]:
    """Lease due deliveries: per endpoint at most ``n`` (this process's free slots) and no more
    than ``cap`` in flight across all replicas, for ``slots[endpoint] = (n, cap)``.

    An alert's events go to an endpoint in order: a delivery waits while an earlier event of
    the alert is still pending for the endpoint, or not even fanned out yet (another replica's
    fan-out in progress). A delivery whose alert the team no longer sees (its routes or groups
    changed) is not sent; housekeeping withdraws it.
    """
    wanted = {ep: nc for ep, nc in slots.items() if nc[0] > 0 and nc[1] > 0}
    if not wanted:
        return []
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """UPDATE webhook_deliveries w
               SET lease_until = clock_timestamp() + %(lease)s, attempts = w.attempts + 1
               FROM (
                   SELECT d.delivery_id
                   FROM unnest(%(eps)s::text[], %(ns)s::int[], %(caps)s::int[])
                        AS e(endpoint_id, n, cap)
                   CROSS JOIN LATERAL (
                       SELECT d.delivery_id
                       FROM webhook_deliveries d JOIN alerts a USING (alert_id)
                       WHERE d.endpoint_id = e.endpoint_id AND d.state = 'pending'
                         AND d.next_attempt_at <= clock_timestamp()
                         AND (d.lease_until IS NULL OR d.lease_until < clock_timestamp())
                         AND NOT EXISTS (
                             SELECT 1 FROM webhook_deliveries p
                             WHERE p.alert_id = d.alert_id AND p.endpoint_id = d.endpoint_id
                               AND p.state = 'pending' AND p.outbox_id < d.outbox_id)
                         AND NOT EXISTS (
                             SELECT 1 FROM alert_outbox o
                             WHERE o.alert_id = d.alert_id AND o.id < d.outbox_id)
                         AND placewatch_team_sees_alert(d.team_id, a.council_id, a.site,
                               a.sensor_kind, a.severity, a.rule_id, a.resident_id)
                       ORDER BY d.next_attempt_at, d.delivery_id
                       LIMIT least(e.n, greatest(0, e.cap - (
                           SELECT count(*) FROM webhook_deliveries l
                           WHERE l.endpoint_id = e.endpoint_id AND l.state = 'pending'
                             AND l.lease_until > clock_timestamp())))
                       FOR UPDATE OF d SKIP LOCKED) d
               ) c
               WHERE w.delivery_id = c.delivery_id
               RETURNING w.delivery_id, w.webhook_id, w.endpoint_id, w.alert_id, w.event,
                         w.body, w.attempts, w.give_up_at, w.event_committed_at""",
            {
                "lease": lease,
                "eps": list(wanted),
                "ns": [n for n, _ in wanted.values()],
                "caps": [cap for _, cap in wanted.values()],
            },
        )
        return [Delivery(**row) for row in await cur.fetchall()]


WITHDRAWN = "withdrawn: the team no longer sees this alert (routes changed)"


async def withdraw_unrouted(conn: AsyncConnection[Any]) -> int:
    """Pending deliveries whose alert the team no longer sees (a resident moved to another
    team's group, a route narrowed) are not sent: care data goes only where routes say now."""
    cur = await conn.execute(
        f"""UPDATE webhook_deliveries d
            SET state = 'dead', lease_until = NULL, last_error = '{WITHDRAWN}'
            FROM alerts a
            WHERE a.alert_id = d.alert_id AND d.state = 'pending'
              AND (d.lease_until IS NULL OR d.lease_until < clock_timestamp())
              AND NOT placewatch_team_sees_alert(d.team_id, a.council_id, a.site,
                                                 a.sensor_kind, a.severity, a.rule_id,
                                                 a.resident_id)"""
    )
    return cur.rowcount


async def record(
    conn: AsyncConnection[Any],
    delivery: Delivery,
    attempt: Attempt,
    policy: RetryPolicy,
    worker: str,
) -> Recorded:
    """Store one attempt and its consequence (for the delivery and for the endpoint's circuit)
    in one statement, so one round trip."""
    params: dict[str, Any] = {
        "id": delivery.delivery_id,
        "attempt": delivery.attempts,
        "started": attempt.started_at,
        "ms": attempt.latency_s * 1000,
        "status": attempt.status,
        "error": attempt.error,
        "worker": worker,
        "endpoint": delivery.endpoint_id,
    }
    log_attempt = """INSERT INTO webhook_attempts
                         (delivery_id, attempt, started_at, latency_ms, status, error, worker)
                     VALUES (%(id)s, %(attempt)s, %(started)s, %(ms)s, %(status)s, %(error)s,
                             %(worker)s)"""
    if attempt.ok:
        sql = f"""WITH a AS ({log_attempt}),
                  d AS (UPDATE webhook_deliveries
                        SET state = 'delivered', delivered_at = clock_timestamp(),
                            lease_until = NULL, last_status = %(status)s, last_error = NULL
                        WHERE delivery_id = %(id)s AND state = 'pending'
                        RETURNING state),
                  e AS (UPDATE webhook_endpoints
                        SET consecutive_failures = 0, circuit_open_until = NULL
                        WHERE endpoint_id = %(endpoint)s
                          AND (consecutive_failures <> 0 OR circuit_open_until IS NOT NULL))
                  SELECT coalesce((SELECT state FROM d), 'superseded'), 0, NULL::timestamptz"""
    else:
        delay = policy.backoff(delivery.attempts)
        if attempt.retry_after is not None:
            delay = max(delay, min(attempt.retry_after, timedelta(seconds=policy.max_s)))
        params |= {
            "delay": delay,
            "failures": policy.breaker_failures,
            "open_for": timedelta(seconds=policy.breaker_open_s),
        }
        # The attempts guard: a later attempt (our lease ran out, another replica took the
        # delivery) owns the row and is not pushed back by this late record.
        sql = f"""WITH a AS ({log_attempt}),
                  d AS (UPDATE webhook_deliveries
                        SET state = CASE WHEN clock_timestamp() + %(delay)s > give_up_at
                                         THEN 'dead' ELSE 'pending' END,
                            next_attempt_at = clock_timestamp() + %(delay)s, lease_until = NULL,
                            last_status = %(status)s, last_error = %(error)s
                        WHERE delivery_id = %(id)s AND state = 'pending'
                          AND attempts = %(attempt)s
                        RETURNING state),
                  e AS (UPDATE webhook_endpoints
                        SET consecutive_failures = consecutive_failures + 1,
                            circuit_open_until = CASE
                                WHEN consecutive_failures + 1 >= %(failures)s
                                THEN clock_timestamp() + %(open_for)s
                                ELSE circuit_open_until END
                        WHERE endpoint_id = %(endpoint)s
                        RETURNING consecutive_failures, circuit_open_until)
                  SELECT coalesce((SELECT state FROM d), 'superseded'),
                         coalesce((SELECT consecutive_failures FROM e), 0),
                         (SELECT circuit_open_until FROM e)"""
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    assert row is not None  # the SELECT always yields one row
    return Recorded(str(row[0]), int(row[1]), row[2])


async def dead_letter_overdue(conn: AsyncConnection[Any]) -> list[str]:
    """Deliveries past their give-up time that no attempt will settle (their endpoint was
    disabled, or its circuit stayed open): dead-lettered, so that nothing waits for ever.
    Returns their endpoints, one entry per delivery."""
    cur = await conn.execute(
        """UPDATE webhook_deliveries SET state = 'dead',
               last_error = coalesce(last_error, 'not attempted before the give-up time')
           WHERE state = 'pending' AND give_up_at < clock_timestamp()
             AND (lease_until IS NULL OR lease_until < clock_timestamp())
           RETURNING endpoint_id"""
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def pending_count(conn: AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def redeliver(
    conn: AsyncConnection[Any],
    give_up_after: timedelta,
    *,
    endpoint_id: str | None = None,
    delivery_ids: list[int] | None = None,
    since: datetime | None = None,
) -> int:
    """Put dead deliveries back (same webhook-id, same body): due now, attempts counted on.
    Only those the team still sees; the endpoints concerned get a fresh circuit."""
    cur = await conn.execute(
        """WITH back AS (
               UPDATE webhook_deliveries d
               SET state = 'pending', next_attempt_at = clock_timestamp(), lease_until = NULL,
                   give_up_at = clock_timestamp() + %(give_up)s
               FROM alerts a
               WHERE a.alert_id = d.alert_id AND d.state = 'dead'
                 AND (%(ep)s::text IS NULL OR d.endpoint_id = %(ep)s)
                 AND (%(ids)s::bigint[] IS NULL OR d.delivery_id = ANY(%(ids)s))
                 AND (%(since)s::timestamptz IS NULL OR d.created_at >= %(since)s)
                 AND placewatch_team_sees_alert(d.team_id, a.council_id, a.site,
                       a.sensor_kind, a.severity, a.rule_id, a.resident_id)
               RETURNING d.endpoint_id),
           reset AS (
               UPDATE webhook_endpoints SET consecutive_failures = 0, circuit_open_until = NULL
               WHERE endpoint_id IN (SELECT endpoint_id FROM back))
           SELECT count(*) FROM back""",
        {"give_up": give_up_after, "ep": endpoint_id, "ids": delivery_ids, "since": since},
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0
