"""A one-shot loopback listener for the OAuth callback (RFC 8252 §7.3).

Binds 127.0.0.1 only (never all interfaces), answers exactly the redirect URI's
path, accepts one callback, hands its query string to a function that completes
the connection, shows the browser a small page saying how it went, and stops.
"""

from __future__ import annotations

import html
import http.server
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


class LoopbackListener:
    """Listen on the loopback redirect URI for one callback.

    ``handle(query) -> (ok, message)`` runs in the listener thread when the
    callback arrives; its message is shown to the person in the browser.
    """

    def __init__(self, redirect_uri: str, handle: Callable[[str], tuple[bool, str]]) -> None:
        parts = urlsplit(redirect_uri)
        if parts.hostname not in ("127.0.0.1", "::1", "localhost") or parts.port is None:
            raise ValueError(f"not a loopback redirect URI with a port: {redirect_uri!r}")
        self.path = parts.path or "/"
        self._handle = handle
        self._done = threading.Event()
        self.result: tuple[bool, str] | None = None
        #: The exception ``handle`` raised, if any.
        self.error: BaseException | None = None
        listener = self
        host = "::1" if parts.hostname == "::1" else "127.0.0.1"

        class Handler(http.server.BaseHTTPRequestHandler):
            server_version = "connector-core"
            sys_version = ""

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != listener.path or listener._done.is_set():
                    self._page(404, "Not found", "This is not the address the authorization returns to.")
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

        server_class = http.server.HTTPServer
        if host == "::1":
            import socket

            class V6Server(http.server.HTTPServer):
                address_family = socket.AF_INET6

            server_class = V6Server
        self._server = server_class((host, parts.port), Handler)
        self._server.timeout = 0.2
        self._thread = threading.Thread(target=self._serve, name="connector-loopback", daemon=True)

    def _serve(self) -> None:
        while not self._done.is_set():
            self._server.handle_request()

    def start(self) -> LoopbackListener:
        self._thread.start()
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
        self._thread.join(timeout=2)
        self._server.server_close()

    def __enter__(self) -> LoopbackListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
