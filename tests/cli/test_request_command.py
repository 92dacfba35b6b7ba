"""``connector request`` at its cold-start cost (issue 19): what it imports and builds, and the
``http.client`` driver it sends with (``connector_core._plainhttp``), held to the rules of the
httpx transport. Speed itself is measured in benchmarks/per_request.py, never asserted here."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import World

from connector_core import cli as cli_module
from connector_core._lazytls import LazyTLSTransport
from connector_core._plainhttp import PlainSender, run_plain
from connector_core._transport import DEADLINE_EXCEEDED, sync_client
from connector_core.oauth import HttpRequest

PATH = "/company/named-lists"
#: What `connector request` must not import: httpx and its stack (the CLI sends with http.client),
#: asyncio (sync only), oauthlib (no token request is built unless a refresh is due).
NOT_IMPORTED = ("httpx", "httpcore", "h11", "anyio", "asyncio", "oauthlib", "rich", "click")

PROBE = textwrap.dedent(
    """
    import contextlib, io, json, ssl, sys
    contexts = []
    real_new = ssl.SSLContext.__new__

    def counting(cls, *args, **kwargs):
        contexts.append(cls.__name__)
        return real_new(cls, *args, **kwargs)

    ssl.SSLContext.__new__ = counting
    from connector_core.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(sys.argv[1:])
    print(json.dumps({"code": code, "modules": sorted(sys.modules), "contexts": contexts, "out": out.getvalue()}))
    """
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, "acme-sandbox") as w:
        yield w


def probe(world: World, *argv: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env.update({"CONNECTOR_HOME": str(world.home), "CONNECTOR_CORE_KEY_FILE": str(world.key_file)})
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    data: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def test_connector_request_imports_no_httpx_and_builds_no_tls_context_for_http(world: World) -> None:
    cid = world.connect().connection.id
    assert world.emu.endpoints("sandbox").api_base_url.startswith("http://127.0.0.1:")
    data = probe(world, "request", cid, "GET", PATH)
    assert data["code"] == 0 and "department" in json.loads(str(data["out"]))
    modules = set(data["modules"])  # type: ignore[call-overload]
    assert [m for m in NOT_IMPORTED if m in modules] == []
    assert data["contexts"] == []  # http:// to the emulator: no TLS context, no CA bundle read
    assert "http.client" in modules  # the probe is honest: it sent the request


def test_connector_request_refreshes_a_due_token_with_http_client(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = world.connect().connection
    with world.store._write() as db:  # the access token expired
        db.execute("UPDATE connections SET expires_at = 0 WHERE id = ?", (conn.id,))
    monkeypatch.setenv("CONNECTOR_HOME", str(world.home))
    monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(world.key_file))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_module.main(["request", conn.id, "GET", PATH], plugins=world.plugins) == 0
    assert "department" in json.loads(out.getvalue())
    assert world.emu.stats.token_requests["refresh_token"] == 1
    assert world.store.get_connection(conn.id).token_version == conn.token_version + 1


def test_the_connectors_own_client_builds_no_tls_context_until_https() -> None:
    client = sync_client()
    transport = client._transport
    assert isinstance(transport, LazyTLSTransport)
    with client:
        with contextlib.suppress(Exception):
            client.get("http://127.0.0.1:1/")  # nothing listens there: only the plain side is built
        assert not transport.tls_built
        with contextlib.suppress(Exception):
            client.get("https://127.0.0.1:1/")
        assert transport.tls_built
        tls = transport._transport(True)._pool._ssl_context  # the verifying context httpx builds by default
        assert tls is not None and tls.verify_mode is ssl.CERT_REQUIRED and tls.check_hostname


def test_the_plain_sender_verifies_https() -> None:
    sender = PlainSender()
    answer = sender.send(HttpRequest("GET", "https://127.0.0.1:1/x", (), b""), deadline=5)
    assert answer.failure is not None and not answer.failure.reached_server
    assert sender.tls_contexts == 1
    context = sender._context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


# --------------------------------------------------------------------------- a local server

Handler = Callable[[BaseHTTPRequestHandler], None]


@contextlib.contextmanager
def serving(handle: Handler) -> Iterator[str]:
    class One(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            handle(self)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), One)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def reply(status: int, body: bytes, headers: list[tuple[str, str]] = ()) -> Handler:  # type: ignore[assignment]
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for name, value in headers:
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


def test_the_plain_sender_sends_what_the_flow_asks_and_decodes_as_httpx_does() -> None:
    seen: dict[str, object] = {}

    def handle(h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length", "0"))
        seen.update(method=h.command, path=h.path, headers=dict(h.headers.items()), body=h.rfile.read(length))
        body = gzip.compress(b'{"ok": true}')
        reply(201, body, [("Content-Encoding", "gzip"), ("X-Twice", "a"), ("X-Twice", "b")])(h)

    with serving(handle) as base:
        request = HttpRequest("POST", f"{base}/x?y=1", (("Accept", "application/json"), ("X-Mine", "v")), b"{}")
        answer = PlainSender().send(request)
    assert (answer.status, answer.body, answer.truncated, answer.failure) == (201, b'{"ok": true}', False, None)
    assert answer.headers["x-twice"] == "a, b"  # joined, as httpx joins them
    assert seen["method"] == "POST" and seen["path"] == "/x?y=1" and seen["body"] == b"{}"
    headers = {k.lower(): v for k, v in seen["headers"].items()}  # type: ignore[attr-defined]
    assert headers["accept"] == "application/json" and headers["x-mine"] == "v" and headers["content-length"] == "2"


def test_the_plain_sender_cuts_a_body_over_its_cap() -> None:
    with serving(reply(200, b"x" * 5000)) as base:
        answer = PlainSender().send(HttpRequest("GET", base + "/big", (), b"", max_bytes=1000))
    assert answer.truncated and len(answer.body) <= 1000


def test_the_plain_sender_gives_up_at_the_deadline() -> None:
    def drip(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(100):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(0.05)

    with serving(drip) as base:
        started = time.monotonic()
        answer = PlainSender().send(HttpRequest("GET", base + "/slow", (), b""), deadline=0.5)
    assert answer.failure is not None and answer.failure.error == DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3


def test_the_plain_sender_reports_a_refused_connection_as_not_reached() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    answer = PlainSender().send(HttpRequest("GET", f"http://127.0.0.1:{port}/x", (), b""))
    assert answer.failure is not None and not answer.failure.reached_server
    assert answer.failure.message == f"cannot connect to 127.0.0.1:{port}"


def test_run_plain_refuses_what_the_endpoint_check_refuses() -> None:
    from connector_core.errors import ValidationError

    def flow():  # type: ignore[no-untyped-def]
        yield HttpRequest("GET", "http://evil.example/x", (), b"")

    with pytest.raises(ValidationError, match="refused before sending"):
        run_plain(flow())
