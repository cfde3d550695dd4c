"""Ordóñez et al. (2013) house logs: one row per sensor firing, ``start end location type place``.

The file pads columns with runs of tabs and a few cells with trailing spaces, so a row is its
non-empty tab-separated cells, stripped. Times are naive local times in Spain. The data set
records only firings (``heartbeat=False``), so each row becomes an on event at its start and an
off event at its end; a PIR row longer than 5 minutes also gets a detection every 5 minutes in
between, because the sensor saw movement all along and a detector must not read it as silence.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from care.events import HomeEvent, Signal
from care.formats._log import HomeLog, local_epoch

ZONE = ZoneInfo("Europe/Madrid")
FILE_NAME = "OrdonezA_Sensors.txt"
PIR_REPEAT_S = 300.0
APPLIANCE_WATTS = 1000.0  # the data set says only "on"; any clearly-on wattage will do
_TIME = "%Y-%m-%d %H:%M:%S"
_HOUSE = re.compile(r"Ordonez([A-Za-z])_Sensors")


def load(path: Path) -> HomeLog:
    """Read a ``*_Sensors.txt`` file, or the directory holding ``OrdonezA_Sensors.txt``."""
    if path.is_dir():
        path = path / FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (give {FILE_NAME} or the folder holding it)")
    house = _HOUSE.search(path.name)
    resident = f"ordonez-{house.group(1).lower() if house else 'a'}"
    events: list[HomeEvent] = []
    with path.open(encoding="utf-8") as lines:
        for lineno, line in enumerate(lines, 1):
            cells = [c.strip() for c in line.split("\t") if c.strip()]
            if not cells or cells[0] == "Start time" or set(cells[0]) == {"-"}:
                continue  # blank line, or the column names and their underlining
            try:
                events.extend(_row(cells))
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: {err}") from None
    return HomeLog.build(resident, ZONE, events, heartbeat=False, source=path)


def _row(cells: list[str]) -> list[HomeEvent]:
    if len(cells) != 5:
        raise ValueError(f"expected 5 columns (start, end, location, type, place), got {cells}")
    start_text, end_text, location, kind, place = cells
    start = local_epoch(datetime.strptime(start_text, _TIME), ZONE)
    end = local_epoch(datetime.strptime(end_text, _TIME), ZONE)
    if end < start:
        raise ValueError(f"ends ({end_text}) before it starts ({start_text})")
    where = f"{place.lower()} {location.lower()}"

    def pair(signal: Signal, on: float | bool, off: float | bool) -> list[HomeEvent]:
        return [
            HomeEvent(start, location, signal, on, where),
            HomeEvent(end, location, signal, off, where),
        ]

    if kind == "PIR":
        repeats = [
            HomeEvent(start + k * PIR_REPEAT_S, location, Signal.MOTION, 1.0, where)
            for k in range(1, int((end - start) // PIR_REPEAT_S) + 1)
            if start + k * PIR_REPEAT_S < end
        ]
        first, last = pair(Signal.MOTION, 1.0, 0.0)
        return [first, *repeats, last]
    if kind == "Pressure":
        seats = {"Bed": Signal.BED, "Seat": Signal.CHAIR}
        if location not in seats:
            raise ValueError(f"pressure sensor at unknown location {location!r}")
        return pair(seats[location], True, False)
    if kind == "Magnetic":
        return pair(Signal.FRONT_DOOR if location == "Maindoor" else Signal.CONTACT, True, False)
    if kind == "Electric":
        return pair(Signal.APPLIANCE, APPLIANCE_WATTS, 0.0)
    if kind == "Flush":
        return pair(Signal.CONTACT, True, False)
    raise ValueError(f"unknown sensor type {kind!r}")
