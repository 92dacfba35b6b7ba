"""The SQLite store's batched writes (one transaction, one commit, for many) and its lease
writes (not fsync'd): what a bulk refresh's group commit stands on."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import profile_draft

from connector_core import Store, StoreError
from connector_core.crypto import ENV_KEY_FILE
from connector_core.oauth import TokenSet
from connector_core.secret import Secret


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "home", env={ENV_KEY_FILE: str(tmp_path / "keys.json")}) as opened:
        yield opened


def tokens(n: int) -> TokenSet:
    return TokenSet(Secret(f"access-{n}"), "Bearer", Secret(f"refresh-{n}"), expires_at=time.time() + 3600)


def connections(store: Store, count: int) -> list[str]:
    profile = store.create_profile(profile_draft("acme"))
    return [
        store.save_connection(profile, tokens(0), requested=(), granted=(), identity={}, provider_initiated=False).id
        for _ in range(count)
    ]


def statements(store: Store) -> list[str]:
    """Every statement this thread's connection runs from now on."""
    seen: list[str] = []
    store._connect().set_trace_callback(seen.append)
    return seen


def refresh(store: Store, cid: str, n: int) -> None:
    version = store.get_connection(cid).token_version
    with store.refresh_lease(cid, 30.0) as lease:
        assert lease.held
        lease.save(version, tokens(n), ())


def test_a_batch_commits_its_leases_and_saves_once_and_nobody_sees_them_before(store: Store, tmp_path: Path) -> None:
    ids = connections(store, 5)
    other = Store.open(tmp_path / "home", env={ENV_KEY_FILE: str(tmp_path / "keys.json")})
    seen = statements(store)
    with store.batched() as sync:
        assert sync is None
        for cid in ids:
            refresh(store, cid, 1)
        assert store.get_tokens(ids[0])[2] == Secret("refresh-1")  # the batch reads its own writes
        assert {other.get_connection(cid).token_version for cid in ids} == {0}  # nobody else yet
    assert [s for s in seen if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert {other.get_connection(cid).token_version for cid in ids} == {1}
    assert all(other.get_tokens(cid)[2] == Secret("refresh-1") for cid in ids)


def test_a_write_that_fails_in_a_batch_rolls_back_alone(store: Store) -> None:
    first, second, third = connections(store, 3)
    with store.batched():
        refresh(store, first, 1)
        with store.refresh_lease(second, 30.0) as lease, pytest.raises(StoreError, match="changed during the refresh"):
            lease.save(7, tokens(1), ())  # not the version it has: refused
        refresh(store, third, 1)
    assert [store.get_connection(c).token_version for c in (first, second, third)] == [1, 0, 1]
    assert store.get_tokens(second)[2] == Secret("refresh-0")
    assert store._rows("SELECT lock_owner FROM connections WHERE id = ?", (second,)) == [(None,)]  # released


def test_an_error_out_of_the_block_rolls_the_whole_batch_back(store: Store) -> None:
    first, second = connections(store, 2)

    def dies() -> None:
        with store.batched():
            refresh(store, first, 1)
            refresh(store, second, 1)
            raise RuntimeError("the batch's runner died")

    with pytest.raises(RuntimeError):
        dies()
    assert [store.get_connection(c).token_version for c in (first, second)] == [0, 0]
    with store.batched():  # and the store writes again afterwards
        refresh(store, first, 2)
    assert store.get_connection(first).token_version == 1


def test_a_deferred_sync_batch_commits_without_fsync_and_its_sync_fsyncs_the_wal(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = connections(store, 2)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with store.batched(defer_sync=True) as batch:
        assert batch is not None
        assert store._rows("PRAGMA synchronous") == [(1,)]  # NORMAL: the commit writes the WAL, no fsync
        with store.refresh_lease(first, 30.0) as lease:
            assert lease.held and batch.durable_writes == 0  # a lease needs no sync
            lease.save(0, tokens(1), ())
        assert batch.durable_writes == 1  # a save does
        with store.refresh_lease(second, 30.0):
            pass  # taken and ended unused
        assert batch.durable_writes == 1
    assert store._rows("PRAGMA synchronous") == [(2,)]  # FULL again for every other write
    assert synced == []
    batch.sync()
    assert synced == [str(store.path) + "-wal"]


def test_lease_writes_outside_a_batch_are_not_fsynced_and_saves_are(store: Store) -> None:
    (cid,) = connections(store, 1)
    seen = statements(store)
    refresh(store, cid, 1)
    pragmas = [s for s in seen if s.startswith(("PRAGMA synchronous", "BEGIN", "COMMIT", "UPDATE connections"))]
    assert pragmas[:4] == ["PRAGMA synchronous = NORMAL", "BEGIN IMMEDIATE", pragmas[2], "COMMIT"]
    assert pragmas[2].startswith("UPDATE connections SET lock_owner")  # the lease, at NORMAL
    assert pragmas[4] == "PRAGMA synchronous = FULL"
    assert pragmas[5:8] == ["BEGIN IMMEDIATE", pragmas[6], "COMMIT"] and "token_version" in pragmas[6]  # the save
    assert store._rows("PRAGMA synchronous") == [(2,)]


def test_other_threads_writes_wait_for_the_batch(store: Store) -> None:
    first, second = connections(store, 2)
    order: list[str] = []
    started = threading.Event()

    def other() -> None:
        started.set()
        refresh(store, second, 1)
        order.append("other")

    with store.batched():
        refresh(store, first, 1)
        thread = threading.Thread(target=other)
        thread.start()
        started.wait()
        thread.join(0.2)  # it cannot write while the batch holds the write lock
        order.append("batch")
    thread.join()
    assert order == ["batch", "other"]
    assert [store.get_connection(c).token_version for c in (first, second)] == [1, 1]


def test_a_batch_nested_in_a_batch_joins_it(store: Store) -> None:
    (cid,) = connections(store, 1)
    seen = statements(store)
    with store.batched(), store.batched() as inner:
        assert inner is None
        refresh(store, cid, 1)
    assert [s for s in seen if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert store.get_connection(cid).token_version == 1
