"""Webhook figures: deliveries per second to a receiver on 127.0.0.1, and what the outbox costs
the change that records an event.

    python benchmarks/webhooks.py            # SQLite (about a minute on 2 cores)
    python benchmarks/webhooks.py --quick    # smaller sizes
    python benchmarks/webhooks.py --no-pg    # SQLite only (PostgreSQL runs when its binaries are installed)

Sections:
  fanout    events recorded per second (each its own transaction, as a change records it) with 0, 1
            and 5 subscribed endpoints: the outbox rows are written in the event's transaction
  deliver   N pending deliveries to one receiver (benchmarks/service.py's: asyncio, in a process of
            its own, keep-alive, answering 204 after checking the signature, at once or after 20 ms):
            deliveries/s by the deliverer's concurrency, from the first received to the last
  pg        the same on PostgreSQL, and two deliverers over two store handles sharing one outbox

The PostgreSQL section starts a throwaway cluster on 127.0.0.1 (``connector_core.testing.postgres``,
as the tests do), or uses ``CONNECTOR_TEST_POSTGRES_URL``; without either it says so. Nothing here
is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import postgres_server, row, skip_postgres
from service import ReceiverProcess

from connector_core.testing.postgres import fresh_schema


def _events(store: Any, n: int) -> float:
    """Record ``n`` events, one transaction each; the seconds it took."""
    from connector_core.events import EventType

    started = time.perf_counter()
    for index in range(n):
        with store._write() as tx:
            store._emit(tx, EventType.CREATED, connection={"id": f"conn_{index}"}, details={"n": index})
    return time.perf_counter() - started


def _drain(deliverers: list[Any], store: Any) -> float:
    """Run the deliverers (each in a thread of its own) until the outbox is empty; the seconds it took."""

    def work(deliverer: Any) -> None:
        while deliverer.run_once().claimed:
            pass

    started = time.perf_counter()
    with ThreadPoolExecutor(len(deliverers)) as pool:
        list(pool.map(work, deliverers))
    elapsed = time.perf_counter() - started
    assert store.outbox_depth() == 0
    return elapsed


def bench_fanout(open_store: Any, quick: bool) -> None:
    from connector_core.webhooks import add_endpoint

    n = 300 if quick else 1000
    print(f"recording events with the outbox ({n} events, one transaction each)")
    base = 0.0
    for endpoints in (0, 1, 5):
        with open_store() as store:
            for _ in range(endpoints):
                add_endpoint(store, "http://127.0.0.1:9/hooks")
            elapsed = _events(store, n)
            per = elapsed / n
            base = base or per
            bound = "the yardstick: an event with no outbox row" if not endpoints else f"{per / base:.2f}x no endpoint"
            row(f"{endpoints} endpoint(s)", f"{n / elapsed:,.0f} ev/s", f"{per * 1000:.2f} ms per event; {bound}")


def bench_deliver(open_store: Any, quick: bool, label: str, delay: float = 0.0) -> None:
    from connector_core.webhooks import WebhookDeliverer, add_endpoint

    n = (500 if quick else 2000) if not delay else (200 if quick else 600)
    slow = f", answering after {delay * 1000:.0f} ms" if delay else ""
    print(f"delivering to a receiver on 127.0.0.1 ({label}, {n} deliveries{slow})")
    for concurrency in (1, 8, 16):
        with ReceiverProcess(delay=delay) as receiver, open_store() as store:
            _, secret = add_endpoint(store, receiver.url)
            assert secret is not None
            receiver.expect(n, secret.reveal())
            _events(store, n)
            with WebhookDeliverer(store, concurrency=concurrency) as deliverer:
                elapsed = _drain([deliverer], store)
            seen = receiver.result()
            assert seen["distinct"] == n
            assert not seen["bad"]
            ideal = f"; at most {concurrency / delay:,.0f} /s at {delay * 1000:.0f} ms an answer" if delay else ""
            row(
                f"concurrency {concurrency}",
                f"{n / elapsed:,.0f} /s",
                f"{elapsed:.2f} s, claim to record; target >= 500 /s{ideal}; {seen['distinct']}/{n} ids received",
            )


def bench_pg(tmp: Path, quick: bool) -> None:
    from connector_core.store import PgStore
    from connector_core.webhooks import WebhookDeliverer, add_endpoint

    env = {"CONNECTOR_CORE_KEY_FILE": str(tmp / "pg-keys.json")}
    with postgres_server() as server:

        def open_store() -> Any:
            schema = fresh_schema(server, "wh")
            url = schema.__enter__()
            store = PgStore(url, env=env)
            store.close = _closing(store.close, schema)  # type: ignore[method-assign]
            return store

        bench_fanout(open_store, quick)
        bench_deliver(open_store, quick, "PostgreSQL")
        n = 500 if quick else 2000
        print(f"two deliverers on two store handles sharing one outbox (PostgreSQL, {n} deliveries)")
        with (
            ReceiverProcess() as receiver,
            fresh_schema(server, "wh") as url,
            PgStore(url, env=env) as one,
            PgStore(url, env=env) as two,
        ):
            _, secret = add_endpoint(one, receiver.url)
            assert secret is not None
            receiver.expect(n, secret.reveal())
            _events(one, n)
            deliverers = [WebhookDeliverer(s, concurrency=8) for s in (one, two)]
            elapsed = _drain(deliverers, one)
            for deliverer in deliverers:
                deliverer.close()
            seen = receiver.result()
            row(
                "2 x concurrency 8",
                f"{n / elapsed:,.0f} /s",
                f"{elapsed:.2f} s, {seen['received']} received; target >= 500 /s; one deliverer's figure above",
            )


def _closing(close: Any, schema: Any) -> Any:
    def both() -> None:
        close()
        schema.__exit__(None, None, None)

    return both


def bench(quick: bool, pg: bool = True) -> None:
    """The section for benchmarks/run.py: SQLite, then PostgreSQL where its binaries are installed."""
    from connector_core.store import Store

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        counter = iter(range(1000))

        def open_sqlite() -> Any:
            return Store.open(tmp / f"home{next(counter)}", env={"CONNECTOR_CORE_KEY_FILE": str(tmp / "keys.json")})

        bench_fanout(open_sqlite, quick)
        bench_deliver(open_sqlite, quick, "SQLite")
        if not quick:
            bench_deliver(open_sqlite, quick, "SQLite", delay=0.02)
        if pg and not skip_postgres("webhook deliveries on PostgreSQL"):
            bench_pg(tmp, quick)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    bench(args.quick, pg=not args.no_pg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
