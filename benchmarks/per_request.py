"""What a connection costs per request, and ``connector request`` cold:
``python benchmarks/per_request.py [--quick]``.

* Per GET against the emulator in its own process: a static bearer header (the yardstick: what a
  caller holding the token pays), ``connector.auth()`` with a sync and an async httpx client, and
  ``connector.request()``. Rounds interleave the variants (each round runs every one of them), and
  each ratio is the median over rounds of the variant's time over the yardstick's in that round.
* The store statements and decryptions one GET through ``connector.auth()`` makes when no refresh
  is due (structure, not timing: the tests assert these).
* ``connector request`` cold, as a whole process, paired run by run with ``connector providers
  list``, and both processes' peak RSS.

Targets (issue 19): ``auth()`` within 1.05x of the static header per GET; ``connector request``
within 1.5x of ``providers list``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    EmulatorProcess,
    clean_env,
    connect_many,
    emulator_profile,
    heading,
    paired,
    paired_ratio,
    peak_rss_mib,
    row,
)

PATH = "/company/named-lists"


def _rounds(
    variants: dict[str, Callable[[int], tuple[float, float]]], rounds: int, per_round: int
) -> dict[str, list[tuple[float, float]]]:
    """(wall, this process's CPU) seconds per GET of each variant, one pair per round. The variants
    take turns in each round, in reverse order every other round, so that machine noise and drift
    fall on all of them alike."""
    for run in variants.values():  # warm up: connections open, caches filled
        run(max(per_round // 5, 10))
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in variants}
    order = list(variants)
    for index in range(rounds):
        for label in order if index % 2 == 0 else reversed(order):
            wall, cpu = variants[label](per_round)
            samples[label].append((wall / per_round, cpu / per_round))
    return samples


def _ratio(samples: dict[str, list[tuple[float, float]]], label: str, base: str, which: int = 0) -> float:
    return statistics.median(a[which] / b[which] for a, b in zip(samples[label], samples[base], strict=True))


def _timed(call: Callable[[], Any]) -> Callable[[int], tuple[float, float]]:
    def run(n: int) -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            call()
        return time.perf_counter() - started, time.process_time() - cpu

    return run


def _timed_async(loop: asyncio.AbstractEventLoop, call: Callable[[], Any]) -> Callable[[int], tuple[float, float]]:
    async def many(n: int) -> None:
        for _ in range(n):
            await call()

    def run(n: int) -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.process_time()
        loop.run_until_complete(many(n))
        return time.perf_counter() - started, time.process_time() - cpu

    return run


def bench_per_get(connector: Any, store: Any, cid: str, base: str, quick: bool) -> None:
    import httpx

    rounds, per_round = (15, 50) if quick else (41, 100)
    heading(
        f"per GET against the emulator in its own process ({rounds} rounds of {per_round} GETs each, interleaved; "
        "target: auth() within 1.05x of a static bearer header)"
    )
    token = store.get_tokens(cid)[1].reveal()
    bearer = {"Authorization": f"Bearer {token}"}
    loop = asyncio.new_event_loop()
    static = httpx.Client(base_url=base, headers=bearer, trust_env=False)
    authed = httpx.Client(base_url=base, auth=connector.auth(cid), trust_env=False)
    astatic = httpx.AsyncClient(base_url=base, headers=bearer, trust_env=False)
    aauthed = httpx.AsyncClient(base_url=base, auth=connector.auth(cid), trust_env=False)

    def ok(response: Any) -> None:
        if response.status_code != 200:
            raise RuntimeError(f"GET {PATH} answered {response.status_code}")

    async def aget(client: httpx.AsyncClient) -> None:
        ok(await client.get(PATH))

    def request() -> None:
        if connector.request(cid, "GET", PATH).status != 200:
            raise RuntimeError(f"connector.request GET {PATH} failed")

    variants = {
        "static bearer header (sync httpx.Client)": _timed(lambda: ok(static.get(PATH))),
        "connector.auth() (sync httpx.Client)": _timed(lambda: ok(authed.get(PATH))),
        "connector.request()": _timed(request),
        "static bearer header (httpx.AsyncClient)": _timed_async(loop, lambda: aget(astatic)),
        "connector.auth() (httpx.AsyncClient)": _timed_async(loop, lambda: aget(aauthed)),
    }
    try:
        samples = _rounds(variants, rounds, per_round)
    finally:
        static.close()
        authed.close()
        loop.run_until_complete(astatic.aclose())
        loop.run_until_complete(aauthed.aclose())
        loop.close()
    sync_base, async_base = "static bearer header (sync httpx.Client)", "static bearer header (httpx.AsyncClient)"
    for label, times in samples.items():
        base_label = async_base if "Async" in label else sync_base
        per = statistics.median(wall for wall, _ in times) * 1e6
        cpu = statistics.median(c for _, c in times) * 1e6
        if label == base_label:
            row(label, f"{per:.0f} us", f"the yardstick: the token held by the caller ({cpu:.0f} us CPU here)")
            continue
        ratio, cpu_ratio = _ratio(samples, label, base_label), _ratio(samples, label, base_label, 1)
        extra = statistics.median(a[1] - b[1] for a, b in zip(times, samples[base_label], strict=True)) * 1e6
        target = "; target <= 1.05x" if "auth()" in label else ""
        row(
            label,
            f"{per:.0f} us",
            f"{ratio:.3f}x the static header{target} (this process's CPU: {cpu_ratio:.3f}x, {extra:+.0f} us)",
        )


def bench_structure(connector: Any, store: Any, cid: str, base: str) -> None:
    """Statements and decryptions of one GET through auth() once its signature is kept."""
    import httpx

    from connector_core.crypto import KeyRing

    heading("one GET through connector.auth(), no refresh due (structure; the tests assert it)")
    statements: list[str] = []
    decryptions = 0
    decrypt = KeyRing.decrypt

    def counting(ring: KeyRing, *args: Any, **kwargs: Any) -> str:
        nonlocal decryptions
        decryptions += 1
        return decrypt(ring, *args, **kwargs)

    with httpx.Client(base_url=base, auth=connector.auth(cid), trust_env=False) as client:
        client.get(PATH)
        db = store._connect()
        db.set_trace_callback(statements.append)
        KeyRing.decrypt = counting  # type: ignore[method-assign]
        try:
            client.get(PATH)
        finally:
            KeyRing.decrypt = decrypt  # type: ignore[method-assign]
            db.set_trace_callback(None)
    row("SQL statements per GET", f"{len(statements)}", "before issue 19: 4 by this trace (the issue counted 5)")
    row("AES-GCM decryptions per GET", f"{decryptions}", "before issue 19: 2 (the refresh token's unused)")


def bench_cold(home: Path, keys: Path, cid: str, quick: bool) -> None:
    runs = 7 if quick else 21
    heading(
        f"connector request cold ({runs} runs, paired run by run with providers list; "
        "target: at most 1.5x providers list)"
    )
    env = clean_env()
    env.update({"CONNECTOR_HOME": str(home), "CONNECTOR_CORE_KEY_FILE": str(keys)})
    cli = [sys.executable, "-m", "connector_core"]
    commands = {
        "connector providers list": [*cli, "providers", "list"],
        f"connector request CONN GET {PATH}": [*cli, "request", cid, "GET", PATH],
    }
    samples = paired(commands, runs, env)
    listing, request = commands
    rss = {label: peak_rss_mib(argv, env)[1] for label, argv in commands.items()}
    row(listing, f"{statistics.median(samples[listing]) * 1000:.0f} ms", f"the yardstick; peak {rss[listing]:.1f} MiB")
    ratio = paired_ratio(samples, request, listing)
    row(
        request,
        f"{statistics.median(samples[request]) * 1000:.0f} ms",
        f"{ratio:.2f}x providers list (median of per-run ratios; target <= 1.5x); peak {rss[request]:.1f} MiB",
    )


def bench(quick: bool) -> None:
    from connector_core import Connector, Store, load_plugins

    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp, EmulatorProcess("hibob") as emu:
        home, keys = Path(tmp) / "home", Path(tmp) / "keys.json"
        store = Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": str(keys)})
        emulator_profile(store, emu)
        connector = Connector(store, load_plugins())
        try:
            cid = connect_many(connector, emu, "bench", 1)[0]
            base = emu.endpoints("sandbox").api_base_url
            bench_per_get(connector, store, cid, base, quick)
            bench_structure(connector, store, cid, base)
            bench_cold(home, keys, cid, quick)
        finally:
            connector.close()
            store.close()


if __name__ == "__main__":
    bench("--quick" in sys.argv[1:])
