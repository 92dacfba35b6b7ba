"""Copying a SQLite store into an empty PostgreSQL one (``connector store migrate``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..crypto import KeyRing
from ..errors import ValidationError
from .contract import CopyReport
from .sql import aad, now

if TYPE_CHECKING:
    from .postgres import PgStore
    from .sqlite import Store

__all__ = ["COPIED", "copy_from_sqlite"]

#: What a copy carries: each table that keeps data (the target must hold none), its
#: columns, and the order the source lists its rows in. Refresh leases stay behind.
COPIED = {
    "profiles": (
        "id, name, provider, auth_type, environment, credential_set, field_values, scopes, actions, "
        "endpoints, created_at, updated_at",
        "rowid",
    ),
    "connections": (
        "id, profile_id, provider, environment, auth_type, status, status_reason, metadata, token_type, "
        "expires_at, requested_scopes, granted_scopes, identity, provider_initiated, token_version, "
        "refreshed_at, created_at, updated_at",
        "rowid",
    ),
    "secrets": ("owner_id, name, key_id, nonce, ciphertext", "rowid"),
    "attempts": ("id, state_hash, profile_id, redirect_uri, scopes, connection_id, expires_at, created_at", "rowid"),
    "connection_events": ("id, connection_id, at, status, reason", "id"),
}


def _typed(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A SQLite row as PostgreSQL stores it: a boolean for an integer flag, bytes for a blob."""
    if table == "connections":
        return (*row[:13], bool(row[13]), *row[14:])
    if table == "secrets":
        return (*row[:3], bytes(row[3]), bytes(row[4]))
    return tuple(row)


def copy_from_sqlite(source: Store, target: PgStore, *, verify: bool = True) -> CopyReport:
    """Copy the SQLite store ``source`` into ``target``, which must be empty, in one transaction.

    Ciphertexts are copied as they are, with their key ids, and the target takes the
    source's store id: the keys that decrypt the source (its key file, named after
    the store id, or ``CONNECTOR_CORE_SECRET_KEY``) decrypt the copy. With ``verify``
    every secret is first decrypted with the keys found here, so a copy nobody could
    read is refused before anything is written.
    """
    with source._read() as src:
        rows = {
            table: [_typed(table, r) for r in src.all(f"SELECT {columns} FROM {table} ORDER BY {order}")]
            for table, (columns, order) in COPIED.items()
        }
        created = src.one("SELECT value FROM meta WHERE key = 'created_at'")
    store_id = source.store_id
    if verify and rows["secrets"]:
        ring = KeyRing.load(store_id, target._env, create=False)
        names = {row[0]: f"profile {row[1]!r}" for row in rows["profiles"]}
        names.update({row[0]: f"connection {row[0]!r}" for row in rows["connections"]})
        for owner_id, name, kid, nonce, ciphertext in rows["secrets"]:
            what = f"{name} of {names.get(owner_id, repr(owner_id))}"
            ring.decrypt(kid, nonce, ciphertext, aad(owner_id, name), what=what)
    with target._write() as tx:
        tx.execute(f"LOCK TABLE meta, {', '.join(COPIED)} IN SHARE ROW EXCLUSIVE MODE")
        counts = {table: int(tx.one(f"SELECT count(*) FROM {table}")[0]) for table in COPIED}
        if any(counts.values()):
            held = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in counts.items() if n)
            raise ValidationError(
                "--to", f"the store at {target.path} is not empty ({held}); copy only into an empty store"
            )
        for table, (columns, _) in COPIED.items():
            marks = ",".join("?" * (columns.count(",") + 1))
            tx.many(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows[table])
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('connection_events', 'id'), "
            "(SELECT coalesce(max(id), 0) + 1 FROM connection_events), false)"
        )
        if created is not None:
            tx.execute("UPDATE meta SET value = ? WHERE key = 'created_at'", (created[0],))
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('copied_from', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (f"{source.path} at {now()}",),
        )
        target._set_store_id(tx, store_id)
    return CopyReport(
        source=str(source.path),
        target=target.path,
        store_id=store_id,
        profiles=len(rows["profiles"]),
        connections=len(rows["connections"]),
        secrets=len(rows["secrets"]),
        events=len(rows["connection_events"]),
        attempts=len(rows["attempts"]),
        verified=verify,
    )
