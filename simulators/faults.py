"""Malformed messages mixed into a simulated stream, to see dead letters in a demo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime


def malformed(prefix: str, council: str, i: int) -> tuple[str, bytes]:
    """The i-th of a small cycle of faults real devices produce."""
    now = datetime.now(UTC).isoformat()
    faults = [
        (f"{prefix}/{council}/bin_fill/bin-00000", {"time": now, "fill_pct": 140 + i}),
        (f"{prefix}/{council}/air_quality/aq-00000", {"time": now, "pm25_ugm3": -1 - i}),
        (f"{prefix}/{council}/flood_level/unregistered-{i}", {"time": now, "level_m": 1.2}),
        (f"{prefix}/{council}/flood_level/gauge-00000", f'{{"time": "{now}", "level_m": '),
    ]
    topic, body = faults[i % len(faults)]
    return topic, (body if isinstance(body, str) else json.dumps(body)).encode()


def with_faults(
    stream: Iterator[tuple[str, bytes]], prefix: str, council: str, every: int
) -> Iterator[tuple[str, bytes]]:
    """Yield ``stream`` with one malformed message after every ``every`` good ones."""
    for n, item in enumerate(stream, start=1):
        yield item
        if every and n % every == 0:
            yield malformed(prefix, council, n // every)
