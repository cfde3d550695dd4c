"""Load mode: a large fleet (10,000 devices by default) publishing valid native readings as
fast as the broker takes them, or at a set rate, from several processes (one Python process
tops out below what a benchmark needs; each worker has its own GIL and connection).

Each worker owns every P-th device of ``simulators.basic.fleet`` and publishes round-robin over
them with the wire publisher (QoS 1 by default, within the broker's Receive Maximum); event
times are the wall clock, distinct per device. The parent shows one progress bar over all.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

from placewatch.kinds import Kind
from simulators.basic import ReadingGenerator, fleet
from simulators.progress import Meter
from simulators.wire import WirePublisher

_COUNTER_EVERY = 256


@dataclass(frozen=True)
class LoadSpec:
    host: str
    port: int
    prefix: str
    council: str
    per_kind: int
    kinds: tuple[Kind, ...]
    processes: int
    qos: int = 1
    seed: int = 0
    rate: float = 0.0  # msg/s over all workers; 0 = as fast as possible
    count: int | None = None  # messages over all workers
    duration_s: float | None = None
    username: str | None = None
    password: str | None = None
    max_inflight: int | None = None

    @property
    def devices(self) -> int:
        return self.per_kind * len(self.kinds)


@dataclass(frozen=True)
class WorkerResult:
    worker: int
    sent: int
    acked: bool
    refused: int
    started: float  # time.time() of the first publish
    finished: float  # ... after the last PUBACK
    error: str | None = None


@dataclass(frozen=True)
class LoadResult:
    workers: list[WorkerResult]

    @property
    def sent(self) -> int:
        return sum(w.sent for w in self.workers)

    @property
    def seconds(self) -> float:
        if not self.workers:
            return 0.0
        return max(w.finished for w in self.workers) - min(w.started for w in self.workers)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def acknowledged(self) -> bool:
        return all(w.acked and w.error is None for w in self.workers) and not self.refused

    @property
    def refused(self) -> int:
        return sum(w.refused for w in self.workers)

    @property
    def errors(self) -> list[str]:
        return [f"worker {w.worker}: {w.error}" for w in self.workers if w.error]


def _quota(total: int | None, worker: int, workers: int) -> int | None:
    if total is None:
        return None
    return total // workers + (1 if worker < total % workers else 0)


def worker_main(
    spec: LoadSpec,
    worker: int,
    counter: Synchronized[int],
    stop: Event,
    out: mp.Queue[WorkerResult],
) -> None:
    devices = fleet(spec.council, spec.per_kind, spec.kinds)[worker :: spec.processes]
    quota = _quota(spec.count, worker, spec.processes)
    rate = spec.rate / spec.processes
    started = time.time()
    sent, acked, refused, error = 0, False, 0, None
    try:
        pub = WirePublisher(
            spec.host,
            spec.port,
            f"placewatch-load-{os.getpid()}-{worker}",
            qos=spec.qos,
            username=spec.username,
            password=spec.password,
            max_inflight=spec.max_inflight,
        )
        try:
            stream = iter(ReadingGenerator(devices, spec.prefix, seed=spec.seed * 1_000 + worker))
            deadline = time.monotonic() + spec.duration_s if spec.duration_s else math.inf
            t0 = time.monotonic()
            started = time.time()
            check_every = 1 if rate > 0 else _COUNTER_EVERY
            while quota is None or sent < quota:
                if sent % check_every == 0:
                    counter.value = sent
                    now = time.monotonic()
                    if stop.is_set() or now >= deadline:
                        break
                    if rate > 0 and (ahead := sent / rate - (now - t0)) > 0:
                        pub.flush()
                        time.sleep(ahead)
                topic, payload = next(stream)
                pub.publish(topic, payload)
                sent += 1
            acked = pub.wait_acked(timeout=120)
            refused = pub.refused
        finally:
            pub.close()
    except (OSError, ConnectionError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    counter.value = sent
    out.put(WorkerResult(worker, sent, acked, refused, started, time.time(), error))


def run_load(spec: LoadSpec, progress: bool = True) -> LoadResult:
    # spawn: children start clean (no inherited threads or connections of the parent).
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    results: mp.Queue[WorkerResult] = ctx.Queue()
    counters = [ctx.Value("q", 0, lock=False) for _ in range(spec.processes)]
    procs = [
        ctx.Process(
            target=worker_main,
            args=(spec, i, counters[i], stop, results),
            name=f"placewatch-load-{i}",
            daemon=True,
        )
        for i in range(spec.processes)
    ]
    total = spec.count if spec.count is not None else spec.duration_s
    title = f"load: {spec.devices:,} devices, {spec.processes} processes"
    collected: list[WorkerResult] = []
    for p in procs:
        p.start()
    t0 = time.monotonic()
    with Meter(title, total, progress) as meter:
        try:
            while len(collected) < len(procs):
                sent = sum(int(c.value) for c in counters)
                done = sent if spec.count is not None else time.monotonic() - t0
                meter.update(sent, done, "")
                try:
                    collected.append(results.get(timeout=0.25))
                except queue.Empty:
                    if not any(p.is_alive() for p in procs) and results.empty():
                        break
        except KeyboardInterrupt:
            stop.set()
            while len(collected) < len(procs):
                try:
                    collected.append(results.get(timeout=130))
                except queue.Empty:
                    break
        meter.update(
            sum(int(c.value) for c in counters), meter.progress.tasks[0].completed, force=True
        )
    for p in procs:
        p.join(timeout=10)
    missing = {p.name for i, p in enumerate(procs) if i not in {w.worker for w in collected}}
    collected += [
        WorkerResult(int(n.rsplit("-", 1)[1]), 0, False, 0, 0.0, 0.0, "exited without a result")
        for n in missing
    ]
    return LoadResult(sorted(collected, key=lambda w: w.worker))
