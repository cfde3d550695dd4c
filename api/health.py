"""Probes, without authentication: ``/healthz`` (the process answers) and ``/readyz`` (it can
reach the database, so a load balancer sends it traffic)."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from api.db import app_state
from api.schemas import Health

router = APIRouter(tags=["health"])

READY_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database is unreachable"}},
    summary="Readiness: the database is reachable",
)
async def readyz(request: Request) -> Health | JSONResponse:
    try:
        async with app_state(request).pool.connection(timeout=READY_TIMEOUT_S) as conn:
            await conn.execute("SELECT 1")
    except (PoolTimeout, psycopg.OperationalError) as exc:
        body = Health(status="unavailable", detail=f"database: {type(exc).__name__}")
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok")
