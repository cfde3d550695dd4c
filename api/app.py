"""The alerts API and the acknowledge pages, as one ASGI app.

``create_app(settings)`` wires the routers, the error shape and the static files; the
lifespan holds the connection pool. OpenAPI at ``/openapi.json``, browsable at ``/docs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import ack, alerts, devices, health
from api.db import AppState, make_pool
from api.errors import install_error_handlers
from api.metrics import install_metrics
from notify.links import LinkSecretMissing
from placewatch.settings import Settings

DESCRIPTION = """\
Alerts and devices of one team, limited by the team's routes (the same routes its webhooks
follow). Authenticate with a team's API key: `Authorization: Bearer pw_...` or `X-API-Key`.
Every read or change of care data (anything about a resident) is recorded in the access audit.
"""


def _version() -> str:
    try:
        return version("placewatch")
    except PackageNotFoundError:  # running from a checkout that is not installed
        return "0+unknown"


def create_app(settings: Settings) -> FastAPI:
    if settings.link_secret is None:
        # Without it no acknowledge link can be checked: refuse to start rather than serve
        # pages that all fail.
        raise LinkSecretMissing()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = make_pool(settings)
        # Do not wait for the database: the app starts, /readyz says 503 until it is there.
        await pool.open(wait=False)
        app.state.placewatch = AppState(settings, pool)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="placewatch alerts API",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_metrics(app)
    app.include_router(alerts.router)
    app.include_router(devices.router)
    app.include_router(health.router)
    app.include_router(ack.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    return app
