"""No secret in logs: every service, given secrets in its settings (a database password in its
URL, the MQTT password, the link secret), logs its failures when the database is unreachable
without ever writing a secret, whole or URL-quoted, to its output. Debug logging included.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.broker import Broker, free_port
from tests.support.ingest import IngestProcess

DB_PASSWORD = "db-S3cret/pw!7c1e"
MQTT_PASSWORD = "mqtt-S3cret-4b0d"
LINK_SECRET = "link-S3cret-91f2a6d0c3e84b7f"
SECRETS = [DB_PASSWORD, quote(DB_PASSWORD, safe=""), MQTT_PASSWORD, LINK_SECRET]


@pytest.mark.parametrize(
    "command", [("ingest",), ("rules", "run"), ("notify",), ("api",)], ids=lambda c: c[0]
)
def test_a_failing_service_logs_the_failure_but_no_secret(
    command: tuple[str, ...], broker: Broker, tmp_path: Path
) -> None:
    closed = free_port()  # nothing listens: every connection attempt fails and is logged
    proc = IngestProcess(
        database_url=f"postgresql://placewatch:{quote(DB_PASSWORD, safe='')}@127.0.0.1:{closed}/pw",
        mqtt_port=broker.port,
        prefix="pwtest/secrets",
        client_id=f"secrets-{command[0]}",
        logdir=tmp_path,
        command=command,
        extra_env={
            "PLACEWATCH_MQTT_USERNAME": "placewatch-ingest",
            "PLACEWATCH_MQTT_PASSWORD": MQTT_PASSWORD,
            "PLACEWATCH_LINK_SECRET": LINK_SECRET,
            "PLACEWATCH_LOG_LEVEL": "DEBUG",
            "PLACEWATCH_API_PORT": str(free_port()),
        },
    )
    proc.start(wait_ready=False)
    try:
        time.sleep(6)
    finally:
        if proc.alive():
            proc.terminate()
    log = proc.log_tail(10_000)
    # Not vacuous: the service did log that it could not reach the database.
    assert str(closed) in log or "connect" in log.lower(), log[-2000:]
    leaked = [s for s in SECRETS if s in log]
    assert not leaked, f"secrets in the {command[0]} log: {leaked}\n{log[-3000:]}"


def test_cli_errors_carry_no_secret(broker: Broker, tmp_path: Path) -> None:
    closed = free_port()
    proc = IngestProcess(
        database_url=f"postgresql://placewatch:{quote(DB_PASSWORD, safe='')}@127.0.0.1:{closed}/pw",
        mqtt_port=broker.port,
        prefix="pwtest/secrets",
        client_id="secrets-cli",
        logdir=tmp_path,
        extra_env={"PLACEWATCH_LINK_SECRET": LINK_SECRET},
    )
    for args in (("migrate",), ("status",), ("alerts", "list")):
        out = proc.cli(*args, ok=False)
        assert out.strip(), args  # it said why it failed
        leaked = [s for s in SECRETS if s in out]
        assert not leaked, f"placewatch {' '.join(args)} printed {leaked}:\n{out[-2000:]}"
