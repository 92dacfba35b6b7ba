"""Records of connections, pending authorization attempts, and what the connect flow returns."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .models import Procedure, ReconnectPolicy

__all__ = [
    "Attempt",
    "AuthorizationStart",
    "ConnectResult",
    "Connection",
    "ConnectionEvent",
    "ConnectionStatus",
    "ReconnectPlan",
    "RevokeResult",
    "TestResult",
]


class ConnectionStatus(enum.Enum):
    """Where a connection is in its life."""

    #: A reconnect's authorization is under way (the old tokens are no longer trusted).
    PENDING = "pending"
    #: Authorized and usable.
    CONNECTED = "connected"
    #: The grant is gone (invalid_grant, revoked token, scopes changed...): reconnect it.
    NEEDS_RECONNECT = "needs_reconnect"
    #: Revoked at the provider by us.
    REVOKED = "revoked"
    #: Disconnected locally (tokens deleted) where the provider has no revocation.
    DISCONNECTED = "disconnected"


@attrs.frozen
class Connection:
    """A customer's account connected through a profile. Tokens are not part of it:
    they stay encrypted in the store until a request needs them."""

    id: str
    profile: str
    profile_id: str
    provider: str
    environment: str
    auth_type: str
    status: ConnectionStatus
    status_reason: str | None
    token_type: str | None
    #: Absolute UTC epoch seconds; None when the provider did not say.
    expires_at: float | None
    requested_scopes: tuple[str, ...]
    granted_scopes: tuple[str, ...]
    #: Provider-specific identity, e.g. ``(("companyId", "..."),)``.
    identity: tuple[tuple[str, str], ...]
    #: The install began at the provider (no state of ours).
    provider_initiated: bool
    #: Bumped by every token change; a refresh is skipped when it moved meanwhile.
    token_version: int
    created_at: str
    updated_at: str
    refreshed_at: str | None = None

    @property
    def usable(self) -> bool:
        return self.status is ConnectionStatus.CONNECTED


@attrs.frozen
class ConnectionEvent:
    """One change of a connection's status, with when and why."""

    at: str
    status: ConnectionStatus
    reason: str | None


@attrs.frozen
class Attempt:
    """A pending authorization, kept server-side until its callback arrives."""

    id: str
    profile_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float
    #: Set when the attempt reconnects an existing connection.
    connection_id: str | None = None


# ------------------------------------------------- what the connect flow returns


@attrs.frozen
class AuthorizationStart:
    """What :meth:`~connector_core.Connector.begin` returns: send the person to ``url``."""

    attempt_id: str
    url: str = attrs.field(repr=False)
    redirect_uri: str
    expires_at: float


@attrs.frozen
class ConnectResult:
    """A completed authorization: the stored connection, and anything worth a warning."""

    connection: Connection
    #: E.g. granted scopes that differ from those requested.
    warnings: tuple[str, ...] = ()


@attrs.frozen
class ReconnectPlan:
    """What reconnecting a connection takes (see :meth:`~connector_core.Connector.reconnect_plan`)."""

    connection: Connection
    policy: ReconnectPolicy
    procedures: tuple[Procedure, ...]
    #: The procedures as numbered lines to show a person.
    lines: tuple[str, ...]
    scopes: tuple[str, ...]


@attrs.frozen
class TestResult:
    """The outcome of the provider's connection test."""

    ok: bool
    status: int
    detail: str


@attrs.frozen
class RevokeResult:
    """What :meth:`~connector_core.Connector.revoke` did, said plainly in ``message``."""

    connection: Connection
    #: True when the provider revoked the grant; False when it has no revocation endpoint.
    revoked_at_provider: bool
    message: str
