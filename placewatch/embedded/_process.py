"""Children that outlive nothing: their own session (a Ctrl-C in the terminal reaches only the
parent, which stops them in order) and, on Linux, SIGTERM when the parent dies
(``PR_SET_PDEATHSIG``), so a killed demo or test run leaves no broker or worker behind. Linux
signals the child when the *thread* that started it ends: start such children from the main
thread (or another that lives as long as they should)."""

from __future__ import annotations

import ctypes
import signal
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1

try:  # looked up here, not in the forked child (which may not load libraries safely)
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def detached() -> dict[str, Any]:
    """``subprocess.Popen`` keyword arguments for such a child."""
    return {
        "start_new_session": True,
        "preexec_fn": _die_with_parent if _prctl is not None else None,
    }
