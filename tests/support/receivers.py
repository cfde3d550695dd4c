"""Webhook receivers for the delivery tests: the project's reference receiver
(``examples/webhook_receiver.py``) as a real subprocess, a slow one, and (shared with the
benchmark) one that hangs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.webhook_receiver import HangingReceiver
from tests.support.broker import free_port, wait_port

__all__ = ["HangingReceiver", "ReferenceReceiver", "SlowReceiver"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"


@dataclass
class ReferenceReceiver:
    """The reference receiver: verifies signatures with the ``standardwebhooks`` library and
    logs each webhook-id it handles once (a retry of a handled one is answered 200, not
    logged)."""

    secret: str
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    @property
    def log(self) -> Path:
        return self.workdir / f"received-{self.port}.jsonl"

    def start(self) -> None:
        out = (self.workdir / f"receiver-{self.port}.out").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--port", str(self.port), "--log", str(self.log)],
            env={**os.environ, "WEBHOOK_SECRET": self.secret},
            stdout=out,
            stderr=out,
        )
        wait_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def events(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


class SlowReceiver:
    """Verifies each request (the scheme's reference library) and answers after ``delay_s``:
    attempts stay in flight long enough for a test to kill the dispatcher under them. Records
    every verified request, duplicates included."""

    def __init__(self, secret: str, delay_s: float) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from standardwebhooks.webhooks import Webhook

        webhook = Webhook(secret)
        self.received: list[str] = []  # webhook-ids, in order of arrival, with repeats
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                webhook.verify(body, headers)  # raises (and the attempt fails) if not signed
                time.sleep(delay_s)
                with lock:
                    received.append(headers["webhook-id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
