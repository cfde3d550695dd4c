"""One JSON shape for every error (``Problem``), and the OpenAPI entries that declare them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException

from api.schemas import Problem, ValidationProblem

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


def not_found(what: str) -> ApiError:
    # The same answer whether it does not exist or the team may not see it: never 403, which
    # would confirm that someone else's alert exists.
    return ApiError(404, "not_found", f"no {what} visible to this team")


def problem_response(
    status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = Problem(error=error, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _doc(description: str, model: type[Problem] = Problem) -> dict[str, Any]:
    return {"model": model, "description": description}


Responses = dict[int | str, dict[str, Any]]

AUTH_RESPONSES: Responses = {
    401: _doc("Missing, invalid, revoked or expired API key"),
    403: _doc("The key lacks the scope this operation needs"),
    422: _doc("Invalid parameters or body; `problems` names each field", ValidationProblem),
    503: _doc("The database is unreachable"),
}
NOT_FOUND: Responses = {404: _doc("Not found, or not visible to this team")}
CONFLICT: Responses = {
    409: _doc("The alert is not in a state that allows this (the detail says which)")
}


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return problem_response(exc.status, exc.error, exc.detail, exc.headers)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's own errors (unknown path, wrong method) in the same shape as ours.
        assert isinstance(exc, HTTPException)
        code = exc.detail.lower().replace(" ", "_") if isinstance(exc.detail, str) else "error"
        return problem_response(exc.status_code, code, str(exc.detail), exc.headers)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {
                "location": ".".join(str(p) for p in err.get("loc", ())),
                "message": str(err.get("msg", "invalid")),
            }
            for err in exc.errors()
        ]
        detail = "; ".join(f"{p['location']}: {p['message']}" for p in problems)
        body = ValidationProblem.model_validate(
            {"error": "invalid_request", "detail": detail, "problems": problems}
        )
        return JSONResponse(body.model_dump(), status_code=422)

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable for %s: %s", request.url.path, exc)
        return problem_response(503, "unavailable", "the database is unreachable; try again")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(PoolTimeout, database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, database_unavailable)
