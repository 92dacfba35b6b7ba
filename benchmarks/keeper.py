"""The keeper's figures: refreshes per second by one keeper, and the lag from "due" to refreshed.

    python benchmarks/keeper.py             # 1,000 connections, SQLite and PostgreSQL
    python benchmarks/keeper.py --quick     # 100 connections, a shorter lag run (about 15 s)

The HiBob emulator runs in a process of its own (``common.EmulatorProcess``), so the keeper's
process pays only for its own side. N connections (one emulated company each) are made
through the real OAuth flow, then:

  throughput  every access token expires within the margin; one ``Keeper.run_once()`` refreshes
              them all: refreshes/s, beside ``refresh_all`` over the same connections at the same
              concurrency in the same run (the yardstick: the same refreshes, no keeper)
  lag         their expiries are spread over W seconds past the margin; ``Keeper.run`` (a pass every
              I seconds) keeps them: for each, the time from the moment it became due (expiry minus
              margin) to its refresh (median, 95th percentile, worst), bounded by I plus a pass

The PostgreSQL part runs on a throwaway cluster (``connector_core.testing.postgres``) or
``CONNECTOR_TEST_POSTGRES_URL``; without either it says so. Nothing here is asserted;
tests/keeper/ asserts what the keeper does.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from common import (
    EmulatorProcess,
    connect_many,
    emulator_profile,
    heading,
    percentile,
    postgres_server,
    row,
    skip_postgres,
)

PROFILE = "bench"


def _world(store: Any, emu: EmulatorProcess, count: int) -> tuple[Any, list[str]]:
    """A connector over ``store`` with a profile of the emulator's app and ``count`` connections."""
    from connector_core import load_plugins
    from connector_core.connector import Connector
    from connector_hibob import plugin

    emulator_profile(store, emu, name=PROFILE)
    connector = Connector(store, load_plugins([plugin], entry_points=False))
    return connector, connect_many(connector, emu, PROFILE, count)


def set_expiries(store: Any, values: dict[str, float]) -> None:
    """Each connection's access token expires at the time given, an hour after its last refresh (so
    the keeper's margin, not its rule for short-lived tokens, decides when it is due)."""
    from connector_core.store.sql import iso

    with store._write() as tx:
        tx.many(
            "UPDATE connections SET expires_at = ?, refreshed_at = ? WHERE id = ?",
            [(at, iso(at - 3600), cid) for cid, at in values.items()],
        )


def throughput(connector: Any, ids: list[str], concurrency: int) -> None:
    from connector_core import Keeper, refresh_all

    set_expiries(connector.store, {cid: time.time() + 60 for cid in ids})
    report = Keeper(connector, concurrency=concurrency).run_once()
    ours = report.refreshed / report.elapsed
    yardstick = refresh_all(connector, concurrency=concurrency, force=True)
    theirs = yardstick.refreshed / yardstick.seconds
    row(
        f"run_once, {len(ids)} due, concurrency {concurrency}",
        f"{ours:.0f} /s",
        f"{ours / theirs:.2f}x refresh_all's {theirs:.0f} /s at concurrency {concurrency}; "
        f"{report.refreshed} refreshed, {report.transient} failed",
    )


def lag(connector: Any, ids: list[str], spread: float, interval: float) -> None:
    from connector_core import Keeper
    from connector_core.keeper import DEFAULT_MARGIN

    rng = random.Random(7)
    now = time.time()
    expiries = {cid: now + DEFAULT_MARGIN + rng.uniform(1, spread) for cid in ids}
    set_expiries(connector.store, expiries)
    before = {cid: connector.store.get_connection(cid).token_version for cid in ids}
    stop = threading.Event()
    keeper = Keeper(connector)
    thread = threading.Thread(target=keeper.run, args=(stop, interval))
    thread.start()
    deadline = time.monotonic() + spread + 2 * interval + 1
    while time.monotonic() < deadline:  # until every connection was refreshed, or it is too late
        time.sleep(0.25)
        if all(c.token_version != before[c.id] for c in connector.store.list_connections()):
            break
    stop.set()
    thread.join()
    lags, missed = [], 0
    for cid in ids:
        conn = connector.store.get_connection(cid)
        if conn.token_version == before[cid] or conn.refreshed_at is None:
            missed += 1
            continue
        lags.append(datetime.fromisoformat(conn.refreshed_at).timestamp() - (expiries[cid] - DEFAULT_MARGIN))
    row(
        f"due -> refreshed, expiries over {spread:g} s, a pass every {interval:g} s",
        f"{statistics.median(lags):.2f} s" if lags else "-",
        f"median (bound: {interval:g} s between passes, plus a pass); p95 {percentile(lags, 95):.2f} s, "
        f"worst {max(lags, default=float('nan')):.2f} s; {missed} of {len(ids)} not refreshed (target: 0)",
    )


def bench_store(store: Any, label: str, quick: bool) -> None:
    count = 100 if quick else 1000
    with EmulatorProcess() as emu:
        started = time.perf_counter()
        connector, ids = _world(store, emu, count)
        heading(f"the keeper on {label}: {count} connections")
        setup = time.perf_counter() - started
        row("set-up: connections through the full OAuth flow", f"{setup:.1f} s", "one at a time")
        try:
            for concurrency in (8,) if quick else (8, 32):
                throughput(connector, ids, concurrency)
            lag(connector, ids, spread=2 if quick else 30, interval=1 if quick else 5)
        finally:
            connector.close()


def bench(quick: bool) -> None:
    """The section for benchmarks/run.py: SQLite, then PostgreSQL when there is one."""
    from connector_core.store import PgStore, Store
    from connector_core.testing.postgres import fresh_schema

    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp:
        env = {"CONNECTOR_CORE_KEY_FILE": str(Path(tmp) / "keys.json")}
        with Store.open(Path(tmp) / "home", env=env) as store:
            bench_store(store, "SQLite", quick)
        if skip_postgres("the keeper on PostgreSQL"):
            return
        with postgres_server() as server, fresh_schema(server, "keeper") as url, PgStore(url, env=env) as store:
            bench_store(store, "PostgreSQL", quick)


if __name__ == "__main__":
    bench("--quick" in sys.argv[1:])
