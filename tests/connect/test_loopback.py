"""The loopback listener (issue 15): owns both loopback addresses for ``localhost``, is not
held up by an idle client, and never takes a cut-short request as the callback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from connector_core._loopback import LoopbackListener
from connector_core.testing import free_port


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


class Calls:
    def __init__(self) -> None:
        self.queries: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, query: str) -> tuple[bool, str]:
        with self.lock:
            self.queries.append(query)
        return True, "done"


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def listener(calls: Calls) -> Iterator[tuple[LoopbackListener, int]]:
    port = free_port()
    with LoopbackListener(f"http://localhost:{port}/cb", calls) as running:
        yield running, port


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_localhost_owns_both_loopback_addresses(listener: tuple[LoopbackListener, int], calls: Calls) -> None:
    running, port = listener
    assert set(running.addresses) == {"127.0.0.1", "::1"}
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as squatter, pytest.raises(OSError, match="in use"):
        squatter.bind(("::1", port))  # nobody else can take the other address of the name
    answer = httpx.get(f"http://[::1]:{port}/cb?code=c&state=s", timeout=10)
    assert answer.status_code == 200 and running.wait(10) == (True, "done")
    assert calls.queries == ["code=c&state=s"]


def test_an_idle_client_does_not_block_the_callback(listener: tuple[LoopbackListener, int], calls: Calls) -> None:
    running, port = listener
    with socket.create_connection(("127.0.0.1", port)) as idle:
        idle.sendall(b"GET /cb?code=slow")  # and then nothing, ever
        answer = httpx.get(f"http://127.0.0.1:{port}/cb?code=c&state=s", timeout=10)
        assert answer.status_code == 200 and running.wait(10) == (True, "done")
    assert calls.queries == ["code=c&state=s"]


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /cb?code=cut&state=s HTTP/1.1\r\nHost: localhost\r\n",  # the header block never ends
        b"GET /cb?code=cut&state=s HTTP/1.1\r\n",
        b"GET /cb?code=cut&state=s\r\n\r\n",  # HTTP/0.9: no version, no headers
    ],
)
def test_a_cut_short_request_is_not_a_callback(
    listener: tuple[LoopbackListener, int], calls: Calls, partial: bytes
) -> None:
    running, port = listener
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(partial)
        client.shutdown(socket.SHUT_WR)
        client.settimeout(10)
        while client.recv(4096):
            pass
    answer = httpx.get(f"http://127.0.0.1:{port}/cb?code=c&state=s", timeout=10)
    assert answer.status_code == 200 and running.wait(10) == (True, "done")
    assert calls.queries == ["code=c&state=s"]
