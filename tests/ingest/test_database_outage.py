"""Acceptance 4: the database stops for 30 s under load; ingest holds, recovers, loses nothing.

PostgreSQL is stopped for real: the test runs its own throwaway cluster so it can.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from simulators.basic import Publisher, ReadingGenerator, run_simulation
from storage.migrate import migrate
from tests.support.broker import Broker, free_port
from tests.support.ingest import IngestProcess
from tests.support.postgres import PrivateCluster
from tests.support.traffic import (
    dead_letters,
    publish_all,
    register_fleet,
    stored_readings,
    wait_until,
)

OUTAGE_S = 30
RECEIVE_MAXIMUM = 2_000


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    bindir = PrivateCluster.available()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) to run a private cluster")
    c = PrivateCluster(Path(tempfile.mkdtemp(prefix="pw-pg-")), free_port(), bindir)
    c.init()
    yield c
    c.destroy()


@pytest.mark.slow
def test_database_stopped_for_30_seconds(
    cluster: PrivateCluster,
    make_ingest: Callable[..., IngestProcess],
    broker: Broker,
    ids: tuple[str, str],
) -> None:
    council, prefix = ids
    migrate(cluster.url, "off")
    devices = register_fleet(cluster.url, council, per_kind=10)
    ingest = make_ingest(
        db_url=cluster.url, ingest_receive_maximum=str(RECEIVE_MAXIMUM), ingest_batch_max="1000"
    )
    ingest.start()
    proc = psutil.Process(ingest.pid)

    publisher = Publisher(broker.host, broker.port, qos=1)
    sent: list[int] = []
    duration = OUTAGE_S + 20
    worker = threading.Thread(
        target=lambda: sent.append(
            run_simulation(
                publisher, ReadingGenerator(devices, prefix), rate=400, duration_s=duration
            )
        )
    )
    worker.start()

    time.sleep(5)
    rss_before = proc.memory_info().rss
    cluster.stop()
    stopped = time.monotonic()
    rss, pending, ready = [], [], []
    while time.monotonic() - stopped < OUTAGE_S:
        rss.append(proc.memory_info().rss)
        pending.append(ingest.metric("placewatch_ingest_pending_messages"))
        ready.append(ingest.http("/readyz")[0])
        time.sleep(1)
    cluster.start()
    worker.join(duration + 30)
    assert publisher.wait_acked(60)
    publisher.close()

    with psycopg.connect(cluster.url, autocommit=True) as conn:
        wait_until(lambda: stored_readings(conn, council) >= sent[0], 120, f"{sent} readings")
        time.sleep(1)
        assert stored_readings(conn, council) == sent[0]
        assert dead_letters(conn, prefix) == []
    growth_mb = (max(rss) - rss_before) / 2**20
    print(
        f"published {sent[0]}; RSS before outage {rss_before / 2**20:.1f} MiB, "
        f"max growth during it {growth_mb:.1f} MiB; max pending {max(pending):.0f}"
    )
    assert ingest.alive() and ingest.starts == 1, "ingest must recover without a restart"
    assert 503 in ready, "/readyz must report the database outage"
    assert ingest.http("/readyz")[0] == 200
    # Backpressure: no more than Receive Maximum messages held, so memory stays bounded
    # (15,000+ messages were published during the outage; the broker kept them).
    assert RECEIVE_MAXIMUM / 2 <= max(pending) <= RECEIVE_MAXIMUM
    assert growth_mb < 40
    assert ingest.terminate() == 0


def test_sigterm_while_database_is_down_stops_in_bounded_time(
    cluster: PrivateCluster,
    make_ingest: Callable[..., IngestProcess],
    broker: Broker,
    ids: tuple[str, str],
) -> None:
    """Graceful stop cannot commit while the database is down: it gives up after the stop
    timeout, acknowledges nothing, and the next run stores everything."""
    council, prefix = ids
    migrate(cluster.url, "off")
    devices = register_fleet(cluster.url, council, per_kind=2)
    ingest = make_ingest(db_url=cluster.url, ingest_stop_timeout_s="5")
    ingest.start()
    cluster.stop()
    publish_all(
        broker, [m for _, m in zip(range(300), ReadingGenerator(devices, prefix), strict=False)]
    )
    wait_until(lambda: ingest.metric("placewatch_ingest_pending_messages") > 0, 10, "messages")
    started = time.monotonic()
    assert ingest.terminate(timeout=60) == 0
    took = time.monotonic() - started
    assert took < 5 + 10, f"stop took {took:.1f} s"
    cluster.start()
    ingest.start()
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        wait_until(lambda: stored_readings(conn, council) >= 300, 60, "300 readings")
        assert stored_readings(conn, council) == 300
