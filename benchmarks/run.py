"""Measure connector-core's performance targets side by side and print figures and ratios.

    python benchmarks/run.py                 # everything (a few minutes on 2 cores)
    python benchmarks/run.py --only cold store
    python benchmarks/run.py --quick         # fewer repetitions and smaller sizes

Sections (issue 8):
  cold       CLI cold start vs the floor `python -c "import pluggy, attrs, importlib.metadata ..."`
  discovery  `providers list` with 1, 250 and 500 installed provider plugins (real distributions in a
             throwaway venv), and `providers show KEY` with 500
  refresh    `refresh_all` over N expired connections vs a bare async httpx loop posting the same
             refresh requests to the same emulator in the same run
  store      100,000 connections: paging, lookup by id, bytes per connection
  pg         the same on PostgreSQL, and workers sharing connections (benchmarks/pg.py)

Nothing here is asserted; the test suite asserts structure (imports, refresh counts) only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLOOR = "import pluggy, attrs, importlib.metadata as m; m.entry_points(group='connector_core')"


def clean_env() -> dict[str, str]:
    """The environment for measured commands: no connector settings, and bytecode caching
    on (a shell with PYTHONDONTWRITEBYTECODE would otherwise recompile every module every run)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_") and k != "PYTHONDONTWRITEBYTECODE"}


def median_time(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<52} {value:>14}  {note}")


# ------------------------------------------------------------------------- cold


def bench_cold(quick: bool) -> None:
    print("cold start (median wall time; target: at most 1.3x the floor)")
    runs = 7 if quick else 21
    py = sys.executable
    env = clean_env()
    for argv in ([py, "-m", "connector_core", "--help"],):  # write the bytecode caches once
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    # Interleave the measurements so that machine noise hits every command alike.
    commands = {
        "floor": [py, "-c", FLOOR],
        "connector providers list": [py, "-m", "connector_core", "providers", "list"],
        "connector scopes hibob --check ...": [
            py,
            "-m",
            "connector_core",
            "scopes",
            "hibob",
            "--check",
            "employee_data:read",
            "tasks:write",
        ],
        "connector --help": [py, "-m", "connector_core", "--help"],
    }
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(runs):
        for label, argv in commands.items():
            samples[label].append(median_time(argv, 1, env))
    floor = statistics.median(samples["floor"])
    for label in commands:
        value = statistics.median(samples[label])
        row(label, f"{value * 1000:.1f} ms", f"{value / floor:.2f}x floor")


# -------------------------------------------------------------------- discovery

PROVIDER_MODULE = textwrap.dedent(
    """
    from connector_core import hookimpl, Provider, HttpBasicAuth, CredentialField, Environment

    KEY = {key!r}

    @hookimpl
    def connector_core_register_providers(register):
        register.add(Provider(KEY, {name!r}, categories=["bench"]))

    @hookimpl
    def connector_core_auth_types(provider_key):
        return [HttpBasicAuth("basic", "Basic", "user", "password")] if provider_key == KEY else None

    @hookimpl
    def connector_core_credential_fields(provider_key):
        if provider_key == KEY:
            return [CredentialField("user", "User", "basic", help="u"),
                    CredentialField("password", "Password", "basic", kind="secret", help="p")]
        return None

    @hookimpl
    def connector_core_environments(provider_key):
        if provider_key == KEY:
            return [Environment("prod", "Production", "production", "https://api.example.com")]
        return None
    """
)


def _write_dist(site: Path, index: int) -> None:
    key = f"bench{index:04d}"
    dist = site / f"connector_{key}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: connector-{key}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[connector_core]\n{key} = connector_{key}\n")
    (dist / "RECORD").write_text("")
    (site / f"connector_{key}.py").write_text(PROVIDER_MODULE.format(key=key, name=f"Bench {index}"))


def bench_discovery(quick: bool) -> None:
    print("discovery at scale (median wall time; target: 500 providers < 3x one, linear growth)")
    runs = 5 if quick else 11
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env())
        py = str(venv / "bin" / "python")
        subprocess.run(
            [py, "-m", "pip", "install", "-q", "-e", str(REPO), "-e", str(REPO / "providers" / "hibob")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        site = Path(
            subprocess.run(
                [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        env = clean_env()
        listing = [py, "-m", "connector_core", "providers", "list"]
        results: dict[int, float] = {}
        written = 0
        for count in (0, 250, 500):
            while written < count:
                _write_dist(site, written)
                written += 1
            subprocess.run(listing, env=env, check=True, stdout=subprocess.DEVNULL)  # warm the bytecode cache
            results[count] = median_time(listing, runs, env)
            row(
                f"providers list, {count + 1} providers",
                f"{results[count] * 1000:.1f} ms",
                f"{results[count] / results[0]:.2f}x one provider",
            )
        growth = (results[500] - results[0]) / max(results[250] - results[0], 1e-9)
        row("growth 1->500 over 1->250 (2.0 = linear)", f"{growth:.2f}")
        show_one = median_time([py, "-m", "connector_core", "providers", "show", "bench0123"], runs, env)
        show_hibob = median_time([py, "-m", "connector_core", "providers", "show", "hibob"], runs, env)
        row(
            "providers show bench0123, 501 installed",
            f"{show_one * 1000:.1f} ms",
            f"{show_one / results[0]:.2f}x 'providers list' with one",
        )
        row(
            "providers show hibob, 501 installed",
            f"{show_hibob * 1000:.1f} ms",
            f"{show_hibob / results[0]:.2f}x 'providers list' with one",
        )


# ---------------------------------------------------------------------- refresh


def bench_refresh(quick: bool) -> None:
    import httpx

    from connector_core import Connector, Store, load_plugins, refresh_all, validate_profile
    from connector_core.emulator import COMPANY_HEADER, CONSENT_HEADER, start_emulator
    from connector_hibob import plugin

    count = 200 if quick else 1000
    concurrency = 32
    print(
        f"refresh throughput ({count} expired connections, concurrency {concurrency}; "
        "target: >= 70% of the raw capacity)"
    )
    plugins = load_plugins([plugin], entry_points=False)
    decl = plugins.declaration("hibob")
    redirect = "https://platform.example/connect/oauth2/hibob/callback"
    with (
        tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp,
        start_emulator(decl, plugins.emulator_spec("hibob"), redirect_uris=[redirect]) as emu,
    ):
        store = Store.open(Path(tmp) / "home", env={"CONNECTOR_CORE_KEY_FILE": str(Path(tmp) / "keys.json")})
        endpoints = emu.endpoints("sandbox")
        creds = emu.app.credentials[endpoints.credential_set]
        store.create_profile(
            validate_profile(
                decl,
                name="bench",
                environment="sandbox",
                values={"app_id": emu.app.app_id, "client_id": creds.client_id, "client_secret": creds.client_secret},
                endpoints=endpoints.profile_urls(redirect, revocation=False),
            )
        )
        connector = Connector(store, plugins)
        started = time.perf_counter()
        ids: list[str] = []
        with httpx.Client(follow_redirects=False, trust_env=False) as browser:
            for _ in range(2 * count):
                company = emu.add_company()
                start = connector.begin("bench")
                answer = browser.get(start.url, headers={CONSENT_HEADER: "allow", COMPANY_HEADER: company.id})
                ids.append(connector.complete(answer.headers["location"]).connection.id)
        row(f"set-up: {2 * count} connections through the full flow", f"{time.perf_counter() - started:.1f} s")
        ours, raw_ids = ids[:count], ids[count:]
        raw_tokens = [store.get_tokens(cid)[2] for cid in raw_ids]

        async def raw_loop() -> float:
            semaphore = asyncio.Semaphore(concurrency)
            async with httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=64)) as client:

                async def one(token: object) -> None:
                    async with semaphore:
                        answer = await client.post(
                            endpoints.token_url,
                            data={"grant_type": "refresh_token", "refresh_token": token.reveal()},  # type: ignore[attr-defined]
                            auth=(creds.client_id, creds.client_secret.reveal()),
                        )
                        answer.raise_for_status()

                begun = time.perf_counter()
                await asyncio.gather(*(one(t) for t in raw_tokens))
                return time.perf_counter() - begun

        raw_seconds = asyncio.run(raw_loop())
        with store._write() as db:
            db.executemany("UPDATE connections SET expires_at = 0 WHERE id = ?", [(c,) for c in ours])
        before = emu.stats.token_requests.get("refresh_token", 0)
        report = refresh_all(connector, concurrency=concurrency)
        calls = emu.stats.token_requests.get("refresh_token", 0) - before
        raw_rate, our_rate = count / raw_seconds, report.refreshed / report.seconds
        row("raw capacity: bare async httpx loop", f"{raw_rate:.0f} /s", f"{raw_seconds:.2f} s")
        row(
            "connector connections refresh --all (library call)",
            f"{our_rate:.0f} /s",
            f"{our_rate / raw_rate:.0%} of raw; {report.refreshed} refreshed, {len(report.failed)} failed, "
            f"{calls} token calls",
        )


# ------------------------------------------------------------------------ store


def bench_store(quick: bool) -> None:
    import json
    import uuid

    from connector_core import Store, load_plugins, validate_profile
    from connector_core.secret import Secret
    from connector_core.store.sql import aad as _aad
    from connector_hibob import plugin

    count = 20_000 if quick else 100_000
    print(f"store at scale ({count:,} connections)")
    plugins = load_plugins([plugin], entry_points=False)
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp:
        home = Path(tmp) / "home"
        env = {"CONNECTOR_CORE_KEY_FILE": str(Path(tmp) / "keys.json")}
        store = Store.open(home, env=env)
        profile = store.create_profile(
            validate_profile(
                plugins.declaration("hibob"),
                name="bench",
                values={"app_id": "A", "client_id": "c", "client_secret": Secret("s" * 32)},
            )
        )
        ring = store.keyring
        started = time.perf_counter()
        with store._write() as db:
            rows, secrets = [], []
            for _ in range(count):
                cid = f"conn_{uuid.uuid4().hex}"
                rows.append(
                    (
                        cid,
                        profile.id,
                        "hibob",
                        "sandbox",
                        "connected",
                        "now",
                        "now",
                        json.dumps(list(profile.scopes)),
                        json.dumps(list(profile.scopes)),
                        time.time() + 3600,
                    )
                )
                for name, size in (("access_token", 40), ("refresh_token", 40)):
                    kid, nonce, ct = ring.encrypt("t" * size, _aad(cid, name))
                    secrets.append((cid, name, kid, nonce, ct))
            db.executemany(
                "INSERT INTO connections (id, profile_id, provider, environment, status, created_at, updated_at, "
                "requested_scopes, granted_scopes, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            db.executemany(
                "INSERT INTO secrets (owner_id, name, key_id, nonce, ciphertext) VALUES (?,?,?,?,?)", secrets
            )
            store._seal(db, "connections")  # as save_connection seals each row
        row("insert (one transaction, tokens encrypted)", f"{time.perf_counter() - started:.1f} s")
        store._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = sum(p.stat().st_size for p in home.iterdir())
        row("database size per connection (2 encrypted tokens)", f"{size / count:.0f} B", f"{size / 1e6:.1f} MB")
        ids = [r[0] for r in store._connect().execute("SELECT id FROM connections ORDER BY random() LIMIT 200")]
        begun = time.perf_counter()
        for cid in ids:
            store.get_connection(cid)
        row("lookup by id (get_connection)", f"{(time.perf_counter() - begun) / len(ids) * 1e6:.0f} us")
        plan = (
            store._connect()
            .execute("EXPLAIN QUERY PLAN " + store._CONNECTION_SELECT + " WHERE c.id = ?", (ids[0],))
            .fetchall()
        )
        row(
            "lookup plan",
            "indexed" if all("SCAN c" not in str(r) for r in plan) else "SCAN",
            "; ".join(str(r[-1]) for r in plan),
        )
        begun = time.perf_counter()
        page = store.list_connections(limit=100, after=ids[0])
        row(
            "list_connections(limit=100) in-process",
            f"{(time.perf_counter() - begun) * 1000:.1f} ms",
            f"{len(page)} rows",
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
        row(
            "connector connections list --json --limit 100",
            f"{median_time(cli, 5, cli_env) * 1000:.0f} ms",
            "whole process, cold",
        )


def bench_postgres(quick: bool) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pg import bench_pg  # the PostgreSQL store's figures; starts its own throwaway cluster

    bench_pg(quick)


SECTIONS = {
    "cold": bench_cold,
    "discovery": bench_discovery,
    "refresh": bench_refresh,
    "store": bench_store,
    "pg": bench_postgres,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller sizes")
    args = parser.parse_args()
    print(f"connector-core benchmarks on {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    for name in args.only or list(SECTIONS):
        started = time.perf_counter()
        SECTIONS[name](args.quick)
        print(f"  ({name}: {time.perf_counter() - started:.0f} s)\n")
    shutil.rmtree(REPO / "benchmarks" / "__pycache__", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
