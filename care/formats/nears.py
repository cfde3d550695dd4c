"""NEARS (DOMUS lab, Sherbrooke) home logs: gzip or plain JSON lines, one sensor message each.

Mapping, chosen after looking at home 0104:

* ``motion`` ON/OFF -> MOTION 1/0.
* ``contact`` OPEN/ON -> open, CLOSED/OFF -> closed (two sensor models spell it differently);
  the entrance door is FRONT_DOOR, every other contact (fridge, drawers, cabinets) CONTACT.
* ``instant_power`` -> APPLIANCE watts (the number is in ``state``; ``value`` is read if a
  record has one). The coffee maker's plug reports on change, about once a second while brewing,
  so a switch-on is a person. The TV's plug is the exception and a REPORT: it sends its power
  every 5 minutes whether or not it changed, so "on" would be activity all evening from a TV
  left running, and a switch-on (about 160 in 207 days) adds little.
* everything else (luminance, temperature, tamper, battery, voltage, energy, switch, colour,
  seismic...) -> REPORT: these periodic reports are the hub heartbeat, hence ``heartbeat=True``.

The hub sends most contact changes twice about 20-50 ms apart, so a record is dropped when the
last kept record of the same sensor had the same reading less than 2 s earlier. Records that do
not parse (bad JSON, missing time or field, unknown contact state) are skipped and counted in
``HomeLog.skipped``: a months-long export should not be lost to one bad line.
"""

from __future__ import annotations

import functools
import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from care.events import HomeEvent, Signal
from care.formats._log import HomeLog

ZONE = ZoneInfo("America/Toronto")
DUPLICATE_WINDOW_S = 2.0
_OPEN = {"OPEN": True, "ON": True, "CLOSED": False, "OFF": False}
_MOTION = {"ON": 1.0, "OFF": 0.0}
_PERIODIC_PLUGS = {"tv"}  # plugs that report power on a timer, not on change
_FRONT_DOOR = ("entrance", "door")  # (location, subject)
_decode = json.JSONDecoder().decode  # json.loads minus its per-call argument handling


class _Malformed(Exception):
    """A record this loader skips rather than fails on."""


def load(path: Path) -> HomeLog:
    """Read one home's NEARS export (``.gz`` is decompressed)."""
    events: list[HomeEvent] = []
    last: dict[str, tuple[float, object]] = {}  # source -> (time, reading) of the last kept
    home: str | None = None
    skipped = 0
    with _open(path) as lines:
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = _decode(line)
                event, reading, rec_home = _event(rec)
            except (_Malformed, ValueError, KeyError, TypeError):
                skipped += 1
                continue
            if home is None:
                home = rec_home
            elif rec_home != home:
                raise ValueError(f"{path}:{lineno}: record of {rec_home!r} in a log of {home!r}")
            previous = last.get(event.source)
            if (
                previous is not None
                and previous[1] == reading
                and abs(event.at - previous[0]) < DUPLICATE_WINDOW_S
            ):
                continue
            last[event.source] = (event.at, reading)
            events.append(event)
    resident = "nears-" + (home or "").rsplit("-", 1)[-1]
    return HomeLog.build(resident, ZONE, events, heartbeat=True, source=path, skipped=skipped)


def _open(path: Path) -> TextIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")  # a bad byte costs a record, not the log


def _event(rec: Any) -> tuple[HomeEvent, object, str]:
    """The event of one record, its raw reading (for de-duplication) and its home."""
    location, subject, sensor, home = rec["location"], rec["subject"], rec["sensor"], rec["home"]
    source, where = _names(location, subject, sensor)
    if not isinstance(home, str) or not home:
        raise _Malformed
    at = _epoch(rec["sentAt"]["$date"])
    state = rec.get("state")
    number = rec.get("value", state)

    signal = Signal.REPORT
    value: float | bool | None = None
    if sensor == "motion":
        signal, value = Signal.MOTION, _lookup(_MOTION, state)
    elif sensor == "contact":
        front = (location, subject) == _FRONT_DOOR
        signal, value = (Signal.FRONT_DOOR if front else Signal.CONTACT), _lookup(_OPEN, state)
    elif sensor == "instant_power" and subject not in _PERIODIC_PLUGS:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise _Malformed
        signal, value = Signal.APPLIANCE, float(number)
    return HomeEvent(at, source, signal, value, where), (state, number), home


@functools.lru_cache(maxsize=1024)
def _names(location: object, subject: object, sensor: object) -> tuple[str, str]:
    """A sensor's ``source`` and ``where`` (cached: a home has a few dozen sensors)."""
    if not all(isinstance(s, str) and s for s in (location, subject, sensor)):
        raise _Malformed
    where = location if subject == location else f"{location} {subject}"
    return f"{location}/{subject}/{sensor}", str(where).replace("_", " ")


def _lookup(table: dict[str, float] | dict[str, bool], state: object) -> float | bool:
    if not isinstance(state, str) or state not in table:
        raise _Malformed
    return table[state]


def _epoch(stamp: object) -> float:
    """Epoch seconds of an ISO time with an explicit zone (``Z`` for UTC)."""
    if not isinstance(stamp, str):
        raise _Malformed
    parsed = datetime.fromisoformat(stamp[:-1] + "+00:00" if stamp.endswith("Z") else stamp)
    if parsed.tzinfo is None:  # a naive time would silently take this machine's zone
        raise _Malformed
    return parsed.timestamp()
