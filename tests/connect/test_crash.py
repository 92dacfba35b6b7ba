"""Crash safety: SIGKILL a process at random points of refreshes that rotate the refresh token.

A subprocess loops ``refresh(force=True)`` against an emulator running in this process; the
store is shared on disk. After each kill: the store opens, ``PRAGMA integrity_check`` is ok,
and the connection refreshes again, with the rotated refresh token if it was committed, else
with the old one if the provider never acted on the request. The emulator rotates refresh
tokens, so a kill after it rotated but before our commit loses the grant: then, and only then,
the next refresh says ``needs_reconnect`` (invalid_grant), never a crash or a damaged store.

The default tier kills 10 times; the ``slow`` tier 200 times. Both print the outcome counts.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import World

from connector_core import Store
from connector_core.connection import ConnectionStatus
from connector_core.connector import Connector, ReconnectRequired

PROFILE = "acme"
TOKEN_PATH = "/sandbox/oauth2/token"

WORKER = textwrap.dedent(
    """
    import sys
    from connector_core import Store, load_plugins
    from connector_core import connector as connector_module
    from connector_core.connector import Connector
    from connector_hibob import plugin

    # A killed refresher leaves its lease behind; keep it short so the next refresher need not wait 30 s.
    connector_module.LEASE_TTL = 0.2
    home, key_file, cid = sys.argv[1:4]
    store = Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": key_file})
    connector = Connector(store, load_plugins([plugin], entry_points=False))
    connector.client, store.get_tokens(cid)  # warm up: the HTTP client, the keys, the imports
    from oauthlib.oauth2.rfc6749 import parameters  # noqa: F401
    print("ready", flush=True)
    while True:
        connector.refresh(cid, force=True)
    """
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, PROFILE) as w:
        yield w


def token_lines(world: World) -> list[str]:
    return world.lines(f"POST {TOKEN_PATH} ")


def quiesce(world: World) -> None:
    """Wait until the emulator has answered every token request it received."""
    deadline = time.monotonic() + 10
    last: tuple[int, int] | None = None
    while time.monotonic() < deadline:
        # Every grant's requests (the code exchanges of reconnects too), as every token line counts:
        # comparing refreshes alone with all lines could settle while a rotation is still being answered.
        sample = (sum(world.emu.stats.token_requests.values()), len(token_lines(world)))
        if sample == last and sample[1] >= sample[0]:
            return
        last = sample
        time.sleep(0.03)
    raise AssertionError(f"the emulator did not settle: {last}")


def reopen_and_check(world: World) -> Store:
    """The store opens after the kill, and SQLite finds it intact."""
    store = Store.open(world.home, env={"CONNECTOR_CORE_KEY_FILE": str(world.key_file)})
    raw = sqlite3.connect(world.home / "connector.db")
    try:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        raw.close()
    return store


def kill_loop(world: World, kills: int, seed: int) -> Counter[str]:
    """Kill a refreshing subprocess ``kills`` times; return how each kill ended."""
    rng = random.Random(seed)
    start = world.connector.begin(PROFILE)
    cid = world.connector.complete(world.consent(start.url), profile=PROFILE).connection.id
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    outcomes: Counter[str] = Counter()
    for _ in range(kills):
        version = world.store.get_connection(cid).token_version
        answered = sum(1 for line in token_lines(world) if line.endswith(" 200"))
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(world.home), str(world.key_file), cid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr
        time.sleep(rng.uniform(0.0, 0.08))  # a random point of some refresh
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err  # it died by the kill, not of an error
        quiesce(world)
        store = reopen_and_check(world)
        rotated = sum(1 for line in token_lines(world) if line.endswith(" 200")) - answered
        committed = store.get_connection(cid).token_version - version
        connector = Connector(store, world.plugins)
        if rotated == committed:
            # Every rotation the provider made is stored: the stored refresh token is the live one.
            conn = connector.refresh(cid, force=True)
            assert conn.status is ConnectionStatus.CONNECTED
            outcomes["new token committed" if committed else "old token kept (nothing rotated)"] += 1
        else:
            # The provider rotated, the process died before committing: the grant is lost, and says so.
            assert rotated == committed + 1, (rotated, committed)
            with pytest.raises(ReconnectRequired, match="needs reconnecting"):
                connector.refresh(cid, force=True)
            assert store.get_connection(cid).status is ConnectionStatus.NEEDS_RECONNECT
            outcomes["lost before commit: needs_reconnect"] += 1
            world.emu.uninstall()
            again = connector.begin_reconnect(cid, confirmed=True)
            connector.complete(world.consent(again.url), profile=PROFILE)
        connector.close()
        store.close()
        assert world.connector.request(cid, "GET", "/company/named-lists").status == 200
    print(f"\ncrash safety, {kills} kills: {dict(outcomes)}")
    return outcomes


def test_sigkill_during_rotating_refresh(world: World) -> None:
    outcomes = kill_loop(world, 10, seed=1)
    assert sum(outcomes.values()) == 10


@pytest.mark.slow
def test_sigkill_during_rotating_refresh_200_times(world: World) -> None:
    outcomes = kill_loop(world, 200, seed=2)
    assert sum(outcomes.values()) == 200
    # 200 random kills land both before and after commits: each documented outcome is seen.
    assert outcomes["new token committed"] > 0 and outcomes["lost before commit: needs_reconnect"] > 0
