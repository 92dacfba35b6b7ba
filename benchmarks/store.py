"""The SQLite store at scale (100,000 connections): insert, lookup by id, a page, bytes per
connection, the CLI listing: ``python benchmarks/store.py [--quick]``."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import REPO, clean_env, paired, paired_ratio, row  # noqa: F401


def populate(store: Any, profile: Any, count: int, *, tokens: bool = True) -> list[str]:
    """Insert ``count`` connected connections of ``profile`` into the SQLite ``store`` in one
    transaction, sealed as ``save_connection`` seals each row, and return their ids. Each has
    an identity (a company id) and scopes; every third is owned by one of 100 end users, with an
    organisation and a tag. ``tokens``: encrypt an access and a refresh token for each (40
    characters each), as a real store holds them."""
    import json
    import uuid

    from connector_core.store.sql import aad

    ring = store.keyring
    scopes = json.dumps(list(profile.scopes))
    expires = time.time() + 3600
    rows: list[tuple[Any, ...]] = []
    secrets: list[tuple[Any, ...]] = []
    for n in range(count):
        cid = f"conn_{uuid.uuid4().hex}"
        owned = n % 3 == 0
        rows.append(
            (
                cid,
                profile.id,
                profile.provider,
                profile.environment,
                profile.auth_type,
                "connected",
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z",
                scopes,
                scopes,
                json.dumps({"companyId": str(600000 + n)}),
                "Bearer",
                expires,
                f"user-{n % 100}" if owned else None,
                f"org-{n % 7}" if owned else None,
                json.dumps([f"tier-{n // 3 % 2}"] if owned else []),
            )
        )
        if tokens:
            for name in ("access_token", "refresh_token"):
                kid, nonce, ct = ring.encrypt("t" * 40, aad(cid, name))
                secrets.append((cid, name, kid, nonce, ct))
    with store._write() as db:
        db.executemany(
            "INSERT INTO connections (id, profile_id, provider, environment, auth_type, status, created_at, "
            "updated_at, requested_scopes, granted_scopes, identity, token_type, expires_at, end_user_id, "
            "organisation, tags) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        db.executemany("INSERT INTO secrets (owner_id, name, key_id, nonce, ciphertext) VALUES (?,?,?,?,?)", secrets)
        store._seal(db, "connections")  # as save_connection seals each row
    store._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return [r[0] for r in rows]


def bench_store(tmp: Path) -> tuple[Path, dict[str, str], Any, Any]:
    """(home, env, store, profile): a SQLite store in ``tmp`` with one HiBob profile, ready for
    :func:`populate`."""
    from connector_core import Store, load_plugins, validate_profile
    from connector_core.secret import Secret
    from connector_hibob import plugin

    home = tmp / "home"
    env = {"CONNECTOR_CORE_KEY_FILE": str(tmp / "keys.json")}
    store = Store.open(home, env=env)
    profile = store.create_profile(
        validate_profile(
            load_plugins([plugin], entry_points=False).declaration("hibob"),
            name="bench",
            values={"app_id": "A", "client_id": "c", "client_secret": Secret("s" * 32)},
        )
    )
    return home, env, store, profile


def _median_seconds(fn: Callable[[], object], rounds: int = 7) -> float:
    """The median wall time of ``rounds`` calls of ``fn``."""
    times = []
    for _ in range(rounds):
        begun = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begun)
    return statistics.median(times)


def bench(quick: bool) -> None:
    from connector_core.store.sql import _CONNECTION_SELECT

    count = 20_000 if quick else 100_000
    print(f"store at scale ({count:,} connections)")
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp:
        home, env, store, profile = bench_store(Path(tmp))
        started = time.perf_counter()
        populate(store, profile, count)
        total = time.perf_counter() - started
        row(
            "insert (one transaction, tokens encrypted)",
            f"{total:.1f} s",
            f"{total / count * 1e6:.0f} us each, {2 * count:,} tokens encrypted; no target",
        )
        size = sum(p.stat().st_size for p in home.iterdir())
        row(
            "database size per connection (2 encrypted tokens)",
            f"{size / count:.0f} B",
            f"the file: {size / 1e6:.1f} MB; the tokens are 2 x 40 B in the clear",
        )
        ids = [r[0] for r in store._connect().execute("SELECT id FROM connections ORDER BY random() LIMIT 200")]
        db = store._connect()
        begun = time.perf_counter()
        for cid in ids:
            db.execute(_CONNECTION_SELECT + " WHERE c.id = ?", (cid,)).fetchall()
        bare = (time.perf_counter() - begun) / len(ids)
        begun = time.perf_counter()
        for cid in ids:
            store.get_connection(cid)
        per = (time.perf_counter() - begun) / len(ids)
        row(
            "lookup by id (get_connection)",
            f"{per * 1e6:.0f} us",
            f"{per / bare:.2f}x the row's bare SELECT on the store's connection ({bare * 1e6:.0f} us)",
        )
        plan = db.execute("EXPLAIN QUERY PLAN " + _CONNECTION_SELECT + " WHERE c.id = ?", (ids[0],)).fetchall()
        row(
            "lookup plan",
            "indexed" if all("SCAN c" not in str(r) for r in plan) else "SCAN",
            "; ".join(str(r[-1]) for r in plan),
        )
        bare = _median_seconds(
            lambda: db.execute(_CONNECTION_SELECT + " WHERE c.id > ? ORDER BY c.id LIMIT 100", (ids[0],)).fetchall()
        )
        per = _median_seconds(lambda: store.list_connections(limit=100, after=ids[0]))
        page = store.list_connections(limit=100, after=ids[0])
        row(
            f"list_connections(limit=100) in-process, {len(page)} rows",
            f"{per * 1000:.1f} ms",
            f"{per / bare:.2f}x the bare SELECT of the page ({bare * 1000:.2f} ms)",
        )
        cli = [
            sys.executable,
            "-m",
            "connector_core",
            "--home",
            str(home),
            "connections",
            "list",
            "--json",
            "--limit",
            "100",
        ]
        cli_env = clean_env() | env
        floor = [sys.executable, "-m", "connector_core", "providers", "list"]
        samples = paired({"list": cli, "floor": floor}, 3 if quick else 7, cli_env)
        row(
            "connector connections list --json --limit 100",
            f"{statistics.median(samples['list']) * 1000:.0f} ms",
            f"whole process, cold: {paired_ratio(samples, 'list', 'floor'):.2f}x 'providers list' (paired)",
        )


if __name__ == "__main__":
    import sys

    bench("--quick" in sys.argv[1:])
