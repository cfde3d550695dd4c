"""One device's readings in event-time order, as columns, with the window helpers rules need."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


def _number(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    return float(v)


@dataclass
class Series:
    times: list[float]  # event time, epoch seconds, ascending and unique (the table's key)
    received: list[float]
    columns: dict[str, list[Any]]
    _prefix: dict[str, tuple[list[float], list[int]]] = field(default_factory=dict, repr=False)
    _hours: dict[str, list[int]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_rows(cls, names: list[str], rows: list[tuple[Any, ...]]) -> Series:
        """Rows of (time, received_at, *columns named in ``names``), sorted by time."""
        times = [r[0].timestamp() for r in rows]
        received = [r[1].timestamp() for r in rows]
        columns = {name: [r[2 + j] for r in rows] for j, name in enumerate(names)}
        return cls(times, received, columns)

    def __len__(self) -> int:
        return len(self.times)

    def first_index(self, t: float) -> int:
        """Index of the first reading at or after ``t``."""
        return bisect_left(self.times, t)

    def indices(self, start: float, end: float) -> range:
        """Indices of readings with start <= time <= end."""
        return range(bisect_left(self.times, start), bisect_right(self.times, end))

    def points(self, column: str, start: float, i: int) -> Iterator[tuple[float, float]]:
        """(time, value) of readings from ``start`` up to and including index ``i`` that have
        a number in ``column``."""
        values = self.columns[column]
        for j in range(self.first_index(start), i + 1):
            v = _number(values[j])
            if v is not None:
                yield self.times[j], v

    def mean(self, column: str, start: float, i: int) -> tuple[float | None, int]:
        """Mean and count of the numbers in ``column`` over (start, times[i]], in O(1) after a
        first pass (DAQI windows of 24 h are evaluated at every reading)."""
        sums, counts = self._prefix.get(column) or self._build_prefix(column)
        lo = bisect_right(self.times, start)
        n = counts[i + 1] - counts[lo]
        if n <= 0:
            return None, 0
        return (sums[i + 1] - sums[lo]) / n, n

    def hours_with_data(self, column: str, start: float, i: int) -> int:
        """Clock hours (UTC) with at least one number in ``column`` over (start, times[i]]: the
        data capture of an averaging window, in O(1) after a first pass."""
        marks = self._hours.get(column) or self._build_hours(column)
        lo = bisect_right(self.times, start)
        values = self.columns[column]
        first = next((j for j in range(lo, i + 1) if _number(values[j]) is not None), None)
        if first is None:
            return 0
        # The first reading of the window opens an hour even if an earlier one (before the
        # window) was in the same hour.
        return marks[i + 1] - marks[first + 1] + 1

    def _build_hours(self, column: str) -> list[int]:
        marks, previous = [0], None
        for t, v in zip(self.times, self.columns[column], strict=True):
            hour = int(t // 3600) if _number(v) is not None else None
            new = hour is not None and hour != previous
            marks.append(marks[-1] + new)
            if hour is not None:
                previous = hour
        self._hours[column] = marks
        return marks

    def _build_prefix(self, column: str) -> tuple[list[float], list[int]]:
        sums, counts = [0.0], [0]
        for v in self.columns[column]:
            x = _number(v)
            sums.append(sums[-1] + (x if x is not None else 0.0))
            counts.append(counts[-1] + (x is not None))
        self._prefix[column] = (sums, counts)
        return sums, counts


def least_squares_slope(points: list[tuple[float, float]]) -> float | None:
    """Slope (value per second) of the least-squares line through the points."""
    n = len(points)
    if n < 2:
        return None
    t0 = points[0][0]
    mean_t = sum(t - t0 for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - t0 - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - t0 - mean_t) * (v - mean_v) for t, v in points)
    return cov / var
