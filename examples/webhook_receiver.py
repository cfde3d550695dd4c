"""A reference receiver for placewatch alert webhooks: verify, de-duplicate, hand on.

Run it beside placewatch (needs ``pip install standardwebhooks``):

    WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py --port 8900 --log events.jsonl

It checks each request the way any receiver should:
1. the Standard Webhooks signature and timestamp (the scheme's own library does it, and refuses
   a timestamp more than five minutes off, which stops replays);
2. the ``webhook-id``, which stays the same when placewatch retries, so a retry of something
   already handled is answered 200 and not handled twice;
3. the ``sequence`` in the body, which grows with every change of every alert: an event older
   than one already handled for the same alert is stale (say a retried "opened" arriving after
   its "acknowledged") and is not applied over the newer state.

Answer 2xx only once the event is safely handed on (here: appended to the log file). Anything
else, or no answer within 10 s, and placewatch tries again later.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver:
    def __init__(self, secret: str, log: Path | None) -> None:
        self.webhook = Webhook(secret)
        self.log = log
        self.seen: set[str] = set()
        self.latest: dict[int, int] = {}  # alert id -> highest sequence applied
        self.lock = threading.Lock()
        if log and log.exists():  # remember what was handled before a restart
            for line in log.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                self.seen.add(entry["webhook_id"])
                self._note(entry["event"])

    def _note(self, event: dict[str, Any]) -> None:
        alert = event["alert"]["id"]
        self.latest[alert] = max(self.latest.get(alert, 0), event["sequence"])

    def handle(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        try:
            event = self.webhook.verify(body, headers)
        except WebhookVerificationError as exc:
            return 401, f"signature not verified: {exc}"
        webhook_id = headers["webhook-id"]
        with self.lock:
            if webhook_id in self.seen:
                return 200, "duplicate (already handled)"
            stale = event["sequence"] < self.latest.get(event["alert"]["id"], 0)
            entry = {"webhook_id": webhook_id, "stale": stale, "event": event}
            if self.log:
                with self.log.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")
            self.seen.add(webhook_id)
            self._note(event)
        alert = event["alert"]
        print(
            f"{event['type']} alert {alert['id']} [{alert['severity']}] {alert['summary']}"
            + (" (stale, not applied)" if stale else ""),
            flush=True,
        )
        if event["links"].get("acknowledge"):
            print(f"  acknowledge: {event['links']['acknowledge']}", flush=True)
        return 200, "ok"


def serve(receiver: Receiver, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, text = receiver.handle(body, headers)
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--secret-env", default="WEBHOOK_SECRET", help="variable with the secret")
    parser.add_argument("--log", type=Path, default=None, help="append handled events (JSONL)")
    args = parser.parse_args()
    secret = os.environ.get(args.secret_env)
    if not secret:
        print(f"set {args.secret_env} to the endpoint's whsec_ secret", file=sys.stderr)
        return 2
    server = serve(Receiver(secret, args.log), args.host, args.port)
    print(f"receiving on http://{args.host}:{server.server_port}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
