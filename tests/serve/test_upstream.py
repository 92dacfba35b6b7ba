"""The service's client to providers (connector_core.serve.upstream) against a server on
127.0.0.1 that counts its connections: keep-alive connections are reused, never more than
``max_connections`` are open, a connection the server closed is replaced, a request waits for a
free connection only as long as the pool timeout says, and no cookie is kept."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector_core.cli.serve import _service_connector
from connector_core.serve.upstream import PoolTransport, upstream_client
from connector_core.testing import free_port


class Origin:
    """A keep-alive HTTP/1.1 server: ``/close`` answers with ``Connection: close``, ``/slow`` after
    50 ms, ``/cookie`` sets one; it records each connection's peer and each request's Cookie header."""

    def __init__(self) -> None:
        self.peers: set[tuple[str, int]] = set()
        self.open = 0
        self.most_open = 0
        self.cookies: list[str | None] = []
        self.lock = threading.Lock()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with origin.lock:
                    origin.peers.add(self.client_address)
                    origin.open += 1
                    origin.most_open = max(origin.most_open, origin.open)

            def finish(self) -> None:
                with origin.lock:
                    origin.open -= 1
                super().finish()

            def do_GET(self) -> None:
                with origin.lock:
                    origin.cookies.append(self.headers.get("cookie"))
                if self.path == "/slow":
                    time.sleep(0.05)
                self.send_response(200)
                self.send_header("content-length", "2")
                if self.path == "/close":
                    self.send_header("connection", "close")
                    self.close_connection = True
                if self.path == "/cookie":
                    self.send_header("set-cookie", "session=tenant-a; Path=/")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.close()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_one_connection_serves_requests_one_after_another(origin: Origin) -> None:
    async def go() -> tuple[list[int], int]:
        transport = PoolTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            statuses = [(await client.get(f"{origin.url}/x")).status_code for _ in range(10)]
        return statuses, transport.opened

    statuses, opened = _run(go())
    assert statuses == [200] * 10
    assert opened == 1
    assert len(origin.peers) == 1


def test_never_more_connections_than_the_limit(origin: Origin) -> None:
    async def go() -> tuple[list[int], int]:
        transport = PoolTransport(max_connections=2)
        async with httpx.AsyncClient(transport=transport) as client:
            answers = await asyncio.gather(*(client.get(f"{origin.url}/slow") for _ in range(8)))
        return [a.status_code for a in answers], transport.opened

    statuses, opened = _run(go())
    assert statuses == [200] * 8
    assert opened == 2
    assert origin.most_open <= 2


def test_a_connection_the_server_closed_is_replaced(origin: Origin) -> None:
    async def go() -> tuple[list[int], int]:
        transport = PoolTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            statuses = [(await client.get(f"{origin.url}/{path}")).status_code for path in ("close", "x", "x")]
        return statuses, transport.opened

    statuses, opened = _run(go())
    assert statuses == [200, 200, 200]
    assert opened == 2  # the closed one, then one kept for the next two


def test_a_request_waits_for_a_connection_only_as_long_as_the_pool_timeout(origin: Origin) -> None:
    async def go() -> None:
        transport = PoolTransport(max_connections=1)
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, pool=0.05)) as client:
            async with client.stream("GET", f"{origin.url}/x") as held:
                assert held.status_code == 200
                with pytest.raises(httpx.PoolTimeout):
                    await client.get(f"{origin.url}/x")
            assert (await client.get(f"{origin.url}/x")).status_code == 200  # freed once the first closed

    _run(go())


def test_a_refused_connection_is_an_httpx_connect_error() -> None:
    async def go() -> None:
        async with httpx.AsyncClient(transport=PoolTransport()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{free_port()}/x")

    _run(go())


def test_the_service_client_keeps_no_cookie_from_one_tenant_for_another(origin: Origin) -> None:
    async def go() -> None:
        async with upstream_client() as client:
            await client.get(f"{origin.url}/cookie")  # tenant A's answer sets a cookie
            await client.get(f"{origin.url}/x")  # tenant B's request
            assert not client.cookies

    _run(go())
    assert origin.cookies == [None, None]


def test_connector_serve_gives_its_connector_the_pooled_client(tmp_path: Any) -> None:
    from connector_core import Store, load_plugins
    from connector_core._nocookies import CookielessAsyncClient
    from connector_core.crypto import ENV_KEY_FILE

    with Store.open(tmp_path / "home", env={ENV_KEY_FILE: str(tmp_path / "keys.json")}) as store:
        connector = _service_connector(store, load_plugins())
        assert isinstance(connector.async_client, CookielessAsyncClient)
        assert connector.async_client.follow_redirects is False


def test_a_request_cancelled_midway_gives_its_connection_slot_back(origin: Origin) -> None:
    async def go() -> int:
        transport = PoolTransport(max_connections=1)
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, pool=1.0)) as client:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.get(f"{origin.url}/slow"), 0.01)  # cancelled while waiting
            return (await client.get(f"{origin.url}/x")).status_code  # the one slot is free again

    assert _run(go()) == 200


def test_the_connectors_own_clients_keep_no_cookie_either(origin: Origin, tmp_path: Path) -> None:
    """A Connector's default clients are shared by all its connections: a cookie one provider
    answer sets must not ride along on the next connection's request."""
    from connector_core import Connector, Store, load_plugins

    store = Store.open(tmp_path / "home", env={"CONNECTOR_CORE_KEY_FILE": str(tmp_path / "keys.json")})
    connector = Connector(store, load_plugins())
    try:
        connector.client.get(f"{origin.url}/cookie")
        connector.client.get(f"{origin.url}/")
        assert not connector.client.cookies

        async def twice() -> None:
            await connector.async_client.get(f"{origin.url}/cookie")
            await connector.async_client.get(f"{origin.url}/")
            assert not connector.async_client.cookies
            await connector.aclose()

        asyncio.run(twice())
    finally:
        connector.close()
    assert origin.cookies == [None, None, None, None]
