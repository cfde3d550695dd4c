"""Shared fixtures: a private Mosquitto from the project's config, one fresh database per storage
flavour on the configured PostgreSQL, and ingest processes.

Storage flavours: ``postgres`` always; ``timescaledb`` as well whenever the server behind
``PLACEWATCH_TEST_DATABASE_URL`` offers and preloads the extension. The header of every run says
which ran.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from placewatch.embedded.resolve import _redact
from storage.migrate import Flavour, migrate
from tests.support.broker import Broker, free_port
from tests.support.ingest import IngestProcess
from tests.support.pipeline import Pipeline
from tests.support.postgres import (
    ADMIN_URL,
    create_database,
    drop_database,
    server_source,
    stop_server,
    timescaledb_ready,
)

_TS_READY, _TS_WHY = timescaledb_ready()
FLAVOURS = [Flavour.POSTGRES, *([Flavour.TIMESCALEDB] if _TS_READY else [])]


def pytest_report_header(config: pytest.Config) -> list[str]:
    ran = ", ".join(f.value for f in FLAVOURS)
    return [
        f"placewatch storage flavours under test: {ran} "
        f"(server {_redact(ADMIN_URL)}, {server_source()})",
        f"timescaledb: {'yes' if _TS_READY else 'no'} - {_TS_WHY}",
    ]


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_server()  # an embedded test server, if this run started one


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "timescaledb_only: runs only when the test server has TimescaleDB"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "flavour" in metafunc.fixturenames:
        params = [pytest.param(f, id=f.value) for f in FLAVOURS]
        if metafunc.definition.get_closest_marker("timescaledb_only"):
            params = [
                pytest.param(
                    Flavour.TIMESCALEDB,
                    id="timescaledb",
                    marks=()
                    if _TS_READY
                    else pytest.mark.skip(reason=f"no TimescaleDB: {_TS_WHY}"),
                )
            ]
        metafunc.parametrize("flavour", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def flavour(request: pytest.FixtureRequest) -> Flavour:
    value: Flavour = request.param
    return value


@pytest.fixture(scope="session")
def database_url(flavour: Flavour) -> Iterator[str]:
    """A fresh, migrated database of the given flavour, dropped after the run."""
    url = create_database(f"pwtest_{flavour.value}")
    result = migrate(url, "on" if flavour is Flavour.TIMESCALEDB else "off")
    assert result.flavour is flavour
    yield url
    drop_database(url)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    workdir = Path(tempfile.mkdtemp(prefix="pw-mosquitto-"))
    b = Broker("127.0.0.1", free_port(), workdir)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def ids() -> tuple[str, str]:
    """A council id and topic prefix of this test's own, so tests never see each other's data."""
    tag = uuid.uuid4().hex[:10]
    return f"c{tag}", f"pwtest/{tag}"


@pytest.fixture
def make_ingest(
    database_url: str, broker: Broker, ids: tuple[str, str], tmp_path: Path
) -> Iterator[Callable[..., IngestProcess]]:
    started: list[IngestProcess] = []

    def make(db_url: str | None = None, **env: str) -> IngestProcess:
        proc = IngestProcess(
            database_url=db_url or database_url,
            mqtt_port=broker.port,
            prefix=ids[1],
            client_id=f"ingest-{ids[0]}-{len(started)}",
            logdir=tmp_path,
            extra_env={f"PLACEWATCH_{k.upper()}": v for k, v in env.items()},
        )
        started.append(proc)
        return proc

    yield make
    for proc in started:
        if proc.alive():
            proc.kill()


@pytest.fixture
def pipe(
    ids: tuple[str, str],
    broker: Broker,
    database_url: str,
    conn: psycopg.Connection[tuple[object, ...]],
    make_ingest: Callable[..., IngestProcess],
) -> Pipeline:
    return Pipeline(ids[0], ids[1], broker, database_url, conn, make_ingest)


@pytest.fixture
def fresh_database(flavour: Flavour) -> Iterator[str]:
    """A database of its own for one test (for tests whose workers take every row there is)."""
    url = create_database(f"pwtest1_{flavour.value}")
    migrate(url, "on" if flavour is Flavour.TIMESCALEDB else "off")
    yield url
    drop_database(url)
