"""Records of connections, pending authorization attempts, and what the connect flow returns."""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ValidationError

if TYPE_CHECKING:
    from .models import Procedure, ReconnectPolicy

__all__ = [
    "Attempt",
    "AuthorizationStart",
    "ConnectResult",
    "ConnectSession",
    "Connection",
    "ConnectionEvent",
    "ConnectionStatus",
    "EndUser",
    "Owner",
    "ReconnectPlan",
    "RevokeResult",
    "SessionStatus",
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


#: An end user's id and an organisation: what the platform calls them (printable, no spaces).
_OWNER_ID_RE = re.compile(r"[\x21-\x7e]{1,200}")
#: A tag: lower-case words, digits, '.', '_', ':', '-' (``team:payroll``, ``tier-1``).
TAG_RE = re.compile(r"[a-z0-9][a-z0-9._:-]{0,63}")
MAX_TAGS = 50


def _owner_id(field: str) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, str) or not _OWNER_ID_RE.fullmatch(value):
            raise ValidationError(field, f"expected 1-200 printable characters without spaces, got {value!r}")

    return check


def _optional_text(field: str, limit: int) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise ValidationError(field, f"expected 1-{limit} characters, got {value!r}")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValidationError(field, "expected printable characters, got a control character")

    return check


def _email(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _optional_text("end_user.email", 320)(instance, attribute, value)
    if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ValidationError("end_user.email", f"expected an email address such as ada@example.com, got {value!r}")


def _tags(value: Any) -> Any:
    if isinstance(value, (str, bytes)) or value is None:
        return value
    return tuple(dict.fromkeys(value))


def _check_tags(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple):
        raise ValidationError("tags", f"expected a list of tags, got {type(value).__name__}")
    if len(value) > MAX_TAGS:
        raise ValidationError("tags", f"expected at most {MAX_TAGS} tags, got {len(value)}")
    for tag in value:
        if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
            raise ValidationError(
                "tags", f"expected lower-case letters, digits, '.', '_', ':' or '-' (at most 64), got {tag!r}"
            )


@attrs.frozen
class EndUser:
    """The platform's end user a connection belongs to: the platform's own id for them, and
    optionally how to show them."""

    id: str = attrs.field(validator=_owner_id("end_user.id"))
    email: str | None = attrs.field(default=None, validator=_email)
    display_name: str | None = attrs.field(default=None, validator=_optional_text("end_user.display_name", 200))


@attrs.frozen
class Owner:
    """Whose a connection is: an end user (``None``: unclaimed, as a Marketplace install is until
    the platform attaches it), their organisation, and free tags to filter by."""

    end_user: EndUser | None = attrs.field(default=None)
    organisation: str | None = attrs.field(default=None, validator=attrs.validators.optional(_owner_id("organisation")))
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tags, validator=_check_tags)

    @end_user.validator
    def _check_end_user(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not isinstance(value, EndUser):
            raise ValidationError("end_user", f"expected an EndUser, got {type(value).__name__}")

    @property
    def claimed(self) -> bool:
        return self.end_user is not None


#: A connection nobody has claimed yet.
UNCLAIMED = Owner()


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
    #: Whose it is: end user, organisation, tags (unclaimed when made without one).
    owner: Owner = UNCLAIMED

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
    #: Whose the connection it makes will be (``None``: unclaimed, or a reconnect's as it was).
    owner: Owner | None = None


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


# ------------------------------------------------------------- connect sessions


class SessionStatus(enum.Enum):
    """Where a connect session is: ``pending`` until its token is claimed (the end user starts
    connecting), then ``used``, then ``completed`` or ``failed``; ``expired`` when its time ran
    out before it was claimed."""

    PENDING = "pending"
    USED = "used"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"


@attrs.frozen
class ConnectSession:
    """A platform's permission for one of its end users to connect an account through the hosted
    connect page (see :class:`~connector_core.sessions.ConnectSessions`). Its token is not part of
    it: only the token's SHA-256 is stored."""

    id: str
    #: Whose the connection made will be; always with an end user.
    owner: Owner
    #: The providers the end user may pick from (one, when a profile is named).
    providers: tuple[str, ...]
    #: The one profile to connect through, or None: the provider's own choice of profile.
    profile: str | None
    #: The scopes to request (empty: the profile's).
    scopes: tuple[str, ...]
    #: The connection a reconnect session re-authorizes.
    connection_id: str | None
    #: Where the end user is sent back when done (on the platform's allow-list).
    redirect_url: str | None
    created_at: str
    #: Absolute UTC epoch seconds after which the token can no longer be claimed.
    expires_at: float
    status: SessionStatus
    #: What the end user picked when claiming the token.
    picked_provider: str | None = None
    picked_profile: str | None = None
    #: The connection made or re-authorized (``completed``).
    result_connection_id: str | None = None
    #: Why it failed (``failed``): a stable code and one line.
    error_code: str | None = None
    error_message: str | None = None
    used_at: str | None = None
    finished_at: str | None = None
    #: Make a new connection even if this end user already has one to the same provider account
    #: (by default connecting the same account again updates their connection); never with
    #: ``connection_id``.
    separate: bool = False

    def expired(self, at: float) -> bool:
        """Whether the token can no longer be claimed at ``at`` (epoch seconds)."""
        return self.status is SessionStatus.EXPIRED or (self.status is SessionStatus.PENDING and at >= self.expires_at)
