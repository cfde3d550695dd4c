"""Fixtures for the rules tests that run the real thing: a fresh database per test (rules
workers evaluate the whole inbox, so tests must not share one), the test broker, ingest and
rules workers as subprocesses."""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from rules.backtest import Fired, backtest
from rules.loader import load_rules
from storage.registry import DeviceSpec, register
from tests.support import traffic
from tests.support.broker import Broker
from tests.support.ingest import IngestProcess


@dataclass
class RulesRig:
    council: str
    prefix: str
    broker: Broker
    database_url: str
    tmp: Path
    rules_path: Path | None = None
    procs: list[IngestProcess] = field(default_factory=list)

    def write_rules(self, text: str) -> Path:
        self.rules_path = self.tmp / "rules.yaml"
        self.rules_path.write_text(textwrap.dedent(text))
        return self.rules_path

    def _proc(self, name: str, command: tuple[str, ...], env: dict[str, str]) -> IngestProcess:
        proc = IngestProcess(
            database_url=self.database_url,
            mqtt_port=self.broker.port,
            prefix=self.prefix,
            client_id=f"{name}-{self.council}",
            logdir=self.tmp,
            command=command,
            extra_env={f"PLACEWATCH_{k.upper()}": v for k, v in env.items()},
        )
        self.procs.append(proc)
        return proc

    def ingest(self, **env: str) -> IngestProcess:
        proc = self._proc(f"ingest{len(self.procs)}", ("ingest",), env)
        proc.start()
        return proc

    def worker(self, name: str = "w0", start: bool = True, **env: str) -> IngestProcess:
        assert self.rules_path is not None, "write_rules first"
        settings = {
            "rules_defaults": "false",
            "rules_path": str(self.rules_path),
            "rules_poll_s": "0.5",
            **env,
        }
        proc = self._proc(name, ("rules", "run"), settings)
        if start:
            proc.start()
        return proc

    def register(self, devices: Iterable[DeviceSpec]) -> None:
        """Register the devices in this test's council (whatever council they name)."""
        ours = [replace(d, council_id=self.council) for d in devices]
        with psycopg.connect(self.database_url) as conn:
            register(conn, self.council, "Rules test council", ours)

    def publish(self, messages: Iterable[tuple[str, bytes]]) -> int:
        return traffic.publish_all(self.broker, messages)

    def reading(self, kind: str, device: str, **fields: Any) -> tuple[str, bytes]:
        return f"{self.prefix}/{self.council}/{kind}/{device}", json.dumps(fields).encode()

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, *params: Any) -> Any:
        rows = self.query(sql, *params)
        return next(iter(rows[0].values())) if rows else None

    def alerts(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM alerts ORDER BY alert_id")

    def backtest(self, start: datetime, end: datetime) -> list[Fired]:
        assert self.rules_path is not None
        ruleset = load_rules([self.rules_path])

        async def run() -> list[Fired]:
            async with await psycopg.AsyncConnection.connect(
                self.database_url, autocommit=True
            ) as conn:
                return await backtest(conn, ruleset, start, end)

        return asyncio.run(run())


@pytest.fixture
def rig(fresh_database: str, broker: Broker, tmp_path: Path) -> Iterator[RulesRig]:
    tag = uuid.uuid4().hex[:8]
    r = RulesRig(f"r{tag}", f"pwrules/{tag}", broker, fresh_database, tmp_path)
    yield r
    for proc in r.procs:
        if proc.alive():
            proc.kill()
