"""Faults real fleets produce, injected into a simulated stream on demand.

Per device (drawn once per run): ``clock_skew`` (its clock runs minutes to hours off: the stamp
is wrong, the uplink is on time) and ``silent`` (it stops for good at a random moment).
Per message: ``out_of_range`` (a value beyond its physical range), ``malformed`` (the payload
cut short: not valid JSON), ``duplicate`` (sent again a few messages later), ``late`` (held back
10 minutes to 6 hours of simulated time), ``out_of_order`` (swapped with the device's next
uplink). Rates are shares of devices or messages; the same seed injects the same faults.

``malformed`` and ``with_faults`` are the basic fleet's fixed cycle of bad messages
(``--bad-every``).
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from placewatch.kinds import Kind
from simulators.dynamics import US, Emission
from simulators.identity import rng
from simulators.spec import FaultRates

FAULTS = tuple(FaultRates.model_fields)


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


def parse_faults(text: str) -> FaultRates:
    """``--faults duplicate=0.01,late=0.005`` → rates (a bare name means 1 %)."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r} (one of {', '.join(FAULTS)})")
        try:
            rates[name] = float(value) if value else 0.01
        except ValueError:
            raise ValueError(f"{part!r}: the rate must be a number, e.g. {name}=0.01") from None
    return FaultRates.model_validate(rates)


def out_of_range(e: Emission) -> Emission:
    """The reading with one value beyond its physical range, in whatever format it is sent."""
    fields = dict(e.fields)
    kind = e.device.kind
    if kind is Kind.BIN_FILL:
        fields["distance_mm"] = -1
        fields["fill_pct"] = 140.0
    elif kind is Kind.AIR_QUALITY:
        key = "pm25_ugm3" if "pm25_ugm3" in fields else next(k for k in fields if "_ugm3" in k)
        fields[key] = -5.0
    elif kind is Kind.FLOOD_LEVEL:
        fields["level_m"] = 1_500.0
    elif fields.get("sensor") == "motion":
        fields["motion_count"] = -1
    elif fields.get("sensor") == "power":
        fields["power_w"] = 25_000.0
    else:
        fields["battery_pct"] = 140.0
    return replace(e, fields=fields)


@dataclass(frozen=True)
class Message:
    """A message on its way out: ``t_us`` is when (simulated) it is sent."""

    t_us: int
    topic: str
    payload: bytes
    device_id: str


class Injector:
    def __init__(self, rates: FaultRates, seed: int, start_us: int, end_us: int | None) -> None:
        self.rates = rates
        self.start_us = start_us
        self.span_us = (end_us - start_us) if end_us is not None else 7 * 86_400 * US
        self.seed = seed
        self.r = rng(seed, "faults")
        self._skew: dict[str, int] = {}
        self._silent_from: dict[str, float] = {}
        self._silenced: set[str] = set()
        self.injected: dict[str, int] = dict.fromkeys(FAULTS, 0)

    def _device_r(self, device_id: str) -> random.Random:
        return rng(self.seed, device_id, "faults")

    def emission(self, e: Emission) -> Emission | None:
        """Device faults and out-of-range values; None when the device is silent."""
        device_id = e.device.device_id
        if self.rates.silent:
            at = self._silent_from.get(device_id)
            if at is None:
                dr = self._device_r(device_id)
                hit = dr.random() < self.rates.silent
                at = self.start_us + dr.random() * self.span_us if hit else float("inf")
                self._silent_from[device_id] = at
            if e.t_us >= at:
                if device_id not in self._silenced:
                    self._silenced.add(device_id)
                    self.injected["silent"] += 1
                return None
        if self.rates.clock_skew:
            if device_id not in self._skew:
                dr = self._device_r(device_id)
                hit = dr.random() < self.rates.clock_skew
                # Minutes to hours either way; ahead by more than 5 min is refused by ingest.
                skew = dr.choice((-1, 1)) * dr.uniform(60, 4 * 3600) * US if hit else 0
                self._skew[device_id] = round(skew)
                self.injected["clock_skew"] += bool(hit)
            if self._skew[device_id]:
                e = replace(e, stamp_us=e.t_us + self._skew[device_id])
        if self.rates.out_of_range and self.r.random() < self.rates.out_of_range:
            self.injected["out_of_range"] += 1
            e = out_of_range(e)
        return e

    def messages(self, stream: Iterable[Message], bad_every: int = 0) -> Iterator[Message]:
        """Message faults, in the order they reach the broker."""
        late: list[tuple[int, int, Message]] = []  # (release time, order, message)
        held: dict[str, Message] = {}  # out of order: waits for the device's next message
        again: list[tuple[int, Message]] = []  # duplicates: (messages to wait, message)
        n = 0
        rates, r = self.rates, self.r
        for m in stream:
            while late and late[0][0] <= m.t_us:
                yield heapq.heappop(late)[2]
            if rates.malformed and r.random() < rates.malformed:
                self.injected["malformed"] += 1
                m = replace(m, payload=m.payload[: len(m.payload) // 2])
            if rates.late and r.random() < rates.late:
                self.injected["late"] += 1
                release = m.t_us + round(r.uniform(600, 6 * 3600) * US)
                heapq.heappush(late, (release, n, m))
                n += 1
                continue
            if rates.duplicate and r.random() < rates.duplicate:
                self.injected["duplicate"] += 1
                again.append((r.randint(0, 20), m))
            previous = held.pop(m.device_id, None)
            if previous is None and rates.out_of_order and r.random() < rates.out_of_order:
                self.injected["out_of_order"] += 1
                held[m.device_id] = m
                continue
            yield m
            if previous is not None:
                yield replace(previous, t_us=m.t_us)
            n += 1
            if bad_every and n % bad_every == 0:
                yield replace(m, payload=m.payload[: len(m.payload) // 2])
            if again:
                due = [x for x in again if x[0] <= 0]
                again = [(k - 1, x) for k, x in again if k > 0]
                for _, dup in due:
                    yield replace(dup, t_us=m.t_us)
        # The end of the run: what is still held goes out now.
        yield from held.values()
        yield from (x[2] for x in sorted(late))
        yield from (x[1] for x in again)
