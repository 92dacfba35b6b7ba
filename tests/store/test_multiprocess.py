"""Many workers, one truth: W processes share N expiring connections on PostgreSQL.

Every connection is refreshed exactly once per expiry, whichever worker gets to it
first; no call fails for auth reasons; nothing is lost. The figures (refreshes per
second, lock waits) are printed; nothing about speed is asserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from support.workload import connect_many, expire_all, make_profile, refresh_count, start_workers

from connector_core import Plugins, load_plugins, refresh_all
from connector_core.connection import ConnectionStatus
from connector_core.connector import Connector
from connector_core.emulator import RunningEmulator, start_emulator
from connector_core.store import PgStore

REDIRECT = "https://platform.example/connect/oauth2/hibob/callback"


@attrs.define
class Setup:
    emu: RunningEmulator
    store: PgStore
    connector: Connector
    plugins: Plugins
    url: str
    key_file: Path


@pytest.fixture
def setup(pg_url: str, tmp_path: Path) -> Iterator[Setup]:
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    key_file = tmp_path / "keys.json"
    store = PgStore(pg_url, env={"CONNECTOR_CORE_KEY_FILE": str(key_file)})
    try:
        with start_emulator(
            plugins.declaration("hibob"), plugins.emulator_spec("hibob"), redirect_uris=[REDIRECT]
        ) as emu:
            connector = Connector(store, plugins)
            make_profile(store, emu, plugins)
            yield Setup(emu, store, connector, plugins, pg_url, key_file)
            connector.close()
    finally:
        store.close()


def run(
    setup: Setup, tmp_path: Path, *, connections: int, workers: int, threads: int, epochs: int, passes: int
) -> None:
    ids = connect_many(setup.connector, setup.emu, connections)
    assert len(set(ids)) == connections
    setup.emu.reset_stats()
    figures = []
    with start_workers(setup.url, setup.key_file, ids, workers=workers, threads=threads, tmp=tmp_path) as group:
        for epoch in range(1, epochs + 1):
            expire_all(setup.store, setup.emu)
            result = group.run_epoch(epoch, passes, refresh_count=lambda: refresh_count(setup.emu))
            # No call failed, and none for auth reasons.
            assert result.errors == () and result.auth_failures == 0
            assert result.statuses == {200: connections * workers * passes}
            # Exactly one refresh per connection for this expiry, and exactly one store write each.
            assert result.refreshes == connections
            assert result.lock["saved"] == connections
            assert result.lock["acquired"] == result.lock["saved"] + result.lock["released_unused"]
            versions = [c.token_version for c in setup.store.list_connections()]
            assert versions == [epoch] * connections
            figures.append(result)
    # Nothing lost: every connection is still there, usable, with the latest refresh token
    # (a forced refresh with each succeeds; a stale one would be refused with invalid_grant).
    assert [c.status for c in setup.store.list_connections()] == [ConnectionStatus.CONNECTED] * connections
    final = refresh_all(setup.connector, concurrency=16, force=True)
    assert (final.refreshed, final.failed) == (connections, ())
    assert setup.emu.stats.token_requests["refresh_token"] == connections * (epochs + 1)
    for n, result in enumerate(figures, 1):
        print(
            f"\nepoch {n}: {connections} connections x {workers} workers x {passes} passes: "
            f"{result.requests} calls in {result.seconds:.2f} s ({result.requests / result.seconds:.0f}/s); "
            f"{result.refreshes} refreshes in the first pass, {result.first_pass_seconds:.2f} s "
            f"({result.refreshes / result.first_pass_seconds:.0f} refreshes/s); lock {result.lock}"
        )


def test_8_workers_share_100_expiring_connections(setup: Setup, tmp_path: Path) -> None:
    # Every worker still meets every connection expired, twice: 800 races for 100 refreshes per
    # expiry. The slow tier runs the same on 1,000.
    run(setup, tmp_path, connections=100, workers=8, threads=4, epochs=2, passes=2)


@pytest.mark.slow
def test_8_workers_share_1000_expiring_connections(setup: Setup, tmp_path: Path) -> None:
    run(setup, tmp_path, connections=1000, workers=8, threads=4, epochs=3, passes=2)
