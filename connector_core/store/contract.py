"""What every store promises: the :class:`StoreLike` protocol and the records it returns.

:class:`~connector_core.store.Store` (SQLite) and :class:`~connector_core.store.PgStore`
(PostgreSQL) keep it. :class:`~connector_core.connector.Connector` and the CLI use nothing
else, so any store keeping it serves them; :mod:`connector_core.testing.store_conformance` checks one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import attrs

from ..errors import StoreError

if TYPE_CHECKING:
    from ..connection import (
        Attempt,
        Connection,
        ConnectionEvent,
        ConnectionStatus,
        ConnectSession,
        Owner,
        SessionStatus,
    )
    from ..crypto import KeyRing
    from ..events import Event, EventType
    from ..oauth import TokenSet
    from ..profiles import Profile, ProfileDraft
    from ..secret import Secret
    from ..webhooks.endpoints import WebhookEndpoint
    from ..webhooks.outbox import AttemptRecord, AttemptResult, Delivery, DeliveryStatus, Outcome

__all__ = [
    "ConnectionStamp",
    "CopyReport",
    "KeeperClaim",
    "KeeperDue",
    "KeeperLock",
    "KeeperState",
    "KeyRotation",
    "LockStats",
    "RefreshLease",
    "StoreError",
    "StoreLike",
]


@attrs.frozen
class KeyRotation:
    """What :meth:`StoreLike.rotate_keys` did."""

    primary_key: str
    reencrypted: int
    retired: tuple[str, ...]
    remaining: tuple[str, ...]


@attrs.frozen
class CopyReport:
    """What :func:`connector_core.store.copy.copy_from_sqlite` copied."""

    source: str
    target: str
    store_id: str
    profiles: int
    connections: int
    secrets: int
    events: int
    attempts: int
    #: Whether every copied secret was decrypted with the keys found here before copying.
    verified: bool
    #: Connect sessions (a pending one can still be claimed in the copy).
    sessions: int = 0
    #: Lifecycle events (:mod:`connector_core.events`); ``events`` counts the status history's rows.
    lifecycle_events: int = 0
    #: Webhook endpoints, their deliveries (the outbox, pending ones included) and the delivery log.
    webhook_endpoints: int = 0
    webhook_deliveries: int = 0
    webhook_log: int = 0
    #: The keeper's record of connections whose refresh is failing (not its claims, which are short-lived).
    keeper_states: int = 0


@attrs.define
class LockStats:
    """What the refresh locks of one PostgreSQL store did (counters since it opened)."""

    #: Locks taken (each a refresh that was, or might have been, needed).
    acquired: int = 0
    #: Attempts that found the row locked by another refresher and waited for it.
    waited: int = 0
    #: Waits that ended at ``lock_timeout`` without the lock (the caller tries again later).
    timed_out: int = 0
    #: Locks released without a write: the re-read after the lock showed fresh tokens.
    released_unused: int = 0
    #: Refreshed tokens committed under the lock.
    saved: int = 0

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


@attrs.frozen
class KeeperDue:
    """What makes a connected connection due for the keeper (:meth:`StoreLike.claim_due`); times
    are epoch seconds. A connection is due when any rule holds."""

    #: Refresh those whose access token expires before this.
    expiring_before: float
    #: ``(provider, auth type, refreshed before)``: refresh the connections of that provider's auth type
    #: whose last refresh (or, never refreshed, their creation) is older than the time given.
    idle: tuple[tuple[str, str, float], ...] = ()
    #: Test those the keeper has not tested (or, never tested, that were made) since this; None: none.
    tested_before: float | None = None


@attrs.frozen
class KeeperState:
    """What the keeper keeps about one connection (:meth:`StoreLike.keeper_state`)."""

    connection_id: str
    #: The keeper holding the connection's claim, and until when (epoch seconds); None when nobody does.
    claimed_by: str | None = None
    claimed_until: float | None = None
    #: Failed refresh attempts since the last success (0: healthy).
    failures: int = 0
    #: When the current degradation began (ISO 8601 UTC); None while healthy.
    degraded_since: str | None = None
    #: The connection's token version when its refresh last failed.
    failed_version: int | None = None
    #: Not before this is its refresh tried again (epoch seconds, the retry's backoff).
    next_attempt_at: float | None = None
    #: The last failure's one-line error.
    last_error: str | None = None
    #: When the keeper last ran its connection test (ISO 8601 UTC).
    tested_at: str | None = None


@attrs.frozen
class KeeperClaim:
    """A connection :meth:`StoreLike.claim_due` handed to one keeper: what it was when claimed."""

    connection_id: str
    provider: str
    auth_type: str
    #: The token version claimed: the keeper's refresh happens only while the tokens are still this one.
    token_version: int
    expires_at: float | None
    #: Its last refresh, else its creation (ISO 8601 UTC).
    last_refreshed: str
    created_at: str
    state: KeeperState


class ConnectionStamp(NamedTuple):
    """What a connection's row and its profile's row were when last written
    (:meth:`StoreLike.connection_stamp`): every write to either changes it. A caller that kept
    what it read of a connection (its access token, its API base URL) uses that only while the
    stamp is still :meth:`of` what it read. A plain tuple: built and compared per request."""

    token_version: int
    updated_at: str
    #: The status's value (``"connected"``...).
    status: str
    expires_at: float | None
    profile_updated_at: str

    @classmethod
    def of(cls, connection: Connection, profile: Profile) -> ConnectionStamp:
        """The stamp of a connection and its profile as read."""
        return cls(
            connection.token_version,
            connection.updated_at,
            connection.status.value,
            connection.expires_at,
            profile.updated_at,
        )


class KeeperLock(Protocol):
    """A keeper's registration with its store (:meth:`StoreLike.keeper_lock`): on a store that one
    host owns (SQLite) it is exclusive, one keeper per store; on a shared store (PostgreSQL) every
    keeper holds its own, and they share the work through claims."""

    #: The keeper holding it.
    owner: str
    #: Whether it excludes every other keeper.
    exclusive: bool

    def renew(self) -> bool:
        """The heartbeat: extend the lock by its ttl. False when it was lost meanwhile (it lapsed and
        another keeper took it): the holder must stop."""


class RefreshLease(Protocol):
    """One connection's refresh lease, as :meth:`StoreLike.refresh_lease` hands it out. At most
    one live lease per connection is held at a time, across threads, processes and hosts. It
    ends when its ``with`` block ends, however it ends; a holder that dies or goes silent loses
    it after the lease's ttl (sooner where the engine can tell)."""

    #: The connection the lease is for.
    connection_id: str

    @property
    def held(self) -> bool:
        """Whether this lease holds the connection now. False when another holder has it
        (the caller waits and asks again; asking never blocks for long), when the
        connection does not exist, and after :meth:`save`."""

    def read(self) -> tuple[Connection, Secret | None, Secret | None]:
        """The connection with its access and refresh tokens, read in one snapshot after the
        lease was taken: another refresher may have finished just before."""

    def save(self, expected_version: int, tokens: TokenSet, granted: tuple[str, ...]) -> Connection:
        """Store a refresh's tokens (a response without a refresh token keeps the old one) and end
        the lease, in one transaction, before anyone uses the new token; returns the connection.
        Saved only while the tokens are still ``expected_version`` (else a :class:`StoreError`,
        and nothing is stored); a lease that timed out meanwhile does not lose them. Refreshes
        record no status event."""


class StoreLike(Protocol):
    """The credential store's interface. Errors of the database are :class:`StoreError`
    with one line; an unknown name is :class:`~connector_core.errors.UnknownNameError`.
    Secret values are stored encrypted (:class:`~connector_core.crypto.KeyRing`), bound
    to their row: a value moved to another row does not decrypt."""

    @property
    def path(self) -> Path | str:
        """Where the store lives: the SQLite file, or the PostgreSQL URL with its password hidden."""

    @property
    def schema_version(self) -> int:
        """The schema version the store holds (a newer one than this code knows is refused on opening)."""

    @property
    def store_id(self) -> str:
        """A random id naming the store (32 hex digits); its key file is named after it."""

    @property
    def keyring(self) -> KeyRing:
        """The store's key ring, loaded (or, while no secret needs it, generated) on first use."""

    def close(self) -> None:
        """Let go of connections and leases; the store reopens when used again. Twice is fine."""

    def __enter__(self) -> StoreLike: ...

    def __exit__(self, *exc: object) -> None: ...

    # profiles
    def create_profile(self, draft: ProfileDraft) -> Profile:
        """Store a validated profile; a taken name is a ValidationError."""

    def update_profile(self, name: str, draft: ProfileDraft) -> Profile:
        """Replace profile ``name`` with ``draft`` (which may rename it) in one transaction; secrets
        the draft lacks are dropped. Changed scopes mark its usable connections needs_reconnect."""

    def get_profile(self, name: str, *, with_secrets: bool = True) -> Profile:
        """The profile ``name``, its secrets decrypted unless ``with_secrets=False``; a missing or
        wrong key is a CryptoError naming the profile and the field."""

    def profile_by_id(self, profile_id: str, *, with_secrets: bool = True) -> Profile:
        """As :meth:`get_profile`, by id; a StoreError when it is gone."""

    def list_profiles(self, provider: str | None = None) -> tuple[Profile, ...]:
        """Every profile (of ``provider``), without secret values, sorted bytewise by name. Needs no key."""

    def profile_connection_count(self, name: str) -> int:
        """How many connections use profile ``name`` (0 for an unknown one)."""

    def delete_profile(self, name: str, *, force: bool = False) -> int:
        """Delete profile ``name`` with its secrets; refused while connections use it unless
        ``force``, which deletes them and their tokens too. Returns how many were deleted."""

    # keys
    def key_usage(self) -> dict[str, int]:
        """How many stored values each key id encrypts."""

    def rotate_keys(self, *, retire: bool = False, new_key: bool = True) -> KeyRotation:
        """Re-encrypt every stored value under a new primary key, in one transaction. With a key file
        a new key is saved beside the old ones first (a crash leaves every value readable); with
        ``CONNECTOR_CORE_SECRET_KEY`` that key is the new primary and only the database is written.
        ``retire`` then drops the other keys from the key file."""

    # pending authorizations
    def create_attempt(
        self,
        profile: Profile,
        *,
        state_hash: str,
        verifier: Secret | None,
        redirect_uri: str,
        scopes: tuple[str, ...],
        expires_at: float,
        connection_id: str | None = None,
        owner: Owner | None = None,
    ) -> Attempt:
        """Record a pending authorization, its PKCE verifier encrypted, and whose the connection it
        makes will be (``owner``); expired ones are cleared."""

    def consume_attempt(self, state_hash: str) -> tuple[Attempt, Secret | None] | None:
        """Take the attempt with this state hash out of the store, with its verifier: single use,
        even when several processes receive the same callback. None when there is none."""

    # connections
    def save_connection(
        self,
        profile: Profile,
        tokens: TokenSet | None,
        *,
        requested: tuple[str, ...],
        granted: tuple[str, ...],
        identity: Mapping[str, str],
        provider_initiated: bool,
        connection_id: str | None = None,
        reason: str = "authorized",
        credentials: Mapping[str, Secret] | None = None,
        owner: Owner | None = None,
    ) -> Connection:
        """Store a new connection (or re-authorize ``connection_id``, keeping its id and creation
        time, replacing its tokens and bumping its token version) in one transaction, with a
        ``connected`` event. A write to a connection ends its refresh lease.

        ``credentials``: the credential field values an end user gave for the connection (a
        service user's ID and token, an API key), encrypted like tokens and replaced as a
        whole. A connection with credentials and no OAuth tokens passes ``tokens=None``.

        ``owner``: whose the connection is (end user, organisation, tags); ``None`` leaves an
        existing connection's as it is and makes a new one unclaimed. The end user and the
        organisation are sealed with the row."""

    def get_connection(self, connection_id: str) -> Connection:
        """The connection; an UnknownNameError when there is none."""

    def needing_attention(self) -> tuple[Connection, ...]:
        """Connections needing someone to act (needs_reconnect, or a reconnect left pending), oldest change first."""

    def list_connections(
        self,
        *,
        profile: str | None = None,
        status: ConnectionStatus | None = None,
        limit: int | None = None,
        after: str | None = None,
        end_user: str | None = None,
        organisation: str | None = None,
        tag: str | None = None,
        provider: str | None = None,
        unclaimed: bool = False,
    ) -> tuple[Connection, ...]:
        """Connections ordered by id, filtered (every filter given must hold: an end user's id, an
        organisation, one tag, a provider; ``unclaimed``: only those nobody owns); page with
        ``limit`` and ``after`` (the last id seen)."""

    def count_connections(self) -> dict[ConnectionStatus, int]:
        """How many connections are in each status (every status a key, 0 where none), counted in
        one statement without reading a row: what a metrics scrape asks at every scrape."""

    def iter_connections(
        self,
        *,
        profile: str | None = None,
        status: ConnectionStatus | None = None,
        limit: int | None = None,
        after: str | None = None,
        end_user: str | None = None,
        organisation: str | None = None,
        tag: str | None = None,
        provider: str | None = None,
        unclaimed: bool = False,
        page: int = 500,
    ) -> Iterator[Connection]:
        """The connections :meth:`list_connections` lists with the same arguments, in the same
        order, read lazily in keyset pages of at most ``page`` rows (one statement each, after the
        last id read), so that a listing of any size holds one page at a time. Nothing is decrypted.
        A connection added or changed while the listing runs is seen or not as its page is read."""

    def set_owner(self, connection_id: str, owner: Owner) -> Connection:
        """Set whose the connection is (attach an unclaimed one to an end user, change its tags),
        resealing the row, with an event; an UnknownNameError when there is none."""

    def connection_events(self, connection_id: str) -> tuple[ConnectionEvent, ...]:
        """The connection's status changes, oldest first (none for an unknown one)."""

    def get_tokens(self, connection_id: str) -> tuple[Connection, Secret | None, Secret | None]:
        """The connection with its access and refresh tokens, read in one snapshot."""

    def get_credentials(self, connection_id: str) -> tuple[Connection, dict[str, Secret]]:
        """The connection with the credential field values stored with it (empty when none),
        read in one snapshot."""

    def get_access_token(self, connection_id: str) -> tuple[Connection, Secret | None]:
        """The connection with its access token, read in one snapshot: the only secret decrypted
        (its refresh token stays sealed until a refresh needs it)."""

    def connection_stamp(self, connection_id: str) -> ConnectionStamp | None:
        """The connection's :class:`ConnectionStamp`, in one narrow statement that decrypts and
        checks nothing: what a caller holding what it read before compares, per request, to learn
        whether another process (or thread) wrote the connection or its profile since. None when
        there is no such connection or its row must be read in full to say what is wrong with it."""

    def set_status(
        self,
        connection_id: str,
        status: ConnectionStatus,
        reason: str | None,
        *,
        delete_tokens: bool = False,
        if_version: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Connection:
        """Change a connection's status and record the event (``delete_tokens``: drop its tokens,
        bumping the token version). With ``if_version``, only while its tokens are still that
        version: a verdict about old tokens never overwrites a newer grant; the connection is
        returned unchanged then. Ends the connection's refresh lease. Moving into
        ``needs_reconnect``, ``revoked`` or ``disconnected`` records a lifecycle event in the
        same transaction, with the reason and ``details`` (the provider's guidance...)."""

    def list_events(
        self,
        *,
        after: int | None = None,
        limit: int | None = None,
        types: Sequence[EventType] | None = None,
        connection_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> tuple[Event, ...]:
        """Lifecycle events in the order they were recorded (``seq``): after ``after``, of these
        ``types``, of one connection, recorded at ``since`` or later and before ``until`` (ISO
        8601 UTC), at most ``limit``. Each was written in the transaction of its change."""

    def get_event(self, event_id: str) -> Event:
        """One lifecycle event by id; an UnknownNameError when there is none."""

    def get_events(self, event_ids: Sequence[str]) -> tuple[Event, ...]:
        """The events of these ids that exist, in the order they were recorded (one query, where
        :meth:`get_event` would be one per id)."""

    # webhooks (connector_core.webhooks): endpoints, the outbox, the delivery log
    def create_webhook_endpoint(
        self, url: str, *, secret: Secret, event_types: Sequence[EventType] = (), allow_private: bool = False
    ) -> WebhookEndpoint:
        """Store a new webhook endpoint (``event_types`` empty: every type), its row sealed (id, URL,
        private opt-in, event types: a row changed by someone without the keys is a StoreError
        ``tampered`` wherever it is read) and ``secret`` encrypted. The URL policy
        (:func:`~connector_core.webhooks.check_webhook_url`) is the caller's: see
        :func:`~connector_core.webhooks.add_endpoint`."""

    def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        """One endpoint, its seal checked; an UnknownNameError when there is none."""

    def list_webhook_endpoints(self) -> tuple[WebhookEndpoint, ...]:
        """Every endpoint, oldest first, each seal checked."""

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        """Delete the endpoint with its secrets, its deliveries (pending ones too) and their log."""

    def set_webhook_endpoint_disabled(
        self, endpoint_id: str, disabled: bool, reason: str | None = None
    ) -> WebhookEndpoint:
        """Disable the endpoint with a one-line ``reason`` (events no longer make deliveries to it;
        its pending ones wait), or enable it again (they resume)."""

    def rotate_webhook_secret(self, endpoint_id: str, secret: Secret) -> WebhookEndpoint:
        """``secret`` becomes the endpoint's current secret and the current one its previous one, in
        one transaction: both sign every delivery until :meth:`drop_previous_webhook_secret`. A
        ValidationError ``secret`` (code ``rotating``) while a previous one is kept already."""

    def drop_previous_webhook_secret(self, endpoint_id: str) -> WebhookEndpoint:
        """End a rotation: only the current secret signs from now on; a ValidationError ``secret``
        (code ``not_rotating``) when there is no previous one."""

    def webhook_secrets(self, endpoint_id: str) -> tuple[Secret, ...]:
        """The secrets that sign the endpoint's deliveries, current first, its seal checked."""

    def claim_webhook_deliveries(self, owner: str, *, now: float, ttl: float, limit: int) -> tuple[Delivery, ...]:
        """Claim for ``owner`` until ``now + ttl`` (epoch seconds) up to ``limit`` pending deliveries
        of enabled endpoints that are due at ``now``, and that nobody claims, whose claim expired, or
        that ``owner`` claimed itself (a deliverer restarted under its name takes its claims back).
        Claimers racing on one store never get the same delivery (SQLite: a write transaction;
        PostgreSQL: ``FOR UPDATE SKIP LOCKED``)."""

    def record_webhook_attempt(
        self,
        delivery_id: str,
        attempt: AttemptRecord,
        outcome: Outcome,
        *,
        owner: str,
        next_attempt_at: float | None = None,
        reason: str | None = None,
    ) -> DeliveryStatus | None:
        """Log one attempt (numbered after the delivery's last) and, while the delivery is pending,
        move it on as ``outcome`` says: ``delivered``; ``retry`` at ``next_attempt_at``; ``failed``;
        ``gone`` (the receiver answered 410: the endpoint is disabled with ``reason`` and every pending
        delivery of it failed). ``owner``'s claim ends. One transaction; the delivery's status after
        it, or None when the delivery is gone (its endpoint was deleted)."""

    def record_webhook_attempts(
        self, results: Sequence[AttemptResult], *, owner: str
    ) -> tuple[DeliveryStatus | None, ...]:
        """:meth:`record_webhook_attempt` for each of ``results``, in order, in one transaction:
        all of them recorded, or none (a deliverer's round commits once); each delivery's status
        after it, or None for one that is gone."""

    def get_webhook_delivery(self, delivery_id: str) -> Delivery:
        """One delivery with its log; an UnknownNameError when there is none."""

    def list_webhook_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        after: int | None = None,
        limit: int | None = None,
        with_log: bool = True,
    ) -> tuple[Delivery, ...]:
        """Deliveries in the outbox's order (``seq``): of one endpoint, of one event, in one status,
        after ``after``, at most ``limit``; each with its log unless ``with_log=False``."""

    def outbox_depth(self) -> int:
        """How many deliveries are pending (due or waiting for their next attempt)."""

    def replay_webhooks(
        self,
        *,
        event_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        endpoint_id: str | None = None,
    ) -> int:
        """New deliveries (``replay``) of one event, or of the events recorded at ``since`` or later
        and before ``until`` (ISO 8601 with a zone), to every enabled endpoint subscribed to each, or
        only to ``endpoint_id`` (for the events it is subscribed to). The receiver sees the event's id
        again as ``webhook-id``. Returns how many deliveries were made. An unknown event or endpoint
        is an UnknownNameError; a disabled ``endpoint_id`` a ValidationError."""

    def delete_connection(self, connection_id: str) -> None:
        """Delete the connection with its tokens and events; an UnknownNameError when there is none."""

    # connect sessions
    def create_session(self, session: ConnectSession, token_hash: str) -> ConnectSession:
        """Store a new ``pending`` connect session under its token's hash (the token itself is never
        stored), sealed: its owner, providers, profile, scopes, connection, redirect URL, expiry,
        status and ``separate`` flag cannot be changed by someone who can only write the database (a
        changed row is a StoreError ``tampered`` wherever it is read)."""

    def get_session(self, session_id: str) -> ConnectSession:
        """The session; an UnknownNameError when there is none."""

    def find_session(self, token_hash: str) -> ConnectSession | None:
        """The session whose token has this hash, as it is (None when there is none)."""

    def claim_session(
        self, token_hash: str, *, at: float, provider: str | None = None, profile: str | None = None
    ) -> ConnectSession:
        """Move the session with this token hash from ``pending`` to ``used`` in one transaction,
        recording what the end user picked (a provider the session allows, the only one by
        default; its profile when it names one: else a ValidationError ``provider``/``profile``
        and nothing changes). Exactly one of several racing claims wins; the others, and a claim
        of an unknown, used or expired (at ``at``, epoch seconds) token, get a SessionError coded
        ``unknown``, ``used`` or ``expired`` that says nothing of the token. A pending session
        claimed after its expiry is recorded ``expired``."""

    def complete_session(self, session_id: str, connection_id: str) -> ConnectSession:
        """``used`` -> ``completed`` with the connection made (a reconnect session's own). The same
        completion again changes nothing; completing a session never claimed (``not_started``) or
        one completed otherwise, failed or expired (``finished``) is a SessionError."""

    def fail_session(self, session_id: str, code: str, message: str) -> ConnectSession:
        """``pending``/``used`` -> ``failed`` with a code (``[a-z0-9_]``) and a one-line message. A
        session failed or expired already keeps its first outcome; a completed one is a
        SessionError ``finished``."""

    def list_sessions(
        self,
        *,
        end_user: str | None = None,
        status: SessionStatus | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> tuple[ConnectSession, ...]:
        """Sessions ordered by id (of one end user, in one status); page with ``limit`` and ``after``."""

    def purge_sessions(self, before: float) -> int:
        """Delete the sessions that expired before ``before`` (epoch seconds), except ``used`` ones
        (their end user may still be at the provider) until a day after; returns how many."""

    # the keeper
    def keeper_lock(self, owner: str, *, ttl: float) -> AbstractContextManager[KeeperLock]:
        """Register keeper ``owner`` (with this process's pid and host) for a ``with`` block, ended
        however the block ends; its claims are released then. ``ttl``: how long it lasts past its last
        :meth:`KeeperLock.renew`. Where the store is one host's (SQLite) it is exclusive: while another
        keeper's lock lives (renewed within its ttl, by a process that still runs when it is on this
        host) taking it is a :class:`StoreError` coded ``keeper_running`` naming that keeper's pid and
        host; a lapsed one is taken over, with its claims."""

    def claim_due(self, due: KeeperDue, *, owner: str, ttl: float, now: float, limit: int) -> tuple[KeeperClaim, ...]:
        """Claim for keeper ``owner``, until ``now + ttl``, at most ``limit`` connected connections that
        ``due`` makes due (those whose retry time has not come excepted), or whose refresh was failing
        and whose tokens have changed since (refreshed elsewhere, or reconnected), soonest expiring
        first, in one transaction. A connection another keeper's live claim holds, or that another
        transaction has locked (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, a refresh in progress), is
        passed over: keepers sharing a store split the work."""

    def release_claims(self, owner: str) -> int:
        """End every claim keeper ``owner`` holds; how many."""

    def keeper_succeeded(self, connection_id: str, *, owner: str, tested_at: float | None = None) -> bool:
        """Record that the connection is healthy (refreshed, by this keeper or another refresher) and end
        ``owner``'s claim; ``tested_at`` (epoch seconds): the keeper's connection test ran then. When its
        refresh was failing, a ``connection.recovered`` event (``attempts``, ``degraded_since``) is
        recorded in the same transaction, and True returned."""

    def keeper_failed(
        self, connection_id: str, *, owner: str, error: str, next_attempt_at: float, token_version: int
    ) -> KeeperState | None:
        """Record a failed refresh attempt (of tokens ``token_version``) and when to try again, ending
        ``owner``'s claim. The first failure of a degradation records a ``connection.refresh_failing``
        event (``attempt``, ``error``, ``expires_at``, ``next_attempt_at``) in the same transaction;
        the next ones only count. Returns the new state (None for a connection that is gone)."""

    def keeper_forget(self, connection_id: str) -> None:
        """Drop what the keeper keeps about the connection (after a permanent failure: the connection's
        own status change carries the news)."""

    def keeper_state(self, connection_id: str) -> KeeperState | None:
        """What the keeper keeps about the connection; None when nothing."""

    # single-flight refresh
    def refresh_lease(
        self, connection_id: str, ttl: float, *, owner: str | None = None
    ) -> AbstractContextManager[RefreshLease]:
        """The connection's refresh lease, for ``with``: taken unless another live holder has it
        (see :class:`RefreshLease`), and ended when the block ends. ``ttl``: how long it
        lasts if its holder dies or hangs. ``owner`` (default: a new one per lease) names the
        holder: asking again for a lease the same owner holds takes it again, and the inner
        lease then leaves the outer one held when it ends."""
