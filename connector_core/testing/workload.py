"""Many worker processes, one store: the multi-process refresh workload.

A store that many service replicas share must refresh each expiring connection exactly once,
whichever replica gets there first, and no call may fail for auth reasons meanwhile. This
module puts a store to that test (the project's own ``tests/store/test_multiprocess.py``) and
measures it (``benchmarks/pg.py``).

The calling process holds the store (with N connections) and the provider's emulator.
:func:`start_workers` starts W worker processes (this module, run with ``python -m``), each
opening the store by URL on its own, like replicas on other hosts, and calling the provider
with every connection from T threads. The run goes in epochs: the caller makes every access
token expire (:func:`expire_tokens`, and the emulator's clock moved past their lifetime, so a
stale token would also be refused by the server), then :meth:`Workers.run_epoch` has every
worker make P passes over all connections, in its own shuffled order or all in the same
order (a refresh storm). The first call to each connection in each worker finds it expired;
single-flight means one refresh per connection per epoch, the other workers waiting on the
lease and then using the fresh token::

    with start_workers(url, key_file, ids, call=("GET", "/me"), workers=8, threads=4, tmp=tmp) as group:
        expire_tokens(store)
        emulator.advance_clock(emulator.access_token_lifetime + 1)
        result = group.run_epoch(1, passes=2, refresh_count=lambda: emulator.stats.token_requests["refresh_token"])
        assert result.refreshes == len(ids) and result.errors == ()

The workers' store URL travels in their environment (it may hold a password: never in argv,
which ``ps`` shows) and their keys come from ``key_file``. They load the plugins named by
``plugin_modules`` (registered directly) or, without any, the installed ones.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ..connector import Connector

__all__ = ["EpochResult", "Workers", "expire_tokens", "start_workers"]

#: How a worker process gets its store's URL: the environment, not argv.
WORKER_STORE_URL = "CONNECTOR_WORKLOAD_STORE_URL"
#: How a worker process gets its key file.
WORKER_KEY_FILE = "CONNECTOR_CORE_KEY_FILE"


# ------------------------------------------------------------- the calling process


def expire_tokens(store: Any) -> None:
    """Every access token in ``store`` (one of the built-in stores: SQLite or PostgreSQL) expired a
    second ago, in the store's records. The caller moves its emulator's clock too."""
    with store._write() as db:
        db.execute("UPDATE connections SET expires_at = ?", (time.time() - 1,))


@attrs.frozen
class EpochResult:
    """One epoch, all workers added up."""

    #: Calls made (answered or raised).
    requests: int
    #: HTTP status -> how many calls got it.
    statuses: dict[int, int]
    #: (connection id, error message) for calls that raised, the first 50 per worker.
    errors: tuple[tuple[str, str], ...]
    #: Calls that ended in 401 or ReconnectRequired.
    auth_failures: int
    #: Token refreshes the server saw during the epoch (``refresh_count`` after minus before).
    refreshes: int
    #: Wall time until every worker finished its first pass (where the refreshes happen).
    first_pass_seconds: float
    #: Wall time of the whole epoch.
    seconds: float
    #: The workers' refresh-lock statistics over the epoch, added up (a PostgreSQL store's
    #: ``LockStats``: acquired, waited, timed_out, released_unused, saved; empty for others).
    lock: dict[str, int]


@attrs.define
class Workers:
    """W worker processes on one store (from :func:`start_workers`); drive them epoch by epoch."""

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

    def run_epoch(
        self, epoch: int, passes: int, *, refresh_count: Callable[[], int], shuffle: bool = True
    ) -> EpochResult:
        """One epoch: every worker makes ``passes`` passes over all connections, each in its own
        shuffled order (or, ``shuffle=False``, all in the same order: the worst contention).
        ``refresh_count`` reads how many token refreshes the server has answered so far."""
        before = refresh_count()
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
            refreshes=refresh_count() - before,
            first_pass_seconds=max(r["first_pass_seconds"] for r in reports),
            seconds=seconds,
            lock=dict(lock),
        )

    def stop(self) -> None:
        """Ask every worker to stop and wait for it (killed after 30 s)."""
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


@contextmanager
def start_workers(
    url: str,
    key_file: Path,
    ids: Sequence[str],
    *,
    call: tuple[str, str],
    workers: int,
    threads: int,
    tmp: Path,
    plugin_modules: Sequence[str] = (),
    isolate: Sequence[str] = ("CONNECTOR_",),
) -> Iterator[Workers]:
    """``workers`` processes on the store at ``url`` (keys in ``key_file``), each ready to
    make the request ``call`` (method, path) with each of ``ids`` from ``threads`` threads;
    stopped when the block ends. ``plugin_modules`` are the modules the workers register as
    plugins (none: the installed ones); environment variables starting with one of
    ``isolate`` are not passed on. ``tmp`` holds the list of ids."""
    ids_file = tmp / "connection-ids.json"
    ids_file.write_text(json.dumps(list(ids)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(tuple(isolate))}
    env[WORKER_KEY_FILE] = str(key_file)
    env[WORKER_STORE_URL] = url  # the URL may hold the store's password: never in argv, which ps shows
    argv = [sys.executable, "-m", __name__, str(ids_file), str(threads), call[0], call[1], *plugin_modules]
    procs = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and module
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "CONNECTOR_WORKLOAD_SEED": str(n)},
        )
        for n in range(workers)
    ]
    group = Workers(procs, ids_file)
    try:
        for proc in procs:
            if group._receive(proc) != {"ready": True}:
                raise RuntimeError(f"worker {proc.pid} did not start")
        yield group
    finally:
        group.stop()


# ------------------------------------------------------------------ a worker


@attrs.define
class _Tally:
    """What one worker's calls did in one epoch (updated from its threads)."""

    call: tuple[str, str]
    statuses: Counter[int] = attrs.Factory(Counter)
    errors: list[tuple[str, str]] = attrs.Factory(list)
    auth_failures: int = 0
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def make(self, connector: Connector, cid: str) -> None:
        # Here, not at the top: the calling process imports this module without them.
        from ..connector import ReconnectRequired
        from ..errors import ConnectorError

        try:
            status = connector.request(cid, *self.call).status
        except ConnectorError as exc:
            with self.lock:
                self.auth_failures += isinstance(exc, ReconnectRequired)
                self.errors.append((cid, exc.message))
            return
        with self.lock:
            self.statuses[status] += 1
            self.auth_failures += status == 401


def _lock_stats(store: Any) -> dict[str, int]:
    """The store's refresh-lock counters (a PostgreSQL store keeps them; others: none)."""
    stats = getattr(store, "stats", None)
    return dict(stats.as_dict()) if stats is not None else {}


def _say(message: dict[str, Any]) -> None:
    """One line of JSON to the calling process."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _worker(argv: Sequence[str]) -> None:  # pragma: no cover - in subprocesses
    # Here, not at the top: the calling process needs none of them.
    from ..connector import Connector
    from ..plugins import load_plugins
    from ..store import open_store

    ids_file, threads, method, path, *modules = argv
    ids = json.loads(Path(ids_file).read_text())
    store = open_store(os.environ.pop(WORKER_STORE_URL))
    plugins = (
        load_plugins([importlib.import_module(m) for m in modules], entry_points=False) if modules else load_plugins()
    )
    connector = Connector(store, plugins)
    connector.client  # noqa: B018 - one pooled HTTP client, shared by the threads
    rng = random.Random(int(os.environ.get("CONNECTOR_WORKLOAD_SEED", "0")))  # noqa: S311 - an order, not a secret
    _say({"ready": True})
    for line in sys.stdin:
        message = json.loads(line)
        if message["cmd"] == "stop":
            break
        tally = _Tally((method, path))
        before = _lock_stats(store)
        started = time.monotonic()
        first_pass = 0.0
        with ThreadPoolExecutor(int(threads)) as pool:
            for n in range(message["passes"]):
                order = list(ids)
                if message.get("shuffle", True):
                    rng.shuffle(order)
                list(pool.map(partial(tally.make, connector), order))
                if n == 0:
                    first_pass = time.monotonic() - started
        after = _lock_stats(store)
        report = {
            "requests": sum(tally.statuses.values()) + len(tally.errors),
            "statuses": dict(tally.statuses),
            "errors": tally.errors[:50],
            "auth_failures": tally.auth_failures,
            "first_pass_seconds": first_pass,
            "seconds": time.monotonic() - started,
            "lock": {k: after[k] - before[k] for k in after},
        }
        _say(report)
    connector.close()
    store.close()


if __name__ == "__main__":  # pragma: no cover - a worker process
    _worker(sys.argv[1:])
