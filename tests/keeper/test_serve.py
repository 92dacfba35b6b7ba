"""The keeper inside ``connector serve``: on by default (it refreshes what is due, and holds the
SQLite store's keeper lock while the service runs), off with ``--no-keeper``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import World, run_connector
from support.keeper import make_due

from connector_core.testing import free_port, http_client

KEY = "keeper-serve-api-key-0123456789abcdef"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, "acme-sandbox") as w:
        yield w


def env_of(world: World) -> dict[str, str]:
    return {
        "CONNECTOR_HOME": str(world.home),
        "CONNECTOR_CORE_KEY_FILE": str(world.key_file),
        "CONNECTOR_CORE_PLUGINS": "hibob",
    }


def serve(world: World, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector_core", "serve", "--port", str(port), *args],
        env={**env, **env_of(world), "CONNECTOR_SERVE_API_KEYS": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    with http_client(timeout=2) as client:
        for _ in range(300):  # a bound on tries, not a timing assertion
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if client.get(f"{base}/healthz").status_code == 200:
                    return proc, base
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise AssertionError("connector serve never answered")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def test_serve_runs_the_keeper_unless_told_not_to(world: World) -> None:
    cid = world.connect().connection.id
    make_due(world.store)
    proc, _ = serve(world, "--keeper-interval", "0.2")
    try:
        for _ in range(300):  # until the service's keeper has refreshed it (a bound on tries)
            if world.store.get_connection(cid).token_version == 1:
                break
            time.sleep(0.1)
        assert world.store.get_connection(cid).token_version == 1
        refused = run_connector(["keeper", "--once"], env=env_of(world))  # the service's keeper holds the lock
        assert refused.returncode == 1 and f"another keeper (pid {proc.pid} on " in refused.stderr
    finally:
        err = stop(proc)
    assert "connector: serve stopped" in err and "Traceback" not in err

    proc, _ = serve(world, "--no-keeper")
    try:
        alone = run_connector(["keeper", "--once"], env=env_of(world))  # no keeper in the service
        assert alone.returncode == 0 and alone.stdout.startswith("connector keeper: due 0, "), alone.stderr
    finally:
        stop(proc)


def test_serve_refuses_a_bad_keeper_option_in_one_line(world: World) -> None:
    done = run_connector(["serve", "--keeper-margin", "-5"], env={**env_of(world), "CONNECTOR_SERVE_API_KEYS": KEY})
    assert done.returncode == 2 and "argument --keeper-margin: expected at least 0 seconds" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_the_services_keeper_waits_for_another_keeper_then_takes_over(world: World) -> None:
    cid = world.connect().connection.id
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_"))}
    alone = subprocess.Popen(
        [sys.executable, "-m", "connector_core", "keeper", "--interval", "0.2"],
        env={**env, **env_of(world)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert alone.stdout is not None and alone.stdout.readline().startswith("connector keeper: ")  # it runs
        proc, _ = serve(world, "--keeper-interval", "0.2")
        try:
            stop(alone)  # the other keeper stops: the service's takes the store over
            make_due(world.store)
            for _ in range(300):  # a bound on tries
                if world.store.get_connection(cid).token_version == 1:
                    break
                time.sleep(0.1)
            assert world.store.get_connection(cid).token_version == 1
        finally:
            err = stop(proc)
    finally:
        if alone.poll() is None:
            alone.kill()
            alone.wait()
    assert "the keeper waits, trying again every 0.2 s: database " in err and "another keeper (pid" in err
    assert err.count("the keeper waits") == 1  # said once, not every interval
