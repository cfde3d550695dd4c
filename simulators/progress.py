"""The progress bar of long simulations (rich): messages sent, rate, and how far through the
run it is — simulated time for scenarios, the count or duration for load."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

_REFRESH_S = 0.25


class Meter:
    """``update`` is cheap to call per message: the bar is redrawn a few times a second."""

    def __init__(self, title: str, total: float | None, enabled: bool = True) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f} %"),
            TextColumn("{task.fields[sent]:>12,} msgs  {task.fields[rate]:>9,.0f} msg/s"),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not enabled,
            refresh_per_second=4,
        )
        self.task: TaskID = self.progress.add_task(title, total=total, sent=0, rate=0.0, note="")
        self.started = time.monotonic()
        self._next = 0.0
        self._last = (self.started, 0)

    def __enter__(self) -> Meter:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def update(
        self,
        sent: int,
        completed: float,
        note: Callable[[], str] | str = "",
        force: bool = False,
    ) -> None:
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + _REFRESH_S
        then, before = self._last
        # The rate over the last second or so: what the run does now, not its average.
        rate = (sent - before) / (now - then) if now > then else 0.0
        if now - then >= 1.0:
            self._last = (now, sent)
        text = note() if callable(note) else note
        self.progress.update(self.task, completed=completed, sent=sent, rate=rate, note=text)
