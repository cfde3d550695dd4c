"""Webhook receivers for ``bench.alert_latency``, run inside the benchmark process.

* :class:`TimingReceiver` answers every POST at once (204) after checking its Standard Webhooks
  signature with the scheme's own library (``standardwebhooks``), and records per webhook-id
  when it arrived (``time.time()`` once the body is read) and what it was (type, alert id,
  sequence). A repeated webhook-id is counted as a duplicate; the first arrival is kept.
* :class:`HangingReceiver` accepts TCP connections and reads nothing, answers nothing: the
  worst endpoint a team can have. (The same idea as the delivery tests' receiver, kept here so
  that the benchmark does not depend on the test suite.)
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PATH = "/hooks"


@dataclass(frozen=True)
class Received:
    webhook_id: str
    received_at: float  # time.time() once the request body was read
    type: str
    alert_id: int
    sequence: int


class TimingReceiver:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port) serving from a daemon thread."""

    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.lock = threading.Lock()
        self.first: dict[str, Received] = {}
        self.duplicates: dict[str, int] = {}  # webhook-id -> further arrivals
        self.requests = 0
        self.verify_failures = 0
        self.failure_examples: list[str] = []
        self.bad_requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as a production receiver would: the dispatcher's client reuses its
            # connections (one per concurrency slot).
            protocol_version = "HTTP/1.1"
            timeout = 60

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                at = time.time()
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver.handle(body, headers, at, self.path)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def start(self) -> None:
        self._thread.start()

    def handle(self, body: bytes, headers: dict[str, str], at: float, path: str) -> int:
        try:
            event = self.webhook.verify(body, headers)
        except WebhookVerificationError as exc:
            with self.lock:
                self.requests += 1
                self.verify_failures += 1
                if len(self.failure_examples) < 5:
                    self.failure_examples.append(f"{headers.get('webhook-id')}: {exc}")
            return 401
        webhook_id = headers["webhook-id"]
        try:
            got = Received(
                webhook_id,
                at,
                str(event["type"]),
                int(event["alert"]["id"]),
                int(event["sequence"]),
            )
        except (KeyError, TypeError, ValueError):
            with self.lock:
                self.requests += 1
                self.bad_requests += 1
            return 400
        with self.lock:
            self.requests += 1
            if path != PATH:
                self.bad_requests += 1
            if webhook_id in self.first:
                self.duplicates[webhook_id] = self.duplicates.get(webhook_id, 0) + 1
            else:
                self.first[webhook_id] = got
        return 204

    def received(self) -> dict[str, Received]:
        with self.lock:
            return dict(self.first)

    def count(self) -> int:
        with self.lock:
            return len(self.first)

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "distinct_webhook_ids": len(self.first),
                "duplicate_requests": sum(self.duplicates.values()),
                "webhook_ids_received_more_than_once": len(self.duplicates),
                "signature_failures": self.verify_failures,
                "signature_failure_examples": list(self.failure_examples),
                "bad_requests": self.bad_requests,
            }

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(5)
        self.server.server_close()


class HangingReceiver:
    """Accepts connections and never answers; holds them open until :meth:`close`."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)  # never read, never answered, closed only by close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._held.clear()
        self.sock.close()
