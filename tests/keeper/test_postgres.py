"""Two keepers, each with its own store handle, on one PostgreSQL store: N connections expiring
within the margin are each refreshed exactly once per expiry, with exactly one event per
transition, whether the keepers' claims split the work (``FOR UPDATE SKIP LOCKED``) or overlap
(one keeper's clock ahead, so the other's claims look lapsed to it: the engine's refresh lease
and the claimed token version are then the guard). The figures are printed; nothing about speed
is asserted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest
from support.keeper import make_due
from support.workload import REDIRECT, connect_many, make_profile

from connector_core import ConnectionStatus, Keeper, KeeperReport, Plugins, load_plugins
from connector_core.connector import Connector
from connector_core.emulator import RunningEmulator, start_emulator
from connector_core.events import EventType
from connector_core.keeper import CLAIM_TTL
from connector_core.store import PgStore


@attrs.define
class Setup:
    emu: RunningEmulator
    store: PgStore
    connector: Connector
    plugins: Plugins
    url: str
    env: dict[str, str]


@pytest.fixture
def setup(pg_url: str, tmp_path: Path) -> Iterator[Setup]:
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    env = {"CONNECTOR_CORE_KEY_FILE": str(tmp_path / "keys.json")}
    store = PgStore(pg_url, env=env)
    try:
        with start_emulator(
            plugins.declaration("hibob"), plugins.emulator_spec("hibob"), redirect_uris=[REDIRECT]
        ) as emu:
            connector = Connector(store, plugins)
            make_profile(store, emu, plugins)
            yield Setup(emu, store, connector, plugins, pg_url, env)
            connector.close()
    finally:
        store.close()


class Clock:
    def __init__(self, ahead: float = 0.0) -> None:
        self.ahead = ahead

    def __call__(self) -> float:
        return time.time() + self.ahead


def expire_all(setup: Setup) -> None:
    """Every access token expires within the keeper's margin (in a minute)."""
    make_due(setup.store, expires_in=60)


def refreshes_answered(emu: RunningEmulator) -> int:
    """Refresh requests the emulator answered 200 (those it failed on purpose excepted)."""
    return emu.stats.token_requests.get("refresh_token", 0) - emu.stats.faults_injected.get("status", 0)


def together(keepers: list[Keeper]) -> list[KeeperReport]:
    """One pass of each keeper, started at the same moment in threads of their own."""
    start = threading.Barrier(len(keepers))

    def one(keeper: Keeper) -> KeeperReport:
        start.wait()
        return keeper.run_once()

    with ThreadPoolExecutor(len(keepers)) as pool:
        return list(pool.map(one, keepers))


#: The engine's hold after a refresh whose reply was lost, shortened for these tests.
LOST_HOLD = 0.5


@pytest.fixture(autouse=True)
def _short_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    from connector_core import connector as connector_module

    monkeypatch.setattr(connector_module, "LOST_HOLD", LOST_HOLD)


def run(setup: Setup, count: int) -> None:
    ids = connect_many(setup.connector, setup.emu, count)
    setup.emu.reset_stats()
    handles = [PgStore(setup.url, env=setup.env) for _ in range(2)]  # as two hosts' keepers open it
    connectors = [Connector(store, setup.plugins) for store in handles]
    try:
        # Epoch 1: the keepers split the work; the provider fails 10 requests on the way (a 500, whose
        # refresh the engine does not send again at once: each is one failing connection).
        expire_all(setup)
        setup.emu.faults.status("token", 500, times=10)
        clock = Clock()
        keepers = [Keeper(c, owner=f"keeper-{n}", clock=clock) for n, c in enumerate(connectors)]
        started = time.monotonic()
        first = together(keepers)
        seconds = time.monotonic() - started
        failing = {cid for cid in ids if (s := setup.store.keeper_state(cid)) is not None and s.failures}
        assert len(failing) == 10
        assert sum(r.due for r in first) == count  # every connection claimed by exactly one keeper
        assert sum(r.refreshed for r in first) == count - len(failing) == refreshes_answered(setup.emu)
        assert sum(r.transient for r in first) == len(failing) and sum(r.skipped for r in first) == 0
        versions = {cid: setup.store.get_connection(cid).token_version for cid in ids}
        assert {cid for cid, v in versions.items() if v == 0} == failing
        assert all(v == 1 for cid, v in versions.items() if cid not in failing)
        events = setup.store.list_events(types=[EventType.REFRESH_FAILING])
        assert sorted(e.connection_id or "" for e in events) == sorted(failing)  # one per degradation
        # The provider is back; the failing ones' retry time comes: refreshed once each, one recovery each.
        setup.emu.faults.clear()
        time.sleep(LOST_HOLD + 0.1)  # the engine's hold after a lost reply (shortened here) passes
        clock.ahead = 31.0  # past the first retry's backoff
        retry = together(keepers)
        assert sum(r.refreshed for r in retry) == sum(r.recovered for r in retry) == len(failing)
        assert [setup.store.get_connection(cid).token_version for cid in ids] == [1] * count
        recovered = setup.store.list_events(types=[EventType.RECOVERED])
        assert sorted(e.connection_id or "" for e in recovered) == sorted(failing)
        assert refreshes_answered(setup.emu) == count

        # Epoch 2: claims overlap (keeper-1's clock is ahead: keeper-0's claims look lapsed to it),
        # the more so as each refresh takes a while.
        expire_all(setup)
        setup.emu.faults.slow("token", 0.02, times=None)
        before = refreshes_answered(setup.emu)
        overlapping = [
            Keeper(connectors[0], owner="keeper-0"),
            Keeper(connectors[1], owner="keeper-1", clock=Clock(CLAIM_TTL + 1)),
        ]
        second = together(overlapping)
        assert sum(r.refreshed for r in second) == count == refreshes_answered(setup.emu) - before
        assert sum(r.refreshed + r.skipped for r in second) == sum(r.due for r in second)  # claimed twice: skipped
        assert [setup.store.get_connection(cid).token_version for cid in ids] == [2] * count
        assert [c.status for c in setup.store.list_connections()] == [ConnectionStatus.CONNECTED] * count
        assert len(setup.store.list_events(types=[EventType.REFRESH_FAILING])) == len(failing)  # none new
        assert setup.connector.request(ids[-1], "GET", "/company/named-lists").status == 200
    finally:
        for connector in connectors:
            connector.close()
        for store in handles:
            store.close()
    print(
        f"\n{count} expiring connections, 2 keepers: {[r.refreshed for r in first]} refreshed in "
        f"{seconds:.2f} s ({(count - len(failing)) / seconds:.0f}/s), {len(failing)} failing then recovered; "
        f"overlapping claims: {[r.due for r in second]} claimed, {[r.refreshed for r in second]} refreshed, "
        f"{[r.skipped for r in second]} skipped"
    )


def test_two_keepers_refresh_100_expiring_connections_once_each(setup: Setup) -> None:
    run(setup, 100)


@pytest.mark.slow
def test_two_keepers_refresh_1000_expiring_connections_once_each(setup: Setup) -> None:
    run(setup, 1000)
