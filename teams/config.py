"""The teams file: teams, what each may see (routes), their webhook endpoints, and the resident
groups carer teams are routed by. Applied with ``placewatch teams apply FILE``.

Declarative for what it names: a team's routes and endpoints become exactly those in the file,
a group's members exactly those listed. Teams and groups the file does not name are left alone.
Webhook secrets never sit in the file: ``secret_env`` names an environment variable,
``secret_file`` a file; with neither, an endpoint keeps its secret or gets a new one, printed once.

    council: camden
    resident_groups:
      north-caseload: [res-0001, res-0002]
    teams:
      - id: north-carers
        name: North telecare team
        routes:
          - residents: north-caseload
        webhooks:
          - id: north-carers-crm
            url: https://crm.example.org/hooks/placewatch
            secret_env: NORTH_CARERS_WEBHOOK_SECRET
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import psycopg
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from notify.signing import new_secret, secret_key
from notify.targets import TargetPolicy
from placewatch.kinds import KINDS
from placewatch.yamlconfig import ConfigLoadError, ConfigProblem, load_yaml, locate

_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Severity = Literal["info", "warning", "critical"]
SensorKind = Literal["bin_fill", "air_quality", "flood_level", "home_activity"]
assert set(SensorKind.__args__) == {k.value for k in KINDS}  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteSpec(_Strict):
    # An empty list would match nothing: left out it matches anything, so say one or omit it.
    sites: list[str] | None = Field(default=None, min_length=1)
    kinds: list[SensorKind] | None = Field(default=None, min_length=1)
    rules: list[str] | None = Field(default=None, min_length=1)
    min_severity: Severity | None = None
    # Omitted: street alerts only. "*": every resident's alerts. A group id: its residents only.
    residents: str | None = None


class WebhookSpec(_Strict):
    id: str = Field(pattern=_ID)
    url: str = Field(pattern=r"^https?://[^\s]+$")
    secret_env: str | None = None
    secret_file: Path | None = None
    max_concurrency: int = Field(default=4, ge=1, le=64)
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _url_httpx_accepts(cls, url: str) -> str:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a usable URL: {exc}") from exc
        if not parsed.host:
            raise ValueError("the URL has no host")
        return url

    @model_validator(mode="after")
    def _one_secret_source(self) -> WebhookSpec:
        if self.secret_env and self.secret_file:
            raise ValueError("give secret_env or secret_file, not both")
        return self


class TeamSpec(_Strict):
    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    routes: list[RouteSpec] = Field(min_length=1)
    webhooks: list[WebhookSpec] = Field(default_factory=list)


class TeamsFile(_Strict):
    council: str = Field(pattern=_ID)
    resident_groups: dict[str, list[str]] = Field(default_factory=dict)
    teams: list[TeamSpec] = Field(default_factory=list)

    @field_validator("resident_groups")
    @classmethod
    def _no_star_group(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        if "*" in groups:
            raise ValueError("'*' means every resident and cannot be a group id")
        return groups


_ADAPTER = TypeAdapter(TeamsFile)


def load_teams_file(path: Path) -> TeamsFile:
    problems: list[ConfigProblem] = []
    loaded = load_yaml(path, _ADAPTER, problems)
    if problems:
        raise ConfigLoadError(problems)
    if loaded.value is None:
        raise ConfigLoadError([ConfigProblem(str(path), None, "", "the file is empty")])
    spec = loaded.value
    # Ids are unique across the file; a repeat is reported where it is, naming the first.
    for what, places in (
        ("team", [(("teams", i, "id"), t.id) for i, t in enumerate(spec.teams)]),
        (
            "webhook",
            [
                (("teams", i, "webhooks", j, "id"), w.id)
                for i, t in enumerate(spec.teams)
                for j, w in enumerate(t.webhooks)
            ],
        ),
    ):
        first: dict[str, int | None] = {}
        for loc, ident in places:
            line = loaded.line_of(loc)
            if ident in first:
                field = locate(loaded.doc, loc, ())[0]
                message = f"{what} id {ident!r} is already used at line {first[ident]}"
                problems.append(ConfigProblem(str(path), line, field, message))
            else:
                first[ident] = line
    if problems:
        raise ConfigLoadError(problems)
    return spec


def _secret_from(spec: WebhookSpec) -> str | None:
    if spec.secret_env:
        value = os.environ.get(spec.secret_env)
        if not value:
            raise ValueError(f"webhook {spec.id}: environment variable {spec.secret_env} is unset")
    elif spec.secret_file:
        try:
            value = spec.secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"webhook {spec.id}: cannot read secret_file: {exc}") from exc
    else:
        return None
    try:
        secret_key(value)
    except ValueError as exc:
        raise ValueError(f"webhook {spec.id}: {exc}") from exc
    return value


@dataclass
class ApplyResult:
    teams: list[str] = field(default_factory=list)
    new_secrets: dict[str, str] = field(default_factory=dict)


def target_refusals(spec: TeamsFile, targets: TargetPolicy) -> list[str]:
    """Endpoints whose URL the target policy refuses, without resolving DNS (a name resolves
    where the dispatcher runs, which checks every address before connecting)."""
    return [
        f"team {team.id}, webhook {hook.id}: {hook.url} is refused: {refusal}"
        for team in spec.teams
        for hook in team.webhooks
        if (refusal := targets.url_refusal(hook.url))
    ]


def apply_teams(
    conn: psycopg.Connection[tuple[object, ...]],
    spec: TeamsFile,
    targets: TargetPolicy | None = None,
) -> ApplyResult:
    """Write the file's teams, routes, endpoints and groups in one transaction.

    Nothing is written if an endpoint's URL fails ``targets`` (by default the strict policy:
    https, public addresses; ``placewatch teams apply`` passes the one from the settings)."""
    if refused := target_refusals(spec, targets or TargetPolicy()):
        raise ValueError(
            "webhook targets refused (see docs/delivery.md, Webhook targets):\n  "
            + "\n  ".join(refused)
        )
    result = ApplyResult()
    secrets = {w.id: _secret_from(w) for t in spec.teams for w in t.webhooks}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT 1 FROM councils WHERE council_id = %s", (spec.council,))
        if cur.fetchone() is None:
            raise ValueError(f"council {spec.council!r} is not registered")
        for group, members in spec.resident_groups.items():
            cur.execute(
                "DELETE FROM resident_groups WHERE council_id = %s AND group_id = %s",
                (spec.council, group),
            )
            cur.executemany(
                "INSERT INTO resident_groups (council_id, group_id, resident_id)"
                " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(spec.council, group, r) for r in members],
            )
        # A route naming a group that exists nowhere would silently match no one.
        named = {
            r.residents for t in spec.teams for r in t.routes if r.residents not in (None, "*")
        }
        cur.execute(
            "SELECT DISTINCT group_id FROM resident_groups WHERE council_id = %s",
            (spec.council,),
        )
        known = {str(r[0]) for r in cur.fetchall()} | set(spec.resident_groups)
        if unknown := sorted(named - known):
            raise ValueError(
                f"routes name resident groups that do not exist in council {spec.council}: "
                + ", ".join(unknown)
                + " (define them under resident_groups)"
            )
        for team in spec.teams:
            cur.execute(
                """INSERT INTO teams (team_id, council_id, name) VALUES (%s, %s, %s)
                   ON CONFLICT (team_id) DO UPDATE SET name = excluded.name, updated_at = now()
                   WHERE teams.council_id = excluded.council_id
                   RETURNING team_id""",
                (team.id, spec.council, team.name),
            )
            if cur.fetchone() is None:
                raise ValueError(f"team {team.id!r} already belongs to another council")
            cur.execute("DELETE FROM team_routes WHERE team_id = %s", (team.id,))
            cur.executemany(
                """INSERT INTO team_routes (team_id, sites, sensor_kinds, rule_ids,
                                            min_severity, resident_group)
                   VALUES (%s, %s, %s, %s, %s, %s)""",
                [
                    (team.id, r.sites, r.kinds, r.rules, r.min_severity, r.residents)
                    for r in team.routes
                ],
            )
            cur.execute(
                "DELETE FROM webhook_endpoints WHERE team_id = %s AND NOT endpoint_id = ANY(%s)"
                " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
                "                 WHERE d.endpoint_id = webhook_endpoints.endpoint_id)",
                (team.id, [w.id for w in team.webhooks]),
            )
            cur.execute(
                "UPDATE webhook_endpoints SET enabled = false, updated_at = now()"
                " WHERE team_id = %s AND NOT endpoint_id = ANY(%s)",
                (team.id, [w.id for w in team.webhooks]),
            )
            for hook in team.webhooks:
                secret = secrets[hook.id]
                cur.execute(
                    """INSERT INTO webhook_endpoints (endpoint_id, team_id, url, secret,
                                                      enabled, max_concurrency)
                       VALUES (%(id)s, %(team)s, %(url)s, coalesce(%(secret)s, %(fresh)s),
                               %(enabled)s, %(conc)s)
                       ON CONFLICT (endpoint_id) DO UPDATE
                       SET url = excluded.url, enabled = excluded.enabled,
                           max_concurrency = excluded.max_concurrency,
                           secret = coalesce(%(secret)s, webhook_endpoints.secret),
                           updated_at = now()
                       WHERE webhook_endpoints.team_id = excluded.team_id
                       RETURNING secret, (xmax = 0) AS inserted""",
                    {
                        "id": hook.id,
                        "team": team.id,
                        "url": hook.url,
                        "secret": secret,
                        "fresh": new_secret(),
                        "enabled": hook.enabled,
                        "conc": hook.max_concurrency,
                    },
                )
                row = cur.fetchone()
                if row is None:
                    raise ValueError(f"webhook {hook.id!r} already belongs to another team")
                if secret is None and row[1]:
                    result.new_secrets[hook.id] = str(row[0])
            result.teams.append(team.id)
    return result
