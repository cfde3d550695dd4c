"""The committed dashboards' queries, as Grafana would run them: the panels and targets of each
dashboard file, the variables filled from their own queries, a panel's ``$__interval``. Used by
the tests (every panel against a simulated week) and by ``bench.dashboards``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from dashboards.generate import JSON_DIR
from dashboards.macros import TimeRange, Variable, expand

Json = dict[str, Any]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def dashboard_files(json_dir: Path = JSON_DIR) -> list[Path]:
    return sorted(json_dir.rglob("*.json"))


def load(path: Path) -> Json:
    board: Json = json.loads(path.read_text(encoding="utf-8"))
    return board


def panels(board: Json) -> Iterator[Json]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def targets(board: Json) -> Iterator[tuple[Json, Json]]:
    """(panel, target) for every query of every panel."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel, target


def datasource_uid(item: Json, panel: Json | None = None) -> str:
    source = item.get("datasource") or (panel or {}).get("datasource")
    if not isinstance(source, dict):
        raise ValueError(f"no data source on {item}")
    return str(source["uid"])


def duration(text: str) -> timedelta:
    """A Grafana duration of one unit: 30s, 15m, 1h, 7d."""
    m = re.fullmatch(r"(\d+)([smhd])", text)
    if not m:
        raise ValueError(f"not a duration like 7d, 24h or 15m: {text!r}")
    return timedelta(seconds=int(m[1]) * _UNITS[m[2]])


def auto_interval(span: timedelta) -> timedelta:
    """Grafana's $__interval for a panel about 1,000 data points wide, to the minute."""
    return timedelta(minutes=max(1, round(span.total_seconds() / 1000 / 60)))


def panel_interval(panel: Json, auto: timedelta) -> timedelta:
    """The automatic interval, or the panel's own minimum (its data's resolution) if larger."""
    return max(auto, duration(panel.get("interval", "1s")))


@dataclass(frozen=True)
class FilledVariable:
    variable: Variable
    options: int  # rows its query returned
    ms: float  # how long the query took


def fill_variables(
    conn: psycopg.Connection[Any],
    board: Json,
    span: TimeRange,
    interval: timedelta,
    *,
    council: str,
    timescaledb: bool = False,
) -> list[FilledVariable]:
    """Each variable from its own query, in order (later ones use earlier ones), as a dashboard
    opens: ``council`` for the council, every option (All) for the multi-value ones. A variable
    without options, or without ``council`` among them, is a ``ValueError``."""
    filled: list[FilledVariable] = []
    for v in board["templating"]["list"]:
        done = [f.variable for f in filled]
        query = expand(v["query"], span, interval, timescaledb=timescaledb, variables=done)
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(query.encode())
            rows = cur.fetchall()
            columns = [c.name for c in cur.description or ()]
        ms = (time.perf_counter() - started) * 1000
        column = columns.index("__value") if "__value" in columns else 0
        values = tuple(str(r[column]) for r in rows)
        if v["name"] == "council":
            if council not in values:
                raise ValueError(f"{board['title']}: council {council} not among {values}")
            values = (council,)
        if not values:
            raise ValueError(f"{board['title']}: variable {v['name']} has no options")
        variable = Variable(v["name"], values, multi=v["multi"] or v["includeAll"])
        filled.append(FilledVariable(variable, len(rows), ms))
    return filled
