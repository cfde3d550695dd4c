"""Run a scenario: merge every device's emissions in time order, inject faults, wrap each in
its format, and publish it when the time mode says so."""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from itertools import chain
from operator import attrgetter

from simulators.clock import TimePlan
from simulators.dynamics import US, Emission, streams
from simulators.envelopes import Encoder, Format, when
from simulators.faults import Injector, Message
from simulators.progress import Meter
from simulators.scenario import Scenario
from simulators.sinks import Sink
from simulators.spec import FaultRates
from simulators.timeline import Timeline

_MAX_SLEEP_S = 0.25


def emissions(
    scenario: Scenario, seed: int, start: datetime, until: datetime | None
) -> Iterator[Emission]:
    """Every device's emissions from ``start`` to ``until`` (None: for ever), in time order.
    Ties keep the scenario's device order, so the sequence is the same on every run."""
    timeline = Timeline(scenario, seed, start, until)
    return heapq.merge(*streams(timeline), key=attrgetter("t_us"))


@dataclass
class RunResult:
    published: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    faults: dict[str, int] = field(default_factory=dict)
    acknowledged: bool = True
    seconds: float = 0.0
    first: datetime | None = None
    last: datetime | None = None
    stopped_by: str = "end of the run"
    plan: TimePlan | None = None


@dataclass
class RunOptions:
    prefix: str
    fmt: Format = "native"
    seed: int = 0
    faults: FaultRates = field(default_factory=FaultRates)
    bad_every: int = 0
    count: int | None = None
    duration_s: float | None = None
    rate: float = 0.0  # most messages per second; 0 = no cap
    max_backlog: int = 10_000
    progress: bool = True


def run(scenario: Scenario, plan: TimePlan, sink: Sink, options: RunOptions) -> RunResult:
    result = RunResult(plan=plan)
    start_us = round(plan.start.timestamp() * US)
    until_us = round(plan.until.timestamp() * US) if plan.until else None
    injector = Injector(options.faults, options.seed, start_us, until_us)
    encoder = Encoder(scenario, options.prefix, options.fmt, options.seed)

    def messages() -> Iterator[Message]:
        for e in emissions(scenario, options.seed, plan.start, plan.until):
            faulty = injector.emission(e)
            if faulty is None:
                continue
            result.by_kind[e.device.kind.value] += 1
            topic, payload = encoder.encode(faulty)
            yield Message(e.t_us, topic, payload, e.device.device_id)

    span = (until_us - start_us) / US if until_us is not None else None
    title = f"{scenario.name}: {plan.mode}"
    stream = injector.messages(messages(), options.bad_every)
    head = next(stream, None)  # priming every device's generator takes a moment:
    plan = replace(plan, wall_start=time.time())  # the schedule starts when publishing can
    result.plan = plan
    wall0 = time.monotonic()
    first_us, last_us = 2**63, -(2**63)
    with Meter(title, span, options.progress) as meter:
        try:
            for m in chain([head] if head else [], stream):
                if options.count is not None and result.published >= options.count:
                    result.stopped_by = "--count"
                    break
                if not _wait(plan, m, sink, options, result, wall0, meter, start_us):
                    result.stopped_by = "--duration"
                    break
                sink.publish(m.topic, m.payload)
                result.published += 1
                first_us = min(first_us, m.t_us)
                last_us = max(last_us, m.t_us)
                meter.update(result.published, (m.t_us - start_us) / US, partial(_note, m))
        except KeyboardInterrupt:
            result.stopped_by = "interrupted"
        done = span if result.stopped_by == "end of the run" and span else None
        meter.update(result.published, done or meter.progress.tasks[0].completed, force=True)
    if result.published:
        result.first, result.last = when(first_us), when(last_us)
    result.acknowledged = sink.wait_acked(timeout=120)
    result.seconds = time.monotonic() - wall0
    result.faults = {k: v for k, v in injector.injected.items() if v}
    return result


def _note(m: Message) -> str:
    return f"sim {when(m.t_us):%Y-%m-%d %H:%M} UTC"


def _wait(
    plan: TimePlan,
    m: Message,
    sink: Sink,
    options: RunOptions,
    result: RunResult,
    wall0: float,
    meter: Meter,
    start_us: int,
) -> bool:
    """Sleep until the message is due (time mode, rate cap, publisher backlog). False when the
    run's --duration ends first."""
    due = plan.due(m.t_us / US)
    if options.rate > 0:
        due = max(due, time.time() - (time.monotonic() - wall0) + result.published / options.rate)
    deadline = wall0 + options.duration_s if options.duration_s is not None else None
    flushed = False
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            return False
        left = due - time.time()
        if left <= 0 and sink.backlog() <= options.max_backlog:
            return True
        if not flushed:
            sink.flush()  # nothing may sit in a buffer while we wait
            flushed = True
        meter.update(result.published, (m.t_us - start_us) / US, partial(_note, m))
        time.sleep(min(_MAX_SLEEP_S, max(left, 0.001)))
