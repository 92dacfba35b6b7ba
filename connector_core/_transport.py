"""Thin httpx transports for the sans-I/O flows.

A flow is a generator that yields what it needs done, an :class:`~connector_core.oauth.HttpRequest`
or a :class:`Sleep`, and receives an :class:`HttpResponse` (or ``None`` after a
sleep). :func:`run_sync` and :func:`run_async` drive the same flow with a sync or
an async httpx client, so both APIs share one implementation. Redirects are never
followed; bodies are read with a size cap; transport failures come back as a
response carrying a :class:`~connector_core.oauth.TransientError`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

import attrs

from .errors import ValidationError
from .models import url_problem
from .oauth import HttpRequest, TransientError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Flow",
    "HttpResponse",
    "Sleep",
    "check_endpoint",
    "default_timeout",
    "drive_sync",
    "run_async",
    "run_sync",
    "sync_client",
    "transport_failure",
]

_T = TypeVar("_T")

#: API responses larger than this are refused; token responses have their own, smaller cap.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: How long one response may take in full, headers and body (a peer dripping its body one
#: byte at a time never trips a read timeout).
DEFAULT_DEADLINE = 60.0
#: The ``error`` of the failure a response over its deadline comes back as.
DEADLINE_EXCEEDED = "deadline_exceeded"


@attrs.frozen
class Sleep:
    seconds: float


@attrs.frozen
class HttpResponse:
    status: int
    #: Lower-case header names.
    headers: dict[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    #: Set instead of a status when the request failed in transport.
    failure: TransientError | None = None
    #: The body was cut at the size cap.
    truncated: bool = False


Flow = Generator[HttpRequest | Sleep, HttpResponse | None, _T]


def default_timeout() -> httpx.Timeout:
    import httpx

    return httpx.Timeout(connect=5.0, read=20.0, write=20.0, pool=5.0)


def sync_client() -> httpx.Client:
    """The sync client a :class:`~connector_core.Connector` makes when given none: explicit
    timeouts, no redirect followed, no proxy or certificate settings from the environment, no
    cookie kept (the client is shared by every connection, so one tenant's cookie would ride
    along on another's requests), and
    no TLS context until the first https request (a verifying one, as httpx makes by default):
    building one loads the CA bundle, which a command talking to an http:// emulator never needs."""
    from ._lazytls import LazyTLSTransport  # here, not at the top: it imports httpx (cold start)
    from ._nocookies import CookielessClient

    return CookielessClient(
        timeout=default_timeout(), follow_redirects=False, trust_env=False, transport=LazyTLSTransport()
    )


def transport_failure(host: str, kind: str, *, reached: bool) -> HttpResponse:
    """The response a transport failure comes back as, worded alike whichever sender met it
    (httpx, ``_http11``, ``_plainhttp``): ``kind`` is the failure as httpx's exception classes name
    it (``ConnectTimeout``, ``ReadTimeout``, ``ConnectError``, ``ReadError``...); ``reached``:
    whether the request may have reached the server."""
    if kind.endswith("Timeout") or kind == "TimeoutException":
        text = f"timed out talking to {host} ({kind})"
    elif kind == "ConnectError":
        text = f"cannot connect to {host}"
    else:
        text = f"the connection to {host} failed ({kind})"
    return HttpResponse(0, {}, b"", TransientError(text, reached_server=reached, status=None))


def _failure(exc: Exception, request: HttpRequest) -> HttpResponse:
    import httpx

    host = request.url.split("/")[2] if "//" in request.url else request.url
    reached = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    return transport_failure(host, type(exc).__name__, reached=reached)


#: ``scheme://authority`` and what follows (a URL's netloc ends at the first '/', '?' or '#').
_ORIGIN = re.compile(r"([^/?#]*(?://[^/?#]*)?)([/?#]?)(.*)", re.DOTALL)
#: What after a URL's authority makes :func:`~connector_core.models.url_problem` refuse it: white
#: space, a backslash, a #fragment.
_ODD_REST = re.compile(r"[\s\\#]")
#: The ``scheme://authority`` prefixes of URLs that passed :func:`check_endpoint`: a URL with one of
#: them, and nothing odd after it, passes too (every request checks its URL; most share a few).
_PASSED: set[str] = set()
_MAX_PASSED = 1024


def check_endpoint(url: str) -> None:
    """Refuse, before anything is sent, a URL that is not https (or http to a loopback
    address), carries user:password@ or a backslash. Every endpoint is checked here again
    at send time, whatever checked it before: a URL read back from a store was validated
    by whatever wrote it, which may be an older version or another program."""
    origin, sep, rest = _ORIGIN.match(url).groups()  # type: ignore[union-attr] # the pattern matches any text
    if origin in _PASSED and not _ODD_REST.search(sep + rest):
        return  # what url_problem() would say: its origin passed, and nothing after it can fail
    problem = url_problem(url)
    if not problem and len(_PASSED) < _MAX_PASSED:
        _PASSED.add(origin)
    if problem:
        try:
            parts = urlsplit(url)
            where = f"{parts.scheme}://{parts.hostname or ''}"
        except ValueError:
            where = "a malformed URL"
        raise ValidationError("url", f"a request to {where} was refused before sending: {problem}")


def _overdue(request: HttpRequest, deadline: float) -> HttpResponse:
    host = request.url.split("/")[2] if "//" in request.url else request.url
    text = f"{host} did not answer in full within {deadline:g} s; gave up"
    return HttpResponse(0, {}, b"", TransientError(text, error=DEADLINE_EXCEEDED, status=None))


def _build(client: Any, request: HttpRequest) -> Any:
    check_endpoint(request.url)
    return client.build_request(request.method, request.url, headers=list(request.headers), content=request.body)


def _unsendable(exc: Exception, request: HttpRequest) -> ValidationError:
    """A request that cannot even be put on the wire: a URL whose host name IDNA cannot encode
    (``a..b``, a label over 63 characters...) though it looked valid, or a header value that is
    not ASCII. A one-line error, not worth a retry (the message names a character, never a value,
    and the URL without its query, which may carry an API key)."""
    shown = request.url.split("?", 1)[0].split("#", 1)[0]
    return ValidationError("request", f"{request.method} {shown} cannot be sent ({type(exc).__name__}: {exc})")


def send_sync(
    client: httpx.Client, request: HttpRequest, cap: int | None = None, deadline: float = DEFAULT_DEADLINE
) -> HttpResponse:
    """Send ``request`` and read its response, at most ``cap`` bytes of body, giving up after
    ``deadline`` seconds in all. A socket read cannot be cancelled from outside, so before the
    request and after every chunk each timeout is cut to the time left: no read waits past the
    deadline (the async transport cancels at the deadline itself)."""
    import httpx

    cap = cap or request.max_bytes or MAX_BODY_BYTES
    give_up = time.monotonic() + deadline
    timeouts: dict[str, float | None] = {}

    def bound() -> None:
        left = max(give_up - time.monotonic(), 0.001)
        for kind in ("connect", "read", "write", "pool"):
            current = timeouts.get(kind)
            if current is None or current > left:
                timeouts[kind] = left

    try:
        built = _build(client, request)
        # httpcore reads this dict at every socket operation, so cutting it in place bounds the next one.
        timeouts = built.extensions.setdefault("timeout", {})
        bound()
        response = client.send(built, stream=True, follow_redirects=False)
        try:
            chunks: list[bytes] = []
            size = 0
            truncated = False
            for chunk in response.iter_bytes():
                if time.monotonic() > give_up:
                    return _overdue(request, deadline)
                size += len(chunk)
                if size > cap:
                    truncated = True
                    break
                chunks.append(chunk)
                bound()
        finally:
            response.close()
    except httpx.HTTPError as exc:
        if isinstance(exc, httpx.TimeoutException) and time.monotonic() >= give_up - 0.01:
            return _overdue(request, deadline)  # the cut timeout fired: it is the deadline that ran out
        return _failure(exc, request)
    except (httpx.InvalidURL, UnicodeError) as exc:  # idna's IDNAError is a UnicodeError
        raise _unsendable(exc, request) from None
    headers = {k.lower(): v for k, v in response.headers.items()}
    return HttpResponse(response.status_code, headers, b"".join(chunks), truncated=truncated)


async def send_async(
    client: httpx.AsyncClient, request: HttpRequest, cap: int | None = None, deadline: float = DEFAULT_DEADLINE
) -> HttpResponse:
    """:func:`send_sync` for an async client, cancelled at the deadline."""
    import asyncio  # here, not at the top: sync commands never need it (cold start)

    try:
        return await asyncio.wait_for(_send_async(client, request, cap), deadline)
    except TimeoutError:
        return _overdue(request, deadline)


async def _send_async(client: httpx.AsyncClient, request: HttpRequest, cap: int | None) -> HttpResponse:
    import httpx

    cap = cap or request.max_bytes or MAX_BODY_BYTES
    try:
        response = await client.send(_build(client, request), stream=True, follow_redirects=False)
        try:
            chunks: list[bytes] = []
            size = 0
            truncated = False
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    truncated = True
                    break
                chunks.append(chunk)
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        return _failure(exc, request)
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise _unsendable(exc, request) from None
    headers = {k.lower(): v for k, v in response.headers.items()}
    return HttpResponse(response.status_code, headers, b"".join(chunks), truncated=truncated)


def run_sync(flow: Flow[_T], client: httpx.Client, deadline: float = DEFAULT_DEADLINE) -> _T:
    """Drive ``flow`` with a sync client; each response has ``deadline`` seconds in all."""
    return drive_sync(flow, lambda request: send_sync(client, request, deadline=deadline))


def drive_sync(flow: Flow[_T], send: Callable[[HttpRequest], HttpResponse]) -> _T:
    """Drive ``flow`` in this thread: sleep where it asks, answer each request with ``send``."""
    reply: HttpResponse | None = None
    try:
        while True:
            step = flow.send(reply)
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                reply = None
            else:
                reply = send(step)
    except StopIteration as done:
        result: _T = done.value
        return result


class RequestSender(Protocol):
    """A client that takes a flow's requests as they are (an :class:`~connector_core._http11.Http11Pool`)."""

    async def send_request(self, request: HttpRequest, cap: int | None, deadline: float) -> HttpResponse: ...


async def run_async(
    flow: Flow[_T], client: httpx.AsyncClient | RequestSender, deadline: float = DEFAULT_DEADLINE
) -> _T:
    """Drive ``flow`` with an async client; each response has ``deadline`` seconds in all. To run
    the flow's own steps (its store calls) off the event loop, drive it with a
    :class:`~connector_core._steps.StepRunner` instead."""
    reply: HttpResponse | None = None
    try:
        while True:
            step = flow.send(reply)
            reply = await perform(step, client, deadline)
    except StopIteration as done:
        result: _T = done.value
        return result


async def perform(
    step: HttpRequest | Sleep, client: httpx.AsyncClient | RequestSender, deadline: float
) -> HttpResponse | None:
    """Do what a flow asked: sleep, or send a request (through a :class:`RequestSender` or an
    httpx client)."""
    if isinstance(step, Sleep):
        import asyncio  # here, not at the top: sync commands never need it (cold start)

        await asyncio.sleep(step.seconds)
        return None
    send = getattr(client, "send_request", None)
    if send is not None:
        response: HttpResponse = await send(step, None, deadline)
        return response
    return await send_async(client, step, deadline=deadline)  # type: ignore[arg-type] # an httpx client
