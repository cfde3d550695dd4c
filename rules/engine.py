"""Stepping a stream rule through one subject's readings, the same way live and in backtests.

A rule is evaluated at every reading in event-time order and sees only readings within its
lookback, so the outcome at a reading depends on the stored data and on whether the condition
was already active (hysteresis) - not on batch boundaries or on which worker ran it. Transitions
only ever move forward in event time: after a transition at t, a late reading can change what
happens after t, never before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rules.model import DeviceView, Rule, Transition
from rules.series import Series


@dataclass
class SubjectState:
    """A rule's memory of one subject (persisted in ``rule_state``)."""

    active: bool = False
    alert_id: int | None = None
    last_transition_at: float | None = None
    evaluated_until: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


def step_through(
    rule: Rule,
    device: DeviceView,
    series: Series,
    state: SubjectState,
    start: float,
    end: float,
) -> list[Transition]:
    """Evaluate ``rule`` at every reading with start <= time <= end (but after the last
    transition), updating ``state``; returns the transitions in order."""
    out: list[Transition] = []
    if state.last_transition_at is not None and start <= state.last_transition_at:
        start = state.last_transition_at + 1e-6
    for i in series.indices(start, end):
        transition = rule.step(device, series, i, state.active)
        if transition is None:
            continue
        state.active = transition.opens
        state.last_transition_at = transition.at
        out.append(transition)
    if state.evaluated_until is None or end > state.evaluated_until:
        state.evaluated_until = end
    return out
