"""What the demo shows, read from the database and the receiver's log: one ``Snapshot`` a poll."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from placewatch.kinds import KINDS

CARE_RULE_KINDS = frozenset({"inactivity", "not_up", "long_occupancy", "activity_decline"})


@dataclass
class Delivery:
    """One webhook the receiver took (it logs only those whose signature it verified)."""

    at: float  # when the demo first saw it (seconds since the demo started)
    type: str
    alert_id: int
    rule_id: str
    rule_kind: str
    severity: str
    summary: str
    resident: str | None
    opened_at: datetime | None  # event time at which the alert's condition was met

    @property
    def care(self) -> bool:
        return self.rule_kind in CARE_RULE_KINDS


@dataclass
class Snapshot:
    elapsed: float
    readings: int = 0
    dead_letters: int = 0
    open_alerts: int = 0
    rate: float = 0.0  # readings and dead letters stored per second since the last poll
    deliveries: list[Delivery] = field(default_factory=list)
    phase: str = ""
    incidents: list[str] = field(default_factory=list)  # the scenario's incidents, as seen

    @property
    def first_care(self) -> Delivery | None:
        return next((d for d in self.deliveries if d.care), None)


class Watcher:
    def __init__(self, database_url: str, received: Path, started: float) -> None:
        self.database_url = database_url
        self.received = received
        self.started = started
        self.deliveries: list[Delivery] = []
        self._offset = 0
        self._last: tuple[float, int] | None = None
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def _db(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            # A short time-out (libpq's least): a poll a second, and the view goes on
            # while the database does not answer.
            self._conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=2)
        return self._conn

    def _read_deliveries(self, now: float) -> None:
        try:
            with self.received.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # whole lines only
        self._offset += end
        for line in data[:end].splitlines():
            event = json.loads(line)["event"]
            alert = event["alert"]
            self.deliveries.append(
                Delivery(
                    now - self.started,
                    event["type"],
                    alert["id"],
                    alert["rule_id"],
                    alert["rule_kind"],
                    alert["severity"],
                    alert["summary"],
                    alert.get("resident_id"),
                    datetime.fromisoformat(alert["opened_at"]) if alert.get("opened_at") else None,
                )
            )

    def poll(self, phase: str = "") -> Snapshot:
        now = time.monotonic()
        self._read_deliveries(now)
        snap = Snapshot(now - self.started, deliveries=list(self.deliveries), phase=phase)
        try:
            conn = self._db()
            counts = " + ".join(f"(SELECT count(*) FROM {k.value})" for k in KINDS)
            row = conn.execute(
                f"SELECT {counts}, (SELECT count(*) FROM dead_letters),"
                " (SELECT count(*) FROM alerts WHERE state = 'open')"
            ).fetchone()
        except psycopg.Error:
            self._conn = None
            return snap
        assert row is not None
        snap.readings, snap.dead_letters, snap.open_alerts = int(row[0]), int(row[1]), int(row[2])
        stored = snap.readings + snap.dead_letters
        if self._last is not None and now > self._last[0]:
            snap.rate = (stored - self._last[1]) / (now - self._last[0])
        self._last = (now, stored)
        return snap

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
