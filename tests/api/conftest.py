"""A small world for the API tests, in a database of each module's own: two councils, carer
teams with different caseloads, operations teams for street sensors, API keys, devices and
alerts written the way the rules engine writes them (row, audit event, outbox) - and the API
itself as a real uvicorn process over HTTP.

Council A: carers-a (residents r-a1, r-a2), carers-b (r-b1), ops-a (street kinds).
Council B: carers-x (every resident of council B: "*"), with resident r-x1.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from placewatch.kinds import Kind
from storage.migrate import migrate
from storage.registry import DeviceSpec, register
from teams.config import TeamsFile, apply_teams
from teams.keys import SCOPES, new_key
from tests.support.alerts import open_test_alert
from tests.support.api_server import ApiServer, serve_api
from tests.support.postgres import create_database, drop_database

A, B = "council-a", "council-b"
STREET = ["bin_fill", "flood_level", "air_quality"]

TEAMS = {
    A: {
        "council": A,
        "resident_groups": {"caseload-a": ["r-a1", "r-a2"], "caseload-b": ["r-b1"]},
        "teams": [
            {
                "id": "carers-a",
                "name": "North telecare team",
                "routes": [{"residents": "caseload-a"}],
            },
            {
                "id": "carers-b",
                "name": "South telecare team",
                "routes": [{"residents": "caseload-b"}],
            },
            {"id": "ops-a", "name": "Street operations", "routes": [{"kinds": STREET}]},
        ],
    },
    B: {
        "council": B,
        "teams": [{"id": "carers-x", "name": "Borough B carers", "routes": [{"residents": "*"}]}],
    },
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    database_url: str

    def setup(self) -> None:
        with psycopg.connect(self.database_url) as conn:
            for council, spec in TEAMS.items():
                register(conn, council, f"Council {council[-1].upper()}", self._devices(council))
                apply_teams(conn, TeamsFile.model_validate(spec))

    @staticmethod
    def _devices(council: str) -> list[DeviceSpec]:
        if council == B:
            return [
                DeviceSpec(B, "home-x1", Kind.HOME_ACTIVITY, site="b-flats", resident_id="r-x1")
            ]
        return [
            DeviceSpec(
                A, "bin-1", Kind.BIN_FILL, site="high-st", ward="north", expected_interval_s=600
            ),
            DeviceSpec(
                A, "bin-2", Kind.BIN_FILL, site="market", ward="south", expected_interval_s=600
            ),
            DeviceSpec(A, "flood-1", Kind.FLOOD_LEVEL, site="river", ward="north"),
            DeviceSpec(
                A,
                "home-a1",
                Kind.HOME_ACTIVITY,
                site="elm-court",
                resident_id="r-a1",
                expected_interval_s=300,
            ),
            DeviceSpec(
                A,
                "home-b1",
                Kind.HOME_ACTIVITY,
                site="oak-road",
                resident_id="r-b1",
                expected_interval_s=300,
            ),
        ]

    def execute(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, *params: Any) -> Any:
        rows = self.execute(sql, *params)
        return next(iter(rows[0].values())) if rows else None

    def key(
        self,
        team: str,
        scopes: Sequence[str] = SCOPES,
        *,
        revoked: bool = False,
        expires_at: datetime | None = None,
    ) -> str:
        """A new API key of ``team`` (the token, as ``placewatch keys create`` prints it)."""
        key = new_key()
        self.execute(
            """INSERT INTO api_keys (key_id, team_id, secret_hash, scopes, expires_at, revoked_at)
               VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)""",
            key.key_id,
            team,
            key.secret_hash,
            list(scopes),
            expires_at,
            revoked,
        )
        return key.token

    def alert(
        self,
        council: str = A,
        *,
        kind: str = "bin_fill",
        site: str | None = "high-st",
        resident: str | None = None,
        severity: str = "warning",
        rule_id: str | None = None,
        subject: tuple[str, str] | None = None,
        summary: str = "fill 91 % above 80 %",
        observed: dict[str, Any] | None = None,
        opened_at: datetime | None = None,
    ) -> int:
        """An open alert written as the rules engine writes one: row, 'opened' event, outbox."""
        subject_type, subject_id = subject or (
            ("resident", resident) if resident else ("device", f"dev-{uuid.uuid4().hex[:8]}")
        )

        return open_test_alert(
            self.database_url,
            council,
            rule_id or f"rule-{uuid.uuid4().hex[:6]}",
            (subject_type, subject_id),
            kind=kind,
            site=site,
            resident=resident,
            severity=severity,
            summary=summary,
            observed=observed,
            opened_at=opened_at,
        )

    def care_alert(self, resident: str = "r-a1", council: str = A, **kw: Any) -> int:
        kw.setdefault("site", "elm-court")
        return self.alert(council, kind="home_activity", resident=resident, **kw)

    def audit_rows(self, after_id: int = 0) -> list[dict[str, Any]]:
        return self.execute("SELECT * FROM access_audit WHERE id > %s ORDER BY id", after_id)

    def last_audit_id(self) -> int:
        return int(self.scalar("SELECT coalesce(max(id), 0) FROM access_audit"))


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    url = create_database("pwtest_api")
    migrate(url, "off")
    w = World(url)
    w.setup()
    yield w
    drop_database(url)


@pytest.fixture(scope="module")
def api(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with serve_api(world.database_url, tmp_path_factory.mktemp("api")) as server:
        yield server


@pytest.fixture(scope="module")
def http(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def keys(world: World) -> dict[str, str]:
    """One full-scope key per team."""
    return {team: world.key(team) for team in ("carers-a", "carers-b", "ops-a", "carers-x")}


def ago(**kw: float) -> datetime:
    return datetime.now(UTC) - timedelta(**kw)
