"""The platform API's OpenAPI 3.1 document (``GET /v1/openapi.json``): every route, the
problem schema and the bearer security scheme. Written by hand next to the routes; a test
holds it to the application's routes and fuzzes the API against it (schemathesis)."""

from __future__ import annotations

from typing import Any

from .._markers import __version__
from ..connection import ConnectionStatus
from ..events import EventType

__all__ = ["openapi_document"]

_ID = {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,200}$"}
_TEXT = {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"}
_TAG = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._:-]{0,63}$"}
_NULLABLE_STRING = {"type": ["string", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_UNAUTHORIZED = {
    "description": "no API key, or a wrong one",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "content": {"application/problem+json": {"schema": _ref("Problem")}},
}
#: What the proxy passes back from the provider (its JSON or text, anything else as bytes).
_PASSED: dict[str, Any] = {"application/json": {}, "text/plain": {}, "application/octet-stream": {}}
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": _ID, "description": "the connection's id"}


def _errors(*statuses: int, about: str = "connection") -> dict[str, Any]:
    words = {
        400: "a parameter or the body is invalid (``field`` names it)",
        404: f"no such {about}",
        409: f"the {about}'s state refuses the request",
        413: "the body is larger than the limit",
        415: "the body is not JSON",
        502: "the provider answered with an error",
        503: "the provider or the store is unavailable; try again later",
    }
    return {"401": _UNAUTHORIZED, **{str(s): _problem(words[s]) for s in statuses}}


def _schemas() -> dict[str, Any]:
    end_user = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id"],
        "properties": {
            "id": _TEXT,
            "email": {"type": ["string", "null"], "format": "email", "maxLength": 320},
            "display_name": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": 200,
                "pattern": "^[^\\x00-\\x1f\\x7f]*\\S[^\\x00-\\x1f\\x7f]*$",
            },
        },
    }
    return {
        "Problem": {
            "type": "object",
            "description": "An RFC 9457 problem.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "format": "uri"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "field": {"type": "string", "description": "the parameter or body field that was wrong"},
            },
        },
        "EndUser": end_user,
        "Owner": {
            "type": "object",
            "required": ["end_user", "organisation", "tags"],
            "properties": {
                "end_user": {"oneOf": [_ref("EndUser"), {"type": "null"}]},
                "organisation": _NULLABLE_STRING,
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Connection": {
            "type": "object",
            "required": ["id", "profile", "provider", "environment", "auth_type", "status", "owner"],
            "properties": {
                "id": {"type": "string"},
                "profile": {"type": "string"},
                "provider": {"type": "string"},
                "environment": {"type": "string"},
                "auth_type": {"type": "string"},
                "auth_kind": _NULLABLE_STRING,
                "status": {"type": "string", "enum": [s.value for s in ConnectionStatus]},
                "status_reason": _NULLABLE_STRING,
                "token_type": _NULLABLE_STRING,
                "expires_at": {"type": ["number", "null"], "description": "UTC epoch seconds"},
                "requested_scopes": {"type": "array", "items": {"type": "string"}},
                "granted_scopes": {"type": "array", "items": {"type": "string"}},
                "identity": {"type": "object", "additionalProperties": {"type": "string"}},
                "provider_initiated": {"type": "boolean"},
                "created_at": {"type": "string"},
                "updated_at": {"type": "string"},
                "refreshed_at": _NULLABLE_STRING,
                "owner": _ref("Owner"),
            },
        },
        "ConnectionPage": {
            "type": "object",
            "required": ["data", "next"],
            "properties": {
                "data": {"type": "array", "items": _ref("Connection")},
                "next": {
                    "type": ["string", "null"],
                    "description": "pass as `after` for the next page; null at the end",
                },
            },
        },
        "Events": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["at", "status", "reason"],
                        "properties": {
                            "at": {"type": "string"},
                            "status": {"type": "string", "enum": [s.value for s in ConnectionStatus]},
                            "reason": _NULLABLE_STRING,
                        },
                    },
                }
            },
        },
        "Deleted": {
            "type": "object",
            "required": ["id", "deleted", "revoked_at_provider", "detail"],
            "properties": {
                "id": {"type": "string"},
                "deleted": {"type": "boolean"},
                "revoked_at_provider": {"type": "boolean"},
                "detail": {"type": "string"},
            },
        },
        "SessionRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["end_user"],
            "description": "Name the providers the end user may pick from, one profile, or a connection to reconnect.",
            "properties": {
                "end_user": _ref("EndUser"),
                "organisation": {"oneOf": [_TEXT, {"type": "null"}]},
                "tags": {"type": "array", "maxItems": 50, "items": _TAG},
                "providers": {"type": "array", "maxItems": 50, "items": _TEXT},
                "profile": {"oneOf": [_TEXT, {"type": "null"}]},
                "scopes": {"type": "array", "items": {"type": "string", "pattern": "^[\\x21\\x23-\\x5b\\x5d-\\x7e]+$"}},
                "connection_id": {"oneOf": [_ID, {"type": "null"}], "description": "a connection to reconnect"},
                "redirect_url": {
                    "oneOf": [{"type": "string", "format": "uri", "maxLength": 2048}, {"type": "null"}],
                    "description": "where the end user is sent when done; must be on the service's allow-list",
                },
                "expires_in": {"type": "integer", "minimum": 60, "maximum": 86400, "default": 1800},
                "separate": {
                    "type": "boolean",
                    "default": False,
                    "description": "a new connection even if this end user already connected the same account",
                },
            },
        },
        "SessionCreated": {
            "type": "object",
            "required": ["id", "token", "connect_url", "expires_at"],
            "properties": {
                "id": {"type": "string"},
                "token": {"type": "string", "description": "single use; shown this once"},
                "connect_url": {"type": "string", "format": "uri", "description": "send the end user here"},
                "expires_at": {"type": "string", "format": "date-time"},
            },
        },
        "Session": {
            "type": "object",
            "required": ["id", "status", "end_user", "providers", "connection_id", "error"],
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string", "enum": ["pending", "used", "completed", "failed", "expired"]},
                "end_user": {"oneOf": [_ref("EndUser"), {"type": "null"}]},
                "organisation": _NULLABLE_STRING,
                "tags": {"type": "array", "items": {"type": "string"}},
                "providers": {"type": "array", "items": {"type": "string"}},
                "profile": _NULLABLE_STRING,
                "provider": {"type": ["string", "null"], "description": "what the end user picked"},
                "connection_id": {
                    "type": ["string", "null"],
                    "description": "the connection made, or the one being reconnected",
                },
                "reconnect": {"type": "boolean"},
                "redirect_url": _NULLABLE_STRING,
                "created_at": {"type": "string"},
                "expires_at": {"type": "string"},
                "used_at": _NULLABLE_STRING,
                "finished_at": _NULLABLE_STRING,
                "error": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": {"type": "string"}, "message": _NULLABLE_STRING},
                        },
                        {"type": "null"},
                    ]
                },
            },
        },
        **_webhook_schemas(),
        "OwnerChange": {
            "type": "object",
            "additionalProperties": False,
            "required": ["end_user"],
            "properties": {
                "end_user": _ref("EndUser"),
                "organisation": {"oneOf": [_TEXT, {"type": "null"}]},
                "tags": {"type": "array", "maxItems": 50, "items": _TAG},
                "replace": {"type": "boolean", "default": False},
            },
        },
    }


_EVENT_TYPES = [kind.value for kind in EventType]
_TIME = {"type": "string", "format": "date-time", "maxLength": 64}


def _webhook_schemas() -> dict[str, Any]:
    endpoint_properties: dict[str, Any] = {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "event_types": {
            "type": ["array", "null"],
            "items": {"type": "string", "enum": _EVENT_TYPES},
            "description": "null: every type",
        },
        "allow_private": {"type": "boolean"},
        "disabled": {"type": "boolean"},
        "disabled_at": _NULLABLE_STRING,
        "disabled_reason": _NULLABLE_STRING,
        "rotating": {"type": "boolean", "description": "a previous secret still signs beside the current one"},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
    }
    endpoint_required = ["id", "url", "event_types", "allow_private", "disabled", "rotating"]
    attempt = {
        "type": "object",
        "required": ["attempt", "at", "status_code", "latency_ms", "response", "error"],
        "properties": {
            "attempt": {"type": "integer", "minimum": 1},
            "at": {"type": "string"},
            "status_code": {"type": ["integer", "null"], "description": "null: no answer"},
            "latency_ms": {"type": ["number", "null"]},
            "response": {"type": ["string", "null"], "description": "the first KiB of the answer's body"},
            "error": {"type": ["string", "null"], "description": "what went wrong, in one line"},
        },
    }
    page_next = {"type": ["integer", "null"], "description": "pass as `after` for the next page; null at the end"}
    secret = {"type": "string", "pattern": "^whsec_[A-Za-z0-9+/=]+$", "maxLength": 200}
    return {
        "WebhookEndpoint": {"type": "object", "required": endpoint_required, "properties": endpoint_properties},
        "WebhookEndpointWithSecret": {
            "type": "object",
            "required": endpoint_required,
            "properties": {
                **endpoint_properties,
                "secret": {"type": "string", "description": "present only when generated: shown this once"},
            },
        },
        "WebhookEndpointList": {
            "type": "object",
            "required": ["data"],
            "properties": {"data": {"type": "array", "items": _ref("WebhookEndpoint")}},
        },
        "WebhookEndpointRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "properties": {
                "url": {
                    "type": "string",
                    "format": "uri",
                    "maxLength": 2048,
                    "description": "https only (http for a loopback host), no user:password@, a public address "
                    "unless allow_private",
                },
                "event_types": {
                    "oneOf": [
                        {"type": "array", "minItems": 1, "items": {"type": "string", "enum": _EVENT_TYPES}},
                        {"type": "null"},
                    ],
                    "description": "the event types it gets; absent or null: every type",
                },
                "allow_private": {"type": "boolean", "default": False},
                "secret": {**secret, "description": "its whsec_ secret; absent: one is generated and answered once"},
            },
        },
        "SecretRotation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"secret": {**secret, "description": "the new secret; absent: one is generated"}},
        },
        "DisableRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"reason": {"type": ["string", "null"], "maxLength": 500}},
        },
        "Delivery": {
            "type": "object",
            "required": ["id", "seq", "event_id", "event_type", "endpoint_id", "status", "attempts", "log"],
            "properties": {
                "id": {"type": "string"},
                "seq": {"type": "integer"},
                "event_id": {"type": "string", "description": "the webhook-id of every attempt"},
                "event_type": {"type": "string", "enum": _EVENT_TYPES},
                "endpoint_id": {"type": "string"},
                "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
                "attempts": {"type": "integer", "minimum": 0},
                "next_attempt_at": _NULLABLE_STRING,
                "created_at": {"type": "string"},
                "finished_at": _NULLABLE_STRING,
                "replay": {"type": "boolean"},
                "log": {"type": "array", "items": attempt},
            },
        },
        "DeliveryPage": {
            "type": "object",
            "required": ["data", "next"],
            "properties": {"data": {"type": "array", "items": _ref("Delivery")}, "next": page_next},
        },
        "Event": {
            "type": "object",
            "required": ["seq", "id", "type", "timestamp", "data"],
            "properties": {
                "seq": {"type": "integer"},
                "id": {"type": "string", "description": "evt_ and a ULID: the webhook-id of its deliveries"},
                "type": {"type": "string", "enum": _EVENT_TYPES},
                "timestamp": {"type": "string"},
                "data": {"type": "object"},
            },
        },
        "EventPage": {
            "type": "object",
            "required": ["data", "next"],
            "properties": {"data": {"type": "array", "items": _ref("Event")}, "next": page_next},
        },
        "ReplayRequest": {
            "type": "object",
            "additionalProperties": False,
            "description": "One event (event_id), or the events recorded in a time range (since, until, or both).",
            "properties": {
                "event_id": {"oneOf": [_ID, {"type": "null"}]},
                "since": {"oneOf": [_TIME, {"type": "null"}], "description": "recorded at this time or later"},
                "until": {"oneOf": [_TIME, {"type": "null"}], "description": "recorded before this time"},
                "endpoint_id": {
                    "oneOf": [_ID, {"type": "null"}],
                    "description": "to this endpoint only (default: every subscribed one)",
                },
            },
        },
        "Replayed": {
            "type": "object",
            "required": ["deliveries"],
            "properties": {"deliveries": {"type": "integer", "minimum": 0, "description": "deliveries made"}},
        },
    }


def _query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _webhook_paths() -> dict[str, Any]:
    endpoint_id = {"name": "id", "in": "path", "required": True, "schema": _ID, "description": "the endpoint's id"}
    endpoint = _ok("the endpoint", _ref("WebhookEndpoint"))
    page = [
        _query_param("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "page size"),
        _query_param("after", {"type": "integer", "minimum": 0}, "the cursor: the previous page's `next`"),
    ]

    def action(operation: str, summary: str, responses: dict[str, Any], body: str | None = None) -> dict[str, Any]:
        found: dict[str, Any] = {"operationId": operation, "summary": summary, "tags": ["webhooks"]}
        if body is not None:
            found["requestBody"] = {"required": False, "content": {"application/json": {"schema": _ref(body)}}}
        found["responses"] = responses
        return found

    return {
        "/v1/events": {
            "get": {
                "operationId": "listEvents",
                "summary": "the lifecycle events in the order they were recorded, a page at a time",
                "tags": ["events"],
                "parameters": [
                    *page,
                    _query_param("type", {"type": "string", "enum": _EVENT_TYPES}, "only of this type"),
                    _query_param("connection_id", _ID, "only about this connection"),
                ],
                "responses": {"200": _ok("a page", _ref("EventPage")), **_errors(400)},
            }
        },
        "/v1/webhooks/endpoints": {
            "post": {
                "operationId": "createWebhookEndpoint",
                "summary": "configure a webhook endpoint; a generated secret is answered this once",
                "tags": ["webhooks"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("WebhookEndpointRequest")}},
                },
                "responses": {
                    "201": _ok("the endpoint (and its generated secret)", _ref("WebhookEndpointWithSecret")),
                    **_errors(400, 413, 415),
                },
            },
            "get": {
                "operationId": "listWebhookEndpoints",
                "summary": "every webhook endpoint, oldest first",
                "tags": ["webhooks"],
                "responses": {"200": _ok("the endpoints", _ref("WebhookEndpointList")), **_errors(400)},
            },
        },
        "/v1/webhooks/endpoints/{id}": {
            "parameters": [endpoint_id],
            "get": action(
                "getWebhookEndpoint", "one webhook endpoint", {"200": endpoint, **_errors(404, about="endpoint")}
            ),
            "delete": action(
                "deleteWebhookEndpoint",
                "remove the endpoint with its secrets, deliveries and log",
                {
                    "200": _ok(
                        "removed",
                        {
                            "type": "object",
                            "required": ["id", "deleted"],
                            "properties": {"id": {"type": "string"}, "deleted": {"type": "boolean"}},
                        },
                    ),
                    **_errors(404, about="endpoint"),
                },
            ),
        },
        "/v1/webhooks/endpoints/{id}/rotate-secret": {
            "parameters": [endpoint_id],
            "post": action(
                "rotateWebhookSecret",
                "start a rotation: the new secret (given, or generated and answered once) and the previous one both "
                "sign until drop-previous-secret",
                {
                    "200": _ok("the endpoint (and its generated secret)", _ref("WebhookEndpointWithSecret")),
                    **_errors(400, 404, 409, 413, 415, about="endpoint"),
                },
                body="SecretRotation",
            ),
        },
        "/v1/webhooks/endpoints/{id}/drop-previous-secret": {
            "parameters": [endpoint_id],
            "post": action(
                "dropPreviousWebhookSecret",
                "end a rotation: only the current secret signs from now on",
                {"200": endpoint, **_errors(404, 409, about="endpoint")},
            ),
        },
        "/v1/webhooks/endpoints/{id}/enable": {
            "parameters": [endpoint_id],
            "post": action(
                "enableWebhookEndpoint",
                "enable the endpoint again: its waiting deliveries resume",
                {"200": endpoint, **_errors(404, about="endpoint")},
            ),
        },
        "/v1/webhooks/endpoints/{id}/disable": {
            "parameters": [endpoint_id],
            "post": action(
                "disableWebhookEndpoint",
                "disable the endpoint: events make no deliveries to it; pending ones wait",
                {"200": endpoint, **_errors(400, 404, 413, 415, about="endpoint")},
                body="DisableRequest",
            ),
        },
        "/v1/webhooks/deliveries": {
            "get": {
                "operationId": "listWebhookDeliveries",
                "summary": "the delivery log: deliveries in the outbox's order, each with its attempts",
                "tags": ["webhooks"],
                "parameters": [
                    *page,
                    _query_param("endpoint_id", _ID, "only to this endpoint"),
                    _query_param("event_id", _ID, "only of this event"),
                    _query_param(
                        "status", {"type": "string", "enum": ["pending", "delivered", "failed"]}, "only in this status"
                    ),
                ],
                "responses": {"200": _ok("a page", _ref("DeliveryPage")), **_errors(400)},
            }
        },
        "/v1/webhooks/replay": {
            "post": {
                "operationId": "replayWebhooks",
                "summary": "deliver events again (the same webhook-id as before): one event, or a time range",
                "tags": ["webhooks"],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ReplayRequest")}}},
                "responses": {
                    "202": _ok("the deliveries made; the deliverer sends them", _ref("Replayed")),
                    **_errors(400, 404, 409, 413, 415, about="event or endpoint"),
                },
            }
        },
    }


def _list_parameters() -> list[dict[str, Any]]:
    def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    return [
        query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "page size"),
        query("after", _TEXT, "the cursor: the previous page's `next`"),
        query("end_user", _TEXT, "only this end user's connections"),
        query("provider", _TEXT, "only this provider's"),
        query("status", {"type": "string", "enum": [s.value for s in ConnectionStatus]}, "only in this status"),
        query("tag", _TAG, "only those with this tag"),
        query("organisation", _TEXT, "only this organisation's"),
        query("unclaimed", {"type": "boolean", "default": False}, "only those nobody owns yet"),
    ]


def _proxy_operation(method: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"proxy{method.capitalize()}",
        "summary": f"{method.upper()} a path under the connection's API base URL, authenticated",
        "tags": ["proxy"],
        "parameters": [
            _ID_PARAM,
            {
                "name": "path",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$"},
                "description": "relative to the API base URL; it can never leave it",
            },
        ],
        # The provider's own answers pass through with any status: each status may be its
        # (JSON, text or bytes) or the proxy's own problem.
        "responses": {
            "default": {"description": "the provider's answer, status and body as it sent them", "content": _PASSED},
            **{
                status: {**answer, "content": {**answer["content"], **_PASSED}}
                for status, answer in _errors(400, 404, 409, 413, 415, 502, 503).items()
            },
        },
    }
    if method in ("post", "put", "patch", "delete"):
        operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": {}}}}
    return operation


def _html(*statuses: int) -> dict[str, Any]:
    """A page's answers: HTML for a person, in plain words, whatever the status."""
    words = {
        200: "the page",
        303: "on to the provider (or back to the page)",
        400: "the link or the form is not valid; the page says why",
        403: "refused: a form from another site, or access declined at the provider",
        404: "no such link",
        409: "the provider refused (the app is already installed)",
        410: "the link expired or was already used",
        413: "the form is too large",
        415: "not this page's form",
        502: "the provider answered with an error",
        503: "the service cannot set this up right now",
    }
    page = {"text/html": {"schema": {"type": "string"}}}
    return {str(s): {"description": words[s], "content": page} for s in statuses}


_TOKEN_PARAM = {
    "name": "token",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 200},
    "description": "the connect session's token (from connect_url)",
}


def _page_paths() -> dict[str, Any]:
    form = {
        "type": "object",
        "properties": {
            "csrf": {"type": "string"},
            "action": {"type": "string", "enum": ["connect", "cancel"]},
            "provider": {"type": "string"},
            "confirm": {"type": "string", "enum": ["yes"]},
        },
        "additionalProperties": {"type": "string"},
    }
    return {
        "/connect/{token}": {
            "parameters": [_TOKEN_PARAM],
            "get": {
                "operationId": "connectPage",
                "summary": "the connect page an end user opens (HTML; no key needed)",
                "tags": ["connect page"],
                "security": [],
                "parameters": [{"name": "provider", "in": "query", "required": False, "schema": {"type": "string"}}],
                "responses": _html(200, 400, 404, 410, 503),
            },
            "post": {
                "operationId": "connectPageForm",
                "summary": "the connect page's form: start connecting, or cancel (HTML; CSRF-protected)",
                "tags": ["connect page"],
                "security": [],
                "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": form}}},
                "responses": _html(200, 303, 400, 403, 404, 409, 410, 413, 415, 502, 503),
            },
        },
        "/connect/oauth2/{provider}/callback": {
            "parameters": [
                {
                    "name": "provider",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "the provider key: register PUBLIC_URL/connect/oauth2/KEY/callback at the provider",
                }
            ],
            "get": {
                "operationId": "oauthCallback",
                "summary": "where the provider sends the end user back (HTML), also after an install begun there",
                "tags": ["connect page"],
                "security": [],
                "parameters": [
                    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                    for name in ("code", "state", "iss", "error", "error_description")
                ],
                "responses": _html(200, 400, 403, 404, 409, 502),
            },
        },
    }


def openapi_document(public_url: str) -> dict[str, Any]:
    """The document, with ``public_url`` as its server."""
    connection = _ok("the connection", _ref("Connection"))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "connector-core platform API",
            "version": __version__,
            "description": "Connections of the platform's end users: list, inspect, refresh, attach, delete, "
            "and call the provider's API through them; their lifecycle events, and the webhooks that deliver "
            "them. Every error is an RFC 9457 problem.",
        },
        "servers": [{"url": public_url}],
        "security": [{"apiKey": []}],
        "paths": {
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "whether the service answers (no key needed, no details given)",
                    "security": [],
                    "responses": {
                        "200": _ok(
                            "it answers",
                            {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
                        )
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "the service's metrics, in Prometheus' text format (the key is needed unless the "
                    "service was made with metrics_public)",
                    "responses": {
                        "200": {
                            "description": "connections by status, refreshes, webhook deliveries, requests",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors(),
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "this document",
                    "responses": {"200": _ok("the OpenAPI 3.1 document", {"type": "object"}), **_errors()},
                }
            },
            "/v1/connections": {
                "get": {
                    "operationId": "listConnections",
                    "summary": "the connections, by id, a page at a time",
                    "parameters": _list_parameters(),
                    "responses": {"200": _ok("a page", _ref("ConnectionPage")), **_errors(400)},
                }
            },
            "/v1/connections/{id}": {
                "parameters": [_ID_PARAM],
                "get": {
                    "operationId": "getConnection",
                    "summary": "one connection",
                    "responses": {"200": connection, **_errors(404)},
                },
                "delete": {
                    "operationId": "deleteConnection",
                    "summary": "revoke the grant at the provider where it can be, then delete the connection",
                    "responses": {
                        "200": _ok("deleted; says whether the provider revoked", _ref("Deleted")),
                        **_errors(404, 409, 502, 503),
                    },
                },
            },
            "/v1/connections/{id}/refresh": {
                "parameters": [_ID_PARAM],
                "post": {
                    "operationId": "refreshConnection",
                    "summary": "refresh the connection's tokens now",
                    "responses": {"200": connection, **_errors(400, 404, 409, 502, 503)},
                },
            },
            "/v1/connections/{id}/events": {
                "parameters": [_ID_PARAM],
                "get": {
                    "operationId": "connectionEvents",
                    "summary": "the connection's status changes, oldest first",
                    "responses": {"200": _ok("its events", _ref("Events")), **_errors(404)},
                },
            },
            "/v1/connections/{id}/owner": {
                "parameters": [_ID_PARAM],
                "put": {
                    "operationId": "setOwner",
                    "summary": "attach the connection to an end user, or change its organisation and tags",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("OwnerChange")}}},
                    "responses": {"200": connection, **_errors(400, 404, 409, 413, 415)},
                },
            },
            "/v1/connections/{id}/proxy/{path}": {
                method: _proxy_operation(method) for method in ("get", "head", "post", "put", "patch", "delete")
            },
            "/v1/connect/sessions": {
                "post": {
                    "operationId": "createConnectSession",
                    "summary": "let one of the platform's end users connect an account: send them to connect_url",
                    "tags": ["connect sessions"],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("SessionRequest")}},
                    },
                    "responses": {
                        "201": _ok("the session and its single-use token", _ref("SessionCreated")),
                        **_errors(400, 413, 415),
                    },
                }
            },
            "/v1/connect/sessions/{id}": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": _ID, "description": "the session's id"}
                ],
                "get": {
                    "operationId": "getConnectSession",
                    "summary": "how a connect session stands or ended (never its token)",
                    "tags": ["connect sessions"],
                    "responses": {"200": _ok("the session", _ref("Session")), **_errors(404)},
                },
            },
            **_webhook_paths(),
            **_page_paths(),
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "one of the service's API keys"}
            },
        },
    }
