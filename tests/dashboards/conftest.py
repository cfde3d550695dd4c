"""A simulated week for the dashboards, made by the real pipeline: the scenario in ``week.yaml``
backfilled through a private Mosquitto into ingest while a rules worker with the shipped rules
and the webhook dispatcher (delivering to the reference receiver) run, then the API. The
services stay up for the module so their ``/metrics`` can be read too.

Dashboards read as Grafana does: through a login role that is a member of
``placewatch_grafana`` (migration 0005), never as the owner.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from placewatch.cli import build_parser
from placewatch.settings import Settings
from simulators.commands import run_scenario_command
from storage.migrate import Flavour, migrate
from tests.support.broker import Broker
from tests.support.care import care_monitors_caught_up
from tests.support.ingest import IngestProcess
from tests.support.postgres import create_database, drop_database, grafana_login_url
from tests.support.receivers import ReferenceReceiver

WEEK = Path(__file__).with_name("week.yaml")
COUNCIL = "dashweek"
RESIDENTS = 4
CARE_RULES = ["care-inactivity", "care-not-up", "care-long-occupancy", "care-activity-decline"]
LINK_SECRET = "dashboards-test-link-secret-0123456789"


@dataclass
class Week:
    url: str  # as the owner
    grafana_url: str  # as Grafana's role
    services: dict[str, IngestProcess]
    receiver: ReferenceReceiver


def _wait(what: str, until: Callable[[], bool], timeout: float, *procs: IngestProcess) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        for p in procs:
            assert p.alive(), p.log_tail()
        assert time.monotonic() < deadline, what + "".join(f"\n{p.log_tail()}" for p in procs)
        time.sleep(0.5)


def _count(url: str, query: str, *params: object) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(scope="session")
def week(flavour: Flavour, broker: Broker) -> Iterator[Week]:
    url = create_database(f"pwtest_dash_{flavour.value}")
    migrate(url, "on" if flavour is Flavour.TIMESCALEDB else "off")
    logdir = Path(tempfile.mkdtemp(prefix="pw-dash-"))
    prefix = f"pwtest/{uuid.uuid4().hex[:10]}"
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    receiver = ReferenceReceiver(secret, logdir)

    def proc(command: tuple[str, ...], **env: str) -> IngestProcess:
        p = IngestProcess(
            database_url=url,
            mqtt_port=broker.port,
            prefix=prefix,
            client_id=f"{command[0]}-{uuid.uuid4().hex[:8]}",
            logdir=logdir,
            command=command,
            extra_env={
                "PLACEWATCH_LINK_SECRET": LINK_SECRET,
                # The receiver is on http://127.0.0.1: `teams apply` and notify opt in.
                "PLACEWATCH_NOTIFY_ALLOW_HTTP": "true",
                "PLACEWATCH_NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8",
                **env,
            },
        )
        return p

    # The teams file names the endpoints' secret by variable; `teams apply` runs with ingest's.
    ingest = proc(("ingest",), PLACEWATCH_INGEST_MAX_AGE_DAYS="0", DASH_WEBHOOK_SECRET=secret)
    rules = proc(("rules", "run"))
    notify = proc(("notify",), PLACEWATCH_NOTIFY_POLL_S="0.2")
    api = proc(("api",))
    api.extra_env["PLACEWATCH_API_PORT"] = str(api.http_port)
    services = {"ingest": ingest, "rules": rules, "notify": notify, "api": api}
    teams = logdir / "teams.yaml"
    teams.write_text(
        f"""council: {COUNCIL}
teams:
  - id: dash-carers
    name: Dashboards carers
    routes: [{{residents: '*'}}]
    webhooks: [{{id: dash-carers-hook, url: '{receiver.url}', secret_env: DASH_WEBHOOK_SECRET}}]
  - id: dash-streets
    name: Dashboards street operations
    routes: [{{kinds: [bin_fill, air_quality, flood_level]}}]
    webhooks: [{{id: dash-streets-hook, url: '{receiver.url}', secret_env: DASH_WEBHOOK_SECRET}}]
"""
    )
    try:
        ingest.cli("devices", "import", str(WEEK))
        ingest.cli("teams", "apply", str(teams))
        receiver.start()
        ingest.start()
        rules.start()
        notify.start()
        settings = Settings(
            database_url=url, mqtt_host=broker.host, mqtt_port=broker.port, topic_prefix=prefix
        )
        argv = ["simulate", "--scenario", str(WEEK), "--backfill", "10d", "--format", "mixed"]
        result = run_scenario_command(build_parser().parse_args([*argv, "--no-progress"]), settings)
        assert result.acknowledged
        _wait(
            "ingest did not store the week",
            lambda: ingest.metric("placewatch_ingest_acked_total") >= result.published,
            240,
            ingest,
        )
        _wait(
            "the rules did not catch up",
            lambda: (
                _count(url, "SELECT count(*) FROM rule_inbox") == 0
                and care_monitors_caught_up(url, CARE_RULES) == len(CARE_RULES) * RESIDENTS
            ),
            240,
            rules,
        )
        if flavour is Flavour.POSTGRES:
            # The rules worker folds the backfill into the materialised roll-ups (0006) within
            # a sweep or two; until then the hourly charts show those hours as empty.
            _wait(
                "the rules worker did not refresh the hourly roll-ups",
                lambda: (
                    _count(
                        url,
                        "SELECT (SELECT count(*) FROM rollup_invalidations)"
                        " + (SELECT count(*) FROM rollup_watermarks WHERE watermark"
                        "    < date_bin('1 hour', now(), '2000-01-01 00:00+00'))",
                    )
                    == 0
                ),
                120,
                rules,
            )
        _wait(
            "the webhooks were not delivered",
            lambda: (
                _count(url, "SELECT count(*) FROM alert_outbox") == 0
                and _count(url, "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'")
                == 0
            ),
            120,
            notify,
        )
        api.start()
        yield Week(url, grafana_login_url(url), services, receiver)
    finally:
        for p in services.values():
            if p.alive():
                p.terminate()
        receiver.stop()
        drop_database(url)
