"""A flow driver over the standard library's ``http.client``, for one-shot commands.

``connector request`` makes one API call (two or three with a refresh) and exits: importing
httpx (with httpcore, h11, anyio and, where they are installed, its command line's click and
rich) costs it more than everything else it does. :func:`run_plain` drives the same sans-I/O
flows as :func:`~connector_core._transport.run_sync`, sending each request with ``http.client``
under the same rules: every URL checked at send time, no redirect followed, no proxy from the
environment, the body read with a size cap, one deadline for each whole response (every socket
wait cut to the time left), transport failures answered as a
:class:`~connector_core.oauth.TransientError`. https is verified against the same CA bundle as
httpx's (certifi), and its TLS context is built only for an https request.

Anything out of the ordinary (a host name that is not ASCII, a header that is not printable
ASCII) is sent by httpx instead, so that such requests behave exactly as they do everywhere else.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ._markers import __version__
from ._transport import (
    DEFAULT_DEADLINE,
    MAX_BODY_BYTES,
    Flow,
    HttpResponse,
    _overdue,
    _unsendable,
    check_endpoint,
    drive_sync,
    send_sync,
    sync_client,
    transport_failure,
)
from .oauth import HttpRequest

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["PlainSender", "run_plain"]

_T = TypeVar("_T")

#: The timeouts httpx is given (:func:`~connector_core._transport.default_timeout`).
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0
CHUNK = 64 * 1024
USER_AGENT = f"connector-core/{__version__}"
_BODY_METHODS = ("POST", "PUT", "PATCH")


def _printable_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()


class PlainSender:
    """Sends :class:`~connector_core.oauth.HttpRequest` s with ``http.client``, one connection
    per request (closed after its response). Close it when done (an httpx client may have been
    made for an unusual request)."""

    def __init__(self) -> None:
        self._tls: ssl.SSLContext | None = None
        self._fallback: httpx.Client | None = None
        #: How many TLS contexts this sender built (none while every request is http://).
        self.tls_contexts = 0

    def close(self) -> None:
        if self._fallback is not None:
            self._fallback.close()
            self._fallback = None

    def _context(self) -> ssl.SSLContext:
        """The verifying TLS context httpx builds by default (certifi's CA bundle), once."""
        if self._tls is None:
            import ssl  # here: only an https request needs it built

            try:
                import certifi  # httpx's own CA bundle: the same trust as every other call
            except ImportError:  # pragma: no cover - httpx depends on it
                self._tls = ssl.create_default_context()
            else:
                self._tls = ssl.create_default_context(cafile=certifi.where())
            self.tls_contexts += 1
        return self._tls

    def send(self, request: HttpRequest, deadline: float = DEFAULT_DEADLINE) -> HttpResponse:
        """Send ``request`` and read its response (at most its cap of body), within ``deadline``."""
        check_endpoint(request.url)
        parts = urlsplit(request.url)
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:  # httpx says how it is malformed
            host = "\N{REPLACEMENT CHARACTER}"  # not ASCII: sent (refused) by httpx below
            port = None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not (
            host.isascii()
            and _printable_ascii(target)
            and all(_printable_ascii(n) and _printable_ascii(v) for n, v in request.headers)
        ):  # httpx encodes these (IDNA, percent-encoding) or refuses them: let it
            if self._fallback is None:
                self._fallback = sync_client()
            return send_sync(self._fallback, request, deadline=deadline)
        return self._send(request, parts.scheme, host, port, target, deadline)

    def _send(
        self, request: HttpRequest, scheme: str, host: str, port: int | None, target: str, deadline: float
    ) -> HttpResponse:
        import http.client  # here, not at the top: only a command that sends imports it (cold start)

        cap = request.max_bytes or MAX_BODY_BYTES
        give_up = time.monotonic() + deadline
        where = request.url.split("/")[2]  # as the httpx transport names it (host and port as written)

        def left(limit: float) -> float:
            return min(limit, max(give_up - time.monotonic(), 0.001))

        conn: Any
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=left(CONNECT_TIMEOUT), context=self._context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=left(CONNECT_TIMEOUT))
        try:
            try:
                conn.connect()
            except UnicodeError as exc:  # a host name IDNA cannot encode (a..b, a label over 63 characters)
                raise _unsendable(exc, request) from None
            except TimeoutError:
                if time.monotonic() >= give_up - 0.01:
                    return _overdue(request, deadline)
                return transport_failure(where, "ConnectTimeout", reached=False)
            except OSError:  # refused, unreachable, a certificate refused...
                return transport_failure(where, "ConnectError", reached=False)
            sock = conn.sock  # kept: the response reads from it after the connection hands it over
            try:
                sock.settimeout(left(READ_TIMEOUT))
                conn.putrequest(request.method, target, skip_accept_encoding=True)
                names = {name.lower() for name, _ in request.headers}
                for name, value in request.headers:
                    conn.putheader(name, value)
                if "accept" not in names:
                    conn.putheader("Accept", "*/*")
                conn.putheader("Accept-Encoding", "gzip, deflate")
                if "user-agent" not in names:
                    conn.putheader("User-Agent", USER_AGENT)
                if request.body or request.method in _BODY_METHODS:
                    conn.putheader("Content-Length", str(len(request.body)))
                conn.endheaders(request.body or None)
                sock.settimeout(left(READ_TIMEOUT))
                response = conn.getresponse()
                try:
                    answer = _read(response, sock, cap, give_up, left)
                finally:
                    response.close()
                return answer if answer is not None else _overdue(request, deadline)
            except TimeoutError:
                if time.monotonic() >= give_up - 0.01:
                    return _overdue(request, deadline)  # the cut timeout fired: the deadline ran out
                return transport_failure(where, "ReadTimeout", reached=True)
            except http.client.HTTPException:  # a malformed answer, or the server hung up mid-way
                return transport_failure(where, "RemoteProtocolError", reached=True)
            except OSError:
                return transport_failure(where, "ReadError", reached=True)
            except _Undecodable:
                return transport_failure(where, "DecodingError", reached=True)
        finally:
            conn.close()


class _Undecodable(Exception):
    """A body its Content-Encoding does not decode (httpx's DecodingError)."""


def _read(response: Any, sock: Any, cap: int, give_up: float, left: Any) -> HttpResponse | None:
    """The response's status, headers and body, decoded as httpx decodes it (gzip, deflate); a
    body over ``cap`` is cut there, as :func:`~connector_core._transport.send_sync` cuts it.
    None when the deadline ran out."""
    headers: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value  # as httpx joins them
    decoder = _Decoder.of(headers.get("content-encoding", ""))
    chunks: list[bytes] = []
    size = 0
    truncated = False
    while True:
        if time.monotonic() > give_up:
            return None
        sock.settimeout(left(READ_TIMEOUT))
        raw = response.read1(CHUNK)
        chunk = decoder.feed(raw, cap + 1 - size) if decoder is not None else raw
        if not raw and not chunk:
            break
        size += len(chunk)
        if size > cap or (decoder is not None and decoder.more):
            truncated = True
            break
        chunks.append(chunk)
    return HttpResponse(response.status, headers, b"".join(chunks), truncated=truncated)


class _Decoder:
    """A gzip or deflate body's decompressor (httpx decodes both), bounded per call."""

    def __init__(self, encoding: str) -> None:
        import zlib  # here: only a compressed body needs it

        self._zlib = zlib
        self._gzip = encoding == "gzip"
        self._raw = False
        self._started = False
        self._d = zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS)

    @classmethod
    def of(cls, encoding: str) -> _Decoder | None:
        encoding = encoding.strip().lower()
        return cls(encoding) if encoding in ("gzip", "deflate") else None

    @property
    def more(self) -> bool:
        """Whether output is left over that the last bound held back."""
        return bool(self._d.unconsumed_tail)

    def feed(self, data: bytes, limit: int) -> bytes:
        """At most ``limit`` bytes of output from ``data`` (b"" at the end: what is left)."""
        zlib = self._zlib
        try:
            if not data:
                return self._d.flush()
            try:
                out = self._d.decompress(data, max(limit, 1))
            except zlib.error:
                if self._gzip or self._started:
                    raise
                # deflate sent without its zlib wrapper, as some servers do: httpx reads that too.
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._d.decompress(data, max(limit, 1))
            self._started = True
            return out
        except zlib.error:
            raise _Undecodable from None


def run_plain(flow: Flow[_T], deadline: float = DEFAULT_DEADLINE) -> _T:
    """Drive ``flow`` with ``http.client`` (see the module doc); each response has ``deadline``
    seconds in all."""
    sender = PlainSender()
    try:
        return drive_sync(flow, lambda request: sender.send(request, deadline))
    finally:
        sender.close()
