"""The compose broker's authentication and ACL against a real Mosquitto.

The broker runs broker/compose/mosquitto.conf itself, with only the listener, the persistence
directory and the two auth file paths rewritten, and the auth files are written by the compose
one-shot's own script (broker/compose/make-passwd.sh), as in the stack.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.deploy.support import COMPOSE_MOSQUITTO_CONF, MAKE_PASSWD, env_example
from tests.support.broker import free_port, wait_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
NOT_AUTHORIZED = 0x87
TIMEOUT = 10.0

pytestmark = pytest.mark.skipif(
    not (Path(MOSQUITTO).exists() and shutil.which("mosquitto_passwd")),
    reason="needs mosquitto and mosquitto_passwd",
)


@dataclass
class AuthBroker:
    port: int
    passwords: dict[str, str]


def _render(port: int, workdir: Path) -> str:
    text = COMPOSE_MOSQUITTO_CONF.read_text(encoding="utf-8")
    for line, new in (
        ("listener 1883", f"listener {port} 127.0.0.1"),
        ("persistence_location /mosquitto/data/", f"persistence_location {workdir}/data/"),
        ("password_file /mosquitto/auth/passwd", f"password_file {workdir}/auth/passwd"),
        ("acl_file /mosquitto/auth/acl", f"acl_file {workdir}/auth/acl"),
    ):
        assert line in text.splitlines(), f"{COMPOSE_MOSQUITTO_CONF} has no line {line!r}"
        text = text.replace(line, new)
    return text


@pytest.fixture(scope="module")
def broker() -> Iterator[AuthBroker]:
    workdir = Path(tempfile.mkdtemp(prefix="pw-mosquitto-auth-"))
    (workdir / "data").mkdir()
    secrets = env_example()
    env = {
        **os.environ,
        "MOSQUITTO_AUTH_DIR": str(workdir / "auth"),
        "MQTT_INGEST_PASSWORD": secrets["MQTT_INGEST_PASSWORD"],
        "MQTT_SIMULATOR_PASSWORD": secrets["MQTT_SIMULATOR_PASSWORD"],
    }
    made = subprocess.run(["sh", str(MAKE_PASSWD)], env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    for name in ("passwd", "acl"):
        mode = (workdir / "auth" / name).stat().st_mode & 0o777
        assert mode == 0o700, f"{name} has mode {mode:o}"
    if os.geteuid() == 0:
        # Started as root, mosquitto drops to its own user (make-passwd.sh already gave it the
        # auth files); it must reach them and write its snapshots.
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam("mosquitto")
            for path in (workdir, workdir / "data"):
                os.chown(path, user.pw_uid, user.pw_gid)
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(_render(port, workdir), encoding="utf-8")
    with (workdir / "mosquitto.log").open("ab") as log:
        process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_port("127.0.0.1", port)
        passwords = {
            "placewatch-ingest": secrets["MQTT_INGEST_PASSWORD"],
            "placewatch-simulator": secrets["MQTT_SIMULATOR_PASSWORD"],
            "placewatch-health": (workdir / "auth" / "health").read_text().strip(),
        }
        yield AuthBroker(port, passwords)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


class Client:
    """A paho MQTT 5 client that records what the broker answered."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.port = port
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack: ReasonCode | None = None
        self._connected = threading.Event()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._pubacks: dict[int, ReasonCode] = {}
        self._acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self.connack is None:
            self.connack = reason
        self._connected.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self.messages.put((msg.topic, bytes(msg.payload)))

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._acked:
            self._subacks[mid] = reasons
            self._acked.notify_all()

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._acked:
            self._pubacks[mid] = reason
            self._acked.notify_all()

    def connect(self) -> ReasonCode:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(TIMEOUT), "no CONNACK"
        assert self.connack is not None
        return self.connack

    def subscribe(self, topic: str) -> list[ReasonCode]:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self._subacks, TIMEOUT), "no SUBACK"
            return self._subacks[mid]

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1)
        with self._acked:
            assert self._acked.wait_for(lambda: info.mid in self._pubacks, TIMEOUT), "no PUBACK"
            return self._pubacks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def connect(broker: AuthBroker) -> Iterator[Any]:
    clients: list[Client] = []

    def make(user: str | None, password: str | None = None) -> Client:
        if user is not None and password is None:
            password = broker.passwords[user]
        client = Client(broker.port, user, password)
        clients.append(client)
        reason = client.connect()
        assert not reason.is_failure, f"{user} could not log in: {reason}"
        return client

    yield make
    for client in clients:
        client.close()


def _refused(broker: AuthBroker, user: str | None, password: str | None) -> ReasonCode:
    client = Client(broker.port, user, password)
    try:
        return client.connect()
    finally:
        client.close()


def _received(client: Client, timeout: float = TIMEOUT) -> tuple[str, bytes]:
    try:
        return client.messages.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError("nothing delivered") from None


def _nothing_more(client: Client) -> None:
    # Mosquitto sends a message to all its subscribers while handling the publish: once another
    # subscriber has it, a short wait is enough to tell that this one did not get it.
    time.sleep(0.3)
    assert client.messages.empty(), client.messages.get()


def test_anonymous_and_wrong_passwords_are_refused(broker: AuthBroker) -> None:
    assert _refused(broker, None, None).is_failure
    assert _refused(broker, "placewatch-ingest", "not-the-password").is_failure
    assert _refused(broker, "nobody", broker.passwords["placewatch-ingest"]).is_failure


@pytest.mark.parametrize(
    "topic",
    [
        "placewatch/borough/bin_fill/x",
        "placewatch/borough/senml",
        "v3/borough-streets@borough/devices/bin-0001/up",
        "application/6f1d2c3a/device/0011223344556677/event/up",
    ],
)
def test_simulator_publishes_and_ingest_receives(connect: Any, topic: str) -> None:
    ingest = connect("placewatch-ingest")
    for sub in ("placewatch/#", "v3/+/devices/+/up", "application/+/device/+/event/up"):
        assert not any(r.is_failure for r in ingest.subscribe(sub)), sub
    simulator = connect("placewatch-simulator")
    assert not simulator.publish(topic, b'{"fill_pct": 42}').is_failure
    assert _received(ingest) == (topic, b'{"fill_pct": 42}')


def test_ingest_replicas_may_share_a_subscription(connect: Any) -> None:
    ingest = connect("placewatch-ingest")
    (reason,) = ingest.subscribe("$share/placewatch-ingest/placewatch/#")
    assert not reason.is_failure
    simulator = connect("placewatch-simulator")
    simulator.publish("placewatch/borough/bin_fill/y", b"shared")
    assert _received(ingest) == ("placewatch/borough/bin_fill/y", b"shared")


def test_ingest_cannot_publish(connect: Any) -> None:
    listener = connect("placewatch-ingest")
    listener.subscribe("placewatch/#")
    ingest = connect("placewatch-ingest")
    denied = ingest.publish("placewatch/borough/bin_fill/x", b"from ingest")
    assert denied.value == NOT_AUTHORIZED, denied
    # The broker has handled the denied publish (its PUBACK came back): a message published
    # after it by the simulator is the first, and only, one the listener gets.
    connect("placewatch-simulator").publish("placewatch/borough/bin_fill/x", b"barrier")
    assert _received(listener) == ("placewatch/borough/bin_fill/x", b"barrier")
    _nothing_more(listener)


def test_simulator_cannot_read(connect: Any) -> None:
    simulator = connect("placewatch-simulator")
    # Mosquitto 2.0 may grant the subscription itself; read access is checked per message.
    simulator.subscribe("placewatch/#")
    listener = connect("placewatch-ingest")
    listener.subscribe("placewatch/#")
    simulator.publish("placewatch/borough/bin_fill/z", b"not for the simulator")
    assert _received(listener) == ("placewatch/borough/bin_fill/z", b"not for the simulator")
    _nothing_more(simulator)


def test_only_the_health_user_reads_the_uptime(connect: Any) -> None:
    health = connect("placewatch-health")
    assert not health.subscribe("$SYS/broker/uptime")[0].is_failure
    topic, _ = _received(health)  # retained: at once
    assert topic == "$SYS/broker/uptime"
    health.subscribe("placewatch/#")
    ingest = connect("placewatch-ingest")
    ingest.subscribe("$SYS/broker/uptime")
    ingest.subscribe("placewatch/#")
    connect("placewatch-simulator").publish("placewatch/borough/bin_fill/h", b"x")
    # The retained uptime would have come first; ingest gets only the reading.
    assert _received(ingest) == ("placewatch/borough/bin_fill/h", b"x")
    _nothing_more(ingest)
    _nothing_more(health)


def test_healthcheck_command_works(broker: AuthBroker) -> None:
    """The compose healthcheck's mosquitto_sub call, against this broker."""
    sub = shutil.which("mosquitto_sub")
    if sub is None:
        pytest.skip("no mosquitto_sub")
    args = ["-h", "127.0.0.1", "-p", str(broker.port), "-u", "placewatch-health"]
    args += ["-P", broker.passwords["placewatch-health"], "-t", "$SYS/broker/uptime"]
    ok = subprocess.run([sub, *args, "-C", "1", "-W", "3"], capture_output=True, timeout=10)
    assert ok.returncode == 0, ok.stderr
    args[args.index("-P") + 1] = "wrong"
    bad = subprocess.run([sub, *args, "-C", "1", "-W", "3"], capture_output=True, timeout=10)
    assert bad.returncode != 0
