"""The fault suite, in a tiny configuration: one SIGKILL of ingest, one of the rules worker and one
PostgreSQL crash-restart under load, against a private cluster and a private Mosquitto. The
accounting must show nothing lost: every reading the broker accepted stored once, every alert the
stored readings imply opened once, every webhook event received. Speeds are never asserted."""

from __future__ import annotations

import json
import shutil
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from standardwebhooks.webhooks import Webhook

from bench import chaos
from bench.chaos_receiver import ChaosReceiver
from notify.signing import new_secret
from tests.support.postgres import pg_bindir


@pytest.mark.slow
@pytest.mark.skipif(pg_bindir() is None, reason="no initdb/pg_ctl")
@pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
    reason="no mosquitto",
)
def test_tiny_fault_suite_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    argv = ["--trials", "1", "--only", "ingest,rules,postgres", "--seed", "7"]
    argv += ["--rate", "300", "--gap-min", "2", "--gap-max", "3", "--tail", "2"]
    argv += ["--timeout", "60", "--output", str(out)]

    assert chaos.main(argv) == 0

    result = json.loads(out.read_text())
    assert result["benchmark"] == "chaos" and result["seed"] == 7
    phases = {p["component"]: p for p in result["phases"]}
    assert set(phases) == {"ingest", "rules", "postgres"}
    for name, p in phases.items():
        assert p["problems"] == [], name
        assert p["trials"] == 1
        r, a, w = (p["accounting"][k] for k in ("readings", "alerts", "webhooks"))
        assert r["published"] > 0 and r["accepted_by_broker"] == r["published"], name
        assert r["stored_distinct"] == r["stored_rows"] == r["published"], name
        assert r["lost"] == r["duplicate_rows"] == r["dead_letters"] == 0, name
        assert a["expected"] > 0 and a["opened"] == a["expected"], name
        assert a["missing"] == a["opened_twice"] == a["unexpected"] == 0, name
        assert w["expected_events"] > 0 and w["events_received"] == w["expected_events"], name
        assert w["events_missing"] == w["events_under_several_ids"] == 0, name
        assert w["deliveries_by_state"] == {"delivered": w["expected_events"]}, name
    assert phases["ingest"]["trial_log"][0]["restart_to_ready_s"] is not None
    assert phases["postgres"]["trial_log"][0]["mode"] == "immediate"
    # Everything it started is stopped (services, cluster, broker) and its temp dir gone.
    workdir = result["setup"]["workdir"]
    assert not Path(workdir).exists()
    left = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if workdir in " ".join(p.info["cmdline"] or ())
    ]
    assert left == []


def _response(s: socket.socket) -> bytes:
    """A response's status line and headers (the receiver's responses have no body)."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(1000)
        if not chunk:
            break
        got += chunk
    return got


def test_receiver_tells_a_cut_request_from_a_bad_signature() -> None:
    """A request whose sender dies mid-body (a SIGKILLed dispatcher) is counted as truncated,
    not as a bad signature; a complete body with a wrong signature is a bad signature; a signed
    one is recorded. Going down refuses connections and cuts kept-alive ones."""
    secret = new_secret()
    receiver = ChaosReceiver(secret)
    receiver.up()
    try:
        body = json.dumps({"type": "alert.opened", "alert": {"id": 7}, "sequence": 1}).encode()
        now = datetime.now(UTC)
        headers = Webhook(secret).sign("msg_1", now, body.decode())
        signed = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp()))}
        signed["webhook-signature"] = headers
        with socket.create_connection(("127.0.0.1", receiver.port)) as s:
            head = f"POST /hooks HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n"
            s.sendall(head.encode() + body[:10])  # then the sender dies
        with socket.create_connection(("127.0.0.1", receiver.port)) as s:
            s.sendall(head.replace("msg_1", "msg_2", 1).encode() + body)
            assert _response(s).startswith(b"HTTP/1.1 401")
        with socket.create_connection(("127.0.0.1", receiver.port)) as s:
            s.sendall(head.encode() + body)
            assert _response(s).startswith(b"HTTP/1.1 204")
            receiver.down()
            assert s.recv(100) == b""  # the kept-alive connection is cut
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", receiver.port), timeout=2).close()
    finally:
        receiver.down()
    deadline = time.monotonic() + 5
    while receiver.truncated_requests == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.truncated_requests == 1
    assert receiver.signature_failures == 1
    assert [(a.webhook_id, a.type, a.alert_id) for a in receiver.snapshot()] == [
        ("msg_1", "alert.opened", 7)
    ]
