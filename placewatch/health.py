"""``/metrics``, ``/healthz`` and ``/readyz`` for every service, on a small thread server.

prometheus-client already ships a threaded WSGI server for ``/metrics``; the two probes are
added beside it rather than pulling in a web framework for three fixed answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # probes every few seconds
        pass


# A probe returns (ok, reason); reasons are shown in the body so an operator sees why.
Probe = Callable[[], tuple[bool, str]]


class HealthServer:
    def __init__(self, host: str, port: int, ready: Probe, live: Probe | None = None) -> None:
        self._ready = ready
        self._live = live or (lambda: (True, "ok"))
        self._metrics = make_wsgi_app()
        self._server: WSGIServer = make_server(
            host, port, self._app, ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok, reason = (self._live if path == "/healthz" else self._ready)()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [reason.encode() + b"\n"]
        result: Iterable[bytes] = self._metrics(environ, start_response)
        return result
