"""A connection as JSON: the object the CLI's ``--json`` prints and the platform API answers.

Its own module, apart from both front ends, so that the CLI (``cli/views.py``) and the API
(``serve/``) share one shape without importing each other. Imports nothing at the top: the
CLI's parser imports it (cold start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from .connection import Connection, Owner
    from .models import AuthType

__all__ = ["connection_data", "connection_json_encoder", "has_tokens", "owner_data"]


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
    # By value: importing ConnectionStatus here would cost every call (and at the top, the
    # CLI's parser imports this module: cold start).
    return conn.status.value not in ("revoked", "disconnected")


def connection_json_encoder(level: int = 0) -> Callable[[Connection, AuthType | None], str]:
    """A function writing a connection's JSON object, :func:`connection_data`, as
    ``json.dumps(data, indent=2, ensure_ascii=False)`` would write it ``level`` levels deep in
    an indented document (each line but the first indented ``2 * level`` spaces more), character
    for character, and several times faster: a listing writes thousands.

    The values many connections share (a profile's scopes, an owner) are written once per
    encoder and reused while the same objects come again (a store's listing shares them); a
    connection holding anything but the usual types (a number in its identity) is written by
    :mod:`json` itself."""
    import json  # here, not at the top: see the module's docstring
    from json.encoder import encode_basestring as quote

    from .connection import ConnectionStatus

    pad = "  " * level
    field, item = pad + "  ", pad + "    "
    seen: dict[int, tuple[object, str]] = {}  # id -> (the object, kept so that its id stays its own; text)
    # Statuses are singletons: looked up by id (an Enum's hash runs Python code).
    statuses = {
        id(s): (quote(s.value), s not in (ConnectionStatus.REVOKED, ConnectionStatus.DISCONNECTED))
        for s in ConnectionStatus
    }
    kinds: dict[int, tuple[object, str]] = {}
    keys = (
        *("id", "profile", "provider", "environment", "auth_type", "auth_kind", "status", "status_reason"),
        *("token_type", "expires_at", "requested_scopes", "granted_scopes", "identity", "provider_initiated"),
        *("created_at", "updated_at", "refreshed_at", "owner"),
    )
    template = "{\n" + ",\n".join(f"{field}{quote(key)}: %s" for key in keys) + f"\n{pad}}}"
    item_sep, pair_sep = ",\n" + item, ",\n" + item
    open_list, close_list = "[\n" + item, f"\n{field}]"
    open_object, close_object = "{\n" + item, f"\n{field}}}"

    def nested(value: Any, indent: str) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + indent)

    def strings(values: tuple[str, ...]) -> str:
        return open_list + item_sep.join(map(quote, values)) + close_list if values else "[]"

    def owner(value: Owner) -> str:
        return nested(owner_data(value), field)

    def shared(value: Any, write: Callable[[Any], str]) -> str:
        found = seen.get(id(value))
        if found is not None and found[0] is value:
            return found[1]
        if len(seen) >= 1024:
            seen.clear()
        written = write(value)
        seen[id(value)] = (value, written)
        return written

    def encode(conn: Connection, auth: AuthType | None = None) -> str:
        try:
            status, tokens = statuses[id(conn.status)]
            expires = conn.expires_at
            if expires is None or not tokens:
                expiry = "null"
            elif type(expires) is float and expires - expires == 0:  # finite: written as float.__repr__
                expiry = float.__repr__(expires)
            else:
                raise TypeError
            if auth is None:
                kind = "null"
            else:
                found = kinds.get(id(auth))
                if found is None or found[0] is not auth:
                    found = kinds[id(auth)] = (auth, quote(auth.kind.value))
                kind = found[1]
            pairs = conn.identity
            flag = conn.provider_initiated
            if type(flag) is not bool:
                raise TypeError
            reason, token_type, refreshed = conn.status_reason, conn.token_type, conn.refreshed_at
            requested, granted, whose = conn.requested_scopes, conn.granted_scopes, conn.owner
            # What the last connections shared is written already (looked up here: a call less).
            known = seen.get(id(requested))
            requested_text = known[1] if known is not None and known[0] is requested else shared(requested, strings)
            known = seen.get(id(granted))
            granted_text = known[1] if known is not None and known[0] is granted else shared(granted, strings)
            known = seen.get(id(whose))
            owner_text = known[1] if known is not None and known[0] is whose else shared(whose, owner)
            return template % (
                quote(conn.id),
                quote(conn.profile),
                quote(conn.provider),
                quote(conn.environment),
                quote(conn.auth_type),
                kind,
                status,
                "null" if reason is None else quote(reason),
                "null" if token_type is None else quote(token_type),
                expiry,
                requested_text,
                granted_text,
                open_object + pair_sep.join([quote(k) + ": " + quote(v) for k, v in pairs]) + close_object
                if pairs
                else "{}",
                "true" if flag else "false",
                quote(conn.created_at),
                quote(conn.updated_at),
                "null" if refreshed is None else quote(refreshed),
                owner_text,
            )
        except (TypeError, KeyError):  # a value of another type (quote takes str only): json writes it
            return nested(connection_data(conn, auth), pad)

    return encode
