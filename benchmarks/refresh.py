"""Bulk refresh throughput: ``refresh_all`` against yardsticks posting the same refresh requests
to the same emulator: ``python benchmarks/refresh.py [--quick]``."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from common import REPO, clean_env, median_time, row  # noqa: F401


def bench(quick: bool) -> None:
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


if __name__ == "__main__":
    import sys

    bench("--quick" in sys.argv[1:])
