"""``ConnectionAuth``: a connection as an ``httpx.Auth``.

Apart from :mod:`connector_core.connector` because it subclasses ``httpx.Auth``: importing the
engine (as ``connector request`` does) need not import httpx. The flows themselves are the
connector's (``Connector._sync_auth`` and ``_async_auth``); this class hands requests to them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Protocol

import httpx

__all__ = ["ConnectionAuth"]


class _AuthFlows(Protocol):
    """What :class:`ConnectionAuth` needs of a :class:`~connector_core.Connector`."""

    def _sync_auth(
        self, connection_id: str, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]: ...

    def _async_auth(
        self, connection_id: str, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]: ...


class ConnectionAuth(httpx.Auth):
    """Injects the connection's access token, refreshing it before expiry and once on a
    401 (single-flight), for sync and async httpx clients alike. Bound to the connection's
    API origin: a request elsewhere raises :class:`~connector_core.errors.RequestFailed` and
    never reads, sends or refreshes a token.

    Each request reads one narrow row of the store (the connection's stamp) to learn whether
    another process refreshed or changed the connection since its last request; only then, or
    when a refresh is due, is its token read (and decrypted) again."""

    def __init__(self, connector: _AuthFlows, connection_id: str) -> None:
        self._connector = connector
        self.connection_id = connection_id

    def __repr__(self) -> str:
        return f"<ConnectionAuth {self.connection_id}>"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        return self._connector._sync_auth(self.connection_id, request)

    def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        return self._connector._async_auth(self.connection_id, request)
