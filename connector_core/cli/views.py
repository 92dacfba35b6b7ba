"""How the connection commands show a connection: its JSON object and its text summary."""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["connection_data", "expiry", "summary"]


def connection_data(conn: Connection) -> dict[str, Any]:
    return {
        "id": conn.id,
        "profile": conn.profile,
        "provider": conn.provider,
        "environment": conn.environment,
        "auth_type": conn.auth_type,
        "status": conn.status.value,
        "status_reason": conn.status_reason,
        "token_type": conn.token_type,
        "expires_at": conn.expires_at if _has_tokens(conn) else None,
        "requested_scopes": list(conn.requested_scopes),
        "granted_scopes": list(conn.granted_scopes),
        "identity": dict(conn.identity),
        "provider_initiated": conn.provider_initiated,
        "created_at": conn.created_at,
        "updated_at": conn.updated_at,
        "refreshed_at": conn.refreshed_at,
    }


def _has_tokens(conn: Connection) -> bool:
    """A revoked or disconnected connection's tokens are gone, and so is their expiry."""
    from ..connection import ConnectionStatus  # here, not at the top: the parser imports this module (cold start)

    return conn.status not in (ConnectionStatus.REVOKED, ConnectionStatus.DISCONNECTED)


def expiry(conn: Connection) -> str:
    if not _has_tokens(conn):
        return "-"
    if conn.expires_at is None:
        return "unknown"
    left = conn.expires_at - time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(conn.expires_at))
    return f"{stamp} ({'in ' + str(int(left)) + ' s' if left > 0 else 'expired'})"


def summary(out: IO[str], conn: Connection) -> None:
    rows = [
        ("connection", conn.id),
        ("profile", conn.profile),
        ("provider", conn.provider),
        ("environment", conn.environment),
        ("status", conn.status.value + (f" ({conn.status_reason})" if conn.status_reason else "")),
        ("granted scopes", " ".join(conn.granted_scopes) or "-"),
        ("expires", expiry(conn)),
    ]
    rows += [(k, v) for k, v in conn.identity]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.write(f"{key.ljust(width)}  {value}\n")
