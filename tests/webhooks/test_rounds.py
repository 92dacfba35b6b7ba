"""A deliverer's round costs the store the same whatever its size: its attempts are recorded in
one transaction (record_webhook_attempts, which moves each delivery on exactly as recording it
alone would), its events read in one query; and its HTTP connections are kept alive across
deliveries, without a cookie one receiver set riding along to another."""

from __future__ import annotations

import time
from typing import Any

import pytest

from connector_core.store.sql import SqlStore
from connector_core.webhooks import DeliveryStatus, WebhookDeliverer, add_endpoint
from connector_core.webhooks.outbox import AttemptRecord, AttemptResult, Delivery, utc_time

from .conftest import Receiver, public, record_events


def _state(store: SqlStore, delivery: Delivery) -> tuple[Any, ...]:
    """What recording changed in a delivery: everything but its id, endpoint and times of creation."""
    found = store.get_webhook_delivery(delivery.id)
    with store._read() as tx:
        claimed = tx.one("SELECT claimed_by, claimed_until FROM webhook_deliveries WHERE id = ?", (delivery.id,))
    log = [(a.attempt, a.at, a.status_code, a.latency_ms, a.response, a.error) for a in found.log]
    return found.status, found.attempts, found.next_attempt_at, found.finished_at, tuple(claimed), log


def test_a_batch_moves_each_delivery_on_as_recording_it_alone_would(store: SqlStore) -> None:
    alone, _ = add_endpoint(store, "https://one.example/hooks", resolve=public)
    batched, _ = add_endpoint(store, "https://two.example/hooks", resolve=public)
    record_events(store, 4)
    now = time.time() + 1
    claimed = store.claim_webhook_deliveries("me", now=now, ttl=30, limit=8)
    # My claims expired and another deliverer took the first event's two deliveries over (one per endpoint).
    taken = store.claim_webhook_deliveries("other", now=now + 31, ttl=30, limit=2)
    assert {d.endpoint_id for d in taken} == {alone.id, batched.id}
    at = utc_time(now)
    plan = [
        ("retry", AttemptRecord(at, 503, 4.5, "busy", "answered 503 Service Unavailable"), now + 60),
        ("delivered", AttemptRecord(at, 204, 2.0, "", None), None),
        ("failed", AttemptRecord(at, None, 10.0, None, "no answer within 10 s; given up"), None),
        ("delivered", AttemptRecord(at, 200, 1.0, "ok", None), None),
    ]
    by_endpoint: dict[str, list[Delivery]] = {}
    for delivery in claimed:
        by_endpoint.setdefault(delivery.endpoint_id, []).append(delivery)
    ones, twos = by_endpoint[alone.id], by_endpoint[batched.id]
    expected = [
        store.record_webhook_attempt(d.id, record, outcome, owner="me", next_attempt_at=next_at)  # type: ignore[arg-type]
        for d, (outcome, record, next_at) in zip(ones, plan, strict=True)
    ]
    results = [
        AttemptResult(d.id, record, outcome, next_at)  # type: ignore[arg-type]
        for d, (outcome, record, next_at) in zip(twos, plan, strict=True)
    ]
    assert store.record_webhook_attempts(results, owner="me") == tuple(expected)
    assert expected == [
        DeliveryStatus.PENDING,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.FAILED,
        DeliveryStatus.DELIVERED,
    ]
    for one, two in zip(ones, twos, strict=True):
        assert _state(store, one) == _state(store, two)


def test_a_batch_with_a_410_disables_the_endpoint_and_fails_what_is_pending(store: SqlStore) -> None:
    endpoint, _ = add_endpoint(store, "https://gone.example/hooks", resolve=public)
    record_events(store, 3)
    now = time.time() + 1
    first, second, third = store.claim_webhook_deliveries("me", now=now, ttl=30, limit=3)
    at = utc_time(now)
    statuses = store.record_webhook_attempts(
        [
            AttemptResult(first.id, AttemptRecord(at, 204, 1.0, "", None), "delivered"),
            AttemptResult(second.id, AttemptRecord(at, 410, 1.0, "", "answered 410 Gone"), "gone", reason="gone"),
            AttemptResult(third.id, AttemptRecord(at, 500, 1.0, "", "answered 500"), "retry", now + 60),
        ],
        owner="me",
    )
    assert statuses == (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.FAILED)
    assert store.get_webhook_endpoint(endpoint.id).disabled
    assert store.get_webhook_delivery(third.id).attempts == 1  # its attempt is logged all the same
    assert store.outbox_depth() == 0


def test_a_batch_is_checked_whole_before_anything_is_written(store: SqlStore) -> None:
    add_endpoint(store, "https://one.example/hooks", resolve=public)
    record_events(store, 2)
    now = time.time() + 1
    first, second = store.claim_webhook_deliveries("me", now=now, ttl=30, limit=2)
    ok = AttemptRecord(utc_time(now), 204, 1.0, "", None)
    from connector_core import ValidationError

    with pytest.raises(ValidationError, match="next attempt"):
        store.record_webhook_attempts(
            [AttemptResult(first.id, ok, "delivered"), AttemptResult(second.id, ok, "retry")], owner="me"
        )
    assert store.get_webhook_delivery(first.id).attempts == 0
    assert store.record_webhook_attempts([AttemptResult("dlv_" + "0" * 32, ok, "delivered")], owner="me") == (None,)


def _round_statements(tmp_path: Any, env: dict[str, str], receiver: Receiver, n: int) -> list[str]:
    """The statements one round of ``n`` deliveries runs (one thread: the tracing connection's)."""
    from connector_core.store import Store

    with Store.open(tmp_path / f"home-{n}", env=env) as store:
        _, secret = add_endpoint(store, receiver.url)
        assert secret is not None
        receiver.secrets = [secret.reveal()]
        record_events(store, n)
        statements: list[str] = []
        store._connect().set_trace_callback(statements.append)
        with WebhookDeliverer(store, concurrency=1) as deliverer:
            assert deliverer.run_once(limit=n).delivered == n
        store._connect().set_trace_callback(None)
        assert store.outbox_depth() == 0
    return statements


def test_a_round_commits_twice_and_reads_its_events_once_whatever_its_size(
    tmp_path: Any, env: dict[str, str], receiver: Receiver
) -> None:
    receiver.start()
    small, large = (_round_statements(tmp_path, env, receiver, n) for n in (2, 12))
    for statements in (small, large):
        assert sum(s.startswith("BEGIN IMMEDIATE") for s in statements) == 2  # the claim, the records
        assert sum(s.startswith("COMMIT") for s in statements) == sum(s.startswith("BEGIN") for s in statements)
        assert sum("FROM events WHERE" in s for s in statements) == 1
    # What grows with the round is a delivery's rows in those two transactions: its claim, its
    # attempt and its move on (an executemany each), and nothing else.
    assert len(large) - len(small) == 3 * (12 - 2)


def test_the_deliverer_keeps_its_connections_alive_and_no_cookie(sqlite_store: SqlStore, receiver: Receiver) -> None:
    _, secret = add_endpoint(sqlite_store, receiver.url)
    assert secret is not None
    receiver.secrets = [secret.reveal()]
    receiver.answer = lambda got: (204, {"set-cookie": "sticky=receiver-a; Path=/"}, b"")
    receiver.start()
    record_events(sqlite_store, 24)
    with WebhookDeliverer(sqlite_store, concurrency=4) as deliverer:
        while deliverer.run_once().claimed:
            pass
    assert len(receiver.received) == 24 and all(got.ours for got in receiver.received)
    assert len({got.peer for got in receiver.received}) <= 4  # one connection per thread at most, kept alive
    assert not any("cookie" in got.headers for got in receiver.received)
