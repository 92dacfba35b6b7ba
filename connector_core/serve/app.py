"""``create_app()``: the platform API as a Starlette application a platform mounts in its own
ASGI host, or ``connector serve`` runs under uvicorn.

Under ``/v1``, every route needs a bearer API key (:mod:`.keys`); ``/healthz`` needs none and
says nothing. Every answer carries strict security headers and ``Cache-Control: no-store``;
every error is a problem (:mod:`.problems`). Routes added later (connect sessions, the hosted
page, the callback) join through ``routes=``, behind the same guard.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..connection import ConnectionStatus, EndUser, Owner
from ..connection_json import connection_data
from ..errors import ConnectorError, ValidationError
from ..models import url_problem
from ..secret import Secret
from . import proxy
from .config import ConnectConfig
from .connect import ConnectService
from .keys import ApiKeys
from .metrics import Metrics, RequestMetrics
from .problems import DEFAULT_MAX_BODY, Problem, error_problem, problem_response, read_body, read_json, read_query
from .threads import in_store_thread
from .webhooks_api import WebhooksApi

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ..connection import Connection
    from ..connector import Connector
    from ..models import AuthType

__all__ = ["MAX_PAGE", "PROXY_METHODS", "check_public_url", "create_app"]

log = logging.getLogger("connector_core.serve")

MAX_PAGE = 200
DEFAULT_PAGE = 50
PROXY_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
#: What an id in a path or a filter may be: printable, no spaces, at most 200 characters.
ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,200}")
_TEXT_RE = re.compile(r"[\x21-\x7e]{1,200}")
_TAG_RE = re.compile(r"[a-z0-9][a-z0-9._:-]{0,63}")
_TOKEN_IN_PATH = re.compile(r"cs_[A-Za-z0-9_-]+")
_LIST_PARAMS = ("limit", "after", "end_user", "provider", "status", "tag", "organisation", "unclaimed")
_SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)


def check_public_url(url: str, field: str = "public_url") -> str:
    """``url`` without its trailing slash, when it is an https URL (http only for a loopback
    host) with no query, fragment or credentials; a :class:`ValidationError` naming ``field``
    otherwise."""
    problem = url_problem(url)
    if problem is None and urlsplit(url).query:
        problem = "expected a URL without a ?query"
    if problem:
        raise ValidationError(field, f"{problem}, got {url!r}")
    return url.rstrip("/")


class _Guard:
    """The outermost layer: security headers on every answer, the API key on ``/v1/*``, and
    any unexpected error as a bare 500 problem (logged here, never shown)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, hsts: bool) -> None:
        self.app = app
        self.keys = keys
        self.headers = _SECURITY_HEADERS + (
            ((b"strict-transport-security", b"max-age=31536000; includeSubDomains"),) if hsts else ()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered: list[int] = []

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])
                present = {name.lower() for name, _ in message.get("headers", [])}
                if b"content-security-policy" in present:
                    # A page with its own CSP says who may frame it (frame-ancestors); a DENY would overrule it.
                    present.add(b"x-frame-options")
                extra = [(name, value) for name, value in self.headers if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        began = time.perf_counter()
        try:
            await self._answer(scope, receive, secured, path, answered)
        finally:
            # The path only (a callback's query holds a code and a state), a connect token masked.
            method, shown = scope.get("method"), _TOKEN_IN_PATH.sub("cs_…", path)[:300]
            status, ms = (answered[0] if answered else "-"), round((time.perf_counter() - began) * 1000, 1)
            fields = {"method": method, "path": shown, "status": status, "ms": ms}  # the JSON log's fields
            log.info("%s %s %s %.1fms", method, shown, status, ms, extra=fields)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, path: str, answered: list[int]) -> None:
        if (path == "/v1" or path.startswith("/v1/")) and not self._authorized(scope):
            reply = Problem(
                401,
                "unauthorized",
                "send a valid API key as 'Authorization: Bearer KEY'",
                headers={"WWW-Authenticate": 'Bearer realm="connector"'},
            )
            await problem_response(reply)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), _TOKEN_IN_PATH.sub("cs_…", path))
            if answered:
                raise
            await problem_response(Problem(500, "internal", "the request could not be completed"))(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        values = [value for name, value in scope.get("headers", []) if name.lower() == b"authorization"]
        if len(values) != 1:
            return False
        scheme, _, key = values[0].decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and self.keys.matches(key.strip())


def create_app(
    connector: Connector,
    *,
    api_keys: ApiKeys | Iterable[str | Secret],
    public_url: str,
    trust_forwarded: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    routes: Sequence[BaseRoute] = (),
    redirect_allow_list: Iterable[str] = (),
    embed_origins: Iterable[str] = (),
    install_profiles: Mapping[str, str] | None = None,
    install_redirect_url: str | None = None,
    metrics: Metrics | None = None,
    metrics_public: bool = False,
) -> Starlette:
    """The platform API over ``connector``, as an ASGI application.

    ``api_keys``: the keys a caller may send (several during a rotation). ``public_url``: the
    base URL the service is reached at (https; http only on loopback), which every link and
    the OpenAPI document's server use; ``trust_forwarded``: whether the ASGI server was told
    to honour ``X-Forwarded-*`` headers (recorded for the routes that build URLs from a
    request; the API itself builds none from them). ``max_body_bytes``: the largest request
    body read. ``routes``: more routes behind the same guard.

    The connect service: ``redirect_allow_list``, the URLs (origin and path prefix) a connect
    session may send its end user back to (see :func:`~connector_core.sessions.redirect_allowed`);
    ``embed_origins``, the origins (``https://app.example.com``) that may frame the connect page or
    open it as a popup, and the only ones its ``postMessage`` events go to; ``install_profiles``,
    for each provider whose installs may begin at the provider (in its marketplace), the profile
    that takes them (default: its only such profile); ``install_redirect_url``, where an end user
    is sent after such an install (on the allow-list; ``connection_id`` and ``provider`` added).

    ``metrics``: what ``GET /metrics`` exposes (default: a new :class:`~.metrics.Metrics` over the
    connector's store), also ``app.state.metrics``; it needs an API key unless ``metrics_public``.
    """
    keys = api_keys if isinstance(api_keys, ApiKeys) else ApiKeys(api_keys)
    base = check_public_url(public_url)
    config = ConnectConfig.build(
        redirect_allow_list=redirect_allow_list,
        embed_origins=embed_origins,
        install_profiles=install_profiles,
        install_redirect_url=install_redirect_url,
    )
    api = _Api(connector, base, max_body_bytes)
    connect = ConnectService(connector, config, base, max_body_bytes)
    metrics = metrics if metrics is not None else Metrics(connector.store)
    hooks = WebhooksApi(connector, max_body_bytes)
    app = Starlette(
        routes=[*api.routes(), *connect.routes(), *hooks.routes(), metrics.route(keys, public=metrics_public), *routes],
        exception_handlers={
            Problem: _on_problem,
            ConnectorError: _on_connector_error,
            HTTPException: _on_http_exception,
        },
    )
    app.state.connector = connector
    app.state.public_url = base
    app.state.trust_forwarded = trust_forwarded
    app.state.max_body_bytes = max_body_bytes
    app.state.connect_config = config
    app.state.sessions = connect.sessions
    app.state.metrics = metrics
    app.state.webhooks = hooks
    app.add_middleware(_Guard, keys=keys, hsts=base.startswith("https://"))
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: it sees the guard's answers too
    return app


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _on_connector_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConnectorError)
    problem = error_problem(exc)
    if problem.status >= 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return problem_response(problem)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kinds = {404: "not-found", 405: "method-not-allowed"}
    detail = {404: f"no route {request.url.path[:200]!r}", 405: f"{request.method} is not allowed here"}
    return problem_response(
        Problem(
            exc.status_code,
            kinds.get(exc.status_code, "http-error"),
            detail.get(exc.status_code, str(exc.detail)),
            headers=dict(exc.headers or {}),
        )
    )


def _json(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status)


class _Api:
    """The ``/v1`` routes over one connector."""

    def __init__(self, connector: Connector, public_url: str, max_body: int) -> None:
        self.connector = connector
        self.public_url = public_url
        self.max_body = max_body
        self._document: bytes | None = None

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/v1/openapi.json", self.openapi, methods=["GET"]),
            Route("/v1/connections", self.list_connections, methods=["GET"]),
            Route("/v1/connections/{id}", self.get_connection, methods=["GET"]),
            Route("/v1/connections/{id}", self.delete_connection, methods=["DELETE"]),
            Route("/v1/connections/{id}/refresh", self.refresh, methods=["POST"]),
            Route("/v1/connections/{id}/events", self.events, methods=["GET"]),
            Route("/v1/connections/{id}/owner", self.set_owner, methods=["PUT"]),
            Route("/v1/connections/{id}/proxy/{path:path}", self.proxy, methods=list(PROXY_METHODS)),
        ]

    # ------------------------------------------------------------- helpers

    def _auth_of(self, conn: Connection) -> AuthType | None:
        try:
            return self.connector.plugins.declaration(conn.provider).auth_type(conn.auth_type)
        except ConnectorError:
            return None

    def _data(self, conn: Connection) -> dict[str, Any]:
        return connection_data(conn, self._auth_of(conn))

    def _id(self, request: Request) -> str:
        cid: str = request.path_params["id"]
        if not ID_RE.fullmatch(cid):
            raise Problem(404, "not-found", "no connection with such an id", field="id")
        return cid

    async def _connection(self, cid: str) -> Connection:
        return await in_store_thread(self.connector.store.get_connection, cid)

    # -------------------------------------------------------------- routes

    async def healthz(self, request: Request) -> Response:
        return _json({"status": "ok"})

    async def openapi(self, request: Request) -> Response:
        if self._document is None:
            from .openapi import openapi_document  # here, not at the top: built on the first ask only

            self._document = json.dumps(openapi_document(self.public_url)).encode("utf-8")
        return Response(self._document, media_type="application/json")

    async def list_connections(self, request: Request) -> Response:
        query = read_query(request, _LIST_PARAMS)
        limit = DEFAULT_PAGE
        if "limit" in query:
            text = query["limit"]
            if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
                raise Problem(400, "invalid", f"limit: expected 1 to {MAX_PAGE}, got {text[:20]!r}", field="limit")
            limit = int(text)
        status = None
        if "status" in query:
            try:
                status = ConnectionStatus(query["status"])
            except ValueError:
                known = ", ".join(s.value for s in ConnectionStatus)
                raise Problem(400, "invalid", f"status: expected one of {known}", field="status") from None
        unclaimed = query.get("unclaimed", "false")
        if unclaimed not in ("true", "false"):
            raise Problem(400, "invalid", "unclaimed: expected true or false", field="unclaimed")
        filters: dict[str, str] = {}
        for name in ("after", "end_user", "provider", "organisation", "tag"):
            if name in query:
                pattern = _TAG_RE if name == "tag" else _TEXT_RE
                if not pattern.fullmatch(query[name]):
                    raise Problem(400, "invalid", f"{name}: not a valid {name.replace('_', ' ')}", field=name)
                filters[name] = query[name]
        page = await anyio.to_thread.run_sync(
            lambda: self.connector.store.list_connections(
                status=status, limit=limit + 1, unclaimed=unclaimed == "true", **filters
            )
        )
        more = len(page) > limit
        page = page[:limit]
        kinds: dict[tuple[str, str], AuthType | None] = {}  # each provider's auth type read once a page
        data = []
        for conn in page:
            key = (conn.provider, conn.auth_type)
            if key not in kinds:
                kinds[key] = self._auth_of(conn)
            data.append(connection_data(conn, kinds[key]))
        return _json({"data": data, "next": page[-1].id if more else None})

    async def get_connection(self, request: Request) -> Response:
        return _json(self._data(await self._connection(self._id(request))))

    async def delete_connection(self, request: Request) -> Response:
        cid = self._id(request)
        conn = await self._connection(cid)
        if conn.status in (ConnectionStatus.REVOKED, ConnectionStatus.DISCONNECTED):
            revoked, detail = False, f"its tokens were already gone ({conn.status.value}); deleted"
        else:
            # A failed revocation answers its problem and deletes nothing: the grant would live on unseen.
            result = await anyio.to_thread.run_sync(self.connector.revoke, cid)
            revoked = result.revoked_at_provider
            detail = "revoked at the provider, then deleted" if revoked else f"{result.message}; then deleted"
        await anyio.to_thread.run_sync(self.connector.delete, cid)
        return _json({"id": cid, "deleted": True, "revoked_at_provider": revoked, "detail": detail})

    async def refresh(self, request: Request) -> Response:
        cid = self._id(request)
        conn = await self._connection(cid)
        if not self._uses_tokens(conn):
            raise Problem(
                409, "nothing-to-refresh", f"connection {cid} holds credentials, not tokens: nothing to refresh"
            )
        return _json(self._data(await self.connector.arefresh(cid, force=True)))

    def _uses_tokens(self, conn: Connection) -> bool:
        auth = self._auth_of(conn)
        return auth is None or auth.kind.uses_tokens

    async def events(self, request: Request) -> Response:
        cid = self._id(request)
        await self._connection(cid)
        events = await anyio.to_thread.run_sync(self.connector.store.connection_events, cid)
        return _json({"data": [{"at": e.at, "status": e.status.value, "reason": e.reason} for e in events]})

    async def set_owner(self, request: Request) -> Response:
        cid = self._id(request)
        data = await read_json(request, ("end_user", "organisation", "tags", "replace"), self.max_body)
        owner, replace = _owner(data)
        await self._connection(cid)
        try:
            conn = await anyio.to_thread.run_sync(lambda: self.connector.attach(cid, owner, replace=replace))
        except ValidationError as exc:
            if exc.field == "end_user" and "replace" in exc.message:
                raise Problem(
                    409,
                    "owned-by-another",
                    f'connection {cid} belongs to another end user; send "replace": true to hand it over',
                    field="end_user",
                ) from None
            raise
        return _json(self._data(conn))

    async def proxy(self, request: Request) -> Response:
        cid = self._id(request)
        sub = _raw_subpath(request)
        problem = proxy.path_problem(sub)
        if problem:
            raise Problem(400, "path-refused", f"path: {problem}", field="path")
        query = request.scope.get("query_string", b"").decode("latin-1")
        if query and not re.fullmatch(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*", query):
            raise Problem(400, "invalid", "query: holds a character that is not allowed in a URL", field="query")
        body = await read_body(request, self.max_body)
        payload: Any | None = None
        if body:
            media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                raise Problem(415, "unsupported-media-type", "body: the proxy forwards JSON bodies only", field="body")
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                raise Problem(400, "malformed-json", "body: is not valid JSON", field="body") from None
        target = "/" + sub + (f"?{query}" if query else "")
        reply = await self.connector.arequest(
            cid, request.method, target, json=payload, headers=proxy.request_headers(request.headers.items())
        )
        return Response(
            b"" if request.method == "HEAD" else reply.body,
            status_code=reply.status,
            headers=proxy.response_headers(reply.headers),
            media_type=proxy.response_media_type(reply.headers),
        )


def _raw_subpath(request: Request) -> str:
    """What follows ``/proxy/`` as the caller sent it (still percent-encoded): the decoded path
    would hide ``%2e%2e`` and ``%2f``."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        text = raw.decode("latin-1").split("?", 1)[0]
        start = text.find("/v1/connections/")
        cut = text.find("/proxy/", start + 1 if start >= 0 else 0)
        if cut >= 0:
            return text[cut + len("/proxy/") :]
    return quote(request.path_params.get("path", ""), safe="/")


def _owner(data: dict[str, Any]) -> tuple[Owner, bool]:
    """The owner and ``replace`` of a ``PUT .../owner`` body; a problem naming the field."""
    user = data.get("end_user")
    if not isinstance(user, dict):
        raise Problem(400, "invalid", "end_user: expected an object with an id", field="end_user")
    unknown = sorted(set(user) - {"id", "email", "display_name"})
    if unknown:
        field = f"end_user.{unknown[0]}"
        raise Problem(400, "unknown-field", f"{field}: unknown field (expected: id, email, display_name)", field=field)
    if "id" not in user:
        raise Problem(400, "invalid", "end_user.id: required", field="end_user.id")
    replace = data.get("replace", False)
    if not isinstance(replace, bool):
        raise Problem(400, "invalid", "replace: expected true or false", field="replace")
    tags = data.get("tags", [])
    if not isinstance(tags, list):
        raise Problem(400, "invalid", "tags: expected a list of tags", field="tags")
    for name in ("id", "email", "display_name"):
        if user.get(name) is not None and not isinstance(user[name], str):
            raise Problem(400, "invalid", f"end_user.{name}: expected a string", field=f"end_user.{name}")
    organisation = data.get("organisation")
    if organisation is not None and not isinstance(organisation, str):
        raise Problem(400, "invalid", "organisation: expected a string or null", field="organisation")
    try:
        owner = Owner(EndUser(user["id"], user.get("email"), user.get("display_name")), organisation, tuple(tags))
    except ValidationError as exc:
        raise Problem(400, "invalid", exc.message, field=exc.field) from None
    return owner, replace
