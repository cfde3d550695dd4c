"""A private broker for the tests (``placewatch.embedded.broker``, as ``placewatch demo`` starts).

Mosquitto when it is installed, started from the project's own ``broker/mosquitto.conf`` with
only the listener port and the persistence directory rewritten, so the tests run against exactly
the tuned settings that ship (queue limits, inflight, persistence). Without Mosquitto, the
embedded amqtt broker (MQTT 3.1.1, in memory). ``PLACEWATCH_TEST_BROKER=mosquitto|amqtt``
chooses.

The security tests start Mosquitto from another shipped config (``config``, e.g.
broker/compose/mosquitto.conf) with more lines rewritten (``rewrites``: the password and ACL
files, a TLS listener): such a broker is always Mosquitto, and the test is skipped without it.
Tests that need Mosquitto's own behaviour from the shared broker call ``require_mosquitto``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from placewatch.embedded.broker import (
    MOSQUITTO_CONF,
    RunningBroker,
    chosen_kind,
    mosquitto_binary,
    render_mosquitto_config,
    start_amqtt,
    start_mosquitto,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(os.environ.get("PLACEWATCH_TEST_MOSQUITTO_CONF", MOSQUITTO_CONF))
TEST_BROKER_ENV = "PLACEWATCH_TEST_BROKER"

# What the amqtt broker lacks, for skip reasons.
AMQTT_LACKS = (
    "the embedded amqtt broker has no password file, ACL, TLS listener, $SYS topics, shared "
    "subscriptions or persistence across restarts"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


def broker_kind() -> str:
    """The tests' broker: ``PLACEWATCH_TEST_BROKER``, else mosquitto if installed, else amqtt."""
    return chosen_kind(os.environ.get(TEST_BROKER_ENV) or None)


def render_config(
    port: int,
    data_dir: Path,
    config: Path = CONFIG,
    rewrites: dict[str, str] | None = None,
) -> str:
    """``config`` with the listener and persistence lines (and any ``rewrites``, whole lines
    old → new, where new may span lines) replaced."""
    try:
        return render_mosquitto_config(port, data_dir, config, rewrites)
    except ValueError as exc:
        raise AssertionError(str(exc)) from None


@dataclass
class Broker:
    host: str
    port: int
    workdir: Path
    config: Path = CONFIG
    rewrites: dict[str, str] = field(default_factory=dict)
    # Files the broker reads (password file, ACL, certificates): handed to the mosquitto user
    # when the tests run as root, since the broker drops to it before reading them.
    files: tuple[Path, ...] = ()
    # "mosquitto" or "amqtt"; None: ``broker_kind()``, or mosquitto for a broker made from
    # another config or with rewrites.
    kind: str | None = None
    running: RunningBroker | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind is None:
            custom = self.config != CONFIG or bool(self.rewrites) or bool(self.files)
            self.kind = "mosquitto" if custom else broker_kind()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.running.process if self.running is not None else None

    @property
    def persistent(self) -> bool:
        """Whether sessions and queued messages survive a restart (Mosquitto's snapshots)."""
        return self.kind == "mosquitto"

    def require_mosquitto(self, why: str) -> None:
        """Skip the calling test unless this broker is Mosquitto."""
        if self.kind != "mosquitto":
            pytest.skip(f"needs Mosquitto ({why}): {AMQTT_LACKS}")

    def start(self) -> None:
        if self.kind == "mosquitto":
            if mosquitto_binary() is None:
                pytest.skip("needs Mosquitto: not installed (no mosquitto on PATH or in /usr/sbin)")
            self.running = start_mosquitto(
                self.workdir, self.port, self.config, self.rewrites, self.files
            )
        else:
            self.running = start_amqtt(self.workdir, self.port)

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()

    def kill(self) -> None:
        """SIGKILL: a broker crash."""
        if self.running is not None:
            self.running.kill()
