"""The demo on the terminal: a rich live view on a TTY, else a plain line every few seconds."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from placewatch.demo.watch import Delivery, Snapshot


def _delivery_line(d: Delivery) -> str:
    care = " CARE" if d.care else ""
    return (
        f"{d.at:6.0f}s {d.type:<20} #{d.alert_id:<4} [{d.severity}]{care} {d.rule_id}: {d.summary}"
    )


def render(s: Snapshot, links: list[str]) -> Group:
    stats = Table.grid(padding=(0, 2))
    stats.add_column(style="bold")
    stats.add_column()
    stats.add_row("phase", s.phase)
    stats.add_row("running for", f"{s.elapsed:.0f} s")
    stats.add_row("ingest rate", f"{s.rate:,.0f} messages/s stored")
    stats.add_row("stored readings", f"{s.readings:,}")
    stats.add_row("rejects (dead letters)", f"{s.dead_letters:,}")
    stats.add_row("open alerts", f"{s.open_alerts:,}")
    care = s.first_care
    stats.add_row(
        "first care alert delivered",
        f"after {care.at:.0f} s: {care.rule_id} ({care.resident})" if care else "not yet",
    )
    for line in s.incidents:
        label, _, status = line.partition(": ")
        stats.add_row(label, status)
    received = Table(show_header=False, box=None, pad_edge=False)
    received.add_column(overflow="ellipsis", no_wrap=True)
    latest = s.deliveries[-8:]
    for d in reversed(latest):
        received.add_row(Text(_delivery_line(d), style="bold red" if d.care else ""))
    if not latest:
        received.add_row(Text("none yet", style="dim"))
    return Group(
        Panel(stats, title="placewatch demo: the example borough", border_style="cyan"),
        Panel(
            received,
            title=f"webhooks to the local receiver, signatures verified ({len(s.deliveries)})",
            border_style="green",
        ),
        Text("\n".join(links), style="dim"),
    )


class View:
    """``update()`` each poll; a live view on a terminal, else a plain line every ``every`` s."""

    def __init__(self, links: list[str], out: TextIO = sys.stdout, every: float = 10.0) -> None:
        self.links = links
        self.out = out
        self.every = every
        self.tty = out.isatty()
        self._live: Live | None = None
        self._last_line = 0.0
        self._shown = 0

    def __enter__(self) -> View:
        if self.tty:
            self._live = Live(render(Snapshot(0.0), self.links), refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def update(self, s: Snapshot) -> None:
        if self._live is not None:
            self._live.update(render(s, self.links))
            return
        for d in s.deliveries[self._shown :]:
            if d.care:  # the street alerts are many: counted on the periodic line
                print(f"[demo] delivered {_delivery_line(d)}", file=self.out, flush=True)
        self._shown = len(s.deliveries)
        now = time.monotonic()
        if now - self._last_line >= self.every:
            self._last_line = now
            print(
                f"[demo] {s.elapsed:5.0f}s {s.phase}: {s.rate:,.0f} msg/s, {s.readings:,} readings,"
                f" {s.dead_letters:,} rejects, {s.open_alerts} open alerts,"
                f" {len(s.deliveries)} webhooks delivered",
                file=self.out,
                flush=True,
            )
