"""The PostgreSQL store's figures: store operations at scale, bulk refresh, and many workers on one store.

    python benchmarks/pg.py            # everything (a few minutes on 2 cores)
    python benchmarks/pg.py --quick    # smaller sizes

It needs PostgreSQL's server binaries (it starts a throwaway cluster on 127.0.0.1, as
the tests do: tests/support/postgres.py) or ``CONNECTOR_TEST_POSTGRES_URL``, and the
``postgres`` extra. ``bench_pg(quick)`` is the section for benchmarks/run.py.

Sections:
  store     N connections in PostgreSQL: insert, lookup by id, a page of 100, bytes per connection
  bulk      refresh_all over expired connections in one process: SQLite and PostgreSQL side by side
  workers   8 worker processes x 4 threads share N expiring connections (tests/support/workload.py):
            calls/s, refreshes/s, lock waits, and whether each connection was refreshed exactly once,
            with each worker in its own order (spread) and all in the same order (a refresh storm)

Nothing here is asserted; tests/store/test_multiprocess.py asserts the exactly-once property.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the throwaway cluster and the workload live with the tests


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<52} {value:>14}  {note}")


def _emulator_world(store: Any) -> tuple[Any, Any, Any]:
    from support.workload import REDIRECT, make_profile

    from connector_core import load_plugins
    from connector_core.connector import Connector
    from connector_core.emulator import start_emulator
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    emu = start_emulator(plugins.declaration("hibob"), plugins.emulator_spec("hibob"), redirect_uris=[REDIRECT])
    make_profile(store, emu, plugins)
    return emu, plugins, Connector(store, plugins)


# ------------------------------------------------------------------------ store


def bench_store(server: str, tmp: Path, quick: bool) -> None:
    from support.postgres import fresh_schema

    from connector_core.profiles import ProfileDraft
    from connector_core.secret import Secret
    from connector_core.store import PgStore
    from connector_core.store.sql import aad as _aad

    count = 20_000 if quick else 100_000
    print(f"PostgreSQL store at scale ({count:,} connections)")
    with fresh_schema(server, "bench") as url, PgStore(url, env={"CONNECTOR_CORE_KEY_FILE": str(tmp / "k1")}) as store:
        profile = store.create_profile(
            ProfileDraft(
                name="bench",
                provider="hibob",
                auth_type="oauth2",
                environment="sandbox",
                credential_set="development",
                values=(("app_id", "A"), ("client_id", "c")),
                secrets=(("client_secret", Secret("s" * 32)),),
                scopes=("employee_data:read",),
                actions=(),
            )
        )
        ring = store.keyring
        started = time.perf_counter()
        rows, secrets = [], []
        for _ in range(count):
            cid = f"conn_{uuid.uuid4().hex}"
            rows.append((cid, profile.id, "hibob", "sandbox", "connected", "now", "now", time.time() + 3600))
            for name in ("access_token", "refresh_token"):
                kid, nonce, ct = ring.encrypt("t" * 40, _aad(cid, name))
                secrets.append((cid, name, kid, nonce, ct))
        with store._write() as db, db.cursor() as cur:
            with cur.copy(
                "COPY connections (id, profile_id, provider, environment, status, created_at, updated_at, expires_at) "
                "FROM STDIN"
            ) as copy:
                for r in rows:
                    copy.write_row(r)
            with cur.copy("COPY secrets (owner_id, name, key_id, nonce, ciphertext) FROM STDIN") as copy:
                for s in secrets:
                    copy.write_row(s)
        row("insert (one transaction, tokens encrypted)", f"{time.perf_counter() - started:.1f} s")
        with store._conn() as db:
            db.execute("ANALYZE")
            size = int(
                db.execute(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')"
                ).fetchone()[0]
            )
            ids = [r[0] for r in db.execute("SELECT id FROM connections ORDER BY random() LIMIT 500")]
        row("database size per connection (2 encrypted tokens)", f"{size / count:.0f} B", f"{size / 1e6:.1f} MB")
        for label, method in (
            ("lookup by id (get_connection)", store.get_connection),
            ("get_tokens (decrypt 2)", store.get_tokens),
        ):
            begun = time.perf_counter()
            for cid in ids:
                method(cid)
            row(label, f"{(time.perf_counter() - begun) / len(ids) * 1e6:.0f} us")
        begun = time.perf_counter()
        for cid in ids[:200]:
            with store.refresh_lease(cid, 30) as lease:
                assert lease.held
        row("refresh_lease taken and ended (uncontended)", f"{(time.perf_counter() - begun) / 200 * 1e6:.0f} us")
        begun = time.perf_counter()
        page = store.list_connections(limit=100, after=ids[0])
        row("list_connections(limit=100)", f"{(time.perf_counter() - begun) * 1000:.1f} ms", f"{len(page)} rows")


# ------------------------------------------------------------------------- bulk


def bench_bulk(server: str, tmp: Path, quick: bool) -> None:
    from support.postgres import fresh_schema
    from support.workload import connect_many

    from connector_core import refresh_all
    from connector_core.store import PgStore, Store

    count = 200 if quick else 1000
    print(f"bulk refresh in one process (refresh_all, {count} expired connections, concurrency 32)")
    with fresh_schema(server, "bench") as url:
        for label, store in (
            ("SQLite", Store.open(tmp / "bulk-home", env={"CONNECTOR_CORE_KEY_FILE": str(tmp / "k2")})),
            ("PostgreSQL", PgStore(url, env={"CONNECTOR_CORE_KEY_FILE": str(tmp / "k3")})),
        ):
            emu, _, connector = _emulator_world(store)
            try:
                ids = connect_many(connector, emu, count)
                with store._write() as db:  # every access token expired
                    db.execute("UPDATE connections SET expires_at = 0")
                before = emu.stats.token_requests.get("refresh_token", 0)
                report = refresh_all(connector, concurrency=32)
                calls = emu.stats.token_requests.get("refresh_token", 0) - before
                row(
                    f"{label}: refresh_all",
                    f"{report.refreshed / report.seconds:.0f} /s",
                    f"{report.refreshed} of {len(ids)} refreshed, {len(report.failed)} failed, {calls} token calls",
                )
            finally:
                connector.close()
                emu.close()
                store.close()


# ---------------------------------------------------------------------- workers


def bench_workers(server: str, tmp: Path, quick: bool) -> None:
    from support.postgres import fresh_schema
    from support.workload import connect_many, expire_all, start_workers

    from connector_core.store import PgStore

    count, epochs, passes = (200, 2, 2) if quick else (1000, 3, 2)
    workers, threads = 8, 4
    print(
        f"{workers} worker processes x {threads} threads share {count} expiring connections on PostgreSQL "
        f"({epochs} expiries per mode, {passes} passes each)"
    )
    key_file = tmp / "k4"
    with fresh_schema(server, "bench") as url, PgStore(url, env={"CONNECTOR_CORE_KEY_FILE": str(key_file)}) as store:
        emu, _, connector = _emulator_world(store)
        try:
            started = time.perf_counter()
            ids = connect_many(connector, emu, count)
            row(f"set-up: {count} connections through the full flow", f"{time.perf_counter() - started:.1f} s")
            with start_workers(url, key_file, ids, workers=workers, threads=threads, tmp=tmp) as group:
                epoch = 0
                for mode, shuffle in (("spread", True), ("storm", False)):
                    for _ in range(epochs):
                        epoch += 1
                        expire_all(store, emu)
                        result = group.run_epoch(epoch, passes, emu, shuffle=shuffle)
                        versions = {c.token_version for c in store.list_connections()}
                        once = result.refreshes == count and versions == {epoch} and result.lock["saved"] == count
                        row(
                            f"{mode} #{epoch}: {result.requests} calls",
                            f"{result.requests / result.seconds:.0f} /s",
                            f"{result.seconds:.1f} s; {len(result.errors)} errors, "
                            f"{result.auth_failures} auth failures",
                        )
                        row(
                            f"{mode} #{epoch}: {result.refreshes} refreshes (first pass)",
                            f"{result.refreshes / result.first_pass_seconds:.0f} /s",
                            f"exactly once per connection: {'yes' if once else 'NO'}; lock " + json.dumps(result.lock),
                        )
        finally:
            connector.close()
            emu.close()


SECTIONS = {"store": bench_store, "bulk": bench_bulk, "workers": bench_workers}


def bench_pg(quick: bool, only: list[str] | None = None) -> None:
    """Every PostgreSQL section (benchmarks/run.py's signature: ``quick``)."""
    from support.postgres import postgres_url

    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp, postgres_url() as server:
        for name in only or list(SECTIONS):
            started = time.perf_counter()
            SECTIONS[name](server, Path(tmp), quick)
            print(f"  ({name}: {time.perf_counter() - started:.0f} s)\n")


def bench(quick: bool) -> None:
    """The section for benchmarks/run.py."""
    bench_pg(quick)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    print(f"connector-core PostgreSQL benchmarks on {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    bench_pg(args.quick, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
