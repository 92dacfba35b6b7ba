"""The webhooks and events routes of the platform API: an endpoint's generated secret is answered
once, in the 201; bad URLs, event types and secrets are problems naming the field; rotation,
the delivery log, replays and the events page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from support import hibob

from connector_core.connector import Connector
from connector_core.events import EventType
from connector_core.serve import create_app
from connector_core.store.sql import SqlStore
from connector_core.webhooks import WebhookDeliverer, new_secret

from .conftest import Receiver, public, record_events

KEY = "webhooks-api-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def client(sqlite_store: SqlStore) -> Iterator[TestClient]:
    app = create_app(Connector(sqlite_store, hibob()), api_keys=[KEY], public_url="https://platform.example")
    app.state.webhooks.resolve = public
    with TestClient(app, raise_server_exceptions=False, headers=AUTH) as test_client:
        yield test_client


def _problem(answer: Any, status: int, field: str | None, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body.get("field") == field and words in body["detail"], body


def test_creating_an_endpoint_answers_its_generated_secret_once(client: TestClient, sqlite_store: SqlStore) -> None:
    made = client.post("/v1/webhooks/endpoints", json={"url": "https://hooks.example/c", "event_types": None})
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    body = made.json()
    secret = body.pop("secret")
    assert secret.startswith("whsec_") and body["event_types"] is None and body["id"].startswith("we_")
    assert sqlite_store.webhook_secrets(body["id"])[0].reveal() == secret
    shown = client.get(f"/v1/webhooks/endpoints/{body['id']}")
    listed = client.get("/v1/webhooks/endpoints")
    assert shown.json() == body and listed.json() == {"data": [body]}
    assert secret not in shown.text + listed.text
    given = new_secret().reveal()
    second = client.post(
        "/v1/webhooks/endpoints",
        json={"url": "https://hooks.example/d", "secret": given, "event_types": ["connection.deleted"]},
    )
    assert second.status_code == 201 and "secret" not in second.json() and given not in second.text
    assert second.json()["event_types"] == ["connection.deleted"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"url": "http://hooks.example/c"}, "url", "expected https://"),
        ({"url": "https://10.0.0.8/c"}, "url", "a private address (allowed only with allow_private)"),
        ({"url": "https://admin:hunter2@hooks.example/c"}, "url", "without user:password@"),
        ({"url": "https://hooks.example/c", "event_types": ["connection.exploded"]}, "event_types", "unknown event"),
        ({"url": "https://hooks.example/c", "event_types": []}, "event_types", "at least one event type"),
        ({"url": "https://hooks.example/c", "event_types": "connection.created"}, "event_types", "a list"),
        ({"url": "https://hooks.example/c", "secret": "whsec_hunter2"}, "secret", "bytes of key"),
        ({"url": "https://hooks.example/c", "allow_private": "yes"}, "allow_private", "true or false"),
        ({"url": "https://hooks.example/c", "colour": "red"}, "colour", "unknown field"),
        ({}, "url", "required"),
    ],
)
def test_a_bad_endpoint_is_a_problem_naming_its_field(
    client: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    answer = client.post("/v1/webhooks/endpoints", json=body)
    _problem(answer, 400, field, words)
    assert "hunter2" not in answer.text and client.get("/v1/webhooks/endpoints").json() == {"data": []}


def test_rotation_disable_enable_and_deletion(client: TestClient, sqlite_store: SqlStore) -> None:
    endpoint = client.post("/v1/webhooks/endpoints", json={"url": "https://hooks.example/c"}).json()
    path = f"/v1/webhooks/endpoints/{endpoint['id']}"
    rotated = client.post(f"{path}/rotate-secret")
    assert rotated.status_code == 200 and rotated.json()["rotating"] is True
    assert [s.reveal() for s in sqlite_store.webhook_secrets(endpoint["id"])] == [
        rotated.json()["secret"],
        endpoint["secret"],
    ]
    _problem(client.post(f"{path}/rotate-secret", json={"secret": new_secret().reveal()}), 409, "secret", "rotating")
    dropped = client.post(f"{path}/drop-previous-secret")
    assert dropped.status_code == 200 and dropped.json()["rotating"] is False
    _problem(client.post(f"{path}/drop-previous-secret"), 409, "secret", "no previous secret")
    _problem(client.post(f"{path}/rotate-secret", json={"secret": "nope"}), 400, "secret", "whsec_")
    disabled = client.post(f"{path}/disable", json={"reason": "maintenance"})
    assert disabled.json()["disabled"] is True and disabled.json()["disabled_reason"] == "maintenance"
    assert client.post(f"{path}/enable").json()["disabled"] is False
    assert client.delete(path).json() == {"id": endpoint["id"], "deleted": True}
    answer = client.get(path)
    assert answer.status_code == 404 and "no webhook endpoint" in answer.json()["detail"]
    assert client.post("/v1/webhooks/endpoints/we_nope/rotate-secret").status_code == 404


def test_the_delivery_log_and_replays(client: TestClient, sqlite_store: SqlStore) -> None:
    receiver = Receiver()
    made = client.post(
        "/v1/webhooks/endpoints", json={"url": receiver.url, "event_types": ["connection.created"]}
    ).json()
    receiver.secrets = [made["secret"]]
    receiver.answer = lambda got: (503, {"retry-after": "5"}, b"busy")
    receiver.start()
    try:
        ids = record_events(sqlite_store, 3)
        with WebhookDeliverer(sqlite_store) as deliverer:
            deliverer.run_once()
        page = client.get("/v1/webhooks/deliveries", params={"limit": 2})
        assert page.status_code == 200 and len(page.json()["data"]) == 2 and page.json()["next"] is not None
        rest = client.get("/v1/webhooks/deliveries", params={"after": page.json()["next"]}).json()
        assert rest["next"] is None and len(rest["data"]) == 1
        one = client.get("/v1/webhooks/deliveries", params={"event_id": ids[0], "status": "pending"}).json()["data"]
        (delivery,) = one
        assert delivery["event_id"] == ids[0] and delivery["endpoint_id"] == made["id"]
        assert delivery["log"][0]["status_code"] == 503 and delivery["log"][0]["response"] == "busy"
        replayed = client.post("/v1/webhooks/replay", json={"event_id": ids[0]})
        assert replayed.status_code == 202 and replayed.json() == {"deliveries": 1}
        ranged = client.post("/v1/webhooks/replay", json={"since": "2000-01-01T00:00:00Z", "endpoint_id": made["id"]})
        assert ranged.json() == {"deliveries": 3}
        listed = client.get("/v1/webhooks/deliveries", params={"event_id": ids[0]}).json()["data"]
        assert [d["replay"] for d in listed] == [False, True, True]
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        ({}, 400, "since", "give one event's id or a time range"),
        ({"event_id": "evt_1", "since": "2026-01-01T00:00:00Z"}, 400, "event_id", "not both"),
        ({"since": "tomorrow"}, 400, "since", "ISO 8601"),
        ({"event_id": "evt_unknown"}, 404, None, "no event 'evt_unknown'"),
        ({"since": "2026-01-01T00:00:00Z", "endpoint_id": "we_unknown"}, 404, None, "no webhook endpoint"),
        ({"event_id": 7}, 400, "event_id", "a string or null"),
    ],
)
def test_a_bad_replay_is_a_problem(
    client: TestClient, body: dict[str, Any], status: int, field: str | None, words: str
) -> None:
    _problem(client.post("/v1/webhooks/replay", json=body), status, field, words)


def test_a_replay_to_a_disabled_endpoint_is_a_conflict(client: TestClient, sqlite_store: SqlStore) -> None:
    made = client.post("/v1/webhooks/endpoints", json={"url": "https://hooks.example/c"}).json()
    client.post(f"/v1/webhooks/endpoints/{made['id']}/disable")
    (event_id,) = record_events(sqlite_store, 1)
    _problem(
        client.post("/v1/webhooks/replay", json={"event_id": event_id, "endpoint_id": made["id"]}),
        409,
        "endpoint_id",
        "is disabled",
    )


def test_events_page_by_seq_and_filter(client: TestClient, sqlite_store: SqlStore) -> None:
    created = record_events(sqlite_store, 3)
    deleted = record_events(sqlite_store, 2, EventType.DELETED, prefix="gone")
    first = client.get("/v1/events", params={"limit": 2}).json()
    assert [e["id"] for e in first["data"]] == created[:2] and first["next"] == first["data"][-1]["seq"]
    rest = client.get("/v1/events", params={"after": first["next"]}).json()
    assert [e["id"] for e in rest["data"]] == [created[2], *deleted] and rest["next"] is None
    typed = client.get("/v1/events", params={"type": "connection.deleted"}).json()["data"]
    assert [e["id"] for e in typed] == deleted
    event = typed[0]
    assert event == {"seq": event["seq"], **sqlite_store.get_event(event["id"]).payload()}
    one = client.get("/v1/events", params={"connection_id": "conn_1"}).json()["data"]
    assert [e["id"] for e in one] == [created[1]]
    _problem(client.get("/v1/events", params={"type": "connection.exploded"}), 400, "type", "expected one of")
    _problem(client.get("/v1/events", params={"limit": "0"}), 400, "limit", "1 to 200")
    _problem(client.get("/v1/events", params={"after": "-1"}), 400, "after", "whole number")
    _problem(client.get("/v1/events", params={"since": "x"}), 400, "since", "unknown parameter")
    assert json.loads(client.get("/v1/events", params={"after": "999"}).text) == {"data": [], "next": None}


def test_the_routes_need_the_api_key(client: TestClient) -> None:
    for method, path in (("GET", "/v1/events"), ("POST", "/v1/webhooks/endpoints"), ("GET", "/v1/webhooks/deliveries")):
        answer = client.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert answer.status_code == 401
