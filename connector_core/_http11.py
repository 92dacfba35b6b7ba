"""A lean HTTP/1.1 keep-alive client on asyncio protocols and h11, for the token calls of a bulk refresh.

A bulk refresh is many small token requests to one token endpoint. Through httpx each costs about
a millisecond of CPU (its client and models, httpcore's pool, anyio's streams), several times the
whole rest of a refresh; the same request written and parsed by h11 (the HTTP/1.1 state machine
httpcore itself uses) over an asyncio protocol costs about an eighth of that. :class:`Http11Pool`
sends a flow's :class:`~connector_core.oauth.HttpRequest` and answers an
:class:`~connector_core._transport.HttpResponse` exactly as :func:`~connector_core._transport.send_async`
does through the connector's default client: the same timeouts (connect, read, pool) and deadline,
the same body cap, redirects never followed, no proxies or ``.netrc`` (the default client trusts no
environment either), TLS verified against the same CA bundle, and transport failures as the same
:class:`~connector_core.oauth.TransientError` texts. The request's body is written in one buffered
write (token requests are small), so no write timeout applies short of the deadline.

A request it does not take (a host name that is not ASCII, which needs IDNA) goes to the fallback
httpx client instead.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import h11

from ._transport import (
    DEFAULT_DEADLINE,
    MAX_BODY_BYTES,
    HttpResponse,
    _overdue,
    _unsendable,
    check_endpoint,
    send_async,
    transport_failure,
)
from .oauth import HttpRequest

if TYPE_CHECKING:
    import httpx

__all__ = ["Http11Pool"]

#: A keep-alive connection idle longer than this is closed rather than reused (httpx's default).
KEEPALIVE_EXPIRY = 5.0
_PORTS = {"http": 80, "https": 443}
#: How far an encoded body's raw bytes may pass the cap (a compressed body is at most about its size).
_CODING_SLACK = 1024
#: At most this many URLs and request heads are kept (then forgotten all at once).
_CACHED = 256
#: Content codings the body is decoded from (we ask for none; a server may send them anyway).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _header_text(value: bytes) -> str:
    """A header's bytes as httpx decodes them: ASCII, else UTF-8, else Latin-1."""
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("iso-8859-1")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str) -> None:
        self._loop = loop
        self._host = host
        self._h11 = h11.Connection(h11.CLIENT)
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = 0.0
        self._give_up = 0.0
        self._last = 0.0
        self._cap = 0
        self._size = 0
        self._status = 0
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []

    # -- asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection cannot be trusted again
            self.close()
            return
        self._last = self._loop.time()
        try:
            self._h11.receive_data(data)
            self._pump()
        except h11.RemoteProtocolError:
            self._fail("RemoteProtocolError")

    def eof_received(self) -> bool:
        if self._waiter is not None:
            try:
                self._h11.receive_data(b"")
                self._pump()
            except h11.RemoteProtocolError:
                self._fail("RemoteProtocolError")
        self.closed = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail("ReadError" if exc is not None else "RemoteProtocolError")

    # -- ours

    @property
    def reusable(self) -> bool:
        transport = self._transport
        return (
            not self.closed
            and transport is not None
            and not transport.is_closing()
            and self._h11.our_state is h11.DONE
            and self._h11.their_state is h11.DONE
        )

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def exchange(
        self, request: h11.Request, body: bytes, cap: int, read_timeout: float, give_up: float
    ) -> asyncio.Future[HttpResponse]:
        """Write a request; the future answers its response (or its failure). A request h11 refuses
        to write raises its ``LocalProtocolError`` (the connection is then of no further use)."""
        assert self._transport is not None
        machine = self._h11
        if machine.our_state is h11.DONE:
            machine.start_next_cycle()
        data = machine.send(request) or b""
        if body:
            data += machine.send(h11.Data(data=body)) or b""
        data += machine.send(h11.EndOfMessage()) or b""
        self._waiter = waiter = self._loop.create_future()
        self._cap, self._size, self._status, self._headers, self._chunks = cap, 0, 0, {}, []
        self._read_timeout, self._give_up = read_timeout, give_up
        self._last = self._loop.time()
        self._timer = self._loop.call_at(min(self._last + read_timeout, give_up), self._check_time)
        self._transport.write(data)
        return waiter

    def _check_time(self) -> None:
        now = self._loop.time()
        if self._waiter is None:
            return
        if now >= self._give_up:
            self._finish(None, overdue=True)
        elif now - self._last >= self._read_timeout:
            self._fail("ReadTimeout")
        else:
            self._timer = self._loop.call_at(min(self._last + self._read_timeout, self._give_up), self._check_time)

    def _pump(self) -> None:
        while self._waiter is not None:
            event = self._h11.next_event()
            kind = type(event)
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if kind is h11.Response:
                assert isinstance(event, h11.Response)
                headers: dict[str, str] = {}
                for name, value in event.headers:
                    key, text = _header_text(name), _header_text(value)
                    headers[key] = f"{headers[key]}, {text}" if key in headers else text
                self._status, self._headers = event.status_code, headers
            elif kind is h11.Data:
                assert isinstance(event, h11.Data)
                self._size += len(event.data)
                # An encoded body is capped once decoded; its raw bytes are held to about the cap too.
                if self._size > self._cap + (_CODING_SLACK if "content-encoding" in self._headers else 0):
                    self._finish(self._response(truncated=True))
                    self.close()  # the rest of the body is still coming: never reuse it
                    return
                self._chunks.append(bytes(event.data))
            elif kind is h11.EndOfMessage:
                self._finish(self._response(truncated=False))
                return
            elif kind is h11.ConnectionClosed:
                self._fail("RemoteProtocolError")
                return

    def _response(self, *, truncated: bool) -> HttpResponse:
        body = b"".join(self._chunks)
        coding = self._headers.get("content-encoding", "").strip().lower()
        if coding and coding != "identity":
            body, cut = self._decoded(body, coding)
            truncated = truncated or cut
        return HttpResponse(self._status, self._headers, body, truncated=truncated)

    def _decoded(self, body: bytes, coding: str) -> tuple[bytes, bool]:
        wbits = _WBITS.get(coding)
        if wbits is None:  # a coding we cannot read: the body as sent, which the flow refuses
            return body, False
        try:
            inflater = zlib.decompressobj(wbits)
            decoded = inflater.decompress(body, self._cap + 1)
        except zlib.error:
            if coding != "deflate":
                return body, False
            try:  # "deflate" sent raw, without its zlib header, as some servers do
                decoded = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body, self._cap + 1)
            except zlib.error:
                return body, False
        if len(decoded) > self._cap:
            return decoded[: self._cap], True
        return decoded, False

    def _fail(self, kind: str) -> None:
        self._finish(transport_failure(self._host, kind, reached=True))
        self.close()

    def _finish(self, response: HttpResponse | None, *, overdue: bool = False) -> None:
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if waiter is None or waiter.done():
            return
        if overdue:
            self.close()
            waiter.set_exception(TimeoutError())
        else:
            assert response is not None
            waiter.set_result(response)


class _Origin:
    """The connections to one scheme://host:port."""

    def __init__(self) -> None:
        self.idle: list[_Connection] = []
        #: Connections open or being opened, idle or busy.
        self.count = 0
        #: Requests waiting for a connection: each is handed one, or None (open your own).
        self.waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()


class Http11Pool:
    """HTTP/1.1 keep-alive connections, at most ``max_connections`` to each origin, for sending
    flow requests (see the module doc). ``fallback`` gives the httpx client for the requests it
    does not take. Use one per event loop; :meth:`aclose` closes its connections."""

    def __init__(
        self,
        *,
        max_connections: int,
        fallback: Callable[[], httpx.AsyncClient],
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        pool_timeout: float = 5.0,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
    ) -> None:
        self.max_connections = max_connections
        self._fallback = fallback
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pool_timeout = pool_timeout
        self._keepalive_expiry = keepalive_expiry
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._ssl: ssl.SSLContext | None = None
        self._user_agent: bytes | None = None
        #: Each URL taken apart (after its check); each request line and headers, as h11 checked them.
        self._targets: dict[str, tuple[str, str, int, str, str, str]] = {}
        self._heads: dict[tuple[str, str, tuple[tuple[str, str], ...], int], h11.Request] = {}

    def __repr__(self) -> str:
        return f"<Http11Pool origins={len(self._origins)}>"

    @staticmethod
    def accepts(request: HttpRequest) -> bool:
        """Whether this pool sends ``request`` itself (an http(s) URL with an ASCII host)."""
        url = request.url
        return url.isascii() and (url.startswith("https://") or url.startswith("http://"))

    async def send_request(
        self, request: HttpRequest, cap: int | None = None, deadline: float = DEFAULT_DEADLINE
    ) -> HttpResponse:
        """Send ``request``; its response, at most ``cap`` bytes of body, within ``deadline`` seconds in all."""
        if not self.accepts(request):
            return await send_async(self._fallback(), request, cap, deadline)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline
        target = self._targets.get(request.url)
        if target is None:
            target = self._target(request)
        scheme, host, port, shown, netloc, path = target
        head = self._heads.get((request.method, request.url, request.headers, len(request.body)))
        if head is None:
            head = self._request(request, netloc, path)
        origin = self._origins.setdefault((scheme, host, port), _Origin())
        taken = await self._acquire(origin, scheme, host, port, shown, loop, give_up, deadline, request)
        if isinstance(taken, HttpResponse):
            return taken
        conn = taken
        try:
            try:
                answer = conn.exchange(
                    head, request.body, cap or request.max_bytes or MAX_BODY_BYTES, self._read_timeout, give_up
                )
            except h11.LocalProtocolError as exc:
                conn.close()
                raise _unsendable(exc, request) from None
            return await answer
        except TimeoutError:
            conn.close()
            return _overdue(request, deadline)
        except BaseException:
            conn.close()
            raise
        finally:
            self._release(origin, conn, loop)

    def _target(self, request: HttpRequest) -> tuple[str, str, int, str, str, str]:
        """Where ``request`` goes, its URL checked (:func:`check_endpoint`) and taken apart once
        (a bulk refresh sends every request to one URL); the answer depends on the URL alone."""
        check_endpoint(request.url)
        parts = urlsplit(request.url)
        scheme, host = parts.scheme, parts.hostname or ""
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = (scheme, host, parts.port or _PORTS[scheme], request.url.split("/")[2], parts.netloc, path)
        if len(self._targets) >= _CACHED:
            self._targets.clear()
        self._targets[request.url] = target
        return target

    def _request(self, request: HttpRequest, netloc: str, target: str) -> h11.Request:
        """The request line and headers: the request's own, then Host, and what httpx would add
        (Accept, User-Agent; Accept-Encoding asks for no coding). Kept for the next request
        with the same headers and body length (h11's checks of them are most of its cost)."""
        if self._user_agent is None:
            import httpx

            self._user_agent = f"python-httpx/{httpx.__version__}".encode()  # as the httpx path sends
        try:
            names = {name.lower() for name, _ in request.headers}
            headers = [(b"Host", netloc.encode("ascii"))]
            headers += [(name.encode("ascii"), value.encode("ascii")) for name, value in request.headers]
            if "accept" not in names:
                headers.append((b"Accept", b"*/*"))
            headers.append((b"Accept-Encoding", b"identity"))
            if "user-agent" not in names:
                headers.append((b"User-Agent", self._user_agent))
            if request.body or request.method in ("POST", "PUT", "PATCH"):
                headers.append((b"Content-Length", str(len(request.body)).encode()))
            head = h11.Request(method=request.method.encode("ascii"), target=target.encode("ascii"), headers=headers)
        except (UnicodeError, h11.LocalProtocolError) as exc:
            raise _unsendable(exc, request) from None
        if len(self._heads) >= _CACHED:
            self._heads.clear()
        self._heads[(request.method, request.url, request.headers, len(request.body))] = head
        return head

    async def _acquire(
        self,
        origin: _Origin,
        scheme: str,
        host: str,
        port: int,
        shown: str,
        loop: asyncio.AbstractEventLoop,
        give_up: float,
        deadline: float,
        request: HttpRequest,
    ) -> _Connection | HttpResponse:
        """A connection to the origin (reused, or opened in a free slot), or the failure to get one."""
        now = loop.time()
        while origin.idle:
            conn = origin.idle.pop()
            if conn.reusable and now - conn.idle_since < self._keepalive_expiry:
                return conn
            conn.close()
            origin.count -= 1
        if origin.count >= self.max_connections:
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            origin.waiters.append(waiter)
            wait = min(self._pool_timeout, give_up - now)
            try:
                async with asyncio.timeout(wait):
                    handed = await waiter
            except TimeoutError:
                if waiter.done() and not waiter.cancelled():  # handed over just as the wait ran out
                    self._hand_back(origin, waiter.result(), loop)
                if wait < self._pool_timeout:
                    return _overdue(request, deadline)
                return transport_failure(shown, "PoolTimeout", reached=False)
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._hand_back(origin, waiter.result(), loop)
                raise
            if handed is not None:
                return handed
        else:
            origin.count += 1
        # A slot is ours (counted): open a connection in it.
        context = self._ssl_context() if scheme == "https" else None
        wait = min(self._connect_timeout, give_up - loop.time())
        try:
            async with asyncio.timeout(wait):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, shown), host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError:
            self._free_slot(origin, loop)
            if wait < self._connect_timeout:
                return _overdue(request, deadline)
            return transport_failure(shown, "ConnectTimeout", reached=False)
        except OSError:  # refused, unreachable, a TLS handshake or certificate failure
            self._free_slot(origin, loop)
            return transport_failure(shown, "ConnectError", reached=False)
        except BaseException:
            self._free_slot(origin, loop)
            raise
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            import httpx

            self._ssl = httpx.create_ssl_context(verify=True, trust_env=False)
        return self._ssl

    def _release(self, origin: _Origin, conn: _Connection, loop: asyncio.AbstractEventLoop) -> None:
        if conn.reusable:
            conn.idle_since = loop.time()
            self._hand_back(origin, conn, loop)
        else:
            conn.close()
            self._free_slot(origin, loop)

    def _hand_back(self, origin: _Origin, conn: _Connection | None, loop: asyncio.AbstractEventLoop) -> None:
        """Give a connection (or, for None, its slot) to the first request still waiting, else keep it idle."""
        while origin.waiters:
            waiter = origin.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is None:
            origin.count -= 1
        else:
            origin.idle.append(conn)

    def _free_slot(self, origin: _Origin, loop: asyncio.AbstractEventLoop) -> None:
        self._hand_back(origin, None, loop)

    async def aclose(self) -> None:
        """Close every idle connection (busy ones close as their exchanges end)."""
        for origin in self._origins.values():
            for conn in origin.idle:
                conn.close()
            origin.count -= len(origin.idle)
            origin.idle.clear()
        await asyncio.sleep(0)  # let the transports' close callbacks run
