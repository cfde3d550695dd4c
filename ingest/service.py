"""``placewatch ingest``: broker → validate → one transaction per batch → COMMIT → PUBACK.

The loop takes a batch from the consumer, decodes it off the event loop, stores it (see
``ingest.store``) and only then acknowledges it. If storing fails for a transient reason
(database down, deadlock, disk full) the same batch is retried with backoff, unacknowledged, for
as long as it takes, while the consumer stops reading at its window. A message the database
refuses is isolated into a dead letter, so one bad message never blocks the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ingest import metrics
from ingest.decode import Accepted, DecodeOptions, Rejected, decode_all
from ingest.heartbeat import HEARTBEAT_S, beat
from ingest.mqtt import Message, MqttConsumer, MqttOptions, client_ssl_context
from ingest.registry import DeviceRegistry
from ingest.store import BatchStore, Stored, is_transient
from ingest.writer import prepare_connection
from placewatch.health import HealthServer
from placewatch.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    messages: list[Message]
    decoded: asyncio.Future[tuple[list[Accepted], list[Rejected]]]


class _StopDeadlineError(Exception):
    """A stop was requested and its deadline passed before the batch could be stored."""


def subscription_topics(settings: Settings) -> tuple[str, ...]:
    # Every depth under the prefix: a topic of the wrong shape is dead-lettered, not dropped.
    # Network server uplinks arrive on their own topics (bridged into this broker).
    topics = (f"{settings.topic_prefix}/#", *settings.ingest_network_topics)
    if settings.ingest_shared_group:
        return tuple(f"$share/{settings.ingest_shared_group}/{t}" for t in topics)
    return topics


class IngestService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = asyncio.Event()
        self.store = BatchStore(
            DeviceRegistry(ttl_s=settings.ingest_registry_ttl_s),
            rules_inbox=settings.ingest_rules_inbox,
        )
        self._stop_by = float("inf")
        self._commits = 0
        self._decode_options = DecodeOptions.from_settings(settings)
        self._db_ok = False
        self.consumer: MqttConsumer | None = None

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stop requested: finishing the current batch")
            self._stop_by = time.monotonic() + self.settings.ingest_stop_timeout_s
            self.stopping.set()

    def readiness(self) -> tuple[bool, str]:
        # Subscribed, not merely connected: a new session queues nothing before SUBACK.
        mqtt_ok = self.consumer is not None and self.consumer.subscribed.is_set()
        if mqtt_ok and self._db_ok:
            return True, "ok"
        problems = [p for p, bad in (("broker", not mqtt_ok), ("database", not self._db_ok)) if bad]
        return False, "not connected: " + ", ".join(problems)

    async def run(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        health = HealthServer(s.ingest_http_host, s.ingest_http_port, ready=self.readiness)
        health.start()
        pool = AsyncConnectionPool(
            s.database_url,
            min_size=1,
            max_size=2,
            kwargs={"autocommit": True, "application_name": "placewatch-ingest"},
            configure=prepare_connection,
            open=False,
        )
        await pool.open(wait=False)
        self.consumer = MqttConsumer(
            MqttOptions(
                host=s.mqtt_host,
                port=s.mqtt_port,
                client_id=s.ingest_client_id,
                topics=subscription_topics(s),
                session_expiry_s=s.ingest_session_expiry_s,
                receive_maximum=s.ingest_receive_maximum,
                max_held_bytes=s.ingest_max_held_mib * 2**20,
                keepalive_s=s.mqtt_keepalive_s,
                username=s.mqtt_username,
                password=s.mqtt_password.get_secret_value() if s.mqtt_password else None,
                tls=client_ssl_context(
                    s.mqtt_tls_ca_file, s.mqtt_tls_cert_file, s.mqtt_tls_key_file
                )
                if s.mqtt_tls
                else None,
            ),
            loop,
        )
        self.consumer.start()
        consumer = self.consumer
        metrics.PENDING.set_function(lambda: consumer.held)
        metrics.PENDING_BYTES.set_function(lambda: consumer.held_bytes)
        metrics.MQTT_CONNECTED.set_function(lambda: 1 if consumer.connected else 0)
        log.info("ingest started (http :%s, client id %s)", health.port, s.ingest_client_id)
        watch = asyncio.create_task(self._watch_database(pool))
        try:
            await self._consume(pool, self.consumer)
        finally:
            watch.cancel()
            await self.consumer.stop()
            await pool.close()
            health.stop()
            log.info("ingest stopped")

    async def _watch_database(self, pool: AsyncConnectionPool[Any]) -> None:
        """Keep readiness true to the database while no batches flow (batches update it too),
        and write this process's heartbeat while it is healthy (see ``heartbeat``)."""
        while True:
            try:
                async with pool.connection(timeout=5) as conn:
                    await self.heartbeat(conn)
                self._db_ok = True
            except Exception as exc:  # any failure here only means "not ready"
                if self._db_ok:
                    log.warning("database unavailable: %s", exc)
                self._db_ok = False
            await asyncio.sleep(HEARTBEAT_S)

    async def heartbeat(self, conn: AsyncConnection[Any]) -> None:
        """Record that ingest is connected and subscribed, can write, and is not saturated
        (holding under half its window: not draining a backlog). A gap in heartbeats restarts
        ``healthy_since``; rules hold silence alerts back until it is old enough."""
        consumer = self.consumer
        healthy = (
            consumer is not None
            and consumer.subscribed.is_set()
            and consumer.held < self.settings.ingest_receive_maximum / 2
            and consumer.held_bytes < self.settings.ingest_max_held_mib * 2**20 / 2
        )
        if healthy:
            await beat(conn, self.settings.ingest_client_id)
        else:
            await conn.execute("SELECT 1")

    async def _consume(self, pool: AsyncConnectionPool[Any], consumer: MqttConsumer) -> None:
        s = self.settings
        linger = s.ingest_batch_linger_ms / 1000
        stop_wait = asyncio.ensure_future(self.stopping.wait())
        ahead: _Batch | None = None  # the next full batch, decoded while this one is stored
        try:
            while not self.stopping.is_set():
                if ahead is None:
                    arrived = asyncio.ensure_future(consumer.wait_for_messages())
                    await asyncio.wait({arrived, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    arrived.cancel()
                    if self.stopping.is_set():
                        break
                    if consumer.buffered < s.ingest_batch_max and linger:
                        # Let a batch fill up; the stop signal cuts the wait short.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(stop_wait), linger)
                    ahead = self._decode(consumer.take(s.ingest_batch_max))
                batch, ahead = ahead, None
                store = asyncio.ensure_future(self._process(pool, consumer, batch))
                # A backlog: as soon as a next full batch is in, decode it (a thread) while this
                # one is stored (the database's time), so ingest's CPU and the database overlap.
                while not store.done():
                    if consumer.buffered >= s.ingest_batch_max:
                        ahead = self._decode(consumer.take(s.ingest_batch_max))
                        break
                    more = asyncio.ensure_future(consumer.wait_for_more())
                    await asyncio.wait({store, more}, return_when=asyncio.FIRST_COMPLETED)
                    more.cancel()
                await store
            # Graceful stop: flush what had already arrived, then disconnect.
            consumer.pause()
            while (ahead or consumer.buffered) and time.monotonic() < self._stop_by:
                batch = ahead or self._decode(consumer.take(s.ingest_batch_max))
                ahead = None
                if not await self._process(pool, consumer, batch):
                    break  # the database is down: leave the rest to the broker
        finally:
            stop_wait.cancel()
            if ahead is not None:
                ahead.decoded.cancel()

    def _decode(self, messages: list[Message]) -> _Batch:
        return _Batch(
            messages,
            asyncio.ensure_future(asyncio.to_thread(decode_all, messages, self._decode_options)),
        )

    async def _process(
        self, pool: AsyncConnectionPool[Any], consumer: MqttConsumer, batch: _Batch
    ) -> bool:
        """Store and acknowledge one batch; False if stopping before it could be committed."""
        messages = batch.messages
        if not messages:
            return True
        metrics.RECEIVED.inc(len(messages))
        decoded, rejected = await batch.decoded
        started = time.perf_counter()
        stored = await self._store_with_retry(pool, decoded, rejected)
        if stored is None:
            log.warning(
                "stopping with %d messages uncommitted: the broker will resend them", len(messages)
            )
            consumer.release(messages)
            return False
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        self._commits += 1
        if self._commits == self.settings.test_exit_after_commits:
            os._exit(137)  # failpoint: the worst moment to die, committed but not acknowledged
        metrics.ACKED.inc(consumer.ack(messages))
        metrics.BATCH_SIZE.observe(len(messages))
        for kind, n in stored.inserted.items():
            metrics.STORED.labels(kind.value).inc(n)
        metrics.DUPLICATES.inc(stored.duplicates)
        for r in stored.rejected:
            metrics.REJECTED.labels(r.reason).inc()
        metrics.EVENT_LAG_SECONDS.observe_many([row.lag for row in stored.rows])
        return True

    async def _store_with_retry(
        self, pool: AsyncConnectionPool[Any], decoded: list[Accepted], rejected: list[Rejected]
    ) -> Stored | None:
        """Store the batch, retrying for as long as it takes; None only when a stop's deadline
        passes first."""
        delay = 0.2
        while True:
            try:
                stored = await self._until_stop_deadline(
                    self.store.store(pool.connection, decoded, rejected)
                )
                self._db_ok = True
                return stored
            except _StopDeadlineError:
                return None
            except Exception as exc:
                # Transient database trouble, or (should never happen) a failure that isolation
                # could not pin on one message: keep the batch, unacknowledged, and try again.
                self._db_ok = False
                transient = is_transient(exc)
                metrics.DB_ERRORS.labels("transient" if transient else "unexpected").inc()
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                log.log(
                    logging.WARNING if transient else logging.ERROR,
                    "batch not stored (%s: %s); retrying in %.1f s",
                    type(exc).__name__,
                    first_line,
                    delay,
                    exc_info=not transient,
                )
            # Back off, but a stop request cuts the wait short.
            stop = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait({stop}, timeout=delay * (0.5 + random.random()))
            stop.cancel()
            delay = min(delay * 2, self.settings.ingest_retry_max_s)

    async def _until_stop_deadline(self, work: Coroutine[Any, Any, Stored]) -> Stored:
        """Run ``work``; once a stop is requested, give it only until the stop deadline (a
        statement waiting on a lock or a dead connection would otherwise hold the stop)."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait({task}, timeout=max(0.0, self._stop_by - time.monotonic()))
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                raise _StopDeadlineError
            return task.result()
        finally:
            stop.cancel()


def run(settings: Settings) -> None:
    asyncio.run(IngestService(settings).run())
