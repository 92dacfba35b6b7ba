"""Many workers, one PostgreSQL store: the multi-process refresh workload.

Used by ``tests/store/test_multiprocess.py`` and ``benchmarks/pg.py``. The test process
runs the HiBob emulator and a PostgreSQL store with N connections (one emulated
company each, connected through the real OAuth flow). W worker processes (this file
run as a script) each open the store on their own, like service replicas on other
hosts, and call the emulator with every connection, T threads each.

The run goes in epochs. At the start of one, every access token expires: the store
records them as expired and the emulator's clock moves past their lifetime, so a
stale token would also be refused by the server. The workers then make P passes
over all connections in their own shuffled order; the first call to each connection
in each worker finds it expired. Single-flight means exactly one refresh per
connection per epoch, whichever worker gets there first; the others wait on the row
lock and then use the fresh token.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

REDIRECT = "https://platform.example/connect/oauth2/hibob/callback"
PROFILE = "acme-sandbox"
#: The call each worker makes with each connection.
CALL = ("GET", "/company/named-lists")


# ------------------------------------------------------------- the test process


def make_profile(store: Any, emu: Any, plugins: Any, name: str = PROFILE) -> None:
    """A profile of the emulator's test app (sandbox), as the suite's other tests make it."""
    # Here, not at the top: a worker runs this file as a script, where ``support`` is not importable.
    from support import create_emulator_profile

    create_emulator_profile(store, plugins, emu, name)


def connect_many(connector: Any, emu: Any, count: int, *, threads: int = 8) -> list[str]:
    """``count`` connections, each a new emulated company, through the full OAuth flow."""
    from connector_core.testing import Harness

    companies = [emu.add_company().id for _ in range(count)]

    def one(company: str) -> str:
        start = connector.begin(PROFILE)
        return str(connector.complete(Harness.consent(start.url, company=company), profile=PROFILE).connection.id)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, companies))


def expire_all(store: Any, emu: Any) -> None:
    """Every access token expires now: in the store's records and at the server."""
    with store._write() as db:
        db.execute("UPDATE connections SET expires_at = extract(epoch FROM now()) - 1")
    emu.advance_clock(emu.access_token_lifetime + 1)


@attrs.frozen
class EpochResult:
    """One epoch, all workers added up."""

    requests: int
    statuses: dict[int, int]
    #: (connection id, error) for calls that raised; auth failures among them too.
    errors: tuple[tuple[str, str], ...]
    #: Calls that ended in 401 or ReconnectRequired.
    auth_failures: int
    refreshes: int
    #: Wall time until every worker finished its first pass (where the refreshes happen).
    first_pass_seconds: float
    seconds: float
    lock: dict[str, int]


@attrs.define
class Workers:
    """W worker processes on one store; drive them epoch by epoch."""

    procs: list[subprocess.Popen[str]]
    ids_file: Path

    def _send(self, message: dict[str, Any]) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()

    def _receive(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"worker {proc.pid} ended: {err[-2000:]}")
        data: dict[str, Any] = json.loads(line)
        return data

    def run_epoch(self, epoch: int, passes: int, emu: Any, *, shuffle: bool = True) -> EpochResult:
        """One epoch: every worker makes ``passes`` passes over all connections, in its own
        shuffled order (or all in the same order: the worst contention)."""
        before = emu.stats.token_requests.get("refresh_token", 0)
        started = time.monotonic()
        self._send({"cmd": "run", "epoch": epoch, "passes": passes, "shuffle": shuffle})
        reports = [self._receive(p) for p in self.procs]
        seconds = time.monotonic() - started
        statuses: Counter[int] = Counter()
        lock: Counter[str] = Counter()
        errors: list[tuple[str, str]] = []
        for report in reports:
            statuses.update({int(k): v for k, v in report["statuses"].items()})
            lock.update(report["lock"])
            errors.extend((cid, err) for cid, err in report["errors"])
        return EpochResult(
            requests=sum(r["requests"] for r in reports),
            statuses=dict(statuses),
            errors=tuple(errors),
            auth_failures=sum(r["auth_failures"] for r in reports),
            refreshes=emu.stats.token_requests.get("refresh_token", 0) - before,
            first_pass_seconds=max(r["first_pass_seconds"] for r in reports),
            seconds=seconds,
            lock=dict(lock),
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.write(json.dumps({"cmd": "stop"}) + "\n")
                    proc.stdin.close()
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


#: How a worker process gets its store's URL (with its password): the environment, not argv.
WORKER_STORE_URL = "WORKLOAD_STORE_URL"


@contextmanager
def start_workers(
    url: str, key_file: Path, ids: Sequence[str], *, workers: int, threads: int, tmp: Path
) -> Iterator[Workers]:
    """``workers`` processes on the store at ``url``, ready to run epochs; stopped at the end."""
    ids_file = tmp / "connection-ids.json"
    ids_file.write_text(json.dumps(list(ids)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_"))}
    env["CONNECTOR_CORE_KEY_FILE"] = str(key_file)
    env[WORKER_STORE_URL] = url  # the URL holds the store's password: never in argv, which ps shows
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(ids_file), str(threads), str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(workers)
    ]
    group = Workers(procs, ids_file)
    try:
        for proc in procs:
            assert group._receive(proc) == {"ready": True}
        yield group
    finally:
        group.stop()


# ------------------------------------------------------------------ a worker


@attrs.define
class _Tally:
    """What one worker's calls did in one epoch (updated from its threads)."""

    statuses: Counter[int] = attrs.Factory(Counter)
    errors: list[tuple[str, str]] = attrs.Factory(list)
    auth_failures: int = 0
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def call(self, connector: Any, cid: str) -> None:
        from connector_core.connector import ReconnectRequired
        from connector_core.errors import ConnectorError

        try:
            status = connector.request(cid, *CALL).status
        except ConnectorError as exc:
            with self.lock:
                self.auth_failures += isinstance(exc, ReconnectRequired)
                self.errors.append((cid, exc.message))
            return
        with self.lock:
            self.statuses[status] += 1
            self.auth_failures += status == 401


def _worker(url: str, ids_file: str, threads: int, seed: int) -> None:  # pragma: no cover - in subprocesses
    from functools import partial

    from connector_core import load_plugins
    from connector_core.connector import Connector
    from connector_core.store import PgStore
    from connector_hibob import plugin

    ids = json.loads(Path(ids_file).read_text())
    store = PgStore(url)
    connector = Connector(store, load_plugins([plugin], entry_points=False))
    connector.client  # noqa: B018 - one pooled HTTP client, shared by the threads
    rng = random.Random(seed)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        message = json.loads(line)
        if message["cmd"] == "stop":
            break
        tally = _Tally()
        before = store.stats.as_dict()
        started = time.monotonic()
        first_pass = 0.0
        with ThreadPoolExecutor(threads) as pool:
            for n in range(message["passes"]):
                order = list(ids)
                if message.get("shuffle", True):
                    rng.shuffle(order)
                list(pool.map(partial(tally.call, connector), order))
                if n == 0:
                    first_pass = time.monotonic() - started
        after = store.stats.as_dict()
        report = {
            "requests": sum(tally.statuses.values()) + len(tally.errors),
            "statuses": dict(tally.statuses),
            "errors": tally.errors[:50],
            "auth_failures": tally.auth_failures,
            "first_pass_seconds": first_pass,
            "seconds": time.monotonic() - started,
            "lock": {k: after[k] - before[k] for k in after},
        }
        print(json.dumps(report), flush=True)
    connector.close()
    store.close()


if __name__ == "__main__":  # pragma: no cover - a worker process
    _worker(os.environ.pop(WORKER_STORE_URL), sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
