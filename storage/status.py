"""What is stored, for ``placewatch status``: readings per kind, dead letters, devices, alerts
and the rules backlog."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from psycopg import sql

from placewatch.kinds import KINDS
from storage.database import connect


@dataclass
class Status:
    flavour: str
    readings: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    devices: int = 0
    devices_heard: int = 0
    alerts: dict[str, int] = field(default_factory=dict)  # by state
    rule_inbox: int = 0


def collect(url: str) -> Status:
    with connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT flavour FROM schema_migrations ORDER BY version LIMIT 1"
        ).fetchone()
        status = Status(flavour=str(row[0]) if row else "not migrated")
        for kind in KINDS:
            count, latest = conn.execute(
                sql.SQL("SELECT count(*), max(time) FROM {}").format(sql.Identifier(kind.value))
            ).fetchone() or (0, None)
            status.readings[kind.value] = (int(str(count)), cast(datetime | None, latest))
        for reason, n in conn.execute(
            "SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY 2 DESC"
        ):
            status.dead_letters[str(reason)] = int(str(n))
        total, heard = conn.execute(
            "SELECT count(*), count(last_seen) FROM devices"
        ).fetchone() or (0, 0)
        status.devices, status.devices_heard = int(str(total)), int(str(heard))
        for state, n in conn.execute("SELECT state, count(*) FROM alerts GROUP BY state"):
            status.alerts[str(state)] = int(str(n))
        row = conn.execute("SELECT count(*) FROM rule_inbox").fetchone()
        status.rule_inbox = int(str(row[0])) if row else 0
    return status


def render(s: Status) -> str:
    lines = [f"storage: {s.flavour}", "readings:"]
    for kind, (n, latest) in s.readings.items():
        lines.append(f"  {kind:<14} {n:>10,}  latest {latest.isoformat() if latest else '-'}")
    total_dl = sum(s.dead_letters.values())
    lines.append(f"dead letters: {total_dl:,}")
    lines += [f"  {reason:<18} {n:>8,}" for reason, n in s.dead_letters.items()]
    lines.append(f"devices: {s.devices:,} registered, {s.devices_heard:,} heard from")
    by_state = ", ".join(f"{n:,} {state}" for state, n in sorted(s.alerts.items())) or "none"
    lines.append(f"alerts: {by_state}")
    lines.append(f"rules inbox: {s.rule_inbox:,} device batches waiting for evaluation")
    return "\n".join(lines)
