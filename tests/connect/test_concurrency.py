"""Concurrency: threads and processes using, refreshing, reconnecting and deleting the same and
different connections of one store. No duplicate refresh (the emulator counts them), no lost
update (every stored refresh token is the live one), no "database is locked" reaching anyone.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support import PLATFORM_REDIRECT, World, create_emulator_profile

from connector_core import Plugins, Store
from connector_core.connection import ConnectionStatus
from connector_core.connector import Connector
from connector_core.emulator import RunningEmulator, start_emulator
from connector_core.errors import ConnectorError

REDIRECT = PLATFORM_REDIRECT
PROFILE = "acme"


def add_profile(store: Store, plugins: Plugins, emu: RunningEmulator, name: str) -> None:
    create_emulator_profile(store, plugins, emu, name)


def start(plugins: Plugins) -> RunningEmulator:
    """A second emulator of HiBob, beside the world's own."""
    return start_emulator(plugins.declaration("hibob"), plugins.emulator_spec("hibob"), redirect_uris=[REDIRECT])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, PROFILE) as w:
        yield w


def consent(url: str, company: str) -> str:
    return World.consent(url, company=company)


def connect(world: World, company: str) -> str:
    return world.connect(company=company).connection.id


def reconnect(emu: RunningEmulator, connector: Connector, cid: str, company: str, profile: str = PROFILE) -> None:
    """HiBob's policy: uninstall in Bob, then authorize again; the connection keeps its id."""
    emu.uninstall(company)
    start = connector.begin_reconnect(cid, confirmed=True)
    again = connector.complete(consent(start.url, company), profile=profile).connection
    assert again.id == cid and again.status is ConnectionStatus.CONNECTED


def refreshes(world: World) -> int:
    return world.emu.stats.token_requests.get("refresh_token", 0)


class Gate(httpx.BaseTransport):
    """Holds the first refresh request until released: a refresher stuck in flight."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.arrived = threading.Event()
        self.release = threading.Event()
        self._held = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self._held and b"grant_type=refresh_token" in request.read():
            self._held = True
            self.arrived.set()
            assert self.release.wait(10)
        return self._inner.handle_request(request)


def _in_thread(action: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = action()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_refresh_outliving_its_lease_does_not_mark_a_healthy_connection(world: World) -> None:
    """Found by this suite: a refresher whose lease ran out (a long Retry-After wait is longer
    than the lease) sent its old refresh token after another process had rotated it, got
    invalid_grant, and marked the healthy connection needs_reconnect."""
    cid = connect(world, world.emu.default_company_id)
    gate = Gate()
    stuck = Connector(world.store, world.plugins, client=httpx.Client(transport=gate, trust_env=False))
    thread, outcome = _in_thread(lambda: stuck.refresh(cid, force=True))
    assert gate.arrived.wait(10)
    with world.store._write() as db:  # the stuck refresher's lease runs out
        db.execute("UPDATE connections SET lock_until = 0 WHERE id = ?", (cid,))
    fresh = world.connector.refresh(cid, force=True)  # another process takes over and rotates
    gate.release.set()
    thread.join(10)
    assert "error" not in outcome, outcome
    after = world.store.get_connection(cid)
    assert after.status is ConnectionStatus.CONNECTED and after.token_version == fresh.token_version
    assert world.connector.request(cid, "GET", "/company/named-lists").status == 200
    assert world.store.connection_events(cid)[-1].status is ConnectionStatus.CONNECTED


def test_stale_refresh_does_not_undo_a_reconnect(world: World) -> None:
    """A refresh in flight with the old grant's token must not mark the connection that a
    concurrent reconnect has just repaired."""
    company = world.emu.default_company_id
    cid = connect(world, company)
    gate = Gate()
    stuck = Connector(world.store, world.plugins, client=httpx.Client(transport=gate, trust_env=False))
    thread, outcome = _in_thread(lambda: stuck.refresh(cid, force=True))
    assert gate.arrived.wait(10)
    reconnect(world.emu, world.connector, cid, company)
    repaired = world.store.get_connection(cid)
    gate.release.set()
    thread.join(10)
    assert "error" not in outcome, outcome
    after = world.store.get_connection(cid)
    assert after.status is ConnectionStatus.CONNECTED and after.token_version == repaired.token_version
    assert world.connector.test(cid).ok


WORKER = textwrap.dedent(
    """
    import json, random, sys, time, traceback
    from connector_core import Store, load_plugins
    from connector_core.connector import Connector
    from connector_core.errors import ConnectorError
    from connector_hibob import plugin

    home, key_file, ids, seconds, seed = sys.argv[1:6]
    rng = random.Random(int(seed))
    store = Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": key_file})
    connector = Connector(store, load_plugins([plugin], entry_points=False))
    ids = ids.split(",")
    done, problems = 0, []
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        cid, op = rng.choice(ids), rng.choice(["request", "refresh", "force", "token", "read"])
        try:
            if op == "request":
                assert connector.request(cid, "GET", "/company/named-lists").status == 200
            elif op == "refresh":
                connector.refresh(cid)
            elif op == "force":
                connector.refresh(cid, force=True)
            elif op == "token":
                connector.access_token(cid)
            else:
                store.list_connections(), store.get_tokens(cid)
            done += 1
        except ConnectorError as exc:
            problems.append(f"{op} {cid}: {type(exc).__name__}: {exc}")
        except BaseException:
            problems.append(traceback.format_exc())
    print(json.dumps({"done": done, "problems": problems}), flush=True)
    """
)

STORM_SECONDS = 3.0


def test_storm_of_threads_and_processes(world: World) -> None:
    """Two busy connections used by 10 threads and 3 processes (requests, refreshes, forced
    refreshes, token reads) while their tokens keep expiring for everyone at once, and, in the
    same store, one connection reconnected over and over and others created and deleted
    (on a second emulator, so that the first one's refresh count is the busy connections')."""
    stable = [connect(world, world.emu.default_company_id), connect(world, world.emu.add_company().id)]
    versions = {cid: world.store.get_connection(cid).token_version for cid in stable}
    with start(world.plugins) as other:
        add_profile(world.store, world.plugins, other, "churn")
        churn_company, delete_company = other.default_company_id, other.add_company().id
        churn_connector = Connector(world.store, world.plugins)
        start_url = churn_connector.begin("churn").url
        churned = churn_connector.complete(consent(start_url, churn_company), profile="churn").connection.id
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    str(world.home),
                    str(world.key_file),
                    ",".join(stable),
                    "2.5",
                    str(seed),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for seed in range(3)
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        base_refreshes = refreshes(world)
        problems: list[str] = []
        stop = threading.Event()
        deleted: list[str] = []
        reconnects = [0]

        def guard(name: str, body: Callable[[], None], refusals_allowed: bool) -> None:
            while not stop.is_set():
                try:
                    body()
                except ConnectorError as exc:
                    if "locked" in str(exc) or not refusals_allowed:
                        problems.append(f"{name}: {type(exc).__name__}: {exc}")
                except BaseException:  # noqa: BLE001 - every unexpected exception fails the test
                    problems.append(f"{name}: {traceback.format_exc()}")

        def user(seed: int) -> Callable[[], None]:
            rng = random.Random(seed)
            connector = Connector(world.store, world.plugins)

            def body() -> None:
                cid = rng.choice(stable)
                op = rng.choice(["request", "refresh", "force", "token"])
                if op == "request":
                    assert connector.request(cid, "GET", "/company/named-lists").status == 200
                elif op == "refresh":
                    connector.refresh(cid)
                elif op == "force":
                    connector.refresh(cid, force=True)
                else:
                    connector.access_token(cid)

            return body

        def expirer() -> None:  # the busy connections' tokens expire for everyone at once
            with world.store._write() as db:
                db.execute(f"UPDATE connections SET expires_at = 0 WHERE id IN ({','.join('?' * len(stable))})", stable)
            time.sleep(0.1)

        def churn_user() -> None:  # uses the connections being reconnected and deleted: refusals are fine
            for cid in [churned, *deleted[-1:]]:
                churn_connector.request(cid, "GET", "/company/named-lists")

        def reconnector() -> None:
            reconnect(other, Connector(world.store, world.plugins), churned, churn_company, "churn")
            reconnects[0] += 1

        def deleter() -> None:
            connector = Connector(world.store, world.plugins)
            other.uninstall(delete_company)
            start_url = connector.begin("churn").url
            cid = connector.complete(consent(start_url, delete_company), profile="churn").connection.id
            deleted.append(cid)
            time.sleep(0.05)
            connector.delete(cid)

        threads = [threading.Thread(target=guard, args=(f"user{i}", user(i), False)) for i in range(10)]
        threads += [
            threading.Thread(target=guard, args=("expirer", expirer, False)),
            threading.Thread(target=guard, args=("reconnector", reconnector, False)),
            threading.Thread(target=guard, args=("deleter", deleter, False)),
            *(threading.Thread(target=guard, args=(f"churn{i}", churn_user, True)) for i in range(3)),
        ]
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for thread in threads:
            thread.start()
        time.sleep(STORM_SECONDS)
        stop.set()
        for thread in threads:
            thread.join(30)
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            report = json.loads(out.strip().splitlines()[-1])
            assert report["done"] > 0
            problems.extend(report["problems"])
        assert problems == []
        assert reconnects[0] > 0 and deleted
        churned_after = world.store.get_connection(churned)
        assert churned_after.status is ConnectionStatus.CONNECTED, churned_after.status_reason
        assert churn_connector.test(churned).ok
        # No duplicate refresh and no lost update: each refresh the provider saw for the busy
        # connections is exactly one stored token version, and every stored refresh token is live.
        bumps = sum(world.store.get_connection(cid).token_version - versions[cid] for cid in stable)
        assert bumps > 0 and refreshes(world) - base_refreshes == bumps
        for cid in stable:
            assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED
            assert world.connector.refresh(cid, force=True).status is ConnectionStatus.CONNECTED
        assert not {c.id for c in world.store.list_connections()} & set(deleted)
        assert world.store._connect().execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_no_duplicate_refresh_in_rounds(world: World) -> None:
    """Several rounds: the tokens of three connections expire for 24 threads at once; each
    round refreshes each connection exactly once."""
    companies = [world.emu.default_company_id] + [world.emu.add_company().id for _ in range(2)]
    ids = [connect(world, c) for c in companies]
    errors: list[BaseException] = []
    for round_number in range(4):
        with world.store._write() as db:
            db.execute(f"UPDATE connections SET expires_at = 0 WHERE id IN ({','.join('?' * len(ids))})", ids)
        before = refreshes(world)
        barrier = threading.Barrier(24)

        def hit(index: int, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                cid = ids[index % len(ids)]
                assert world.connector.request(cid, "GET", "/company/named-lists").status == 200
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=hit, args=(i,)) for i in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert refreshes(world) - before == len(ids), f"round {round_number}"
    assert [world.store.get_connection(c).token_version for c in ids] == [4, 4, 4]


OPENER = textwrap.dedent(
    """
    import sys
    from connector_core import Store, load_plugins, validate_profile
    from connector_hibob import plugin

    home, key_file, name, go = sys.argv[1:5]
    decl = load_plugins([plugin], entry_points=False).declaration("hibob")
    import os, time
    while not os.path.exists(go):
        time.sleep(0.002)
    store = Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": key_file})
    draft = validate_profile(
        decl, name=name, environment="sandbox",
        values={"app_id": "APP", "client_id": "id-" + name, "client_secret": "secret-" + name},
    )
    store.create_profile(draft)
    names = [p.name for p in store.list_profiles()]
    print(names.count(name), store.get_profile(name).secret("client_secret").reveal())
    """
)


def test_processes_create_one_store_at_once(tmp_path: Path) -> None:
    """Eight processes open a store that does not exist yet (schema, WAL switch, key file)
    and write to it at the same moment: all succeed, one key, every value readable."""
    home, key_file, go = tmp_path / "home", tmp_path / "keys.json", tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(home), str(key_file), f"p{i}", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(8)
    ]
    time.sleep(0.5)  # let them all reach the starting line
    go.touch()
    for index, proc in enumerate(procs):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.split() == ["1", f"secret-p{index}"]
        assert "locked" not in err
    store = Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": str(key_file)})
    assert [p.name for p in store.list_profiles()] == [f"p{i}" for i in range(8)]
    assert len(store.keyring.key_ids) == 1
    assert [store.get_profile(f"p{i}").secret("client_secret").reveal() for i in range(8)] == [
        f"secret-p{i}" for i in range(8)
    ]
    db = sqlite3.connect(home / "connector.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
