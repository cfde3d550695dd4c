"""The OpenAPI document against the live server: schemathesis generates requests for every
operation from the spec (with a valid key) and checks each answer - never a 5xx, only
documented status codes and content types, bodies that match the declared schemas."""

from __future__ import annotations

import time
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import A, World, bearer
from tests.support.api_server import ApiServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 30


def test_openapi_document(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert spec["info"]["title"] == "placewatch alerts API"
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert spec["paths"]["/v1/alerts"]["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "/ack/{token}" not in spec["paths"]  # pages, not API
    assert http.get("/docs").status_code == 200


def test_generated_requests_conform(world: World, api: ApiServer, keys: dict[str, str]) -> None:
    # Something to find: alerts of every state and kind the carers and operations can see.
    for i in range(4):
        world.care_alert("r-a1" if i % 2 else "r-a2", severity="critical")
        world.alert(A, site="high-st")
    world.execute("UPDATE alerts SET state = 'acknowledged' WHERE alert_id %% 3 = 0")

    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]
    assert len(operations) == 8
    started = time.monotonic()
    for operation in operations:
        _fuzz(operation, api.url, bearer(keys["carers-a"]))
    # Bounded: examples per operation, no shrinking passes beyond the default.
    assert time.monotonic() - started < 60


def _fuzz(
    operation: APIOperation[Any, Any, Any, Any], base_url: str, headers: dict[str, str]
) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests every run: a failure reproduces
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(), label=operation.label)
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    run()


def test_every_api_operation_needs_a_key(http: httpx.Client) -> None:
    """Whatever is added later: each operation that declares security refuses a request
    without a key (and the probes, which declare none, answer)."""
    spec = http.get("/openapi.json").json()
    secured = 0
    for path, methods in spec["paths"].items():
        url = path.replace("{alert_id}", "1").replace("{device_id}", "bin-1")
        for method, operation in methods.items():
            r = http.request(method.upper(), url, json={"note": "x"})
            if operation.get("security"):
                secured += 1
                assert r.status_code == 401, f"{method} {path}: {r.status_code}"
            else:
                assert r.status_code == 200, f"{method} {path}: {r.status_code}"
    assert secured == 6
