"""One test's view of the running pipeline: its council and topic prefix, the broker, the
database, and ingest processes — so each test says what it does, not how to wire it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from storage.registry import DeviceSpec
from tests.support import traffic
from tests.support.broker import Broker
from tests.support.ingest import IngestProcess


@dataclass
class Pipeline:
    council: str
    prefix: str
    broker: Broker
    database_url: str
    conn: psycopg.Connection[Any]
    make_ingest: Callable[..., IngestProcess]

    def ingest(self, start: bool = True, **env: str) -> IngestProcess:
        proc = self.make_ingest(**env)
        if start:
            proc.start()
        return proc

    def register(self, per_kind: int) -> list[DeviceSpec]:
        return traffic.register_fleet(self.database_url, self.council, per_kind)

    def publish(self, messages: Iterable[tuple[str, bytes]]) -> int:
        return traffic.publish_all(self.broker, messages)

    def topic(self, kind: str, device: str) -> str:
        return f"{self.prefix}/{self.council}/{kind}/{device}"

    def stored(self) -> int:
        return traffic.stored_readings(self.conn, self.council)

    def distinct(self) -> int:
        return traffic.distinct_readings(self.conn, self.council)

    def dead_letters(self) -> list[tuple[str, bytes, str, str]]:
        return traffic.dead_letters(self.conn, self.prefix)
