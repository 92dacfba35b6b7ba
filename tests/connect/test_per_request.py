"""What one request through ``connector.auth()`` or ``connector.request()`` costs, in structure
(statements, decryptions), and the guarantees the kept signature must not weaken: a token another
process saved is the one sent next, a 401 reads the store again before refreshing, a due refresh
still happens, and any write to the connection or its profile is seen at the next request."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import World

from connector_core import Connector
from connector_core import connector as connector_module
from connector_core.connection import ConnectionStatus
from connector_core.connector import ReconnectRequired, RequestFailed
from connector_core.crypto import KeyRing
from connector_core.errors import ValidationError

PROFILE = "acme-sandbox"
PATH = "/company/named-lists"

REFRESH_ELSEWHERE = textwrap.dedent(
    """
    import sys
    from connector_core import Store, load_plugins
    from connector_core.connector import Connector
    from connector_hibob import plugin

    home, key_file, cid = sys.argv[1:4]
    store = Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": key_file})
    print(Connector(store, load_plugins([plugin], entry_points=False)).refresh(cid, force=True).token_version)
    """
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, PROFILE) as w:
        yield w


def refresh_in_another_process(world: World, cid: str) -> int:
    """A forced refresh of ``cid`` by another process on the same store; its new token version."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    done = subprocess.run(
        [sys.executable, "-c", REFRESH_ELSEWHERE, str(world.home), str(world.key_file), cid],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return int(done.stdout.strip())


def stored_token(world: World, cid: str) -> str:
    access = world.store.get_access_token(cid)[1]
    assert access is not None
    return access.reveal()


class Counted:
    """The SQL statements this thread's store connection runs and the values the key ring decrypts."""

    def __init__(self, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[str] = []
        self.decrypted: list[str] = []
        real = KeyRing.decrypt

        def decrypt(ring: KeyRing, *args: Any, **kwargs: Any) -> str:
            self.decrypted.append(kwargs["what"])
            return real(ring, *args, **kwargs)

        monkeypatch.setattr(KeyRing, "decrypt", decrypt)
        self._db = world.store._connect()
        self._db.set_trace_callback(self.statements.append)

    def clear(self) -> None:
        self.statements.clear()
        self.decrypted.clear()

    def close(self) -> None:
        self._db.set_trace_callback(None)


@pytest.fixture
def counted(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counted]:
    counter = Counted(world, monkeypatch)
    try:
        yield counter
    finally:
        counter.close()


def assert_one_narrow_read(counted: Counted) -> None:
    assert len(counted.statements) == 1, counted.statements
    (statement,) = counted.statements
    assert "FROM connections c JOIN profiles p" in statement and "secrets" not in statement
    assert counted.decrypted == []


def test_a_get_through_auth_reads_one_narrow_row_and_decrypts_nothing(world: World, counted: Counted) -> None:
    """Issue 19: 5 statements, 2 decryptions (the refresh token's unused) and 3 JSON parses per
    request. Now the first request reads the connection and decrypts its access token only; each
    later one reads the connection's stamp (one narrow row) and nothing else."""
    cid = world.connect().connection.id
    base = world.emu.endpoints("sandbox").api_base_url
    counted.clear()
    with httpx.Client(base_url=base, auth=world.connector.auth(cid)) as client:
        assert client.get(PATH).status_code == 200
        assert len(counted.decrypted) == 1 and counted.decrypted[0].startswith("access_token of ")
        for _ in range(3):
            counted.clear()
            assert client.get(PATH).status_code == 200
            assert_one_narrow_read(counted)


def test_an_async_get_through_auth_reads_one_narrow_row(world: World, counted: Counted) -> None:
    cid = world.connect().connection.id
    base = world.emu.endpoints("sandbox").api_base_url

    async def run() -> None:
        async with httpx.AsyncClient(base_url=base, auth=world.connector.auth(cid)) as client:
            assert (await client.get(PATH)).status_code == 200
            counted.clear()
            assert (await client.get(PATH)).status_code == 200

    asyncio.run(run())
    assert_one_narrow_read(counted)


def test_connector_request_reads_one_narrow_row(world: World, counted: Counted) -> None:
    cid = world.connect().connection.id
    assert world.connector.request(cid, "GET", PATH).status == 200
    counted.clear()
    assert world.connector.request(cid, "GET", PATH).status == 200
    assert_one_narrow_read(counted)
    # auth() and request() share what the connector keeps for the connection.
    base = world.emu.endpoints("sandbox").api_base_url
    counted.clear()
    with httpx.Client(base_url=base, auth=world.connector.auth(cid)) as client:
        assert client.get(PATH).status_code == 200
    assert_one_narrow_read(counted)


def test_access_token_decrypts_only_the_access_token(world: World, counted: Counted) -> None:
    cid = world.connect().connection.id
    counted.clear()
    world.connector.access_token(cid)
    assert [what.split(" of ")[0] for what in counted.decrypted] == ["access_token"]


def sent_tokens(into: list[str]) -> dict[str, list[Callable[[httpx.Request], None]]]:
    """httpx event hooks collecting the Authorization header of every request as sent."""
    return {"request": [lambda request: into.append(request.headers.get("authorization", ""))]}


@pytest.mark.parametrize("via", ["auth", "request"])
def test_a_token_another_process_refreshed_is_the_one_sent_next(world: World, via: str) -> None:
    conn = world.connect().connection
    base = world.emu.endpoints("sandbox").api_base_url
    sent: list[str] = []
    hooks = sent_tokens(sent)
    connector = Connector(world.store, world.plugins, client=httpx.Client(event_hooks=hooks))
    client = httpx.Client(base_url=base, auth=connector.auth(conn.id), event_hooks=hooks)

    def get() -> int:
        return client.get(PATH).status_code if via == "auth" else connector.request(conn.id, "GET", PATH).status

    with client, contextlib.closing(connector):
        assert get() == 200
        old = stored_token(world, conn.id)
        assert refresh_in_another_process(world, conn.id) == conn.token_version + 1
        new = stored_token(world, conn.id)
        assert new != old
        assert get() == 200
    assert sent == [f"Bearer {old}", f"Bearer {new}"]
    assert world.emu.stats.token_requests["refresh_token"] == 1  # the other process's, not another


@pytest.mark.parametrize("via", ["auth", "async auth", "request"])
def test_a_401_reads_the_store_before_refreshing(world: World, via: str) -> None:
    """The token another process refreshed between our read and our send is refused (401): the
    store is read again, its new token sent, and nothing is refreshed a second time."""
    conn = world.connect().connection
    base = world.emu.endpoints("sandbox").api_base_url
    sent: list[tuple[str, str]] = []
    answers = iter([401, 200])

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((str(request.url), request.headers.get("authorization", "")))
        status = next(answers)
        if status == 401:  # meanwhile, another process refreshed
            refresh_in_another_process(world, conn.id)
        return httpx.Response(status, json={})

    if via == "request":
        mocked = Connector(world.store, world.plugins, client=httpx.Client(transport=httpx.MockTransport(answer)))
        assert mocked.request(conn.id, "GET", PATH).status == 200
    elif via == "auth":
        with httpx.Client(auth=world.connector.auth(conn.id), transport=httpx.MockTransport(answer)) as client:
            assert client.get(base + PATH).status_code == 200
    else:

        async def run() -> int:
            transport = httpx.MockTransport(answer)
            async with httpx.AsyncClient(auth=world.connector.auth(conn.id), transport=transport) as client:
                return (await client.get(base + PATH)).status_code

        assert asyncio.run(run()) == 200
    old, new = sent[0][1], sent[1][1]
    assert [url for url, _ in sent] == [base + PATH] * 2  # no token request went out from here
    assert new == f"Bearer {stored_token(world, conn.id)}" and new != old
    assert world.emu.stats.token_requests["refresh_token"] == 1
    assert world.store.get_connection(conn.id).token_version == conn.token_version + 1


def test_a_due_refresh_is_not_skipped_for_a_kept_token(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = world.connect().connection
    assert world.connector.request(conn.id, "GET", PATH).status == 200
    old = stored_token(world, conn.id)
    monkeypatch.setattr(world.connector, "leeway", 10 * 3600)  # everything counts as expiring
    monkeypatch.setattr(connector_module, "LEEWAY_FRACTION", 100.0)
    assert world.connector.request(conn.id, "GET", PATH).status == 200
    assert world.emu.stats.token_requests["refresh_token"] == 1 and stored_token(world, conn.id) != old


def test_a_status_change_is_seen_at_the_next_request(world: World) -> None:
    conn = world.connect().connection
    assert world.connector.request(conn.id, "GET", PATH).status == 200
    before = len(world.lines("GET /"))
    world.store.set_status(conn.id, ConnectionStatus.NEEDS_RECONNECT, "withdrawn by a test")
    with pytest.raises(ReconnectRequired, match="withdrawn by a test"):
        world.connector.request(conn.id, "GET", PATH)
    assert len(world.lines("GET /")) == before  # nothing was sent


def test_a_changed_api_base_url_is_read_at_the_next_request(world: World) -> None:
    """The kept base URL and origin go when the profile changes (another process may change it)."""
    from connector_core import validate_profile

    conn = world.connect().connection
    base = world.emu.endpoints("sandbox").api_base_url
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={})

    connector = Connector(world.store, world.plugins, client=httpx.Client(transport=httpx.MockTransport(answer)))
    client = httpx.Client(auth=connector.auth(conn.id), transport=httpx.MockTransport(answer))
    with client, contextlib.closing(connector):
        assert connector.request(conn.id, "GET", PATH).status == 200
        assert client.get(base + PATH).status_code == 200
        moved = "http://127.0.0.1:9/moved"
        prof = world.store.get_profile(PROFILE)
        decl = world.plugins.declaration("hibob")
        draft = validate_profile(decl, name=PROFILE, previous=prof, endpoints={"api_base_url": moved})
        world.store.update_profile(PROFILE, draft)
        assert connector.request(conn.id, "GET", PATH).status == 200
        with pytest.raises(
            RequestFailed, match=r"token is sent only to http://127\.0\.0\.1:9; a request to .* refused"
        ):
            client.get(base + PATH)
        assert client.get(moved + PATH).status_code == 200
    assert seen == [base + PATH, base + PATH, moved + PATH, moved + PATH]


@pytest.mark.parametrize(
    "odd",
    ["/company\\named-lists", "/company/named-lists#part"],
    ids=["backslash", "fragment"],
)
def test_a_kept_token_takes_no_shortcut_past_the_endpoint_check(world: World, odd: str) -> None:
    """A URL on the API's origin with what the endpoint check refuses is refused, kept token or not."""
    conn = world.connect().connection
    base = world.emu.endpoints("sandbox").api_base_url
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    with httpx.Client(auth=world.connector.auth(conn.id), transport=httpx.MockTransport(answer)) as client:
        assert client.get(base + PATH).status_code == 200  # kept from here on
        with pytest.raises(ValidationError, match="refused before sending"):
            client.get(base + odd)
        with pytest.raises(ValidationError, match="user:password@"):
            client.get(base.replace("http://", "http://user:pw@", 1) + PATH)
    assert len(sent) == 1


def test_the_kept_signatures_are_bounded(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connector_module, "READY_CONNECTIONS", 2)
    ids = [world.connect(company=world.emu.add_company().id).connection.id for _ in range(3)]
    for cid in ids:
        assert world.connector.request(cid, "GET", PATH).status == 200
    assert list(world.connector._ready) == ids[1:]  # the oldest kept went first
    assert "access" not in repr(world.connector._ready[ids[2]]) and "Bearer" not in repr(world.connector)
