"""One HTTP attempt of one delivery: sign, POST, classify the outcome. Never raises.

Each endpoint has its own ``httpx.AsyncClient`` whose connection pool is the endpoint's
concurrency, so a receiver that hangs uses up its own connections and nobody else's. Redirects
are not followed: a receiver that moved is configured again, not chased (and a redirect cannot
send a delivery somewhere the target policy refuses). Connections go only to addresses the
target policy allows (``notify/targets.py``); a refused target is a failed attempt whose error
starts with ``refused:``, and no request is sent.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx

from notify.policy import retry_after
from notify.signing import signature_headers
from notify.store import Attempt, Delivery, Endpoint
from notify.targets import TargetPolicy, TargetRefused, guarded_transport

USER_AGENT = "placewatch-webhooks/1"
_BODY_READ_MAX = 4096


REFUSED = "refused: "


def client_for(endpoint: Endpoint, timeout_s: float, policy: TargetPolicy) -> httpx.AsyncClient:
    n = endpoint.max_concurrency
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        transport=guarded_transport(policy, limits),
        follow_redirects=False,
        headers={"user-agent": USER_AGENT, "content-type": "application/json"},
    )


async def send(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    delivery: Delivery,
    timeout_s: float,
    policy: TargetPolicy,
) -> Attempt:
    started = datetime.now(UTC)
    t0 = time.perf_counter()

    def failed(error: str) -> Attempt:
        return Attempt(started, time.perf_counter() - t0, None, error)

    try:
        # The scheme (and a host written as an address) first; the addresses a name resolves
        # to (localhost too) are checked when connecting (TargetRefused below).
        if refusal := policy.url_refusal(endpoint.url, localhost=False):
            return failed(REFUSED + refusal)
        # The timestamp is the attempt's (receivers reject stale ones); the id is the
        # delivery's. httpx's timeout bounds each phase; wait_for bounds the whole attempt (a
        # receiver that trickles bytes must not hold the lease for ever).
        headers = signature_headers(
            endpoint.secret, delivery.webhook_id, int(started.timestamp()), delivery.body
        )
        status, text, after = await asyncio.wait_for(
            _post(client, endpoint.url, delivery.body, headers), timeout_s
        )
    except TargetRefused as exc:
        return failed(f"{REFUSED}{exc}")
    except (TimeoutError, httpx.TimeoutException):
        return failed(f"timed out after {timeout_s:g}s")
    except httpx.HTTPError as exc:
        return failed(f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        # A URL httpx refuses, a secret that is not base64...: a failed attempt like any
        # other (recorded, backed off, counted by the circuit), never an unrecorded one.
        return failed(f"{type(exc).__name__}: {exc}")
    latency = time.perf_counter() - t0
    if 200 <= status < 300:
        return Attempt(started, latency, status, None)
    return Attempt(
        started,
        latency,
        status,
        f"HTTP {status}" + (f": {text}" if text else ""),
        retry_after(after, started),
    )


async def _post(
    client: httpx.AsyncClient, url: str, body: str, headers: dict[str, str]
) -> tuple[int, str, str | None]:
    """POST; the status, the first 200 characters of the answer (at most 4 KiB of it is read,
    whatever a receiver sends back) and its Retry-After."""
    async with client.stream("POST", url, content=body.encode(), headers=headers) as response:
        head = b""
        async for chunk in response.aiter_bytes():
            head += chunk
            if len(head) >= _BODY_READ_MAX:
                break
        text = head[:_BODY_READ_MAX].decode("utf-8", errors="replace")[:200].strip()
        return response.status_code, text, response.headers.get("retry-after")
