"""A private MQTT broker on 127.0.0.1 for the demo and the tests, when none is configured or
running.

``start_broker`` starts the ``mosquitto`` binary if there is one (on PATH, or
/usr/sbin/mosquitto), with the project's own ``broker/mosquitto.conf`` (only the listener and the
persistence directory rewritten, so the tuned queue, in-flight and persistence settings apply),
else the embedded Python broker, amqtt (``placewatch.embedded._amqtt_broker``), in a subprocess
so that it can be stopped or killed the same way. ``kind`` or ``PLACEWATCH_EMBEDDED_BROKER``
(``mosquitto`` or ``amqtt``) chooses one.

amqtt knows MQTT 3.1.1 only; placewatch's clients fall back to it by themselves (``ingest.mqtt``,
``simulators.wire``). It keeps everything in memory: a restart loses sessions and queued messages.
See broker/README.md, "Embedded broker".
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from placewatch.embedded._process import detached

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO_CONF = ROOT / "broker" / "mosquitto.conf"
KINDS = ("mosquitto", "amqtt")
START_TIMEOUT_S = 30.0

# The lines of broker/mosquitto.conf that are rewritten, and what is written when the file is not
# there (placewatch installed without its source tree): its settings that matter for delivery.
_LISTENER, _PERSISTENCE = "listener 1883", "persistence_location /mosquitto/data/"
_FALLBACK_CONF = f"""\
{_LISTENER}
allow_anonymous true
max_inflight_messages 1000
max_queued_messages 2000000
max_queued_bytes 1073741824
upgrade_outgoing_qos true
persistence true
persistence_file mosquitto.db
{_PERSISTENCE}
autosave_interval 10
persistent_client_expiration 7d
max_packet_size 1048576
set_tcp_nodelay true
log_dest stderr
log_timestamp_format %Y-%m-%dT%H:%M:%S
"""


class BrokerStartError(RuntimeError):
    """The broker exited, or did not listen, in time; the message ends with its log."""


@dataclass
class RunningBroker:
    host: str
    port: int
    kind: str  # "mosquitto" (a private mosquitto process) or "amqtt"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Mosquitto writes its last snapshot), SIGKILL if it takes longer."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a broker crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str | None:
    """``mosquitto`` on PATH, else /usr/sbin/mosquitto (Debian's, not on a user's PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    sbin = Path("/usr/sbin/mosquitto")
    return str(sbin) if sbin.is_file() and os.access(sbin, os.X_OK) else None


def amqtt_available() -> bool:
    return importlib.util.find_spec("amqtt") is not None


def chosen_kind(kind: str | None = None) -> str:
    """``kind``, else ``PLACEWATCH_EMBEDDED_BROKER``, else mosquitto if installed, else amqtt."""
    kind = kind or os.environ.get("PLACEWATCH_EMBEDDED_BROKER") or None
    if kind is None:
        return "mosquitto" if mosquitto_binary() else "amqtt"
    if kind not in KINDS:
        raise ValueError(f"broker kind {kind!r}: use one of {', '.join(KINDS)}")
    return kind


def render_mosquitto_config(
    port: int,
    data_dir: Path,
    config: Path = MOSQUITTO_CONF,
    rewrites: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> str:
    """``config`` with the listener and persistence lines (and any ``rewrites``, whole lines
    old → new, where new may span lines) replaced; a line that is not there is an error, so a
    changed config cannot silently go unrewritten."""
    if config == MOSQUITTO_CONF and not config.is_file():
        text = _FALLBACK_CONF  # installed without the source tree
    else:
        text = config.read_text()
    for line, new in (
        (_LISTENER, f"listener {port} {host}"),
        (_PERSISTENCE, f"persistence_location {data_dir}/"),
        *(rewrites or {}).items(),
    ):
        if line not in text.splitlines():
            raise ValueError(f"{config} no longer has the line {line!r} that is rewritten")
        text = text.replace(line, new)
    return text


def _check_free(host: str, port: int) -> None:
    """Refuse a port something else listens on: it would answer for the broker."""
    with socket.socket() as s:
        s.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # as servers do: TIME_WAIT is no user
        try:
            s.bind((host, port))
        except OSError as exc:
            raise BrokerStartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the broker accepts connections; on any failure or interruption (Ctrl-C while
    waiting) the broker is killed before the exception goes on: never left running."""
    try:
        _wait(host, port, proc, log)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        raise


def _wait(host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise BrokerStartError(f"the broker exited with status {proc.returncode}: {_tail(log)}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                waited = f"{START_TIMEOUT_S:.0f} s"
                raise BrokerStartError(
                    f"nothing listening on {host}:{port} after {waited}: {_tail(log)}"
                ) from None
            time.sleep(0.05)


def _tail(log: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def _reachable_by_others(path: Path) -> bool:
    """Whether every directory above ``path`` lets other users through (o+x)."""
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.resolve().parents)


def start_mosquitto(
    workdir: Path,
    port: int | None = None,
    config: Path = MOSQUITTO_CONF,
    rewrites: dict[str, str] | None = None,
    files: tuple[Path, ...] = (),
    binary: str | None = None,
) -> RunningBroker:
    """A private mosquitto on 127.0.0.1 with ``config`` (rewritten, ``render_mosquitto_config``),
    persisting to ``workdir``/data; the log is ``workdir``/mosquitto.log. ``files`` (password
    file, ACL, certificates) are handed to the mosquitto user when running as root, like the
    data directory: started as root, Mosquitto drops to that user before reading or saving
    (broker/README.md), unless that user could not reach ``workdir``: then it stays root."""
    binary = binary or mosquitto_binary()
    if binary is None:
        raise BrokerStartError("no mosquitto binary (on PATH or /usr/sbin/mosquitto)")
    port = port or free_port()
    _check_free("127.0.0.1", port)
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    text = render_mosquitto_config(port, data, config, rewrites)
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam("mosquitto")
            for path in (workdir, data, *files):
                os.chown(path, user.pw_uid, user.pw_gid)
        if not _reachable_by_others(workdir):
            # e.g. under /root or pytest's 0700 temp root: the mosquitto user could not save.
            # A private loopback broker started by root may stay root ("user root": no drop).
            text += "\nuser root\n"
    conf = workdir / "mosquitto.conf"
    conf.write_text(text)
    log_path = workdir / "mosquitto.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            **detached(),
        )
    _wait_listening("127.0.0.1", port, proc, log_path)
    return RunningBroker("127.0.0.1", port, "mosquitto", proc, log_path)


def start_amqtt(workdir: Path, port: int | None = None) -> RunningBroker:
    """amqtt in a subprocess of this Python (``placewatch.embedded._amqtt_broker``), its log in
    ``workdir``/amqtt.log. Nothing is written to ``workdir`` besides: amqtt keeps no files."""
    if not amqtt_available():
        raise BrokerStartError("amqtt is not installed (pip install amqtt==0.12.1)")
    port = port or free_port()
    _check_free("127.0.0.1", port)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "amqtt.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "placewatch.embedded._amqtt_broker", str(port), "127.0.0.1"],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            **detached(),
        )
    _wait_listening("127.0.0.1", port, proc, log_path)
    return RunningBroker("127.0.0.1", port, "amqtt", proc, log_path)


def start_broker(workdir: Path, port: int | None = None, kind: str | None = None) -> RunningBroker:
    """A private broker on 127.0.0.1:``port`` (a free one if None): mosquitto if installed,
    else amqtt (``chosen_kind``). Stop it with ``stop()``."""
    if chosen_kind(kind) == "mosquitto":
        return start_mosquitto(workdir, port)
    return start_amqtt(workdir, port)
