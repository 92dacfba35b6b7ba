"""The emulator's HTTP transport: a threaded HTTP/1.1 server on a loopback address.

Thin on purpose: it parses a request into an :class:`HttpRequest`, hands it to
the application callable and writes back the :class:`HttpResponse`, including
the transport-level faults (a dropped connection, a body cut short). It never
interprets a request itself.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from ..models import is_loopback_host

__all__ = ["HttpRequest", "HttpResponse", "LoopbackServer", "json_response"]

#: Request bodies larger than this are refused with 413.
MAX_REQUEST_BODY = 1024 * 1024


@attrs.frozen
class HttpRequest:
    method: str
    #: The path, still percent-encoded, without the query.
    path: str
    #: The raw query string (without ``?``).
    query: str
    #: Header names in lower case; repeated headers joined with ", ".
    headers: Mapping[str, str]
    body: bytes


@attrs.frozen
class HttpResponse:
    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    #: Close the connection without sending anything.
    drop: bool = False
    #: Send only this many bytes of the body (``Content-Length`` still promises all), then close.
    cut_body_at: int | None = None
    #: Send the body one byte every this many seconds (a peer that drips its answer).
    drip: float = 0.0


App = Callable[[HttpRequest], HttpResponse]


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> HttpResponse:
    """A JSON response."""
    body = json.dumps(data).encode()
    return HttpResponse(status, {"Content-Type": "application/json", **(headers or {})}, body)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "connector-core-emulator"
    sys_version = ""
    #: Idle keep-alive connections are closed after this many seconds.
    timeout = 30
    #: Headers and body go out in separate writes; without this, Nagle's algorithm and
    #: the client's delayed ACK add some 40 ms to every response.
    disable_nagle_algorithm = True
    server: LoopbackServer

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _serve(self) -> None:
        if not self._host_is_ours():
            # DNS rebinding: a web page at evil.example whose name now resolves to 127.0.0.1
            # reaches this port, but its requests still say Host: evil.example.
            self._plain(421, b"This server answers only to its own loopback address in the Host header.\n")
            return
        if self.headers.get("Transfer-Encoding"):
            self._plain(411, b"Send a Content-Length; chunked request bodies are not supported.\n")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._plain(400, b"Bad Content-Length.\n")
            return
        if length > MAX_REQUEST_BODY:
            self._plain(413, b"Request body too large.\n")
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            return
        path, _, query = self.path.partition("?")
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = HttpRequest(self.command, path or "/", query, headers, body)
        self._write(self.server.app(request))

    def _host_is_ours(self) -> bool:
        host = self.headers.get("Host")
        if not host:
            return False
        try:
            parts = urlsplit(f"//{host}")
            name, port = parts.hostname, parts.port
        except ValueError:
            return False
        return bool(name) and is_loopback_host(str(name)) and (80 if port is None else port) == self.server.port

    def _plain(self, status: int, body: bytes) -> None:
        self.close_connection = True
        self._write(HttpResponse(status, {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"}, body))

    def _write(self, response: HttpResponse) -> None:
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        body = response.body
        if response.cut_body_at is not None:
            body = body[: response.cut_body_at]
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.drip:
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(response.drip)
        elif self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
        if response.cut_body_at is not None:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.partition("?")[0]
        self.server.log(f"{self.command} {path} {code}")


class LoopbackServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server that tracks its connections so it can close them all."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # The default listen backlog (5) resets connections when many clients arrive at once.
    request_queue_size = 256

    def __init__(
        self, host: str, port: int, app: App, log: Callable[[str], None], on_error: Callable[[BaseException], None]
    ) -> None:
        self.app = app
        self.log = log
        self.on_error = on_error
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can
        # stall on machines without DNS; a loopback server needs none of it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        # A client that goes away mid-response is not the emulator's fault.
        if error is not None and not isinstance(error, OSError):
            self.on_error(error)

    def close_connections(self) -> None:
        """Shut down every open connection (idle keep-alive ones included)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    @property
    def port(self) -> int:
        return int(self.server_address[1])
