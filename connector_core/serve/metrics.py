"""The service's Prometheus metrics (``GET /metrics``, prometheus-client's text format).

A :class:`Metrics` owns a private registry, never prometheus-client's global one, so several
applications in one process keep their numbers apart. It counts the connections by status
when scraped (from the store), and what the refreshing and webhook-delivering parts report
through its methods (:meth:`~Metrics.refreshed`, :meth:`~Metrics.delivered`,
:meth:`~Metrics.outbox_depth`); :class:`RequestMetrics`, a middleware, counts and times the
service's own requests by route template (``/connect/{token}``), never by raw path, so no
token or id becomes a label value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from ..errors import ConnectorError
from .problems import Problem

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ..store import StoreLike
    from .keys import ApiKeys

__all__ = [
    "CONTENT_TYPE",
    "DELIVERY_OUTCOMES",
    "METRICS_PATH",
    "REFRESH_OUTCOMES",
    "UNMATCHED_ROUTE",
    "Metrics",
    "RequestMetrics",
]

log = logging.getLogger("connector_core.serve")

METRICS_PATH = "/metrics"
#: Prometheus' text exposition format, the one every scraper reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: How a refresh ended: done, failed for now (retried), failed for good (reconnect needed).
REFRESH_OUTCOMES = ("ok", "transient", "permanent")
#: How a webhook delivery attempt ended: accepted, to be tried again, given up.
DELIVERY_OUTCOMES = ("delivered", "retry", "failed")
#: The route label of a request no route matched (a 404): raw paths never become labels.
UNMATCHED_ROUTE = "unmatched"
#: The method label of anything else (a client may send any token as a method).
_OTHER_METHOD = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Webhook receivers have 10 s to answer; requests to the service are mostly milliseconds.
_DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _ConnectionCounts:
    """``connector_connections{status}`` and ``connector_store_up``, counted from the store at
    each scrape (one ``count_connections()``: a single GROUP BY, no row read)."""

    def __init__(self, store: StoreLike) -> None:
        self._store = store

    def describe(self) -> Iterable[Metric]:
        return [self._connections(), self._up()]

    def collect(self) -> Iterator[Metric]:
        connections, up = self._connections(), self._up()
        try:
            counts = self._store.count_connections()
        except ConnectorError as exc:
            # The scrape still answers (the counters are worth having); store_up says why the gauge is empty.
            log.warning("metrics: counting the connections failed: %s", type(exc).__name__)
            up.add_metric([], 0)
        else:
            for status, count in counts.items():
                connections.add_metric([status.value], count)
            up.add_metric([], 1)
        yield connections
        yield up

    @staticmethod
    def _connections() -> GaugeMetricFamily:
        return GaugeMetricFamily("connector_connections", "Connections in the store, by status.", labels=["status"])

    @staticmethod
    def _up() -> GaugeMetricFamily:
        return GaugeMetricFamily("connector_store_up", "1 when the store answered this scrape's count, else 0.")


class Metrics:
    """The service's metrics in a registry of their own.

    ``store``: whose connections ``connector_connections{status}`` counts at each scrape
    (without one, that gauge and ``connector_store_up`` are absent). The methods are what the
    parts that refresh connections and deliver webhooks call; each label value is checked
    against a short closed list, so the number of series stays bounded.
    """

    def __init__(self, store: StoreLike | None = None) -> None:
        self._registry = CollectorRegistry(auto_describe=True)
        self._store = store
        registry = self._registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        if store is not None:
            registry.register(_ConnectionCounts(store))
        self._refreshes = Counter(
            "connector_refreshes",
            "Token refreshes, by outcome: ok, transient (retried later), permanent (needs reconnecting).",
            ["outcome"],
            registry=registry,
        )
        self._deliveries = Counter(
            "connector_webhook_deliveries",
            "Webhook delivery attempts, by outcome: delivered, retry (tried again later), failed (given up).",
            ["outcome"],
            registry=registry,
        )
        self._delivery_seconds = Histogram(
            "connector_webhook_delivery_seconds",
            "How long a webhook delivery attempt took, until the receiver's answer or the timeout.",
            buckets=_DELIVERY_BUCKETS,
            registry=registry,
        )
        self._outbox = Gauge(
            "connector_webhook_outbox_depth",
            "Webhook deliveries waiting in the outbox, as last seen by the deliverer.",
            registry=registry,
        )
        self._requests = Counter(
            "connector_http_requests",
            "Requests the service answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self._request_seconds = Histogram(
            "connector_http_request_seconds",
            "How long the service took to answer a request, by route template.",
            ["route"],
            buckets=_REQUEST_BUCKETS,
            registry=registry,
        )
        for outcome in REFRESH_OUTCOMES:  # every outcome shows from the start, at 0
            self._refreshes.labels(outcome=outcome)
        for outcome in DELIVERY_OUTCOMES:
            self._deliveries.labels(outcome=outcome)

    def __repr__(self) -> str:
        return "<Metrics>"

    @property
    def registry(self) -> CollectorRegistry:
        """The private registry (to expose elsewhere, or to add collectors of your own)."""
        return self._registry

    def refreshed(self, outcome: str) -> None:
        """Count one refresh: ``outcome`` is ``ok``, ``transient`` or ``permanent``."""
        self._refreshes.labels(outcome=_checked("outcome", outcome, REFRESH_OUTCOMES)).inc()

    def delivered(self, outcome: str, seconds: float) -> None:
        """Count one webhook delivery attempt (``delivered``, ``retry`` or ``failed``) that
        took ``seconds``."""
        self._deliveries.labels(outcome=_checked("outcome", outcome, DELIVERY_OUTCOMES)).inc()
        self._delivery_seconds.observe(max(0.0, seconds))

    def outbox_depth(self, n: int) -> None:
        """The number of deliveries waiting in the outbox now."""
        if n < 0:
            raise ValueError(f"n: expected 0 or more deliveries, got {n}")
        self._outbox.set(n)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request the service answered: ``route`` is the matched route's path
        template (``/v1/connections/{id}``) or :data:`UNMATCHED_ROUTE`, never a raw path. A
        method outside the usual ones is counted as ``other``."""
        method = method.upper() if method.upper() in _METHODS else _OTHER_METHOD
        self._requests.labels(method=method, route=route, status=str(status)).inc()
        self._request_seconds.labels(route=route).observe(max(0.0, seconds))

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format (see :data:`CONTENT_TYPE`); counting the
        connections queries the store, so call it from a thread in async code. The outbox's
        depth is read from the store here too (any replica's scrape sees the shared outbox)."""
        depth = getattr(self._store, "outbox_depth", None)
        if callable(depth):
            try:
                self.outbox_depth(int(depth()))
            except ConnectorError as exc:
                log.warning("metrics: reading the outbox depth failed: %s", type(exc).__name__)
        return generate_latest(self._registry)

    def route(self, keys: ApiKeys, *, public: bool = False) -> Route:
        """``GET /metrics``: the exposition, for a bearer API key among ``keys`` unless
        ``public``."""

        async def metrics(request: Request) -> Response:
            if not public and not _authorized(request, keys):
                raise Problem(
                    401,
                    "unauthorized",
                    "send a valid API key as 'Authorization: Bearer KEY'",
                    headers={"WWW-Authenticate": 'Bearer realm="connector"'},
                )
            body = await anyio.to_thread.run_sync(self.exposition)
            return Response(body, media_type=CONTENT_TYPE)

        return Route(METRICS_PATH, metrics, methods=["GET"])


def _checked(field: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{field}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _authorized(request: Request, keys: ApiKeys) -> bool:
    """Exactly one ``Authorization: Bearer KEY`` header, with a key among ``keys`` (as the
    guard checks ``/v1``)."""
    values = request.headers.getlist("authorization")
    if len(values) != 1:
        return False
    scheme, _, key = values[0].partition(" ")
    return scheme.lower() == "bearer" and keys.matches(key.strip())


def _route_template(scope: Scope, outer: object) -> str:
    """The path template of the route that answered (or would have, had the key been right),
    else :data:`UNMATCHED_ROUTE`. ``outer``: the route the scope held on the way in (a host's
    ``Mount`` of this app), which is not ours."""
    route = scope.get("route")
    if route is None or route is outer:
        # Answered before routing (the guard's 401): find the route the request was for.
        app = scope.get("app")
        route = None
        for candidate in getattr(app, "routes", ()):
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                route = candidate
                break
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class RequestMetrics:
    """A middleware that reports each HTTP request to :meth:`Metrics.request`: its method,
    route template, status (500 when nothing was answered) and duration."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        outer = scope.get("route")
        began = time.perf_counter()
        try:
            await self.app(scope, receive, noted)
        finally:
            self.metrics.request(
                str(scope.get("method", "")),
                _route_template(scope, outer),
                status[0] if status else 500,
                time.perf_counter() - began,
            )
