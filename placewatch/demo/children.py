"""The demo's processes: ``python -m placewatch ...`` children, each logging to its own file,
stopped together with SIGTERM (then SIGKILL after a grace period).

Children run in a session of their own, so a Ctrl-C in the terminal reaches only the demo,
which stops them in order (the simulator first, ingest before the workers it feeds). On Linux
each child also gets SIGTERM if the demo itself dies (``PR_SET_PDEATHSIG``): no orphans.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from placewatch.embedded._process import detached

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    logfile: Path
    out: IO[bytes]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.logfile.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Children:
    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.started: list[Child] = []

    def start(self, name: str, args: list[str], *, module: bool = True) -> Child:
        """``python -m placewatch ARGS`` (or ``python ARGS`` when not ``module``)."""
        cmd = [sys.executable, *(["-m", "placewatch"] if module else []), *args]
        logfile = self.logdir / f"{name}.log"
        out = logfile.open("ab")
        proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            **detached(),
        )
        child = Child(name, proc, logfile, out)
        self.started.append(child)
        log.debug("started %s (pid %d): %s", name, proc.pid, " ".join(cmd))
        return child

    def run(self, name: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ``placewatch ARGS`` to completion (setup steps); its output goes to the log."""
        logfile = self.logdir / f"{name}.log"
        with logfile.open("ab") as out:
            proc = subprocess.run(
                [sys.executable, "-m", "placewatch", *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                start_new_session=True,
            )
        return subprocess.CompletedProcess(proc.args, proc.returncode, logfile.read_text())

    def stop_all(self, children: list[Child] | None = None, grace_s: float = 20.0) -> None:
        """SIGTERM each (in the order given), wait up to ``grace_s`` for all, SIGKILL the rest."""
        todo = [c for c in (self.started if children is None else children) if c.alive()]
        for c in todo:
            with contextlib.suppress(ProcessLookupError):
                c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for c in todo:
            try:
                c.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killing it", c.name, grace_s)
                c.proc.kill()
                c.proc.wait()
        for c in self.started if children is None else children:
            c.out.close()
