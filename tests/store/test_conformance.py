"""The store conformance suite (:mod:`connector_core.testing.store_conformance`), run
against SQLite and PostgreSQL: every public method of :class:`connector_core.store.StoreLike`
is held to one behaviour there; what only one engine can show (file modes, crash
safety, row locks across hosts) lives in test_store.py and test_pg_*.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connector_core.testing.store_conformance import (
    StoreConformance,
    StoreHarness,
    postgres_harness,
    sqlite_harness,
)


class TestStoreConformance(StoreConformance):
    @pytest.fixture(params=["sqlite", "postgresql"])
    def store_harness(self, request: pytest.FixtureRequest, tmp_path: Path) -> StoreHarness:
        if request.param == "sqlite":
            return sqlite_harness(tmp_path)
        return postgres_harness(request.getfixturevalue("pg_url") + "&lock_timeout=0.2", tmp_path)

    def test_the_engine_refreshes_once_across_threads_and_handles(self, harness: StoreHarness) -> None:
        """Single-flight through :class:`Connector`: 24 threads over two store handles (two
        "processes") call with one expired connection; one refresh, every call succeeds."""
        from concurrent.futures import ThreadPoolExecutor

        from support.workload import REDIRECT, connect_many, make_profile

        from connector_core import load_plugins
        from connector_core.connector import Connector
        from connector_core.emulator import start_emulator
        from connector_hibob import plugin

        plugins = load_plugins([plugin], entry_points=False)
        first, second = harness.open(), harness.open()
        with start_emulator(
            plugins.declaration("hibob"), plugins.emulator_spec("hibob"), redirect_uris=[REDIRECT]
        ) as emu:
            make_profile(first, emu, plugins)
            connectors = [Connector(first, plugins), Connector(second, plugins)]
            (cid,) = connect_many(connectors[0], emu, 1)
            harness.sql(first, "UPDATE connections SET expires_at = 0 WHERE id = ?", (cid,))
            emu.advance_clock(emu.access_token_lifetime + 1)  # the server agrees: the old token is dead
            with ThreadPoolExecutor(24) as pool:
                statuses = list(
                    pool.map(lambda n: connectors[n % 2].request(cid, "GET", "/company/named-lists").status, range(24))
                )
            for connector in connectors:
                connector.close()
        assert statuses == [200] * 24
        assert emu.stats.token_requests["refresh_token"] == 1
        assert second.get_connection(cid).token_version == 1
