"""The keeper against the HiBob emulator on a SQLite store: what it refreshes (near expiry, idle past
a refresh token's limit, never credentials), how it classifies failures (transient: one
``refresh_failing`` event per degradation and one ``recovered``; permanent: ``needs_reconnect``),
scheduled tests, and one keeper per SQLite store."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import pytest
from support import World, hibob
from support.keeper import make_due

from connector_core import ConnectionStatus, Keeper, KeeperReport, StoreError, hookimpl, load_plugins
from connector_core import connector as connector_module
from connector_core.events import EventType
from connector_core.keeper import RETRY_MAX
from connector_core.models import AuthType, OAuth2AuthorizationCode

PROFILE = "acme-sandbox"
TOKEN = "POST /sandbox/oauth2/token "


class Clock:
    """The keeper's clock, moved by the test (the emulator and the engine keep real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, PROFILE) as w:
        yield w


def connect(world: World) -> str:
    """A new connection, each to another emulated company."""
    return world.connect(company=world.emu.add_company().id).connection.id


def expires_in(world: World, cid: str, seconds: float) -> None:
    with world.store._write() as tx:
        tx.execute("UPDATE connections SET expires_at = ? WHERE id = ?", (time.time() + seconds, cid))


def refreshes(world: World) -> int:
    return world.emu.stats.token_requests.get("refresh_token", 0)


def versions(world: World, *ids: str) -> list[int]:
    return [world.store.get_connection(cid).token_version for cid in ids]


def counts(report: KeeperReport, *names: str) -> tuple[int, ...]:
    return tuple(getattr(report, name) for name in names)


def test_a_connection_near_expiry_is_refreshed_one_far_from_it_is_not_credentials_never(world: World) -> None:
    near, far = connect(world), connect(world)
    credentials = world.connect_credentials("service_user").connection.id
    make_due(world.store, [near])  # within the 300 s margin
    told: list[str] = []
    keeper = Keeper(world.connector, on_refresh=told.append)
    report = keeper.run_once()
    assert counts(report, "due", "refreshed", "skipped", "transient", "permanent") == (1, 1, 0, 0, 0)
    assert told == ["ok"] and report.lag is not None and report.failures == ()
    assert versions(world, near, far, credentials) == [1, 0, 0] and refreshes(world) == 1
    assert world.connector.request(near, "GET", "/company/named-lists").status == 200  # the new token works
    assert keeper.run_once().due == 0  # nothing is due any more
    # Two hours on, told to refresh every hour: both OAuth connections, never the one holding credentials.
    clock = Clock()
    clock.advance(7200)
    every_hour = Keeper(world.connector, refresh_every=3600, clock=clock).run_once()
    assert counts(every_hour, "due", "refreshed") == (2, 2)
    assert versions(world, near, far, credentials) == [2, 1, 0]
    assert world.store.keeper_state(credentials) is None  # never even claimed
    assert "due 2, refreshed 2, skipped 0, transient 0, permanent 0, tested 0, recovered 0 in " in every_hour.summary()


def test_a_short_lived_token_is_refreshed_with_half_its_life_left_not_on_every_pass(world: World) -> None:
    cid = connect(world)
    expires_in(world, cid, 120)  # issued a moment ago, living two minutes: less than twice the margin
    clock = Clock()
    assert Keeper(world.connector, clock=clock).run_once().due == 0  # 300 s would make it due on every pass
    clock.advance(61)  # under a minute left: half its life
    assert counts(Keeper(world.connector, clock=clock).run_once(), "due", "refreshed") == (1, 1)


class IdleLimit:
    """HiBob's declaration, but with refresh tokens that die after a day unused."""

    @hookimpl(tryfirst=True)
    def connector_core_auth_types(self, provider_key: str) -> Sequence[AuthType] | None:
        from connector_hibob.declarations import auth_types

        if provider_key != "hibob":
            return None
        return tuple(
            attrs.evolve(a, refresh_idle_limit=86400) if isinstance(a, OAuth2AuthorizationCode) else a
            for a in auth_types()
        )


def test_a_declared_idle_limit_refreshes_after_half_of_it_and_refresh_every_overrides_it(tmp_path: Path) -> None:
    from connector_hibob import plugin

    with World(tmp_path, PROFILE, plugins=load_plugins([plugin, IdleLimit()], entry_points=False)) as world:
        cid = connect(world)
        expires_in(world, cid, 30 * 86400)  # a long-lived access token: only disuse makes it due
        clock = Clock()
        clock.advance(11 * 3600)
        assert Keeper(world.connector, clock=clock).run_once().due == 0  # 11 h: under half a day
        assert Keeper(world.connector, clock=clock, refresh_every=10 * 3600).run_once().refreshed == 1  # overridden
        expires_in(world, cid, 30 * 86400)
        clock.advance(13 * 3600)  # a day after that refresh (it happened now, in real time)
        assert Keeper(world.connector, clock=clock, refresh_every=30 * 3600).run_once().due == 0
        idle = Keeper(world.connector, clock=clock).run_once()
        assert counts(idle, "due", "refreshed") == (1, 1) and idle.lag is not None and idle.lag >= 11 * 3600
        assert versions(world, cid) == [2]
    # HiBob itself declares nothing (unconfirmed): without --refresh-every, disuse makes nothing due.
    assert next(a for a in hibob().declaration("hibob").auth_types if a.key == "oauth2").refresh_idle_limit is None


def test_transient_failures_are_one_refresh_failing_event_then_one_recovered(world: World) -> None:
    cid = connect(world)
    make_due(world.store, [cid])
    clock = Clock()
    told: list[str] = []
    keeper = Keeper(world.connector, clock=clock, on_refresh=told.append)
    world.emu.faults.status("token", 503, times=None)  # the provider is down
    first = keeper.run_once()
    assert counts(first, "due", "refreshed", "transient") == (1, 0, 1)
    assert first.failures[0][0] == cid and "503" in first.failures[0][1]
    state = world.store.keeper_state(cid)
    assert state is not None and state.failures == 1 and state.next_attempt_at is not None
    assert clock.now + 0.5 * 30 <= state.next_attempt_at <= clock.now + 30  # the first backoff, with jitter
    assert keeper.run_once().due == 0  # backing off: not tried again before its time
    clock.advance(RETRY_MAX)
    second = keeper.run_once()
    assert counts(second, "due", "transient") == (1, 1)
    (failing,) = world.store.list_events(types=[EventType.REFRESH_FAILING])  # one, for two failing passes
    details = failing.data["details"]
    assert details["attempt"] == 1 and "503" in details["error"] and details["next_attempt_at"]
    assert details["expires_at"] and failing.data["connection"]["id"] == cid
    assert world.store.keeper_state(cid).failures == 2  # type: ignore[union-attr]
    world.emu.faults.clear()  # the provider is back
    clock.advance(RETRY_MAX * 2)
    third = keeper.run_once()
    assert counts(third, "due", "refreshed", "recovered", "transient") == (1, 1, 1, 0)
    (recovered,) = world.store.list_events(types=[EventType.RECOVERED])
    assert recovered.data["details"] == {"attempts": 2, "degraded_since": state.degraded_since}
    assert told == ["transient", "transient", "ok"]
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED and versions(world, cid) == [1]
    assert world.connector.request(cid, "GET", "/company/named-lists").status == 200
    everything = str([e.payload() for e in world.store.list_events()])
    _, access, refresh = world.store.get_tokens(cid)
    assert access is not None and refresh is not None
    assert access.reveal() not in everything and refresh.reveal() not in everything


def test_a_lost_reply_is_transient_and_then_recovers(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # After a refresh whose reply was lost the engine sends none for LOST_HOLD seconds; shortened here.
    monkeypatch.setattr(connector_module, "LOST_HOLD", 0.3)
    cid = connect(world)
    make_due(world.store, [cid])
    clock = Clock()
    keeper = Keeper(world.connector, clock=clock)
    world.emu.faults.drop_connection("token")  # dropped before the emulator acted on it: nothing rotated
    assert counts(keeper.run_once(), "due", "transient") == (1, 1)
    time.sleep(0.4)  # past the engine's hold (a wait, not a timing assertion)
    clock.advance(RETRY_MAX)
    report = keeper.run_once()
    assert counts(report, "refreshed", "recovered") == (1, 1)
    assert [e.type for e in world.store.list_events(connection_id=cid)][-2:] == [
        EventType.REFRESH_FAILING,
        EventType.RECOVERED,
    ]


def test_a_revoked_grant_is_permanent_needs_reconnect(world: World) -> None:
    cid = connect(world)
    make_due(world.store, [cid])
    company = world.store.get_connection(cid).identity[0][1]
    world.emu.uninstall(company)  # the customer removed the app: its refresh token is dead
    told: list[str] = []
    keeper = Keeper(world.connector, on_refresh=told.append)
    report = keeper.run_once()
    assert counts(report, "due", "refreshed", "transient", "permanent") == (1, 0, 0, 1)
    assert told == ["permanent"] and "needs reconnecting" in report.failures[0][1]
    conn = world.store.get_connection(cid)
    assert conn.status is ConnectionStatus.NEEDS_RECONNECT and "refresh refused" in (conn.status_reason or "")
    assert world.store.keeper_state(cid) is None  # forgotten: its own status event tells
    (needs,) = world.store.list_events(types=[EventType.NEEDS_RECONNECT])
    assert needs.connection_id == cid
    assert world.store.list_events(types=[EventType.REFRESH_FAILING]) == ()
    assert keeper.run_once().due == 0  # not the keeper's any more


def test_a_failing_connection_refreshed_by_a_request_recovers_without_the_keeper_refreshing(world: World) -> None:
    cid = connect(world)
    make_due(world.store, [cid])
    clock = Clock()
    keeper = Keeper(world.connector, clock=clock)
    world.emu.faults.status("token", 503, times=None)
    assert keeper.run_once().transient == 1
    world.emu.faults.clear()
    world.connector.refresh(cid, force=True)  # a request's refresh, while the keeper backs off
    before = refreshes(world)
    report = keeper.run_once()  # its retry time has not come: it sees the new tokens
    assert counts(report, "due", "refreshed", "recovered") == (0, 0, 1) and refreshes(world) == before
    assert len(world.store.list_events(types=[EventType.RECOVERED])) == 1


def test_scheduled_tests_run_once_per_interval_and_find_revoked_credentials(world: World) -> None:
    oauth = connect(world)
    issued = world.emu.issue_credentials("service_user")
    credentials = world.connector.connect(world.credential_profile("service_user"), dict(issued)).connection.id
    expires_in(world, oauth, 30 * 86400)
    clock = Clock()
    clock.advance(7200)
    keeper = Keeper(world.connector, test_every=3600, clock=clock)
    first = keeper.run_once()
    assert counts(first, "due", "tested", "refreshed", "permanent") == (0, 2, 0, 0) and first.failures == ()
    assert all(world.store.keeper_state(c).tested_at for c in (oauth, credentials))  # type: ignore[union-attr]
    assert keeper.run_once().tested == 0  # tested within the hour
    world.emu.revoke_credentials("service_user", issued["service_user_id"])
    clock.advance(7200)
    later = keeper.run_once()
    assert counts(later, "tested", "permanent") == (2, 1)
    assert world.store.get_connection(credentials).status is ConnectionStatus.NEEDS_RECONNECT
    assert world.store.get_connection(oauth).status is ConnectionStatus.CONNECTED


def test_one_keeper_per_sqlite_store(world: World) -> None:
    cid = connect(world)
    make_due(world.store, [cid])
    first, second = Keeper(world.connector, owner="first"), Keeper(world.connector, owner="second")
    with first:
        with pytest.raises(StoreError, match=r"another keeper \(pid \d+ on .+\) holds this store's keeper lock") as no:
            second.run_once()
        assert no.value.code == "keeper_running" and "\n" not in no.value.message
        assert first.run_once().refreshed == 1  # the holder runs passes as it likes
    make_due(world.store, [cid])
    assert second.run_once().refreshed == 1  # the first one stopped: the second starts


def test_a_dead_keepers_lock_is_taken_over_at_once(world: World) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    with world.store._write() as tx:  # as a keeper killed with SIGKILL on this host left it
        tx.execute(
            "INSERT INTO keeper_locks (name, owner, host, pid, started_at, heartbeat_until) VALUES (?,?,?,?,?,?)",
            ("keeper", "killed", socket.gethostname(), dead.pid, "2026-01-01T00:00:00+00:00", time.time() + 3600),
        )
    assert Keeper(world.connector).run_once().due == 0  # taken over: no wait for the heartbeat to lapse


def test_run_loops_until_stopped_and_reports_each_pass(world: World) -> None:
    cid = connect(world)
    make_due(world.store, [cid])
    keeper = Keeper(world.connector)
    stop = threading.Event()
    reports: list[KeeperReport] = []

    def report(r: KeeperReport) -> None:
        reports.append(r)
        if len(reports) == 3:
            stop.set()

    thread = threading.Thread(target=keeper.run, args=(stop, 0.05), kwargs={"on_report": report})
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert [r.refreshed for r in reports] == [1, 0, 0]
    assert Keeper(world.connector).run_once().due == 0  # its lock was released at the end
