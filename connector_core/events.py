"""Lifecycle events: every change in a connection's life (and a connect session's failure) as a
record with a stable id, written by the store in the same transaction as the change itself, so
that no change happens without its event and no event describes a change that was rolled back.

An event is what a webhook delivers (:meth:`Event.payload` is the body) and what
``GET /v1/events`` lists. Its ``data`` holds the connection as it stood after the change (as it
stood before, for ``connection.deleted``): id, provider, profile, environment, auth type,
status, owner (end user, organisation, tags) and provider identity, never a secret; and
``details``, what the type adds (the reason, the provider's guidance, the scopes before and
after, the attempt count of a failing refresh and when its token expires...).

Ids are ``evt_`` and 26 characters of a ULID (48 bits of milliseconds, 80 random bits, Crockford
base 32): unique without coordination across processes and replicas, and sorting by time. The
store also numbers events (``seq``), the order a reader pages through them in.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["EVENT_ID_PREFIX", "Event", "EventType", "new_event_id"]

EVENT_ID_PREFIX = "evt_"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class EventType(enum.Enum):
    """What happened (the ``type`` of an event; webhook endpoints subscribe by it)."""

    #: A new connection: authorized, installed at the provider, or connected with credentials.
    CREATED = "connection.created"
    #: An existing connection authorized again, or given new credentials (same id, history kept).
    RECONNECTED = "connection.reconnected"
    #: Refreshing failed for a reason that may pass (the provider down, a timeout); sent once per
    #: degradation, with the attempt count and when the access token expires.
    REFRESH_FAILING = "connection.refresh_failing"
    #: A connection whose refresh was failing refreshed again.
    RECOVERED = "connection.recovered"
    #: The grant or the credentials are gone: a person must reconnect (reason and guidance given).
    NEEDS_RECONNECT = "connection.needs_reconnect"
    #: The provider granted other scopes than before.
    SCOPES_CHANGED = "connection.scopes_changed"
    #: Its tokens or credentials were revoked or deleted (``details.at_provider`` says which).
    REVOKED = "connection.revoked"
    #: The connection was deleted.
    DELETED = "connection.deleted"
    #: A connect session ended without a connection (denied, cancelled, refused...).
    SESSION_FAILED = "connect_session.failed"


def new_event_id(at: float | None = None) -> str:
    """A new event id: ``evt_`` and a ULID of ``at`` (epoch seconds; now by default)."""
    millis = int((time.time() if at is None else at) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return EVENT_ID_PREFIX + "".join(reversed(chars))


@attrs.frozen
class Event:
    """One lifecycle event as the store keeps it."""

    #: ``evt_`` and a ULID: the receiver's idempotency key (a webhook's ``webhook-id``).
    id: str
    #: The store's order of events (pages of ``list_events`` follow it).
    seq: int
    type: EventType
    #: When the change happened: ISO 8601, UTC, microseconds.
    at: str
    #: The connection (or session) it is about, and ``details``.
    data: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def connection_id(self) -> str | None:
        connection = self.data.get("connection")
        return connection.get("id") if isinstance(connection, Mapping) else None

    def payload(self) -> dict[str, Any]:
        """The event as JSON sends it: ``{"id", "type", "timestamp", "data"}`` (a webhook's body)."""
        return {"id": self.id, "type": self.type.value, "timestamp": self.at, "data": dict(self.data)}
