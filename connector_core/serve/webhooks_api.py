"""The webhooks and events part of the platform API: endpoints, the delivery log, replays, and
the lifecycle events themselves.

* ``/v1/webhooks/endpoints``: ``POST`` configures one (``url``, ``event_types``, ``allow_private``,
  ``secret``; without a secret one is generated and answered this once, in the 201), ``GET`` lists
  them; ``/v1/webhooks/endpoints/{id}``: ``GET``, ``DELETE``; ``.../rotate-secret`` (a new secret
  beside the current one, both signing), ``.../drop-previous-secret``, ``.../enable``,
  ``.../disable``.
* ``GET /v1/webhooks/deliveries``: the delivery log, a page at a time (``endpoint_id``,
  ``event_id``, ``status``, ``after``, ``limit``).
* ``POST /v1/webhooks/replay``: new deliveries of one event (``event_id``) or of a time range
  (``since``, ``until``), to every subscribed endpoint or one (``endpoint_id``).
* ``GET /v1/events``: the events in the store's order (``after`` the last ``seq`` seen, ``limit``,
  ``type``, ``connection_id``): what a platform that missed deliveries reads to catch up.

A URL is held to the webhook URL policy (:func:`~connector_core.webhooks.check_webhook_url`);
every error is a problem naming the field. No answer but the 201 of a generated secret (and of
a rotation to one) holds a secret.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import ValidationError
from ..events import EventType
from ..webhooks import DeliveryStatus, add_endpoint, delivery_data, endpoint_data, rotate_secret
from .problems import Problem, read_body, read_query

if TYPE_CHECKING:
    from ..connector import Connector
    from ..events import Event
    from ..webhooks.urls import Resolver

__all__ = ["MAX_PAGE", "WebhooksApi", "event_data"]

MAX_PAGE = 200
DEFAULT_PAGE = 50
_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,200}")
_ENDPOINT_FIELDS = ("url", "event_types", "allow_private", "secret")
_REPLAY_FIELDS = ("event_id", "since", "until", "endpoint_id")
#: Store refusals that are a conflict with the endpoint's state, not a bad value.
_CONFLICTS = ("rotating", "not_rotating", "disabled")


def event_data(event: Event) -> dict[str, Any]:
    """An event as ``GET /v1/events`` lists it: its webhook payload and its ``seq``."""
    return {"seq": event.seq, **event.payload()}


def _number(query: dict[str, str], name: str, default: int | None, low: int, high: int | None) -> int | None:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        expected = f"{low} to {high}" if high is not None else f"a whole number from {low}"
        raise Problem(400, "invalid", f"{name}: expected {expected}, got {text[:20]!r}", field=name)
    return int(text)


def _text(query: dict[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is not None and not _ID_RE.fullmatch(value):
        raise Problem(400, "invalid", f"{name}: not a valid id", field=name)
    return value


async def _body(request: Request, fields: Sequence[str], limit: int, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object with no field but ``fields`` (an empty body is ``{}`` when ``optional``)."""
    body = await read_body(request, limit)
    if optional and not body.strip():
        return {}
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise Problem(415, "unsupported-media-type", "send the body as application/json", field="body")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise Problem(400, "malformed-json", "body: is not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise Problem(400, "invalid", f"body: expected a JSON object, got {type(data).__name__}", field="body")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        field = unknown[0][:50]
        raise Problem(400, "unknown-field", f"{field}: unknown field (expected: {', '.join(fields)})", field=field)
    return data


def _optional_string(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise Problem(400, "invalid", f"{name}: expected a string or null", field=name)
    return value


def _conflict_or_invalid(exc: ValidationError) -> Problem:
    if exc.code in _CONFLICTS:
        return Problem(409, "conflict", exc.message, field=exc.field)
    return Problem(400, "invalid", exc.message, field=exc.field)


class WebhooksApi:
    """The webhook and event routes over one connector's store. ``resolve`` resolves an endpoint
    URL's host when it is configured (tests replace it: the API itself never needs the network)."""

    def __init__(self, connector: Connector, max_body: int, resolve: Resolver = socket.getaddrinfo) -> None:
        self.connector = connector
        self.max_body = max_body
        self.resolve = resolve

    def routes(self) -> list[BaseRoute]:
        base = "/v1/webhooks/endpoints"
        return [
            Route("/v1/events", self.list_events, methods=["GET"]),
            Route(base, self.create_endpoint, methods=["POST"]),
            Route(base, self.list_endpoints, methods=["GET"]),
            Route(base + "/{id}", self.get_endpoint, methods=["GET"]),
            Route(base + "/{id}", self.delete_endpoint, methods=["DELETE"]),
            Route(base + "/{id}/rotate-secret", self.rotate_secret, methods=["POST"]),
            Route(base + "/{id}/drop-previous-secret", self.drop_previous_secret, methods=["POST"]),
            Route(base + "/{id}/enable", self.enable, methods=["POST"]),
            Route(base + "/{id}/disable", self.disable, methods=["POST"]),
            Route("/v1/webhooks/deliveries", self.list_deliveries, methods=["GET"]),
            Route("/v1/webhooks/replay", self.replay, methods=["POST"]),
        ]

    @property
    def store(self) -> Any:
        return self.connector.store

    def _id(self, request: Request) -> str:
        endpoint_id: str = request.path_params["id"]
        if not _ID_RE.fullmatch(endpoint_id):
            raise Problem(404, "not-found", "no webhook endpoint with such an id", field="id")
        return endpoint_id

    # ----------------------------------------------------------------- events

    async def list_events(self, request: Request) -> Response:
        query = read_query(request, ("after", "limit", "type", "connection_id"))
        limit = _number(query, "limit", DEFAULT_PAGE, 1, MAX_PAGE) or DEFAULT_PAGE
        after = _number(query, "after", None, 0, None)
        types = None
        if "type" in query:
            try:
                types = [EventType(query["type"])]
            except ValueError:
                known = ", ".join(kind.value for kind in EventType)
                raise Problem(400, "invalid", f"type: expected one of {known}", field="type") from None
        connection_id = _text(query, "connection_id")
        page = await anyio.to_thread.run_sync(
            lambda: self.store.list_events(after=after, limit=limit + 1, types=types, connection_id=connection_id)
        )
        more = len(page) > limit
        page = page[:limit]
        return JSONResponse({"data": [event_data(e) for e in page], "next": page[-1].seq if more else None})

    # -------------------------------------------------------------- endpoints

    async def create_endpoint(self, request: Request) -> Response:
        data = await _body(request, _ENDPOINT_FIELDS, self.max_body)
        url = data.get("url")
        if not isinstance(url, str):
            raise Problem(400, "invalid", "url: required, a string", field="url")
        allow_private = data.get("allow_private", False)
        if not isinstance(allow_private, bool):
            raise Problem(400, "invalid", "allow_private: expected true or false", field="allow_private")
        kinds = data.get("event_types")
        if kinds is not None and not isinstance(kinds, list):
            raise Problem(400, "invalid", "event_types: expected a list of event types, or null", field="event_types")
        secret = _optional_string(data, "secret")
        try:
            endpoint, generated = await anyio.to_thread.run_sync(
                lambda: add_endpoint(
                    self.store, url, event_types=kinds, allow_private=allow_private, secret=secret, resolve=self.resolve
                )
            )
        except ValidationError as exc:
            raise _conflict_or_invalid(exc) from None
        return JSONResponse(endpoint_data(endpoint, generated), status_code=201)

    async def list_endpoints(self, request: Request) -> Response:
        read_query(request, ())
        endpoints = await anyio.to_thread.run_sync(self.store.list_webhook_endpoints)
        return JSONResponse({"data": [endpoint_data(e) for e in endpoints]})

    async def get_endpoint(self, request: Request) -> Response:
        endpoint = await anyio.to_thread.run_sync(self.store.get_webhook_endpoint, self._id(request))
        return JSONResponse(endpoint_data(endpoint))

    async def delete_endpoint(self, request: Request) -> Response:
        endpoint_id = self._id(request)
        await anyio.to_thread.run_sync(self.store.delete_webhook_endpoint, endpoint_id)
        return JSONResponse({"id": endpoint_id, "deleted": True})

    async def rotate_secret(self, request: Request) -> Response:
        endpoint_id = self._id(request)
        data = await _body(request, ("secret",), self.max_body, optional=True)
        secret = _optional_string(data, "secret")
        await anyio.to_thread.run_sync(self.store.get_webhook_endpoint, endpoint_id)  # 404 before 400
        try:
            endpoint, generated = await anyio.to_thread.run_sync(lambda: rotate_secret(self.store, endpoint_id, secret))
        except ValidationError as exc:
            raise _conflict_or_invalid(exc) from None
        return JSONResponse(endpoint_data(endpoint, generated))

    async def drop_previous_secret(self, request: Request) -> Response:
        endpoint_id = self._id(request)
        try:
            endpoint = await anyio.to_thread.run_sync(self.store.drop_previous_webhook_secret, endpoint_id)
        except ValidationError as exc:
            raise _conflict_or_invalid(exc) from None
        return JSONResponse(endpoint_data(endpoint))

    async def enable(self, request: Request) -> Response:
        endpoint_id = self._id(request)
        endpoint = await anyio.to_thread.run_sync(lambda: self.store.set_webhook_endpoint_disabled(endpoint_id, False))
        return JSONResponse(endpoint_data(endpoint))

    async def disable(self, request: Request) -> Response:
        endpoint_id = self._id(request)
        data = await _body(request, ("reason",), self.max_body, optional=True)
        reason = _optional_string(data, "reason") or "disabled through the API"
        endpoint = await anyio.to_thread.run_sync(
            lambda: self.store.set_webhook_endpoint_disabled(endpoint_id, True, reason)
        )
        return JSONResponse(endpoint_data(endpoint))

    # ------------------------------------------------------------- the outbox

    async def list_deliveries(self, request: Request) -> Response:
        query = read_query(request, ("endpoint_id", "event_id", "status", "after", "limit"))
        limit = _number(query, "limit", DEFAULT_PAGE, 1, MAX_PAGE) or DEFAULT_PAGE
        after = _number(query, "after", None, 0, None)
        status = None
        if "status" in query:
            try:
                status = DeliveryStatus(query["status"])
            except ValueError:
                known = ", ".join(s.value for s in DeliveryStatus)
                raise Problem(400, "invalid", f"status: expected one of {known}", field="status") from None
        endpoint_id, event_id = _text(query, "endpoint_id"), _text(query, "event_id")
        page = await anyio.to_thread.run_sync(
            lambda: self.store.list_webhook_deliveries(
                endpoint_id=endpoint_id, event_id=event_id, status=status, after=after, limit=limit + 1
            )
        )
        more = len(page) > limit
        page = page[:limit]
        return JSONResponse({"data": [delivery_data(d) for d in page], "next": page[-1].seq if more else None})

    async def replay(self, request: Request) -> Response:
        data = await _body(request, _REPLAY_FIELDS, self.max_body)
        given = {name: _optional_string(data, name) for name in _REPLAY_FIELDS}
        for name in ("event_id", "endpoint_id"):
            if given[name] is not None and not _ID_RE.fullmatch(str(given[name])):
                raise Problem(404, "not-found", f"{name}: no such id", field=name)
        try:
            made = await anyio.to_thread.run_sync(lambda: self.store.replay_webhooks(**given))
        except ValidationError as exc:
            raise _conflict_or_invalid(exc) from None
        return JSONResponse({"deliveries": made}, status_code=202)
