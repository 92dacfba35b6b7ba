"""The API against its own OpenAPI document: the document is valid OpenAPI 3.1, names every
route the application has, and schemathesis fuzzes every operation in-process (a bounded run:
a few examples per operation) over a store holding connections made against HiBob's emulator:
no answer is a 5xx, and every answer conforms to the document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from openapi_spec_validator import validate
from schemathesis.specs.openapi import checks
from starlette.routing import Route
from starlette.testclient import TestClient
from support import World

from connector_core import EndUser
from connector_core.serve import create_app
from connector_core.sessions import SessionRequest
from connector_core.webhooks import add_endpoint

from .conftest import AUTH, KEY, make_connections

MAX_EXAMPLES = 8


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with World(Path(tmp_path_factory.mktemp("fuzz")), "acme-sandbox") as world:
        ids = make_connections(world)
        app = create_app(world.connector, api_keys=[KEY], public_url="https://platform.example")
        session, _ = app.state.sessions.create(SessionRequest(EndUser("user-ada"), profile=world.profile))
        # Webhook URLs resolve to a public address here: the fuzzing never needs the network.
        app.state.webhooks.resolve = lambda host, port, *a, **kw: [(2, 1, 6, "", ("93.184.216.34", port))]
        endpoint, _ = add_endpoint(world.store, "https://hooks.example/fuzz", resolve=app.state.webhooks.resolve)
        app.state.fuzzed_ids = (*ids, session.id, endpoint.id)
        yield app


@pytest.fixture(scope="module")
def api_schema(fuzzed: Any) -> Any:
    """The document as the API serves it, its connection ids narrowed to the store's (and one
    unknown) so that the fuzzing reaches real connections rather than 404s only."""
    with TestClient(fuzzed, headers=AUTH) as client:
        document = client.get("/v1/openapi.json").json()
    ids = [*fuzzed.state.fuzzed_ids, "conn_unknown", "sess_unknown", "we_unknown"]
    for item in document["paths"].values():
        for parameter in [
            *item.get("parameters", []),
            *(p for op in item.values() if isinstance(op, dict) for p in op.get("parameters", [])),
        ]:
            if parameter.get("name") == "id":
                parameter["schema"] = {"type": "string", "enum": ids}
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = fuzzed
    return loaded


def test_the_document_is_valid_openapi_31_and_names_every_route(fuzzed: Any) -> None:
    with TestClient(fuzzed, headers=AUTH) as client:
        document = client.get("/v1/openapi.json").json()
    validate(document)  # raises on an invalid document
    assert document["openapi"] == "3.1.0"
    routes = {
        (route.path.replace("{path:path}", "{path}"), method.lower())
        for route in fuzzed.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD" or "{path:path}" in route.path  # Starlette's implicit HEAD of a GET route
    }
    documented = {
        (path, method) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    assert routes == documented
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert "Problem" in document["components"]["schemas"]


CHECKS = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def test_no_answer_is_a_server_error_or_off_the_document(api_schema: Any) -> None:
    # Deleting last: the other operations see the connections first.
    operations = sorted((result.ok() for result in api_schema.get_all_operations()), key=lambda o: o.method == "delete")
    # Every operation of the document: the proxy's six methods, the sessions, the pages, the metrics, the
    # webhooks (endpoints, their secrets, the log, replays) and the events too.
    assert len(operations) == 31
    called: list[str] = []
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def fuzz(case: Any) -> None:
            response = case.call(headers=AUTH)
            called.append(f"{case.method} {response.status_code}")
            assert response.status_code < 500, (case.method, case.formatted_path, response.text[:300])
            case.validate_response(response, checks=CHECKS)

        fuzz()
    assert len(called) >= len(operations)
    assert {"GET 200", "PUT 200", "POST 200", "DELETE 200"} <= set(called)  # real connections were reached
