"""``GET /metrics``: Prometheus' text format behind the API key (or public when asked), the
connections counted by status from the store, the request counter labelled by route template
(no token or id in a label), the methods the keeper and the webhook deliverer call, and two
applications in one process that keep their numbers apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from support import World

from connector_core import ConnectionStatus, EndUser
from connector_core.errors import StoreError
from connector_core.serve import METRICS_PATH, Metrics, create_app
from connector_core.sessions import SessionRequest

from .conftest import AUTH, KEY, Api

FAMILIES = (
    "connector_connections",
    "connector_store_up",
    "connector_refreshes",
    "connector_webhook_deliveries",
    "connector_webhook_delivery_seconds",
    "connector_webhook_outbox_depth",
    "connector_http_requests",
    "connector_http_request_seconds",
)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(text: str, name: str, **labels: str) -> float | None:
    return _samples(text).get((name, tuple(sorted(labels.items()))))


def _scrape(client: TestClient) -> str:
    answer = client.get(METRICS_PATH, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_metrics_need_the_api_key(api: Api) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong-key-0123456789abcdef"}):
        refused = api.client.get(METRICS_PATH, headers=headers)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"] == 'Bearer realm="connector"'
        assert "connector_" not in refused.text
    assert api.client.get(METRICS_PATH, headers={"Authorization": f"Basic {KEY}"}).status_code == 401
    answer = api.client.get(METRICS_PATH)  # the client's default headers: the right key
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert answer.headers["cache-control"] == "no-store"  # the guard's headers apply here too


def test_every_family_has_help_and_type_lines(api: Api) -> None:
    text = _scrape(api.client)
    for name, kind in zip(
        FAMILIES, ("gauge", "gauge", "counter", "counter", "histogram", "gauge", "counter", "histogram"), strict=True
    ):
        exposed = f"{name}_total" if kind == "counter" else name
        assert f"# HELP {exposed} " in text, name
        assert f"# TYPE {exposed} {kind}\n" in text, name
    # Every outcome shows from the start, at 0.
    for outcome in ("ok", "transient", "permanent"):
        assert _value(text, "connector_refreshes_total", outcome=outcome) == 0
    for outcome in ("delivered", "retry", "failed"):
        assert _value(text, "connector_webhook_deliveries_total", outcome=outcome) == 0
    assert _value(text, "connector_webhook_outbox_depth") == 0


def test_the_connection_gauge_counts_the_stores_connections_at_each_scrape(api: Api) -> None:
    text = _scrape(api.client)
    assert _value(text, "connector_connections", status="connected") == 3
    assert _value(text, "connector_connections", status="needs_reconnect") == 0
    assert _value(text, "connector_store_up") == 1
    assert {s.value for s in ConnectionStatus} == {
        labels[0][1] for name, labels in _samples(text) if name == "connector_connections"
    }
    api.world.connector.store.set_status(api.ada, ConnectionStatus.NEEDS_RECONNECT, "invalid_grant")
    api.world.connector.delete(api.service)
    text = _scrape(api.client)
    assert _value(text, "connector_connections", status="connected") == 1
    assert _value(text, "connector_connections", status="needs_reconnect") == 1


def test_request_labels_are_route_templates_never_tokens_or_ids(api: Api, world: World) -> None:
    session, token = api.client.app.state.sessions.create(SessionRequest(EndUser("user-ada"), profile=world.profile))
    secret = token.reveal()
    assert api.client.get(f"/connect/{secret}").status_code == 200
    assert api.client.get(f"/connect/cs_{'x' * 43}").status_code in (400, 404, 410)
    assert api.client.get(f"/v1/connections/{api.ada}").status_code == 200
    assert api.client.get(f"/v1/connect/sessions/{session.id}").status_code == 200
    # Refused by the guard before routing: still labelled by the route it was for.
    assert api.client.get(f"/v1/connections/{api.unclaimed}", headers={"Authorization": ""}).status_code == 401
    assert api.client.get("/no/such/route/cs_leaked-token").status_code == 404
    assert api.client.request("BREW", "/healthz").status_code == 405
    text = _scrape(api.client)
    for value in (secret, "cs_", api.ada, api.unclaimed, session.id, "/no/such", "BREW"):
        assert value not in text
    requests = "connector_http_requests_total"
    assert _value(text, requests, method="GET", route="/connect/{token}", status="200") == 1
    assert _value(text, requests, method="GET", route="/v1/connections/{id}", status="200") == 1
    assert _value(text, requests, method="GET", route="/v1/connections/{id}", status="401") == 1
    assert _value(text, requests, method="GET", route="/v1/connect/sessions/{id}", status="200") == 1
    assert _value(text, requests, method="GET", route="unmatched", status="404") == 1
    assert _value(text, requests, method="other", route="/healthz", status="405") == 1
    assert _value(text, "connector_http_request_seconds_count", route="/connect/{token}") == 2
    routes = {dict(labels).get("route") for name, labels in _samples(text) if name == requests}
    assert routes <= {r.path for r in api.client.app.routes} | {"unmatched"}


def test_a_mounted_app_labels_its_own_routes(world: World) -> None:
    inner = create_app(world.connector, api_keys=[KEY], public_url="https://platform.example/integrations")
    host = Starlette(routes=[Mount("/integrations", app=inner)])
    with TestClient(host, headers=AUTH) as client:
        assert client.get("/integrations/v1/connections").status_code == 200
        assert client.get("/integrations/v1/connections", headers={"Authorization": ""}).status_code == 401
        assert client.get("/integrations/nothing-here").status_code == 404
        text = client.get(f"/integrations{METRICS_PATH}").text
    requests = "connector_http_requests_total"
    assert _value(text, requests, method="GET", route="/v1/connections", status="200") == 1
    assert _value(text, requests, method="GET", route="/v1/connections", status="401") == 1
    assert _value(text, requests, method="GET", route="unmatched", status="404") == 1
    assert 'route="/integrations"' not in text


def test_metrics_public_needs_no_key(world: World) -> None:
    app = create_app(world.connector, api_keys=[KEY], public_url="https://platform.example", metrics_public=True)
    with TestClient(app) as client:
        answer = client.get(METRICS_PATH)
        assert answer.status_code == 200 and "# TYPE connector_connections gauge" in answer.text
        assert client.get("/v1/connections").status_code == 401  # the API still needs it


def test_the_keepers_and_deliverers_calls_show(api: Api) -> None:
    metrics: Metrics = api.client.app.state.metrics
    metrics.refreshed("ok")
    metrics.refreshed("ok")
    metrics.refreshed("permanent")
    metrics.delivered("delivered", 0.2)
    metrics.delivered("retry", 10.0)
    metrics.outbox_depth(7)  # until the scrape reads the store's own outbox, which is empty
    text = _scrape(api.client)
    assert _value(text, "connector_refreshes_total", outcome="ok") == 2
    assert _value(text, "connector_refreshes_total", outcome="transient") == 0
    assert _value(text, "connector_refreshes_total", outcome="permanent") == 1
    assert _value(text, "connector_webhook_deliveries_total", outcome="delivered") == 1
    assert _value(text, "connector_webhook_deliveries_total", outcome="retry") == 1
    assert _value(text, "connector_webhook_delivery_seconds_count") == 2
    assert _value(text, "connector_webhook_delivery_seconds_sum") == pytest.approx(10.2)
    assert _value(text, "connector_webhook_delivery_seconds_bucket", le="0.25") == 1
    assert _value(text, "connector_webhook_outbox_depth") == 0


@pytest.mark.parametrize(
    ("call", "args", "expected"),
    [
        ("refreshed", ("fine",), "outcome: expected one of ok, transient, permanent, got 'fine'"),
        ("delivered", ("ok", 0.1), "outcome: expected one of delivered, retry, failed, got 'ok'"),
        ("outbox_depth", (-1,), "n: expected 0 or more deliveries, got -1"),
    ],
)
def test_a_label_value_off_the_list_is_refused(call: str, args: tuple[Any, ...], expected: str) -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="^" + expected.replace("(", r"\(").replace(")", r"\)") + "$"):
        getattr(metrics, call)(*args)
    assert "connector_connections" not in metrics.exposition().decode()  # no store, no gauge


def test_a_store_that_fails_leaves_the_gauge_empty_and_says_so() -> None:
    class Down:
        def count_connections(self) -> dict[Any, int]:
            raise StoreError("the database is unavailable")

    metrics = Metrics(Down())  # type: ignore[arg-type]
    metrics.refreshed("transient")
    text = metrics.exposition().decode()
    assert _value(text, "connector_store_up") == 0
    assert not [name for name, _ in _samples(text) if name == "connector_connections"]
    assert _value(text, "connector_refreshes_total", outcome="transient") == 1  # the rest still answers


def test_two_apps_in_one_process_keep_their_numbers_apart(api: Api, world: World) -> None:
    other = create_app(world.connector, api_keys=[KEY], public_url="https://other.example")
    assert other.state.metrics is not api.client.app.state.metrics
    with TestClient(other, headers=AUTH) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
        api.client.app.state.metrics.refreshed("ok")
        mine, theirs = _scrape(api.client), _scrape(client)
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    assert _value(theirs, "connector_http_requests_total", **healthz) == 3
    assert _value(mine, "connector_http_requests_total", **healthz) is None
    assert _value(mine, "connector_refreshes_total", outcome="ok") == 1
    assert _value(theirs, "connector_refreshes_total", outcome="ok") == 0
    # Both count the same store's connections.
    assert _value(mine, "connector_connections", status="connected") == 3
    assert _value(theirs, "connector_connections", status="connected") == 3


def test_a_metrics_object_given_is_the_one_exposed(world: World) -> None:
    metrics = Metrics(world.connector.store)
    app = create_app(world.connector, api_keys=[KEY], public_url="https://platform.example", metrics=metrics)
    assert app.state.metrics is metrics
    metrics.refreshed("ok")
    with TestClient(app, headers=AUTH) as client:
        assert _value(_scrape(client), "connector_refreshes_total", outcome="ok") == 1
    assert repr(metrics) == "<Metrics>"


def test_the_outbox_depth_is_read_from_the_store_at_each_scrape(tmp_path: Path) -> None:
    from connector_core.serve import Metrics
    from connector_core.store.sqlite import Store

    class Counting:
        """A store whose outbox holds 7 deliveries."""

        def __init__(self, real: Store) -> None:
            self.real = real

        def count_connections(self) -> dict[Any, int]:
            return self.real.count_connections()

        def outbox_depth(self) -> int:
            return 7

    with Store.open(tmp_path / "home", env={"CONNECTOR_CORE_KEY_FILE": str(tmp_path / "k.json")}) as store:
        text = Metrics(Counting(store)).exposition().decode()  # type: ignore[arg-type]
    assert "connector_webhook_outbox_depth 7.0" in text


def test_a_scrape_counts_the_connections_in_one_statement_without_reading_a_row(
    api: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 100,000 connections a scrape must not load them: one GROUP BY, whatever the count."""

    def no_listing(*_: object, **__: object) -> None:
        raise AssertionError("a scrape listed the connections")

    monkeypatch.setattr(world.store, "list_connections", no_listing)
    monkeypatch.setattr(world.store, "iter_connections", no_listing)
    assert _value(_scrape(api.client), "connector_connections", status="connected") == 3
    statements: list[str] = []
    db = world.store._connect()
    db.set_trace_callback(statements.append)
    try:
        counts = world.store.count_connections()
    finally:
        db.set_trace_callback(None)
    assert [s for s in statements if "connections" in s] == ["SELECT status, count(*) FROM connections GROUP BY status"]
    assert sum(counts.values()) == 3
