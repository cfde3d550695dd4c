"""``placewatch api`` as a process: probes, answers while the database is unreachable, a clean
stop on SIGTERM, refusing to start without a link secret, no tokens in the access log."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from psycopg.conninfo import make_conninfo

from notify.links import AckLink, ack_url
from tests.api.conftest import World
from tests.support.api_server import ApiServer, serve_api
from tests.support.traffic import wait_until


def test_probes_and_clean_stop(world: World, tmp_path: Path) -> None:
    server = ApiServer(world.database_url, tmp_path)
    server.start()
    try:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "detail": None}
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        token_path = ack_url(server.settings(), AckLink(1, "carers-a", "msg_1"))
        httpx.get(token_path)
    finally:
        assert server.stop() == 0, server.log_tail()
    log = server.log_tail(200)
    assert "Shutting down" in log or "Finished server process" in log
    secret_part = token_path.rsplit("/", 1)[1]
    assert secret_part not in log and '"GET /ack/… HTTP/1.1"' in log


def test_database_unreachable(world: World, tmp_path: Path, keys: dict[str, str]) -> None:
    missing = make_conninfo(world.database_url, dbname="pwtest_no_such_database")
    server = ApiServer(missing, tmp_path)
    server.start(wait_ready=False)
    try:
        _wait_alive(server)
        # Each waits for the pool's timeout (a few seconds): ask all three at once.
        with ThreadPoolExecutor(3) as pool:
            ready, listed, page = pool.map(
                lambda args: httpx.get(args[0], headers=args[1], timeout=15),
                [
                    (f"{server.url}/readyz", {}),
                    (f"{server.url}/v1/alerts", {"X-API-Key": keys["ops-a"]}),
                    (ack_url(server.settings(), AckLink(1, "carers-a", "m")), {}),
                ],
            )
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        assert listed.status_code == 503 and listed.json()["error"] == "unavailable"
        assert page.status_code == 503 and "Sorry, the service is unavailable" in page.text
        assert page.headers["Cache-Control"] == "no-store"
    finally:
        assert server.stop() == 0, server.log_tail()


def test_refuses_to_start_without_a_link_secret(world: World) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLACEWATCH_")}
    env["PLACEWATCH_DATABASE_URL"] = world.database_url
    done = subprocess.run(
        [sys.executable, "-m", "placewatch", "api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "PLACEWATCH_LINK_SECRET is not set" in done.stderr


def test_serve_api_helper(world: World, tmp_path: Path) -> None:
    """The helper other suites use: started, answering, links it accepts, stopped after."""
    with serve_api(world.database_url, tmp_path, link_ttl_s="120") as api:
        assert api.settings().link_ttl_s == 120
        assert httpx.get(f"{api.url}/readyz").status_code == 200
        process = api.process
    assert not process.alive()


def _wait_alive(server: ApiServer) -> None:
    def answers() -> bool:
        assert server.alive(), server.log_tail()
        try:
            return httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(answers, 15, "the API answering /healthz")
