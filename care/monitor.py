"""One resident under watch: the activity model, the detectors, and the tick clock that drives
them. The live rules worker and the evaluation replay both run this, so the same events give
the same alerts.

Ticks fall on a fixed grid (multiples of ``tick_s`` since the epoch). Every event at or before a
tick is observed before that tick is evaluated, whether the events come in one go (a replay) or
a few minutes at a time (live, see ``care.live``). The whole state serialises to JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from care.activity import ActivityModel, ModelParams
from care.detectors import Detector
from care.events import HomeEvent
from rules.model import Transition

STATE_VERSION = 1


class CareMonitor:
    def __init__(self, params: ModelParams, detectors: Sequence[Detector]) -> None:
        self.params = params
        self.model = ActivityModel(params)
        self.detectors = list(detectors)
        self.active: dict[str, bool] = {d.name: False for d in self.detectors}
        self.next_tick: float | None = None

    def expect(self, sources: dict[str, float]) -> None:
        """Sensors that report periodically, and the longest silence expected of each."""
        self.model.expected = dict(sources)

    def grid(self, t: float) -> float:
        """The first tick at or after ``t``."""
        return math.ceil(t / self.params.tick_s) * self.params.tick_s

    def run(self, events: Iterable[HomeEvent], until: float) -> list[tuple[str, Transition]]:
        """Observe ``events`` (in time order, none before what was already run) and evaluate
        every tick up to ``until``; returns the transitions as (detector, transition)."""
        out: list[tuple[str, Transition]] = []
        for e in events:
            if self.next_tick is None:
                self.next_tick = self.grid(e.at)
            while self.next_tick < e.at:
                self._tick(self.next_tick, out)
            self.model.observe(e)
        if self.next_tick is None:
            self.next_tick = self.grid(until)
        while self.next_tick <= until:
            self._tick(self.next_tick, out)
        return out

    def _tick(self, t: float, out: list[tuple[str, Transition]]) -> None:
        self.model.tick(t)
        for d in self.detectors:
            transition = d.tick(self.model, t, self.active[d.name])
            if transition is not None:
                self.active[d.name] = transition.opens
                out.append((d.name, transition))
        self.next_tick = t + self.params.tick_s

    # -- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "model": self.model.to_dict(),
            "detectors": {d.name: d.state() for d in self.detectors},
            "active": self.active,
            "next_tick": self.next_tick,
        }

    def load(self, state: dict[str, Any]) -> bool:
        """Restore a saved state; False (and a blank monitor) if it is from another version."""
        if state.get("v") != STATE_VERSION:
            return False
        expected = self.model.expected
        self.model = ActivityModel.from_dict(self.params, state["model"])
        self.model.expected = expected
        for d in self.detectors:
            d.load(state["detectors"].get(d.name, {}))
        self.active = {d.name: bool(state["active"].get(d.name, False)) for d in self.detectors}
        self.next_tick = state["next_tick"]
        return True
