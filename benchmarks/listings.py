"""Listings at scale (100,000 connections; 20,000 with --quick): ``connector connections list``
(the table), ``connections list --json`` to /dev/null, and the API's ``GET /v1/connections``
paged through every connection: ``python benchmarks/listings.py [--quick]``.

Each CLI figure is one whole process: wall time, CPU time (user + system: the less noisy on a
shared machine) and peak RSS, from the kernel's accounting of that child alone. Beside each is
what bounds it: the issue's target (40 MiB peak RSS; 1 s for ``--json`` at 100,000), the bare
interpreter's RSS, the same command listing one connection (interpreter, imports and the store:
any listing's floor), and a bare ``sqlite3`` loop reading the same rows in the same pages (the
floor of reading them into Python at all). The API runs as ``connector serve`` (one
worker, no keeper) in its own process: its RSS is read from /proc before and after a client
pages through everything (VmHWM: the server's peak), with each page's latency.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import clean_env, percentile, row
from store import bench_store, populate

#: The issue's targets (issue 19, target 4).
RSS_TARGET_MIB = 40.0
JSON_TARGET_S = 1.0
API_KEY = "bench-listings-api-key-0123456789"

#: Reads every connection row in pages of 500 with nothing but sqlite3: the floor of any listing's time.
_ROWS_FLOOR = """
import sqlite3
db = sqlite3.connect({db!r})
after, n = "", 0
while True:
    rows = db.execute({select!r} + " WHERE c.id > ? ORDER BY c.id LIMIT ?", (after, 500)).fetchall()
    if not rows:
        break
    n += len(rows)
    after = rows[-1][0]
assert n == {count}, n
"""


#: Measures one child: GNU time (a small C program: a child's peak RSS counts the pages of the
#: process that forked it, so the launcher must be small), else a fresh interpreter (~11 MiB floor).
_TIME = Path("/usr/bin/time").exists()
_LAUNCHER = """
import os, subprocess, sys, time
begun = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(time.perf_counter() - begun, usage.ru_utime, usage.ru_stime, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def _measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MiB) of one whole process, its output to /dev/null,
    from the kernel's accounting of that child alone (``wait4``), started by a small launcher."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        if _TIME:
            launcher = ["/usr/bin/time", "-f", "%e %U %S %M %x", "-o", report.name, *argv]
        else:
            launcher = [sys.executable, "-c", _LAUNCHER, *argv]
        done = subprocess.run(launcher, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        text = report.read() if _TIME else done.stdout
    wall, user, system, kib, code = text.split()[-5:]
    if int(code) != 0:
        raise RuntimeError(f"{argv[3:]} exited {code}")
    return float(wall), float(user) + float(system), int(kib) / 1024


def _median_run(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """The medians of ``runs`` runs of :func:`_measure`."""
    samples = [_measure(argv, env) for _ in range(runs)]
    return tuple(statistics.median(s[i] for s in samples) for i in range(3))  # type: ignore[return-value]


def _cpu_seconds(pid: int) -> float:
    """A running process's user + system CPU seconds so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _page_through(client: Any, params: dict[str, str]) -> tuple[list[str], list[float]]:
    """Every id the API lists with ``params``, following ``next``, and each page's seconds."""
    ids: list[str] = []
    latencies: list[float] = []
    after: str | None = None
    while True:
        query = {**params, **({"after": after} if after else {})}
        begun = time.perf_counter()
        answer = client.get("/v1/connections", params=query)
        latencies.append(time.perf_counter() - begun)
        answer.raise_for_status()
        body = answer.json()
        ids += [c["id"] for c in body["data"]]
        after = body["next"]
        if after is None:
            return ids, latencies


def bench_api(home: Path, env: dict[str, str], count: int, floor_mib: float) -> None:
    import httpx

    port = _free_port()
    server_env = env | {"CONNECTOR_SERVE_API_KEYS": API_KEY}
    argv = [sys.executable, "-m", "connector_core", "--home", str(home), "serve", "--port", str(port), "--no-keeper"]
    server = subprocess.Popen(argv, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, trust_env=False) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("connector serve did not start")
                time.sleep(0.1)
            client.get("/v1/connections", params={"limit": "1"}).raise_for_status()  # first request's imports
            idle = _proc_mib(server.pid, "VmRSS")
            passes = (("every connection", {"limit": "200"}), ("status=connected", {"status": "connected"}))
            for label, params in passes:
                begun, cpu = time.perf_counter(), _cpu_seconds(server.pid)
                ids, latencies = _page_through(client, params)
                seconds, cpu = time.perf_counter() - begun, _cpu_seconds(server.pid) - cpu
                complete = len(ids) == count and len(set(ids)) == count and ids == sorted(ids)
                size = params.get("limit", "50")
                listed = f"all {count:,} ids once, in order" if complete else f"INCOMPLETE: {len(ids):,} ids"
                row(f"API {label}: {len(latencies)} pages of {size}", f"{seconds:.2f} s", listed)
                row(
                    "  the server's CPU per page",
                    f"{cpu / len(latencies) * 1000:.1f} ms",
                    f"{cpu:.2f} s in all; the client's parsing and the loop share the 2 cores",
                )
                row(
                    "  each page p50 / p99",
                    f"{percentile(latencies, 50) * 1000:.1f} / {percentile(latencies, 99) * 1000:.1f} ms",
                    "keyset pages: the same cost at the last page as at the first",
                )
            peak = _proc_mib(server.pid, "VmHWM")
            row(
                "API server peak RSS (VmHWM) after paging everything",
                f"{peak:.1f} MiB",
                f"{peak - idle:+.1f} MiB over the idle server ({idle:.1f} MiB after its first request: "
                f"starlette, uvicorn, the app); the CLI's target {RSS_TARGET_MIB:.0f} MiB, floor {floor_mib:.1f}",
            )
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def bench(quick: bool) -> None:
    from connector_core.store.sql import _CONNECTION_SELECT

    count = 20_000 if quick else 100_000
    runs = 1 if quick else 3
    print(f"listings ({count:,} connections; CLI figures: median of {runs} whole processes, output to /dev/null)")
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp:
        home, env, store, profile = bench_store(Path(tmp))
        begun = time.perf_counter()
        populate(store, profile, count)
        store.close()
        row("populate (one transaction, tokens encrypted)", f"{time.perf_counter() - begun:.1f} s")
        cli_env = clean_env() | env
        cli = [sys.executable, "-m", "connector_core", "--home", str(home), "connections", "list"]
        _measure([*cli, "--limit", "1"], cli_env)  # bytecode caches written, unmeasured
        _, _, bare = _median_run([sys.executable, "-c", "pass"], cli_env, runs)
        start_s, start_cpu, floor = _median_run([*cli, "--limit", "1"], cli_env, runs)
        row("bare interpreter (python -c pass): peak RSS", f"{bare:.1f} MiB", "what no Python process goes below")
        row(
            "connections list --limit 1: peak RSS",
            f"{floor:.1f} MiB",
            f"interpreter + imports + the store: any listing's floor ({floor - bare:+.1f} MiB over bare)",
        )
        row(
            "connections list --limit 1: wall / CPU",
            f"{start_s:.2f} / {start_cpu:.2f} s",
            "the start-up every listing pays",
        )
        floor_script = _ROWS_FLOOR.format(select=_CONNECTION_SELECT, db=str(home / "connector.db"), count=count)
        rows_s, rows_cpu, rows_mib = _median_run([sys.executable, "-c", floor_script], cli_env, runs)
        row(
            "sqlite3 alone reads every row (pages of 500): wall / CPU",
            f"{rows_s:.2f} / {rows_cpu:.2f} s",
            f"{rows_mib:.1f} MiB; the floor of reading them into Python at all",
        )
        for label, extra in (("connections list (table)", []), ("connections list --json", ["--json"])):
            seconds, cpu, mib = _median_run([*cli, *extra], cli_env, runs)
            # At 100,000: the start-up plus this run's time per row beyond it (the quick run's estimate).
            at_full = start_cpu + (cpu - start_cpu) * 100_000 / count
            time_bound = f"target <= {JSON_TARGET_S:.0f} s at 100,000" if extra else "two passes (widths, then rows)"
            if count != 100_000:
                time_bound += f"; {at_full:.2f} s CPU at 100,000 at this rate"
            row(
                f"{label}: wall / CPU",
                f"{seconds:.2f} / {cpu:.2f} s",
                f"{time_bound}; CPU {cpu / rows_cpu:.1f}x the rows floor's",
            )
            row(
                f"{label}: peak RSS",
                f"{mib:.1f} MiB",
                f"target <= {RSS_TARGET_MIB:.0f} MiB; floor {floor:.1f} MiB (+{mib - floor:.1f}); bare {bare:.1f} MiB",
            )
        seconds, cpu, mib = _median_run([*cli, "--json", "--end-user", "user-7"], cli_env, runs)
        row(
            "connections list --json --end-user user-7: wall / CPU",
            f"{seconds:.2f} / {cpu:.2f} s",
            f"{mib:.1f} MiB; 1 in 300 listed, through its index",
        )
        bench_api(home, env, count, floor)


if __name__ == "__main__":
    bench("--quick" in sys.argv[1:])
