"""A connection as JSON: the object the CLI's ``--json`` prints and the platform API answers.

Its own module, apart from both front ends, so that the CLI (``cli/views.py``) and the API
(``serve/``) share one shape without importing each other. Imports nothing at the top: the
CLI's parser imports it (cold start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Connection, Owner
    from .models import AuthType

__all__ = ["connection_data", "has_tokens", "owner_data"]


def connection_data(conn: Connection, auth: AuthType | None = None) -> dict[str, Any]:
    """A connection's JSON object; ``auth``, its auth type when known, adds ``auth_kind``
    (``oauth2_authorization_code``, ``http_basic``...; null when unknown)."""
    return {
        "id": conn.id,
        "profile": conn.profile,
        "provider": conn.provider,
        "environment": conn.environment,
        "auth_type": conn.auth_type,
        "auth_kind": auth.kind.value if auth is not None else None,
        "status": conn.status.value,
        "status_reason": conn.status_reason,
        "token_type": conn.token_type,
        "expires_at": conn.expires_at if has_tokens(conn) else None,
        "requested_scopes": list(conn.requested_scopes),
        "granted_scopes": list(conn.granted_scopes),
        "identity": dict(conn.identity),
        "provider_initiated": conn.provider_initiated,
        "created_at": conn.created_at,
        "updated_at": conn.updated_at,
        "refreshed_at": conn.refreshed_at,
        "owner": owner_data(conn.owner),
    }


def owner_data(owner: Owner) -> dict[str, Any]:
    """Whose a connection is, as JSON: ``end_user`` is null while it is unclaimed."""
    user = owner.end_user
    return {
        "end_user": None if user is None else {"id": user.id, "email": user.email, "display_name": user.display_name},
        "organisation": owner.organisation,
        "tags": list(owner.tags),
    }


def has_tokens(conn: Connection) -> bool:
    """A revoked or disconnected connection's tokens are gone, and so is their expiry."""
    from .connection import ConnectionStatus  # here, not at the top: the CLI's parser imports this module (cold start)

    return conn.status not in (ConnectionStatus.REVOKED, ConnectionStatus.DISCONNECTED)
