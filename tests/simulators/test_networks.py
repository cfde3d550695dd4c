"""The simulator's envelopes against ingest's adapters: six hours of the borough in ``mixed``
format (TTN for bins, school PM sensors and LoRaWAN homes; ChirpStack for gauges; SenML from
home hubs; native for the rest) are all stored, with the values the native format would have
given, and nothing is dead-lettered."""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from placewatch.cli import build_parser
from placewatch.settings import Settings
from simulators.commands import run_scenario_command
from storage.migrate import Flavour, migrate
from tests.support.broker import Broker
from tests.support.ingest import IngestProcess
from tests.support.postgres import create_database, drop_database

# One absolute window for both runs (a relative start would differ by the seconds between them),
# in the daytime whenever the test runs: a night's six hours carry fewer readings than it needs.
START = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=2)
WINDOW = ["--start", START.isoformat(), "--until", "+6h", "--seed", "4", "--no-progress"]
Rows = dict[str, list[tuple[Any, ...]]]
QUERIES = {
    "bin_fill": "SELECT device_id, time, fill_pct, distance_mm, tilt FROM bin_fill",
    "air_quality": "SELECT device_id, time, pm25_ugm3, pm10_ugm3, no2_ugm3 FROM air_quality",
    "flood_level": "SELECT device_id, time, level_m FROM flood_level",
    "home_activity": "SELECT device_id, time, resident_id, sensor, motion_count, door_open,"
    " power_w, occupied FROM home_activity",
}


def _store(flavour: Flavour, broker: Broker, fmt: str) -> Rows:
    url = create_database(f"pwtest_net_{flavour.value}")
    migrate(url, "on" if flavour is Flavour.TIMESCALEDB else "off")
    prefix = f"pwtest/{uuid.uuid4().hex[:10]}"
    ingest = IngestProcess(
        database_url=url,
        mqtt_port=broker.port,
        prefix=prefix,
        client_id=f"ingest-net-{uuid.uuid4().hex[:8]}",
        logdir=Path(tempfile.mkdtemp(prefix="pw-net-")),
        extra_env={"PLACEWATCH_INGEST_RULES_INBOX": "false"},
    )
    ingest.start()
    try:
        settings = Settings(
            database_url=url, mqtt_host=broker.host, mqtt_port=broker.port, topic_prefix=prefix
        )
        argv = ["simulate", "--scenario", "borough", "--format", fmt, *WINDOW]
        result = run_scenario_command(build_parser().parse_args(argv), settings)
        assert result.acknowledged and result.published > 5_000
        deadline = time.monotonic() + 120
        while ingest.metric("placewatch_ingest_acked_total") < result.published:
            assert time.monotonic() < deadline, ingest.log_tail()
            time.sleep(0.3)
        with psycopg.connect(url) as conn:
            letters = conn.execute("SELECT reason, detail, topic FROM dead_letters").fetchall()
            assert letters == [], letters[:5]
            return {kind: sorted(conn.execute(q).fetchall()) for kind, q in QUERIES.items()}
    finally:
        ingest.terminate()
        drop_database(url)


@pytest.fixture(scope="module")
def native(flavour: Flavour, broker: Broker) -> Rows:
    return _store(flavour, broker, "native")


@pytest.fixture(scope="module")
def mixed(flavour: Flavour, broker: Broker) -> Rows:
    return _store(flavour, broker, "mixed")


def test_every_network_lands_as_the_native_readings(native: Rows, mixed: Rows) -> None:
    for kind in QUERIES:
        assert len(mixed[kind]) == len(native[kind]) > 0, kind
        for a, b in zip(native[kind], mixed[kind], strict=True):
            assert a[:2] == b[:2], kind  # the same device and event time
            for x, y in zip(a[2:], b[2:], strict=True):
                if isinstance(x, float) and isinstance(y, float):
                    # The networks carry what the vendors send: whole % and mm, cm of water.
                    assert y == pytest.approx(x, abs=0.6 if kind == "bin_fill" else 0.006), (a, b)
                elif kind == "home_activity" or x is not None:
                    assert x == y, (a, b)
