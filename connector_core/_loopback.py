"""A one-shot loopback listener for the OAuth callback (RFC 8252 §7.3).

Binds loopback addresses only (never all interfaces): the redirect URI's own address, or
for ``localhost`` both 127.0.0.1 and ::1 on that port, since a browser may resolve the
name to either and whoever holds the other would receive the code. It answers exactly the
redirect URI's path, accepts one callback, hands its query string to a function that
completes the connection, shows the browser a small page saying how it went, and stops.
Each connection has its own thread and a read timeout, so an idle or slow client cannot
hold up the real callback; a request whose header block does not end (a client that
closed early) is never taken as a callback.
"""

from __future__ import annotations

import errno
import html
import http.server
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .errors import ConnectorError

__all__ = ["LoopbackListener"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}}</style>
</head><body><h1>{title}</h1><p>{message}</p><p>You can close this window.</p></body></html>
"""

#: A client that sends nothing for this long is dropped (it holds only its own thread).
READ_TIMEOUT = 10.0

#: ::1 cannot be bound on a host without IPv6; then only 127.0.0.1 is there to own.
_NO_IPV6 = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)


class _LastLine:
    """The request stream, remembering the last line read: the header block is whole only
    if it ended with an empty line (not with the end of the stream)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.last = b""

    def readline(self, *args: Any) -> bytes:
        self.last = self._stream.readline(*args)
        return self.last

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can stall
        # on machines without DNS; a loopback listener needs none of it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class _V6Server(_Server):
    address_family = socket.AF_INET6


class LoopbackListener:
    """Listen on the loopback redirect URI for one callback.

    ``handle(query) -> (ok, message)`` runs in a listener thread when the callback
    arrives (one at a time, once); its message is shown to the person in the browser.
    """

    def __init__(self, redirect_uri: str, handle: Callable[[str], tuple[bool, str]]) -> None:
        parts = urlsplit(redirect_uri)
        if parts.hostname not in ("127.0.0.1", "::1", "localhost") or parts.port is None:
            raise ValueError(f"not a loopback redirect URI with a port: {redirect_uri!r}")
        self.path = parts.path or "/"
        self._handle = handle
        self._done = threading.Event()
        self._once = threading.Lock()
        self.result: tuple[bool, str] | None = None
        #: The exception ``handle`` raised, if any.
        self.error: BaseException | None = None
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            server_version = "connector-core"
            sys_version = ""
            timeout = READ_TIMEOUT

            def setup(self) -> None:
                super().setup()
                self.rfile = _LastLine(self.rfile)  # type: ignore[assignment]

            def do_GET(self) -> None:
                whole = getattr(self.rfile, "last", b"") in (b"\r\n", b"\n")
                if not whole or not self.request_version.startswith("HTTP/1."):
                    self.close_connection = True  # cut short: nothing to answer, nothing taken
                    return
                parts = urlsplit(self.path)
                if parts.path != listener.path or listener._done.is_set():
                    self._page(404, "Not found", "This is not the address the authorization returns to.")
                    return
                with listener._once:
                    if listener._done.is_set():
                        self._page(404, "Not found", "The callback was already received.")
                        return
                    try:
                        ok, message = listener._handle(parts.query)
                    except ConnectorError as exc:  # shown to the person, and raised again by the caller
                        listener.error = exc
                        ok, message = False, exc.message
                    except Exception as exc:  # noqa: BLE001 - never a traceback in the browser
                        listener.error = exc
                        ok, message = False, "connecting failed; see the terminal"
                    listener.result = (ok, message)
                    self._page(200 if ok else 400, "Connected" if ok else "Not connected", message)
                    listener._done.set()

            def _page(self, status: int, title: str, message: str) -> None:
                body = _PAGE.format(title=html.escape(title), message=html.escape(message)).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Referrer-Policy", "no-referrer")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        hosts = {"localhost": ("127.0.0.1", "::1")}.get(str(parts.hostname), (str(parts.hostname),))
        self._servers: list[_Server] = []
        try:
            for host in hosts:
                server = self._bind(host, parts.port, Handler, optional=len(hosts) > 1 and host == "::1")
                if server is not None:
                    self._servers.append(server)
        except BaseException:
            for server in self._servers:
                server.server_close()
            raise
        self._threads = [
            threading.Thread(target=server.serve_forever, args=(0.2,), name="connector-loopback", daemon=True)
            for server in self._servers
        ]

    @staticmethod
    def _bind(host: str, port: int, handler: Any, *, optional: bool) -> _Server | None:
        server_class = _V6Server if ":" in host else _Server
        try:
            return server_class((host, port), handler)
        except OSError as exc:
            if optional and exc.errno in _NO_IPV6:
                return None
            shown = f"[{host}]" if ":" in host else host
            raise ConnectorError(
                f"cannot listen on {shown}:{port} for the callback ({exc.strerror or type(exc).__name__}); "
                "is another program using that port?"
            ) from None

    @property
    def addresses(self) -> tuple[str, ...]:
        """The addresses listened on (``127.0.0.1``, ``::1``)."""
        return tuple(str(server.server_address[0]) for server in self._servers)

    def start(self) -> LoopbackListener:
        for thread in self._threads:
            thread.start()
        return self

    def wait(self, timeout: float) -> tuple[bool, str] | None:
        """Wait for the callback; ``None`` on timeout."""
        deadline = time.monotonic() + timeout
        while not self._done.wait(0.1):
            if time.monotonic() > deadline:
                return None
        return self.result

    def close(self) -> None:
        self._done.set()
        for server, thread in zip(self._servers, self._threads, strict=True):
            if thread.is_alive():
                server.shutdown()
            server.server_close()

    def __enter__(self) -> LoopbackListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
