"""The store conformance suite (:mod:`connector_core.testing.store_conformance`), run
against SQLite and PostgreSQL: every public method of :class:`connector_core.store.StoreLike`
is held to one behaviour there; what only one engine can show (file modes, crash
safety, row locks across hosts) lives in test_store.py and test_pg_*.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connector_core import SessionStatus, StoreError
from connector_core.store import StoreLike
from connector_core.testing.store_conformance import (
    StoreConformance,
    StoreHarness,
    postgres_harness,
    session,
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

    def test_one_keeper_per_sqlite_store_many_per_postgresql_store(self, harness: StoreHarness) -> None:
        with harness.open().keeper_lock("keeper-a", ttl=30) as lock:
            assert lock.exclusive is (harness.kind == "sqlite")

    # ------------------------------------------------- a connect session's separate flag
    # (here until the shipped suite holds them: every store keeps a session's ``separate``.)

    def test_a_separate_session_keeps_its_flag_through_its_life(self, store: StoreLike) -> None:
        wanted = session(separate=True)
        made = store.create_session(wanted, "hash-1")
        assert made == wanted and made.separate
        assert store.create_session(session("sess_2"), "hash-2").separate is False  # the default
        assert store.get_session("sess_1") == made and store.find_session("hash-1") == made
        claimed = store.claim_session("hash-1", at=time.time())
        assert claimed.status is SessionStatus.USED and claimed.separate
        assert store.complete_session("sess_1", "conn_1").separate
        store.rotate_keys()  # resealed under the new key, the flag included
        assert [(s.id, s.separate) for s in store.list_sessions()] == [("sess_1", True), ("sess_2", False)]

    def test_a_flipped_separate_flag_is_refused_as_tampered(self, harness: StoreHarness, store: StoreLike) -> None:
        store.create_session(session(), "hash-1")
        store.create_session(session("sess_2", separate=True), "hash-2")
        select = "SELECT separate FROM connect_sessions WHERE id = ?"
        update = "UPDATE connect_sessions SET separate = ? WHERE id = ?"
        for session_id, forged in (("sess_1", 1), ("sess_1", 0), ("sess_2", None), ("sess_2", 0)):
            (row,) = harness.sql(store, select, (session_id,))
            harness.sql(store, update, (forged, session_id))
            with pytest.raises(StoreError, match=f"connect session {session_id} was changed outside") as caught:
                store.get_session(session_id)
            assert caught.value.code == "tampered"
            harness.sql(store, update, (*row, session_id))
            assert store.get_session(session_id).separate is (session_id == "sess_2")  # restored: readable
        # Nor does a forged flag start a flow.
        harness.sql(store, update, (1, "sess_1"))
        with pytest.raises(StoreError, match="changed outside"):
            store.claim_session("hash-1", at=time.time())
        assert store.claim_session("hash-2", at=time.time()).separate
