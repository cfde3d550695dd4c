"""A delivery rig: a database of its own, teams applied from YAML, alerts opened through the
production alert functions (so their outbox rows are the real ones), the dispatcher as a real
subprocess, and real HTTP receivers."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from notify.signing import new_secret
from notify.targets import TargetPolicy
from rules.alerts import acknowledge_alert
from teams.config import apply_teams, load_teams_file
from tests.support.alerts import open_test_alert
from tests.support.ingest import IngestProcess
from tests.support.receivers import HangingReceiver, ReferenceReceiver

LINK_SECRET = "test-link-secret-" + uuid.uuid4().hex
# The receivers listen on http://127.0.0.1: the dispatchers opt in to plain http on loopback
# (secure defaults refuse both; tests/notify/test_targets.py runs them with the defaults).
LOCAL_TARGETS = {"notify_allow_http": "true", "notify_allowed_networks": "127.0.0.0/8,::1/128"}


@dataclass
class DeliveryRig:
    database_url: str
    tmp: Path
    council: str = field(default_factory=lambda: f"d{uuid.uuid4().hex[:8]}")
    secret: str = field(default_factory=new_secret)
    procs: list[IngestProcess] = field(default_factory=list)
    receivers: list[ReferenceReceiver] = field(default_factory=list)
    hanging: list[HangingReceiver] = field(default_factory=list)

    def __post_init__(self) -> None:
        with psycopg.connect(self.database_url) as conn:
            conn.execute(
                "INSERT INTO councils (council_id, name) VALUES (%s, 'Delivery tests')"
                " ON CONFLICT DO NOTHING",
                (self.council,),
            )

    def receiver(self, start: bool = True) -> ReferenceReceiver:
        r = ReferenceReceiver(self.secret, self.tmp)
        if start:
            r.start()
        self.receivers.append(r)
        return r

    def hanging_receiver(self) -> HangingReceiver:
        h = HangingReceiver()
        self.hanging.append(h)
        return h

    def teams(self, text: str, targets: TargetPolicy | None = None) -> None:
        path = self.tmp / f"teams-{uuid.uuid4().hex[:6]}.yaml"
        body = textwrap.dedent(text).replace("COUNCIL", self.council)
        path.write_text(body)
        # Endpoints name the secret's variable (secret_env: RIG_SECRET), as deployments do.
        os.environ["RIG_SECRET"] = self.secret
        with psycopg.connect(self.database_url) as conn:
            apply_teams(conn, load_teams_file(path), targets or TargetPolicy.local())

    def dispatcher(self, name: str = "n0", start: bool = True, **env: str) -> IngestProcess:
        settings = {
            "link_secret": LINK_SECRET,
            "public_url": "http://127.0.0.1:9",
            "notify_poll_s": "0.2",
            "notify_timeout_s": "2",
            "notify_backoff_base_s": "0.2",
            "notify_backoff_max_s": "1",
            **LOCAL_TARGETS,
            **env,
        }
        proc = IngestProcess(
            database_url=self.database_url,
            mqtt_port=1,
            prefix="unused",
            client_id=f"{name}-{self.council}",
            logdir=self.tmp,
            command=("notify",),
            extra_env={f"PLACEWATCH_{k.upper()}": v for k, v in settings.items()},
        )
        self.procs.append(proc)
        if start:
            proc.start()
        return proc

    def open_alert(
        self,
        rule_id: str = "test-rule",
        *,
        subject: str | None = None,
        site: str | None = "high-st",
        kind: str = "bin_fill",
        severity: str = "warning",
        resident: str | None = None,
    ) -> int:
        """An alert opened the way the rules engine opens one (row, audit, outbox)."""
        return open_test_alert(
            self.database_url,
            self.council,
            rule_id,
            ("device", subject or f"dev-{uuid.uuid4().hex[:8]}"),
            kind=kind,
            site=site,
            resident=resident,
            severity=severity,
        )

    def acknowledge(self, alert_id: int) -> None:
        async def go() -> None:
            async with (
                await psycopg.AsyncConnection.connect(self.database_url) as conn,
                conn.transaction(),
                conn.cursor(row_factory=dict_row) as cur,
            ):
                assert await acknowledge_alert(cur, alert_id, "test", "on my way")

        asyncio.run(go())

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, *params: Any) -> Any:
        rows = self.query(sql, *params)
        return next(iter(rows[0].values())) if rows else None

    def dispatcher_metric(self, name: str) -> float:
        return sum(p.metric(name) for p in self.procs if p.alive())

    def deliveries(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM webhook_deliveries ORDER BY delivery_id")


def one_team(
    rig: DeliveryRig, *receivers: ReferenceReceiver | str, targets: TargetPolicy | None = None
) -> None:
    """One operations team for bin alerts with an endpoint per receiver (hook0, hook1, ...);
    ``targets``: the policy `teams apply` checks the URLs with (default: local receivers)."""
    urls = [r if isinstance(r, str) else r.url for r in receivers]
    hooks = "\n".join(
        f'              - {{id: hook{i}, url: "{u}", secret_env: RIG_SECRET}}'
        for i, u in enumerate(urls)
    )
    rig.teams(
        f"""
        council: COUNCIL
        teams:
          - id: ops
            name: Operations
            routes: [{{kinds: [bin_fill]}}]
            webhooks:
{hooks}
        """,
        targets,
    )


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``check()``; returns the seconds it took, fails the test with ``what``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"not within {timeout} s: {what}")


@pytest.fixture
def rig(fresh_database: str, tmp_path: Path) -> Iterator[DeliveryRig]:
    r = DeliveryRig(fresh_database, tmp_path)
    yield r
    for proc in r.procs:
        if proc.alive():
            proc.kill()
    for rec in r.receivers:
        rec.stop()
    for h in r.hanging:
        h.close()
