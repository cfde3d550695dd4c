"""A resident's baseline: their own recent valid days, and the statistics the detectors use.

Only valid days count (an outage day is no evidence of anything). Days of the same type
(weekday or weekend) are preferred when there are enough of them; otherwise all are pooled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from care.activity import ActivityModel, DaySummary

MIN_SAME_TYPE = 4  # weekend (or weekday) days needed before a baseline uses only that type


def baseline_days(
    m: ActivityModel, t: float, *, by_day_type: bool, exclude: Iterable[int] = ()
) -> list[DaySummary]:
    """The last ``window_days`` valid days before today, less the excluded ones; with
    ``by_day_type``, only today's type (weekday or weekend) when enough of it is known."""
    left_out = set(exclude)
    valid = [d for d in m.days if d.valid and d.day not in left_out][-m.p.window_days :]
    if not by_day_type:
        return valid
    weekend = m.local.dt(t).weekday() >= 5
    same = [d for d in valid if d.weekend == weekend]
    return same if len(same) >= MIN_SAME_TYPE else valid


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (q = 1 is the maximum)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class CountFit:
    """Mean and variance of a daily count; a negative binomial when over-dispersed, else
    Poisson (both by the method of moments)."""

    mean: float
    var: float

    @classmethod
    def of(cls, values: Sequence[float]) -> CountFit:
        n = len(values)
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else mean
        return cls(mean, max(var, mean, 1.0))

    @property
    def sd(self) -> float:
        return math.sqrt(self.var)

    def lower_tail(self, x: float) -> float:
        """P(X <= x)."""
        k_max = math.floor(x)
        if k_max < 0:
            return 0.0
        mu = max(self.mean, 1e-9)
        poisson = self.var <= mu * 1.0001
        r = 0.0 if poisson else mu * mu / (self.var - mu)
        p = 0.0 if poisson else r / (r + mu)
        pmf = math.exp(-mu if poisson else r * math.log(p))
        total = pmf
        for k in range(k_max):
            pmf *= mu / (k + 1) if poisson else (k + r) / (k + 1) * (1 - p)
            total += pmf
        return min(total, 1.0)
