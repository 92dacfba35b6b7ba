"""The deliverer against receivers started here, on 127.0.0.1: every delivery verifies with both
``connector_core.webhooks.verify`` and ``standardwebhooks``; a receiver down for a while gets
every event once it is back, each delivered once with the same id on every attempt; receivers
that time out, fail, answer 410, redirect, answer HTML or a huge body are each in the delivery
log; nothing goes where a changed row or a rebinding DNS points."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from connector_core import StoreError
from connector_core.secret import Secret
from connector_core.store.sql import SqlStore
from connector_core.webhooks import DeliveryStatus, WebhookDeliverer, add_endpoint, delivering, rotate_secret
from connector_core.webhooks.delivery import MAX_AGE

from .conftest import FakeClock, Receiver, public, record_events


def _endpoint(store: SqlStore, receiver: Receiver, **kw: Any) -> tuple[str, Secret]:
    endpoint, secret = add_endpoint(store, receiver.url, **kw)
    assert secret is not None
    receiver.secrets = [secret.reveal()]
    return endpoint.id, secret


def _until_empty(deliverer: WebhookDeliverer, store: SqlStore, clock: FakeClock, rounds: int = 50) -> int:
    """Rounds, the clock moved to the next due attempt each time, until the outbox is empty; how many."""
    for done in range(1, rounds + 1):
        deliverer.run_once()
        pending = store.list_webhook_deliveries(status=DeliveryStatus.PENDING, with_log=False)
        if not pending:
            return done
        clock.now = max(clock.now, min(d.next_attempt_at or 0 for d in pending))
    raise AssertionError(f"the outbox still holds {store.outbox_depth()} deliveries after {rounds} rounds")


def test_every_delivery_verifies_with_both_libraries(sqlite_store: SqlStore, receiver: Receiver) -> None:
    endpoint_id, secret = _endpoint(sqlite_store, receiver)
    receiver.start()
    ids = record_events(sqlite_store, 5)
    seen: list[tuple[str, float]] = []
    with WebhookDeliverer(sqlite_store, on_delivered=lambda outcome, s: seen.append((outcome, s))) as deliverer:
        report = deliverer.run_once()
    assert report.claimed == report.delivered == 5 and sqlite_store.outbox_depth() == 0
    assert sorted(got.webhook_id for got in receiver.received) == sorted(ids)
    for got in receiver.received:
        assert got.ours and got.theirs
        assert got.payload["id"] == got.webhook_id and got.payload["type"] == "connection.created"
        assert got.headers["content-type"] == "application/json" and got.headers["webhook-signature"].startswith("v1,")
        assert b" " not in got.body and got.payload == sqlite_store.get_event(got.webhook_id).payload()
    assert [outcome for outcome, _ in seen] == ["delivered"] * 5 and all(s >= 0 for _, s in seen)
    delivered = sqlite_store.list_webhook_deliveries(endpoint_id=endpoint_id)
    assert all(d.status is DeliveryStatus.DELIVERED and d.log[0].status_code == 204 for d in delivered)
    assert secret.reveal() not in repr(delivered) + repr(report)


def test_a_receiver_down_for_a_while_gets_every_event_once_it_is_back(sqlite_store: SqlStore) -> None:
    receiver = Receiver()  # not listening yet: connections are refused
    _endpoint(sqlite_store, receiver)
    ids = record_events(sqlite_store, 8)
    clock = FakeClock()
    deliverer = WebhookDeliverer(sqlite_store, clock=clock, timeout=2)
    try:
        for _ in range(2):
            assert deliverer.run_once().retried == 8
            clock.advance(10)  # past the backoff of a first and a second failure (5 s, 10 s at most)
        receiver.start()
        failures = {"left": 12}

        def flaky(got: Any) -> tuple[int, dict[str, str], bytes]:
            if failures["left"] > 0:
                failures["left"] -= 1
                return 500, {"content-type": "text/plain"}, b"database is down"
            return 200, {"content-type": "application/json"}, b'{"ok": true}'

        receiver.answer = flaky
        _until_empty(deliverer, sqlite_store, clock)
    finally:
        deliverer.close()
        receiver.stop()
    by_event = receiver.by_event()
    assert sorted(by_event) == sorted(ids)
    for event_id, attempts in by_event.items():
        assert all(got.webhook_id == event_id == got.payload["id"] for got in attempts)
        assert all(got.ours and got.theirs for got in attempts)
    deliveries = sqlite_store.list_webhook_deliveries()
    assert len(deliveries) == 8 and all(d.status is DeliveryStatus.DELIVERED for d in deliveries)
    for delivery in deliveries:
        codes = [a.status_code for a in delivery.log]
        assert codes[:2] == [None, None] and codes[-1] == 200 and codes.count(200) == 1  # delivered once
        assert "Connection refused" in (delivery.log[0].error or "")
        assert all(a.error == "answered 500 Internal Server Error" for a in delivery.log[2:-1])
        assert [a.attempt for a in delivery.log] == list(range(1, delivery.attempts + 1))
    assert sum(len(d.log) for d in deliveries) == 16 + 12 + 8


def _huge() -> Any:
    for _ in range(5 * 1024):
        yield b"x" * 1024


FAILURES: dict[str, tuple[Any, int | None, str]] = {
    "timeout": ("slow", None, "no answer within 0.5 s"),
    "500": (
        (500, {"content-type": "text/plain"}, b"boom\x1b[31m\nline two"),
        500,
        "answered 500 Internal Server Error",
    ),
    "redirect": (
        (302, {"location": "http://127.0.0.1:9/elsewhere"}, b""),
        302,
        "answered 302 Found: a redirect, which deliveries do not follow",
    ),
    "html": (
        (200, {"content-type": "text/html; charset=utf-8"}, b"<html><body>Sign in</body></html>"),
        200,
        "answered 200 OK with an HTML page, not a webhook receiver's answer",
    ),
    "huge body": ((500, {"content-type": "text/plain"}, "huge"), 500, "answered 500 Internal Server Error"),
    "404": ((404, {}, b"no such hook"), 404, "answered 404 Not Found"),
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_a_failing_receiver_is_in_the_delivery_log_and_retried(
    sqlite_store: SqlStore, receiver: Receiver, kind: str
) -> None:
    answer, status, error = FAILURES[kind]
    _endpoint(sqlite_store, receiver)
    if answer == "slow":
        receiver.delay = 1.5
    else:
        receiver.answer = lambda got: (answer[0], answer[1], _huge() if answer[2] == "huge" else answer[2])
    receiver.start()
    (event_id,) = record_events(sqlite_store, 1)
    clock = FakeClock()
    with WebhookDeliverer(sqlite_store, clock=clock, timeout=0.5) as deliverer:
        report = deliverer.run_once()
    assert report.claimed == report.retried == 1 and len(receiver.received) == 1  # a redirect is not followed
    (delivery,) = sqlite_store.list_webhook_deliveries(event_id=event_id)
    assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.next_attempt_at is not None and clock.now <= delivery.next_attempt_at <= clock.now + 5
    (attempt,) = delivery.log
    assert attempt.status_code == status and attempt.error == error and attempt.latency_ms is not None
    if kind == "huge body":
        assert attempt.response == "x" * 1024  # the first KiB, no more
    if kind == "500":
        assert attempt.response == "boom [31m line two"  # control characters replaced
    assert attempt.response is None or len(attempt.response) <= 1024


def test_410_disables_the_endpoint_and_fails_its_pending_deliveries(sqlite_store: SqlStore, receiver: Receiver) -> None:
    endpoint_id, _ = _endpoint(sqlite_store, receiver)
    receiver.answer = lambda got: (410, {}, b"this hook is gone")
    receiver.start()
    record_events(sqlite_store, 3)
    seen: list[str] = []
    with WebhookDeliverer(sqlite_store, concurrency=1, on_delivered=lambda o, s: seen.append(o)) as deliverer:
        report = deliverer.run_once()
        assert report.disabled == 1 and report.failed >= 1
        endpoint = sqlite_store.get_webhook_endpoint(endpoint_id)
        assert endpoint.disabled and endpoint.disabled_reason == "the receiver answered 410 Gone"
        assert sqlite_store.outbox_depth() == 0 and len(receiver.received) == 1
        assert {d.status for d in sqlite_store.list_webhook_deliveries()} == {DeliveryStatus.FAILED}
        record_events(sqlite_store, 1, prefix="later")
        assert sqlite_store.outbox_depth() == 0 and deliverer.run_once().claimed == 0
    assert seen[0] == "failed"


def test_a_delivery_is_given_up_after_three_days(sqlite_store: SqlStore, receiver: Receiver) -> None:
    _endpoint(sqlite_store, receiver)
    receiver.answer = lambda got: (503, {}, b"")
    receiver.start()
    record_events(sqlite_store, 1)
    clock = FakeClock()
    seen: list[str] = []
    with WebhookDeliverer(sqlite_store, clock=clock, on_delivered=lambda o, s: seen.append(o)) as deliverer:
        assert deliverer.run_once().retried == 1
        clock.advance(MAX_AGE + 1)
        assert deliverer.run_once().failed == 1
    (delivery,) = sqlite_store.list_webhook_deliveries()
    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 2 and delivery.finished_at
    assert delivery.log[-1].error == "answered 503 Service Unavailable; given up after 2 attempts over 3 days"
    assert seen == ["retry", "failed"]


def test_a_rotating_endpoint_signs_with_both_secrets(sqlite_store: SqlStore, receiver: Receiver) -> None:
    endpoint_id, old = _endpoint(sqlite_store, receiver)
    _, new = rotate_secret(sqlite_store, endpoint_id)
    assert new is not None
    receiver.start()
    record_events(sqlite_store, 1)
    with WebhookDeliverer(sqlite_store) as deliverer:
        deliverer.run_once()
        (got,) = receiver.received
        assert len(got.headers["webhook-signature"].split()) == 2
        for held in ([old.reveal()], [new.reveal()]):  # a receiver holding either one accepts it
            assert Receiver(held)._check(got.body, got.headers) == (True, True)
        sqlite_store.drop_previous_webhook_secret(endpoint_id)
        record_events(sqlite_store, 1, prefix="after")
        deliverer.run_once()
    last = receiver.received[-1]
    assert len(last.headers["webhook-signature"].split()) == 1
    assert Receiver([old.reveal()])._check(last.body, last.headers) == (False, False)
    assert Receiver([new.reveal()])._check(last.body, last.headers) == (True, True)


def test_a_tampered_endpoint_row_gets_nothing_until_it_is_restored(sqlite_store: SqlStore) -> None:
    honest, attacker = Receiver(), Receiver()
    endpoint_id, _ = _endpoint(sqlite_store, honest)
    honest.start(), attacker.start()
    try:
        record_events(sqlite_store, 2)
        with sqlite_store._write() as tx:
            tx.execute("UPDATE webhook_endpoints SET url = ?", (attacker.url,))
        clock = FakeClock()
        with WebhookDeliverer(sqlite_store, clock=clock) as deliverer:
            assert deliverer.run_once().retried == 2
            assert attacker.received == [] and honest.received == []
            (attempt,) = sqlite_store.list_webhook_deliveries()[0].log
            assert attempt.status_code is None and "was changed outside connector-core" in (attempt.error or "")
            with sqlite_store._write() as tx:
                tx.execute("UPDATE webhook_endpoints SET url = ? WHERE id = ?", (honest.url, endpoint_id))
            _until_empty(deliverer, sqlite_store, clock)
        assert attacker.received == [] and len(honest.received) == 2
    finally:
        honest.stop(), attacker.stop()


def test_an_address_the_policy_refuses_is_never_connected_to(sqlite_store: SqlStore, receiver: Receiver) -> None:
    """DNS rebinding: the host resolved to a public address when the endpoint was added, and to
    127.0.0.1 (where a receiver listens) when the delivery connects."""
    receiver.start()
    endpoint, _ = add_endpoint(sqlite_store, f"https://hooks.example:{receiver.port}/x", resolve=public)
    record_events(sqlite_store, 1)

    def rebound(host: str, port: int, *args: Any, **kw: Any) -> list[tuple[Any, ...]]:
        return [(2, 1, 6, "", ("127.0.0.1", port))]

    with WebhookDeliverer(sqlite_store, resolve=rebound) as deliverer:
        assert deliverer.run_once().retried == 1
    (delivery,) = sqlite_store.list_webhook_deliveries(endpoint_id=endpoint.id)
    assert delivery.log[0].error == (
        "refused: hooks.example resolves to 127.0.0.1, a loopback address (allowed only with allow_private)"
    )
    assert receiver.received == []


def test_an_injected_client_is_checked_by_the_address_it_connected_to(sqlite_store: SqlStore) -> None:
    """A client of the platform's own (not the deliverer's guarded one) is checked after the fact."""
    endpoint, _ = add_endpoint(sqlite_store, "https://hooks.example/x", resolve=public)
    record_events(sqlite_store, 1)

    class Peer:
        def get_extra_info(self, name: str) -> Any:
            return ("10.0.0.7", 443) if name == "server_addr" else None

    transport = httpx.MockTransport(lambda request: httpx.Response(204, extensions={"network_stream": Peer()}))
    with httpx.Client(transport=transport) as client, WebhookDeliverer(sqlite_store, client=client) as deliverer:
        assert deliverer.run_once().retried == 1
    (delivery,) = sqlite_store.list_webhook_deliveries(endpoint_id=endpoint.id)
    assert (
        delivery.log[0].error == "refused: connected to 10.0.0.7, a private address (allowed only with allow_private)"
    )


def test_claims_of_a_killed_deliverer_expire_and_the_delivery_keeps_its_id(
    sqlite_store: SqlStore, receiver: Receiver
) -> None:
    _endpoint(sqlite_store, receiver)
    receiver.start()
    (event_id,) = record_events(sqlite_store, 1)
    clock = FakeClock()
    # "Killed" after its POST, before recording it: the receiver got it, the outbox does not know.
    with WebhookDeliverer(sqlite_store, clock=clock, owner="first", claim_ttl=60) as first:
        (claimed,) = sqlite_store.claim_webhook_deliveries("first", now=clock(), ttl=60, limit=5)
        first._post(
            sqlite_store.get_webhook_endpoint(claimed.endpoint_id),
            sqlite_store.get_event(event_id),
            sqlite_store.webhook_secrets(claimed.endpoint_id),
        )
    with WebhookDeliverer(sqlite_store, clock=clock, owner="second") as second:
        assert second.run_once().claimed == 0  # still claimed
        clock.advance(61)
        assert second.run_once().delivered == 1
    assert [got.webhook_id for got in receiver.received] == [event_id, event_id]  # at least once, one id
    assert sqlite_store.get_webhook_delivery(claimed.id).attempts == 1


def test_a_store_unavailable_for_a_while_loses_nothing(
    sqlite_store: SqlStore, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    _endpoint(sqlite_store, receiver)
    receiver.start()
    ids = record_events(sqlite_store, 3)

    class Flaky:
        """The store, whose claims fail twice (the database down, then back)."""

        def __init__(self, store: SqlStore) -> None:
            self.store, self.failures = store, 2

        def claim_webhook_deliveries(self, *args: Any, **kw: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise StoreError("database x: reading failed (server closed the connection unexpectedly)")
            return self.store.claim_webhook_deliveries(*args, **kw)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.store, name)

    stop = threading.Event()
    flaky = Flaky(sqlite_store)
    rounds: list[int] = []

    def watch(report: Any) -> None:
        rounds.append(report.claimed)
        if sqlite_store.outbox_depth() == 0:
            stop.set()

    with caplog.at_level(logging.WARNING, "connector_core.webhooks"), WebhookDeliverer(flaky) as deliverer:  # type: ignore[arg-type]
        worker = threading.Thread(target=deliverer.run, args=(stop, 0.01), kwargs={"on_round": watch})
        worker.start()
        worker.join(timeout=60)
        stop.set()
    assert flaky.failures == 0 and sum(rounds) == 3
    assert sorted(got.webhook_id for got in receiver.received) == sorted(ids)
    assert caplog.text.count("server closed the connection unexpectedly); trying again") == 2


def test_the_background_deliverer_delivers_and_logs_no_secret(
    sqlite_store: SqlStore, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint_id, secret = _endpoint(sqlite_store, receiver)
    receiver.answer = lambda got: (410, {}, b"")  # a warning is logged when the endpoint is disabled
    receiver.start()
    record_events(sqlite_store, 1)
    with caplog.at_level(logging.DEBUG), delivering(sqlite_store, interval=0.01) as deliverer:
        for _ in range(500):  # a bound on polls, not a timing assertion
            if sqlite_store.get_webhook_endpoint(endpoint_id).disabled:
                break
            time.sleep(0.01)
        assert secret.reveal() not in repr(deliverer)
    assert sqlite_store.get_webhook_endpoint(endpoint_id).disabled
    assert f"webhook endpoint {endpoint_id} disabled: the receiver answered 410 Gone" in caplog.text
    assert secret.reveal() not in caplog.text and secret.reveal()[6:] not in caplog.text


def test_concurrent_rounds_deliver_many_each_once(sqlite_store: SqlStore, receiver: Receiver) -> None:
    _endpoint(sqlite_store, receiver)
    receiver.start()
    ids = record_events(sqlite_store, 60)
    with WebhookDeliverer(sqlite_store, concurrency=8) as deliverer:
        total = sum(deliverer.run_once(limit=25).delivered for _ in range(3))
    assert total == 60 and Counter(got.webhook_id for got in receiver.received) == Counter(ids)


def test_the_deliverer_refuses_nonsense_settings(sqlite_store: SqlStore) -> None:
    with pytest.raises(ValueError, match="positive"):
        WebhookDeliverer(sqlite_store, timeout=0)
    with pytest.raises(ValueError, match="positive"):
        WebhookDeliverer(sqlite_store, concurrency=0)


def test_an_injected_client_that_follows_redirects_is_not_let_to(sqlite_store: SqlStore) -> None:
    add_endpoint(sqlite_store, "https://hooks.example/x", resolve=public)
    record_events(sqlite_store, 1)
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/x":
            return httpx.Response(307, headers={"location": "https://hooks.example/elsewhere"})
        return httpx.Response(204)

    client = httpx.Client(transport=httpx.MockTransport(answer), follow_redirects=True)
    with client, WebhookDeliverer(sqlite_store, client=client) as deliverer:
        assert deliverer.run_once().retried == 1
    assert seen == ["/x"]
    (delivery,) = sqlite_store.list_webhook_deliveries()
    assert delivery.log[0].error == "answered 307 Temporary Redirect: a redirect, which deliveries do not follow"
