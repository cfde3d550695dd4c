"""Faults on demand: each fault the injector reports is in the stream, and what ingest makes of
it is what the fault means (malformed → invalid JSON, out of range → the field named, a clock
ahead → future timestamp); without faults every message is a valid, distinct reading."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from ingest.decode import Decoded, DecodeOptions, Rejected, decode
from ingest.mqtt import Message
from simulators.clock import plan_times
from simulators.engine import RunOptions, run
from simulators.faults import parse_faults
from simulators.scenario import load_scenario
from tests.simulators.test_time_modes import RecordingSink

START = "2026-11-02T00:00:00+00:00"


def _run(faults: str, seed: int = 5) -> tuple[RecordingSink, dict[str, int]]:
    scenario = load_scenario("borough")
    plan = plan_times(
        now=datetime.now(UTC), tz=scenario.timezone, backfill=None, speed=None, start=START,
        until="+12h",
    )  # fmt: skip
    sink = RecordingSink()
    rates = parse_faults(faults) if faults else parse_faults("")
    options = RunOptions(prefix="pw", seed=seed, faults=rates, progress=False)
    result = run(scenario, plan, sink, options)
    return sink, result.faults


def _decode(topic: str, payload: bytes, received: float) -> Decoded | Rejected:
    out = decode(Message(topic, payload, 1, False, received, 1), DecodeOptions("pw"))
    assert not isinstance(out, list), "native messages decode at once"
    return out


def test_parse_faults() -> None:
    rates = parse_faults("duplicate=0.02, late, silent=0.1")
    assert (rates.duplicate, rates.late, rates.silent, rates.malformed) == (0.02, 0.01, 0.1, 0)
    with pytest.raises(ValueError, match="unknown fault 'typo'"):
        parse_faults("typo=0.1")
    with pytest.raises(ValueError):
        parse_faults("late=2")


def test_without_faults_every_message_is_a_distinct_valid_reading() -> None:
    sink, injected = _run("")
    assert injected == {}
    keys = set()
    for _, topic, payload in sink.sent:
        out = _decode(topic, payload, datetime.fromisoformat(START).timestamp() + 86_400)
        assert isinstance(out, Decoded), (topic, payload, out)
        keys.add((out.address.device_id, out.reading.time))
    assert len(keys) == len(sink.sent)


def test_each_fault_shows_as_what_it_means() -> None:
    sink, injected = _run(
        "malformed=0.01,out_of_range=0.01,duplicate=0.01,late=0.01,out_of_order=0.01,clock_skew=0.1"
    )
    assert set(injected) == {
        "malformed", "out_of_range", "duplicate", "late", "out_of_order", "clock_skew"
    }  # fmt: skip
    received = datetime.fromisoformat(START).timestamp() + 13 * 3600  # after the run's end
    reasons: Counter[str] = Counter()
    copies = Counter((topic, payload) for _, topic, payload in sink.sent)
    times: defaultdict[str, list[float]] = defaultdict(list)
    for _, topic, payload in sink.sent:
        out = _decode(topic, payload, received)
        if isinstance(out, Rejected):
            reasons[out.reason] += 1
            if out.reason == "out_of_range":
                assert any(
                    f in out.detail
                    for f in (
                        "distance_mm",
                        "_ugm3",
                        "level_m",
                        "motion_count",
                        "power_w",
                        "battery_pct",
                    )
                )
            continue
        times[out.address.device_id].append(out.reading.time.timestamp())
    # Malformed and out-of-range: exactly as many dead letters (a duplicate copy of a bad
    # message is bad again, hence at least).
    assert reasons["invalid_json"] >= injected["malformed"]
    assert reasons["out_of_range"] >= injected["out_of_range"]
    assert set(reasons) <= {"invalid_json", "out_of_range", "future_timestamp"}
    assert sum(n - 1 for n in copies.values()) == injected["duplicate"]
    # Late and out of order: a device's stamps go backwards that many times at least.
    backwards = sum(sum(1 for a, b in pairwise(ts) if b < a) for ts in times.values())
    assert backwards >= (injected["late"] + injected["out_of_order"]) * 0.8


def _per_device(sink: RecordingSink) -> Counter[str]:
    return Counter(topic.rsplit("/", 1)[1] for _, topic, _ in sink.sent)


def test_silent_devices_stop_for_good() -> None:
    clean, _ = _run("")
    silent, injected = _run("silent=0.05")
    before, after = _per_device(clean), _per_device(silent)
    fewer = {d for d in before if after[d] < before[d]}
    assert len(fewer) == injected["silent"] > 10
    # ... and what they did send is the start of what they would have sent.
    first = {d: [p for _, t, p in clean.sent if t.endswith("/" + d)] for d in fewer}
    for d in fewer:
        sent = [p for _, t, p in silent.sent if t.endswith("/" + d)]
        assert sent == first[d][: len(sent)]


def test_skewed_clocks_stamp_the_wrong_time() -> None:
    clean, _ = _run("")
    skewed, injected = _run("clock_skew=0.2")
    assert injected["clock_skew"] > 50

    def stamps(sink: RecordingSink) -> dict[tuple[str, int], str]:
        return {(t, i): json.loads(p).get("time", "") for i, (_, t, p) in enumerate(sink.sent)}

    a, b = stamps(clean), stamps(skewed)
    assert len(a) == len(b)
    differs = {t for (t, i), v in a.items() if b.get((t, i)) != v}
    assert len(differs) >= injected["clock_skew"] * 0.9
