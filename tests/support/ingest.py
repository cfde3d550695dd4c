"""Run ``placewatch ingest`` (or another service, e.g. ``rules run``) as a real subprocess, so
tests can SIGKILL and restart it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.broker import free_port


@dataclass
class IngestProcess:
    database_url: str
    mqtt_port: int
    prefix: str
    client_id: str
    logdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ("ingest",)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLACEWATCH_")}
        env.update(
            PLACEWATCH_DATABASE_URL=self.database_url,
            PLACEWATCH_MQTT_HOST="127.0.0.1",
            PLACEWATCH_MQTT_PORT=str(self.mqtt_port),
            PLACEWATCH_TOPIC_PREFIX=self.prefix,
            PLACEWATCH_INGEST_CLIENT_ID=self.client_id,
            PLACEWATCH_INGEST_HTTP_PORT=str(self.http_port),
            PLACEWATCH_RULES_HTTP_PORT=str(self.http_port),
            PLACEWATCH_NOTIFY_HTTP_PORT=str(self.http_port),
            PLACEWATCH_LOG_LEVEL="INFO",
        )
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, ok: bool = True) -> str:
        """Run another ``placewatch`` command with this process's configuration; its stdout
        (and stderr), asserting it succeeded unless ``ok`` is False."""
        out = subprocess.run(
            [sys.executable, "-m", "placewatch", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert out.returncode == 0, f"placewatch {' '.join(args)}: {out.stderr}"
        return out.stdout + out.stderr

    def start(self, wait_ready: bool = True) -> None:
        self.starts += 1
        log = self._log_path().open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "placewatch", *self.command],
            env=self.env(),
            stdout=log,
            stderr=log,
        )
        if wait_ready:
            self.wait_ready()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.command[0]} exited with {self.process and self.process.returncode}:"
                    f"\n{self.log_tail()}"
                )
            try:
                if self.http("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.command[0]} not ready after {timeout} s:\n{self.log_tail()}")

    def metric(self, name: str) -> float:
        """Sum of a metric's samples (all label sets) from /metrics."""
        _, text = self.http("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name)] in " {":
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def _log_path(self) -> Path:
        return self.logdir / f"{self.command[0]}-{self.client_id}.log"

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def log_tail(self, lines: int = 40) -> str:
        path = self._log_path()
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )
