"""van Kasteren et al. (2008) house logs: a header naming sensor ids, then one row per firing.

Rows are ``start<TAB>end<TAB>id<TAB>1`` with times like ``25-Feb-2008 00:20:14`` (naive, Dutch
local time, English month names parsed here so the machine's locale does not matter). The ids
are read from the header's ``[12]    'Frontdoor'`` table, so houses B and C load too. The sensors
are binary and report only firings (``heartbeat=False``): each row becomes an on event at its
start and an off event at its end. A closing ``Length: N`` line, when present, is checked
against the number of rows, to catch a truncated file.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from care.events import HomeEvent, Signal
from care.formats._log import HomeLog, local_epoch

ZONE = ZoneInfo("Europe/Amsterdam")
APPLIANCE_WATTS = 1000.0  # the data set says only "on"; any clearly-on wattage will do
_APPLIANCES = {"microwave", "dishwasher", "washingmachine"}
_FRONT_DOOR = "frontdoor"
_SENSOR = re.compile(r"^\s*\[\s*(\d+)\]\s*'([^']+)'")
_HOUSE = re.compile(r"kasteren-([a-z])-", re.IGNORECASE)
_LENGTH = re.compile(r"^Length:\s*(\d+)$")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_TIME = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{1,2}):(\d{2}):(\d{2})$")


def load(path: Path) -> HomeLog:
    """Read a ``*-sense.txt`` file; errors name the file and line."""
    names: dict[str, str] = {}
    events: list[HomeEvent] = []
    rows = 0
    declared: int | None = None
    in_rows = False
    with path.open(encoding="utf-8") as lines:
        for lineno, raw in enumerate(lines, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            if not in_rows:
                if sensor := _SENSOR.match(line):
                    names[sensor.group(1)] = sensor.group(2).strip()
                in_rows = line.startswith("--")  # the underlining of the column names
                continue
            if length := _LENGTH.match(line.strip()):
                declared = int(length.group(1))
                continue
            try:
                events.extend(_row(line, names))
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: {err}") from None
            rows += 1
    if not names:
        raise ValueError(f"{path}: no sensor id table in the header")
    if declared is not None and declared != rows:
        raise ValueError(f"{path}: says Length: {declared} but has {rows} rows")
    house = _HOUSE.search(path.name)
    resident = f"kasteren-{house.group(1).lower() if house else 'a'}"
    return HomeLog.build(resident, ZONE, events, heartbeat=False, source=path)


def _row(line: str, names: dict[str, str]) -> list[HomeEvent]:
    cells = [c.strip() for c in line.split("\t") if c.strip()]
    if len(cells) != 4:
        raise ValueError(f"expected 4 columns (start, end, id, val), got {cells}")
    start_text, end_text, sensor_id, val = cells
    if sensor_id not in names:
        raise ValueError(f"sensor id {sensor_id} is not in the header's table")
    if val != "1":
        raise ValueError(f"val is {val!r}; the format's sensors only report 1")
    start, end = _epoch(start_text), _epoch(end_text)
    if end < start:
        raise ValueError(f"ends ({end_text}) before it starts ({start_text})")
    name = names[sensor_id]
    key = name.lower().replace(" ", "").replace("-", "")
    signal: Signal = Signal.CONTACT  # doors, cupboards, fridge, freezer, toilet flush
    on: float | bool = True
    off: float | bool = False
    if key == _FRONT_DOOR:
        signal = Signal.FRONT_DOOR
    elif key in _APPLIANCES:
        signal, on, off = Signal.APPLIANCE, APPLIANCE_WATTS, 0.0
    where = name.lower()
    return [HomeEvent(start, name, signal, on, where), HomeEvent(end, name, signal, off, where)]


def _epoch(text: str) -> float:
    match = _TIME.match(text)
    if match is None or match.group(2).title() not in _MONTHS:
        raise ValueError(f"bad time {text!r} (expected like 25-Feb-2008 00:20:14)")
    day, month, year, hour, minute, second = match.groups()
    naive = datetime(
        int(year), _MONTHS[month.title()], int(day), int(hour), int(minute), int(second)
    )
    return local_epoch(naive, ZONE)
