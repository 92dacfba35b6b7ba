"""The keeper's figures: refreshes per second by one keeper, and the lag from "due" to refreshed.

    python benchmarks/keeper.py                     # SQLite, 1,000 connections
    python benchmarks/keeper.py --postgres          # and PostgreSQL (a throwaway cluster, as the tests start)
    python benchmarks/keeper.py --quick             # 200 connections, a shorter lag run

The HiBob emulator runs in a process of its own (this file run with ``--emulator-child``), so the
keeper's process pays only for its own side. N connections (one emulated company each) are made
through the real OAuth flow, then:

  throughput  every access token expires within the margin; one ``Keeper.run_once()`` (8 at a time)
              refreshes them all: refreshes/s, for concurrency 8 and 32
  lag         their expiries are spread over W seconds past the margin; ``Keeper.run`` (a pass every
              I seconds) keeps them: for each, the time from the moment it became due (expiry minus
              margin) to its refresh (median, 95th percentile, worst)

Nothing here is asserted; tests/keeper/ asserts what the keeper does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the throwaway PostgreSQL cluster lives with the tests
REDIRECT = "https://platform.example/connect/oauth2/hibob/callback"
PROFILE = "bench"


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<58} {value:>12}  {note}")


# ------------------------------------------------------------ the emulator's process


def emulator_child(companies: int) -> None:  # pragma: no cover - in its own process
    """Serve the HiBob emulator with ``companies`` more companies; print what the parent needs, one
    JSON line; stop when standard input closes."""
    from connector_core import load_plugins
    from connector_core.emulator import start_emulator
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    with start_emulator(
        plugins.declaration("hibob"), plugins.emulator_spec("hibob"), redirect_uris=[REDIRECT], raise_on_error=False
    ) as emu:
        endpoints = emu.endpoints("sandbox")
        creds = emu.app.credentials[endpoints.credential_set]
        ids = [emu.add_company().id for _ in range(companies)]
        print(
            json.dumps(
                {
                    "app_id": emu.app.app_id,
                    "client_id": creds.client_id,
                    # The emulator's own test app: the parent process's profile needs it (over a pipe).
                    "client_secret": creds.client_secret.reveal(),
                    "endpoints": endpoints.profile_urls(REDIRECT),
                    "companies": ids,
                }
            ),
            flush=True,
        )
        sys.stdin.read()


@contextlib.contextmanager
def emulator(companies: int) -> Iterator[dict[str, Any]]:
    """An emulator in a process of its own with ``companies`` fresh companies: what a profile needs."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--emulator-child", str(companies)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield json.loads(child.stdout.readline())
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=60)


# ------------------------------------------------------------------------ a world


def world(store: Any, info: dict[str, Any]) -> tuple[Any, list[str]]:
    """A connector over ``store`` with a profile of the emulator's app and one connection per company."""
    from connector_core import load_plugins, validate_profile
    from connector_core.connector import Connector
    from connector_core.secret import Secret
    from connector_core.testing import Harness
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    draft = validate_profile(
        plugins.declaration("hibob"),
        name=PROFILE,
        environment="sandbox",
        values={
            "app_id": info["app_id"],
            "client_id": info["client_id"],
            "client_secret": Secret(info["client_secret"]),
        },
        endpoints=info["endpoints"],
    )
    store.create_profile(draft)
    connector = Connector(store, plugins)

    def one(company: str) -> str:
        start = connector.begin(PROFILE)
        return str(connector.complete(Harness.consent(start.url, company=company), profile=PROFILE).connection.id)

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(one, info["companies"]))
    return connector, ids


def set_expiries(store: Any, values: dict[str, float]) -> None:
    with store._write() as tx:
        tx.many("UPDATE connections SET expires_at = ? WHERE id = ?", [(at, cid) for cid, at in values.items()])


def throughput(connector: Any, ids: list[str], concurrency: int) -> None:
    from connector_core import Keeper

    now = time.time()
    set_expiries(connector.store, {cid: now + 60 for cid in ids})
    report = Keeper(connector, concurrency=concurrency).run_once()
    row(
        f"run_once, {len(ids)} due, concurrency {concurrency}",
        f"{report.refreshed / report.elapsed:.0f}/s",
        f"{report.refreshed} refreshed in {report.elapsed:.2f} s ({report.transient} failed)",
    )


def lag(connector: Any, ids: list[str], spread: float, interval: float) -> None:
    from connector_core import Keeper
    from connector_core.keeper import DEFAULT_MARGIN

    now = time.time()
    rng = random.Random(7)
    expiries = {cid: now + DEFAULT_MARGIN + rng.uniform(1, spread) for cid in ids}
    set_expiries(connector.store, expiries)
    before = {cid: connector.store.get_connection(cid).token_version for cid in ids}
    stop = threading.Event()
    keeper = Keeper(connector)
    thread = threading.Thread(target=keeper.run, args=(stop, interval))
    thread.start()
    time.sleep(spread + 2 * interval + 1)
    stop.set()
    thread.join()
    lags, missed = [], 0
    for cid in ids:
        conn = connector.store.get_connection(cid)
        if conn.token_version == before[cid] or conn.refreshed_at is None:
            missed += 1
            continue
        lags.append(datetime.fromisoformat(conn.refreshed_at).timestamp() - (expiries[cid] - DEFAULT_MARGIN))
    lags.sort()
    p95 = lags[int(len(lags) * 0.95) - 1] if lags else float("nan")
    row(
        f"due -> refreshed, expiries over {spread:g} s, a pass every {interval:g} s",
        f"{statistics.median(lags):.2f} s" if lags else "-",
        f"median; p95 {p95:.2f} s, worst {lags[-1] if lags else float('nan'):.2f} s, {missed} not refreshed",
    )


def bench(store: Any, info: dict[str, Any], label: str, quick: bool) -> None:
    started = time.perf_counter()
    connector, ids = world(store, info)
    print(f"{label}: {len(ids)} connections (made through the OAuth flow in {time.perf_counter() - started:.1f} s)")
    for concurrency in (8, 32):
        throughput(connector, ids, concurrency)
    lag(connector, ids, spread=10 if quick else 30, interval=2 if quick else 5)
    connector.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL (a throwaway cluster)")
    parser.add_argument("--emulator-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.emulator_child is not None:
        emulator_child(args.emulator_child)
        return
    count = 200 if args.quick else 1000
    from connector_core.store import Store

    with tempfile.TemporaryDirectory() as tmp, emulator(count) as info:
        env = {"CONNECTOR_CORE_KEY_FILE": str(Path(tmp) / "keys.json")}
        with Store.open(Path(tmp) / "home", env=env) as store:
            bench(store, info, "SQLite", args.quick)
    if args.postgres:
        from support.postgres import fresh_schema, postgres_url

        from connector_core.store import PgStore

        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            url = stack.enter_context(fresh_schema(stack.enter_context(postgres_url()), "keeper"))
            info = stack.enter_context(emulator(count))
            store = stack.enter_context(PgStore(url, env={"CONNECTOR_CORE_KEY_FILE": str(Path(tmp) / "keys.json")}))
            bench(store, info, "PostgreSQL", args.quick)
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} CPUs; the emulator in its own process)")


if __name__ == "__main__":
    main()
