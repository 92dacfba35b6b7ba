"""An httpx transport that builds its TLS context on the first https request.

``httpx.Client()`` builds a verifying TLS context when it is made, loading the CA bundle (tens
of milliseconds): a one-shot command whose every call goes to an http:// loopback address (an
emulator) pays for it and never uses it. :class:`LazyTLSTransport` sends http:// requests
through a transport whose context holds no CA at all (it is never used for http; were it ever
asked to verify a server, nothing would pass), and builds the verifying one, as httpx makes it
by default, for the first https:// request.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

import httpx

__all__ = ["LazyTLSTransport"]


class LazyTLSTransport(httpx.BaseTransport):
    """``httpx.HTTPTransport`` (``options`` are its arguments, ``verify`` excepted: https is
    always verified; ``trust_env`` is False unless given) whose TLS context is built on the
    first https request."""

    def __init__(self, **options: Any) -> None:
        self._options = {"trust_env": False, **options}
        self._plain: httpx.HTTPTransport | None = None
        self._tls: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    @property
    def tls_built(self) -> bool:
        """Whether an https request made it build its TLS context."""
        return self._tls is not None

    def _transport(self, tls: bool) -> httpx.HTTPTransport:
        transport = self._tls if tls else self._plain
        if transport is not None:
            return transport
        with self._lock:
            if tls:
                if self._tls is None:
                    self._tls = httpx.HTTPTransport(verify=True, **self._options)
                return self._tls
            if self._plain is None:
                # Verifying, with no CA loaded: cheap to build, and it could verify no server.
                self._plain = httpx.HTTPTransport(verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), **self._options)
            return self._plain

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport(request.url.scheme == "https").handle_request(request)

    def close(self) -> None:
        for transport in (self._plain, self._tls):
            if transport is not None:
                transport.close()
