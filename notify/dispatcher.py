"""``placewatch notify``: the webhook dispatcher. Safe to run as N replicas.

Two loops on their own connections. Fan-out turns alert outbox rows into deliveries (one per
matching endpoint). Delivery leases due deliveries, at most each endpoint's free slots, and
sends each in its own task; results are recorded through a small pool. An endpoint's slots are
its concurrency, one probe while its circuit is half-open, none while open: a hanging or failing
endpoint only ever holds its own slots, and every other endpoint's deliveries go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from notify import metrics
from notify.fanout import DELIVERIES_CHANNEL, fan_out
from notify.links import LinkSecretMissing
from notify.policy import RetryPolicy
from notify.sender import REFUSED, client_for, send
from notify.store import (
    Attempt,
    Delivery,
    Endpoint,
    Recorded,
    claim,
    dead_letter_overdue,
    load_endpoints,
    pending_count,
    record,
    withdraw_unrouted,
)
from notify.targets import TargetPolicy
from placewatch.health import HealthServer
from placewatch.settings import Settings
from placewatch.supervise import SupervisedService, counting

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "placewatch_alert_outbox"
_HOUSEKEEPING_EVERY = timedelta(seconds=5)
_ENDPOINTS_EVERY = timedelta(seconds=1)


def policy_of(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base_s=settings.notify_backoff_base_s,
        max_s=settings.notify_backoff_max_s,
        breaker_failures=settings.notify_breaker_failures,
        breaker_open_s=settings.notify_breaker_open_s,
    )


def _outcome(attempt: Attempt) -> str:
    if attempt.ok:
        return "success"
    if attempt.status is not None:
        return "http_error"
    if attempt.error and attempt.error.startswith(REFUSED):
        return "refused"
    return "timeout" if attempt.error and attempt.error.startswith("timed out") else "error"


class Dispatcher(SupervisedService):
    def __init__(self, settings: Settings) -> None:
        if settings.link_secret is None:
            raise LinkSecretMissing()
        self._outbox_wake = asyncio.Event()
        self._delivery_wake = asyncio.Event()
        super().__init__(
            settings.database_url,
            "placewatch-notify",
            wakes=(self._outbox_wake, self._delivery_wake),
            on_error=counting(metrics.DB_ERRORS, metrics.ERRORS),
            max_backoff_s=settings.ingest_retry_max_s,
        )
        self.settings = settings
        self.policy = policy_of(settings)
        self.targets = TargetPolicy.from_settings(settings)
        self.worker = f"notify:{socket.gethostname()}:{os.getpid()}"
        self._in_flight: defaultdict[str, int] = defaultdict(int)
        self._clients: dict[str, tuple[tuple[str, int], httpx.AsyncClient]] = {}
        self._retired: list[httpx.AsyncClient] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._endpoints: dict[str, Endpoint] = {}  # enabled endpoints, re-read every second
        # The lease outlives the longest attempt, or a slow attempt would be sent twice.
        self._lease = timedelta(seconds=settings.notify_timeout_s + 5)

    async def run(self) -> None:
        s = self.settings
        log.info("webhook dispatcher %s", self.worker)
        await self.serve(
            HealthServer(s.notify_http_host, s.notify_http_port, ready=self.readiness),
            {"fanout": self._fanout_loop, "deliveries": self._delivery_loop},
        )
        log.info("webhook dispatcher stopped")

    async def _listening(self, channel: str, wake: asyncio.Event) -> asyncio.Task[None]:
        listener = await self.connect()
        try:
            await listener.execute(f"LISTEN {channel}")
        except BaseException:
            await listener.close()
            raise

        async def listen() -> None:
            async with listener:
                async for _ in listener.notifies():
                    wake.set()

        return asyncio.create_task(listen())

    async def _fanout_loop(self, conn: AsyncConnection[Any]) -> None:
        listen = await self._listening(OUTBOX_CHANNEL, self._outbox_wake)
        try:
            while not self.stopping.is_set():
                self._outbox_wake.clear()
                while not self.stopping.is_set():
                    done = await fan_out(conn, self.settings)
                    metrics.EVENTS.inc(done.events)
                    metrics.UNROUTED.inc(done.unrouted)
                    if done.deliveries:
                        self._delivery_wake.set()
                    if done.events < self.settings.notify_batch:
                        break
                if listen.done():
                    listen.result()  # the listener failed: raise its error
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outbox_wake.wait(), self.settings.notify_poll_s)
        finally:
            listen.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                await listen

    async def _delivery_loop(self, conn: AsyncConnection[Any]) -> None:
        listen = await self._listening(DELIVERIES_CHANNEL, self._delivery_wake)
        pool = AsyncConnectionPool(
            self.settings.database_url,
            min_size=1,
            max_size=8,
            open=False,
            kwargs={"autocommit": True, "application_name": "placewatch-notify"},
        )
        await pool.open()
        housekeeping_at = endpoints_at = datetime.min.replace(tzinfo=UTC)
        try:
            while not self.stopping.is_set():
                self._delivery_wake.clear()
                now = datetime.now(UTC)
                if now >= endpoints_at:
                    # Read at most once a second, not at every wake-up: new endpoints and
                    # circuit changes take effect within that second.
                    self._endpoints = await load_endpoints(conn)
                    endpoints_at = now + _ENDPOINTS_EVERY
                if now >= housekeeping_at:
                    await self._housekeeping(conn)
                    housekeeping_at = now + _HOUSEKEEPING_EVERY
                slots = {}
                for ep in self._endpoints.values():
                    cap = self.policy.cap(
                        ep.max_concurrency, ep.consecutive_failures, ep.circuit_open_until, now
                    )
                    slots[ep.endpoint_id] = (max(0, cap - self._in_flight[ep.endpoint_id]), cap)
                for delivery in await claim(conn, slots, self._lease):
                    self._start(pool, self._endpoints[delivery.endpoint_id], delivery)
                if listen.done():
                    listen.result()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._delivery_wake.wait(), self.settings.notify_poll_s)
        finally:
            listen.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                await listen
            await self._finish_in_flight()
            await pool.close()

    async def _housekeeping(self, conn: AsyncConnection[Any]) -> None:
        for endpoint_id in await dead_letter_overdue(conn):
            metrics.DEAD.labels(endpoint_id).inc()
        if withdrawn := await withdraw_unrouted(conn):
            metrics.WITHDRAWN.inc(withdrawn)
            log.info("withdrew %d deliveries: their teams no longer see the alerts", withdrawn)
        metrics.PENDING.set(await pending_count(conn))
        now = datetime.now(UTC)
        endpoints = self._endpoints  # just read by the loop
        for ep in endpoints.values():
            is_open = ep.circuit_open_until is not None and ep.circuit_open_until > now
            metrics.CIRCUIT_OPEN.labels(ep.endpoint_id).set(1 if is_open else 0)
        # Connections to endpoints removed or disabled since: closed once idle.
        for endpoint_id in [e for e in self._clients if e not in endpoints]:
            if self._in_flight[endpoint_id] == 0:
                await self._clients.pop(endpoint_id)[1].aclose()

    def _client(self, endpoint: Endpoint) -> httpx.AsyncClient:
        key = (endpoint.url, endpoint.max_concurrency)
        held = self._clients.get(endpoint.endpoint_id)
        if held is None or held[0] != key:
            if held is not None:
                self._retired.append(held[1])  # closed at stop; attempts may still use it
            held = (key, client_for(endpoint, self.settings.notify_timeout_s, self.targets))
            self._clients[endpoint.endpoint_id] = held
        return held[1]

    def _start(self, pool: AsyncConnectionPool, endpoint: Endpoint, delivery: Delivery) -> None:
        self._in_flight[endpoint.endpoint_id] += 1
        task = asyncio.create_task(self._attempt(pool, endpoint, delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(
        self, pool: AsyncConnectionPool, endpoint: Endpoint, delivery: Delivery
    ) -> None:
        ep = endpoint.endpoint_id
        released = False

        def release_slot(wake: bool = True) -> None:
            nonlocal released
            if not released:
                released = True
                self._in_flight[ep] -= 1
                if wake:
                    self._delivery_wake.set()

        try:
            attempt = await send(
                self._client(endpoint),
                endpoint,
                delivery,
                self.settings.notify_timeout_s,
                self.targets,
            )
            if attempt.ok:
                # The slot is for a request in flight; recording a success needs none (the
                # delivery stays leased and pending until recorded, so the alert's next event
                # still waits). A failure keeps it until the circuit has counted it. The loop is
                # woken once, after recording, when the alert's next event may go too.
                release_slot(wake=False)
            metrics.ATTEMPTS.labels(ep, _outcome(attempt)).inc()
            metrics.ATTEMPT_SECONDS.labels(ep).observe(attempt.latency_s)
            recorded = await self._record(pool, delivery, attempt)
            # Recorded: the alert's next event may go now (the slot may have been freed before).
            self._delivery_wake.set()
            state = recorded.state
            if ep in self._endpoints:  # the circuit as recorded, before the next claim
                self._endpoints[ep] = replace(
                    self._endpoints[ep],
                    consecutive_failures=recorded.consecutive_failures,
                    circuit_open_until=recorded.circuit_open_until,
                )
            if state == "delivered" and attempt.ok:
                metrics.DELIVERED.labels(ep).inc()
                lag = datetime.now(UTC) - delivery.event_committed_at
                metrics.COMMIT_TO_DELIVERY.observe(lag.total_seconds())
            elif state == "pending" and attempt.error and attempt.error.startswith(REFUSED):
                log.warning(
                    "delivery %s to %s: attempt %d %s (no request sent); will retry",
                    delivery.webhook_id,
                    ep,
                    delivery.attempts,
                    attempt.error,
                )
            elif state == "pending":
                log.info(
                    "delivery %s to %s: attempt %d failed (%s); will retry",
                    delivery.webhook_id,
                    ep,
                    delivery.attempts,
                    attempt.error,
                )
            elif state == "dead":
                metrics.DEAD.labels(ep).inc()
                log.warning(
                    "delivery %s to %s dead after %d attempts: %s",
                    delivery.webhook_id,
                    ep,
                    delivery.attempts,
                    attempt.error,
                )
        except Exception:
            # Not recorded: the lease runs out and the delivery is tried again (same id).
            log.exception("delivery %s to %s: attempt not recorded", delivery.webhook_id, ep)
        finally:
            release_slot()

    async def _record(
        self, pool: AsyncConnectionPool, delivery: Delivery, attempt: Attempt
    ) -> Recorded:
        """Record with retries while the lease lasts: a success not recorded would be sent
        again (harmless, same webhook-id, but noisy)."""
        deadline = asyncio.get_running_loop().time() + self._lease.total_seconds() / 2
        backoff = 0.2
        while True:
            try:
                async with pool.connection(timeout=5.0) as c:
                    return await record(c, delivery, attempt, self.policy, self.worker)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if asyncio.get_running_loop().time() + backoff > deadline:
                    raise
                log.warning("recording delivery %s: %s; retrying", delivery.webhook_id, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _finish_in_flight(self) -> None:
        """On stop: let attempts under way finish (bounded by their timeout), then close."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.settings.notify_timeout_s + 5)
        for _, client in self._clients.values():
            await client.aclose()
        for client in self._retired:
            await client.aclose()
        self._clients.clear()
        self._retired.clear()


def run(settings: Settings) -> None:
    asyncio.run(Dispatcher(settings).run())
