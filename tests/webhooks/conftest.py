"""What the webhook tests share: receivers on 127.0.0.1 that verify every delivery with both
``connector_core.webhooks.verify`` and the ``standardwebhooks`` package, stores of either
engine, a fake clock, and a way to record events."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import standardwebhooks

from connector_core.crypto import ENV_KEY_FILE
from connector_core.events import EventType
from connector_core.secret import Secret
from connector_core.store.sql import SqlStore
from connector_core.testing import free_port
from connector_core.webhooks import WebhookVerificationError, verify

#: An answer: status, headers, and the body (bytes, or chunks written one after the other).
Answer = tuple[int, dict[str, str], bytes | Iterable[bytes]]


@attrs.define
class Received:
    """One delivery as a receiver got it."""

    headers: dict[str, str]
    body: bytes
    #: Accepted by connector_core.webhooks.verify / by standardwebhooks (with any secret held).
    ours: bool
    theirs: bool
    #: The sender's address and port: one per connection it delivered over.
    peer: tuple[str, int] = ("", 0)

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class _Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a sender killed mid-request resets its connection: nothing to report


class Receiver:
    """A webhook receiver on 127.0.0.1 (started by :meth:`start`, on a port chosen now): it
    records and verifies every delivery, then answers as ``answer`` says (default 204), after
    ``delay`` seconds."""

    def __init__(self, secrets: Iterable[Secret | str] = (), *, port: int | None = None) -> None:
        self.secrets = [s.reveal() if isinstance(s, Secret) else s for s in secrets]
        self.port = port or free_port()
        self.received: list[Received] = []
        self.answer: Callable[[Received], Answer] = lambda got: (204, {}, b"")
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/connector"

    def _check(self, body: bytes, headers: dict[str, str]) -> tuple[bool, bool]:
        if not self.secrets:
            return False, False
        try:
            verify(body, headers, self.secrets)
            ours = True
        except WebhookVerificationError:
            ours = False
        theirs = False
        for secret in self.secrets:
            try:
                standardwebhooks.Webhook(secret).verify(body, headers)
                theirs = True
            except standardwebhooks.WebhookVerificationError:
                continue
        return ours, theirs

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                declared = int(self.headers.get("content-length") or 0)
                try:
                    body = self.rfile.read(declared)
                except OSError:
                    return
                if len(body) < declared:
                    return  # the sender died mid-request: nothing was delivered
                headers = {k.lower(): v for k, v in self.headers.items()}
                got = Received(headers, body, *receiver._check(body, headers), peer=self.client_address[:2])
                with receiver._lock:
                    receiver.received.append(got)
                if receiver.delay:
                    time.sleep(receiver.delay)
                status, extra, content = receiver.answer(got)
                chunks = [content] if isinstance(content, bytes) else content
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    if isinstance(content, bytes):
                        self.send_header("content-length", str(len(content)))
                    else:
                        self.send_header("connection", "close")
                    self.end_headers()
                    for chunk in chunks:
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the deliverer stopped reading: it keeps the first KiB only

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def by_event(self) -> dict[str, list[Received]]:
        found: dict[str, list[Received]] = {}
        for got in list(self.received):
            found.setdefault(got.webhook_id, []).append(got)
        return found


class FakeClock:
    """Epoch seconds that move only when told (starting now)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def record_events(store: SqlStore, n: int, kind: EventType = EventType.CREATED, prefix: str = "conn") -> list[str]:
    """``n`` events of ``kind``, each in a transaction of its own (as a change records its event)."""
    ids = []
    for index in range(n):
        with store._write() as tx:
            connection = {"id": f"{prefix}_{index}", "provider": "acme", "status": "connected"}
            ids.append(store._emit(tx, kind, connection=connection, details={"n": index}))
    return ids


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {ENV_KEY_FILE: str(tmp_path / "keys.json")}


@pytest.fixture
def sqlite_store(tmp_path: Path, env: dict[str, str]) -> Iterator[SqlStore]:
    from connector_core.store import Store

    with Store.open(tmp_path / "home", env=env) as store:
        yield store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, env: dict[str, str]) -> Iterator[SqlStore]:
    """A store of either engine."""
    if request.param == "sqlite":
        from connector_core.store import Store

        opened: SqlStore = Store.open(tmp_path / "home", env=env)
    else:
        from connector_core.store.postgres import PgStore

        opened = PgStore(request.getfixturevalue("pg_url"), env=env)
    with opened:
        yield opened


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()
    yield got
    got.stop()


def public(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
    """A resolver that says every host is 93.184.216.34 (a public address), for URLs that never connect."""
    return [(2, 1, 6, "", ("93.184.216.34", port))]
