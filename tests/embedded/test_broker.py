"""The private broker ``placewatch demo`` and the tests start (``placewatch.embedded.broker``):
Mosquitto from the project's config when installed, else the embedded amqtt; and the pipeline
over amqtt (MQTT 3.1.1): stored, acknowledged only after the commit, redelivered after an ingest
crash, queued for an ingest that is away."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from placewatch import mqtt_wire as wire
from placewatch.embedded import broker as embedded
from simulators.basic import ReadingGenerator
from simulators.wire import WirePublisher, broker_protocol
from tests.support.broker import Broker
from tests.support.ingest import IngestProcess
from tests.support.pipeline import Pipeline
from tests.support.traffic import publish_all, wait_until

needs_mosquitto = pytest.mark.skipif(
    embedded.mosquitto_binary() is None, reason="mosquitto not installed"
)


def test_the_default_is_mosquitto_when_installed_else_amqtt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PLACEWATCH_EMBEDDED_BROKER", raising=False)
    expected = "mosquitto" if embedded.mosquitto_binary() else "amqtt"
    assert embedded.chosen_kind() == expected
    monkeypatch.setattr(embedded, "mosquitto_binary", lambda: None)
    assert embedded.chosen_kind() == "amqtt"
    monkeypatch.setenv("PLACEWATCH_EMBEDDED_BROKER", "mosquitto")
    assert embedded.chosen_kind() == "mosquitto"
    assert embedded.chosen_kind("amqtt") == "amqtt"
    with pytest.raises(ValueError, match="broker kind"):
        embedded.chosen_kind("hivemq")


def test_the_config_keeps_the_shipped_settings_and_rewrites_two_lines(tmp_path: Path) -> None:
    text = embedded.render_mosquitto_config(18_999, tmp_path)
    lines = text.splitlines()
    assert "listener 18999 127.0.0.1" in lines
    assert f"persistence_location {tmp_path}/" in lines
    assert "max_queued_messages 2000000" in lines and "upgrade_outgoing_qos true" in lines
    with pytest.raises(ValueError, match="no longer has the line"):
        embedded.render_mosquitto_config(1, tmp_path, rewrites={"no such line": "x"})


@needs_mosquitto
def test_mosquitto_speaks_mqtt_5_and_persists_in_the_workdir(tmp_path: Path) -> None:
    running = embedded.start_broker(tmp_path, kind="mosquitto")
    try:
        assert running.kind == "mosquitto" and running.host == "127.0.0.1"
        assert broker_protocol(running.host, running.port) == wire.MQTT_5
    finally:
        running.stop()
    assert not running.alive()
    assert (tmp_path / "data" / "mosquitto.db").exists()  # the snapshot written on SIGTERM


def test_amqtt_speaks_3_1_1_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = embedded.free_port()
    running = embedded.start_broker(tmp_path, port=port, kind="amqtt")
    try:
        assert (running.kind, running.port) == ("amqtt", port)
        assert broker_protocol(running.host, running.port) == wire.MQTT_311
    finally:
        running.stop()
    assert running.process is not None and running.process.returncode == 0
    assert "listening on 127.0.0.1" in (tmp_path / "amqtt.log").read_text()


def test_a_broker_that_cannot_start_says_why(tmp_path: Path) -> None:
    taken = embedded.start_broker(tmp_path / "a", kind="amqtt")
    try:
        with pytest.raises(embedded.BrokerStartError, match="cannot listen on"):
            embedded.start_amqtt(tmp_path / "b", port=taken.port)
        # amqtt refusing to start (here: a bad argument) is reported with its log.
        with pytest.raises(embedded.BrokerStartError, match="exited with status 2"):
            embedded._wait_listening(
                "127.0.0.1",
                embedded.free_port(),
                subprocess.Popen(
                    [sys.executable, "-m", "placewatch.embedded._amqtt_broker"],
                    stderr=(tmp_path / "bad.log").open("wb"),
                ),
                tmp_path / "bad.log",
            )
    finally:
        taken.stop()


# -- the pipeline over amqtt --------------------------------------------------------------------


@pytest.fixture(scope="module")
def amqtt_broker() -> Iterator[Broker]:
    b = Broker("127.0.0.1", embedded.free_port(), Path(tempfile.mkdtemp(prefix="pw-amqtt-")))
    b.kind = "amqtt"
    b.start()
    yield b
    b.stop()


@pytest.fixture
def amqtt_pipe(
    amqtt_broker: Broker,
    database_url: str,
    conn: psycopg.Connection[Any],
    tmp_path: Path,
) -> Iterator[Pipeline]:
    tag = uuid.uuid4().hex[:10]
    council, prefix = f"c{tag}", f"pwtest/{tag}"
    started: list[IngestProcess] = []

    def make(**env: str) -> IngestProcess:
        proc = IngestProcess(
            database_url=database_url,
            mqtt_port=amqtt_broker.port,
            prefix=prefix,
            client_id=f"ingest-{council}-{len(started)}",
            logdir=tmp_path,
            extra_env={f"PLACEWATCH_{k.upper()}": v for k, v in env.items()},
        )
        started.append(proc)
        return proc

    yield Pipeline(council, prefix, amqtt_broker, database_url, conn, make)
    for proc in started:
        if proc.alive():
            proc.kill()


def test_amqtt_readings_are_stored_from_both_publishers(amqtt_pipe: Pipeline) -> None:
    """paho (``simulators.basic.Publisher``, via the pipeline) and the lean wire publisher both
    find MQTT 3.1.1 by themselves, and ingest stores every reading once."""
    devices = amqtt_pipe.register(per_kind=2)
    ingest = amqtt_pipe.ingest()
    assert "with MQTT 3.1.1" in ingest.log_tail()
    gen = iter(ReadingGenerator(devices, amqtt_pipe.prefix, seed=1))
    assert amqtt_pipe.publish(next(gen) for _ in range(100)) == 100
    pub = WirePublisher(amqtt_pipe.broker.host, amqtt_pipe.broker.port, "pwtest-wire")
    try:
        assert pub.level == wire.MQTT_311
        for _ in range(100):
            pub.publish(*next(gen))
        assert pub.wait_acked(30)
    finally:
        pub.close()
    wait_until(
        lambda: amqtt_pipe.stored() >= 200,
        30,
        f"200 readings ({ingest.metric('placewatch_ingest_received_total')} received)",
    )
    time.sleep(0.5)
    assert amqtt_pipe.stored() == 200
    assert ingest.metric("placewatch_ingest_acked_total") == 200


def test_amqtt_acknowledges_only_after_commit_and_redelivers_after_a_crash(
    amqtt_pipe: Pipeline,
) -> None:
    """Ingest holds a batch uncommitted (a long linger), is SIGKILLed holding it, and the broker
    sends the whole batch again to the restarted ingest: nothing was acknowledged before the
    commit, and amqtt kept the unacknowledged messages (placewatch.embedded._amqtt_broker)."""
    devices = amqtt_pipe.register(per_kind=2)
    ingest = amqtt_pipe.ingest(ingest_batch_linger_ms="5000", ingest_batch_max="100000")
    gen = iter(ReadingGenerator(devices, amqtt_pipe.prefix, seed=2))
    amqtt_pipe.publish(next(gen) for _ in range(150))
    wait_until(lambda: ingest.metric("placewatch_ingest_pending_messages") == 150, 10, "150 held")
    assert amqtt_pipe.stored() == 0 and ingest.metric("placewatch_ingest_acked_total") == 0
    ingest.kill()
    ingest.extra_env.pop("PLACEWATCH_INGEST_BATCH_LINGER_MS")
    ingest.start()
    wait_until(lambda: amqtt_pipe.stored() >= 150, 30, "150 readings after the crash")
    time.sleep(0.5)
    assert amqtt_pipe.stored() == 150


def test_amqtt_queues_for_an_ingest_that_is_away(amqtt_pipe: Pipeline) -> None:
    """The persistent session: readings published while ingest is stopped arrive when it is
    back (amqtt queues only for sessions that are not anonymous: see _amqtt_broker)."""
    devices = amqtt_pipe.register(per_kind=2)
    ingest = amqtt_pipe.ingest()
    assert ingest.terminate() == 0
    gen = iter(ReadingGenerator(devices, amqtt_pipe.prefix, seed=3))
    amqtt_pipe.publish(next(gen) for _ in range(80))
    ingest.start()
    wait_until(lambda: amqtt_pipe.stored() >= 80, 30, "80 readings queued while away")
    time.sleep(0.5)
    assert amqtt_pipe.stored() == 80


def test_amqtt_forgets_everything_when_it_restarts(amqtt_pipe: Pipeline, tmp_path: Path) -> None:
    """Documented, not wanted: amqtt keeps sessions in memory, so a broker restart loses the
    queue of an ingest that is away (Mosquitto's snapshots keep it: broker/README.md)."""
    own = Broker("127.0.0.1", embedded.free_port(), tmp_path / "own", kind="amqtt")
    own.start()
    ingest = IngestProcess(
        database_url=amqtt_pipe.database_url,
        mqtt_port=own.port,
        prefix=amqtt_pipe.prefix,
        client_id=f"ingest-restart-{uuid.uuid4().hex[:6]}",
        logdir=tmp_path,
    )
    devices = amqtt_pipe.register(per_kind=1)
    try:
        ingest.start()
        assert ingest.terminate() == 0
        gen = iter(ReadingGenerator(devices, amqtt_pipe.prefix, seed=4))
        assert publish_all(own, (next(gen) for _ in range(20))) == 20
        own.stop()
        own.start()
        ingest.start()
        time.sleep(3)
        assert amqtt_pipe.stored() == 0
    finally:
        if ingest.alive():
            ingest.kill()
        own.stop()
