"""``connector keeper``: ``--once`` for cron and its exit statuses, one-line errors, a second keeper
refused on SQLite, a clean stop on SIGTERM, and a keeper killed with SIGKILL mid-refresh that
leaves the next one nothing to repair."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Result, World, run_connector
from support.keeper import make_due

from connector_core import ConnectionStatus, Keeper

PROFILE = "acme-sandbox"
TOKEN = "POST /sandbox/oauth2/token "


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with World(tmp_path, PROFILE) as w:
        monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(w.key_file))  # the in-process CLI's store
        yield w


def env_of(world: World) -> dict[str, str]:
    """A subprocess's environment for the world's store, with the HiBob plugin only."""
    return {
        "CONNECTOR_HOME": str(world.home),
        "CONNECTOR_CORE_KEY_FILE": str(world.key_file),
        "CONNECTOR_CORE_PLUGINS": "hibob",
    }


def connect_due(world: World, count: int) -> list[str]:
    """``count`` connections (one company each) whose access tokens expire within the keeper's margin."""
    ids = [world.connect(company=world.emu.add_company().id).connection.id for _ in range(count)]
    make_due(world.store)
    return ids


#: ``connector keeper`` as the console script runs it, with a short refresh lease: a killed refresher's
#: lease would otherwise hold its connection for LEASE_TTL (30 s) before the next keeper may refresh it.
SHORT_LEASE = (
    "import sys; from connector_core import connector; connector.LEASE_TTL = 0.5; "
    "from connector_core.cli import main_exit; main_exit()"
)


def keeper_process(world: World, *args: str, short_lease: bool = False) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_"))}
    command = ["-c", SHORT_LEASE] if short_lease else ["-m", "connector_core"]
    return subprocess.Popen(
        [sys.executable, *command, "keeper", *args],
        env={**env, **env_of(world)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_once_refreshes_what_is_due_prints_one_line_and_exits_0(world: World, run_cli: Callable[..., Result]) -> None:
    (cid,) = connect_due(world, 1)
    done = run_cli(["--home", str(world.home), "keeper", "--once"])
    assert done.code == 0, done.err
    assert done.out.startswith("connector keeper: due 1, refreshed 1, skipped 0, transient 0, permanent 0, ")
    assert len(done.out.splitlines()) == 1 and done.err == ""
    assert world.store.get_connection(cid).token_version == 1
    again = run_cli(["--home", str(world.home), "keeper", "--once", "--json"])
    assert again.code == 0 and json.loads(again.out)["due"] == 0
    # A failing refresh still exits 0 (cron retries by itself), each failure on a line of its own.
    make_due(world.store, expires_in=60)
    world.emu.faults.status("token", 503, times=None)
    failing = run_cli(["--home", str(world.home), "keeper", "--once", "--json"])
    assert failing.code == 0
    data = json.loads(failing.out)
    assert data["transient"] == 1 and data["failures"][0]["connection"] == cid and "503" in data["failures"][0]["error"]
    assert "refresh failing (attempt 1" in failing.err  # logged on standard error


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--margin", "-1"], "argument --margin: expected at least 0 seconds, got '-1'"),
        (["--interval", "soon"], "argument --interval: expected a number of seconds, got 'soon'"),
        (["--refresh-every", "0"], "argument --refresh-every: expected at least 1/60 hours (a minute), got '0'"),
        (["--test-every", "nan"], "argument --test-every: expected at least 1/60 hours (a minute), got 'nan'"),
        (["--concurrency", "0"], "argument --concurrency: expected a whole number from 1 to 256, got '0'"),
        (["--margin"], "argument --margin: expected one argument"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("-") else None,
)
def test_bad_options_are_one_line_usage_errors(
    tmp_path: Path, run_cli: Callable[..., Result], args: list[str], named: str
) -> None:
    done = run_cli(["--home", str(tmp_path / "home"), "keeper", "--once", *args])
    assert done.code == 2 and done.out == ""
    assert done.err.startswith("connector: error: connector keeper: ") and named in done.err
    assert len(done.err.splitlines()) == 1 and "Traceback" not in done.err


def test_once_exits_1_in_one_line_when_the_store_is_unreachable(run_cli: Callable[..., Result]) -> None:
    done = run_cli(["--store-url", "postgresql://connector@127.0.0.1:1/none", "keeper", "--once"])
    assert done.code == 1 and done.out == ""
    assert done.err.startswith("connector: error: database postgresql://connector@127.0.0.1:1/none")
    assert len(done.err.splitlines()) == 1 and "Traceback" not in done.err


def test_a_running_keeper_refuses_a_second_and_stops_cleanly_on_sigterm(world: World) -> None:
    (cid,) = connect_due(world, 1)
    proc = keeper_process(world, "--interval", "0.2")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("connector keeper: due 1, refreshed 1, "), first
        second = run_connector(["keeper", "--once"], env=env_of(world))
        assert second.returncode == 1 and second.stdout == ""
        assert f"another keeper (pid {proc.pid} on " in second.stderr and len(second.stderr.splitlines()) == 1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "connector: keeper stopped" in err and "Traceback" not in err
    assert world.store.get_connection(cid).token_version == 1
    after = run_connector(["keeper", "--once"], env=env_of(world))  # its lock went with it
    assert after.returncode == 0 and after.stdout.startswith("connector keeper: due 0, "), after.stderr


def _settle(world: World) -> int:
    """Wait until the emulator has answered every token request it received; how many it answered 200."""
    deadline = time.monotonic() + 30
    last: tuple[int, int] | None = None
    while time.monotonic() < deadline:
        sample = (sum(world.emu.stats.token_requests.values()), len(world.lines(TOKEN)))
        if sample == last and sample[1] >= sample[0]:
            return sum(1 for line in world.lines(TOKEN) if line.endswith(" 200"))
        last = sample
        time.sleep(0.1)
    raise AssertionError(f"the emulator did not settle: {last}")


def test_a_keeper_killed_mid_refresh_leaves_nothing_to_repair(world: World) -> None:
    """SIGKILL while refreshes are in flight. The emulator rotates refresh tokens, so a refresh it
    answered after (or just before) the kill, whose reply the dead keeper never committed, loses that
    grant at the provider: at most one per refresh in flight, and it says so (``needs_reconnect``)
    at the next refresh. Everything else is as the next keeper needs it: the store intact, the dead
    keeper's lock and claims taken over at once, every committed rotation the live refresh token,
    each connection not yet refreshed refreshed now, once. (The dead keeper's refresh leases lapse
    after their ttl, shortened here from 30 s.)"""
    count, concurrency = 16, 4
    ids = connect_due(world, count)
    answered_before = _settle(world)
    world.emu.faults.slow("token", 0.25, times=None)  # each refresh in flight for a while
    proc = keeper_process(world, "--interval", "0.2", "--concurrency", str(concurrency), short_lease=True)
    try:
        deadline = time.monotonic() + 60
        while world.emu.stats.token_requests.get("refresh_token", 0) < concurrency + 2:  # mid-pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the keeper never started refreshing"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, err
    world.emu.faults.clear()
    rotated = _settle(world) - answered_before
    raw = sqlite3.connect(world.home / "connector.db")
    try:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        raw.close()
    committed = sum(world.store.get_connection(c).token_version for c in ids)
    lost = rotated - committed
    assert 0 < committed < count and 0 <= lost <= concurrency, (rotated, committed)

    report = Keeper(world.connector).run_once()  # a new keeper: the dead one's lock is taken over at once
    assert (report.refreshed, report.permanent, report.transient) == (count - committed - lost, lost, 0)
    statuses = [world.store.get_connection(c).status for c in ids]
    assert statuses.count(ConnectionStatus.NEEDS_RECONNECT) == lost
    for cid in ids:
        conn = world.store.get_connection(cid)
        state = world.store.keeper_state(cid)
        assert state is None or state.claimed_by is None  # no claim of the dead keeper is left
        if conn.status is ConnectionStatus.CONNECTED:
            assert conn.token_version == 1  # refreshed exactly once, by whichever keeper
            assert world.connector.request(cid, "GET", "/company/named-lists").status == 200
    print(f"\nkilled mid-refresh: {committed} committed, {lost} lost in flight, {report.refreshed} refreshed after")
