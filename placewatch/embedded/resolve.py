"""Which database and broker to use: configured, else local, else embedded.

1. A configured one always wins: ``PLACEWATCH_DATABASE_URL`` / ``PLACEWATCH_MQTT_HOST`` /
   ``PLACEWATCH_MQTT_PORT`` from the environment or ``.env`` (for the tests,
   ``PLACEWATCH_TEST_DATABASE_URL``). It is not probed: if it is down, the user hears it from
   the command that needs it.
2. Else the local service on its usual port if it takes us: a PostgreSQL on 127.0.0.1:5432 that
   lets us log in (as the current user, no password: ``database_refusal``), a broker on
   127.0.0.1:1883 that accepts an anonymous MQTT CONNECT (``broker_refusal``). One that
   answers but refuses us (a docker compose stack with its passwords) is passed over, with the
   reason in the log.
3. Else an embedded one: ``placewatch.embedded.postgres`` or ``placewatch.embedded.broker``.

Each choice is logged with the reason.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg

from placewatch import mqtt_wire as wire

log = logging.getLogger(__name__)

LOCAL_HOST = "127.0.0.1"
LOCAL_PG_PORT = 5432
LOCAL_MQTT_PORT = 1883

Source = Literal["configured", "local", "embedded"]


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def database_refusal(url: str, timeout: int = 3) -> str | None:
    """None if we can log in to ``url``; else why not (one line)."""
    try:
        psycopg.connect(url, connect_timeout=timeout, autocommit=True).close()
    except psycopg.Error as exc:
        return " ".join(str(exc).split())[:300] or type(exc).__name__
    return None


def broker_refusal(host: str, port: int, timeout: float = 3.0) -> str | None:
    """None if the MQTT broker on ``host:port`` accepts an anonymous CONNECT (MQTT 5, else
    3.1.1 for a broker that knows only that); else why not (one line)."""
    client_id = f"pw-probe-{os.getpid()}"
    try:
        reason = wire.connack_reason(host, port, wire.probe_packet(client_id), timeout)
        if reason == 0x84:  # unsupported protocol version: a 3.1.1 broker
            reason = wire.connack_reason(
                host, port, wire.probe_packet(client_id, level=wire.MQTT_311), timeout
            )
    except OSError as exc:
        return f"no connection ({exc.strerror or exc})"
    if reason is None:
        return "no CONNACK (not an MQTT broker, or it closed the connection)"
    if reason != 0:
        return f"CONNECT refused: {wire.REASONS.get(reason, hex(reason))}"
    return None


@dataclass
class Database:
    """A PostgreSQL server to use: ``url`` (its maintenance database, or the configured
    database), where it came from, and ``stop`` for an embedded one (a no-op otherwise)."""

    url: str
    source: Source
    stop: Callable[[], None]
    alive: Callable[[], bool] = lambda: True  # False once an embedded server has died


def _noop() -> None:
    return None


def resolve_database(
    configured: str | None,
    *,
    datadir: Path | None = None,
    local_port: int = LOCAL_PG_PORT,
    what: str = "database",
    auth: str = "scram-sha-256",
) -> Database:
    """``configured`` (a URL) if given; else the local server on 127.0.0.1:``local_port``
    (``postgresql://127.0.0.1:5432/postgres``) if we can log in to it; else an embedded server
    on ``datadir`` (default: the user's data directory), started here (``auth``: see
    ``start_postgres``)."""
    if configured:
        log.info("%s: the configured server %s", what, _redact(configured))
        return Database(configured, "configured", _noop)
    url = f"postgresql://{LOCAL_HOST}:{local_port}/postgres"
    why = database_refusal(url)
    if why is None:
        log.info("%s: nothing configured; the local PostgreSQL on %s takes us", what, url)
        return Database(url, "local", _noop)
    from placewatch.embedded.postgres import start_postgres

    log.info(
        "%s: nothing configured and no local PostgreSQL we may use on %s:%d (%s): starting an "
        "embedded PostgreSQL",
        what,
        LOCAL_HOST,
        local_port,
        why,
    )
    server = start_postgres(datadir, auth=auth)
    return Database(server.url(), "embedded", server.stop, server.alive)


@dataclass
class Broker:
    """An MQTT broker to use and ``stop`` for one started here (a no-op otherwise)."""

    host: str
    port: int
    source: Source
    kind: str  # "configured", "local", or the embedded broker's kind ("mosquitto", "amqtt")
    stop: Callable[[], None]
    alive: Callable[[], bool] = lambda: True  # False once an embedded broker has died


def resolve_broker(
    configured: tuple[str, int] | None,
    workdir: Path,
    *,
    local_port: int = LOCAL_MQTT_PORT,
) -> Broker:
    """``configured`` (host, port) if given; else the local broker on 127.0.0.1:``local_port``
    if it accepts an anonymous CONNECT; else a broker started here
    (``placewatch.embedded.broker.start_broker``: a private Mosquitto if the binary is
    installed, else amqtt) with its files in ``workdir``."""
    if configured:
        host, port = configured
        log.info("broker: the configured broker %s:%d", host, port)
        return Broker(host, port, "configured", "configured", _noop)
    why = broker_refusal(LOCAL_HOST, local_port)
    if why is None:
        log.info(
            "broker: nothing configured; the local broker on %s:%d takes us", LOCAL_HOST, local_port
        )
        return Broker(LOCAL_HOST, local_port, "local", "local", _noop)
    from placewatch.embedded.broker import start_broker

    log.info(
        "broker: nothing configured and no local broker we may use on %s:%d (%s): starting a "
        "broker",
        LOCAL_HOST,
        local_port,
        why,
    )
    running = start_broker(workdir)
    log.info("broker: started %s on %s:%d", running.kind, running.host, running.port)
    return Broker(running.host, running.port, "embedded", running.kind, running.stop, running.alive)


def _redact(url: str) -> str:
    """A URL without its password, for the log."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(url)
    except Exception:
        return "(unparsable URL)"
    if params.get("password"):
        params["password"] = "***"
        return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    return url
