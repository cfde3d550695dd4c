"""Brokers for the security tests: the shipped compose config with generated credentials."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from placewatch.brokeracl import AclOptions, DeviceRow, accounts, generate, write_files
from tests.deploy.support import COMPOSE_MOSQUITTO_CONF
from tests.support.broker import Broker, free_port

PREFIX = "pwsec"
DEVICE_A = DeviceRow("camden", "bin-a", "bin_fill")
DEVICE_B = DeviceRow("camden", "bin-b", "bin_fill")


@dataclass
class SecureBroker:
    broker: Broker
    passwords: dict[str, str]  # user → plain password, from this run's credentials


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[SecureBroker]:
    """broker/compose/mosquitto.conf (anonymous refused) with `placewatch broker acl` files."""
    if not shutil.which("mosquitto") and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto not installed")
    workdir = Path(tempfile.mkdtemp(prefix="pw-mosquitto-acl-"))
    auth = workdir / "auth"
    gen = generate(
        accounts([DEVICE_A, DEVICE_B], AclOptions(prefix=PREFIX, health=True)),
        {},
        generated_at="test",
    )
    written = write_files(auth, gen, PREFIX, stamp="test")
    broker = Broker(
        "127.0.0.1",
        free_port(),
        workdir,
        config=COMPOSE_MOSQUITTO_CONF,
        rewrites={
            "password_file /mosquitto/auth/passwd": f"password_file {written.passwd}",
            "acl_file /mosquitto/auth/acl": f"acl_file {written.acl}",
        },
        files=(auth, written.passwd, written.acl),
    )
    broker.start()
    try:
        yield SecureBroker(broker, {c.account.username: c.password for c in gen.new})
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
