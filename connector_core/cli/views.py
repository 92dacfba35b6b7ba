"""How the connection commands show a connection: its JSON object and its text summary."""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING

from ..connection_json import connection_data, owner_data
from ..connection_json import has_tokens as _has_tokens

if TYPE_CHECKING:
    from ..connection import Connection, Owner
    from ..models import AuthType
    from ..plugins import Plugins

__all__ = ["AuthTypes", "auth_kinds", "connection_data", "expiry", "owner_column", "owner_data", "summary"]


class AuthTypes:
    """The auth type each connection was made with, from its provider's declaration (read once
    per provider); ``None`` when the provider or the auth type is gone."""

    def __init__(self, plugins: Plugins) -> None:
        self._plugins = plugins
        self._found: dict[tuple[str, str], AuthType | None] = {}

    def get(self, conn: Connection) -> AuthType | None:
        key = (conn.provider, conn.auth_type)
        try:
            return self._found[key]
        except KeyError:
            pass
        from ..errors import ConnectorError  # here, not at the top: see _has_tokens

        try:
            found = self._plugins.declaration(conn.provider).auth_type(conn.auth_type)
        except ConnectorError:
            found = None
        self._found[key] = found
        return found


def auth_kinds(plugins: Plugins) -> AuthTypes:
    return AuthTypes(plugins)


def _holds_credentials(auth: AuthType | None) -> bool:
    """The connection keeps the end user's credentials (a service user, an API key), not tokens."""
    return auth is not None and not auth.kind.uses_tokens


#: What a listing's OWNER column says of a connection no end user owns yet.
UNCLAIMED = "(unclaimed)"


def owner_column(owner: Owner) -> str:
    return owner.end_user.id if owner.end_user is not None else UNCLAIMED


def expiry(conn: Connection, auth: AuthType | None = None, now: float | None = None) -> str:
    """When the connection's access token expires, and in how long from ``now`` (default: now)."""
    if not _has_tokens(conn):
        return "-"
    if _holds_credentials(auth):
        return "never (credentials)"
    if conn.expires_at is None:
        return "unknown"
    left = conn.expires_at - (time.time() if now is None else now)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(conn.expires_at))
    return f"{stamp} ({'in ' + str(int(left)) + ' s' if left > 0 else 'expired'})"


def summary(out: IO[str], conn: Connection, auth: AuthType | None = None) -> int:
    """A connection's text summary; its identity (a company, a service user's ID) but never a
    secret: the store keeps none in the identity. Returns the width of its first column."""
    rows = [
        ("connection", conn.id),
        ("profile", conn.profile),
        ("provider", conn.provider),
        ("environment", conn.environment),
        ("auth type", conn.auth_type + (f" ({auth.label})" if auth is not None else "")),
        ("status", conn.status.value + (f" ({conn.status_reason})" if conn.status_reason else "")),
    ]
    if not _holds_credentials(auth):
        rows.append(("granted scopes", " ".join(conn.granted_scopes) or "-"))
    rows.append(("expires", expiry(conn, auth)))
    rows += [(k, v) for k, v in conn.identity]
    rows += _owner_rows(conn.owner)
    width = max(14, *(len(k) for k, _ in rows))
    for key, value in rows:
        out.write(f"{key.ljust(width)}  {value}\n")
    return width


def _owner_rows(owner: Owner) -> list[tuple[str, str]]:
    """Whose it is: the end user (or unclaimed), how to show them, the organisation and tags."""
    user = owner.end_user
    rows = [("end user", owner_column(owner))]
    if user is not None and user.email is not None:
        rows.append(("end user email", user.email))
    if user is not None and user.display_name is not None:
        rows.append(("end user name", user.display_name))
    if owner.organisation is not None:
        rows.append(("organisation", owner.organisation))
    if owner.tags:
        rows.append(("tags", " ".join(owner.tags)))
    return rows
