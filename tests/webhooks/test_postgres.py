"""Several deliverers on one PostgreSQL store share the outbox: claims are taken with ``FOR UPDATE
SKIP LOCKED``, so no delivery is ever claimed by two of them at once; two deliverers over two
store handles (two processes, as far as the database can tell) deliver every event exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from connector_core.crypto import ENV_KEY_FILE
from connector_core.store.postgres import PgStore
from connector_core.webhooks import DeliveryReport, DeliveryStatus, WebhookDeliverer, add_endpoint

from .conftest import Receiver, record_events


@pytest.fixture
def stores(pg_url: str, tmp_path: Path) -> Iterator[tuple[PgStore, PgStore]]:
    env = {ENV_KEY_FILE: str(tmp_path / "keys.json")}
    with PgStore(pg_url, env=env) as first, PgStore(pg_url, env=env) as second:
        yield first, second


def test_racing_claims_never_share_a_delivery(stores: tuple[PgStore, PgStore]) -> None:
    first, second = stores
    add_endpoint(first, "http://127.0.0.1:9/hooks")
    record_events(first, 200)
    now = time.time() + 1
    start = threading.Barrier(8)

    def claim(n: int) -> list[str]:
        store = (first, second)[n % 2]
        start.wait()
        taken: list[str] = []
        # A claimer takes its own claims back: each round claims under a name of its own.
        while batch := store.claim_webhook_deliveries(f"claimer-{n}-{len(taken)}", now=now, ttl=300, limit=7):
            taken += [d.id for d in batch]
        return taken

    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(claim, range(8)))
    every = [delivery_id for taken in claims for delivery_id in taken]
    assert len(every) == len(set(every)) == 200  # each claimed once, by one claimer
    assert sum(1 for taken in claims if taken) > 1  # the outbox was shared


def test_two_deliverers_deliver_every_event_exactly_once(stores: tuple[PgStore, PgStore]) -> None:
    first, second = stores
    receiver = Receiver()
    endpoint, secret = add_endpoint(first, receiver.url)
    assert secret is not None
    receiver.secrets = [secret.reveal()]
    receiver.delay = 0.005
    receiver.start()
    ids = record_events(first, 240)
    start = threading.Barrier(2)

    def deliver(store: PgStore) -> DeliveryReport:
        total = DeliveryReport()
        with WebhookDeliverer(store, concurrency=4) as deliverer:
            start.wait()
            while (report := deliverer.run_once(limit=8)).claimed:
                total += report
        return total

    try:
        with ThreadPoolExecutor(2) as pool:
            reports = list(pool.map(deliver, (first, second)))
    finally:
        receiver.stop()
    print(f"\ndeliveries by deliverer: {[r.delivered for r in reports]}")
    assert sum(r.delivered for r in reports) == 240 and all(r.retried == r.failed == 0 for r in reports)
    assert Counter(got.webhook_id for got in receiver.received) == Counter(ids)  # exactly once each
    assert all(got.ours and got.theirs for got in receiver.received)
    deliveries = second.list_webhook_deliveries(endpoint_id=endpoint.id, with_log=False, limit=1000)
    assert len(deliveries) == 240 and {d.status for d in deliveries} == {DeliveryStatus.DELIVERED}
