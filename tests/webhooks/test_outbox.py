"""The outbox in both stores: an event makes one delivery per enabled endpoint subscribed to
its type, in the event's own transaction (a change that rolls back leaves neither); endpoints
are sealed and their secrets encrypted; secrets rotate two at a time; replays make new
deliveries with the event's id; concurrent claims never share a delivery."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from support import profile_draft

from connector_core import StoreError, UnknownNameError, ValidationError
from connector_core.events import EventType
from connector_core.oauth import TokenSet
from connector_core.secret import Secret
from connector_core.store.sql import SqlStore
from connector_core.webhooks import DeliveryStatus, add_endpoint, new_secret, rotate_secret
from connector_core.webhooks.outbox import AttemptRecord, utc_time

from .conftest import public, record_events

URL = "https://hooks.example/connector"


def _add(store: SqlStore, url: str = URL, **kw: object) -> tuple[str, Secret]:
    endpoint, secret = add_endpoint(store, url, resolve=public, **kw)  # type: ignore[arg-type]
    assert secret is not None
    return endpoint.id, secret


def _sql(store: SqlStore, statement: str, params: tuple[object, ...] = ()) -> None:
    with store._write() as tx:
        tx.execute(statement, params)


def test_an_event_makes_one_delivery_per_enabled_subscribed_endpoint(store: SqlStore) -> None:
    every, _ = _add(store)
    created, _ = _add(store, event_types=["connection.created"])
    deleted, _ = _add(store, event_types=[EventType.DELETED])
    off, _ = _add(store)
    store.set_webhook_endpoint_disabled(off, True, "paused")
    (first,) = record_events(store, 1, EventType.CREATED)
    (second,) = record_events(store, 1, EventType.DELETED)
    made = {(d.event_id, d.endpoint_id) for d in store.list_webhook_deliveries()}
    assert made == {(first, every), (first, created), (second, every), (second, deleted)}
    assert store.outbox_depth() == 4
    assert all(d.status is DeliveryStatus.PENDING and d.attempts == 0 for d in store.list_webhook_deliveries())


def test_an_event_whose_change_rolls_back_leaves_no_delivery(store: SqlStore) -> None:
    _add(store)

    def change_that_fails() -> None:
        with store._write() as tx:
            store._emit(tx, EventType.CREATED, connection={"id": "conn_1"})
            raise RuntimeError("the change failed after its event was written")

    with pytest.raises(RuntimeError):
        change_that_fails()
    assert store.list_events() == () and store.list_webhook_deliveries() == () and store.outbox_depth() == 0


def test_a_real_change_and_its_delivery_share_a_transaction(store: SqlStore) -> None:
    endpoint_id, _ = _add(store)
    profile = store.create_profile(profile_draft())
    tokens = TokenSet(Secret("access-1"), "Bearer", Secret("refresh-1"), expires_at=time.time() + 3600)
    conn = store.save_connection(profile, tokens, requested=(), granted=(), identity={}, provider_initiated=False)
    store.delete_connection(conn.id)
    events = store.list_events()
    assert [e.type for e in events] == [EventType.CREATED, EventType.DELETED]
    deliveries = store.list_webhook_deliveries()
    assert [(d.event_id, d.event_type, d.endpoint_id) for d in deliveries] == [
        (e.id, e.type, endpoint_id) for e in events
    ]
    assert "access-1" not in str(events) and "refresh-1" not in str(deliveries)


def test_secrets_are_encrypted_at_rest_and_in_no_record(store: SqlStore, tmp_path: Path) -> None:
    endpoint_id, secret = _add(store)
    text = secret.reveal()
    assert store.webhook_secrets(endpoint_id) == (secret,)
    endpoint = store.get_webhook_endpoint(endpoint_id)
    assert text not in repr(endpoint) + repr(store.list_webhook_endpoints()) + repr(secret)
    with store._read() as tx:
        stored = tx.all("SELECT owner_id, name, ciphertext FROM secrets WHERE owner_id = ?", (endpoint_id,))
    assert [row[1] for row in stored] == ["signing_secret"]
    assert text.encode() not in bytes(stored[0][2]) and text[6:].encode() not in bytes(stored[0][2])
    if isinstance(store.path, Path):  # the SQLite file, and its journal, hold no trace of it
        store.close()
        for path in tmp_path.joinpath("home").iterdir():
            data = path.read_bytes()
            assert text.encode() not in data and text[6:20].encode() not in data, path.name


def test_rotation_signs_with_two_secrets_until_the_previous_is_dropped(store: SqlStore) -> None:
    endpoint_id, first = _add(store)
    endpoint, second = rotate_secret(store, endpoint_id)
    assert second is not None and endpoint.rotating
    assert store.webhook_secrets(endpoint_id) == (second, first)
    with pytest.raises(ValidationError, match=r"secret: .* is rotating already") as caught:
        rotate_secret(store, endpoint_id, new_secret())
    assert caught.value.code == "rotating"
    assert store.webhook_secrets(endpoint_id) == (second, first)  # nothing changed
    assert not store.drop_previous_webhook_secret(endpoint_id).rotating
    assert store.webhook_secrets(endpoint_id) == (second,)
    with pytest.raises(ValidationError, match="no previous secret") as caught:
        store.drop_previous_webhook_secret(endpoint_id)
    assert caught.value.code == "not_rotating"
    given = new_secret()
    _, generated = rotate_secret(store, endpoint_id, given.reveal())
    assert generated is None and store.webhook_secrets(endpoint_id) == (given, second)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("url", "https://attacker.example/steal"),
        ("allow_private", 1),
        ("event_types", "[]"),
        ("id", "we_00000000000000000000000000000000"),
    ],
)
def test_an_endpoint_row_changed_in_the_database_is_refused_as_tampered(
    store: SqlStore, column: str, value: object
) -> None:
    endpoint_id, _ = _add(store, event_types=["connection.deleted"])
    _sql(store, f"UPDATE webhook_endpoints SET {column} = ?", (value,))
    target = endpoint_id if column != "id" else str(value)
    for read in (lambda: store.get_webhook_endpoint(target), store.list_webhook_endpoints):
        with pytest.raises(StoreError, match=f"webhook endpoint {target} was changed outside") as caught:
            read()
        assert caught.value.code == "tampered"
    with pytest.raises(StoreError, match="changed outside"):
        store.webhook_secrets(target)


def test_an_endpoint_survives_key_rotation_and_its_seal_follows(store: SqlStore) -> None:
    endpoint_id, secret = _add(store)
    store.rotate_keys(retire=True)
    assert store.webhook_secrets(endpoint_id) == (secret,) and store.get_webhook_endpoint(endpoint_id).url == URL


def test_replay_of_one_event_and_of_a_time_range(store: SqlStore) -> None:
    every, _ = _add(store)
    deleted_only, _ = _add(store, event_types=["connection.deleted"])
    early = record_events(store, 2, EventType.CREATED)
    cut = utc_time(time.time())
    time.sleep(0.01)  # the range's boundary falls between the two batches
    late = record_events(store, 2, EventType.DELETED, prefix="late")
    before = len(store.list_webhook_deliveries())

    assert store.replay_webhooks(event_id=early[0]) == 1  # only `every` takes connection.created
    again = store.list_webhook_deliveries(event_id=early[0])
    assert [d.replay for d in again] == [False, True] and {d.endpoint_id for d in again} == {every}

    assert store.replay_webhooks(since=cut) == 4  # both late events, to both endpoints
    assert store.replay_webhooks(until=cut.replace("+00:00", "Z")) == 2  # both early ones, to `every`
    assert store.replay_webhooks(since="2000-01-01", until=cut, endpoint_id=deleted_only) == 0
    assert store.replay_webhooks(since=cut, endpoint_id=deleted_only) == 2
    replayed = [d for d in store.list_webhook_deliveries() if d.replay]
    assert len(store.list_webhook_deliveries()) == before + 9 == before + len(replayed)
    assert {d.event_id for d in replayed} == {*early, *late}
    assert all(d.status is DeliveryStatus.PENDING for d in replayed)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "since"),
        ({"event_id": "evt_1", "since": "2026-01-01"}, "event_id"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-01-01T10:00:00"}, "until"),  # no zone
        ({"since": "2026-01-02", "until": "2026-01-01"}, "until"),
    ],
)
def test_a_bad_replay_names_its_field(store: SqlStore, kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        store.replay_webhooks(**kwargs)
    assert caught.value.field == field and "\n" not in caught.value.message


def test_a_replay_to_an_unknown_or_disabled_endpoint_is_refused(store: SqlStore) -> None:
    endpoint_id, _ = _add(store)
    (event_id,) = record_events(store, 1)
    with pytest.raises(UnknownNameError):
        store.replay_webhooks(event_id="evt_unknown")
    with pytest.raises(UnknownNameError):
        store.replay_webhooks(event_id=event_id, endpoint_id="we_unknown")
    store.set_webhook_endpoint_disabled(endpoint_id, True)
    with pytest.raises(ValidationError, match="is disabled") as caught:
        store.replay_webhooks(event_id=event_id, endpoint_id=endpoint_id)
    assert caught.value.code == "disabled"
    assert store.replay_webhooks(event_id=event_id) == 0  # no enabled endpoint


def test_claims_are_exclusive_expire_and_come_back_to_their_owner(store: SqlStore) -> None:
    _add(store)
    record_events(store, 6)
    now = time.time() + 1
    first = store.claim_webhook_deliveries("a", now=now, ttl=30, limit=4)
    second = store.claim_webhook_deliveries("b", now=now, ttl=30, limit=4)
    assert len(first) == 4 and len(second) == 2 and not {d.id for d in first} & {d.id for d in second}
    assert store.claim_webhook_deliveries("c", now=now + 29, ttl=30, limit=10) == ()  # all claimed
    assert {d.id for d in store.claim_webhook_deliveries("a", now=now + 1, ttl=30, limit=10)} == {d.id for d in first}
    expired = store.claim_webhook_deliveries("c", now=now + 32, ttl=30, limit=10)
    assert len(expired) == 6  # a dead claimer's claims expire


def test_an_attempt_is_logged_and_moves_the_delivery_on(store: SqlStore) -> None:
    endpoint_id, _ = _add(store)
    record_events(store, 3)
    now = time.time() + 1
    one, two, three = store.claim_webhook_deliveries("me", now=now, ttl=30, limit=3)
    answer = AttemptRecord(utc_time(now), 500, 12.5, "oops", "answered 500 Internal Server Error")
    assert store.record_webhook_attempt(one.id, answer, "retry", owner="me", next_attempt_at=now + 60) is (
        DeliveryStatus.PENDING
    )
    retried = store.get_webhook_delivery(one.id)
    assert retried.status is DeliveryStatus.PENDING and retried.attempts == 1
    assert retried.next_attempt_at == pytest.approx(now + 60) and retried.log[0].status_code == 500
    ok = AttemptRecord(utc_time(now), 204, 3.0, "", None)
    assert store.record_webhook_attempt(two.id, ok, "delivered", owner="me") is DeliveryStatus.DELIVERED
    done = store.get_webhook_delivery(two.id)
    assert done.status is DeliveryStatus.DELIVERED and done.finished_at == ok.at
    # My claim of `three` expired and another deliverer took it over: my attempt is recorded, its claim stays.
    taken = store.claim_webhook_deliveries("other", now=now + 100, ttl=30, limit=5)
    assert {d.id for d in taken} == {one.id, three.id}
    gone = AttemptRecord(utc_time(now), 410, 1.0, "", "answered 410 Gone")
    status = store.record_webhook_attempt(three.id, gone, "gone", owner="me", reason="the receiver answered 410 Gone")
    failed = store.get_webhook_delivery(three.id)
    assert status is failed.status is DeliveryStatus.FAILED and failed.attempts == 1
    with store._read() as tx:
        assert tx.all("SELECT claimed_by FROM webhook_deliveries WHERE id = ?", (three.id,)) == [("other",)]
    endpoint = store.get_webhook_endpoint(endpoint_id)
    assert endpoint.disabled and endpoint.disabled_reason == "the receiver answered 410 Gone"
    assert store.get_webhook_delivery(one.id).status is DeliveryStatus.FAILED  # its pending ones fail too
    assert store.outbox_depth() == 0
    record_events(store, 1)
    assert store.outbox_depth() == 0  # a disabled endpoint gets no deliveries
    with pytest.raises(ValidationError):
        store.record_webhook_attempt(one.id, ok, "retry", owner="me")  # a retry needs its time


def test_removing_an_endpoint_removes_its_secrets_deliveries_and_log(store: SqlStore) -> None:
    endpoint_id, _ = _add(store)
    kept, _ = _add(store)
    record_events(store, 2)
    (claimed, *_) = store.claim_webhook_deliveries("me", now=time.time() + 1, ttl=30, limit=1)
    store.record_webhook_attempt(claimed.id, AttemptRecord(utc_time(0), 500, 1.0, "", "x"), "retry", owner="me",
                                 next_attempt_at=0)  # fmt: skip
    store.delete_webhook_endpoint(endpoint_id)
    with pytest.raises(UnknownNameError, match="unknown webhook endpoint"):
        store.get_webhook_endpoint(endpoint_id)
    assert {d.endpoint_id for d in store.list_webhook_deliveries()} == {kept}
    with store._read() as tx:
        assert tx.all("SELECT count(*) FROM secrets WHERE owner_id = ?", (endpoint_id,)) == [(0,)]
        assert tx.all("SELECT count(*) FROM webhook_attempts")[0][0] == (0 if claimed.endpoint_id == endpoint_id else 1)
    with pytest.raises(UnknownNameError):
        store.delete_webhook_endpoint(endpoint_id)


def test_the_delivery_listing_filters_and_pages(store: SqlStore) -> None:
    a, _ = _add(store)
    b, _ = _add(store)
    events = record_events(store, 3)
    assert len(store.list_webhook_deliveries(endpoint_id=a)) == 3
    assert len(store.list_webhook_deliveries(event_id=events[1])) == 2
    page = store.list_webhook_deliveries(limit=4)
    rest = store.list_webhook_deliveries(after=page[-1].seq)
    assert len(page) == 4 and len(rest) == 2 and page[-1].seq < rest[0].seq
    assert store.list_webhook_deliveries(status=DeliveryStatus.DELIVERED) == ()
    assert {d.endpoint_id for d in store.list_webhook_deliveries(endpoint_id=b, with_log=False)} == {b}


def test_a_sqlite_database_from_schema_7_gains_the_webhook_tables(tmp_path: Path, env: dict[str, str]) -> None:
    from connector_core.store import Store
    from connector_core.store.sqlite import SCHEMA_VERSION

    with Store.open(tmp_path / "home", env=env) as store:
        (event_id,) = record_events(store, 1)
    with sqlite3.connect(tmp_path / "home" / "connector.db") as db:
        # As schema 7 left it: neither the webhook tables (8) nor the keeper's (9).
        for table in ("webhook_endpoints", "webhook_deliveries", "webhook_attempts", "keeper_state", "keeper_locks"):
            db.execute(f"DROP TABLE {table}")
        db.execute("PRAGMA user_version = 7")
    with Store.open(tmp_path / "home", env=env) as store:
        assert store.schema_version == SCHEMA_VERSION
        _add(store)
        assert store.replay_webhooks(event_id=event_id) == 1


@pytest.mark.parametrize("verify", [True, False])
def test_a_copy_into_postgresql_carries_endpoints_the_outbox_and_the_log(
    tmp_path: Path, env: dict[str, str], pg_url: str, verify: bool
) -> None:
    from connector_core.store import PgStore, Store, copy_from_sqlite

    with Store.open(tmp_path / "home", env=env) as source:
        endpoint_id, secret = _add(source, event_types=["connection.created"])
        _, second = rotate_secret(source, endpoint_id)
        ids = record_events(source, 3)
        now = time.time() + 1
        (claimed, *_) = source.claim_webhook_deliveries("me", now=now, ttl=30, limit=1)
        attempt = AttemptRecord(utc_time(now), 500, 2.0, "busy", "answered 500 Internal Server Error")
        source.record_webhook_attempt(claimed.id, attempt, "retry", owner="me", next_attempt_at=now + 5)
        with PgStore(pg_url, env=env) as target:
            report = copy_from_sqlite(source, target, verify=verify)
            assert (report.webhook_endpoints, report.webhook_deliveries, report.webhook_log) == (1, 3, 1)
            assert target.webhook_secrets(endpoint_id) == (second, secret)  # decrypted, its seal checked
            assert target.get_webhook_endpoint(endpoint_id) == source.get_webhook_endpoint(endpoint_id)
            copied = target.list_webhook_deliveries()
            assert copied == source.list_webhook_deliveries()
            assert [d.event_id for d in copied] == ids and copied[0].log[0].response == "busy"
            (later,) = record_events(target, 1, prefix="after")  # the outbox goes on where it was
            assert target.list_webhook_deliveries(event_id=later)[0].seq == copied[-1].seq + 1
