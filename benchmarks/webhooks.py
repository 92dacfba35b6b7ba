"""Webhook figures: deliveries per second to a receiver on 127.0.0.1, and what the outbox costs
the change that records an event.

    python benchmarks/webhooks.py            # SQLite (about a minute on 2 cores)
    python benchmarks/webhooks.py --quick    # smaller sizes
    python benchmarks/webhooks.py --pg       # PostgreSQL too: one deliverer, and two sharing the outbox

Sections:
  fanout    events recorded per second (each its own transaction, as a change records it) with 0, 1
            and 5 subscribed endpoints: the outbox rows are written in the event's transaction
  deliver   N pending deliveries to one receiver (Python's threaded http.server, keep-alive, answering
            204 after checking the signature, at once or after 20 ms): deliveries/s by the deliverer's
            concurrency (the receiver runs in this process: at once, both share one interpreter)
  pg        the same on PostgreSQL, and two deliverers over two store handles sharing one outbox

The PostgreSQL section starts a throwaway cluster on 127.0.0.1 as the tests do
(tests/support/postgres.py), or uses ``CONNECTOR_TEST_POSTGRES_URL``. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import http.server
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the throwaway PostgreSQL cluster lives with the tests


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<52} {value:>14}  {note}")


class Receiver:
    """A receiver on 127.0.0.1 that checks each signature and answers 204."""

    def __init__(self, delay: float = 0.0) -> None:
        self.count = 0
        self.secrets: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                from connector_core.webhooks import verify

                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                verify(body, self.headers, receiver.secrets)
                if delay:
                    time.sleep(delay)
                with receiver.lock:
                    receiver.count += 1
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
    for endpoints in (0, 1, 5):
        with open_store() as store:
            for _ in range(endpoints):
                add_endpoint(store, "http://127.0.0.1:9/hooks")
            elapsed = _events(store, n)
            row(f"{endpoints} endpoint(s)", f"{n / elapsed:,.0f} ev/s", f"{elapsed / n * 1000:.2f} ms per event")


def bench_deliver(open_store: Any, quick: bool, label: str, delay: float = 0.0) -> None:
    from connector_core.webhooks import WebhookDeliverer, add_endpoint

    n = (500 if quick else 2000) if not delay else (200 if quick else 600)
    slow = f", answering after {delay * 1000:.0f} ms" if delay else ""
    print(f"delivering to a receiver on 127.0.0.1 ({label}, {n} deliveries{slow})")
    for concurrency in (1, 8, 16):
        receiver = Receiver(delay)
        try:
            with open_store() as store:
                _, secret = add_endpoint(store, receiver.url)
                receiver.secrets = [secret.reveal()]
                _events(store, n)
                with WebhookDeliverer(store, concurrency=concurrency) as deliverer:
                    elapsed = _drain([deliverer], store)
                assert receiver.count == n
                row(f"concurrency {concurrency}", f"{n / elapsed:,.0f} /s", f"{elapsed:.2f} s")
        finally:
            receiver.close()


def bench_pg(tmp: Path, quick: bool) -> None:
    from support.postgres import fresh_schema, postgres_url

    from connector_core.store import PgStore
    from connector_core.webhooks import WebhookDeliverer, add_endpoint

    env = {"CONNECTOR_CORE_KEY_FILE": str(tmp / "pg-keys.json")}
    with postgres_url() as server:

        def open_store() -> Any:
            schema = fresh_schema(server, "hooks")
            url = schema.__enter__()
            store = PgStore(url, env=env)
            store.close = _closing(store.close, schema)  # type: ignore[method-assign]
            return store

        bench_fanout(open_store, quick)
        bench_deliver(open_store, quick, "PostgreSQL")
        n = 500 if quick else 2000
        print(f"two deliverers on two store handles sharing one outbox (PostgreSQL, {n} deliveries)")
        receiver = Receiver()
        try:
            with fresh_schema(server, "hooks") as url, PgStore(url, env=env) as one, PgStore(url, env=env) as two:
                _, secret = add_endpoint(one, receiver.url)
                receiver.secrets = [secret.reveal()]
                _events(one, n)
                deliverers = [WebhookDeliverer(s, concurrency=8) for s in (one, two)]
                elapsed = _drain(deliverers, one)
                for deliverer in deliverers:
                    deliverer.close()
                row("2 x concurrency 8", f"{n / elapsed:,.0f} /s", f"{elapsed:.2f} s, {receiver.count} received")
        finally:
            receiver.close()


def _closing(close: Any, schema: Any) -> Any:
    def both() -> None:
        close()
        schema.__exit__(None, None, None)

    return both


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL too (a throwaway cluster)")
    args = parser.parse_args()
    from connector_core.store import Store

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        counter = iter(range(1000))

        def open_sqlite() -> Any:
            return Store.open(tmp / f"home{next(counter)}", env={"CONNECTOR_CORE_KEY_FILE": str(tmp / "keys.json")})

        bench_fanout(open_sqlite, args.quick)
        bench_deliver(open_sqlite, args.quick, "SQLite")
        bench_deliver(open_sqlite, args.quick, "SQLite", delay=0.02)
        if args.pg:
            bench_pg(tmp, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
