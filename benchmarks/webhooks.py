"""Webhook figures: deliveries per second to a receiver on 127.0.0.1, and what the outbox costs
the change that records an event.

    python benchmarks/webhooks.py            # SQLite, and PostgreSQL when there is one (a few minutes)
    python benchmarks/webhooks.py --quick    # smaller sizes (about 15 s)

Sections:
  fanout    events recorded per second (each its own transaction, as a change records it) with 0, 1
            and 5 subscribed endpoints: the outbox rows are written in the event's transaction
  deliver   N pending deliveries to one receiver (Python's threaded http.server, keep-alive, answering
            204 after checking the signature, at once or after 20 ms): deliveries/s by the deliverer's
            concurrency, beside the receiver's capacity (a bare keep-alive client posting the same
            signed body at the same concurrency; the receiver runs in this process, so at once both
            share one interpreter)
  pg        the same on PostgreSQL, and two deliverers over two store handles sharing one outbox

The PostgreSQL section starts a throwaway cluster on 127.0.0.1 (``connector_core.testing.postgres``,
as the tests do), or uses ``CONNECTOR_TEST_POSTGRES_URL``; without either it says so. Nothing here
is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import heading, postgres_server, row, skip_postgres

#: Issue 19's target for deliveries to a local receiver.
TARGET = 500


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
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def capacity(self, n: int, concurrency: int) -> float:
        """Posts per second a bare keep-alive client (``concurrency`` threads of http.client)
        gets answered, with a body signed as a delivery is: the yardstick for a deliverer."""
        from connector_core.webhooks import new_secret, webhook_headers

        secret = new_secret()
        self.secrets = [*self.secrets, secret.reveal()]
        body = b'{"id":"evt_bench","type":"connection.created","data":{}}'
        headers = webhook_headers([secret], "evt_bench", int(time.time()), body)
        port = self.server.server_address[1]
        before = self.count

        def post(count: int) -> None:
            client = http.client.HTTPConnection("127.0.0.1", port)
            for _ in range(count):
                client.request("POST", "/hooks", body, headers)
                client.getresponse().read()
            client.close()

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, [n // concurrency] * concurrency))
        elapsed = time.perf_counter() - started
        done = self.count - before
        self.secrets = self.secrets[:-1]
        return done / elapsed


def _events(store: Any, n: int) -> float:
    """Record ``n`` events, one transaction each; the seconds it took."""
    from connector_core.events import EventType

    started = time.perf_counter()
    for index in range(n):
        with store._write() as tx:
            store._emit(tx, EventType.CREATED, connection={"id": f"conn_{index}"}, details={"n": index})
    return time.perf_counter() - started


def _drain(deliverers: list[Any], store: Any) -> float:
    """Run the deliverers (each in a thread of its own) until nothing is due; the seconds it took.
    A delivery that failed waits for its retry: the caller reports those left in the outbox."""

    def work(deliverer: Any) -> None:
        while deliverer.run_once().claimed:
            pass

    started = time.perf_counter()
    with ThreadPoolExecutor(len(deliverers)) as pool:
        list(pool.map(work, deliverers))
    return time.perf_counter() - started


def bench_fanout(open_store: Any, quick: bool, counts: tuple[int, ...] = (0, 1, 5)) -> None:
    import contextlib
    import statistics

    from connector_core.webhooks import add_endpoint

    n, rounds = (200, 4) if quick else (1000, 5)
    heading(f"recording events with the outbox ({n} events, one transaction each, in {rounds} paired rounds)")
    with contextlib.ExitStack() as stack:
        stores = {endpoints: stack.enter_context(open_store()) for endpoints in counts}
        for endpoints, store in stores.items():
            for _ in range(endpoints):
                add_endpoint(store, "http://127.0.0.1:9/hooks")
            _events(store, 20)  # warm: the first transactions of a store open its connections
        times: dict[int, list[float]] = {endpoints: [] for endpoints in counts}
        for _ in range(rounds):  # round by round, so that noise falls on every count alike
            for endpoints, store in stores.items():
                times[endpoints].append(_events(store, n // rounds))
    for endpoints in counts:
        per_event = sum(times[endpoints]) / (n // rounds * rounds)
        ratio = statistics.median(a / b for a, b in zip(times[endpoints], times[counts[0]], strict=True))
        row(
            f"{endpoints} endpoint(s)",
            f"{1 / per_event:,.0f} ev/s",
            f"{per_event * 1000:.2f} ms per event; "
            + (f"{ratio:.2f}x the time with none (median per round)" if endpoints else "the yardstick: no outbox rows"),
        )


def bench_deliver(
    open_store: Any, quick: bool, label: str, delay: float = 0.0, concurrencies: tuple[int, ...] = (1, 8, 16)
) -> None:
    from connector_core.webhooks import WebhookDeliverer, add_endpoint

    n = (300 if quick else 2000) if not delay else (100 if quick else 600)
    slow = f", answering after {delay * 1000:.0f} ms" if delay else ""
    heading(f"delivering to a receiver on 127.0.0.1 ({label}, {n} deliveries{slow})")
    for concurrency in concurrencies:
        receiver = Receiver(delay)
        try:
            with open_store() as store:
                _, secret = add_endpoint(store, receiver.url)
                receiver.secrets = [secret.reveal()]
                _events(store, n)
                with WebhookDeliverer(store, concurrency=concurrency) as deliverer:
                    elapsed = _drain([deliverer], store)
                    left = store.outbox_depth()
                received = receiver.count
                rate = received / elapsed
                bare = receiver.capacity(max(n, 40 * concurrency), concurrency)
                ideal = f"; at most {concurrency / delay:,.0f} /s at {delay * 1000:.0f} ms each" if delay else ""
                row(
                    f"concurrency {concurrency}",
                    f"{rate:,.0f} /s",
                    f"{rate / bare:.2f}x a bare keep-alive client's {bare:,.0f} /s{ideal}; target >= {TARGET} /s; "
                    f"{left} failed, left for a retry (target: 0)",
                )
        finally:
            receiver.close()


def bench_pg(tmp: Path, quick: bool) -> None:
    from connector_core.store import PgStore
    from connector_core.testing.postgres import fresh_schema
    from connector_core.webhooks import WebhookDeliverer, add_endpoint

    if skip_postgres("webhooks on PostgreSQL"):
        return
    env = {"CONNECTOR_CORE_KEY_FILE": str(tmp / "pg-keys.json")}
    with postgres_server() as server:

        def open_store() -> Any:
            schema = fresh_schema(server, "hooks")
            url = schema.__enter__()
            store = PgStore(url, env=env)
            store.close = _closing(store.close, schema)  # type: ignore[method-assign]
            return store

        bench_fanout(open_store, quick, (0, 5) if quick else (0, 1, 5))
        bench_deliver(open_store, quick, "PostgreSQL", concurrencies=(16,) if quick else (1, 8, 16))
        n = 300 if quick else 2000
        heading(f"two deliverers on two store handles sharing one outbox (PostgreSQL, {n} deliveries)")
        receiver = Receiver()
        try:
            with fresh_schema(server, "hooks") as url, PgStore(url, env=env) as one, PgStore(url, env=env) as two:
                _, secret = add_endpoint(one, receiver.url)
                receiver.secrets = [secret.reveal()]
                _events(one, n)
                deliverers = [WebhookDeliverer(s, concurrency=8) for s in (one, two)]
                elapsed = _drain(deliverers, one)
                left = one.outbox_depth()
                for deliverer in deliverers:
                    deliverer.close()
                received = receiver.count
                bare = receiver.capacity(max(n, 640), 16)
                row(
                    "2 x concurrency 8",
                    f"{n / elapsed:,.0f} /s",
                    f"{n / elapsed / bare:.2f}x a bare keep-alive client's {bare:,.0f} /s at concurrency 16; "
                    f"{received + left - n} delivered twice or more, {left} failed (target: 0 and 0)",
                )
        finally:
            receiver.close()


def _closing(close: Any, schema: Any) -> Any:
    def both() -> None:
        close()
        schema.__exit__(None, None, None)

    return both


def bench(quick: bool) -> None:
    """The section for benchmarks/run.py: SQLite, then PostgreSQL when there is one."""
    from connector_core.store import Store

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        counter = iter(range(1000))

        def open_sqlite() -> Any:
            return Store.open(tmp / f"home{next(counter)}", env={"CONNECTOR_CORE_KEY_FILE": str(tmp / "keys.json")})

        bench_fanout(open_sqlite, quick)
        bench_deliver(open_sqlite, quick, "SQLite", concurrencies=(1, 16) if quick else (1, 8, 16))
        bench_deliver(open_sqlite, quick, "SQLite", delay=0.02, concurrencies=(16,) if quick else (1, 8, 16))
        bench_pg(tmp, quick)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    bench(parser.parse_args().quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
