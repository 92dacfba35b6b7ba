"""The PostgreSQL store's figures: store operations at scale, bulk refresh, and many workers on one store.

    python benchmarks/pg.py            # everything (a few minutes on 2 cores)
    python benchmarks/pg.py --quick    # smaller sizes (about 15 s)
    python benchmarks/pg.py --only store workers

It needs the ``postgres`` extra and PostgreSQL's server binaries (it starts a throwaway
cluster on 127.0.0.1: ``connector_core.testing.postgres``) or ``CONNECTOR_TEST_POSTGRES_URL``;
without them it says so and measures nothing. The emulator runs in its own process.

Sections:
  store     N connections in PostgreSQL: insert, lookup by id, tokens, a lease, a page of 100,
            bytes per connection; each beside the bare statement on the store's own pool
  bulk      refresh_all over expired connections in one process: SQLite and PostgreSQL side by side
  workers   W worker processes x 4 threads share N expiring connections
            (``connector_core.testing.workload``): calls/s, refreshes/s, lock waits, and whether each
            connection was refreshed exactly once, with each worker in its own order (spread) and all
            in the same order (a refresh storm)

Nothing here is asserted; tests/store/test_multiprocess.py asserts the exactly-once property.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import EmulatorProcess, connect_many, emulator_profile, heading, postgres_server, row, skip_postgres

PROFILE = "bench"
#: What each worker calls with each connection.
CALL = ("GET", "/company/named-lists")


def _per_call(fn: Callable[[str], object], ids: list[str]) -> float:
    """Seconds per call of ``fn`` over ``ids`` (the median of three rounds)."""
    rounds = []
    for _ in range(3):
        started = time.perf_counter()
        for cid in ids:
            fn(cid)
        rounds.append((time.perf_counter() - started) / len(ids))
    return statistics.median(rounds)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us"


# ------------------------------------------------------------------------ store


def bench_store(server: str, tmp: Path, quick: bool) -> None:
    from connector_core.profiles import ProfileDraft
    from connector_core.secret import Secret
    from connector_core.store import PgStore
    from connector_core.store.sql import _CONNECTION_SELECT
    from connector_core.store.sql import aad as _aad
    from connector_core.testing.postgres import fresh_schema

    count = 10_000 if quick else 100_000
    heading(f"PostgreSQL store at scale ({count:,} connections)")
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
        encrypted = time.perf_counter() - started
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
            store._seal(db, "connections")  # as save_connection seals each row
        total = time.perf_counter() - started
        row(
            "insert (COPY in one transaction, tokens encrypted)",
            f"{total:.1f} s",
            f"{total / count * 1e6:.0f} us each; encrypting {2 * count:,} tokens took {encrypted:.1f} s of it",
        )
        with store._conn() as db:
            db.execute("ANALYZE")
            size = int(
                db.execute(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')"
                ).fetchone()[0]
            )
            ids = [r[0] for r in db.execute("SELECT id FROM connections ORDER BY random() LIMIT 300")]
        row(
            "database size per connection (2 encrypted tokens)",
            f"{size / count:.0f} B",
            f"tables, indexes and TOAST: {size / 1e6:.1f} MB; the tokens are 2 x 40 B in the clear",
        )
        bare = _per_call(lambda cid: store._rows(_CONNECTION_SELECT + " WHERE c.id = ?", (cid,)), ids)
        row("yardstick: the row's SELECT on the store's pool", _us(bare), "one round trip, no decoding")
        for label, method in (
            ("lookup by id (get_connection)", store.get_connection),
            ("get_tokens (the row, its secrets, decrypt 2)", store.get_tokens),
        ):
            per = _per_call(method, ids)
            row(label, _us(per), f"{per / bare:.2f}x the bare SELECT")

        def locked(cid: str) -> None:
            with store._conn() as db, db.transaction():
                db.execute("SELECT id FROM connections WHERE id = %s FOR UPDATE", (cid,))

        def leased(cid: str) -> None:
            with store.refresh_lease(cid, 30) as lease:
                assert lease.held

        bare_lock = _per_call(locked, ids[:100])
        per = _per_call(leased, ids[:100])
        row(
            "refresh_lease taken and ended (uncontended)",
            _us(per),
            f"{per / bare_lock:.2f}x a bare SELECT ... FOR UPDATE transaction ({_us(bare_lock)})",
        )
        page_query = _CONNECTION_SELECT + " WHERE c.id > ? ORDER BY c.id LIMIT 100"
        bare_page = _per_call(lambda cid: store._rows(page_query, (cid,)), ids[:20])
        per = _per_call(lambda cid: store.list_connections(limit=100, after=cid), ids[:20])
        row(
            "list_connections(limit=100)",
            f"{per * 1000:.2f} ms",
            f"{per / bare_page:.2f}x the bare SELECT of the 100 rows ({bare_page * 1000:.2f} ms)",
        )


# ------------------------------------------------------------------------- bulk


def _world(store: Any, emu: EmulatorProcess) -> Any:
    """A connector over ``store`` with a profile of the emulator's test app."""
    from connector_core import load_plugins
    from connector_core.connector import Connector
    from connector_hibob import plugin

    emulator_profile(store, emu, name=PROFILE)
    return Connector(store, load_plugins([plugin], entry_points=False))


def _refreshes(emu: EmulatorProcess) -> int:
    return int(emu.stats()["token_requests"].get("refresh_token", 0))


def bench_bulk(server: str, tmp: Path, quick: bool) -> None:
    from connector_core import refresh_all
    from connector_core.store import PgStore, Store
    from connector_core.testing.postgres import fresh_schema
    from connector_core.testing.workload import expire_tokens

    count = 100 if quick else 1000
    heading(f"bulk refresh in one process (refresh_all, {count} expired connections, concurrency 32)")
    rates: dict[str, float] = {}
    with fresh_schema(server, "bench") as url, EmulatorProcess() as emu:
        for label, store in (
            ("SQLite", Store.open(tmp / "bulk-home", env={"CONNECTOR_CORE_KEY_FILE": str(tmp / "k2")})),
            ("PostgreSQL", PgStore(url, env={"CONNECTOR_CORE_KEY_FILE": str(tmp / "k3")})),
        ):
            connector = _world(store, emu)
            try:
                ids = connect_many(connector, emu, PROFILE, count)
                expire_tokens(store)
                before = _refreshes(emu)
                report = refresh_all(connector, concurrency=32)
                calls = _refreshes(emu) - before
                rates[label] = report.refreshed / report.seconds
                versus = f"{rates[label] / rates['SQLite']:.2f}x SQLite's rate; " if label != "SQLite" else ""
                row(
                    f"{label}: refresh_all",
                    f"{rates[label]:.0f} /s",
                    f"{versus}{report.refreshed} of {len(ids)} refreshed, {len(report.failed)} failed, "
                    f"{calls} token calls (exactly once: {'yes' if calls == report.refreshed == count else 'NO'})",
                )
            finally:
                connector.close()
                store.close()


# ---------------------------------------------------------------------- workers


def bench_workers(server: str, tmp: Path, quick: bool) -> None:
    from connector_core.store import PgStore
    from connector_core.testing.postgres import fresh_schema
    from connector_core.testing.workload import expire_tokens, start_workers

    count, epochs, passes, workers = (100, 1, 2, 4) if quick else (1000, 3, 2, 8)
    threads = 4
    heading(
        f"{workers} worker processes x {threads} threads share {count} expiring connections on PostgreSQL "
        f"({epochs} expiries per mode, {passes} passes each)"
    )
    key_file = tmp / "k4"
    with (
        fresh_schema(server, "bench") as url,
        PgStore(url, env={"CONNECTOR_CORE_KEY_FILE": str(key_file)}) as store,
        EmulatorProcess() as emu,
    ):
        connector = _world(store, emu)
        try:
            started = time.perf_counter()
            ids = connect_many(connector, emu, PROFILE, count)
            row(
                f"set-up: {count} connections through the full flow",
                f"{time.perf_counter() - started:.1f} s",
                "one at a time (authorize, consent, code exchange)",
            )
            with start_workers(
                url,
                key_file,
                ids,
                call=CALL,
                workers=workers,
                threads=threads,
                tmp=tmp,
                plugin_modules=("connector_hibob.plugin",),
                isolate=("CONNECTOR_", "HIBOB_"),
            ) as group:
                epoch = 0
                for mode, shuffle in (("spread", True), ("storm", False)):
                    for _ in range(epochs):
                        epoch += 1
                        expire_tokens(store)
                        emu.call("advance_clock", emu.access_token_lifetime + 1)
                        result = group.run_epoch(epoch, passes, refresh_count=lambda: _refreshes(emu), shuffle=shuffle)
                        versions = {c.token_version for c in store.list_connections()}
                        once = result.refreshes == count and versions == {epoch} and result.lock["saved"] == count
                        later = (result.seconds - result.first_pass_seconds) / max(passes - 1, 1)
                        row(
                            f"{mode} #{epoch}: {result.requests} calls",
                            f"{result.requests / result.seconds:.0f} /s",
                            f"{result.seconds:.1f} s; {len(result.errors)} errors and {result.auth_failures} "
                            "auth failures (target: 0)",
                        )
                        row(
                            f"{mode} #{epoch}: {result.refreshes} refreshes (first pass)",
                            f"{result.refreshes / result.first_pass_seconds:.0f} /s",
                            f"the pass took {result.first_pass_seconds / later:.2f}x one with fresh tokens; "
                            f"exactly once: {'yes' if once else 'NO'}; {result.lock['waited']} lock waits, "
                            f"{result.lock['timed_out']} timed out",
                        )
        finally:
            connector.close()


SECTIONS = {"store": bench_store, "bulk": bench_bulk, "workers": bench_workers}


def bench_pg(quick: bool, only: list[str] | None = None) -> None:
    """Every PostgreSQL section, or those in ``only``."""
    if skip_postgres("PostgreSQL store"):
        return
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp, postgres_server() as server:
        for name in only or list(SECTIONS):
            started = time.perf_counter()
            SECTIONS[name](server, Path(tmp), quick)
            print(f"  ({name}: {time.perf_counter() - started:.0f} s)", flush=True)


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
