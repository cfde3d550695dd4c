"""Every Prometheus query of the dashboards names metrics the services really export: read from
the running ingest, rules worker, dispatcher and API's own ``/metrics``."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from dashboards.panels import PROMETHEUS_UID
from dashboards.run import dashboard_files, datasource_uid, load, targets
from tests.dashboards.conftest import Week

# What Prometheus adds itself, not an exporter.
PROMETHEUS_OWN = {"up"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def _exported(week: Week) -> dict[str, set[str]]:
    """Sample names each service exposes, from its /metrics (a counter's name_total, a
    histogram's name_bucket, ...), whether or not it has samples yet."""
    exported: dict[str, set[str]] = {}
    for name, service in week.services.items():
        status, text = service.http("/metrics")
        assert status == 200, name
        names = set()
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            names.update(family.name + s for s in _SUFFIXES.get(family.type, ()))
        exported[name] = names
    return exported


def _queries() -> list[tuple[str, str]]:
    found = []
    for path in dashboard_files():
        board = load(path)
        for panel, target in targets(board):
            if datasource_uid(target, panel) == PROMETHEUS_UID:
                found.append((f"{board['title']} / {panel['title']}", target["expr"]))
        for v in board["templating"]["list"]:
            if datasource_uid(v) == PROMETHEUS_UID:
                found.append((f"{board['title']} / variable {v['name']}", v["query"]))
    return found


def test_every_prometheus_query_names_exported_metrics(week: Week) -> None:
    exported = _exported(week)
    everything = set().union(*exported.values())
    queries = _queries()
    assert len(queries) >= 20
    for where, expr in queries:
        metrics = set(re.findall(r"\bplacewatch_[a-z0-9_]+\b", expr))
        metrics |= {n for n in PROMETHEUS_OWN if re.search(rf"\b{n}\b", expr)}
        assert metrics, f"{where}: no metric in {expr}"
        missing = metrics - PROMETHEUS_OWN - everything
        assert not missing, f"{where}: {sorted(missing)} not exported by any service"


def test_each_service_exports_its_own_metrics(week: Week) -> None:
    exported = _exported(week)
    for service, prefix in (
        ("ingest", "placewatch_ingest_"),
        ("rules", "placewatch_rules_"),
        ("notify", "placewatch_notify_"),
        ("api", "placewatch_api_"),
    ):
        assert any(n.startswith(prefix) for n in exported[service]), service
