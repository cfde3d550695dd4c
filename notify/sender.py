"""One HTTP attempt of one delivery: sign, POST, classify the outcome. Never raises.

Each endpoint has its own ``httpx.AsyncClient`` whose connection pool is the endpoint's
concurrency, so a receiver that hangs uses up its own connections and nobody else's. Redirects
are not followed: a receiver that moved is configured again, not chased.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx

from notify.policy import retry_after
from notify.signing import signature_headers
from notify.store import Attempt, Delivery, Endpoint

USER_AGENT = "placewatch-webhooks/1"


def client_for(endpoint: Endpoint, timeout_s: float) -> httpx.AsyncClient:
    n = endpoint.max_concurrency
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
        follow_redirects=False,
        headers={"user-agent": USER_AGENT, "content-type": "application/json"},
    )


async def send(
    client: httpx.AsyncClient, endpoint: Endpoint, delivery: Delivery, timeout_s: float
) -> Attempt:
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    # The timestamp is the attempt's (receivers reject stale ones); the id is the delivery's.
    headers = signature_headers(
        endpoint.secret, delivery.webhook_id, int(started.timestamp()), delivery.body
    )
    try:
        # httpx's timeout bounds each phase; this bounds the whole attempt (a receiver that
        # trickles bytes must not hold the lease for ever).
        response = await asyncio.wait_for(
            client.post(endpoint.url, content=delivery.body.encode(), headers=headers),
            timeout_s,
        )
    except (TimeoutError, httpx.TimeoutException):
        return Attempt(started, time.perf_counter() - t0, None, f"timed out after {timeout_s:g}s")
    except httpx.HTTPError as exc:
        return Attempt(started, time.perf_counter() - t0, None, f"{type(exc).__name__}: {exc}")
    latency = time.perf_counter() - t0
    if 200 <= response.status_code < 300:
        return Attempt(started, latency, response.status_code, None)
    text = response.text[:200].strip()
    return Attempt(
        started,
        latency,
        response.status_code,
        f"HTTP {response.status_code}" + (f": {text}" if text else ""),
        retry_after(response.headers.get("retry-after"), started),
    )
