"""Every domain statement of the stores, written once: :class:`SqlStore` over a :class:`Dialect`.

Both engines hold the same tables and columns, so every domain statement is written here
once, with ``?`` placeholders; an engine (:mod:`.sqlite`, :mod:`.postgres`) supplies how its
SQL differs (:class:`Dialect`), its connections and transactions, its errors, its schema
migrations and its refresh lease. Secrets are encrypted with AES-256-GCM
(:class:`~connector_core.crypto.KeyRing`) with associated data naming their row, alike in
both engines: a ciphertext copied with its key id from one to the other decrypts there.
"""

from __future__ import annotations

import abc
import contextlib
import hmac
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Self

import attrs

from ..connection import (
    TAG_RE,
    Attempt,
    Connection,
    ConnectionEvent,
    ConnectionStatus,
    ConnectSession,
    EndUser,
    Owner,
    SessionStatus,
)
from ..crypto import CryptoError, KeyRing
from ..errors import ConnectorError, SessionError, UnknownNameError, ValidationError
from ..events import Event, EventType, new_event_id
from ..profiles import Profile
from ..secret import Secret
from ..webhooks.endpoints import PREVIOUS_SECRET_NAME, SECRET_NAME, WebhookEndpoint, check_event_types, new_endpoint_id
from ..webhooks.outbox import (
    DELIVERY_ID_PREFIX,
    AttemptRecord,
    AttemptResult,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Outcome,
    iso_time,
)
from .contract import ConnectionStamp, KeeperClaim, KeeperDue, KeeperState, KeyRotation, StoreError

if TYPE_CHECKING:
    from ..oauth import TokenSet
    from ..profiles import ProfileDraft

__all__ = ["Dialect", "KeeperLockHandle", "Lease", "SqlStore", "Tx", "aad", "iso", "now"]

AAD_PREFIX = "connector-core/v1"
#: A connection's credential field values are secrets named ``credential:FIELD`` (beside its tokens).
CREDENTIAL_PREFIX = "credential:"
#: What taking a lease found: ``taken`` anew, held by the same owner ``again``, or ``refused``.
Taken = Literal["taken", "again", "refused"]

_PROFILE_COLUMNS = (
    "p.id, p.name, p.provider, p.auth_type, p.environment, p.credential_set, "
    "p.field_values, p.scopes, p.actions, p.created_at, p.updated_at, p.endpoints, p.seal"
)
_CONNECTION_COLUMNS = (
    "c.id, p.name, c.profile_id, c.provider, c.environment, c.auth_type, c.status, c.status_reason, "
    "c.token_type, c.expires_at, c.requested_scopes, c.granted_scopes, c.identity, c.provider_initiated, "
    "c.token_version, c.created_at, c.updated_at, c.refreshed_at, c.seal, "
    "c.end_user_id, c.organisation, c.end_user_email, c.end_user_name, c.tags"
)
_N_CONNECTION = 24
_CONNECTION_SELECT = f"SELECT {_CONNECTION_COLUMNS} FROM connections c JOIN profiles p ON p.id = c.profile_id"
#: What a connection's cached signature is checked against per request (:meth:`SqlStore.connection_stamp`).
_STAMP_SELECT = (
    "SELECT c.token_version, c.updated_at, c.status, c.expires_at, p.updated_at "
    "FROM connections c JOIN profiles p ON p.id = c.profile_id WHERE c.id = ?"
)
_INSERT_EVENT = "INSERT INTO connection_events (connection_id, at, status, reason) VALUES (?,?,?,?)"
#: Whose a connection is decides whose API calls may use its tokens: sealed too. An unclaimed row's
#: seal (both NULL) is the seal it had before these columns existed.
OWNER_SEALED = ("end_user_id", "organisation")
#: Whether a connect session makes a new connection rather than update the end user's own: sealed,
#: stored 1 or NULL, so that a session sealed before the column existed (NULL) keeps its seal.
SEPARATE_SEALED = ("separate",)
#: The sealed columns each table gained after its rows were first sealed, last among ``SEALED``: left
#: out of the sealed text while they are all NULL, so that rows sealed before they existed still match.
_LATER_SEALED = {"connections": OWNER_SEALED, "connect_sessions": SEPARATE_SEALED}
#: The columns a row's seal covers: everything that says where its secrets (and its profile's) are sent.
SEALED = {
    "profiles": (
        *("id", "name", "provider", "auth_type", "environment", "credential_set"),
        *("field_values", "scopes", "actions", "endpoints"),
    ),
    "connections": ("id", "profile_id", "provider", "environment", "auth_type", "identity", *OWNER_SEALED),
    # A connect session decides whose a connection becomes and where the end user is sent: all of
    # that, its token's hash and its status (a used token set back to pending would work again).
    "connect_sessions": (
        *("id", "token_hash", "end_user_id", "organisation", "providers", "profile", "scopes"),
        *("connection_id", "redirect_url", "expires_at", "status", "picked_provider", "picked_profile"),
        "result_connection_id",
        *SEPARATE_SEALED,
    ),
    # A webhook endpoint: where its deliveries (signed with its secrets) go, and which events.
    "webhook_endpoints": ("id", "url", "allow_private", "event_types"),
}
#: The tables sealed since the seals came (the migration adding them seals their rows); tables
#: added later are sealed from their first row.
_SEALED_FIRST = ("profiles", "connections")
_SESSION_COLUMNS = ", ".join(
    (
        *SEALED["connect_sessions"],
        *("seal", "end_user_email", "end_user_name", "tags", "created_at", "error_code", "error_message"),
        *("used_at", "finished_at"),
    )
)
_SESSION_SELECT = f"SELECT {_SESSION_COLUMNS} FROM connect_sessions"
#: Where the sealed columns are among ``_PROFILE_COLUMNS``, ``_CONNECTION_COLUMNS`` and
#: ``_SESSION_COLUMNS``, and the seal's.
_SEALED_AT = {
    "profiles": ((0, 1, 2, 3, 4, 5, 6, 7, 8, 11), 12),
    "connections": ((0, 2, 3, 4, 5, 12, 19, 20), 18),
    "connect_sessions": (tuple(range(15)), 15),
    "webhook_endpoints": ((0, 1, 2, 3), 4),
}
#: A ``used`` session (its end user still at the provider) outlives its expiry this long before
#: :meth:`SqlStore.purge_sessions` deletes it.
USED_SESSION_GRACE = 86400.0


def now() -> str:
    """The time as the stores record it: ISO 8601, UTC, microseconds (so it sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def iso(epoch: float) -> str:
    """Epoch seconds as the stores record times (see :func:`now`)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


def aad(owner_id: str, name: str) -> str:
    """The associated data binding a secret to its row."""
    return f"{AAD_PREFIX}|{owner_id}|{name}"


def _sealed_text(table: str, values: Sequence[Any]) -> bytes:
    """The canonical text a seal covers: the table and its sealed columns as stored. The columns a
    table gained later (``_LATER_SEALED``: a connection's owner, a session's ``separate``) count only
    once one of them is set, so rows sealed before they existed still match."""
    later = _LATER_SEALED.get(table, ())
    if later and len(values) == len(SEALED[table]) and all(v is None for v in values[-len(later) :]):
        values = values[: -len(later)]
    return json.dumps([AAD_PREFIX, table, *values], separators=(",", ":"), default=repr).encode("utf-8")


def _what(table: str, sealed: Sequence[Any]) -> str:
    """A row named by its sealed columns, for messages."""
    if table == "connect_sessions":
        return f"connect session {sealed[0]}"
    if table == "webhook_endpoints":
        return f"webhook endpoint {sealed[0]}"
    return f"profile {sealed[1]!r}" if table == "profiles" else f"connection {sealed[0]}"


def _draft_columns(draft: ProfileDraft) -> tuple[str, ...]:
    """name, auth_type, environment, credential_set, field_values, scopes, actions, endpoints."""
    as_json = (dict(draft.values), list(draft.scopes), list(draft.actions), dict(draft.endpoints))
    return (draft.name, draft.auth_type, draft.environment, draft.credential_set, *map(json.dumps, as_json))


def _damaged(what: str, column: str, detail: str) -> StoreError:
    return StoreError(
        f"{what}: stored {column}: {detail} (the database was changed outside connector-core, or is damaged)",
        code="damaged",
    )


def _json(value: Any, kind: type[dict[str, Any]] | type[list[Any]], what: str, column: str) -> Any:
    """A JSON column's value, which must be a ``kind`` (stored columns can hold anything)."""
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        data = None
    if not isinstance(data, kind):
        raise _damaged(what, column, f"not a JSON {'object' if kind is dict else 'array'}")
    return data


def _status(value: Any, what: str) -> ConnectionStatus:
    try:
        return ConnectionStatus(value)
    except ValueError:
        raise _damaged(what, "status", f"{str(value)[:40]!r} is not a connection status") from None


def _number(value: Any, what: str, column: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _damaged(what, column, "not a number") from None


def _profile(row: Sequence[Any], secret_names: tuple[str, ...], secrets: dict[str, Secret] | None) -> Profile:
    """A profile from the first columns of ``_PROFILE_COLUMNS``."""
    pid, name, provider, auth_type, environment, credential_set, values, scopes, actions, created, updated = row[:11]
    what = f"profile {name!r}"
    return Profile(
        id=pid,
        name=name,
        provider=provider,
        auth_type=auth_type,
        environment=environment,
        credential_set=credential_set,
        values=tuple(_json(values, dict, what, "field values").items()),
        secret_names=secret_names,
        scopes=tuple(_json(scopes, list, what, "scopes")),
        actions=tuple(_json(actions, list, what, "actions")),
        created_at=created,
        updated_at=updated,
        endpoints=tuple(_json(row[11], dict, what, "endpoints").items()),
        secrets=tuple((secrets or {}).items()),
    )


def _connection(row: Sequence[Any]) -> Connection:
    """A connection from the first columns of ``_CONNECTION_COLUMNS``."""
    what = f"connection {row[0]}"
    return Connection(
        id=row[0],
        profile=row[1],
        profile_id=row[2],
        provider=row[3],
        environment=row[4],
        auth_type=row[5],
        status=_status(row[6], what),
        status_reason=row[7],
        token_type=row[8],
        expires_at=_number(row[9], what, "expiry time") if row[9] is not None else None,
        requested_scopes=tuple(_json(row[10], list, what, "requested scopes")),
        granted_scopes=tuple(_json(row[11], list, what, "granted scopes")),
        identity=tuple(_json(row[12], dict, what, "identity").items()),
        provider_initiated=bool(row[13]),
        token_version=int(_number(row[14], what, "token version")),
        created_at=row[15],
        updated_at=row[16],
        refreshed_at=row[17],
        owner=_owner(row[19:24], what),
    )


def _owner(columns: Sequence[Any], what: str) -> Owner:
    """A connection's owner from its end_user_id, organisation, end_user_email, end_user_name, tags."""
    end_user_id, organisation, email, name, tags = columns
    try:
        end_user = EndUser(end_user_id, email, name) if end_user_id is not None else None
        return Owner(end_user, organisation, tuple(_json(tags, list, what, "tags")))
    except ValidationError as exc:
        raise _damaged(what, "owner", exc.message) from None


#: A listing's page when none is asked for: rows read per statement by ``iter_connections``.
LISTING_PAGE = 500
_STATUSES = {s.value: s for s in ConnectionStatus}
#: The C scanner under json.loads: (value, end) of the JSON text at an index.
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


class _ConnectionRows:
    """Connections from rows of ``_CONNECTION_COLUMNS``, as :func:`_connection` makes them, faster
    over many rows: the JSON columns most rows share (the scopes of a profile, an unclaimed owner,
    tags) are parsed and checked once and their (immutable) values shared, for as long as this
    reader lives (one listing). A row any check would refuse is read by :func:`_connection`,
    which raises the same error."""

    _MAX = 1024  # distinct values remembered per kind; forgotten all at once beyond that

    def __init__(self) -> None:
        self._lists: dict[Any, tuple[str, ...]] = {}
        self._owners: dict[Any, Owner] = {}  # by the row's owner columns

    def __call__(self, row: Sequence[Any]) -> Connection:
        lists = self._lists
        try:
            status = _STATUSES[row[6]]
            requested, granted, owner = lists[row[10]], lists[row[11]], self._owners[row[19:24]]
            identity, end = _scan_json(row[12], 0)  # the C scanner json.loads runs, without its wrapping
        except (KeyError, TypeError, ValueError, StopIteration):
            return self._first(row)
        expires, version = row[9], row[14]
        if (
            type(identity) is not dict
            or end != len(row[12])
            or type(version) is not int
            or not (expires is None or type(expires) is float)
        ):
            return self._first(row)
        return Connection(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            status,
            row[7],
            row[8],
            expires,
            requested,
            granted,
            tuple(identity.items()),
            bool(row[13]),
            version,
            row[15],
            row[16],
            row[17],
            owner,
        )

    def _first(self, row: Sequence[Any]) -> Connection:
        """A row with a value not seen yet (or damaged: :func:`_connection` raises), remembered."""
        conn = _connection(row)
        owner_key = tuple(row[19:24])
        for cache in (self._lists, self._owners):
            if len(cache) >= self._MAX:
                cache.clear()
        self._lists[row[10]], self._lists[row[11]] = conn.requested_scopes, conn.granted_scopes
        self._owners[owner_key] = conn.owner
        return conn


def owner_json(owner: Owner | None) -> str | None:
    """An owner as an attempt stores it until its connection is made."""
    if owner is None:
        return None
    user = attrs.asdict(owner.end_user) if owner.end_user is not None else None
    return json.dumps({"end_user": user, "organisation": owner.organisation, "tags": list(owner.tags)})


def _owner_of_json(text: str | None, what: str) -> Owner | None:
    if text is None:
        return None
    data = _json(text, dict, what, "owner")
    try:
        user = data.get("end_user")
        end_user = EndUser(user["id"], user.get("email"), user.get("display_name")) if user else None
        return Owner(end_user, data.get("organisation"), tuple(data.get("tags") or ()))
    except (ValidationError, KeyError, TypeError, AttributeError):
        raise _damaged(what, "owner", "not an owner") from None


def _page(
    select: str, conditions: Mapping[str, Any], order: str, limit: int | None, *, always: Sequence[str] = ()
) -> tuple[str, list[Any]]:
    """A listing's query and arguments: ``select`` where each condition whose value is not None
    holds (and each of ``always``), ordered by ``order`` (the paging key), at most ``limit`` rows."""
    used = {condition: value for condition, value in conditions.items() if value is not None}
    clauses = [*used, *always]
    query = select + (" WHERE " + " AND ".join(clauses) if clauses else "") + f" ORDER BY {order}"
    args: list[Any] = list(used.values())
    if limit is not None:
        query += " LIMIT ?"
        args.append(int(limit))
    return query, args


def _connection_filters(
    profile: str | None,
    status: ConnectionStatus | None,
    end_user: str | None,
    organisation: str | None,
    tag: str | None,
    provider: str | None,
) -> dict[str, Any]:
    """A connection listing's conditions (those whose value is None do not apply), but the page's."""
    return {
        "p.name = ?": profile,
        "c.status = ?": status.value if status is not None else None,
        "c.end_user_id = ?": end_user,
        "c.organisation = ?": organisation,
        "c.provider = ?": provider,
        # Tags are a JSON list of strings that hold no quote: an exact element match.
        "c.tags LIKE ? ESCAPE '\\'": _tag_pattern(tag) if tag is not None else None,
    }


def _connections_page(
    filters: Mapping[str, Any], after: str | None, limit: int | None, unclaimed: bool
) -> tuple[str, list[Any]]:
    """The query and arguments of one page of a connection listing: ordered by id, after ``after``."""
    conditions = {**filters, "c.id > ?": after}
    return _page(_CONNECTION_SELECT, conditions, "c.id", limit, always=("c.end_user_id IS NULL",) if unclaimed else ())


def _tag_pattern(tag: str) -> str:
    """The LIKE pattern matching ``tag`` as one element of a connection's JSON list of tags."""
    if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
        raise ValidationError("tag", f"expected a tag (lower-case letters, digits, '.', '_', ':', '-'), got {tag!r}")
    escaped = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f'%"{escaped}"%'


_EVENT_COLUMNS = "seq, id, type, at, data"
_CONNECTION_ATTRIBUTES = (
    "SELECT c.id, c.provider, p.name, c.environment, c.auth_type, c.status, c.status_reason, c.identity, "
    "c.end_user_id, c.end_user_email, c.end_user_name, c.organisation, c.tags, c.expires_at, c.granted_scopes "
    "FROM connections c JOIN profiles p ON p.id = c.profile_id WHERE c.id = ?"
)


def _snapshot(row: Sequence[Any]) -> dict[str, Any]:
    """A connection as an event carries it (``_CONNECTION_ATTRIBUTES``): what it is and whose, no secret."""
    user = None if row[8] is None else {"id": row[8], "email": row[9], "display_name": row[10]}
    return {
        "id": row[0],
        "provider": row[1],
        "profile": row[2],
        "environment": row[3],
        "auth_type": row[4],
        "status": row[5],
        "status_reason": row[6],
        "end_user": user,
        "organisation": row[11],
        "tags": json.loads(row[12] or "[]"),
        "identity": json.loads(row[7] or "{}"),
        "expires_at": row[13],
    }


def _event_of(row: Sequence[Any]) -> Event:
    """An event from ``_EVENT_COLUMNS``."""
    what = f"event {row[1]}"
    try:
        kind = EventType(row[2])
    except ValueError:
        raise _damaged(what, "type", f"{str(row[2])[:60]!r} is not an event type") from None
    return Event(id=row[1], seq=int(row[0]), type=kind, at=row[3], data=_json(row[4], dict, what, "data"))


def _session_snapshot(session: ConnectSession) -> dict[str, Any]:
    """A connect session as an event carries it (never its token)."""
    user = session.owner.end_user
    return {
        "id": session.id,
        "end_user": None if user is None else {"id": user.id, "email": user.email, "display_name": user.display_name},
        "organisation": session.owner.organisation,
        "tags": list(session.owner.tags),
        "providers": list(session.providers),
        "provider": session.picked_provider,
        "profile": session.picked_profile or session.profile,
        "connection_id": session.connection_id,
    }


def _owner_columns(owner: Owner) -> dict[str, Any]:
    user = owner.end_user
    return {
        "end_user_id": user.id if user else None,
        "end_user_email": user.email if user else None,
        "end_user_name": user.display_name if user else None,
        "organisation": owner.organisation,
        "tags": json.dumps(list(owner.tags)),
    }


def _session_status(value: Any, what: str) -> SessionStatus:
    try:
        return SessionStatus(value)
    except ValueError:
        raise _damaged(what, "status", f"{str(value)[:40]!r} is not a session status") from None


def _session(row: Sequence[Any]) -> ConnectSession:
    """A connect session from ``_SESSION_COLUMNS``."""
    what = f"connect session {row[0]}"
    try:
        user = EndUser(row[2], row[16], row[17])
        owner = Owner(user, row[3], tuple(_json(row[18], list, what, "tags")))
    except ValidationError as exc:
        raise _damaged(what, "owner", exc.message) from None
    return ConnectSession(
        id=row[0],
        owner=owner,
        providers=tuple(_json(row[4], list, what, "providers")),
        profile=row[5],
        scopes=tuple(_json(row[6], list, what, "scopes")),
        connection_id=row[7],
        redirect_url=row[8],
        expires_at=_number(row[9], what, "expiry time"),
        status=_session_status(row[10], what),
        picked_provider=row[11],
        picked_profile=row[12],
        result_connection_id=row[13],
        created_at=row[19],
        error_code=row[20],
        error_message=row[21],
        used_at=row[22],
        finished_at=row[23],
        separate=row[14] is not None,  # the seal holds it to 1 or NULL
    )


def _session_refused(code: str) -> SessionError:
    """The one error of a token that cannot start a flow; it says nothing of the token."""
    messages = {
        "unknown": "this connect session is unknown; ask the platform for a new connect link",
        "used": "this connect session was already used; ask the platform for a new connect link",
        "expired": "this connect session has expired; ask the platform for a new connect link",
    }
    return SessionError(f"connect session: {messages[code]}", code=code)


_ERROR_CODE_RE = re.compile(r"[a-z0-9_]{1,64}")


def _pick(session: ConnectSession, provider: str | None, profile: str | None) -> tuple[str | None, str | None]:
    """What the end user picked when claiming ``session``: a provider it allows (the only one
    when there is one), and its profile when the session names one."""
    if provider is None and len(session.providers) == 1:
        provider = session.providers[0]
    if provider is not None and provider not in session.providers:
        raise ValidationError("provider", f"{provider!r} is not one of this session's providers")
    if session.profile is not None:
        if profile is not None and profile != session.profile:
            raise ValidationError("profile", f"this session connects through profile {session.profile!r} only")
        profile = session.profile
    return provider, profile


# ------------------------------------------------------------------ webhooks

_ENDPOINT_SELECT = (
    "SELECT e.id, e.url, e.allow_private, e.event_types, e.seal, e.created_at, e.updated_at, e.disabled_at, "
    "e.disabled_reason, (SELECT count(*) FROM secrets s WHERE s.owner_id = e.id "
    f"AND s.name = '{PREVIOUS_SECRET_NAME}') FROM webhook_endpoints e"
)
_DELIVERY_SELECT = (
    "SELECT d.id, d.seq, d.event_id, ev.type, d.endpoint_id, d.status, d.attempts, d.next_attempt_at, "
    "d.created_at, d.finished_at, d.replay FROM webhook_deliveries d JOIN events ev ON ev.id = d.event_id"
)
_INSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempts, next_attempt_at, replay, created_at) "
    "VALUES (?, ?, ?, 'pending', 0, ?, ?, ?)"
)
_ATTEMPT_SELECT = (
    "SELECT delivery_id, attempt, at, status_code, latency_ms, response, error FROM webhook_attempts "
    "WHERE delivery_id IN ({marks}) ORDER BY delivery_id, attempt"
)
#: The longest reason kept for a disabled endpoint, and the longest error kept for an attempt.
_MAX_REASON = 500


def _delivery_id() -> str:
    return DELIVERY_ID_PREFIX + uuid.uuid4().hex


def _subscribes(stored: Any, kind: EventType) -> bool:
    """Whether an endpoint's stored event types (a JSON list, empty for every type) take ``kind``;
    True when they cannot be read (see :meth:`SqlStore._after_event`)."""
    try:
        types = json.loads(stored)
    except (TypeError, ValueError):
        return True
    return not isinstance(types, list) or not types or kind.value in types


def _endpoint(row: Sequence[Any]) -> WebhookEndpoint:
    """An endpoint from ``_ENDPOINT_SELECT``."""
    what = f"webhook endpoint {row[0]}"
    kinds = []
    for value in _json(row[3], list, what, "event types"):
        try:
            kinds.append(EventType(value))
        except ValueError:
            raise _damaged(what, "event types", f"{str(value)[:60]!r} is not an event type") from None
    return WebhookEndpoint(
        id=row[0],
        url=row[1],
        event_types=tuple(kinds),
        allow_private=bool(row[2]),
        created_at=row[5],
        updated_at=row[6],
        disabled_at=row[7],
        disabled_reason=row[8],
        rotating=bool(row[9]),
    )


def _delivery(row: Sequence[Any], log: tuple[DeliveryAttempt, ...] = ()) -> Delivery:
    """A delivery from ``_DELIVERY_SELECT``."""
    what = f"webhook delivery {row[0]}"
    try:
        kind, status = EventType(row[3]), DeliveryStatus(row[5])
    except ValueError:
        raise _damaged(what, "status", "not a delivery status, or its event's type is unknown") from None
    return Delivery(
        id=row[0],
        seq=int(row[1]),
        event_id=row[2],
        event_type=kind,
        endpoint_id=row[4],
        status=status,
        attempts=int(_number(row[6], what, "attempts")),
        next_attempt_at=_number(row[7], what, "next attempt time") if row[7] is not None else None,
        created_at=row[8],
        finished_at=row[9],
        replay=bool(row[10]),
        log=log,
    )


_INSERT_ATTEMPT = (
    "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, response, error) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _attempt_row(delivery_id: str, number: int, attempt: AttemptRecord) -> tuple[Any, ...]:
    return (
        *(delivery_id, number, attempt.at, attempt.status_code, attempt.latency_ms),
        *(attempt.response, _one_line(attempt.error)),
    )


def _attempt_changes(
    row: Sequence[Any], attempt: AttemptRecord, outcome: str, owner: str, next_attempt_at: float | None
) -> tuple[int, dict[str, Any], Any]:
    """What recording an attempt changes in its delivery's row (``status, attempts, endpoint_id,
    claimed_by``): the attempt's number, the columns set, and the status after."""
    status, attempts, _, claimed_by = row
    number = int(attempts) + 1
    columns: dict[str, Any] = {"attempts": number}
    if claimed_by == owner:  # a claim another deliverer took over (ours expired) stays theirs
        columns.update(claimed_by=None, claimed_until=None)
    after = status
    if status == DeliveryStatus.PENDING.value:
        after = {"delivered": DeliveryStatus.DELIVERED.value, "retry": status}.get(outcome, DeliveryStatus.FAILED.value)
        if outcome == "delivered":
            columns.update(status=DeliveryStatus.DELIVERED.value, next_attempt_at=None, finished_at=attempt.at)
        elif outcome == "retry":
            columns.update(next_attempt_at=float(next_attempt_at or 0))
        else:
            columns.update(status=DeliveryStatus.FAILED.value, next_attempt_at=None, finished_at=attempt.at)
    return number, columns, after


def _check_outcome(outcome: str, next_attempt_at: float | None) -> None:
    if outcome not in ("delivered", "retry", "failed", "gone"):
        raise ValidationError("outcome", f"expected delivered, retry, failed or gone, got {outcome!r}")
    if outcome == "retry" and next_attempt_at is None:
        raise ValidationError("next_attempt_at", "a retry needs the time of its next attempt")


def _delivery_status(value: Any, delivery_id: str) -> DeliveryStatus:
    try:
        return DeliveryStatus(value)
    except ValueError:
        raise _damaged(f"webhook delivery {delivery_id}", "status", "not a delivery status") from None


def _attempt(row: Sequence[Any]) -> DeliveryAttempt:
    """An attempt from ``_ATTEMPT_SELECT`` (its delivery id first)."""
    return DeliveryAttempt(
        attempt=int(row[1]),
        at=row[2],
        status_code=None if row[3] is None else int(row[3]),
        latency_ms=None if row[4] is None else float(row[4]),
        response=row[5],
        error=row[6],
    )


def _one_line(text: str | None, limit: int = _MAX_REASON) -> str | None:
    return None if text is None else " ".join(str(text).split())[:limit]


@attrs.frozen
class Dialect:
    """How an engine's SQL differs from the statements written here."""

    #: The driver's placeholder, which stands for ``?`` in the statements here.
    placeholder: str
    #: Appended to a select whose rows the transaction is about to change (row locks).
    for_update: str
    #: The SQL function quoting a text as a literal, for messages.
    quote: str
    #: The column giving a row's storage order, the order secrets are listed in.
    row_order: str
    #: Set by every write that ends a connection's refresh lease (SQLite keeps it in the row).
    end_lease: str
    #: Whether other hosts share the store: then a key file is made only while no secret needs one.
    shared: bool
    #: A blob column's value as the key ring reads it (as stored, or as bytes).
    blob: Callable[[Any], Any]
    #: The schema version that added the ``seal`` columns: its migration seals the rows there are.
    sealed_from: int
    #: The schema version that added a connection's owner columns (sealed from then on).
    owned_from: int
    #: Appended to the read of the store's primary key id before encrypting: a rotation waits for it.
    for_share: str = ""
    #: Appended to the select of the deliveries a deliverer claims: rows another claimer holds are skipped.
    skip_locked: str = ""
    #: Appended to the keeper's claim query (a join): the connection rows another transaction has
    #: locked are passed over.
    keeper_skip_locked: str = ""

    def sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)


class Tx:
    """An engine's database connection, in a transaction or a snapshot, speaking ``?`` placeholders.
    Everything else is the driver's connection (``tx.raw``)."""

    __slots__ = ("dialect", "raw")

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(self.dialect.sql(statement), params)

    def one(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(statement, params).fetchone()

    def all(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(statement, params).fetchall())

    def many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        with contextlib.closing(self.raw.cursor()) as cursor:
            cursor.executemany(self.dialect.sql(statement), rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class Lease:
    """A refresh lease of a :class:`SqlStore` (see :class:`~.contract.RefreshLease`)."""

    def __init__(self, store: SqlStore, connection_id: str, owner: str, taken: Taken) -> None:
        self.connection_id = connection_id
        self.owner = owner
        self._store = store
        self.held = taken != "refused"
        #: Taken again by its owner: the outer lease ends it, not this one.
        self._inner = taken == "again"

    def __repr__(self) -> str:
        return f"<Lease {self.connection_id} held={self.held}>"

    def read(self) -> tuple[Connection, Secret | None, Secret | None]:
        return self._store.get_tokens(self.connection_id)

    def save(self, expected_version: int, tokens: TokenSet, granted: tuple[str, ...]) -> Connection:
        if not self.held:
            raise StoreError(f"connection {self.connection_id}: the refresh lease is not held; nothing was stored")
        saved = self._store._save_refresh(self.connection_id, expected_version, tokens, granted)
        self.held = False
        return saved

    def _end(self) -> None:
        if self.held and not self._inner:
            self.held = False
            self._store._end_lease(self.connection_id, self.owner)


#: The keeper lock's name where a store has one keeper (SQLite); on a shared store each keeper's row
#: is named ``keeper:OWNER``.
KEEPER_LOCK = "keeper"
_KEEPER_COLUMNS = (
    "k.claimed_by, k.claimed_until, k.failures, k.degraded_since, k.failed_version, "
    "k.next_attempt_at, k.last_error, k.tested_at"
)
_CLAIM_SELECT = (
    "SELECT c.id, c.provider, c.auth_type, c.token_version, c.expires_at, "
    f"coalesce(c.refreshed_at, c.created_at), c.created_at, {_KEEPER_COLUMNS} "
    "FROM connections c LEFT JOIN keeper_state k ON k.connection_id = c.id"
)
_CLAIM = (
    "INSERT INTO keeper_state (connection_id, claimed_by, claimed_until, updated_at) VALUES (?,?,?,?) "
    "ON CONFLICT (connection_id) DO UPDATE SET claimed_by = excluded.claimed_by, "
    "claimed_until = excluded.claimed_until, updated_at = excluded.updated_at "
    "WHERE keeper_state.claimed_until IS NULL OR keeper_state.claimed_until < ?"
)
_UNCLAIM_ALL = "UPDATE keeper_state SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ?"
_UNCLAIM = _UNCLAIM_ALL + " AND connection_id = ?"


def _keeper_state(connection_id: str, columns: Sequence[Any]) -> KeeperState:
    """A keeper state from ``_KEEPER_COLUMNS`` (all NULL: a connection the keeper has no row for)."""
    what = f"the keeper's state of connection {connection_id}"
    claimed_by, claimed_until, failures, degraded_since, failed_version, next_at, last_error, tested_at = columns
    return KeeperState(
        connection_id=connection_id,
        claimed_by=claimed_by,
        claimed_until=_number(claimed_until, what, "claim") if claimed_until is not None else None,
        failures=int(_number(failures, what, "failures")) if failures is not None else 0,
        degraded_since=degraded_since,
        failed_version=int(_number(failed_version, what, "failed version")) if failed_version is not None else None,
        next_attempt_at=_number(next_at, what, "next attempt") if next_at is not None else None,
        last_error=last_error,
        tested_at=tested_at,
    )


def _error_line(text: str, limit: int = 500) -> str:
    return " ".join(str(text).split())[:limit]


def _gone(host: Any, pid: Any) -> bool:
    """Whether the process ``pid`` on ``host`` is known to have ended: only this host's processes can
    be asked (a pid reused since is taken for the keeper, which errs on the safe side)."""
    if host != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, as another user's
        return False
    return False


class KeeperLockHandle:
    """A keeper's lock on a :class:`SqlStore` (see :class:`~.contract.KeeperLock`)."""

    def __init__(self, store: SqlStore, name: str, owner: str, ttl: float, exclusive: bool) -> None:
        self._store = store
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.exclusive = exclusive

    def __repr__(self) -> str:
        return f"<KeeperLock {self.name} owner={self.owner}>"

    def renew(self) -> bool:
        with self._store._write() as tx:
            cur = tx.execute(
                "UPDATE keeper_locks SET heartbeat_until = ? WHERE name = ? AND owner = ?",
                (time.time() + self.ttl, self.name, self.owner),
            )
            return int(cur.rowcount) == 1


class SqlStore(abc.ABC):
    """The store's behaviour over any engine; a subclass supplies the engine (see the module doc).
    Each public method keeps the promise its namesake in :class:`~.contract.StoreLike` states."""

    dialect: Dialect

    def __init__(self, env: Mapping[str, str] | None) -> None:
        self._env = dict(os.environ if env is None else env)
        self._keyring: KeyRing | None = None
        self._keyring_lock = threading.Lock()
        self._store_id: str | None = None

    # ------------------------------------------------------ what an engine supplies
    # ``_rows``: one read statement on its own (it sees committed data); ``_read``: a snapshot for
    # several reads; ``_write``: one write transaction (to ``connection_id``'s row, when given)
    # whose engine errors become StoreError, a unique-key violation ``unique`` when given.

    @property
    @abc.abstractmethod
    def path(self) -> Any: ...
    @abc.abstractmethod
    def close(self) -> None: ...
    @abc.abstractmethod
    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[Any]: ...
    @abc.abstractmethod
    def _read(self) -> contextlib.AbstractContextManager[Tx]: ...
    @abc.abstractmethod
    def _write(
        self, connection_id: str | None = None, *, unique: ConnectorError | None = None
    ) -> contextlib.AbstractContextManager[Tx]: ...
    @abc.abstractmethod
    def _take_lease(self, connection_id: str, owner: str, ttl: float) -> Taken: ...
    @abc.abstractmethod
    def _end_lease(self, connection_id: str, owner: str) -> None: ...
    @abc.abstractmethod
    def _save_refresh(
        self, connection_id: str, expected_version: int, tokens: TokenSet, granted: tuple[str, ...]
    ) -> Connection: ...

    # -------------------------------------------------------------------- common

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _newer(self, version: int, supported: int) -> StoreError:
        return StoreError(
            f"database {self.path}: schema version {version} is newer than this connector-core "
            f"supports ({supported}); upgrade connector-core"
        )

    def _apply(self, tx: Tx, migrations: Mapping[int, tuple[str, ...]], current: int, target: int) -> bool:
        """Run migration ``target`` unless the schema is at ``current`` >= ``target`` already
        (another process migrated first); the first migration also names the store."""
        if current >= target:
            return False
        try:
            for statement in migrations[target]:
                tx.execute(statement)
        except Exception as exc:  # noqa: BLE001 - the engine's own error: the tables are not what `current` made
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(
                f"database {self.path}: cannot upgrade the schema from version {current} to {target} ({detail}); "
                "its recorded version does not match its tables (set back, or not a connector-core database?)",
                code="damaged",
            ) from None
        if target == self.dialect.sealed_from:
            self._seal_existing(tx, target)
        if target == 1:
            tx.execute("INSERT INTO meta (key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,))
            tx.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", (now(),))
        return True

    @property
    def store_id(self) -> str:
        if self._store_id is None:
            rows = self._rows("SELECT value FROM meta WHERE key = 'store_id'")
            if not rows:
                raise StoreError(f"database {self.path}: the store has no id; not a connector-core schema?")
            self._store_id = str(rows[0][0])
        return self._store_id

    # ------------------------------------------------------------------- secrets

    @property
    def keyring(self) -> KeyRing:
        """The store's key ring, loaded on first use. A shared store generates a key file only
        while it holds no secret: a host that joins a store in use must be given its keys."""
        with self._keyring_lock:
            if self._keyring is None:
                store_id = self.store_id
                used = self.dialect.shared and bool(self._rows("SELECT EXISTS (SELECT 1 FROM secrets)")[0][0])
                self._keyring = KeyRing.load(store_id, self._env, create=not used)
            return self._keyring

    def _set_keyring(self, ring: KeyRing) -> None:
        with self._keyring_lock:
            self._keyring = ring

    def _reload_keyring(self) -> bool:
        """Read the key file again (another process rotated the keys); whether there is one."""
        ring = self.keyring
        if ring.path is None:
            return False
        self._set_keyring(KeyRing.from_file(ring.path))
        return True

    def _fresh(self, use: Callable[[KeyRing], Any]) -> Any:
        """``use(ring)``; when it meets a key the ring does not hold, again with the key file read anew."""
        try:
            return use(self.keyring)
        except CryptoError as exc:
            if exc.code != "unknown_key" or not self._reload_keyring():
                raise
        return use(self.keyring)

    def _encrypting_ring(self, tx: Tx) -> KeyRing:
        """The ring to encrypt with in ``tx``: its primary must be the store's (``meta.primary_key``,
        set by the last rotation), so that no process encrypts under a key another one retired."""
        ring = self.keyring
        if ring.path is None:  # keys from the environment: the operator rotates them
            return ring
        row = tx.one("SELECT value FROM meta WHERE key = 'primary_key'" + self.dialect.for_share)
        if row is None or row[0] == ring.primary_id:
            return ring
        self._reload_keyring()
        ring = self.keyring
        if ring.primary_id != row[0]:
            raise CryptoError(
                f"the store's keys were rotated to key {row[0]}, which {ring.source} does not hold as its "
                "primary key; give this process the store's current key file",
                code="unknown_key",
            )
        return ring

    def _put_secret(self, tx: Tx, owner_id: str, name: str, value: Secret) -> None:
        try:
            kid, nonce, ciphertext = self._encrypting_ring(tx).encrypt(value.reveal(), aad(owner_id, name))
        except UnicodeEncodeError:  # a lone surrogate, e.g. undecodable bytes read from the environment
            raise ValidationError(name, "is not valid text (it holds undecodable bytes)") from None
        tx.execute(
            "INSERT INTO secrets (owner_id, name, key_id, nonce, ciphertext) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (owner_id, name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, "
            "ciphertext = excluded.ciphertext",
            (owner_id, name, kid, nonce, ciphertext),
        )

    def _decrypt(self, owner_id: str, rows: Sequence[Sequence[Any]], what: str) -> dict[str, Secret]:
        """``rows`` of (name, key_id, nonce, ciphertext), in storage order, as stored: the key
        ring refuses anything that is not what it wrote."""
        blob = self.dialect.blob

        def decrypt(ring: KeyRing) -> dict[str, Secret]:
            return {
                name: Secret(ring.decrypt(kid, blob(nonce), blob(ct), aad(owner_id, name), what=f"{name} of {what}"))
                for name, kid, nonce, ct in rows
            }

        result: dict[str, Secret] = self._fresh(decrypt)
        return result

    def _secrets_of(self, tx: Tx, owner_id: str, what: str) -> dict[str, Secret]:
        order = self.dialect.row_order
        query = f"SELECT name, key_id, nonce, ciphertext FROM secrets WHERE owner_id = ? ORDER BY {order}"
        return self._decrypt(owner_id, tx.all(query, (owner_id,)), what)

    # --------------------------------------------------------------------- seals
    # A profile's and a connection's row carry a seal (``KeyRing.seal``) of the columns that say
    # where their secrets go (``SEALED``): a row changed by anyone without the keys is refused.

    def _tampered(self, table: str, row: Sequence[Any]) -> StoreError:
        return StoreError(
            f"database {self.path}: {_what(table, row)} was changed outside connector-core (its seal does not match "
            "its stored settings); refusing to use it. Restore the database from a backup, or delete and recreate it",
            code="tampered",
        )

    def _check_seal(self, table: str, row: Sequence[Any]) -> None:
        """Refuse ``row`` (of ``_PROFILE_COLUMNS`` or ``_CONNECTION_COLUMNS``) unless its seal matches."""
        at, seal_at = _SEALED_AT[table]
        values = [row[i] for i in at]
        text, what = _sealed_text(table, values), _what(table, values)
        if not self._fresh(lambda ring: ring.sealed(row[seal_at], text, what=what)):
            raise self._tampered(table, values)

    def _seal(
        self,
        tx: Tx,
        table: str,
        row_id: str | None = None,
        *,
        ring: KeyRing | None = None,
        columns: Sequence[str] | None = None,
    ) -> None:
        """Seal the row ``row_id`` of ``table`` (every row when None; those with a seal must match it
        first, so that resealing never launders a changed row). The ring defaults to the store's;
        ``columns`` to the sealed ones (a migration passes those its schema version has)."""
        ring = ring or self._encrypting_ring(tx)
        where, args = (" WHERE id = ?", (row_id,)) if row_id is not None else ("", ())
        names = ", ".join(columns or SEALED[table])
        rows = tx.all(f"SELECT {names}, seal FROM {table}{where}{self.dialect.for_update}", args)
        updates = []
        for *values, seal in rows:
            data = _sealed_text(table, values)
            if row_id is None and seal is not None and not ring.sealed(seal, data, what=_what(table, values)):
                raise self._tampered(table, values)
            updates.append((ring.seal(data), values[0]))
        tx.many(f"UPDATE {table} SET seal = ? WHERE id = ?", updates)

    def _seal_existing(self, tx: Tx, version: int) -> None:
        """The migration adding the seals seals the rows there are (it runs once: the columns it adds
        cannot be added twice, so no later change to the database can have a row sealed anew), over
        the sealed columns the schema has at ``version`` (the owner's come later, NULL at first)."""
        if any(tx.one(f"SELECT EXISTS (SELECT 1 FROM {table})")[0] for table in _SEALED_FIRST):
            for table in _SEALED_FIRST:
                later = OWNER_SEALED if table == "connections" and version < self.dialect.owned_from else ()
                self._seal(tx, table, columns=[c for c in SEALED[table] if c not in later])

    # ------------------------------------------------------------------ profiles

    @contextlib.contextmanager
    def _writing_profile(self, draft: ProfileDraft) -> Iterator[Tx]:
        """A write transaction for ``draft``, its secrets included; a taken name is a ValidationError."""
        self.keyring  # noqa: B018 - load or create the keys before the transaction starts
        with self._write(unique=ValidationError("name", f"a profile named {draft.name!r} already exists")) as tx:
            yield tx

    def create_profile(self, draft: ProfileDraft) -> Profile:
        profile_id = f"prof_{uuid.uuid4().hex}"
        at = now()
        with self._writing_profile(draft) as tx:
            tx.execute(
                "INSERT INTO profiles (name, auth_type, environment, credential_set, field_values, scopes, "
                "actions, endpoints, id, provider, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (*_draft_columns(draft), profile_id, draft.provider, at, at),
            )
            self._seal(tx, "profiles", profile_id)
            for name, value in draft.secrets:
                self._put_secret(tx, profile_id, name, value)
        return self.get_profile(draft.name)

    def update_profile(self, name: str, draft: ProfileDraft) -> Profile:
        with self._writing_profile(draft) as tx:
            row = tx.one("SELECT id, scopes FROM profiles WHERE name = ?" + self.dialect.for_update, (name,))
            if row is None:
                raise self._unknown_profile(name, tx)
            profile_id, old_scopes = row
            if set(_json(old_scopes, list, f"profile {name!r}", "scopes")) != set(draft.scopes):
                # Some providers need a re-install for new scopes: flag every connection.
                self._mark_profile_connections(tx, profile_id, "scopes changed")
            tx.execute(
                "UPDATE profiles SET name = ?, auth_type = ?, environment = ?, credential_set = ?, "
                "field_values = ?, scopes = ?, actions = ?, endpoints = ?, updated_at = ? WHERE id = ?",
                (*_draft_columns(draft), now(), profile_id),
            )
            self._seal(tx, "profiles", profile_id)
            keep = {n for n, _ in draft.secrets}
            stored = {r[0] for r in tx.all("SELECT name FROM secrets WHERE owner_id = ?", (profile_id,))}
            tx.many("DELETE FROM secrets WHERE owner_id = ? AND name = ?", [(profile_id, n) for n in stored - keep])
            for secret_name, value in draft.secrets:
                self._put_secret(tx, profile_id, secret_name, value)
        return self.get_profile(draft.name)

    def _mark_profile_connections(self, tx: Tx, profile_id: str, reason: str) -> None:
        usable = (ConnectionStatus.CONNECTED.value, ConnectionStatus.PENDING.value)
        where = "WHERE profile_id = ? AND status IN (?, ?)"
        ids = tx.all(f"SELECT id FROM connections {where} ORDER BY id{self.dialect.for_update}", (profile_id, *usable))
        at = now()
        status = ConnectionStatus.NEEDS_RECONNECT.value
        tx.execute(
            f"UPDATE connections SET status = ?, status_reason = ?, updated_at = ? {where}",
            (status, reason, at, profile_id, *usable),
        )
        tx.many(_INSERT_EVENT, [(cid, at, status, reason) for (cid,) in ids])
        for (cid,) in ids:
            details = {"reason": reason, "previous_status": None}
            self._emit(tx, EventType.NEEDS_RECONNECT, connection=self._snapshot_of(tx, cid), details=details)

    def _unknown_profile(self, name: str, tx: Tx | None = None) -> ConnectorError:
        query = "SELECT name FROM profiles ORDER BY name"
        names = [r[0] for r in (tx.all(query) if tx is not None else self._rows(query))]
        return UnknownNameError("profile", name, names)

    def _profile_rows(self, where: str, key: str) -> list[Any]:
        return self._rows(
            f"SELECT {_PROFILE_COLUMNS}, s.name, s.key_id, s.nonce, s.ciphertext FROM profiles p "
            f"LEFT JOIN secrets s ON s.owner_id = p.id WHERE {where} ORDER BY s.{self.dialect.row_order}",
            (key,),
        )

    def _profile_from_rows(self, rows: Sequence[Sequence[Any]], with_secrets: bool) -> Profile:
        secret_rows = [r[13:] for r in rows if r[13] is not None]
        secrets = self._decrypt(rows[0][0], secret_rows, f"profile {rows[0][1]!r}") if with_secrets else None
        self._check_seal("profiles", rows[0])
        return _profile(rows[0], tuple(r[0] for r in secret_rows), secrets)

    def get_profile(self, name: str, *, with_secrets: bool = True) -> Profile:
        rows = self._profile_rows("p.name = ?", name)
        if not rows:
            raise self._unknown_profile(name)
        return self._profile_from_rows(rows, with_secrets)

    def profile_by_id(self, profile_id: str, *, with_secrets: bool = True) -> Profile:
        rows = self._profile_rows("p.id = ?", profile_id)
        if not rows:
            raise StoreError(f"database {self.path}: profile {profile_id} is gone")
        return self._profile_from_rows(rows, with_secrets)

    def list_profiles(self, provider: str | None = None) -> tuple[Profile, ...]:
        where, args = (" WHERE p.provider = ?", (provider,)) if provider is not None else ("", ())
        with self._read() as tx:
            rows = tx.all(f"SELECT {_PROFILE_COLUMNS} FROM profiles p{where} ORDER BY p.name", args)
            names: dict[str, list[str]] = {}
            for owner, secret_name in tx.all(
                "SELECT s.owner_id, s.name FROM secrets s JOIN profiles p ON p.id = s.owner_id "
                f"ORDER BY s.{self.dialect.row_order}"
            ):
                names.setdefault(owner, []).append(secret_name)
        return tuple(_profile(r, tuple(names.get(r[0], ())), None) for r in rows)

    def profile_connection_count(self, name: str) -> int:
        query = "SELECT count(*) FROM connections c JOIN profiles p ON p.id = c.profile_id WHERE p.name = ?"
        return int(self._rows(query, (name,))[0][0])

    def delete_profile(self, name: str, *, force: bool = False) -> int:
        with self._write() as tx:
            row = tx.one("SELECT id FROM profiles WHERE name = ?" + self.dialect.for_update, (name,))
            if row is None:
                raise self._unknown_profile(name, tx)
            profile_id = row[0]
            connection_ids = [r[0] for r in tx.all("SELECT id FROM connections WHERE profile_id = ?", (profile_id,))]
            if connection_ids and not force:
                raise ValidationError(
                    "profile",
                    f"{name!r} is used by {len(connection_ids)} connection(s); delete them first, "
                    "or force the deletion, which deletes them too.",
                    code="profile_in_use",
                )
            attempt_ids = [r[0] for r in tx.all("SELECT id FROM attempts WHERE profile_id = ?", (profile_id,))]
            owners = [(owner,) for owner in (*connection_ids, *attempt_ids, profile_id)]
            tx.many("DELETE FROM secrets WHERE owner_id = ?", owners)
            tx.many("DELETE FROM connection_events WHERE connection_id = ?", [(c,) for c in connection_ids])
            tx.execute("DELETE FROM connections WHERE profile_id = ?", (profile_id,))
            tx.execute("DELETE FROM profiles WHERE id = ?", (profile_id,))
        return len(connection_ids)

    # ---------------------------------------------------------------------- keys

    def key_usage(self) -> dict[str, int]:
        return {str(k): int(n) for k, n in self._rows("SELECT key_id, count(*) FROM secrets GROUP BY key_id")}

    def rotate_keys(self, *, retire: bool = False, new_key: bool = True) -> KeyRotation:
        if self.keyring.path is not None:
            self._reload_keyring()  # another process may have rotated since this one read the file
        ring = self.keyring
        if ring.path is not None and new_key:
            ring = ring.with_new_primary()
            ring.save()
            self._set_keyring(ring)
        d = self.dialect
        with self._write() as tx:
            # First, so that every writer reading it (``_encrypting_ring``) waits for this transaction.
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('primary_key', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (ring.primary_id,),
            )
            rows = tx.all(
                f"SELECT owner_id, name, key_id, nonce, ciphertext FROM secrets ORDER BY {d.row_order}{d.for_update}"
            )
            names = f"SELECT id, 'profile ' || {d.quote}(name) FROM profiles UNION ALL "
            names += f"SELECT id, 'webhook endpoint ' || {d.quote}(id) FROM webhook_endpoints UNION ALL "
            owners = dict(tx.all(names + f"SELECT id, 'connection ' || {d.quote}(id) FROM connections"))
            updates = []
            for owner_id, name, kid, nonce, ciphertext in rows:
                what = f"{name} of {owners.get(owner_id, repr(owner_id))}"
                plain = ring.decrypt(kid, d.blob(nonce), d.blob(ciphertext), aad(owner_id, name), what=what)
                updates.append((*ring.encrypt(plain, aad(owner_id, name)), owner_id, name))
            tx.many("UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ? WHERE owner_id = ? AND name = ?", updates)
            for table in SEALED:  # under the new primary key, so the old ones can retire
                self._seal(tx, table, ring=ring)
        retired: tuple[str, ...] = ()
        if retire:
            old = set(ring.key_ids) - {ring.primary_id}
            still_used = old & set(self.key_usage())
            if still_used:  # pragma: no cover - the transaction above re-encrypted everything
                raise CryptoError(f"keys {', '.join(sorted(still_used))} are still in use; not retiring them")
            if ring.path is not None and old:
                ring = ring.without(old)
                ring.save()
                self._set_keyring(ring)
            retired = tuple(sorted(old))
        return KeyRotation(ring.primary_id, len(updates), retired, ring.key_ids)

    # ------------------------------------------------------------------ attempts

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
        attempt_id = f"att_{uuid.uuid4().hex}"
        self.keyring  # noqa: B018
        with self._write() as tx:
            # Expired attempts are garbage: clear them on the way.
            stale = tx.all("SELECT id FROM attempts WHERE expires_at < ?" + self.dialect.for_update, (time.time(),))
            tx.many("DELETE FROM secrets WHERE owner_id = ?", stale)
            tx.many("DELETE FROM attempts WHERE id = ?", stale)
            scopes_json = json.dumps(list(scopes))
            tx.execute(
                "INSERT INTO attempts (id, state_hash, profile_id, redirect_uri, scopes, connection_id, "
                "expires_at, created_at, owner) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    *(attempt_id, state_hash, profile.id, redirect_uri, scopes_json, connection_id, expires_at),
                    *(now(), owner_json(owner)),
                ),
            )
            if verifier is not None:
                self._put_secret(tx, attempt_id, "code_verifier", verifier)
        return Attempt(attempt_id, profile.id, redirect_uri, scopes, expires_at, connection_id, owner)

    def consume_attempt(self, state_hash: str) -> tuple[Attempt, Secret | None] | None:
        with self._write() as tx:
            row = tx.one(
                "SELECT id, profile_id, redirect_uri, scopes, expires_at, connection_id, owner FROM attempts "
                "WHERE state_hash = ?" + self.dialect.for_update,
                (state_hash,),
            )
            if row is None:
                return None
            what = "the pending authorization"
            scopes = tuple(_json(row[3], list, what, "scopes"))
            expires = _number(row[4], what, "expiry time")
            attempt = Attempt(row[0], row[1], row[2], scopes, expires, row[5], _owner_of_json(row[6], what))
            secrets = self._secrets_of(tx, attempt.id, "the pending authorization")
            tx.execute("DELETE FROM secrets WHERE owner_id = ?", (attempt.id,))
            tx.execute("DELETE FROM attempts WHERE id = ?", (attempt.id,))
        return attempt, secrets.get("code_verifier")

    # --------------------------------------------------------------- connections

    @staticmethod
    def _event(tx: Tx, connection_id: str, status: ConnectionStatus, reason: str | None) -> None:
        tx.execute(_INSERT_EVENT, (connection_id, now(), status.value, reason))

    # ------------------------------------------------------------ lifecycle events

    def _emit(
        self,
        tx: Tx,
        kind: EventType,
        *,
        connection: Mapping[str, Any] | None = None,
        session: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> str:
        """Record a lifecycle event in ``tx``, the transaction of the change it describes; returns its id."""
        event_id = new_event_id()
        data: dict[str, Any] = {}
        if connection is not None:
            data["connection"] = dict(connection)
        if session is not None:
            data["session"] = dict(session)
        data["details"] = dict(details or {})
        cid = connection["id"] if connection is not None else None
        tx.execute(
            "INSERT INTO events (id, type, at, connection_id, data) VALUES (?,?,?,?,?)",
            (event_id, kind.value, now(), cid, json.dumps(data, separators=(",", ":"), default=str)),
        )
        self._after_event(tx, event_id, kind)
        return event_id

    def _after_event(self, tx: Tx, event_id: str, kind: EventType) -> None:
        """The event's fan-out, in its transaction: one pending delivery per enabled webhook
        endpoint subscribed to ``kind`` (the outbox). A row whose event types cannot be read
        gets the delivery: its deliverer refuses the changed row, and nothing is lost once it
        is restored."""
        targets = [
            endpoint_id
            for endpoint_id, types in tx.all("SELECT id, event_types FROM webhook_endpoints WHERE disabled_at IS NULL")
            if _subscribes(types, kind)
        ]
        if targets:
            at, epoch = now(), time.time()
            tx.many(_INSERT_DELIVERY, [(_delivery_id(), event_id, target, epoch, 0, at) for target in targets])

    @staticmethod
    def _snapshot_of(tx: Tx, connection_id: str) -> dict[str, Any] | None:
        row = tx.one(_CONNECTION_ATTRIBUTES, (connection_id,))
        return _snapshot(row) if row is not None else None

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
        used = {
            clause: value
            for clause, value in (
                ("seq > ?", after),
                ("connection_id = ?", connection_id),
                ("at >= ?", since),
                ("at < ?", until),
            )
            if value is not None
        }
        clauses, args = list(used), list(used.values())
        if types:
            wanted = [EventType(t).value for t in types]
            clauses.append(f"type IN ({','.join('?' * len(wanted))})")
            args.extend(wanted)
        query = f"SELECT {_EVENT_COLUMNS} FROM events" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        query += " ORDER BY seq"
        if limit is not None:
            query += " LIMIT ?"
            args.append(int(limit))
        return tuple(_event_of(r) for r in self._rows(query, args))

    def get_event(self, event_id: str) -> Event:
        rows = self._rows(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,))
        if not rows:
            raise UnknownNameError("event", event_id)
        return _event_of(rows[0])

    def get_events(self, event_ids: Sequence[str]) -> tuple[Event, ...]:
        wanted = sorted(set(event_ids))
        found: list[Event] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = f"SELECT {_EVENT_COLUMNS} FROM events WHERE id IN ({','.join('?' * len(chunk))}) ORDER BY seq"
            found += (_event_of(row) for row in self._rows(query, chunk))
        return tuple(sorted(found, key=lambda event: event.seq))

    def _put_credentials(self, tx: Tx, connection_id: str, credentials: Mapping[str, Secret]) -> None:
        for name, value in credentials.items():
            if not isinstance(value, Secret):
                raise TypeError(f"credential {name!r} must be a Secret")
            self._put_secret(tx, connection_id, CREDENTIAL_PREFIX + name, value)

    def _put_tokens(self, tx: Tx, connection_id: str, tokens: TokenSet) -> None:
        self._put_secret(tx, connection_id, "access_token", tokens.access_token)
        if tokens.refresh_token is not None:  # a response without one keeps the old one
            self._put_secret(tx, connection_id, "refresh_token", tokens.refresh_token)

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
        at = now()
        self.keyring  # noqa: B018
        cid = connection_id or f"conn_{uuid.uuid4().hex}"
        values = {
            "profile_id": profile.id,
            "provider": profile.provider,
            "environment": profile.environment,
            "auth_type": profile.auth_type,
            "status": ConnectionStatus.CONNECTED.value,
            "token_type": tokens.token_type if tokens is not None else None,
            "expires_at": tokens.expires_at if tokens is not None else None,
            "requested_scopes": json.dumps(list(requested)),
            "granted_scopes": json.dumps(list(granted)),
            "identity": json.dumps(dict(identity)),
            "provider_initiated": bool(provider_initiated),
            "updated_at": at,
            # A re-authorization without an owner keeps the connection's.
            **(_owner_columns(owner) if owner is not None else {}),
        }
        # A re-authorization keeps the id and creation time; the old grant's tokens go.
        replaced = ", ".join(f"{column} = excluded.{column}" for column in values)
        marks = ",".join("?" * (len(values) + 2))
        with self._write(cid) as tx:
            before = tx.one("SELECT granted_scopes FROM connections WHERE id = ?" + self.dialect.for_update, (cid,))
            tx.execute(
                f"INSERT INTO connections ({', '.join(values)}, id, created_at) VALUES ({marks}) "
                f"ON CONFLICT (id) DO UPDATE SET {replaced}, status_reason = NULL, "
                f"token_version = connections.token_version + 1{self.dialect.end_lease}",
                (*values.values(), cid, at),
            )
            self._seal(tx, "connections", cid)
            tx.execute("DELETE FROM secrets WHERE owner_id = ?", (cid,))
            if tokens is not None:
                self._put_tokens(tx, cid, tokens)
            self._put_credentials(tx, cid, credentials or {})
            self._event(tx, cid, ConnectionStatus.CONNECTED, reason)
            snapshot = self._snapshot_of(tx, cid)
            details = {
                "reason": reason,
                "provider_initiated": bool(provider_initiated),
                "granted_scopes": list(granted),
            }
            self._emit(tx, EventType.RECONNECTED if before else EventType.CREATED, connection=snapshot, details=details)
            if before is not None:
                self._scopes_changed(tx, snapshot, before[0], granted)
        return self.get_connection(cid)

    def _scopes_changed(self, tx: Tx, snapshot: Mapping[str, Any] | None, old: Any, granted: Sequence[str]) -> None:
        """A ``connection.scopes_changed`` event when ``granted`` is not the set of scopes ``old`` (as stored) held."""
        try:
            previous = [str(s) for s in json.loads(old or "[]")]
        except ValueError:
            previous = []
        if set(previous) != set(granted):
            gone = sorted(set(previous) - set(granted))
            added = sorted(set(granted) - set(previous))
            details = {"previous": previous, "granted": list(granted), "added": added, "removed": gone}
            self._emit(tx, EventType.SCOPES_CHANGED, connection=snapshot, details=details)

    def get_connection(self, connection_id: str) -> Connection:
        rows = self._rows(_CONNECTION_SELECT + " WHERE c.id = ?", (connection_id,))
        if not rows:
            raise UnknownNameError("connection", connection_id)
        self._check_seal("connections", rows[0])
        return _connection(rows[0])

    def needing_attention(self) -> tuple[Connection, ...]:
        rows = self._rows(
            _CONNECTION_SELECT + " WHERE c.status IN (?, ?) ORDER BY c.updated_at, c.id",
            (ConnectionStatus.NEEDS_RECONNECT.value, ConnectionStatus.PENDING.value),
        )
        return tuple(_connection(r) for r in rows)

    def count_connections(self) -> dict[ConnectionStatus, int]:
        counts = dict.fromkeys(ConnectionStatus, 0)
        for value, count in self._rows("SELECT status, count(*) FROM connections GROUP BY status"):
            counts[_status(value, "a connection")] = int(count)
        return counts

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
        filters = _connection_filters(profile, status, end_user, organisation, tag, provider)
        query, args = _connections_page(filters, after, limit, unclaimed)
        return tuple(map(_ConnectionRows(), self._rows(query, args)))

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
        page: int = LISTING_PAGE,
    ) -> Iterator[Connection]:
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            raise ValidationError("page", f"expected a positive number of rows, got {page!r}")
        # The filters are checked now, not at the first row.
        filters = _connection_filters(profile, status, end_user, organisation, tag, provider)
        return self._connection_pages(filters, after, limit, unclaimed, page)

    def _connection_pages(
        self, filters: Mapping[str, Any], after: str | None, limit: int | None, unclaimed: bool, page: int
    ) -> Iterator[Connection]:
        read, left = _ConnectionRows(), limit
        while left is None or left > 0:
            size = page if left is None else min(page, left)
            query, args = _connections_page(filters, after, size, unclaimed)
            rows = self._rows(query, args)
            yield from map(read, rows)
            if len(rows) < size:
                return
            after = rows[-1][0]
            if left is not None:
                left -= size

    def set_owner(self, connection_id: str, owner: Owner) -> Connection:
        if not isinstance(owner, Owner):
            raise ValidationError("owner", f"expected an Owner, got {type(owner).__name__}")
        columns = _owner_columns(owner)
        with self._write(connection_id) as tx:
            row = tx.one("SELECT status FROM connections WHERE id = ?" + self.dialect.for_update, (connection_id,))
            if row is None:
                raise UnknownNameError("connection", connection_id)
            tx.execute(
                f"UPDATE connections SET {', '.join(f'{c} = ?' for c in columns)}, updated_at = ? WHERE id = ?",
                (*columns.values(), now(), connection_id),
            )
            self._seal(tx, "connections", connection_id)
            who = f"end user {owner.end_user.id}" if owner.end_user else "nobody (unclaimed)"
            self._event(tx, connection_id, _status(row[0], f"connection {connection_id}"), f"owner set: {who}")
        return self.get_connection(connection_id)

    def connection_events(self, connection_id: str) -> tuple[ConnectionEvent, ...]:
        rows = self._rows(
            "SELECT at, status, reason FROM connection_events WHERE connection_id = ? ORDER BY id", (connection_id,)
        )
        return tuple(
            ConnectionEvent(r[0], _status(r[1], f"an event of connection {connection_id}"), r[2]) for r in rows
        )

    def get_tokens(self, connection_id: str) -> tuple[Connection, Secret | None, Secret | None]:
        conn, found = self._connection_secrets(connection_id)
        return conn, found.get("access_token"), found.get("refresh_token")

    def get_credentials(self, connection_id: str) -> tuple[Connection, dict[str, Secret]]:
        conn, found = self._connection_secrets(connection_id)
        n = len(CREDENTIAL_PREFIX)
        return conn, {name[n:]: value for name, value in found.items() if name.startswith(CREDENTIAL_PREFIX)}

    def get_access_token(self, connection_id: str) -> tuple[Connection, Secret | None]:
        conn, found = self._connection_secrets(connection_id, only="access_token")
        return conn, found.get("access_token")

    def connection_stamp(self, connection_id: str) -> ConnectionStamp | None:
        rows = self._rows(_STAMP_SELECT, (connection_id,))
        if not rows:
            return None
        version, updated, status, expires, profile_updated = rows[0]
        try:  # a damaged row: the full read says what is wrong with it
            return ConnectionStamp(
                int(version), updated, status, float(expires) if expires is not None else None, profile_updated
            )
        except (TypeError, ValueError):
            return None

    def _connection_secrets(
        self, connection_id: str, *, only: str | None = None
    ) -> tuple[Connection, dict[str, Secret]]:
        """The connection and its secrets (only the one named ``only``, when given), decrypted."""
        which, args = (" AND s.name = ?", (only, connection_id)) if only is not None else ("", (connection_id,))
        rows = self._rows(
            f"SELECT {_CONNECTION_COLUMNS}, s.name, s.key_id, s.nonce, s.ciphertext FROM connections c "
            f"JOIN profiles p ON p.id = c.profile_id LEFT JOIN secrets s ON s.owner_id = c.id{which} "
            f"WHERE c.id = ? ORDER BY s.{self.dialect.row_order}",
            args,
        )
        if not rows:
            raise UnknownNameError("connection", connection_id)
        secret_rows = [r[_N_CONNECTION:] for r in rows if r[_N_CONNECTION] is not None]
        found = self._decrypt(connection_id, secret_rows, f"connection {connection_id!r}")
        self._check_seal("connections", rows[0])
        return _connection(rows[0]), found

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
        guard, args = (" AND token_version = ?", (if_version,)) if if_version is not None else ("", ())
        with self._write(connection_id) as tx:
            prior = tx.one("SELECT status FROM connections WHERE id = ?" + self.dialect.for_update, (connection_id,))
            cur = tx.execute(
                "UPDATE connections SET status = ?, status_reason = ?, updated_at = ?, "
                f"token_version = token_version + ?{self.dialect.end_lease} WHERE id = ?{guard}",
                (status.value, reason, now(), int(delete_tokens), connection_id, *args),
            )
            if cur.rowcount == 1:
                if delete_tokens:
                    tx.execute("DELETE FROM secrets WHERE owner_id = ?", (connection_id,))
                self._event(tx, connection_id, status, reason)
                self._status_event(tx, connection_id, prior[0] if prior else None, status, reason, details)
        return self.get_connection(connection_id)

    def _status_event(
        self,
        tx: Tx,
        connection_id: str,
        prior: str | None,
        status: ConnectionStatus,
        reason: str | None,
        details: Mapping[str, Any] | None,
    ) -> None:
        """The lifecycle event of a status change, once per transition into it."""
        kinds = {
            ConnectionStatus.NEEDS_RECONNECT: EventType.NEEDS_RECONNECT,
            ConnectionStatus.REVOKED: EventType.REVOKED,
            ConnectionStatus.DISCONNECTED: EventType.REVOKED,
        }
        kind = kinds.get(status)
        if kind is None or prior == status.value:
            return
        extra = {"reason": reason, "previous_status": prior, **dict(details or {})}
        if kind is EventType.REVOKED:
            extra["at_provider"] = status is ConnectionStatus.REVOKED
        self._emit(tx, kind, connection=self._snapshot_of(tx, connection_id), details=extra)

    def delete_connection(self, connection_id: str) -> None:
        with self._write(connection_id) as tx:
            if tx.one("SELECT 1 FROM connections WHERE id = ?" + self.dialect.for_update, (connection_id,)) is None:
                raise UnknownNameError("connection", connection_id)
            # The connection as it stood, before it goes (its events stay: they are the outbox too).
            self._emit(tx, EventType.DELETED, connection=self._snapshot_of(tx, connection_id))
            tx.execute("DELETE FROM secrets WHERE owner_id = ?", (connection_id,))
            tx.execute("DELETE FROM connection_events WHERE connection_id = ?", (connection_id,))
            tx.execute("DELETE FROM connections WHERE id = ?", (connection_id,))

    # ------------------------------------------------------------------ the keeper
    # ``keeper_state`` holds one row per connection the keeper has claimed (deleted with it), the
    # claim and what a failing refresh needs (attempts, since when, the retry's time);
    # ``keeper_locks`` the keepers' heartbeats. Times compared with a caller's clock are epoch seconds.

    @contextlib.contextmanager
    def keeper_lock(self, owner: str, *, ttl: float) -> Iterator[KeeperLockHandle]:
        exclusive = not self.dialect.shared
        name = KEEPER_LOCK if exclusive else f"{KEEPER_LOCK}:{owner}"
        self._take_keeper_lock(name, owner, ttl, exclusive)
        handle = KeeperLockHandle(self, name, owner, ttl, exclusive)
        try:
            yield handle
        finally:
            # Unreachable: the lock lapses after its ttl, the claims after theirs.
            with contextlib.suppress(StoreError), self._write() as tx:
                tx.execute("DELETE FROM keeper_locks WHERE name = ? AND owner = ?", (name, owner))
                tx.execute(_UNCLAIM_ALL, (owner,))

    def _take_keeper_lock(self, name: str, owner: str, ttl: float, exclusive: bool) -> None:
        at = time.time()
        host, pid = socket.gethostname(), os.getpid()
        with self._write() as tx:
            if not exclusive:  # lapsed keepers' rows go (their claims lapse by themselves)
                tx.execute("DELETE FROM keeper_locks WHERE heartbeat_until < ?", (at,))
            row = tx.one(
                "SELECT owner, host, pid, started_at, heartbeat_until FROM keeper_locks WHERE name = ?"
                + self.dialect.for_update,
                (name,),
            )
            if row is not None and row[0] != owner:
                other, other_host, other_pid, started, until = row
                if float(until) >= at and not _gone(other_host, other_pid):
                    left = max(float(until) - at, 0)
                    raise StoreError(
                        f"database {self.path}: another keeper (pid {other_pid} on {other_host}, running since "
                        f"{str(started)[:19]}Z) holds this store's keeper lock, and a SQLite store has one keeper; "
                        f"stop that one first (or, if it hangs, wait: its lock lapses in {left:.0f} s "
                        "unless it renews it)",
                        code="keeper_running",
                    )
                # A lapsed keeper (it died, or hung): its claims go with its lock.
                tx.execute(_UNCLAIM_ALL, (other,))
            tx.execute(
                "INSERT INTO keeper_locks (name, owner, host, pid, started_at, heartbeat_until) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, host = excluded.host, pid = excluded.pid, "
                "started_at = excluded.started_at, heartbeat_until = excluded.heartbeat_until",
                (name, owner, host, pid, now(), at + ttl),
            )

    def claim_due(self, due: KeeperDue, *, owner: str, ttl: float, now: float, limit: int) -> tuple[KeeperClaim, ...]:
        rules = ["(c.expires_at IS NOT NULL AND c.expires_at <= ?)"]
        args: list[Any] = [float(due.expiring_before)]
        for provider, auth_type, before in due.idle:
            rules.append("(c.provider = ? AND c.auth_type = ? AND coalesce(c.refreshed_at, c.created_at) < ?)")
            args += [provider, auth_type, iso(before)]
        if due.tested_before is not None:
            rules.append("coalesce(k.tested_at, c.created_at) < ?")
            args.append(iso(due.tested_before))
        query = (
            f"{_CLAIM_SELECT} WHERE c.status = ? AND (k.claimed_until IS NULL OR k.claimed_until < ?) AND ("
            "(k.degraded_since IS NOT NULL AND c.token_version <> k.failed_version) OR "
            f"((k.next_attempt_at IS NULL OR k.next_attempt_at <= ?) AND ({' OR '.join(rules)}))) "
            "ORDER BY CASE WHEN c.expires_at IS NULL THEN 1 ELSE 0 END, c.expires_at, c.id LIMIT ?"
            + self.dialect.keeper_skip_locked
        )
        until, at = now + ttl, iso(time.time())
        claims = []
        with self._write() as tx:
            for row in tx.all(query, (ConnectionStatus.CONNECTED.value, now, now, *args, int(limit))):
                # Claimed unless another keeper claimed it since this transaction's snapshot was taken.
                if int(tx.execute(_CLAIM, (row[0], owner, until, at, now)).rowcount) != 1:
                    continue
                what = f"connection {row[0]}"
                state = attrs.evolve(_keeper_state(row[0], row[7:15]), claimed_by=owner, claimed_until=until)
                claims.append(
                    KeeperClaim(
                        connection_id=row[0],
                        provider=row[1],
                        auth_type=row[2],
                        token_version=int(_number(row[3], what, "token version")),
                        expires_at=_number(row[4], what, "expiry time") if row[4] is not None else None,
                        last_refreshed=row[5],
                        created_at=row[6],
                        state=state,
                    )
                )
        return tuple(claims)

    def release_claims(self, owner: str) -> int:
        with self._write() as tx:
            return int(tx.execute(_UNCLAIM_ALL, (owner,)).rowcount)

    def _keeper_row(self, tx: Tx, connection_id: str) -> Any:
        """The connection's keeper row, locked, made when it has none; None for a connection that is gone."""
        query = f"SELECT {_KEEPER_COLUMNS} FROM keeper_state k WHERE k.connection_id = ?" + self.dialect.for_update
        row = tx.one(query, (connection_id,))
        if row is None:
            if tx.one("SELECT 1 FROM connections WHERE id = ?", (connection_id,)) is None:
                return None
            tx.execute("INSERT INTO keeper_state (connection_id, updated_at) VALUES (?, ?)", (connection_id, now()))
            row = tx.one(query, (connection_id,))
        return row

    def keeper_succeeded(self, connection_id: str, *, owner: str, tested_at: float | None = None) -> bool:
        with self._write() as tx:
            row = self._keeper_row(tx, connection_id)
            if row is None:
                return False
            state = _keeper_state(connection_id, row)
            tx.execute(
                "UPDATE keeper_state SET failures = 0, degraded_since = NULL, failed_version = NULL, "
                "next_attempt_at = NULL, last_error = NULL, tested_at = coalesce(?, tested_at), updated_at = ? "
                "WHERE connection_id = ?",
                (iso(tested_at) if tested_at is not None else None, now(), connection_id),
            )
            tx.execute(_UNCLAIM, (owner, connection_id))
            if state.degraded_since is None:
                return False
            details = {"attempts": state.failures, "degraded_since": state.degraded_since}
            self._emit(tx, EventType.RECOVERED, connection=self._snapshot_of(tx, connection_id), details=details)
            return True

    def keeper_failed(
        self, connection_id: str, *, owner: str, error: str, next_attempt_at: float, token_version: int
    ) -> KeeperState | None:
        line = _error_line(error) or "failed"
        with self._write() as tx:
            row = self._keeper_row(tx, connection_id)
            if row is None:
                return None
            before = _keeper_state(connection_id, row)
            since = before.degraded_since or now()
            tx.execute(
                "UPDATE keeper_state SET failures = ?, degraded_since = ?, failed_version = ?, next_attempt_at = ?, "
                "last_error = ?, updated_at = ? WHERE connection_id = ?",
                (before.failures + 1, since, int(token_version), float(next_attempt_at), line, now(), connection_id),
            )
            tx.execute(_UNCLAIM, (owner, connection_id))
            if before.degraded_since is None:  # the first failure of this degradation: its one event
                snapshot = self._snapshot_of(tx, connection_id)
                expires = snapshot.get("expires_at") if snapshot else None
                details = {
                    "attempt": before.failures + 1,
                    "error": line,
                    "expires_at": iso(float(expires)) if expires is not None else None,
                    "next_attempt_at": iso(next_attempt_at),
                }
                self._emit(tx, EventType.REFRESH_FAILING, connection=snapshot, details=details)
            found = tx.one(f"SELECT {_KEEPER_COLUMNS} FROM keeper_state k WHERE k.connection_id = ?", (connection_id,))
        return _keeper_state(connection_id, found)

    def keeper_forget(self, connection_id: str) -> None:
        with self._write() as tx:
            tx.execute("DELETE FROM keeper_state WHERE connection_id = ?", (connection_id,))

    def keeper_state(self, connection_id: str) -> KeeperState | None:
        rows = self._rows(f"SELECT {_KEEPER_COLUMNS} FROM keeper_state k WHERE k.connection_id = ?", (connection_id,))
        return _keeper_state(connection_id, rows[0]) if rows else None

    # ----------------------------------------------------------- connect sessions

    def create_session(self, session: ConnectSession, token_hash: str) -> ConnectSession:
        user = session.owner.end_user
        if user is None:
            raise ValidationError("end_user", "a connect session needs an end user")
        self.keyring  # noqa: B018 - load or create the keys (the seal's) before the transaction starts
        values = {
            "id": session.id,
            "token_hash": token_hash,
            "end_user_id": user.id,
            "organisation": session.owner.organisation,
            "providers": json.dumps(list(session.providers)),
            "profile": session.profile,
            "scopes": json.dumps(list(session.scopes)),
            "connection_id": session.connection_id,
            "redirect_url": session.redirect_url,
            "expires_at": float(session.expires_at),
            "status": SessionStatus.PENDING.value,
            "end_user_email": user.email,
            "end_user_name": user.display_name,
            "tags": json.dumps(list(session.owner.tags)),
            "created_at": session.created_at,
            # NULL for no: the value sessions sealed before the column existed have.
            "separate": 1 if session.separate else None,
        }
        unique = StoreError("connect session: a session with this id or token exists already", code="duplicate")
        with self._write(unique=unique) as tx:
            tx.execute(
                f"INSERT INTO connect_sessions ({', '.join(values)}) VALUES ({','.join('?' * len(values))})",
                tuple(values.values()),
            )
            self._seal(tx, "connect_sessions", session.id)
        return self.get_session(session.id)

    def _checked_session(self, row: Sequence[Any]) -> ConnectSession:
        self._check_seal("connect_sessions", row)
        return _session(row)

    def get_session(self, session_id: str) -> ConnectSession:
        rows = self._rows(_SESSION_SELECT + " WHERE id = ?", (session_id,))
        if not rows:
            raise UnknownNameError("connect session", session_id)
        return self._checked_session(rows[0])

    def find_session(self, token_hash: str) -> ConnectSession | None:
        rows = self._rows(_SESSION_SELECT + " WHERE token_hash = ?", (token_hash,))
        if not rows or not hmac.compare_digest(str(rows[0][1]).encode(), token_hash.encode()):
            return None
        return self._checked_session(rows[0])

    def claim_session(
        self, token_hash: str, *, at: float, provider: str | None = None, profile: str | None = None
    ) -> ConnectSession:
        refused: SessionError | None = None
        with self._write() as tx:
            row = tx.one(_SESSION_SELECT + " WHERE token_hash = ?" + self.dialect.for_update, (token_hash,))
            if row is None or not hmac.compare_digest(str(row[1]).encode(), token_hash.encode()):
                raise _session_refused("unknown")
            session = self._checked_session(row)
            if session.status is SessionStatus.PENDING and at >= session.expires_at:
                # Recorded as expired (committed), then refused.
                tx.execute(
                    "UPDATE connect_sessions SET status = ? WHERE id = ? AND status = ?",
                    (SessionStatus.EXPIRED.value, session.id, SessionStatus.PENDING.value),
                )
                self._seal(tx, "connect_sessions", session.id)
                refused = _session_refused("expired")
            elif session.status is SessionStatus.EXPIRED:
                raise _session_refused("expired")
            elif session.status is not SessionStatus.PENDING:
                raise _session_refused("used")
            else:
                picked_provider, picked_profile = _pick(session, provider, profile)
                cur = tx.execute(
                    "UPDATE connect_sessions SET status = ?, used_at = ?, picked_provider = ?, picked_profile = ? "
                    "WHERE id = ? AND status = ? AND expires_at > ?",
                    (
                        *(SessionStatus.USED.value, now(), picked_provider, picked_profile),
                        *(session.id, SessionStatus.PENDING.value, at),
                    ),
                )
                if cur.rowcount != 1:  # pragma: no cover - the row is locked: nobody changed it meanwhile
                    raise _session_refused("used")
                self._seal(tx, "connect_sessions", session.id)
        if refused is not None:
            raise refused
        return self.get_session(session.id)

    def _finish_session(
        self, session_id: str, decide: Callable[[ConnectSession], dict[str, Any] | None]
    ) -> ConnectSession:
        """Move the session on as ``decide`` says (the columns to set; None: leave it as it is)."""
        with self._write() as tx:
            row = tx.one(_SESSION_SELECT + " WHERE id = ?" + self.dialect.for_update, (session_id,))
            if row is None:
                raise UnknownNameError("connect session", session_id)
            session = self._checked_session(row)
            columns = decide(session)
            if columns is not None:
                columns["finished_at"] = now()
                tx.execute(
                    f"UPDATE connect_sessions SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
                    (*columns.values(), session_id),
                )
                self._seal(tx, "connect_sessions", session_id)
                if columns.get("status") == SessionStatus.FAILED.value:
                    self._emit(
                        tx,
                        EventType.SESSION_FAILED,
                        session=_session_snapshot(session),
                        details={"code": columns["error_code"], "message": columns["error_message"]},
                    )
        return self.get_session(session_id)

    def complete_session(self, session_id: str, connection_id: str) -> ConnectSession:
        if not isinstance(connection_id, str) or not connection_id:
            raise ValidationError("connection_id", f"expected a connection id, got {connection_id!r}")

        def decide(session: ConnectSession) -> dict[str, Any] | None:
            if session.status is SessionStatus.COMPLETED and session.result_connection_id == connection_id:
                return None  # the same completion again
            if session.status is SessionStatus.PENDING:
                raise SessionError(
                    f"connect session {session.id}: it was never claimed; it cannot be completed", code="not_started"
                )
            if session.status is not SessionStatus.USED:
                raise SessionError(
                    f"connect session {session.id}: it is {session.status.value} already; it cannot be completed",
                    code="finished",
                )
            if session.connection_id is not None and connection_id != session.connection_id:
                raise ValidationError(
                    "connection_id", f"a reconnect session completes with connection {session.connection_id}"
                )
            return {"status": SessionStatus.COMPLETED.value, "result_connection_id": connection_id}

        return self._finish_session(session_id, decide)

    def fail_session(self, session_id: str, code: str, message: str) -> ConnectSession:
        if not isinstance(code, str) or not _ERROR_CODE_RE.fullmatch(code):
            raise ValidationError("code", f"expected lower-case letters, digits and '_' (at most 64), got {code!r}")
        if not isinstance(message, str) or not message.strip():
            raise ValidationError("message", "expected a one-line message, got none")
        line = " ".join(message.split())[:500]

        def decide(session: ConnectSession) -> dict[str, Any] | None:
            if session.status is SessionStatus.COMPLETED:
                raise SessionError(
                    f"connect session {session.id}: it is completed already; it cannot fail", code="finished"
                )
            if session.status in (SessionStatus.FAILED, SessionStatus.EXPIRED):
                return None  # it ended already: the first outcome stands
            return {"status": SessionStatus.FAILED.value, "error_code": code, "error_message": line}

        return self._finish_session(session_id, decide)

    def list_sessions(
        self,
        *,
        end_user: str | None = None,
        status: SessionStatus | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> tuple[ConnectSession, ...]:
        conditions = {
            "end_user_id = ?": end_user,
            "status = ?": status.value if status is not None else None,
            "id > ?": after,
        }
        query, args = _page(_SESSION_SELECT, conditions, "id", limit)
        return tuple(self._checked_session(r) for r in self._rows(query, args))

    def purge_sessions(self, before: float) -> int:
        with self._write() as tx:
            cur = tx.execute(
                "DELETE FROM connect_sessions WHERE (expires_at < ? AND status <> ?) OR expires_at < ?",
                (before, SessionStatus.USED.value, before - USED_SESSION_GRACE),
            )
            return int(cur.rowcount)

    # ---------------------------------------------------------- refresh single-flight

    @contextlib.contextmanager
    def refresh_lease(self, connection_id: str, ttl: float, *, owner: str | None = None) -> Iterator[Lease]:
        holder = owner or uuid.uuid4().hex
        lease = Lease(self, connection_id, holder, self._take_lease(connection_id, holder, ttl))
        try:
            yield lease
        finally:
            lease._end()

    def _write_refresh(
        self, tx: Tx, connection_id: str, expected_version: int, tokens: TokenSet, granted: tuple[str, ...]
    ) -> Connection:
        """A refresh's writes, only while the tokens are still ``expected_version``; the caller
        commits (or rolls back on the error)."""
        at = now()
        before = tx.one("SELECT granted_scopes FROM connections WHERE id = ?", (connection_id,))
        cur = tx.execute(
            "UPDATE connections SET token_type = ?, expires_at = ?, granted_scopes = ?, updated_at = ?, "
            f"refreshed_at = ?, token_version = token_version + 1{self.dialect.end_lease} "
            "WHERE id = ? AND token_version = ?",
            (tokens.token_type, tokens.expires_at, json.dumps(list(granted)), at, at, connection_id, expected_version),
        )
        if cur.rowcount != 1:
            raise StoreError(
                f"connection {connection_id}: its tokens changed during the refresh; "
                "the refresh's tokens were not stored"
            )
        self._put_tokens(tx, connection_id, tokens)
        if before is not None and json.dumps(list(granted)) != before[0]:
            self._scopes_changed(tx, self._snapshot_of(tx, connection_id), before[0], granted)
        return _connection(tx.one(_CONNECTION_SELECT + " WHERE c.id = ?", (connection_id,)))

    # ------------------------------------------------------------ webhook endpoints
    # An endpoint's row is sealed (where its deliveries go and which events); its secrets are
    # rows of ``secrets`` owned by its id: the current one, and the previous one while a rotation
    # is under way. Deliveries are the outbox (see ``_after_event``), attempts their log.

    def create_webhook_endpoint(
        self, url: str, *, secret: Secret, event_types: Sequence[EventType] = (), allow_private: bool = False
    ) -> WebhookEndpoint:
        if not isinstance(url, str) or not url:
            raise ValidationError("url", "expected a URL")
        if not isinstance(secret, Secret):
            raise TypeError("secret must be a Secret")
        kinds = check_event_types(event_types) if event_types else ()
        endpoint_id, at = new_endpoint_id(), now()
        self.keyring  # noqa: B018 - load or create the keys before the transaction starts
        with self._write() as tx:
            tx.execute(
                "INSERT INTO webhook_endpoints (id, url, allow_private, event_types, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (endpoint_id, url, int(bool(allow_private)), json.dumps([k.value for k in kinds]), at, at),
            )
            self._seal(tx, "webhook_endpoints", endpoint_id)
            self._put_secret(tx, endpoint_id, SECRET_NAME, secret)
        return self.get_webhook_endpoint(endpoint_id)

    def _checked_endpoint(self, row: Sequence[Any]) -> WebhookEndpoint:
        self._check_seal("webhook_endpoints", row)
        return _endpoint(row)

    def _endpoint_in(self, tx: Tx, endpoint_id: str) -> WebhookEndpoint:
        """The endpoint, locked for the rest of ``tx``, its seal checked."""
        if tx.one("SELECT 1 FROM webhook_endpoints WHERE id = ?" + self.dialect.for_update, (endpoint_id,)) is None:
            raise UnknownNameError("webhook endpoint", endpoint_id)
        return self._checked_endpoint(tx.one(_ENDPOINT_SELECT + " WHERE e.id = ?", (endpoint_id,)))

    def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        rows = self._rows(_ENDPOINT_SELECT + " WHERE e.id = ?", (endpoint_id,))
        if not rows:
            raise UnknownNameError("webhook endpoint", endpoint_id)
        return self._checked_endpoint(rows[0])

    def list_webhook_endpoints(self) -> tuple[WebhookEndpoint, ...]:
        rows = self._rows(_ENDPOINT_SELECT + " ORDER BY e.created_at, e.id")
        return tuple(self._checked_endpoint(row) for row in rows)

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        with self._write() as tx:
            if tx.one("SELECT 1 FROM webhook_endpoints WHERE id = ?" + self.dialect.for_update, (endpoint_id,)) is None:
                raise UnknownNameError("webhook endpoint", endpoint_id)
            tx.execute(
                "DELETE FROM webhook_attempts WHERE delivery_id IN "
                "(SELECT id FROM webhook_deliveries WHERE endpoint_id = ?)",
                (endpoint_id,),
            )
            tx.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?", (endpoint_id,))
            tx.execute("DELETE FROM secrets WHERE owner_id = ?", (endpoint_id,))
            tx.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,))

    def set_webhook_endpoint_disabled(
        self, endpoint_id: str, disabled: bool, reason: str | None = None
    ) -> WebhookEndpoint:
        at = now()
        with self._write() as tx:
            self._endpoint_in(tx, endpoint_id)
            tx.execute(
                "UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ?, updated_at = ? WHERE id = ?",
                (at if disabled else None, _one_line(reason) if disabled else None, at, endpoint_id),
            )
        return self.get_webhook_endpoint(endpoint_id)

    def rotate_webhook_secret(self, endpoint_id: str, secret: Secret) -> WebhookEndpoint:
        if not isinstance(secret, Secret):
            raise TypeError("secret must be a Secret")
        self.keyring  # noqa: B018 - load the keys before the transaction starts
        with self._write() as tx:
            self._endpoint_in(tx, endpoint_id)
            held = self._secrets_of(tx, endpoint_id, f"webhook endpoint {endpoint_id}")
            if PREVIOUS_SECRET_NAME in held:
                raise ValidationError(
                    "secret",
                    f"webhook endpoint {endpoint_id} is rotating already (two secrets sign its deliveries); drop "
                    "the previous secret first, once its receivers hold the current one",
                    code="rotating",
                )
            current = held.get(SECRET_NAME)
            if current is None:
                raise _damaged(f"webhook endpoint {endpoint_id}", "secrets", "it has no signing secret")
            self._put_secret(tx, endpoint_id, PREVIOUS_SECRET_NAME, current)
            self._put_secret(tx, endpoint_id, SECRET_NAME, secret)
            tx.execute("UPDATE webhook_endpoints SET updated_at = ? WHERE id = ?", (now(), endpoint_id))
        return self.get_webhook_endpoint(endpoint_id)

    def drop_previous_webhook_secret(self, endpoint_id: str) -> WebhookEndpoint:
        with self._write() as tx:
            self._endpoint_in(tx, endpoint_id)
            cur = tx.execute("DELETE FROM secrets WHERE owner_id = ? AND name = ?", (endpoint_id, PREVIOUS_SECRET_NAME))
            if cur.rowcount != 1:
                raise ValidationError(
                    "secret", f"webhook endpoint {endpoint_id} has no previous secret to drop", code="not_rotating"
                )
            tx.execute("UPDATE webhook_endpoints SET updated_at = ? WHERE id = ?", (now(), endpoint_id))
        return self.get_webhook_endpoint(endpoint_id)

    def webhook_secrets(self, endpoint_id: str) -> tuple[Secret, ...]:
        with self._read() as tx:
            row = tx.one(_ENDPOINT_SELECT + " WHERE e.id = ?", (endpoint_id,))
            if row is None:
                raise UnknownNameError("webhook endpoint", endpoint_id)
            order = self.dialect.row_order
            secret_rows = tx.all(
                f"SELECT name, key_id, nonce, ciphertext FROM secrets WHERE owner_id = ? ORDER BY {order}",
                (endpoint_id,),
            )
        self._check_seal("webhook_endpoints", row)
        found = self._decrypt(endpoint_id, secret_rows, f"webhook endpoint {endpoint_id}")
        if SECRET_NAME not in found:
            raise _damaged(f"webhook endpoint {endpoint_id}", "secrets", "it has no signing secret")
        return tuple(found[name] for name in (SECRET_NAME, PREVIOUS_SECRET_NAME) if name in found)

    # ------------------------------------------------------------- the outbox

    def claim_webhook_deliveries(self, owner: str, *, now: float, ttl: float, limit: int) -> tuple[Delivery, ...]:
        if not isinstance(owner, str) or not owner:
            raise ValidationError("owner", "expected the claimer's name")
        with self._write() as tx:
            rows = tx.all(
                # The literal 'pending' lets both engines use the partial index of pending deliveries.
                "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? "
                "AND (claimed_until IS NULL OR claimed_until < ? OR claimed_by = ?) "
                "AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE disabled_at IS NULL) "
                f"ORDER BY next_attempt_at, seq LIMIT ?{self.dialect.skip_locked}",
                (now, now, owner, int(limit)),
            )
            ids = [row[0] for row in rows]
            tx.many(
                "UPDATE webhook_deliveries SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                [(owner, now + ttl, delivery_id) for delivery_id in ids],
            )
        if not ids:
            return ()
        marks = ",".join("?" * len(ids))
        found = self._rows(_DELIVERY_SELECT + f" WHERE d.id IN ({marks}) ORDER BY d.next_attempt_at, d.seq", ids)
        return tuple(_delivery(row) for row in found)

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
        _check_outcome(outcome, next_attempt_at)
        with self._write() as tx:
            return self._record_attempt(tx, delivery_id, attempt, outcome, owner, next_attempt_at, reason)

    def record_webhook_attempts(
        self, results: Sequence[AttemptResult], *, owner: str
    ) -> tuple[DeliveryStatus | None, ...]:
        for result in results:
            _check_outcome(result.outcome, result.next_attempt_at)
        if not results:
            return ()
        with self._write() as tx:
            if any(r.outcome == "gone" for r in results) or len({r.delivery_id for r in results}) < len(results):
                # An endpoint disabled mid-batch (or one delivery twice): each in turn, as alone.
                return tuple(
                    self._record_attempt(tx, r.delivery_id, r.attempt, r.outcome, owner, r.next_attempt_at, r.reason)
                    for r in results
                )
            # The rows locked in one statement (in id order: two recorders never wait on each other in a
            # cycle), the attempts inserted and the deliveries moved on in a statement each.
            ids = sorted({r.delivery_id for r in results})
            marks = ",".join("?" * len(ids))
            rows = {
                row[0]: row[1:]
                for row in tx.all(
                    "SELECT id, status, attempts, endpoint_id, claimed_by FROM webhook_deliveries "
                    f"WHERE id IN ({marks}) ORDER BY id" + self.dialect.for_update,
                    ids,
                )
            }
            inserts: list[tuple[Any, ...]] = []
            updates: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
            statuses: list[DeliveryStatus | None] = []
            for r in results:
                row = rows.get(r.delivery_id)
                if row is None:
                    statuses.append(None)
                    continue
                number, columns, after = _attempt_changes(row, r.attempt, r.outcome, owner, r.next_attempt_at)
                inserts.append(_attempt_row(r.delivery_id, number, r.attempt))
                updates.setdefault(tuple(columns), []).append((*columns.values(), r.delivery_id))
                statuses.append(_delivery_status(after, r.delivery_id))
            if inserts:
                tx.many(_INSERT_ATTEMPT, inserts)
            for names, params in updates.items():
                tx.many(f"UPDATE webhook_deliveries SET {', '.join(f'{c} = ?' for c in names)} WHERE id = ?", params)
            return tuple(statuses)

    def _record_attempt(
        self,
        tx: Tx,
        delivery_id: str,
        attempt: AttemptRecord,
        outcome: Outcome,
        owner: str,
        next_attempt_at: float | None,
        reason: str | None,
    ) -> DeliveryStatus | None:
        """Log one attempt and move its delivery on, in ``tx`` (see :meth:`record_webhook_attempt`)."""
        row = tx.one(
            "SELECT status, attempts, endpoint_id, claimed_by FROM webhook_deliveries WHERE id = ?"
            + self.dialect.for_update,
            (delivery_id,),
        )
        if row is None:
            return None
        number, columns, after = _attempt_changes(row, attempt, outcome, owner, next_attempt_at)
        endpoint_id = row[2]
        tx.execute(_INSERT_ATTEMPT, _attempt_row(delivery_id, number, attempt))
        tx.execute(
            f"UPDATE webhook_deliveries SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
            (*columns.values(), delivery_id),
        )
        if outcome == "gone":
            tx.execute(
                "UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ?, updated_at = ? "
                "WHERE id = ? AND disabled_at IS NULL",
                (attempt.at, _one_line(reason or "the receiver answered 410 Gone"), attempt.at, endpoint_id),
            )
            tx.execute(
                "UPDATE webhook_deliveries SET status = ?, next_attempt_at = NULL, finished_at = ? "
                "WHERE endpoint_id = ? AND status = 'pending'",
                (DeliveryStatus.FAILED.value, attempt.at, endpoint_id),
            )
        return _delivery_status(after, delivery_id)

    def _with_logs(self, rows: Sequence[Sequence[Any]]) -> tuple[Delivery, ...]:
        ids = [row[0] for row in rows]
        logs: dict[str, list[DeliveryAttempt]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for found in self._rows(_ATTEMPT_SELECT.format(marks=",".join("?" * len(chunk))), chunk):
                logs.setdefault(found[0], []).append(_attempt(found))
        return tuple(_delivery(row, tuple(logs.get(row[0], ()))) for row in rows)

    def get_webhook_delivery(self, delivery_id: str) -> Delivery:
        rows = self._rows(_DELIVERY_SELECT + " WHERE d.id = ?", (delivery_id,))
        if not rows:
            raise UnknownNameError("webhook delivery", delivery_id)
        return self._with_logs(rows)[0]

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
        conditions = {
            "d.endpoint_id = ?": endpoint_id,
            "d.event_id = ?": event_id,
            "d.status = ?": DeliveryStatus(status).value if status is not None else None,
            "d.seq > ?": int(after) if after is not None else None,
        }
        query, args = _page(_DELIVERY_SELECT, conditions, "d.seq", limit)
        rows = self._rows(query, args)
        return self._with_logs(rows) if with_log else tuple(_delivery(row) for row in rows)

    def outbox_depth(self) -> int:
        return int(self._rows("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")[0][0])

    def replay_webhooks(
        self,
        *,
        event_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        endpoint_id: str | None = None,
    ) -> int:
        if event_id is not None and (since is not None or until is not None):
            raise ValidationError("event_id", "give one event's id or a time range (since, until), not both")
        if event_id is None and since is None and until is None:
            raise ValidationError("since", "give one event's id or a time range (since, until, or both)")
        start = iso_time(since, "since") if since is not None else None
        end = iso_time(until, "until") if until is not None else None
        if start is not None and end is not None and start >= end:
            raise ValidationError("until", f"expected a time after since ({start}), got {end}")
        at, epoch = now(), time.time()
        with self._write() as tx:
            if endpoint_id is not None:
                endpoint = self._endpoint_in(tx, endpoint_id)
                if endpoint.disabled:
                    raise ValidationError(
                        "endpoint_id", f"webhook endpoint {endpoint_id} is disabled; enable it first", code="disabled"
                    )
                targets = [(endpoint.id, json.dumps([k.value for k in endpoint.event_types]))]
            else:
                targets = tx.all("SELECT id, event_types FROM webhook_endpoints WHERE disabled_at IS NULL ORDER BY id")
            if event_id is not None:
                events = tx.all("SELECT id, type FROM events WHERE id = ?", (event_id,))
                if not events:
                    raise UnknownNameError("event", event_id)
            else:
                query, args = _page("SELECT id, type FROM events", {"at >= ?": start, "at < ?": end}, "seq", None)
                events = tx.all(query, args)
            made = []
            for found_id, kind in events:
                try:
                    event_type = EventType(kind)
                except ValueError:
                    raise _damaged(f"event {found_id}", "type", f"{str(kind)[:60]!r} is not an event type") from None
                made += [
                    (_delivery_id(), found_id, target, epoch, 1, at)
                    for target, types in targets
                    if _subscribes(types, event_type)
                ]
            tx.many(_INSERT_DELIVERY, made)
        return len(made)
