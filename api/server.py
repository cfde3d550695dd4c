"""``placewatch api``: serve the app with uvicorn. SIGTERM and SIGINT stop it cleanly: uvicorn
finishes the requests in flight, the lifespan closes the pool, and the process exits 0 like
every other placewatch service."""

from __future__ import annotations

import logging
import re
import signal
import sys
from types import FrameType

import uvicorn

from api.app import create_app
from notify.links import LinkSecretMissing
from placewatch.settings import Settings

_TOKEN = re.compile(r"(/ack/)[^/?\s]+")


class _RedactAckTokens(logging.Filter):
    """Access logs must not keep acknowledge tokens: each is a credential until it expires."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN.sub(r"\1…", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def _stopped(signum: int, frame: FrameType | None) -> None:
    # uvicorn handles the signal (graceful shutdown), then restores the previous handler and
    # raises the signal again; this handler turns that into a normal exit instead of a death
    # by signal (and a KeyboardInterrupt traceback for SIGINT).
    raise SystemExit(0)


def run(settings: Settings) -> None:
    try:
        app = create_app(settings)
    except LinkSecretMissing as exc:
        print(f"placewatch api: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    logging.getLogger("uvicorn.access").addFilter(_RedactAckTokens())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        # Logging is placewatch's own (setup_logging): uvicorn's records go through it.
        log_config=None,
        log_level=settings.log_level.lower(),
        server_header=False,
        timeout_graceful_shutdown=10,
    )
