"""ingest's consumer over TLS to a real Mosquitto TLS listener, with a throwaway CA made by the
``openssl`` command: it connects and receives with the right CA, and refuses (no connection, a
clear error in the log) a broker it cannot verify."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ingest.mqtt import MqttConsumer, MqttOptions, client_ssl_context
from tests.support.broker import Broker, free_port

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def make_server_cert(d: Path, ca: str) -> None:
    make_leaf(d, ca, "server", "localhost", "serverAuth", "DNS:localhost,IP:127.0.0.1")


def make_leaf(d: Path, ca: str, name: str, cn: str, usage: str, san: str | None = None) -> None:
    """``{name}.crt`` and ``{name}.key``, signed by ``ca``, for a server or a client."""
    (d / f"{name}.ext").write_text(
        (f"subjectAltName={san}\n" if san else "") + "basicConstraints=CA:FALSE\n"
        f"keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
        cwd=d,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


@dataclass
class TlsBroker:
    broker: Broker
    certs: Path


def start_tls_broker(mutual: bool) -> TlsBroker:
    """broker/mosquitto.conf with its listener made a TLS listener (as broker/README.md shows);
    ``mutual``: clients must present a certificate from the same CA."""
    workdir = Path(tempfile.mkdtemp(prefix="pw-mosquitto-tls-"))
    certs = workdir / "certs"
    certs.mkdir()
    make_ca(certs, "ca")
    make_ca(certs, "other-ca")
    make_server_cert(certs, "ca")
    make_leaf(certs, "ca", "client", "placewatch-ingest", "clientAuth")
    make_leaf(certs, "other-ca", "stranger", "placewatch-ingest", "clientAuth")
    port = free_port()
    listener = f"listener {port} 127.0.0.1"
    mtls = f"\ncafile {certs}/ca.crt\nrequire_certificate true" if mutual else ""
    broker = Broker(
        "127.0.0.1",
        port,
        workdir,
        rewrites={
            listener: f"{listener}\ncertfile {certs}/server.crt\nkeyfile {certs}/server.key\n"
            f"tls_version tlsv1.2{mtls}"
        },
        files=(certs, certs / "server.crt", certs / "server.key", certs / "ca.crt"),
    )
    broker.start()
    return TlsBroker(broker, certs)


@pytest.fixture(scope="module")
def tls_broker() -> Iterator[TlsBroker]:
    b = start_tls_broker(mutual=False)
    try:
        yield b
    finally:
        b.broker.stop()
        shutil.rmtree(b.broker.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def mtls_broker() -> Iterator[TlsBroker]:
    b = start_tls_broker(mutual=True)
    try:
        yield b
    finally:
        b.broker.stop()
        shutil.rmtree(b.broker.workdir, ignore_errors=True)


def consumer(b: Broker, tls: ssl.SSLContext | None, prefix: str) -> MqttConsumer:
    c = MqttConsumer(
        MqttOptions(
            b.host,
            b.port,
            f"pwtest-tls-{uuid.uuid4().hex[:8]}",
            (f"{prefix}/#",),
            session_expiry_s=0,
            receive_maximum=100,
            tls=tls,
        ),
        asyncio.get_running_loop(),
    )
    c.start()
    return c


def publish_tls(b: Broker, ca: Path, topic: str, payload: bytes, cert: Path | None = None) -> None:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.tls_set(
        ca_certs=str(ca),
        certfile=str(cert) if cert else None,
        keyfile=str(cert.with_suffix(".key")) if cert else None,
    )
    client.connect(b.host, b.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_consumer_receives_over_tls_with_the_ca(tls_broker: TlsBroker) -> None:
    b, prefix = tls_broker.broker, f"pwtls/{uuid.uuid4().hex[:8]}"
    c = consumer(b, client_ssl_context(str(tls_broker.certs / "ca.crt")), prefix)
    try:
        await asyncio.wait_for(c.subscribed.wait(), 10)
        await asyncio.to_thread(publish_tls, b, tls_broker.certs / "ca.crt", f"{prefix}/x", b"hi")
        async with asyncio.timeout(10):
            await c.wait_for_messages()
        [m] = c.take(10)
        assert (m.topic, m.payload) == (f"{prefix}/x", b"hi")
        c.ack([m])
    finally:
        await c.stop()


@pytest.mark.parametrize("ca", [None, "other-ca.crt"], ids=["system-cas", "wrong-ca"])
async def test_consumer_refuses_an_unverified_broker(
    tls_broker: TlsBroker, ca: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ingest.mqtt")
    ctx = client_ssl_context(str(tls_broker.certs / ca) if ca else None)
    c = consumer(tls_broker.broker, ctx, "pwtls/never")
    try:
        for _ in range(200):  # the first attempt is immediate; allow 10 s
            if any("TLS with the broker" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
        assert not c.connected and not c.subscribed.is_set()
        [line] = [r for r in caplog.records if "TLS with the broker" in r.getMessage()]
        assert line.levelno == logging.ERROR
        assert "certificate verify failed" in line.getMessage()
        assert "PLACEWATCH_MQTT_TLS_CA_FILE" in line.getMessage()
    finally:
        await c.stop()


async def test_plain_client_gets_nothing_from_the_tls_listener(tls_broker: TlsBroker) -> None:
    c = consumer(tls_broker.broker, None, "pwtls/never")
    try:
        await asyncio.sleep(1.5)
        assert not c.connected
    finally:
        await c.stop()


async def test_mutual_tls_the_client_certificate_is_required(mtls_broker: TlsBroker) -> None:
    """With ``require_certificate true`` ingest connects with a certificate from the broker's
    CA (PLACEWATCH_MQTT_TLS_CERT_FILE/KEY_FILE) and receives; without one, or with one from
    another CA, the broker ends the handshake and nothing is received."""
    b, certs = mtls_broker.broker, mtls_broker.certs
    prefix = f"pwmtls/{uuid.uuid4().hex[:8]}"
    ca = str(certs / "ca.crt")
    good = consumer(
        b, client_ssl_context(ca, str(certs / "client.crt"), str(certs / "client.key")), prefix
    )
    refused = [
        consumer(b, client_ssl_context(ca), prefix),
        consumer(
            b,
            client_ssl_context(ca, str(certs / "stranger.crt"), str(certs / "stranger.key")),
            prefix,
        ),
    ]
    try:
        await asyncio.wait_for(good.subscribed.wait(), 10)
        await asyncio.to_thread(
            publish_tls, b, certs / "ca.crt", f"{prefix}/x", b"hi", certs / "client.crt"
        )
        async with asyncio.timeout(10):
            await good.wait_for_messages()
        [m] = good.take(10)
        assert (m.topic, m.payload) == (f"{prefix}/x", b"hi")
        good.ack([m])
        await asyncio.sleep(1.0)
        assert not any(c.connected or c.subscribed.is_set() for c in refused)
    finally:
        for c in (good, *refused):
            await c.stop()
