"""``placewatch api`` as a real uvicorn subprocess on a free port, for tests that talk HTTP to
it (the API tests, the acknowledge page in a browser, the dispatcher's links).

    with serve_api(database_url, tmp_path) as api:
        httpx.get(f"{api.url}/v1/alerts", headers=...)
        ack_url(api.settings(), AckLink(...))   # links that point at this server
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from placewatch.settings import Settings
from tests.support.broker import free_port
from tests.support.ingest import IngestProcess


@dataclass
class ApiServer:
    database_url: str
    logdir: Path
    link_secret: str = field(default_factory=lambda: "test-link-secret-" + uuid.uuid4().hex)
    port: int = field(default_factory=free_port)
    # Further PLACEWATCH_* settings, by lower-case name: {"link_ttl_s": "60"}.
    env: dict[str, str] = field(default_factory=dict)
    # The process plumbing (start, readiness on /readyz, logs, signals) is the one every
    # service test uses; only the command and port differ.
    process: IngestProcess = field(init=False)

    def __post_init__(self) -> None:
        settings = {
            "api_host": "127.0.0.1",
            "api_port": str(self.port),
            "link_secret": self.link_secret,
            "public_url": self.url,
            **self.env,
        }
        self.process = IngestProcess(
            database_url=self.database_url,
            mqtt_port=1,
            prefix="unused",
            client_id=f"api-{self.port}",
            logdir=self.logdir,
            command=("api",),
            http_port=self.port,
            extra_env={f"PLACEWATCH_{k.upper()}": v for k, v in settings.items()},
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> Settings:
        """The settings the server runs with, for making links it accepts. (Given explicitly:
        this process's own PLACEWATCH_* environment is not the server's.)"""
        ttl = self.env.get("link_ttl_s", Settings.model_fields["link_ttl_s"].default)
        return Settings.model_validate(
            {
                **{k: v for k, v in self.env.items() if k in Settings.model_fields},
                "database_url": self.database_url,
                "link_secret": self.link_secret,
                "link_ttl_s": ttl,
                "public_url": self.url,
                "api_port": self.port,
            }
        )

    def start(self, wait_ready: bool = True, timeout: float = 30.0) -> None:
        self.process.start(wait_ready=False)
        if wait_ready:
            self.process.wait_ready(timeout)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, and the exit code (0 when it stopped cleanly)."""
        if self.process.process is None:
            return 0
        return self.process.terminate(timeout)

    def alive(self) -> bool:
        return self.process.alive()

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)


@contextmanager
def serve_api(database_url: str, logdir: Path, **env: str) -> Iterator[ApiServer]:
    """A started server, stopped (SIGTERM, then SIGKILL if it hangs) when the block ends."""
    server = ApiServer(database_url, logdir, env=env)
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        except Exception:
            if server.alive():
                server.process.kill()
            raise
