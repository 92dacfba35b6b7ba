"""Bulk refresh (``refresh_all``) against the emulator: one token call per connection, none
lost when some fail, and the store's work off the event loop, in batched transactions."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import World

from connector_core import Connector, refresh_all
from connector_core.connection import ConnectionStatus

PROFILE = "acme-sandbox"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, PROFILE) as w:
        yield w


def connect(world: World, count: int) -> list[tuple[str, str]]:
    """``count`` connections, each of a new company: (connection id, company id) of each."""
    made = []
    for _ in range(count):
        company = world.emu.add_company().id
        made.append((world.connect(company=company).connection.id, company))
    return made


def watch(store: Any, names: tuple[str, ...]) -> list[tuple[str, int, bool]]:
    """Record, for every call of the store's ``names``: (name, the calling thread, whether it
    ran inside a batched transaction). The store's own methods are wrapped on the instance."""
    calls: list[tuple[str, int, bool]] = []

    def wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            batch = getattr(getattr(store, "_local", None), "batch", None)
            calls.append((name, threading.get_ident(), batch is not None))
            return method(*args, **kwargs)

        return recorded

    for name in names:
        setattr(store, name, wrap(name, getattr(store, name)))
    return calls


STORE_CALLS = ("list_connections", "get_connection", "get_tokens", "profile_by_id", "_take_lease", "_save_refresh")


def test_one_token_call_per_connection_and_none_lost_when_some_fail(world: World) -> None:
    made = connect(world, 24)
    gone = {cid for cid, _ in made[::4]}  # their companies uninstall the app: those refreshes are refused
    for _, company in made[::4]:
        world.emu.uninstall(company)
    before = {c.id: c.token_version for c in world.store.list_connections()}
    report = refresh_all(world.connector, concurrency=8, force=True)
    assert world.emu.stats.token_requests["refresh_token"] == 24  # one each, the refused ones too
    assert report.refreshed == 18 and report.skipped == 0
    assert {cid for cid, _ in report.failed} == gone and all("reconnect" in why for _, why in report.failed)
    after = {c.id: c for c in world.store.list_connections()}
    for cid, _ in made:
        if cid in gone:
            assert after[cid].status is ConnectionStatus.NEEDS_RECONNECT and after[cid].token_version == before[cid]
        else:
            assert after[cid].status is ConnectionStatus.CONNECTED and after[cid].token_version == before[cid] + 1
    # Every saved rotation is the one the provider holds: a second run refreshes them all again
    # (and leaves the ones that need reconnecting alone).
    again = refresh_all(world.connector, concurrency=8, force=True)
    assert (again.refreshed, again.failed, again.skipped) == (18, (), 0)
    assert world.emu.stats.token_requests["refresh_token"] == 24 + 18


def test_store_work_runs_off_the_event_loop_in_batched_transactions(world: World) -> None:
    made = connect(world, 12)
    calls = watch(world.store, STORE_CALLS)
    loop_thread = threading.get_ident()  # refresh_all runs its event loop in the calling thread
    report = refresh_all(world.connector, concurrency=4, force=True)
    assert report.refreshed == 12 and world.emu.stats.token_requests["refresh_token"] == 12
    names = {name for name, _, _ in calls}
    assert {"list_connections", "_take_lease", "get_tokens", "profile_by_id", "_save_refresh"} <= names
    assert all(thread != loop_thread for _, thread, _ in calls)
    # Every lease and every save joined a batch's transaction (one commit for all the steps queued at once).
    assert all(batched for name, _, batched in calls if name in ("_take_lease", "_save_refresh"))
    assert len([name for name, _, _ in calls if name == "_save_refresh"]) == len(made)


def test_arefresh_runs_its_store_work_off_the_event_loop(world: World) -> None:
    ((cid, _),) = connect(world, 1)
    calls = watch(world.store, STORE_CALLS)

    async def run() -> tuple[int, int]:
        conn = await world.connector.arefresh(cid, force=True)
        await world.connector.aclose()
        return threading.get_ident(), conn.token_version

    loop_thread, version = asyncio.run(run())
    assert version == 1 and world.emu.stats.token_requests["refresh_token"] == 1
    assert {"get_connection", "_take_lease", "get_tokens", "_save_refresh"} <= {name for name, _, _ in calls}
    assert all(thread != loop_thread for _, thread, _ in calls)


def test_a_connector_given_an_async_client_refreshes_through_it(world: World) -> None:
    connect(world, 3)
    sent: list[str] = []

    async def hook(request: httpx.Request) -> None:
        sent.append(str(request.url))

    client = httpx.AsyncClient(trust_env=False, event_hooks={"request": [hook]})
    connector = Connector(world.store, world.plugins, async_client=client)
    report = refresh_all(connector, force=True)
    assert report.refreshed == 3 and len(sent) == 3 and all(url.endswith("/oauth2/token") for url in sent)


def test_connections_not_due_are_skipped_with_their_reason(world: World) -> None:
    connect(world, 3)
    report = refresh_all(world.connector)
    assert (report.refreshed, report.skipped, report.failed) == (0, 3, ())
    assert [why for why, _ in report.skipped_why] == ["not expiring within 60 s"]
    assert world.emu.stats.token_requests.get("refresh_token", 0) == 0


def test_a_bulk_run_reads_each_profile_again_once_it_is_a_second_old(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector_core import bulk

    ((cid, _),) = connect(world, 1)
    profile_id = world.store.get_connection(cid).profile_id
    reads = watch(world.store, ("profile_by_id",))
    contexts = bulk._Contexts(world.connector)
    first = contexts(profile_id)
    assert contexts(profile_id) is first and len(reads) == 1
    monkeypatch.setattr(bulk, "PROFILE_TTL", 0.0)
    assert contexts(profile_id) is not first and len(reads) == 2
    assert contexts(profile_id).client_id == first.client_id


def test_a_listing_that_fails_fails_the_run_with_its_own_error(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from connector_core import StoreError

    connect(world, 2)
    pages = iter([world.store.list_connections(limit=1)])

    def listing(**_: Any) -> Any:
        page = next(pages, None)
        if page is None:
            raise StoreError("database x: reading failed (disk I/O error)")
        return page

    monkeypatch.setattr(world.store, "list_connections", listing)
    with pytest.raises(StoreError, match="disk I/O error"):
        refresh_all(world.connector, concurrency=4, force=True)
    assert world.emu.stats.token_requests.get("refresh_token", 0) <= 1  # the first page's, at most
