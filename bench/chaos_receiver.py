"""The fault suite's webhook receiver: verifies every request's Standard Webhooks signature
(``standardwebhooks``), answers 204, and records every arrival (webhook-id, event type, alert id,
sequence, time), repeated webhook-ids included. It can be taken down (listening socket closed:
connections are refused, as for a receiver that is off) and brought back on the same port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PATH = "/hooks"


@dataclass(frozen=True)
class Arrival:
    webhook_id: str
    type: str
    alert_id: int
    sequence: int
    at: float


class ChaosReceiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.webhook = Webhook(secret)
        self.lock = threading.Lock()
        self.arrivals: list[Arrival] = []
        self.signature_failures = 0
        self.bad_requests = 0
        self.cut_requests = 0
        self.truncated_requests = 0
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        # Open client connections: the dispatcher keeps its connections alive, so going down
        # closes them too (a receiver that is off answers nothing, even on an old connection).
        self.connections: set[socket.socket] = set()
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def setup(self) -> None:
                super().setup()
                with receiver.lock:
                    receiver.connections.add(self.connection)

            def finish(self) -> None:
                with receiver.lock:
                    receiver.connections.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender went away mid-request (e.g. the dispatcher SIGKILLed): nothing
                    # to verify or answer; it was not acknowledged, so it is sent again.
                    with receiver.lock:
                        receiver.truncated_requests += 1
                    self.close_connection = True
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver.handle(body, headers, self.path)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A connection cut by down() mid-request: the dispatcher sees the failure.
                with receiver.lock:
                    receiver.cut_requests += 1

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self.thread.start()

    def down(self) -> None:
        """Stop listening: new connections are refused."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            if self.thread is not None:
                self.thread.join(5)
        with self.lock:
            open_connections = list(self.connections)
            self.connections.clear()
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.server = None
        self.thread = None

    @property
    def is_up(self) -> bool:
        return self.server is not None

    def handle(self, body: bytes, headers: dict[str, str], path: str) -> int:
        try:
            event = self.webhook.verify(body, headers)
            got = Arrival(
                headers["webhook-id"],
                str(event["type"]),
                int(event["alert"]["id"]),
                int(event["sequence"]),
                time.time(),
            )
        except WebhookVerificationError:
            with self.lock:
                self.signature_failures += 1
            return 401
        except (KeyError, TypeError, ValueError):
            with self.lock:
                self.bad_requests += 1
            return 400
        with self.lock:
            if path != PATH:
                self.bad_requests += 1
            self.arrivals.append(got)
        return 204

    def snapshot(self) -> list[Arrival]:
        with self.lock:
            return list(self.arrivals)
