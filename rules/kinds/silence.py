"""``silence``: a device, or all the devices of a resident's home (the hub) or of a site, not
heard within the expected interval. Evaluated on a timer (``rules.sweeps``) that wakes at the
earliest deadline, so detection lags the deadline by a query's time, not a polling period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise
from typing import Literal

from pydantic import Field

from rules.durations import Duration, format_duration
from rules.model import DeviceView, Rule, SubjectType, Transition
from rules.units import clock, iso


@dataclass(frozen=True)
class Heard:
    """A subject's last receive time and its silence limit (seconds)."""

    subject_type: SubjectType
    subject_id: str
    last_seen: float
    limit_s: float
    devices: int


# Not heard for this many expected intervals: silent (the rule's default; the API's device
# status uses the same).
SILENT_AFTER_INTERVALS = 3.0


class SilenceRule(Rule):
    """Alerts when a subject has not been heard for ``after``, or else for ``factor`` times each
    device's registered expected interval; clears when it is heard again. ``per: resident``
    watches a home as a whole (a hub offline), ``per: site`` a site."""

    kind: Literal["silence"]
    stream = False
    per: Literal["device", "resident", "site"] = "device"
    after: Duration | None = None
    factor: float = Field(default=SILENT_AFTER_INTERVALS, gt=1)

    def subject_of(self, device: DeviceView) -> tuple[SubjectType, str] | None:
        if self.per == "device":
            return "device", device.device_id
        subject = device.resident_id if self.per == "resident" else device.site
        return (self.per, subject) if subject else None

    def limit_s(self, device: DeviceView) -> float | None:
        if self.after is not None:
            return self.after.total_seconds()
        if device.expected_interval_s:
            return device.expected_interval_s * self.factor
        return None  # nothing says how often it should report

    def lookback(self) -> timedelta:
        return timedelta(0)

    def evaluate(self, heard: Heard, now: float, active: bool) -> Transition | None:
        deadline = heard.last_seen + heard.limit_s
        what = "device" if heard.subject_type == "device" else f"{heard.subject_type}'s devices"
        observed = {
            "last_seen": iso(heard.last_seen),
            "limit_s": heard.limit_s,
            "devices": heard.devices,
        }
        if not active and now >= deadline:
            summary = (
                f"{what} not heard since {clock(heard.last_seen)}: silent for "
                f"{format_duration(heard.limit_s)}"
            )
            return Transition(True, deadline, summary, observed)
        if active and now < deadline:
            summary = f"{what} heard again at {clock(heard.last_seen)}"
            return Transition(False, heard.last_seen, summary, observed)
        return None


def gaps(received: list[float], limit_s: float) -> list[tuple[float, float]]:
    """(silent from, heard again) for every gap reaching the limit (as live, which alerts at
    the deadline itself): the backtest of silence over stored receive times."""
    ordered = sorted(received)
    return [(a + limit_s, b) for a, b in pairwise(ordered) if b - a >= limit_s]
