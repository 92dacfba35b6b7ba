"""The credential store: one SQLite database holding profiles, connections and secrets.

* Where: ``<home>/connector.db``, home being ``--home``, else ``CONNECTOR_HOME``,
  else platformdirs' user data dir. The folder is created 0700 and the file 0600.
* Safety: WAL journal, ``synchronous=FULL``, every write one ``BEGIN IMMEDIATE``
  transaction, so a crash (even ``kill -9``) leaves the previous state or the new
  one; a busy timeout and retries keep concurrent processes from seeing
  "database is locked".
* Secrets: every secret value lives in the ``secrets`` table encrypted with
  AES-256-GCM (see :mod:`connector_core.crypto`), bound to its row by associated
  data. The database file never holds a secret in plain text.
* Schema: ``PRAGMA user_version`` holds the schema version; forward migrations
  run in a transaction each. A database from a newer version is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs

from ._files import ensure_private_dir
from .connection import Attempt, Connection, ConnectionEvent, ConnectionStatus
from .crypto import KeyRing
from .errors import ConnectorError, StoreError, ValidationError
from .oauth import TokenSet
from .profiles import Profile, ProfileDraft
from .secret import Secret

__all__ = ["ENV_HOME", "KeyRotation", "Store", "StoreError", "default_home"]

_T = TypeVar("_T")

ENV_HOME = "CONNECTOR_HOME"
DB_NAME = "connector.db"
BUSY_TIMEOUT_MS = 30_000
AAD_PREFIX = "connector-core/v1"

#: Forward migrations: schema version -> statements. Append only; never edit a released one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE profiles (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            provider TEXT NOT NULL,
            auth_type TEXT NOT NULL,
            environment TEXT NOT NULL,
            credential_set TEXT NOT NULL,
            field_values TEXT NOT NULL,
            scopes TEXT NOT NULL,
            actions TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE connections (
            id TEXT PRIMARY KEY,
            profile_id TEXT NOT NULL REFERENCES profiles(id) ON DELETE RESTRICT,
            provider TEXT NOT NULL,
            environment TEXT NOT NULL,
            status TEXT NOT NULL,
            status_reason TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX connections_profile ON connections(profile_id)",
        """CREATE TABLE secrets (
            owner_id TEXT NOT NULL,
            name TEXT NOT NULL,
            key_id TEXT NOT NULL,
            nonce BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            PRIMARY KEY (owner_id, name)
        )""",
        "CREATE INDEX secrets_key ON secrets(key_id)",
    ),
    2: (
        # Per-profile endpoint overrides (an emulator, a proxy) and the registered redirect URI.
        "ALTER TABLE profiles ADD COLUMN endpoints TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE connections ADD COLUMN auth_type TEXT NOT NULL DEFAULT 'oauth2'",
        "ALTER TABLE connections ADD COLUMN token_type TEXT",
        "ALTER TABLE connections ADD COLUMN expires_at REAL",
        "ALTER TABLE connections ADD COLUMN requested_scopes TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE connections ADD COLUMN granted_scopes TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE connections ADD COLUMN identity TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE connections ADD COLUMN provider_initiated INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE connections ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE connections ADD COLUMN refreshed_at TEXT",
        # The cross-process refresh lease: who holds it and until when (epoch seconds).
        "ALTER TABLE connections ADD COLUMN lock_owner TEXT",
        "ALTER TABLE connections ADD COLUMN lock_until REAL",
        "CREATE INDEX connections_status ON connections(status)",
        """CREATE TABLE attempts (
            id TEXT PRIMARY KEY,
            state_hash TEXT NOT NULL UNIQUE,
            profile_id TEXT NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            redirect_uri TEXT NOT NULL,
            scopes TEXT NOT NULL,
            connection_id TEXT,
            expires_at REAL NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE connection_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            connection_id TEXT NOT NULL,
            at TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT
        )""",
        "CREATE INDEX connection_events_connection ON connection_events(connection_id, id)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)


@attrs.frozen
class KeyRotation:
    """What :meth:`Store.rotate_keys` did."""

    primary_key: str
    reencrypted: int
    retired: tuple[str, ...]
    remaining: tuple[str, ...]


def default_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(ENV_HOME):
        return Path(env[ENV_HOME]).expanduser()
    from platformdirs import user_data_path

    return user_data_path("connector-core", appauthor=False)


_SELECT_PROFILE = (
    "SELECT id, name, provider, auth_type, environment, credential_set, "
    "field_values, scopes, actions, created_at, updated_at, endpoints FROM profiles"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _aad(owner_id: str, name: str) -> str:
    return f"{AAD_PREFIX}|{owner_id}|{name}"


# Rows and records. Both stores select the same columns in the same order, so these
# pure conversions serve the SQLite store and the PostgreSQL one alike.


def draft_columns(draft: ProfileDraft) -> tuple[str, ...]:
    """name, auth_type, environment, credential_set, field_values, scopes, actions, endpoints."""
    return (
        draft.name,
        draft.auth_type,
        draft.environment,
        draft.credential_set,
        json.dumps(dict(draft.values)),
        json.dumps(list(draft.scopes)),
        json.dumps(list(draft.actions)),
        json.dumps(dict(draft.endpoints)),
    )


def profile_from_row(
    row: Sequence[Any], secret_names: tuple[str, ...], secrets: dict[str, Secret] | None = None
) -> Profile:
    """A profile from the columns of ``_SELECT_PROFILE`` (further columns are ignored)."""
    pid, name, provider, auth_type, environment, credential_set, values, scopes, actions, created, updated = row[:11]
    return Profile(
        id=pid,
        name=name,
        provider=provider,
        auth_type=auth_type,
        environment=environment,
        credential_set=credential_set,
        values=tuple(json.loads(values).items()),
        secret_names=secret_names,
        scopes=tuple(json.loads(scopes)),
        actions=tuple(json.loads(actions)),
        created_at=created,
        updated_at=updated,
        endpoints=tuple(json.loads(row[11]).items()),
        secrets=tuple((secrets or {}).items()),
    )


def connection_from_row(row: Sequence[Any]) -> Connection:
    """A connection from the columns of the stores' connection select."""
    return Connection(
        id=row[0],
        profile=row[1],
        profile_id=row[2],
        provider=row[3],
        environment=row[4],
        auth_type=row[5],
        status=ConnectionStatus(row[6]),
        status_reason=row[7],
        token_type=row[8],
        expires_at=float(row[9]) if row[9] is not None else None,
        requested_scopes=tuple(json.loads(row[10])),
        granted_scopes=tuple(json.loads(row[11])),
        identity=tuple(json.loads(row[12]).items()),
        provider_initiated=bool(row[13]),
        token_version=int(row[14]),
        created_at=row[15],
        updated_at=row[16],
        refreshed_at=row[17],
    )


class Store:
    """The SQLite credential store. Safe to share between threads; each thread
    gets its own connection. Several processes may use one store at once.

    Open it with :meth:`Store.open`. Everything the CLI does with profiles and
    keys is a method here.
    """

    def __init__(self, path: Path, *, env: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self._env = dict(os.environ if env is None else env)
        self._local = threading.local()
        self._keyring: KeyRing | None = None
        self._keyring_lock = threading.Lock()
        self._store_id: str | None = None
        self._prepare()

    def __repr__(self) -> str:
        return f"<Store {self.path}>"

    @classmethod
    def open(cls, home: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Store:
        """Open (creating if needed) the store under ``home`` (see the module doc)."""
        base = Path(home).expanduser() if home is not None else default_home(env)
        return cls(base / DB_NAME, env=env)

    # ------------------------------------------------------------- connections

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise self._error("opening", exc) from None
        self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, doing: str, exc: BaseException) -> StoreError:
        text = str(exc)
        if "file is not a database" in text or "malformed" in text:
            return StoreError(f"database {self.path}: not a connector-core database, or damaged ({text})")
        if "unable to open" in text or "readonly" in text or isinstance(exc, PermissionError):
            return StoreError(f"database {self.path}: {doing} failed ({text}); check the file's permissions")
        return StoreError(f"database {self.path}: {doing} failed ({text})")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), retried while another writer holds the lock."""
        conn = self._connect()
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise self._error("writing", exc) from None
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"database {self.path}: still locked by another process after {BUSY_TIMEOUT_MS // 1000} s"
                    ) from None
                time.sleep(0.01)
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise self._error("committing", exc) from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several reads."""
        conn = self._connect()
        try:
            conn.execute("BEGIN")
        except sqlite3.Error as exc:
            raise self._error("reading", exc) from None
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    # ------------------------------------------------------------------ schema

    def _prepare(self) -> None:
        ensure_private_dir(self.path.parent)
        if not self.path.exists():
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            except OSError as exc:
                raise StoreError(f"database {self.path}: cannot create it ({exc.strerror})") from None
            os.close(fd)
        elif not os.access(self.path, os.R_OK | os.W_OK):
            raise StoreError(f"database {self.path}: cannot read and write it; check the file's permissions")
        conn = self._connect()

        def version_and_wal() -> int:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version <= SCHEMA_VERSION and conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return version

        version = self._retry_locked(version_and_wal, "opening")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path}: schema version {version} is newer than this connector-core "
                f"supports ({SCHEMA_VERSION}); upgrade connector-core"
            )
        for target in sorted(v for v in MIGRATIONS if v > version):
            self._migrate(target)

    def _retry_locked(self, action: Callable[[], _T], doing: str) -> _T:
        """Run ``action``, retrying while another process holds a lock SQLite does not wait for."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise self._error(doing, exc) from None
                time.sleep(0.01)
            except sqlite3.Error as exc:
                raise self._error(doing, exc) from None

    def _migrate(self, target: int) -> None:
        with self._write() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current >= target:  # another process migrated first
                return
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
            if target == 1:
                conn.execute("INSERT INTO meta (key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,))
                conn.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", (_now(),))
            conn.execute(f"PRAGMA user_version = {int(target)}")

    @property
    def schema_version(self) -> int:
        return int(self._connect().execute("PRAGMA user_version").fetchone()[0])

    @property
    def store_id(self) -> str:
        """A random id naming this store (its key file is named after it)."""
        if self._store_id is None:
            row = self._connect().execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
            self._store_id = str(row[0])
        return self._store_id

    # ----------------------------------------------------------------- secrets

    @property
    def keyring(self) -> KeyRing:
        """The store's key ring, loaded (or generated) on first use."""
        with self._keyring_lock:
            if self._keyring is None:
                self._keyring = KeyRing.load(self.store_id, self._env)
            return self._keyring

    def _put_secret(self, conn: sqlite3.Connection, owner_id: str, name: str, value: Secret) -> None:
        try:
            kid, nonce, ciphertext = self.keyring.encrypt(value.reveal(), _aad(owner_id, name))
        except UnicodeEncodeError:  # a lone surrogate, e.g. undecodable bytes read from the environment
            raise ValidationError(name, "is not valid text (it holds undecodable bytes)") from None
        conn.execute(
            "INSERT INTO secrets (owner_id, name, key_id, nonce, ciphertext) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (owner_id, name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, "
            "ciphertext = excluded.ciphertext",
            (owner_id, name, kid, nonce, ciphertext),
        )

    def _get_secrets(self, conn: sqlite3.Connection, owner_id: str, what: str) -> dict[str, Secret]:
        found: dict[str, Secret] = {}
        rows = conn.execute(
            "SELECT name, key_id, nonce, ciphertext FROM secrets WHERE owner_id = ? ORDER BY rowid", (owner_id,)
        ).fetchall()
        for name, kid, nonce, ciphertext in rows:
            found[name] = Secret(
                # Columns as stored: the key ring refuses anything that is not what it wrote.
                self.keyring.decrypt(kid, nonce, ciphertext, _aad(owner_id, name), what=f"{name} of {what}")
            )
        return found

    # ---------------------------------------------------------------- profiles

    @contextlib.contextmanager
    def _writing_profile(self, draft: ProfileDraft) -> Iterator[sqlite3.Connection]:
        """A write transaction for ``draft``, its secrets included; SQLite errors become one-line errors."""
        self.keyring  # noqa: B018 - load or create the keys before the transaction starts
        try:
            with self._write() as conn:
                yield conn
        except sqlite3.IntegrityError:
            raise ValidationError("name", f"a profile named {draft.name!r} already exists") from None
        except sqlite3.Error as exc:
            raise self._error("writing", exc) from None

    def create_profile(self, draft: ProfileDraft) -> Profile:
        """Store a validated profile (see :func:`~connector_core.validate_profile`)."""
        profile_id = f"prof_{uuid.uuid4().hex}"
        now = _now()
        with self._writing_profile(draft) as conn:
            conn.execute(
                "INSERT INTO profiles (name, auth_type, environment, credential_set, field_values, scopes, "
                "actions, endpoints, id, provider, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (*draft_columns(draft), profile_id, draft.provider, now, now),
            )
            for name, value in draft.secrets:
                self._put_secret(conn, profile_id, name, value)
        return self.get_profile(draft.name)

    def update_profile(self, name: str, draft: ProfileDraft) -> Profile:
        """Replace profile ``name`` with ``draft`` (which may rename it), in one transaction."""
        with self._writing_profile(draft) as conn:
            row = conn.execute("SELECT id FROM profiles WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise self._unknown_profile(conn, name)
            profile_id = row[0]
            old_scopes = conn.execute("SELECT scopes FROM profiles WHERE id = ?", (profile_id,)).fetchone()
            if old_scopes is not None and set(json.loads(old_scopes[0])) != set(draft.scopes):
                # Some providers need a re-install for new scopes: flag every connection.
                self._mark_profile_connections(conn, profile_id, "scopes changed")
            conn.execute(
                "UPDATE profiles SET name = ?, auth_type = ?, environment = ?, credential_set = ?, "
                "field_values = ?, scopes = ?, actions = ?, endpoints = ?, updated_at = ? WHERE id = ?",
                (*draft_columns(draft), _now(), profile_id),
            )
            keep = {n for n, _ in draft.secrets}
            stored = [r[0] for r in conn.execute("SELECT name FROM secrets WHERE owner_id = ?", (profile_id,))]
            for stale in set(stored) - keep:
                conn.execute("DELETE FROM secrets WHERE owner_id = ? AND name = ?", (profile_id, stale))
            for secret_name, value in draft.secrets:
                self._put_secret(conn, profile_id, secret_name, value)
        return self.get_profile(draft.name)

    def _mark_profile_connections(self, conn: sqlite3.Connection, profile_id: str, reason: str) -> None:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM connections WHERE profile_id = ? AND status IN (?, ?)",
                (profile_id, ConnectionStatus.CONNECTED.value, ConnectionStatus.PENDING.value),
            )
        ]
        for cid in ids:
            conn.execute(
                "UPDATE connections SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?",
                (ConnectionStatus.NEEDS_RECONNECT.value, reason, _now(), cid),
            )
            self._event(conn, cid, ConnectionStatus.NEEDS_RECONNECT, reason)

    def _unknown_profile(self, conn: sqlite3.Connection, name: str) -> ConnectorError:
        from .errors import UnknownNameError

        names = [r[0] for r in conn.execute("SELECT name FROM profiles ORDER BY name")]
        return UnknownNameError("profile", name, names)

    def get_profile(self, name: str, *, with_secrets: bool = True) -> Profile:
        """The profile ``name``; its secrets decrypted unless ``with_secrets=False``.

        A missing or wrong key raises :class:`~connector_core.crypto.CryptoError`
        naming the profile and the field.
        """
        try:
            with self._read() as conn:
                row = conn.execute(_SELECT_PROFILE + " WHERE name = ?", (name,)).fetchone()
                if row is None:
                    raise self._unknown_profile(conn, name)
                names = tuple(
                    r[0] for r in conn.execute("SELECT name FROM secrets WHERE owner_id = ? ORDER BY rowid", (row[0],))
                )
                secrets = self._get_secrets(conn, row[0], f"profile {name!r}") if with_secrets else None
        except sqlite3.Error as exc:
            raise self._error("reading", exc) from None
        return profile_from_row(row, names, secrets)

    def list_profiles(self, provider: str | None = None) -> tuple[Profile, ...]:
        """Every profile (without secret values), sorted by name. Needs no key."""
        query = _SELECT_PROFILE
        args: tuple[str, ...] = ()
        if provider is not None:
            query += " WHERE provider = ?"
            args = (provider,)
        try:
            with self._read() as conn:
                rows = conn.execute(query + " ORDER BY name", args).fetchall()
                names: dict[str, list[str]] = {}
                for owner, secret_name in conn.execute("SELECT owner_id, name FROM secrets ORDER BY rowid"):
                    names.setdefault(owner, []).append(secret_name)
        except sqlite3.Error as exc:
            raise self._error("reading", exc) from None
        return tuple(profile_from_row(r, tuple(names.get(r[0], ()))) for r in rows)

    def profile_connection_count(self, name: str) -> int:
        conn = self._connect()
        row = conn.execute(
            "SELECT count(*) FROM connections c JOIN profiles p ON p.id = c.profile_id WHERE p.name = ?", (name,)
        ).fetchone()
        return int(row[0])

    def delete_profile(self, name: str, *, force: bool = False) -> int:
        """Delete profile ``name``; refuses while connections use it unless ``force``,
        which deletes those connections and their tokens too. Returns how many
        connections were deleted."""
        try:
            with self._write() as conn:
                row = conn.execute("SELECT id FROM profiles WHERE name = ?", (name,)).fetchone()
                if row is None:
                    raise self._unknown_profile(conn, name)
                profile_id = row[0]
                connection_ids = [
                    r[0] for r in conn.execute("SELECT id FROM connections WHERE profile_id = ?", (profile_id,))
                ]
                if connection_ids and not force:
                    raise ValidationError(
                        "profile",
                        f"{name!r} is used by {len(connection_ids)} connection(s); delete them first "
                        "or pass --force to delete them with it",
                    )
                for cid in connection_ids:
                    conn.execute("DELETE FROM secrets WHERE owner_id = ?", (cid,))
                conn.execute("DELETE FROM connections WHERE profile_id = ?", (profile_id,))
                conn.execute("DELETE FROM secrets WHERE owner_id = ?", (profile_id,))
                conn.execute("DELETE FROM profiles WHERE id = ?", (profile_id,))
        except sqlite3.Error as exc:
            raise self._error("writing", exc) from None
        return len(connection_ids)

    # -------------------------------------------------------------------- keys

    def key_usage(self) -> dict[str, int]:
        """How many stored values each key id encrypts."""
        rows = self._connect().execute("SELECT key_id, count(*) FROM secrets GROUP BY key_id").fetchall()
        return {str(k): int(n) for k, n in rows}

    def rotate_keys(self, *, retire: bool = False, new_key: bool = True) -> KeyRotation:
        """Re-encrypt every stored value under a new primary key, in one transaction.

        With a key file, a new key is generated and saved beside the old ones
        first, so a crash at any point leaves every value readable. With
        ``CONNECTOR_CORE_SECRET_KEY`` the environment's key is the new primary
        (put the old one in ``CONNECTOR_CORE_PREVIOUS_SECRET_KEYS``) and nothing
        is written but the database. ``retire`` then drops every other key from
        the key file.
        """
        from .crypto import CryptoError

        ring = self.keyring
        if ring.path is not None and new_key:
            ring = ring.with_new_primary()
            ring.save()
            with self._keyring_lock:
                self._keyring = ring
        count = 0
        try:
            with self._write() as conn:
                rows = conn.execute("SELECT owner_id, name, key_id, nonce, ciphertext FROM secrets").fetchall()
                owners = dict(
                    conn.execute(
                        "SELECT id, 'profile ' || quote(name) FROM profiles UNION ALL "
                        "SELECT id, 'connection ' || quote(id) FROM connections"
                    ).fetchall()
                )
                for owner_id, name, kid, nonce, ciphertext in rows:
                    what = f"{name} of {owners.get(owner_id, repr(owner_id))}"
                    plain = ring.decrypt(kid, nonce, ciphertext, _aad(owner_id, name), what=what)
                    self._put_secret(conn, owner_id, name, Secret(plain))
                    count += 1
        except sqlite3.Error as exc:
            raise self._error("writing", exc) from None
        retired: tuple[str, ...] = ()
        if retire:
            old = set(ring.key_ids) - {ring.primary_id}
            still_used = old & set(self.key_usage())
            if still_used:  # pragma: no cover - the transaction above re-encrypted everything
                raise CryptoError(f"keys {', '.join(sorted(still_used))} are still in use; not retiring them")
            if ring.path is not None and old:
                ring = ring.without(old)
                ring.save()
                with self._keyring_lock:
                    self._keyring = ring
            retired = tuple(sorted(old))
        return KeyRotation(ring.primary_id, count, retired, ring.key_ids)

    # ---------------------------------------------------------------- attempts

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
    ) -> Attempt:
        """Record a pending authorization; the PKCE verifier is encrypted like any secret."""
        attempt_id = f"att_{uuid.uuid4().hex}"
        self.keyring  # noqa: B018
        try:
            with self._write() as conn:
                # Expired attempts are garbage: clear them while we hold the lock anyway.
                stale = [r[0] for r in conn.execute("SELECT id FROM attempts WHERE expires_at < ?", (time.time(),))]
                for old in stale:
                    conn.execute("DELETE FROM secrets WHERE owner_id = ?", (old,))
                    conn.execute("DELETE FROM attempts WHERE id = ?", (old,))
                conn.execute(
                    "INSERT INTO attempts (id, state_hash, profile_id, redirect_uri, scopes, connection_id, "
                    "expires_at, created_at) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        attempt_id,
                        state_hash,
                        profile.id,
                        redirect_uri,
                        json.dumps(list(scopes)),
                        connection_id,
                        expires_at,
                        _now(),
                    ),
                )
                if verifier is not None:
                    self._put_secret(conn, attempt_id, "code_verifier", verifier)
        except sqlite3.Error as exc:
            raise self._error("writing", exc) from None
        return Attempt(attempt_id, profile.id, redirect_uri, scopes, expires_at, connection_id)

    def consume_attempt(self, state_hash: str) -> tuple[Attempt, Secret | None] | None:
        """Take the attempt with this state hash out of the store (single use): the
        attempt and its verifier, or None when no such attempt exists."""
        try:
            with self._write() as conn:
                row = conn.execute(
                    "SELECT id, profile_id, redirect_uri, scopes, expires_at, connection_id FROM attempts "
                    "WHERE state_hash = ?",
                    (state_hash,),
                ).fetchone()
                if row is None:
                    return None
                attempt = Attempt(row[0], row[1], row[2], tuple(json.loads(row[3])), float(row[4]), row[5])
                secrets = self._get_secrets(conn, attempt.id, "the pending authorization")
                conn.execute("DELETE FROM secrets WHERE owner_id = ?", (attempt.id,))
                conn.execute("DELETE FROM attempts WHERE id = ?", (attempt.id,))
        except sqlite3.Error as exc:
            raise self._error("writing", exc) from None
        return attempt, secrets.get("code_verifier")

    def profile_by_id(self, profile_id: str, *, with_secrets: bool = True) -> Profile:
        row = self._connect().execute("SELECT name FROM profiles WHERE id = ?", (profile_id,)).fetchone()
        if row is None:
            raise StoreError(f"database {self.path}: profile {profile_id} is gone")
        return self.get_profile(row[0], with_secrets=with_secrets)

    # ------------------------------------------------------------- connections

    _CONNECTION_SELECT = (
        "SELECT c.id, p.name, c.profile_id, c.provider, c.environment, c.auth_type, c.status, c.status_reason, "
        "c.token_type, c.expires_at, c.requested_scopes, c.granted_scopes, c.identity, c.provider_initiated, "
        "c.token_version, c.created_at, c.updated_at, c.refreshed_at FROM connections c "
        "JOIN profiles p ON p.id = c.profile_id"
    )

    def _event(
        self, conn: sqlite3.Connection, connection_id: str, status: ConnectionStatus, reason: str | None
    ) -> None:
        conn.execute(
            "INSERT INTO connection_events (connection_id, at, status, reason) VALUES (?,?,?,?)",
            (connection_id, _now(), status.value, reason),
        )

    def _put_tokens(self, conn: sqlite3.Connection, connection_id: str, tokens: TokenSet) -> None:
        self._put_secret(conn, connection_id, "access_token", tokens.access_token)
        if tokens.refresh_token is not None:  # a response without one keeps the old one
            self._put_secret(conn, connection_id, "refresh_token", tokens.refresh_token)

    def save_connection(
        self,
        profile: Profile,
        tokens: TokenSet,
        *,
        requested: tuple[str, ...],
        granted: tuple[str, ...],
        identity: Mapping[str, str],
        provider_initiated: bool,
        connection_id: str | None = None,
        reason: str = "authorized",
    ) -> Connection:
        """Store a new connection (or re-authorize an existing one, keeping its id) with
        its tokens, in one transaction."""
        now = _now()
        self.keyring  # noqa: B018
        try:
            with self._write() as conn:
                exists = (
                    connection_id is not None
                    and conn.execute("SELECT 1 FROM connections WHERE id = ?", (connection_id,)).fetchone() is not None
                )
                cid = connection_id or f"conn_{uuid.uuid4().hex}"
                values = (
                    profile.id,
                    profile.provider,
                    profile.environment,
                    profile.auth_type,
                    ConnectionStatus.CONNECTED.value,
                    tokens.token_type,
                    tokens.expires_at,
                    json.dumps(list(requested)),
                    json.dumps(list(granted)),
                    json.dumps(dict(identity)),
                    int(provider_initiated),
                    now,
                )
                if exists:
                    conn.execute(
                        "UPDATE connections SET profile_id = ?, provider = ?, environment = ?, auth_type = ?, "
                        "status = ?, token_type = ?, expires_at = ?, requested_scopes = ?, granted_scopes = ?, "
                        "identity = ?, provider_initiated = ?, updated_at = ?, status_reason = NULL, "
                        "token_version = token_version + 1, lock_owner = NULL, lock_until = NULL WHERE id = ?",
                        (*values, cid),
                    )
                    conn.execute("DELETE FROM secrets WHERE owner_id = ?", (cid,))
                else:
                    conn.execute(
                        "INSERT INTO connections (profile_id, provider, environment, auth_type, status, token_type, "
                        "expires_at, requested_scopes, granted_scopes, identity, provider_initiated, updated_at, id, "
                        "created_at, metadata) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,'{}')",
                        (*values, cid, now),
                    )
                self._put_tokens(conn, cid, tokens)
                self._event(conn, cid, ConnectionStatus.CONNECTED, reason)
        except sqlite3.Error as exc:
            raise self._error("writing", exc) from None
        return self.get_connection(cid)

    def get_connection(self, connection_id: str) -> Connection:
        row = self._connect().execute(self._CONNECTION_SELECT + " WHERE c.id = ?", (connection_id,)).fetchone()
        if row is None:
            from .errors import UnknownNameError

            raise UnknownNameError("connection", connection_id)
        return connection_from_row(row)

    def needing_attention(self) -> tuple[Connection, ...]:
        """Connections that cannot be used until someone acts: needs_reconnect, or a
        reconnect left pending."""
        query = self._CONNECTION_SELECT + " WHERE c.status IN (?, ?) ORDER BY c.updated_at"
        rows = self._connect().execute(query, (ConnectionStatus.NEEDS_RECONNECT.value, ConnectionStatus.PENDING.value))
        return tuple(connection_from_row(r) for r in rows)

    def list_connections(
        self,
        *,
        profile: str | None = None,
        status: ConnectionStatus | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> tuple[Connection, ...]:
        """Connections ordered by id; page with ``limit`` and ``after`` (the last id seen)."""
        query = self._CONNECTION_SELECT + " WHERE 1 = 1"
        args: list[Any] = []
        if profile is not None:
            query += " AND p.name = ?"
            args.append(profile)
        if status is not None:
            query += " AND c.status = ?"
            args.append(status.value)
        if after is not None:
            query += " AND c.id > ?"
            args.append(after)
        query += " ORDER BY c.id"
        if limit is not None:
            query += " LIMIT ?"
            args.append(int(limit))
        return tuple(connection_from_row(r) for r in self._connect().execute(query, args))

    def connection_events(self, connection_id: str) -> tuple[ConnectionEvent, ...]:
        rows = self._connect().execute(
            "SELECT at, status, reason FROM connection_events WHERE connection_id = ? ORDER BY id", (connection_id,)
        )
        return tuple(ConnectionEvent(r[0], ConnectionStatus(r[1]), r[2]) for r in rows)

    def get_tokens(self, connection_id: str) -> tuple[Connection, Secret | None, Secret | None]:
        """The connection with its access and refresh tokens, read in one snapshot."""
        with self._read() as conn:
            row = conn.execute(self._CONNECTION_SELECT + " WHERE c.id = ?", (connection_id,)).fetchone()
            if row is None:
                from .errors import UnknownNameError

                raise UnknownNameError("connection", connection_id)
            found = self._get_secrets(conn, connection_id, f"connection {connection_id!r}")
        return connection_from_row(row), found.get("access_token"), found.get("refresh_token")

    def set_status(
        self,
        connection_id: str,
        status: ConnectionStatus,
        reason: str | None,
        *,
        delete_tokens: bool = False,
        if_version: int | None = None,
    ) -> Connection:
        """Change a connection's status (and record the event). With ``if_version``, only while
        its tokens are still that version: a verdict about old tokens never overwrites a newer
        grant (a concurrent refresh or reconnect); the connection is returned unchanged then."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE connections SET status = ?, status_reason = ?, updated_at = ?, lock_owner = NULL, "
                "lock_until = NULL WHERE id = ? AND (? IS NULL OR token_version = ?)",
                (status.value, reason, _now(), connection_id, if_version, if_version),
            )
            if cur.rowcount != 1:
                return self.get_connection(connection_id)
            if delete_tokens:
                conn.execute("DELETE FROM secrets WHERE owner_id = ?", (connection_id,))
                conn.execute("UPDATE connections SET token_version = token_version + 1 WHERE id = ?", (connection_id,))
            self._event(conn, connection_id, status, reason)
        return self.get_connection(connection_id)

    def delete_connection(self, connection_id: str) -> None:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM connections WHERE id = ?", (connection_id,)).fetchone() is None:
                from .errors import UnknownNameError

                raise UnknownNameError("connection", connection_id)
            conn.execute("DELETE FROM secrets WHERE owner_id = ?", (connection_id,))
            conn.execute("DELETE FROM connection_events WHERE connection_id = ?", (connection_id,))
            conn.execute("DELETE FROM connections WHERE id = ?", (connection_id,))

    # ------------------------------------------------------- refresh single-flight

    def try_lock_refresh(self, connection_id: str, owner: str, ttl: float) -> bool:
        """Take the connection's refresh lease unless another live holder has it."""
        now = time.time()
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE connections SET lock_owner = ?, lock_until = ? WHERE id = ? AND "
                "(lock_owner IS NULL OR lock_until < ? OR lock_owner = ?)",
                (owner, now + ttl, connection_id, now, owner),
            )
            return cur.rowcount == 1

    def unlock_refresh(self, connection_id: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE connections SET lock_owner = NULL, lock_until = NULL WHERE id = ? AND lock_owner = ?",
                (connection_id, owner),
            )

    def save_refreshed_tokens(
        self, connection_id: str, expected_version: int, tokens: TokenSet, granted: tuple[str, ...]
    ) -> Connection:
        """Persist a refresh's tokens (a rotated refresh token with its access token) and
        release the lease, in one transaction, before anyone uses the new token.

        Saved only if no other token change happened since ``expected_version`` was
        read; even a lease that timed out meanwhile does not lose the new tokens.
        """
        with self._write() as conn:
            now = _now()
            cur = conn.execute(
                "UPDATE connections SET token_type = ?, expires_at = ?, granted_scopes = ?, updated_at = ?, "
                "refreshed_at = ?, token_version = token_version + 1, lock_owner = NULL, lock_until = NULL "
                "WHERE id = ? AND token_version = ?",
                (
                    tokens.token_type,
                    tokens.expires_at,
                    json.dumps(list(granted)),
                    now,
                    now,
                    connection_id,
                    expected_version,
                ),
            )
            if cur.rowcount != 1:
                raise StoreError(
                    f"connection {connection_id}: its tokens changed during the refresh; "
                    "the refresh's tokens were not stored"
                )
            self._put_tokens(conn, connection_id, tokens)
        return self.get_connection(connection_id)
