"""The service's HTTP client to providers (the proxy's calls, refreshes): an httpx
``AsyncClient`` over a connection pool whose cost per request does not grow with the number of
connections it holds.

httpcore's own pool (what ``httpx.AsyncClient`` uses) re-examines every connection it holds, and
for each idle one counts them all again, every time a request starts or a response closes: with
50 requests in flight to one provider that is thousands of checks per request, most of the
service's time under load. :class:`PoolTransport` keeps, per origin, a stack of idle keep-alive
connections instead: a request takes the most recent one that is still usable (one check: the
peer has not closed it, its keep-alive has not run out) or opens a new one, within
``max_connections`` in all; a response, once closed, gives its connection back. The connections
themselves are httpcore's (HTTP/1.1, TLS, timeouts per step), and errors are httpx's.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import anyio
import httpcore
import httpx

from .._nocookies import CookielessAsyncClient
from .._transport import default_timeout

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["DEFAULT_MAX_CONNECTIONS", "PoolTransport", "upstream_client"]

#: Connections open at once, to every origin together (httpx's client default is 100).
DEFAULT_MAX_CONNECTIONS = 64
#: Idle connections kept, in all.
DEFAULT_MAX_KEEPALIVE = DEFAULT_MAX_CONNECTIONS
#: Seconds an idle connection is kept (httpx's default).
DEFAULT_KEEPALIVE_EXPIRY = 5.0

#: httpcore's exceptions and the httpx ones they become, most specific first.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    """httpcore's exceptions raised as httpx's, as httpx's own transport raises them."""
    try:
        yield
    except Exception as exc:
        for theirs, ours in _ERRORS:
            if isinstance(exc, theirs):
                raise ours(str(exc), request=request) from exc
        raise


class _Stream(httpx.AsyncByteStream):
    """A response's body; closing it gives the connection back to the pool (once)."""

    def __init__(
        self, pool: PoolTransport, key: tuple[bytes, bytes, int], connection: Any, stream: Any, request: httpx.Request
    ) -> None:
        self._pool = pool
        self._key = key
        self._connection = connection
        self._stream = stream
        self._request = request
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            with _httpx_errors(self._request):
                await self._stream.aclose()
        finally:
            await self._pool._give_back(self._key, self._connection)


class PoolTransport(httpx.AsyncBaseTransport):
    """An httpx async transport over a pool of keep-alive HTTP/1.1 connections (see the module
    doc): at most ``max_connections`` open at once (a request waits for one within the pool
    timeout, then fails with ``httpx.PoolTimeout``), at most ``max_keepalive`` idle ones kept,
    each for ``keepalive_expiry`` seconds. ``ssl_context``: the TLS settings (default: httpx's,
    which verify certificates against certifi's roots)."""

    def __init__(
        self,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_keepalive: int = DEFAULT_MAX_KEEPALIVE,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1 or max_keepalive < 0 or keepalive_expiry < 0:
            raise ValueError("max_connections must be at least 1, max_keepalive and keepalive_expiry at least 0")
        self._ssl = ssl_context
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._slots = anyio.Semaphore(max_connections)
        self._idle: dict[tuple[bytes, bytes, int], list[Any]] = {}
        self._idle_count = 0
        #: Connections opened so far (what a test of reuse counts).
        self.opened = 0

    def __repr__(self) -> str:
        return f"<PoolTransport {self._idle_count} idle>"

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()  # on the first https request only: loading the roots takes a while
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.raw_scheme, url.raw_host, url.port or (443 if url.raw_scheme == b"https" else 80))
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        waited = request.extensions.get("timeout", {}).get("pool")
        try:
            with anyio.fail_after(waited) if waited is not None else contextlib.nullcontext():
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection became free within the pool timeout", request=request) from None
        connection: Any = None
        try:
            with _httpx_errors(request):
                while True:
                    connection, reused, stale = self._take(key)
                    for old in stale:
                        await old.aclose()
                    try:
                        answer = await connection.handle_async_request(core)
                        break
                    except httpcore.ConnectionNotAvailable:
                        # An idle connection that could not take the request after all: drop it, try another.
                        await connection.aclose()
                        if not reused:
                            raise
        except BaseException:
            if connection is not None:
                with anyio.CancelScope(shield=True):
                    await connection.aclose()
            self._slots.release()
            raise
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Stream(self, key, connection, answer.stream, request),
            extensions=answer.extensions,
        )

    def _take(self, key: tuple[bytes, bytes, int]) -> tuple[Any, bool, list[Any]]:
        """The most recent idle connection to ``key`` still usable, else a new one; with whether
        it was reused, and the idle ones found unusable on the way (to close)."""
        idle = self._idle.get(key)
        stale: list[Any] = []
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.is_idle() and not connection.has_expired():
                return connection, True, stale
            stale.append(connection)
        scheme, host, port = key
        self.opened += 1
        connection = httpcore.AsyncHTTPConnection(
            origin=httpcore.Origin(scheme, host, port),
            ssl_context=self._ssl_context() if scheme == b"https" else None,
            keepalive_expiry=self._expiry,
        )
        return connection, False, stale

    async def _give_back(self, key: tuple[bytes, bytes, int], connection: Any) -> None:
        """A response is closed: keep its connection for the next request, or close it."""
        try:
            if connection.is_idle() and self._idle_count < self._max_keepalive:
                self._idle.setdefault(key, []).append(connection)
                self._idle_count += 1
                return
            with anyio.CancelScope(shield=True):
                await connection.aclose()
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        idle, self._idle, self._idle_count = self._idle, {}, 0
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()

    async def __aenter__(self) -> PoolTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()


def upstream_client(
    *, timeout: httpx.Timeout | None = None, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` as the connector's own (explicit timeouts, no redirects followed,
    nothing taken from the environment) over a :class:`PoolTransport`, keeping no cookie (the
    client is shared by every connection: no provider's cookie set for one rides along with
    another's requests): what ``connector serve`` gives its :class:`~connector_core.Connector`
    as ``async_client``."""
    return CookielessAsyncClient(
        transport=PoolTransport(max_connections=max_connections),
        timeout=timeout or default_timeout(),
        follow_redirects=False,
        trust_env=False,
    )
