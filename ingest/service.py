"""``placewatch ingest``: broker → validate → one transaction per batch → COMMIT → PUBACK.

The loop takes a batch from the consumer, decodes it off the event loop, stores it in one
transaction and only then acknowledges it. If the transaction fails for a transient reason
(database down, deadlock, disk full) the same batch is retried with backoff, unacknowledged, for
as long as it takes; the broker stops sending once Receive Maximum messages are unacknowledged.
If it fails because of a row the database refuses, the batch is split until that message is
isolated and stored as a dead letter, so one bad row never blocks the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from ingest import metrics
from ingest.batch import device_keys, to_rows
from ingest.decode import Decoded, DecodeOptions, Reason, Rejected, decode_all
from ingest.mqtt import Message, MqttConsumer, MqttOptions
from ingest.registry import DeviceRegistry
from ingest.writer import WriteResult, load_copy_types, prepare_connection, write_batch
from placewatch.health import HealthServer
from placewatch.kinds import Kind
from placewatch.settings import Settings

log = logging.getLogger(__name__)

# Errors after which the same batch is simply tried again: connection loss, server shutdown,
# deadlock/serialisation, disk full, statement timeout (all OperationalError in psycopg), and a
# schema not migrated yet (UndefinedTable) which an operator fixes without restarting us.
_TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError, psycopg.errors.UndefinedTable)
# Errors caused by the data itself: isolate the message that causes them.
_DATA = (psycopg.DataError, psycopg.IntegrityError)


def subscription_topic(settings: Settings) -> str:
    topic = f"{settings.topic_prefix}/+/+/+"
    if settings.ingest_shared_group:
        return f"$share/{settings.ingest_shared_group}/{topic}"
    return topic


class IngestService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = asyncio.Event()
        self.registry = DeviceRegistry(ttl_s=settings.ingest_registry_ttl_s)
        self._decode_options = DecodeOptions.from_settings(settings)
        self._copy_types: dict[Kind, list[str]] | None = None
        self._db_ok = False
        self.consumer: MqttConsumer | None = None

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stop requested: finishing the current batch")
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
            reconnect_timeout=0,  # never give up on the database; we retry batches ourselves
        )
        await pool.open(wait=False)
        self.consumer = MqttConsumer(
            MqttOptions(
                host=s.mqtt_host,
                port=s.mqtt_port,
                client_id=s.ingest_client_id,
                topic=subscription_topic(s),
                session_expiry_s=s.ingest_session_expiry_s,
                receive_maximum=s.ingest_receive_maximum,
                keepalive_s=s.mqtt_keepalive_s,
                username=s.mqtt_username,
                password=s.mqtt_password.get_secret_value() if s.mqtt_password else None,
            ),
            loop,
        )
        self.consumer.start()
        consumer = self.consumer
        metrics.PENDING.set_function(lambda: consumer.held)
        metrics.MQTT_CONNECTED.set_function(lambda: 1 if consumer.connected else 0)
        log.info("ingest started (http :%s, client id %s)", health.port, s.ingest_client_id)
        watch = asyncio.create_task(self._watch_database(pool))
        try:
            await self._consume(pool, self.consumer)
        finally:
            watch.cancel()
            self.consumer.stop()
            await pool.close()
            health.stop()
            log.info("ingest stopped")

    async def _watch_database(self, pool: AsyncConnectionPool[Any]) -> None:
        """Keep readiness true to the database while no batches flow (batches update it too)."""
        while True:
            try:
                async with pool.connection(timeout=5) as conn:
                    await conn.execute("SELECT 1")
                    if self._copy_types is None:
                        self._copy_types = await load_copy_types(conn)
                self._db_ok = True
            except (*_TRANSIENT, RuntimeError) as exc:
                if self._db_ok:
                    log.warning("database unavailable: %s", exc)
                self._db_ok = False
            await asyncio.sleep(2)

    async def _consume(self, pool: AsyncConnectionPool[Any], consumer: MqttConsumer) -> None:
        s = self.settings
        linger = s.ingest_batch_linger_ms / 1000
        stop_wait = asyncio.ensure_future(self.stopping.wait())
        try:
            while not self.stopping.is_set():
                arrived = asyncio.ensure_future(consumer.wait_for_messages())
                await asyncio.wait({arrived, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                arrived.cancel()
                if self.stopping.is_set():
                    break
                if consumer.buffered < s.ingest_batch_max and linger:
                    # Let a batch fill up; the stop signal cuts the wait short.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(stop_wait), linger)
                await self._process(pool, consumer, consumer.take(s.ingest_batch_max))
            # Graceful stop: flush what had already arrived, then disconnect.
            consumer.pause()
            while consumer.buffered:
                if not await self._process(pool, consumer, consumer.take(s.ingest_batch_max)):
                    break  # the database is down: leave the rest to the broker
        finally:
            stop_wait.cancel()

    async def _process(
        self, pool: AsyncConnectionPool[Any], consumer: MqttConsumer, batch: list[Message]
    ) -> bool:
        """Store and acknowledge one batch; False if stopping before it could be committed."""
        if not batch:
            return True
        metrics.RECEIVED.inc(len(batch))
        decoded, rejected = await asyncio.to_thread(decode_all, batch, self._decode_options)
        started = time.perf_counter()
        result = await self._store_with_retry(pool, decoded, rejected)
        if result is None:
            log.warning(
                "stopping with %d messages uncommitted: the broker will resend them", len(batch)
            )
            consumer.release(len(batch))
            return False
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.ACKED.inc(consumer.ack(batch))
        metrics.BATCH_SIZE.observe(len(batch))
        return True

    async def _store_with_retry(
        self, pool: AsyncConnectionPool[Any], decoded: list[Decoded], rejected: list[Rejected]
    ) -> WriteResult | None:
        delay = 0.2
        deadline: float | None = None
        while True:
            try:
                total = WriteResult()
                await self._store(pool, decoded, rejected, total)
                self._db_ok = True
                return total
            except _TRANSIENT as exc:
                self._db_ok = False
                metrics.DB_ERRORS.labels("transient").inc()
                log.warning(
                    "batch not stored (%s: %s); retrying in %.1f s",
                    type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc) else "",
                    delay,
                )
            if self.stopping.is_set():
                # Keep trying briefly to commit what we hold, then leave it to the broker.
                deadline = deadline or time.monotonic() + 10
                if time.monotonic() > deadline:
                    return None
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.settings.ingest_retry_max_s)

    async def _store(
        self,
        pool: AsyncConnectionPool[Any],
        decoded: Sequence[Decoded],
        rejected: Sequence[Rejected],
        total: WriteResult,
    ) -> None:
        refused: psycopg.Error | None = None
        async with pool.connection() as conn:
            if self._copy_types is None:
                self._copy_types = await load_copy_types(conn)
            devices = await self.registry.resolve(conn, device_keys(decoded))
            rows, unmapped = to_rows(decoded, devices)
            all_rejected = [*rejected, *unmapped]
            try:
                result = await write_batch(conn, self._copy_types, rows, all_rejected)
            except _DATA as exc:
                metrics.DB_ERRORS.labels("data").inc()
                refused = exc
                if len(rows) <= 1:
                    # The database refused this one message: keep it as a dead letter.
                    all_rejected += [
                        Rejected(
                            r.message,
                            r.values[1],
                            Reason.STORAGE_ERROR,
                            f"{type(exc).__name__}: {str(exc).strip()[:500]}",
                        )
                        for r in rows
                    ]
                    rows = []
                    result = await write_batch(conn, self._copy_types, rows, all_rejected)
                    refused = None
        if refused is not None:
            # Split outside the connection block: each half takes its own pool connection.
            log.warning("database refused a row (%s); isolating it", type(refused).__name__)
            half = len(decoded) // 2
            await self._store(pool, decoded[:half], rejected, total)
            await self._store(pool, decoded[half:], [], total)
            return
        for kind, n in result.inserted.items():
            metrics.STORED.labels(kind.value).inc(n)
            total.inserted[kind] = total.inserted.get(kind, 0) + n
        total.duplicates += result.duplicates
        total.dead_letters += result.dead_letters
        metrics.DUPLICATES.inc(result.duplicates)
        for r in all_rejected:
            metrics.REJECTED.labels(r.reason).inc()
        for row in rows:
            metrics.EVENT_LAG_SECONDS.observe(row.message.received_at - row.values[0].timestamp())


def run(settings: Settings) -> None:
    asyncio.run(IngestService(settings).run())
