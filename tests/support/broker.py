"""A private Mosquitto for the tests, started from the project's own ``broker/mosquitto.conf``.

Only the listener port and the persistence directory are rewritten, so the tests run against
exactly the tuned settings that ship (queue limits, inflight, persistence). The security tests
start one from another shipped config (``config``, e.g. broker/compose/mosquitto.conf) with
more lines rewritten (``rewrites``: the password and ACL files, a TLS listener).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(os.environ.get("PLACEWATCH_TEST_MOSQUITTO_CONF", ROOT / "broker" / "mosquitto.conf"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


def render_config(
    port: int,
    data_dir: Path,
    config: Path = CONFIG,
    rewrites: dict[str, str] | None = None,
) -> str:
    """``config`` with the listener and persistence lines (and any ``rewrites``, whole lines
    old → new, where new may span lines) replaced."""
    text = config.read_text()
    for line, new in (
        ("listener 1883", f"listener {port} 127.0.0.1"),
        ("persistence_location /mosquitto/data/", f"persistence_location {data_dir}/"),
        *(rewrites or {}).items(),
    ):
        if line not in text.splitlines():
            raise AssertionError(f"{config} no longer has the line {line!r} the tests rewrite")
        text = text.replace(line, new)
    return text


@dataclass
class Broker:
    host: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    config: Path = CONFIG
    rewrites: dict[str, str] = field(default_factory=dict)
    # Files the broker reads (password file, ACL, certificates): handed to the mosquitto user
    # when the tests run as root, since the broker drops to it before reading them.
    files: tuple[Path, ...] = ()

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to its own user, which must be able to save.
            with contextlib.suppress(KeyError):
                user = pwd.getpwnam("mosquitto")
                for path in (self.workdir, data, *self.files):
                    os.chown(path, user.pw_uid, user.pw_gid)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(render_config(self.port, data, self.config, self.rewrites))
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
        wait_port(self.host, self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
