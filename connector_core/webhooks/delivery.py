"""The deliverer: it takes due deliveries from the outbox and POSTs each event to its endpoint,
signed, at least once.

One round (:meth:`WebhookDeliverer.run_once`):

1. **Claim** due deliveries (:meth:`~.outbox.WebhookStore.claim_webhook_deliveries`) until
   ``now + claim_ttl``: on PostgreSQL several deliverers share the outbox (``FOR UPDATE SKIP
   LOCKED``), on SQLite the claim is a write transaction. A deliverer killed mid-delivery leaves
   its claims to expire; the deliveries are then attempted again, with the same ``webhook-id``
   (a deliverer restarted under the same ``owner`` takes them back at once).
2. **POST** the event's :meth:`~connector_core.events.Event.payload` as compact UTF-8 JSON, with
   :func:`~.signing.webhook_headers` (``webhook-id`` is the event's id on every attempt and every
   replay; the signature covers this attempt's timestamp), within ``timeout`` seconds per step
   (connecting, sending, each read), never following a redirect, reading at most 1 KiB of the
   answer. The address connected to is held to the URL policy first: every address the host
   resolves to must be allowed (:func:`~.urls.address_allowed`; a private one only with the
   endpoint's ``allow_private``), and the connection goes to one of those checked addresses
   (no DNS rebinding between the check and the connection). An injected ``client`` is checked
   after the fact instead, by the peer address of its connection.
3. **Record** the round's attempts in the delivery log, in one transaction, and move each
   delivery on: a 2xx (but an HTML page) is ``delivered``; 410 Gone disables the endpoint and
   fails its pending deliveries; anything else (a timeout, a refused connection, a 5xx or 4xx, a
   redirect, an HTML page) is retried after an exponential backoff with full jitter (5 s
   doubling, at most an hour), until the delivery is older than ``max_age`` (3 days): then it
   is ``failed``.

:meth:`WebhookDeliverer.run` repeats rounds until a stop event is set; :func:`delivering` runs
it in a background thread (``connector serve`` does, and ``connector webhooks deliver`` in the
foreground). No log line holds a secret, a signature or an event's body.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
import httpcore
import httpx

from .._markers import __version__
from .._nocookies import CookielessClient
from ..errors import StoreError, UnknownNameError
from .outbox import (
    MAX_ANSWER_BYTES,
    AttemptRecord,
    AttemptResult,
    Outcome,
    WebhookStore,
    answer_text,
    backoff,
    utc_time,
)
from .signing import webhook_headers
from .urls import Resolver, _address_problem, _parse

if TYPE_CHECKING:
    from ..events import Event
    from ..secret import Secret
    from .endpoints import WebhookEndpoint
    from .outbox import Delivery

__all__ = ["DEFAULT_TIMEOUT", "MAX_AGE", "USER_AGENT", "DeliveryReport", "WebhookDeliverer", "delivering"]

log = logging.getLogger("connector_core.webhooks")

#: How long each step of an attempt may take (connecting, sending, each read), in seconds.
DEFAULT_TIMEOUT = 10.0
#: How long a delivery is retried before it is given up (3 days), in seconds.
MAX_AGE = 3 * 86400.0
USER_AGENT = f"connector-core-webhooks/{__version__}"
_HTML = ("text/html", "application/xhtml+xml")


@attrs.frozen
class DeliveryReport:
    """What one round of :meth:`WebhookDeliverer.run_once` did."""

    #: Deliveries claimed (each attempted once, unless its endpoint went meanwhile).
    claimed: int = 0
    delivered: int = 0
    #: Attempts that failed and will be retried.
    retried: int = 0
    #: Deliveries given up (too old, or their endpoint answered 410 Gone).
    failed: int = 0
    #: Endpoints disabled because they answered 410 Gone.
    disabled: int = 0

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(*(a + b for a, b in zip(attrs.astuple(self), attrs.astuple(other), strict=True)))


@attrs.frozen
class _Attempted:
    """One attempt of a round, to record with the others."""

    result: AttemptResult
    endpoint_id: str
    seconds: float


@attrs.frozen
class _Answer:
    """What one POST came to."""

    status: int | None
    latency_ms: float
    response: str | None
    error: str | None
    html: bool = False


class _Refused(httpcore.ConnectError):
    """A connection the URL policy refuses (the message says why)."""


def _checked_addresses(host: str, port: int, allow_private: bool, resolve: Resolver) -> list[str]:
    """The addresses ``host`` resolves to, every one allowed by the policy; else :class:`_Refused`."""
    literal = _parse(host)
    if literal is not None:
        found = [str(literal)]
    else:
        try:
            answers = resolve(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise httpcore.ConnectError(f"cannot resolve {host}: {reason}") from None
        found = list(dict.fromkeys(str(answer[4][0]) for answer in answers))
        if not found:
            raise httpcore.ConnectError(f"cannot resolve {host}: no address")
    for address in found:
        why = _address_problem(address, allow_private, host)
        if why:
            where = f"{host} is" if literal is not None else f"{host} resolves to {address},"
            raise _Refused(f"refused: {where} {why}")
    return found


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to addresses the URL policy allows, checked when connecting (see the module doc)."""

    def __init__(self, allow_private: bool, resolve: Resolver) -> None:
        self._allow_private = allow_private
        self._resolve = resolve
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in _checked_addresses(host, port, self._allow_private, self._resolve):
            try:
                return self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # _checked_addresses returns at least one address
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - webhook URLs name TCP hosts only
        raise _Refused("refused: not a TCP address")

    def sleep(self, seconds: float) -> None:  # pragma: no cover - the pool does not retry (retries=0)
        time.sleep(seconds)


@contextlib.contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    """httpcore's exceptions as httpx's, as httpx's own transport raises them."""
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise httpx.TimeoutException(str(exc), request=request) from None
    except httpcore.ConnectError as exc:
        raise httpx.ConnectError(str(exc), request=request) from None
    except httpcore.ProtocolError as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from None
    except (httpcore.NetworkError, httpcore.UnsupportedProtocol) as exc:
        raise httpx.TransportError(str(exc), request=request) from None


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors(self._request):
            yield from self._stream

    def close(self) -> None:
        if hasattr(self._stream, "close"):
            self._stream.close()


class _GuardedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool whose connections go through :class:`_GuardedBackend`."""

    def __init__(self, allow_private: bool, resolve: Resolver, max_connections: int) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=_GuardedBackend(allow_private, resolve),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors(request):
            answer = self._pool.handle_request(core)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Body(answer.stream, request),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        self._pool.close()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


class WebhookDeliverer:
    """Delivers the outbox of ``store`` (see the module doc).

    ``client``: an httpx client to POST with (default: the deliverer's own, which checks every
    address before connecting and never follows redirects); ``clock``: epoch seconds (tests pass a
    fake one to skip backoff); ``owner``: the name its claims carry (default: a new one per
    deliverer; give a stable one to a deliverer that restarts, so that it takes its claims back);
    ``timeout``: seconds per step of an attempt; ``max_age``: seconds a delivery is retried for;
    ``concurrency``: attempts in flight at once; ``claim_ttl``: how long a claim lasts (default:
    long enough for a round's attempts, each timing out); ``on_delivered(outcome, seconds)``:
    called after each attempt with ``delivered``, ``retry`` or ``failed`` and its duration (for
    metrics); ``resolve``: what resolves a host (:func:`socket.getaddrinfo`); ``rng``: the
    backoff's jitter.
    """

    def __init__(
        self,
        store: WebhookStore,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_age: float = MAX_AGE,
        concurrency: int = 8,
        claim_ttl: float | None = None,
        on_delivered: Callable[[str, float], None] | None = None,
        resolve: Resolver = socket.getaddrinfo,
        base_delay: float = 5.0,
        max_delay: float = 3600.0,
        rng: random.Random | None = None,
    ) -> None:
        if timeout <= 0 or max_age <= 0 or concurrency < 1:
            raise ValueError("timeout and max_age must be positive, concurrency at least 1")
        self.store = store
        self.clock = clock
        self.owner = owner or f"deliverer-{uuid.uuid4().hex[:16]}"
        self.timeout = float(timeout)
        self.max_age = float(max_age)
        self.concurrency = int(concurrency)
        self.claim_ttl = claim_ttl
        self.on_delivered = on_delivered
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._given = client
        self._resolve = resolve
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._clients: dict[bool, httpx.Client] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"<WebhookDeliverer {self.owner}>"

    def __enter__(self) -> WebhookDeliverer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the deliverer's own clients and threads (an injected client stays open)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for client in clients:
            client.close()

    # --------------------------------------------------------------- rounds

    def default_limit(self) -> int:
        """How many deliveries a round claims by default."""
        return self.concurrency * 4

    def ttl(self, limit: int) -> float:
        """How long a round's claims last: ``claim_ttl``, else the time its attempts could take
        if each took its full timeout (connecting and reading), with a margin."""
        if self.claim_ttl is not None:
            return float(self.claim_ttl)
        return (2 * self.timeout + 5) * math.ceil(limit / self.concurrency) + 30

    def run_once(self, limit: int | None = None) -> DeliveryReport:
        """One round: claim up to ``limit`` due deliveries, attempt each once, then record every
        attempt in one transaction (a deliverer stopped before that leaves its claims to expire:
        those deliveries are attempted again, with the same ``webhook-id``)."""
        limit = self.default_limit() if limit is None else int(limit)
        claimed = self.store.claim_webhook_deliveries(self.owner, now=self.clock(), ttl=self.ttl(limit), limit=limit)
        if not claimed:
            return DeliveryReport()
        targets = {endpoint_id: self._target(endpoint_id) for endpoint_id in {d.endpoint_id for d in claimed}}
        sending = [d.event_id for d in claimed if not isinstance(targets[d.endpoint_id], str | None)]
        events = {event.id: event for event in self.store.get_events(sending)} if sending else {}
        gone: set[str] = set()  # endpoints that answered 410 during this round

        def attempt(delivery: Delivery) -> _Attempted | None:
            return self._attempt(delivery, targets[delivery.endpoint_id], events.get(delivery.event_id), gone)

        if self.concurrency == 1 or len(claimed) == 1:
            attempted = [attempt(delivery) for delivery in claimed]
        else:
            attempted = list(self._executor().map(attempt, claimed))
        done = [a for a in attempted if a is not None]
        statuses = self.store.record_webhook_attempts([a.result for a in done], owner=self.owner) if done else ()
        report = DeliveryReport(claimed=len(claimed))
        for item, status in zip(done, statuses, strict=True):
            outcome = item.result.outcome
            if outcome == "gone":
                log.warning("webhook endpoint %s disabled: %s", item.endpoint_id, item.result.reason)
            if self.on_delivered is not None:
                self.on_delivered("failed" if outcome == "gone" else outcome, item.seconds)
            if status is None:
                continue  # its endpoint was deleted meanwhile, with the delivery
            report += DeliveryReport(
                delivered=outcome == "delivered",
                retried=outcome == "retry",
                failed=outcome in ("failed", "gone"),
                disabled=outcome == "gone",
            )
        return report

    def run(
        self,
        stop: threading.Event,
        interval: float = 1.0,
        *,
        on_round: Callable[[DeliveryReport], None] | None = None,
    ) -> None:
        """Rounds until ``stop`` is set, waiting ``interval`` seconds whenever nothing was due
        (``on_round`` sees each round's report). A store that fails for a while (down, locked) is
        logged and tried again: what it could not record stays claimed, then due again."""
        while not stop.is_set():
            limit = self.default_limit()
            try:
                report = self.run_once(limit)
            except Exception as exc:  # noqa: BLE001 - the store unavailable for a while: wait, then go on
                reason = exc.message if isinstance(exc, StoreError) else type(exc).__name__
                log.warning("webhook deliveries: %s; trying again in %g s", reason, interval)
                stop.wait(interval)
                continue
            if on_round is not None:
                on_round(report)
            if report.claimed < limit:
                stop.wait(interval)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="connector-webhook")
            return self._pool

    def _client(self, allow_private: bool) -> httpx.Client:
        if self._given is not None:
            return self._given
        with self._lock:
            client = self._clients.get(allow_private)
            if client is None:
                transport = _GuardedTransport(allow_private, self._resolve, max_connections=self.concurrency * 2)
                # No cookie kept: one receiver's answer must not put anything in another's request.
                client = CookielessClient(transport=transport, follow_redirects=False, trust_env=False)
                self._clients[allow_private] = client
            return client

    # ------------------------------------------------------------- one delivery

    def _target(self, endpoint_id: str) -> tuple[WebhookEndpoint, tuple[Secret, ...]] | str | None:
        """An endpoint and its secrets, read once per round: None when it is gone or disabled (its
        claimed deliveries wait, or were failed), the reason when its row was changed outside
        connector-core (nothing is sent where such a row points)."""
        try:
            endpoint = self.store.get_webhook_endpoint(endpoint_id)
            if endpoint.disabled:
                return None
            return endpoint, self.store.webhook_secrets(endpoint_id)
        except UnknownNameError:
            return None  # deleted since the claim, with its deliveries
        except StoreError as exc:
            if exc.code != "tampered":
                raise
            log.warning("webhook endpoint %s: nothing is sent: %s", endpoint_id, exc.message)
            return exc.message

    def _attempt(
        self,
        delivery: Delivery,
        target: tuple[WebhookEndpoint, tuple[Secret, ...]] | str | None,
        event: Event | None,
        gone: set[str],
    ) -> _Attempted | None:
        """Attempt ``delivery`` of ``event`` once: what to record (None when it was not attempted)."""
        if target is None or delivery.endpoint_id in gone:
            return None
        started = self.clock()
        if isinstance(target, str):
            # The delivery waits for the row's restore (each attempt logged).
            answer = _Answer(None, 0.0, None, f"not sent: {target}")
        else:
            if event is None:
                return None  # pragma: no cover - events are never deleted
            endpoint, secrets = target
            answer = self._post(endpoint, event, secrets)
        outcome, error, reason = self._judge(delivery, answer, started)
        if outcome == "gone":
            gone.add(delivery.endpoint_id)
        record = AttemptRecord(utc_time(started), answer.status, round(answer.latency_ms, 3), answer.response, error)
        next_at = started + backoff(delivery.attempts + 1, base=self.base_delay, cap=self.max_delay, rng=self._rng)
        result = AttemptResult(delivery.id, record, outcome, next_at if outcome == "retry" else None, reason)
        return _Attempted(result, delivery.endpoint_id, answer.latency_ms / 1000)

    def _judge(self, delivery: Delivery, answer: _Answer, started: float) -> tuple[Outcome, str | None, str | None]:
        """The outcome of an attempt, its error line, and why an endpoint is disabled."""
        status, error = answer.status, answer.error
        if error is None and status is not None:
            if 200 <= status < 300 and not answer.html:
                return "delivered", None, None
            if status == 410:
                reason = "the receiver answered 410 Gone"
                return "gone", "answered 410 Gone: the endpoint is disabled", reason
            error = self._status_error(status, answer.html)
        if started - delivery.created_epoch >= self.max_age:
            days = self.max_age / 86400
            return "failed", f"{error}; given up after {delivery.attempts + 1} attempts over {days:g} days", None
        return "retry", error, None

    @staticmethod
    def _status_error(status: int, html: bool) -> str:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "(unknown status)"
        if 200 <= status < 300:
            return f"answered {status} {phrase} with an HTML page, not a webhook receiver's answer"
        if 300 <= status < 400:
            return f"answered {status} {phrase}: a redirect, which deliveries do not follow"
        return f"answered {status} {phrase}"

    def _post(self, endpoint: WebhookEndpoint, event: Event, secrets: tuple[Secret, ...]) -> _Answer:
        body = json.dumps(event.payload(), separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
        headers = webhook_headers(secrets, event.id, int(self.clock()), body)
        headers.update({"user-agent": USER_AGENT, "accept-encoding": "identity"})
        client = self._client(endpoint.allow_private)
        began = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        status: int | None = None
        kept = b""
        try:
            with client.stream(
                "POST", endpoint.url, content=body, headers=headers, timeout=self.timeout, follow_redirects=False
            ) as answer:
                status = answer.status_code
                refused = self._peer_refused(answer, endpoint)
                if refused:
                    return _Answer(status, _ms(began), None, refused)
                html = answer.headers.get("content-type", "").split(";", 1)[0].strip().lower() in _HTML
                chunks = []
                # Raw bytes (no decompression of what a receiver sends); a client that read the
                # answer already (a test's mock transport) has it as content.
                for chunk in answer.iter_raw() if not answer.is_stream_consumed else [answer.content]:
                    chunks.append(chunk)
                    kept = b"".join(chunks)
                    if len(kept) >= MAX_ANSWER_BYTES or time.monotonic() > deadline:
                        break  # the rest of the answer is not read: the connection is dropped
        except httpx.TimeoutException:
            return _Answer(status, _ms(began), answer_text(kept) if kept else None, self._timed_out(status))
        except (httpx.HTTPError, httpx.StreamError) as exc:
            detail = _one_line(exc)
            error = detail if detail.startswith("refused:") else f"cannot deliver: {detail}"
            return _Answer(status, _ms(began), answer_text(kept) if kept else None, error)
        return _Answer(status, _ms(began), answer_text(kept), None, html)

    def _timed_out(self, status: int | None) -> str:
        if status is None:
            return f"no answer within {self.timeout:g} s"
        return f"answered {status}, but its body did not arrive within {self.timeout:g} s"

    @staticmethod
    def _peer_refused(answer: httpx.Response, endpoint: WebhookEndpoint) -> str | None:
        """Why the address the answer came from is not allowed, or None (also when unknown)."""
        stream = answer.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if not isinstance(peer, tuple) or not peer:
            return None
        host = urlsplit(endpoint.url).hostname or ""
        why = _address_problem(str(peer[0]), endpoint.allow_private, host)
        return f"refused: connected to {peer[0]}, {why}" if why else None


def _ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000


@contextlib.contextmanager
def delivering(store: WebhookStore, *, interval: float = 1.0, **options: Any) -> Iterator[WebhookDeliverer]:
    """A :class:`WebhookDeliverer` (``options`` are its own) running in a background thread
    while the ``with`` block lasts; it stops after its round when the block ends."""
    deliverer = WebhookDeliverer(store, **options)
    stop = threading.Event()
    thread = threading.Thread(target=deliverer.run, args=(stop, interval), name="connector-webhooks", daemon=True)
    thread.start()
    try:
        yield deliverer
    finally:
        stop.set()
        thread.join(timeout=2 * deliverer.timeout + 5)
        deliverer.close()
