"""Copying a SQLite store into an empty PostgreSQL one (``connector store migrate``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..crypto import KeyRing
from ..errors import ValidationError
from .contract import CopyReport
from .sql import SEALED, _sealed_text, _what, aad, now

if TYPE_CHECKING:
    from .postgres import PgStore
    from .sqlite import Store

__all__ = ["COPIED", "SQLITE_ONLY", "TRANSIENT", "copy_from_sqlite"]

#: What a copy carries: each table that keeps data (the target must hold none), its rows in
#: storage order, every column but SQLite's refresh lease (``SQLITE_ONLY``) and the keeper's claims
#: (``TRANSIENT``: the keepers of the copy claim anew). The keepers' heartbeats (``keeper_locks``) are
#: not copied: they name processes of the source's host.
COPIED = (
    *("profiles", "connections", "secrets", "attempts", "connection_events", "connect_sessions", "events"),
    *("webhook_endpoints", "webhook_deliveries", "webhook_attempts", "keeper_state"),
)
SQLITE_ONLY = ("lock_owner", "lock_until")
TRANSIENT = ("claimed_by", "claimed_until")


def _typed(column: str, value: Any) -> Any:
    """A SQLite value as PostgreSQL stores it: a boolean for the integer flag, bytes for a blob."""
    if column == "provider_initiated":
        return bool(value)
    return bytes(value) if column in ("nonce", "ciphertext") else value


def copy_from_sqlite(source: Store, target: PgStore, *, verify: bool = True) -> CopyReport:
    """Copy the SQLite store ``source`` into ``target``, which must be empty, in one transaction.

    With ``verify`` (the default) the target keeps its own store id, and so its own key file:
    every secret is decrypted with the source's keys found here (and every row's seal checked),
    then encrypted and sealed under the target's keys, so rotating the keys of one store never
    makes the other unreadable; a copy the keys here cannot read is refused before anything is
    written. Without ``verify`` (a host that holds no keys) ciphertexts and seals are copied as
    they are and the target takes the source's store id: the two then share one key ring (the
    source's key file, or ``CONNECTOR_CORE_SECRET_KEY``), and only one of them may rotate keys.
    """
    with source._read() as src:
        rows: dict[str, list[dict[str, Any]]] = {}
        for table in COPIED:  # connection_events.id and events.seq are their rowids
            cursor = src.execute(f"SELECT * FROM {table} ORDER BY rowid")
            names = [column[0] for column in cursor.description]
            kept = [dict(zip(names, row, strict=True)) for row in cursor]
            dropped = (*SQLITE_ONLY, *TRANSIENT)
            rows[table] = [{n: _typed(n, v) for n, v in row.items() if n not in dropped} for row in kept]
        created = src.one("SELECT value FROM meta WHERE key = 'created_at'")
    store_id = source.store_id
    own: KeyRing | None = None
    if verify and (rows["secrets"] or rows["profiles"] or rows["connect_sessions"]):
        ring = KeyRing.load(store_id, target._env, create=False)
        for table, sealed in SEALED.items():
            for row in rows[table]:
                values = [row[c] for c in sealed]
                if not ring.sealed(row["seal"], _sealed_text(table, values), what=_what(table, values)):
                    raise source._tampered(table, values)
                row["seal"] = None  # sealed again under the target's keys
        own = target.keyring
        owners = {row["id"]: f"profile {row['name']!r}" for row in rows["profiles"]}
        owners.update({row["id"]: f"connection {row['id']!r}" for row in rows["connections"]})
        owners.update({row["id"]: f"webhook endpoint {row['id']!r}" for row in rows["webhook_endpoints"]})
        for row in rows["secrets"]:
            owner_id, name = row["owner_id"], row["name"]
            what = f"{name} of {owners.get(owner_id, repr(owner_id))}"
            plain = ring.decrypt(row["key_id"], row["nonce"], row["ciphertext"], aad(owner_id, name), what=what)
            row["key_id"], row["nonce"], row["ciphertext"] = own.encrypt(plain, aad(owner_id, name))
    with target._write() as tx:
        tx.execute(f"LOCK TABLE meta, {', '.join(COPIED)} IN SHARE ROW EXCLUSIVE MODE")
        counts = {table: int(tx.one(f"SELECT count(*) FROM {table}")[0]) for table in COPIED}
        if any(counts.values()):
            held = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in counts.items() if n)
            raise ValidationError(
                "--to", f"the store at {target.path} is not empty ({held}); copy only into an empty store"
            )
        for table, copied in rows.items():
            if copied:
                columns, marks = ", ".join(copied[0]), ",".join("?" * len(copied[0]))
                tx.many(f"INSERT INTO {table} ({columns}) VALUES ({marks})", [tuple(row.values()) for row in copied])
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('connection_events', 'id'), "
            "(SELECT coalesce(max(id), 0) + 1 FROM connection_events), false)"
        )
        for table in ("events", "webhook_deliveries"):
            tx.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'), "
                f"(SELECT coalesce(max(seq), 0) + 1 FROM {table}), false)"
            )
        if created is not None:
            tx.execute("UPDATE meta SET value = ? WHERE key = 'created_at'", (created[0],))
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('copied_from', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (f"{source.path} (store {store_id}) at {now()}",),
        )
        if own is not None:
            for table in SEALED:
                target._seal(tx, table, ring=own)
        elif verify is False:
            target._set_store_id(tx, store_id)
    # connection_events: events; connect_sessions: sessions; events: lifecycle_events
    report_names = {
        "connection_events": "events",
        "connect_sessions": "sessions",
        "events": "lifecycle_events",
        "keeper_state": "keeper_states",
        "webhook_attempts": "webhook_log",
    }
    counts = {report_names.get(table, table): len(copied) for table, copied in rows.items()}
    return CopyReport(source=str(source.path), target=target.path, store_id=target.store_id, verified=verify, **counts)
