"""Two ``connector serve`` processes on one PostgreSQL store, as replicas behind one load
balancer (one public URL): a connect session made through one finishes through the other,
and a session's form posted to both at once is claimed exactly once.

The test process runs HiBob's emulator and is the browser: one httpx client whose cookies
(per host, not per port) go to both replicas, and the harness's scripted consent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import pytest
from support import PLATFORM_REDIRECT, create_emulator_profile, hibob

from connector_core.crypto import ENV_KEY_FILE
from connector_core.emulator import RunningEmulator, start_emulator
from connector_core.plugins import ENV_ALLOW
from connector_core.serve import callback_url
from connector_core.store import ENV_STORE_URL
from connector_core.store.postgres import PgStore
from connector_core.testing import Harness, free_port

KEY = "replica-api-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROFILE = "acme-sandbox"
ADA = {"id": "user-ada", "email": "ada@example.com", "display_name": "Ada"}
#: How long a replica may take to answer /healthz (a bound, not an assertion about speed).
START_DEADLINE = 60.0


@attrs.frozen
class Replica:
    """One ``connector serve`` process: where it listens and where its output goes."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@attrs.frozen
class Replicas:
    """Two replicas sharing a store and a public URL (the first one's address, as if a load
    balancer stood there), the emulator, and the store as the test process opened it."""

    a: Replica
    b: Replica
    public_url: str
    emu: RunningEmulator
    store: PgStore


def _serve(name: str, port: int, public_url: str, env: dict[str, str], tmp: Path) -> Replica:
    log = tmp / f"serve-{name}.log"
    argv = [sys.executable, "-m", "connector_core", "serve", "--port", str(port), "--public-url", public_url]
    with log.open("wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    return Replica(name, f"http://127.0.0.1:{port}", proc, log)


def _stop(replica: Replica) -> None:
    if replica.proc.poll() is None:
        replica.proc.terminate()
        try:
            replica.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            replica.proc.kill()
            replica.proc.wait(timeout=15)


def _wait_healthy(replicas: tuple[Replica, ...]) -> None:
    """Poll every replica's /healthz until each answers, within one deadline."""
    deadline = time.monotonic() + START_DEADLINE
    waiting = list(replicas)
    with httpx.Client(trust_env=False, timeout=2) as client:
        while waiting:
            replica = waiting[0]
            if replica.proc.poll() is not None:
                raise AssertionError(
                    f"replica {replica.name} exited with {replica.proc.returncode}:\n{replica.output()[-2000:]}"
                )
            try:
                answer = client.get(f"{replica.url}/healthz")
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    tail = replica.output()[-2000:]
                    raise AssertionError(f"replica {replica.name} never answered:\n{tail}") from None
                time.sleep(0.05)  # a poll interval: what we wait for is the answer above
                continue
            assert answer.status_code == 200 and answer.json() == {"status": "ok"}, answer.text
            waiting.pop(0)


@contextmanager
def _replicas(pg_url: str, tmp: Path) -> Iterator[Replicas]:
    key_file = tmp / "keys.json"
    plugins = hibob()
    ports = free_port(), free_port()
    while ports[1] == ports[0]:
        ports = ports[0], free_port()
    public_url = f"http://127.0.0.1:{ports[0]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_", "PG"))}
    env.update(
        {
            ENV_STORE_URL: pg_url,  # it holds the password: in the environment, never in argv
            ENV_KEY_FILE: str(key_file),
            ENV_ALLOW: "hibob",
            "CONNECTOR_SERVE_API_KEYS": KEY,
            "CONNECTOR_HOME": str(tmp / "home"),  # the store URL wins over it; nothing of ~ is touched
        }
    )
    with ExitStack() as stack:
        store = stack.enter_context(PgStore(pg_url, env={ENV_KEY_FILE: str(key_file)}))
        emu = stack.enter_context(
            start_emulator("hibob", plugins=plugins, redirect_uris=[PLATFORM_REDIRECT], allow_loopback_redirects=False)
        )
        # Only the public URL's callback: a replica that sent its own address would be refused.
        emu.register_redirect_uri(callback_url(public_url, "hibob"))
        create_emulator_profile(store, plugins, emu, PROFILE)  # before the replicas start: the key file exists
        started: list[Replica] = []
        try:
            for name, port in zip("ab", ports, strict=True):
                started.append(_serve(name, port, public_url, env, tmp))
            _wait_healthy(tuple(started))
            yield Replicas(started[0], started[1], public_url, emu, store)
        finally:
            for replica in started:
                _stop(replica)
        assert emu.unexpected_errors == ()


@pytest.fixture
def replicas(pg_url: str, tmp_path: Path) -> Iterator[Replicas]:
    with _replicas(pg_url, tmp_path) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    """The end user's browser: one cookie jar for every port of 127.0.0.1."""
    with httpx.Client(follow_redirects=False, trust_env=False, timeout=30) as client:
        yield client


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _session(replica: Replica, **body: Any) -> dict[str, Any]:
    body = {"end_user": ADA, "profile": PROFILE, **body}
    answer = httpx.post(f"{replica.url}/v1/connect/sessions", json=body, headers=AUTH, trust_env=False, timeout=30)
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def _form(page: httpx.Response, public_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """The connect form's fields (its CSRF token from the page) and the headers a browser adds."""
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    return {"csrf": csrf.group(1), "action": "connect"}, {"Origin": public_url}


def _state(replica: Replica, session_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{replica.url}/v1/connect/sessions/{session_id}", headers=AUTH, trust_env=False, timeout=30)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def test_a_session_made_through_one_replica_completes_through_the_other(
    replicas: Replicas, browser: httpx.Client
) -> None:
    a, b, public = replicas.a, replicas.b, replicas.public_url
    made = _session(a)
    assert made["connect_url"] == f"{public}/connect/{made['token']}"
    page = browser.get(a.url + _path(made["connect_url"]))
    form, headers = _form(page, public)
    started = browser.post(a.url + _path(made["connect_url"]), data=form, headers=headers)
    assert started.status_code == 303, started.text
    to_provider = started.headers["location"]
    assert to_provider.startswith(replicas.emu.base_url)
    sent = parse_qs(urlsplit(to_provider).query)
    assert sent["redirect_uri"] == [callback_url(public, "hibob")]
    location = Harness.consent(to_provider)
    assert location.startswith(f"{callback_url(public, 'hibob')}?")
    assert _state(b, made["id"])["status"] == "used"  # B sees A's claim in the shared store

    done = browser.get(b.url + _path(location))  # the load balancer sent the callback to B
    assert done.status_code == 200, done.text
    assert '<h1 class="ok">Connected</h1>' in done.text

    state = _state(a, made["id"])
    assert state["status"] == "completed" and state["provider"] == "hibob" and state["error"] is None
    cid = state["connection_id"]
    assert cid
    listed = httpx.get(
        f"{b.url}/v1/connections", params={"end_user": "user-ada"}, headers=AUTH, trust_env=False, timeout=30
    )
    assert listed.status_code == 200, listed.text
    (conn,) = listed.json()["data"]
    assert conn["id"] == cid and conn["status"] == "connected" and conn["provider"] == "hibob"
    assert conn["owner"]["end_user"] == ADA
    owner = replicas.store.get_connection(cid).owner.end_user
    assert owner is not None and owner.id == "user-ada"

    replay = browser.get(a.url + _path(location))  # the same callback again, at the other replica
    assert replay.status_code == 400 and "Connected" not in replay.text
    assert browser.get(b.url + _path(made["connect_url"])).status_code == 410  # the link is used up
    # Each replica logs its own requests, and never a connect token, a code, a state or the API key.
    query = parse_qs(urlsplit(location).query)
    assert "POST /connect/cs_… 303" in a.output() and "GET /connect/oauth2/hibob/callback 200" in b.output()
    for replica in (a, b):
        logged = replica.output()
        for secret in (made["token"], query["code"][0], query["state"][0], KEY):
            assert secret not in logged
        assert "code=" not in logged and "state=" not in logged


def test_a_form_posted_to_both_replicas_at_once_is_claimed_once(replicas: Replicas, browser: httpx.Client) -> None:
    a, b, public = replicas.a, replicas.b, replicas.public_url
    made = _session(b)
    path = _path(made["connect_url"])
    form, headers = _form(browser.get(b.url + path), public)
    barrier = threading.Barrier(2)

    def post(replica: Replica) -> tuple[str, httpx.Response]:
        # A client per thread, each with the browser's cookies: the same browser, two tabs.
        with httpx.Client(cookies=browser.cookies, follow_redirects=False, trust_env=False, timeout=30) as client:
            barrier.wait(timeout=30)
            return replica.name, client.post(replica.url + path, data=form, headers=headers)

    with ThreadPoolExecutor(2) as pool:  # an exception in a thread is raised here by map()
        answers = dict(pool.map(post, (a, b)))
    assert sorted(answers) == ["a", "b"]
    statuses = sorted(answer.status_code for answer in answers.values())
    assert statuses == [303, 410], {name: (r.status_code, r.text[:300]) for name, r in answers.items()}
    winner = next(r for r in answers.values() if r.status_code == 303)
    loser = next(r for r in answers.values() if r.status_code == 410)
    assert winner.headers["location"].startswith(replicas.emu.base_url)
    assert "This link was already used" in loser.text and "location" not in loser.headers
    state = _state(a, made["id"])
    assert state["status"] == "used" and state["provider"] == "hibob"
    (stored,) = replicas.store.list_sessions()
    assert stored.status.value == "used"
