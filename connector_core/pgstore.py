"""The PostgreSQL store: the credential store shared by several processes on several hosts.

Open it with ``postgresql://user:password@host:5432/dbname`` (see
:func:`connector_core.storeurl.open_store` and ``docs/postgresql.md``).

* Where: the tables live in one PostgreSQL schema, ``connector_core`` unless the
  URL's ``schema`` parameter names another; it is created on first use.
* Schema: ``schema_migrations`` records the versions applied; forward migrations
  (:data:`MIGRATIONS`) run in one transaction each under an advisory lock, so
  replicas starting together migrate once. A schema from a newer version is refused.
* Secrets: encrypted exactly as in the SQLite store (AES-256-GCM through
  :class:`~connector_core.crypto.KeyRing`, the same associated data), so a value
  copied from one store to the other with its key id decrypts there.
* Connections: a psycopg 3 connection pool for short operations, each write one
  transaction; a second pool for the refresh locks, which live as long as a refresh.
* Single-flight refresh across hosts: :meth:`PgStore.try_lock_refresh` takes the
  connection row's lock (``SELECT ... FOR UPDATE``) in a transaction that stays
  open during the refresh, waiting at most ``lock_timeout`` for another holder.
  :meth:`PgStore.save_refreshed_tokens` writes the rotated tokens in that same
  transaction and commits, which releases the lock: whoever waited then reads the
  fresh tokens and does not refresh again. A holder that dies releases the lock
  with its database session; one that hangs is cut off after the lease's ttl
  (``idle_in_transaction_session_timeout``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from .connection import Attempt, Connection, ConnectionEvent, ConnectionStatus
from .crypto import KeyRing
from .errors import ConnectorError, UnknownNameError, ValidationError
from .secret import Secret
from .store import KeyRotation, StoreError, _aad, _now, connection_from_row, draft_columns, profile_from_row

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from .oauth import TokenSet
    from .profiles import Profile, ProfileDraft
    from .store import Store

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "CopyReport", "LockStats", "PgSettings", "PgStore"]

#: The schema the tables live in unless the URL's ``schema`` parameter names another.
DEFAULT_SCHEMA = "connector_core"
#: How long :meth:`PgStore.try_lock_refresh` waits for another refresher (seconds).
DEFAULT_LOCK_TIMEOUT = 5.0
#: How long any other statement waits for a row lock before the write fails (seconds).
WRITE_LOCK_TIMEOUT = 30.0
#: How long an operation waits for a free pooled connection (seconds).
POOL_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10
DEFAULT_POOL_MIN = 1
DEFAULT_POOL_MAX = 10
DEFAULT_LOCK_POOL_MAX = 16
#: URL query parameters that are ours, not libpq's; they are taken out of the conninfo.
STORE_PARAMS = ("schema", "pool_min_size", "pool_max_size", "lock_pool_max_size", "lock_timeout")
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: First key of the advisory lock that serialises migrations (the second is the schema's hash).
_MIGRATION_LOCK = 0x636F6E6E  # "conn"

#: Forward migrations: schema version -> statements. Append only; never edit a released one.
#: The concepts are the SQLite store's (see ``connector_core/store.py``); identifiers and
#: names sort bytewise (``COLLATE "C"``), as they do in SQLite.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        'CREATE TABLE meta (key text COLLATE "C" PRIMARY KEY, value text NOT NULL)',
        """CREATE TABLE profiles (
            id text COLLATE "C" PRIMARY KEY,
            name text COLLATE "C" NOT NULL UNIQUE,
            provider text NOT NULL,
            auth_type text NOT NULL,
            environment text NOT NULL,
            credential_set text NOT NULL,
            field_values text NOT NULL,
            scopes text NOT NULL,
            actions text NOT NULL,
            endpoints text NOT NULL DEFAULT '{}',
            created_at text COLLATE "C" NOT NULL,
            updated_at text COLLATE "C" NOT NULL
        )""",
        """CREATE TABLE connections (
            id text COLLATE "C" PRIMARY KEY,
            profile_id text COLLATE "C" NOT NULL REFERENCES profiles(id) ON DELETE RESTRICT,
            provider text NOT NULL,
            environment text NOT NULL,
            auth_type text NOT NULL DEFAULT 'oauth2',
            status text NOT NULL,
            status_reason text,
            metadata text NOT NULL DEFAULT '{}',
            token_type text,
            expires_at double precision,
            requested_scopes text NOT NULL DEFAULT '[]',
            granted_scopes text NOT NULL DEFAULT '[]',
            identity text NOT NULL DEFAULT '{}',
            provider_initiated boolean NOT NULL DEFAULT false,
            token_version bigint NOT NULL DEFAULT 0,
            refreshed_at text,
            created_at text COLLATE "C" NOT NULL,
            updated_at text COLLATE "C" NOT NULL
        )""",
        "CREATE INDEX connections_profile ON connections (profile_id)",
        "CREATE INDEX connections_status ON connections (status, updated_at)",
        """CREATE TABLE secrets (
            seq bigint GENERATED ALWAYS AS IDENTITY,
            owner_id text COLLATE "C" NOT NULL,
            name text COLLATE "C" NOT NULL,
            key_id text NOT NULL,
            nonce bytea NOT NULL,
            ciphertext bytea NOT NULL,
            PRIMARY KEY (owner_id, name)
        )""",
        "CREATE INDEX secrets_key ON secrets (key_id)",
        """CREATE TABLE attempts (
            id text COLLATE "C" PRIMARY KEY,
            state_hash text NOT NULL UNIQUE,
            profile_id text COLLATE "C" NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            redirect_uri text NOT NULL,
            scopes text NOT NULL,
            connection_id text,
            expires_at double precision NOT NULL,
            created_at text NOT NULL
        )""",
        "CREATE INDEX attempts_expires ON attempts (expires_at)",
        """CREATE TABLE connection_events (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            connection_id text COLLATE "C" NOT NULL,
            at text NOT NULL,
            status text NOT NULL,
            reason text
        )""",
        "CREATE INDEX connection_events_connection ON connection_events (connection_id, id)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)

_SELECT_PROFILE = (
    "SELECT id, name, provider, auth_type, environment, credential_set, "
    "field_values, scopes, actions, created_at, updated_at, endpoints FROM profiles"
)
#: A profile's columns, then one secret's (name, key_id, nonce, ciphertext) per row.
_PROFILE_WITH_SECRETS = (
    "SELECT p.id, p.name, p.provider, p.auth_type, p.environment, p.credential_set, p.field_values, p.scopes, "
    "p.actions, p.created_at, p.updated_at, p.endpoints, s.name, s.key_id, s.nonce, s.ciphertext "
    "FROM profiles p LEFT JOIN secrets s ON s.owner_id = p.id"
)
_CONNECTION_COLUMNS = (
    "c.id, p.name, c.profile_id, c.provider, c.environment, c.auth_type, c.status, c.status_reason, "
    "c.token_type, c.expires_at, c.requested_scopes, c.granted_scopes, c.identity, c.provider_initiated, "
    "c.token_version, c.created_at, c.updated_at, c.refreshed_at"
)
_CONNECTION_FROM = " FROM connections c JOIN profiles p ON p.id = c.profile_id"
_CONNECTION_SELECT = "SELECT " + _CONNECTION_COLUMNS + _CONNECTION_FROM
#: The connection's columns, then one secret's (name, key_id, nonce, ciphertext) per row.
_TOKENS_SELECT = (
    "SELECT "
    + _CONNECTION_COLUMNS
    + ", s.name, s.key_id, s.nonce, s.ciphertext"
    + _CONNECTION_FROM
    + " LEFT JOIN secrets s ON s.owner_id = c.id WHERE c.id = %s ORDER BY s.seq"
)
_N_CONNECTION = 18
#: A refresh's update, only while the tokens are still the version the refresher read; returns the new row.
_SAVE_REFRESH = (
    "WITH c AS (UPDATE connections SET token_type = %s, expires_at = %s, granted_scopes = %s, "  # noqa: S608
    "updated_at = %s, "
    "refreshed_at = %s, token_version = token_version + 1 WHERE id = %s AND token_version = %s RETURNING *) "
    "SELECT " + _CONNECTION_COLUMNS + " FROM c JOIN profiles p ON p.id = c.profile_id"
)


@attrs.define
class LockStats:
    """What the refresh locks of one :class:`PgStore` did (counters since it opened)."""

    #: Locks taken (each a refresh that was, or might have been, needed).
    acquired: int = 0
    #: Attempts that found the row locked by another refresher and waited for it.
    waited: int = 0
    #: Waits that ended at ``lock_timeout`` without the lock (the caller tries again later).
    timed_out: int = 0
    #: Locks released without a write: the re-read after the lock showed fresh tokens.
    released_unused: int = 0
    #: Refreshed tokens committed under the lock.
    saved: int = 0

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


@attrs.frozen
class CopyReport:
    """What :meth:`PgStore.copy_from_sqlite` copied."""

    source: str
    target: str
    store_id: str
    profiles: int
    connections: int
    secrets: int
    events: int
    attempts: int
    #: Whether every copied secret was decrypted with the keys found here before copying.
    verified: bool


@attrs.define
class _Held:
    """A refresh lock this process holds: an open transaction on a connection of the lock pool."""

    owner: str
    conn: psycopg.Connection[Any]
    #: ``time.monotonic()`` after which the lease counts as abandoned (the server has ended it).
    until: float


@attrs.frozen
class PgSettings:
    """A PostgreSQL store URL taken apart: libpq's conninfo and our own parameters."""

    conninfo: str = attrs.field(repr=False)
    display: str
    schema: str = DEFAULT_SCHEMA
    pool_min_size: int = DEFAULT_POOL_MIN
    pool_max_size: int = DEFAULT_POOL_MAX
    lock_pool_max_size: int = DEFAULT_LOCK_POOL_MAX
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT

    @classmethod
    def from_url(cls, url: str) -> PgSettings:
        """Split ``postgresql://...?schema=x&pool_max_size=20`` into conninfo and settings."""
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValidationError("store URL", f"expected postgresql://..., got a {parts.scheme or 'schemeless'} URL")
        ours: dict[str, str] = {}
        theirs: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            (ours.__setitem__(key, value) if key in STORE_PARAMS else theirs.append((key, value)))
        if not any(k == "application_name" for k, _ in theirs):
            theirs.append(("application_name", "connector-core"))
        conninfo = urlunsplit(parts._replace(query=urlencode(theirs)))
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
        shown = [(k, v) for k, v in theirs if k not in ("password", "application_name")]
        display = urlunsplit(parts._replace(netloc=netloc, query=urlencode(shown)))
        schema = ours.get("schema", DEFAULT_SCHEMA)
        if not _SCHEMA_RE.fullmatch(schema):
            raise ValidationError("store URL", f"schema must be a lower-case SQL identifier, got {schema!r}")

        def number(name: str, default: float, low: float) -> float:
            text = ours.get(name)
            if text is None:
                return default
            try:
                value = float(text)
            except ValueError:
                raise ValidationError("store URL", f"{name} must be a number, got {text!r}") from None
            if value < low:
                raise ValidationError("store URL", f"{name} must be at least {low:g}, got {text!r}")
            return value

        pool_max = int(number("pool_max_size", DEFAULT_POOL_MAX, 1))
        return cls(
            conninfo=conninfo,
            display=display,
            schema=schema,
            pool_min_size=min(int(number("pool_min_size", DEFAULT_POOL_MIN, 0)), pool_max),
            pool_max_size=pool_max,
            lock_pool_max_size=int(number("lock_pool_max_size", DEFAULT_LOCK_POOL_MAX, 1)),
            lock_timeout=number("lock_timeout", DEFAULT_LOCK_TIMEOUT, 0),
        )


def _ms(seconds: float) -> str:
    return f"{max(int(seconds * 1000), 1)}ms"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class PgStore:
    """The PostgreSQL credential store. Safe to share between threads; any number of
    processes on any number of hosts may use one database at once.

    Open it with :meth:`PgStore.open` (or :func:`connector_core.storeurl.open_store`).
    It offers every method of :class:`connector_core.store.Store`, with the same contract.
    """

    def __init__(self, url: str, *, env: Mapping[str, str] | None = None) -> None:
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            raise StoreError(
                "PostgreSQL stores need psycopg 3 and psycopg-pool: pip install 'connector-core[postgres]'"
            ) from None
        self.settings = PgSettings.from_url(url)
        self._env = dict(os.environ if env is None else env)
        self._keyring: KeyRing | None = None
        self._keyring_lock = threading.Lock()
        self._store_id: str | None = None
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._lock_pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pools_lock = threading.Lock()
        #: The refresh locks this process holds, by (connection id, thread ident).
        self._held: dict[tuple[str, int], _Held] = {}
        self._held_lock = threading.Lock()
        self.stats = LockStats()
        self._prepare()

    def __repr__(self) -> str:
        return f"<PgStore {self.path}>"

    @classmethod
    def open(cls, url: str, *, env: Mapping[str, str] | None = None) -> PgStore:
        """Open (creating the schema if needed) the store at ``url``."""
        return cls(url, env=env)

    @property
    def path(self) -> str:
        """The store's URL, its password hidden (also the name errors use)."""
        return self.settings.display

    @property
    def lock_timeout(self) -> float:
        return self.settings.lock_timeout

    # ------------------------------------------------------------- connections

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        from psycopg import sql

        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.settings.schema)))
        conn.execute(sql.SQL("SET lock_timeout TO {}").format(sql.Literal(_ms(WRITE_LOCK_TIMEOUT))))

    def _pools(self) -> tuple[ConnectionPool[psycopg.Connection[Any]], ConnectionPool[psycopg.Connection[Any]]]:
        """The pool for short operations and the pool for refresh locks, opened on first use."""
        with self._pools_lock:
            if self._pool is None or self._lock_pool is None:
                from psycopg_pool import ConnectionPool

                common: dict[str, Any] = {
                    "kwargs": {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
                    "configure": self._configure,
                    "timeout": POOL_TIMEOUT,
                    "open": True,
                }
                self._pool = ConnectionPool(
                    self.settings.conninfo,
                    min_size=self.settings.pool_min_size,
                    max_size=self.settings.pool_max_size,
                    name="connector-core",
                    **common,
                )
                self._lock_pool = ConnectionPool(
                    self.settings.conninfo,
                    min_size=0,
                    max_size=self.settings.lock_pool_max_size,
                    name="connector-core-locks",
                    max_idle=60.0,
                    **common,
                )
            return self._pool, self._lock_pool

    def close(self) -> None:
        """Release this process's refresh locks and close its pools (they reopen when used again)."""
        with self._held_lock:
            held, self._held = list(self._held.values()), {}
        for entry in held:
            self._release(entry)
        with self._pools_lock:
            pools, self._pool, self._lock_pool = (self._pool, self._lock_pool), None, None
        for pool in pools:
            if pool is not None:
                pool.close()

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, doing: str, exc: BaseException) -> StoreError:
        return StoreError(f"database {self.path}: {doing} failed ({_first_line(exc)})")

    @contextlib.contextmanager
    def _guard(self, doing: str, unique: ConnectorError | None = None) -> Iterator[None]:
        """Database and pool errors become one-line :class:`StoreError` (a unique-key
        violation becomes ``unique`` when given); ours pass through."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            yield
        except ConnectorError:
            raise
        except psycopg.errors.UniqueViolation as exc:
            if unique is None:
                raise self._error(doing, exc) from None
            raise unique from None
        except PoolTimeout:
            raise StoreError(
                f"database {self.path}: {doing} failed (no database connection within {POOL_TIMEOUT:g} s; "
                f"is the server up, or is pool_max_size={self.settings.pool_max_size} too small?)"
            ) from None
        except psycopg.errors.LockNotAvailable:
            raise StoreError(
                f"database {self.path}: {doing} failed (a row stayed locked by another process for "
                f"{WRITE_LOCK_TIMEOUT:g} s)"
            ) from None
        except psycopg.Error as exc:
            raise self._error(doing, exc) from None

    @contextlib.contextmanager
    def _conn(self, doing: str = "reading", unique: ConnectorError | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in autocommit mode: each statement sees committed data.

        Connections are not checked on their way out of the pool (a round trip each
        time); when one turns out broken (a server restart, a failover), the pool checks
        its idle ones, so that the next operation gets a working one."""
        pool, _ = self._pools()
        with self._guard(doing, unique), pool.connection() as conn:
            try:
                yield conn
            except BaseException:
                if conn.broken:
                    pool.check()
                raise

    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read statement, tried again once when its connection was broken."""
        import psycopg

        pool, _ = self._pools()
        with self._guard("reading"):
            for attempt in (1, 2):
                with pool.connection() as conn:
                    try:
                        return conn.execute(query, params).fetchall()
                    except psycopg.OperationalError:
                        if attempt == 2 or not conn.broken:
                            raise
                pool.check()
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def _read(self) -> Iterator[psycopg.Connection[Any]]:
        """A consistent snapshot for several reads."""
        with self._conn() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def _write(
        self, connection_id: str | None = None, *, unique: ConnectorError | None = None
    ) -> Iterator[psycopg.Connection[Any]]:
        """One write transaction. When this thread holds the refresh lock of
        ``connection_id``, the write joins that transaction and its commit releases the
        lock (as every write to a connection releases the SQLite store's lease)."""
        held = self._take_held(connection_id) if connection_id is not None else None
        if held is not None and not self._alive(held):
            self._release(held)  # the server ended the lock's session: write on our own
            held = None
        if held is not None:
            try:
                with self._guard("writing", unique):
                    yield held.conn
                    held.conn.execute("COMMIT")
            finally:
                self._release(held)
            return
        with self._conn("writing", unique) as conn, conn.transaction():
            yield conn

    # ------------------------------------------------------------------ schema

    def _prepare(self) -> None:
        import psycopg
        from psycopg import sql

        schema = sql.Identifier(self.settings.schema)
        try:
            conn = psycopg.connect(self.settings.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            raise self._error("connecting", exc) from None
        try:
            with conn:
                version = self._current_version(conn)
                if version > SCHEMA_VERSION:
                    raise self._newer(version)
                if version == SCHEMA_VERSION:
                    return
                with conn.transaction():
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_MIGRATION_LOCK, self.settings.schema)
                    )
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {}.schema_migrations "
                            "(version integer PRIMARY KEY, applied_at text NOT NULL)"
                        ).format(schema)
                    )
                for target in sorted(MIGRATIONS):
                    self._migrate(conn, target)
        except ConnectorError:
            raise
        except psycopg.Error as exc:
            raise self._error("preparing the schema", exc) from None

    def _current_version(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT to_regclass(%s)", (f'"{self.settings.schema}".schema_migrations',)).fetchone()
        if row is None or row[0] is None:
            return 0
        from psycopg import sql

        found = conn.execute(
            sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_migrations").format(
                sql.Identifier(self.settings.schema)
            )
        ).fetchone()
        return int(found[0]) if found else 0

    def _newer(self, version: int) -> StoreError:
        return StoreError(
            f"database {self.path}: schema version {version} is newer than this connector-core "
            f"supports ({SCHEMA_VERSION}); upgrade connector-core"
        )

    def _migrate(self, conn: psycopg.Connection[Any], target: int) -> None:
        from psycopg import sql

        schema = sql.Identifier(self.settings.schema)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_MIGRATION_LOCK, self.settings.schema))
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise self._newer(current)
            if current >= target:  # another process migrated first
                return
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
            if target == 1:
                conn.execute("INSERT INTO meta (key, value) VALUES ('store_id', %s)", (uuid.uuid4().hex,))
                conn.execute("INSERT INTO meta (key, value) VALUES ('created_at', %s)", (_now(),))
            conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)", (target, _now()))

    @property
    def schema_version(self) -> int:
        rows = self._fetch("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(rows[0][0])

    @property
    def store_id(self) -> str:
        """A random id naming this store (its key file is named after it)."""
        if self._store_id is None:
            rows = self._fetch("SELECT value FROM meta WHERE key = 'store_id'")
            if not rows:
                raise StoreError(f"database {self.path}: the store has no id; not a connector-core schema?")
            self._store_id = str(rows[0][0])
        return self._store_id

    def _set_store_id(self, conn: psycopg.Connection[Any], store_id: str) -> None:
        """Give the store another id (``connector store migrate`` carries the source's over)."""
        conn.execute("UPDATE meta SET value = %s WHERE key = 'store_id'", (store_id,))
        with self._keyring_lock:
            self._store_id = store_id
            self._keyring = None

    # ----------------------------------------------------------------- secrets

    @property
    def keyring(self) -> KeyRing:
        """The store's key ring, loaded on first use.

        A key file is generated only while the store holds no secret: a host that
        joins a store already in use must be given its keys (``CONNECTOR_CORE_SECRET_KEY``
        or the key file), never make new ones that the other hosts lack.
        """
        with self._keyring_lock:
            if self._keyring is None:
                store_id = self.store_id
                used = self._fetch("SELECT EXISTS (SELECT 1 FROM secrets)")[0][0]
                self._keyring = KeyRing.load(store_id, self._env, create=not used)
            return self._keyring

    def _put_secret(self, conn: psycopg.Connection[Any], owner_id: str, name: str, value: Secret) -> None:
        kid, nonce, ciphertext = self.keyring.encrypt(value.reveal(), _aad(owner_id, name))
        conn.execute(
            "INSERT INTO secrets (owner_id, name, key_id, nonce, ciphertext) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (owner_id, name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, "
            "ciphertext = excluded.ciphertext",
            (owner_id, name, kid, nonce, ciphertext),
        )

    def _decrypt(self, owner_id: str, rows: Sequence[Sequence[Any]], what: str) -> dict[str, Secret]:
        """``rows`` of (name, key_id, nonce, ciphertext), in storage order."""
        found: dict[str, Secret] = {}
        for name, kid, nonce, ciphertext in rows:
            found[name] = Secret(
                self.keyring.decrypt(
                    kid, bytes(nonce), bytes(ciphertext), _aad(owner_id, name), what=f"{name} of {what}"
                )
            )
        return found

    def _get_secrets(self, conn: psycopg.Connection[Any], owner_id: str, what: str) -> dict[str, Secret]:
        rows = conn.execute(
            "SELECT name, key_id, nonce, ciphertext FROM secrets WHERE owner_id = %s ORDER BY seq", (owner_id,)
        ).fetchall()
        return self._decrypt(owner_id, rows, what)

    # ---------------------------------------------------------------- profiles

    @contextlib.contextmanager
    def _writing_profile(self, draft: ProfileDraft) -> Iterator[psycopg.Connection[Any]]:
        """A write transaction for ``draft``, its secrets included; a taken name is a ValidationError."""
        self.keyring  # noqa: B018 - load the keys before the transaction starts
        taken = ValidationError("name", f"a profile named {draft.name!r} already exists")
        with self._write(unique=taken) as conn:
            yield conn

    def create_profile(self, draft: ProfileDraft) -> Profile:
        """Store a validated profile (see :func:`~connector_core.validate_profile`)."""
        profile_id = f"prof_{uuid.uuid4().hex}"
        now = _now()
        with self._writing_profile(draft) as conn:
            conn.execute(
                "INSERT INTO profiles (name, auth_type, environment, credential_set, field_values, scopes, "
                "actions, endpoints, id, provider, created_at, updated_at) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (*draft_columns(draft), profile_id, draft.provider, now, now),
            )
            for name, value in draft.secrets:
                self._put_secret(conn, profile_id, name, value)
        return self.get_profile(draft.name)

    def update_profile(self, name: str, draft: ProfileDraft) -> Profile:
        """Replace profile ``name`` with ``draft`` (which may rename it), in one transaction."""
        with self._writing_profile(draft) as conn:
            row = conn.execute("SELECT id, scopes FROM profiles WHERE name = %s FOR UPDATE", (name,)).fetchone()
            if row is None:
                raise self._unknown_profile(conn, name)
            profile_id, old_scopes = row
            if set(json.loads(old_scopes)) != set(draft.scopes):
                # Some providers need a re-install for new scopes: flag every connection.
                self._mark_profile_connections(conn, profile_id, "scopes changed")
            conn.execute(
                "UPDATE profiles SET name = %s, auth_type = %s, environment = %s, credential_set = %s, "
                "field_values = %s, scopes = %s, actions = %s, endpoints = %s, updated_at = %s WHERE id = %s",
                (*draft_columns(draft), _now(), profile_id),
            )
            conn.execute(
                "DELETE FROM secrets WHERE owner_id = %s AND NOT (name = ANY(%s))",
                (profile_id, [n for n, _ in draft.secrets]),
            )
            for secret_name, value in draft.secrets:
                self._put_secret(conn, profile_id, secret_name, value)
        return self.get_profile(draft.name)

    def _mark_profile_connections(self, conn: psycopg.Connection[Any], profile_id: str, reason: str) -> None:
        now = _now()
        ids = conn.execute(
            "UPDATE connections SET status = %s, status_reason = %s, updated_at = %s "
            "WHERE profile_id = %s AND status IN (%s, %s) RETURNING id",
            (
                ConnectionStatus.NEEDS_RECONNECT.value,
                reason,
                now,
                profile_id,
                ConnectionStatus.CONNECTED.value,
                ConnectionStatus.PENDING.value,
            ),
        ).fetchall()
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO connection_events (connection_id, at, status, reason) VALUES (%s,%s,%s,%s)",
                [(cid, now, ConnectionStatus.NEEDS_RECONNECT.value, reason) for (cid,) in sorted(ids)],
            )

    def _unknown_profile(self, conn: psycopg.Connection[Any], name: str) -> ConnectorError:
        names = [r[0] for r in conn.execute("SELECT name FROM profiles ORDER BY name").fetchall()]
        return UnknownNameError("profile", name, names)

    def get_profile(self, name: str, *, with_secrets: bool = True) -> Profile:
        """The profile ``name``; its secrets decrypted unless ``with_secrets=False``."""
        rows = self._fetch(_PROFILE_WITH_SECRETS + " WHERE p.name = %s ORDER BY s.seq", (name,))
        if not rows:
            with self._conn() as conn:
                raise self._unknown_profile(conn, name)
        return self._profile_from_rows(rows, with_secrets)

    def _profile_from_rows(self, rows: Sequence[Sequence[Any]], with_secrets: bool) -> Profile:
        secret_rows = [r[12:] for r in rows if r[12] is not None]
        names = tuple(r[0] for r in secret_rows)
        secrets = self._decrypt(rows[0][0], secret_rows, f"profile {rows[0][1]!r}") if with_secrets else None
        return profile_from_row(rows[0], names, secrets)

    def profile_by_id(self, profile_id: str, *, with_secrets: bool = True) -> Profile:
        rows = self._fetch(_PROFILE_WITH_SECRETS + " WHERE p.id = %s ORDER BY s.seq", (profile_id,))
        if not rows:
            raise StoreError(f"database {self.path}: profile {profile_id} is gone")
        return self._profile_from_rows(rows, with_secrets)

    def list_profiles(self, provider: str | None = None) -> tuple[Profile, ...]:
        """Every profile (without secret values), sorted by name. Needs no key."""
        query = _SELECT_PROFILE
        args: tuple[str, ...] = ()
        if provider is not None:
            query += " WHERE provider = %s"
            args = (provider,)
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY name", args).fetchall()
            names: dict[str, list[str]] = {}
            for owner, secret_name in conn.execute(
                "SELECT s.owner_id, s.name FROM secrets s JOIN profiles p ON p.id = s.owner_id ORDER BY s.seq"
            ).fetchall():
                names.setdefault(owner, []).append(secret_name)
        return tuple(profile_from_row(r, tuple(names.get(r[0], ()))) for r in rows)

    def profile_connection_count(self, name: str) -> int:
        rows = self._fetch(
            "SELECT count(*) FROM connections c JOIN profiles p ON p.id = c.profile_id WHERE p.name = %s", (name,)
        )
        return int(rows[0][0])

    def delete_profile(self, name: str, *, force: bool = False) -> int:
        """Delete profile ``name``; refuses while connections use it unless ``force``,
        which deletes those connections and their tokens too. Returns how many
        connections were deleted."""
        with self._write() as conn:
            row = conn.execute("SELECT id FROM profiles WHERE name = %s FOR UPDATE", (name,)).fetchone()
            if row is None:
                raise self._unknown_profile(conn, name)
            profile_id = row[0]
            connection_ids = [
                r[0] for r in conn.execute("SELECT id FROM connections WHERE profile_id = %s", (profile_id,))
            ]
            if connection_ids and not force:
                raise ValidationError(
                    "profile",
                    f"{name!r} is used by {len(connection_ids)} connection(s); delete them first "
                    "or pass --force to delete them with it",
                )
            attempt_ids = [r[0] for r in conn.execute("SELECT id FROM attempts WHERE profile_id = %s", (profile_id,))]
            owners = [*connection_ids, *attempt_ids, profile_id]
            conn.execute("DELETE FROM secrets WHERE owner_id = ANY(%s)", (owners,))
            conn.execute("DELETE FROM connection_events WHERE connection_id = ANY(%s)", (connection_ids,))
            conn.execute("DELETE FROM connections WHERE profile_id = %s", (profile_id,))
            conn.execute("DELETE FROM profiles WHERE id = %s", (profile_id,))
        return len(connection_ids)

    # -------------------------------------------------------------------- keys

    def key_usage(self) -> dict[str, int]:
        """How many stored values each key id encrypts."""
        rows = self._fetch("SELECT key_id, count(*) FROM secrets GROUP BY key_id")
        return {str(k): int(n) for k, n in rows}

    def rotate_keys(self, *, retire: bool = False, new_key: bool = True) -> KeyRotation:
        """Re-encrypt every stored value under a new primary key, in one transaction
        (see :meth:`connector_core.store.Store.rotate_keys`). Every host that uses the
        store needs the new key: with several hosts, keep the keys in
        ``CONNECTOR_CORE_SECRET_KEY`` (or one shared key file)."""
        from .crypto import CryptoError

        ring = self.keyring
        if ring.path is not None and new_key:
            ring = ring.with_new_primary()
            ring.save()
            with self._keyring_lock:
                self._keyring = ring
        count = 0
        with self._write() as conn:
            rows = conn.execute(
                "SELECT owner_id, name, key_id, nonce, ciphertext FROM secrets ORDER BY seq FOR UPDATE"
            ).fetchall()
            owners = dict(
                conn.execute(
                    "SELECT id, 'profile ' || quote_literal(name) FROM profiles UNION ALL "
                    "SELECT id, 'connection ' || quote_literal(id) FROM connections"
                ).fetchall()
            )
            updates = []
            for owner_id, name, kid, nonce, ciphertext in rows:
                what = f"{name} of {owners.get(owner_id, repr(owner_id))}"
                plain = ring.decrypt(kid, bytes(nonce), bytes(ciphertext), _aad(owner_id, name), what=what)
                new_kid, new_nonce, new_ct = ring.encrypt(plain, _aad(owner_id, name))
                updates.append((new_kid, new_nonce, new_ct, owner_id, name))
                count += 1
            with conn.cursor() as cur:
                cur.executemany(
                    "UPDATE secrets SET key_id = %s, nonce = %s, ciphertext = %s WHERE owner_id = %s AND name = %s",
                    updates,
                )
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
        with self._write() as conn:
            # Expired attempts are garbage: clear them on the way.
            stale = [
                r[0] for r in conn.execute("DELETE FROM attempts WHERE expires_at < %s RETURNING id", (time.time(),))
            ]
            if stale:
                conn.execute("DELETE FROM secrets WHERE owner_id = ANY(%s)", (stale,))
            conn.execute(
                "INSERT INTO attempts (id, state_hash, profile_id, redirect_uri, scopes, connection_id, "
                "expires_at, created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
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
        return Attempt(attempt_id, profile.id, redirect_uri, scopes, expires_at, connection_id)

    def consume_attempt(self, state_hash: str) -> tuple[Attempt, Secret | None] | None:
        """Take the attempt with this state hash out of the store (single use, even when
        several hosts receive the same callback): the attempt and its verifier, or None."""
        with self._write() as conn:
            row = conn.execute(
                "DELETE FROM attempts WHERE state_hash = %s "
                "RETURNING id, profile_id, redirect_uri, scopes, expires_at, connection_id",
                (state_hash,),
            ).fetchone()
            if row is None:
                return None
            attempt = Attempt(row[0], row[1], row[2], tuple(json.loads(row[3])), float(row[4]), row[5])
            secret_rows = conn.execute(
                "DELETE FROM secrets WHERE owner_id = %s RETURNING seq, name, key_id, nonce, ciphertext",
                (attempt.id,),
            ).fetchall()
            secrets = self._decrypt(attempt.id, [r[1:] for r in sorted(secret_rows)], "the pending authorization")
        return attempt, secrets.get("code_verifier")

    # ------------------------------------------------------------- connections

    @staticmethod
    def _event(conn: psycopg.Connection[Any], connection_id: str, status: ConnectionStatus, reason: str | None) -> None:
        conn.execute(
            "INSERT INTO connection_events (connection_id, at, status, reason) VALUES (%s,%s,%s,%s)",
            (connection_id, _now(), status.value, reason),
        )

    def _put_tokens(self, conn: psycopg.Connection[Any], connection_id: str, tokens: TokenSet) -> None:
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
        cid = connection_id or f"conn_{uuid.uuid4().hex}"
        with self._write(cid) as conn:
            exists = (
                connection_id is not None
                and conn.execute("SELECT 1 FROM connections WHERE id = %s FOR UPDATE", (cid,)).fetchone() is not None
            )
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
                bool(provider_initiated),
                now,
            )
            if exists:
                conn.execute(
                    "UPDATE connections SET profile_id = %s, provider = %s, environment = %s, auth_type = %s, "
                    "status = %s, token_type = %s, expires_at = %s, requested_scopes = %s, granted_scopes = %s, "
                    "identity = %s, provider_initiated = %s, updated_at = %s, status_reason = NULL, "
                    "token_version = token_version + 1 WHERE id = %s",
                    (*values, cid),
                )
                conn.execute("DELETE FROM secrets WHERE owner_id = %s", (cid,))
            else:
                conn.execute(
                    "INSERT INTO connections (profile_id, provider, environment, auth_type, status, token_type, "
                    "expires_at, requested_scopes, granted_scopes, identity, provider_initiated, updated_at, id, "
                    "created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (*values, cid, now),
                )
            self._put_tokens(conn, cid, tokens)
            self._event(conn, cid, ConnectionStatus.CONNECTED, reason)
        return self.get_connection(cid)

    def get_connection(self, connection_id: str) -> Connection:
        rows = self._fetch(_CONNECTION_SELECT + " WHERE c.id = %s", (connection_id,))
        if not rows:
            raise UnknownNameError("connection", connection_id)
        return connection_from_row(rows[0])

    def needing_attention(self) -> tuple[Connection, ...]:
        """Connections that cannot be used until someone acts: needs_reconnect, or a
        reconnect left pending."""
        rows = self._fetch(
            _CONNECTION_SELECT + " WHERE c.status IN (%s, %s) ORDER BY c.updated_at, c.id",
            (ConnectionStatus.NEEDS_RECONNECT.value, ConnectionStatus.PENDING.value),
        )
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
        query = _CONNECTION_SELECT + " WHERE true"
        args: list[Any] = []
        if profile is not None:
            query += " AND p.name = %s"
            args.append(profile)
        if status is not None:
            query += " AND c.status = %s"
            args.append(status.value)
        if after is not None:
            query += " AND c.id > %s"
            args.append(after)
        query += " ORDER BY c.id"
        if limit is not None:
            query += " LIMIT %s"
            args.append(int(limit))
        rows = self._fetch(query, args)
        return tuple(connection_from_row(r) for r in rows)

    def connection_events(self, connection_id: str) -> tuple[ConnectionEvent, ...]:
        rows = self._fetch(
            "SELECT at, status, reason FROM connection_events WHERE connection_id = %s ORDER BY id", (connection_id,)
        )
        return tuple(ConnectionEvent(r[0], ConnectionStatus(r[1]), r[2]) for r in rows)

    def get_tokens(self, connection_id: str) -> tuple[Connection, Secret | None, Secret | None]:
        """The connection with its access and refresh tokens, read in one statement (one snapshot)."""
        rows = self._fetch(_TOKENS_SELECT, (connection_id,))
        if not rows:
            raise UnknownNameError("connection", connection_id)
        secret_rows = [r[_N_CONNECTION:] for r in rows if r[_N_CONNECTION] is not None]
        found = self._decrypt(connection_id, secret_rows, f"connection {connection_id!r}")
        return connection_from_row(rows[0]), found.get("access_token"), found.get("refresh_token")

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
        its tokens are still that version; the connection is returned unchanged otherwise."""
        with self._write(connection_id) as conn:
            cur = conn.execute(
                "UPDATE connections SET status = %s, status_reason = %s, updated_at = %s, "
                "token_version = token_version + %s WHERE id = %s AND (%s::bigint IS NULL OR token_version = %s)",
                (status.value, reason, _now(), int(delete_tokens), connection_id, if_version, if_version),
            )
            if cur.rowcount == 1:
                if delete_tokens:
                    conn.execute("DELETE FROM secrets WHERE owner_id = %s", (connection_id,))
                self._event(conn, connection_id, status, reason)
        return self.get_connection(connection_id)

    def delete_connection(self, connection_id: str) -> None:
        with self._write(connection_id) as conn:
            found = conn.execute("DELETE FROM connections WHERE id = %s RETURNING id", (connection_id,)).fetchone()
            if found is None:
                raise UnknownNameError("connection", connection_id)
            conn.execute("DELETE FROM secrets WHERE owner_id = %s", (connection_id,))
            conn.execute("DELETE FROM connection_events WHERE connection_id = %s", (connection_id,))

    # ------------------------------------------------------- refresh single-flight

    def _take_held(self, connection_id: str, owner: str | None = None) -> _Held | None:
        """Remove and return this thread's lock on ``connection_id`` (only ``owner``'s, when given)."""
        key = (connection_id, threading.get_ident())
        with self._held_lock:
            held = self._held.get(key)
            if held is None or (owner is not None and held.owner != owner):
                return None
            del self._held[key]
            return held

    @staticmethod
    def _alive(held: _Held) -> bool:
        """Whether the lock's session still stands (one round trip)."""
        import psycopg

        try:
            held.conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _release(self, held: _Held) -> None:
        """End the lock's transaction (rolling back anything uncommitted) and return its connection."""
        import psycopg

        _, lock_pool = self._pools()
        with contextlib.suppress(psycopg.Error):
            if not held.conn.closed:
                held.conn.execute("ROLLBACK")
        lock_pool.putconn(held.conn)

    def try_lock_refresh(self, connection_id: str, owner: str, ttl: float) -> bool:
        """Take the connection row's lock for a refresh, waiting at most ``lock_timeout``
        for another refresher (on any host) to finish. True when taken (again, for the
        same ``owner``); False when another holder kept it, or the connection is gone.

        The lock is a transaction left open on a connection of the lock pool; it ends
        with :meth:`save_refreshed_tokens` (commit), any write to the connection from
        this thread, :meth:`unlock_refresh` (rollback), the holder's death, or ``ttl``
        seconds idle (the server ends the session).
        """
        import psycopg
        from psycopg import sql
        from psycopg_pool import PoolTimeout

        me = threading.get_ident()
        key = (connection_id, me)
        with self._held_lock:
            held = self._held.get(key)
            stale = held is not None and time.monotonic() > held.until  # abandoned: the server ended it by now
            if held is not None and stale:
                del self._held[key]
            elif held is not None and held.owner == owner:
                held.until = time.monotonic() + ttl
                return True
            mine = sum(1 for (_, thread) in self._held if thread == me)
            if (held is not None and not stale) or mine >= self.settings.lock_pool_max_size:
                # Waiting would block the very thread (or event loop) that must release the
                # lock, or the lock pool's connections: refuse now, the caller tries again.
                self.stats.waited += 1
                self.stats.timed_out += 1
                return False
        if held is not None:  # stale, and this thread's own: nothing else uses its connection
            self._release(held)
        _, lock_pool = self._pools()
        try:
            conn = lock_pool.getconn(timeout=max(self.settings.lock_timeout, 0.05))
        except PoolTimeout:
            with self._held_lock:
                self.stats.timed_out += 1
            return False
        waited = False
        try:
            with self._guard("locking"):
                # The lease's ttl: the server ends the session, and so the lock, after that long idle.
                begin = sql.SQL("BEGIN; SET LOCAL idle_in_transaction_session_timeout = {}").format(
                    sql.Literal(_ms(max(ttl, 1.0)))
                )
                conn.execute(begin)
                try:
                    row = conn.execute(
                        "SELECT token_version FROM connections WHERE id = %s FOR UPDATE NOWAIT", (connection_id,)
                    ).fetchone()
                except psycopg.errors.LockNotAvailable:
                    waited = True  # another refresher holds it: wait for it, at most lock_timeout
                    conn.execute(
                        sql.SQL("ROLLBACK; {}; SET LOCAL lock_timeout = {}").format(
                            begin, sql.Literal(_ms(self.settings.lock_timeout))
                        )
                    )
                    try:
                        row = conn.execute(
                            "SELECT token_version FROM connections WHERE id = %s FOR UPDATE", (connection_id,)
                        ).fetchone()
                    except psycopg.errors.LockNotAvailable:
                        row = None
                        with self._held_lock:
                            self.stats.timed_out += 1
        except BaseException:
            self._putback(lock_pool, conn)
            raise
        with self._held_lock:
            if waited:
                self.stats.waited += 1
            if row is None:
                taken = False
            else:
                self._held[key] = _Held(owner, conn, time.monotonic() + ttl)
                self.stats.acquired += 1
                taken = True
        if not taken:
            self._putback(lock_pool, conn)
        return taken

    @staticmethod
    def _putback(pool: ConnectionPool[psycopg.Connection[Any]], conn: psycopg.Connection[Any]) -> None:
        import psycopg

        with contextlib.suppress(psycopg.Error):
            if not conn.closed:
                conn.execute("ROLLBACK")
        pool.putconn(conn)

    def unlock_refresh(self, connection_id: str, owner: str) -> None:
        """Release ``owner``'s lock without writing (nothing was refreshed)."""
        held = self._take_held(connection_id, owner)
        if held is None:
            with self._held_lock:  # taken by this owner on another thread
                found = [k for k, h in self._held.items() if k[0] == connection_id and h.owner == owner]
                if not found:
                    return
                held = self._held.pop(found[0])
        with self._held_lock:
            self.stats.released_unused += 1
        self._release(held)

    def save_refreshed_tokens(
        self, connection_id: str, expected_version: int, tokens: TokenSet, granted: tuple[str, ...]
    ) -> Connection:
        """Persist a refresh's tokens (a rotated refresh token with its access token) and
        release the lock, in the lock's own transaction, before anyone uses the new token.

        Saved only if no other token change happened since ``expected_version`` was
        read; even a lock that was cut off meanwhile does not lose the new tokens (they
        are then written in a transaction of their own, under the same check).
        """
        import psycopg

        self.keyring  # noqa: B018
        held = self._take_held(connection_id)
        if held is not None:
            try:
                saved = self._write_refresh(held.conn, connection_id, expected_version, tokens, granted)
                held.conn.execute("COMMIT")
            except psycopg.Error as exc:
                if not (held.conn.closed or held.conn.broken):
                    raise self._error("writing", exc) from None
                # The server ended the session (the lease's ttl, a restart): the lock is gone,
                # the tokens are not. Write them in a transaction of our own below.
            else:
                with self._held_lock:
                    self.stats.saved += 1
                return saved
            finally:
                self._release(held)
        with self._write() as conn:
            saved = self._write_refresh(conn, connection_id, expected_version, tokens, granted)
        with self._held_lock:
            self.stats.saved += 1
        return saved

    def _write_refresh(
        self,
        conn: psycopg.Connection[Any],
        connection_id: str,
        expected_version: int,
        tokens: TokenSet,
        granted: tuple[str, ...],
    ) -> Connection:
        """The refresh's writes, in one round trip; the caller commits (or rolls back on an error)."""
        now = _now()
        with conn.pipeline():
            cur = conn.execute(
                _SAVE_REFRESH,
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
            self._put_tokens(conn, connection_id, tokens)
        row = cur.fetchone()
        if row is None:  # the version moved on: the caller's transaction rolls the secrets back too
            raise StoreError(
                f"connection {connection_id}: its tokens changed during the refresh; "
                "the refresh's tokens were not stored"
            )
        return connection_from_row(row)

    # --------------------------------------------------------- copying a store

    #: The tables a store keeps data in; the target of a copy must hold none.
    _DATA_TABLES = ("profiles", "connections", "secrets", "attempts", "connection_events")

    def copy_from_sqlite(self, source: Store, *, verify: bool = True) -> CopyReport:
        """Copy a SQLite store into this one, which must be empty, in one transaction.

        Ciphertexts are copied as they are, with their key ids, and this store takes the
        source's store id: the keys that decrypt the source (its key file, named after
        the store id, or ``CONNECTOR_CORE_SECRET_KEY``) decrypt the copy. With ``verify``
        every secret is first decrypted with the keys found here, so a copy nobody could
        read is refused before anything is written. Refresh leases are not copied.
        """
        from .crypto import KeyRing

        with source._read() as src:
            profiles = src.execute(
                "SELECT id, name, provider, auth_type, environment, credential_set, field_values, scopes, actions, "
                "endpoints, created_at, updated_at FROM profiles ORDER BY rowid"
            ).fetchall()
            connections = src.execute(
                "SELECT id, profile_id, provider, environment, auth_type, status, status_reason, metadata, "
                "token_type, expires_at, requested_scopes, granted_scopes, identity, provider_initiated, "
                "token_version, refreshed_at, created_at, updated_at FROM connections ORDER BY rowid"
            ).fetchall()
            secrets = src.execute(
                "SELECT owner_id, name, key_id, nonce, ciphertext FROM secrets ORDER BY rowid"
            ).fetchall()
            attempts = src.execute(
                "SELECT id, state_hash, profile_id, redirect_uri, scopes, connection_id, expires_at, created_at "
                "FROM attempts ORDER BY rowid"
            ).fetchall()
            events = src.execute(
                "SELECT id, connection_id, at, status, reason FROM connection_events ORDER BY id"
            ).fetchall()
            created = src.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()
        store_id = source.store_id
        if verify and secrets:
            ring = KeyRing.load(store_id, self._env, create=False)
            names = {row[0]: f"profile {row[1]!r}" for row in profiles}
            names.update({row[0]: f"connection {row[0]!r}" for row in connections})
            for owner_id, name, kid, nonce, ciphertext in secrets:
                what = f"{name} of {names.get(owner_id, repr(owner_id))}"
                ring.decrypt(kid, bytes(nonce), bytes(ciphertext), _aad(owner_id, name), what=what)
        with self._write() as conn:
            conn.execute(
                "LOCK TABLE meta, profiles, connections, secrets, attempts, connection_events "
                "IN SHARE ROW EXCLUSIVE MODE"
            )
            counts = {
                table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]  # noqa: S608 - constant names
                for table in self._DATA_TABLES
            }
            if any(counts.values()):
                held = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in counts.items() if n)
                raise ValidationError(
                    "--to", f"the store at {self.path} is not empty ({held}); copy only into an empty store"
                )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO profiles (id, name, provider, auth_type, environment, credential_set, "
                    "field_values, scopes, actions, endpoints, created_at, updated_at) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    [tuple(r) for r in profiles],
                )
                cur.executemany(
                    "INSERT INTO connections (id, profile_id, provider, environment, auth_type, status, "
                    "status_reason, metadata, token_type, expires_at, requested_scopes, granted_scopes, identity, "
                    "provider_initiated, token_version, refreshed_at, created_at, updated_at) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    [(*r[:13], bool(r[13]), *r[14:]) for r in connections],
                )
                cur.executemany(
                    "INSERT INTO secrets (owner_id, name, key_id, nonce, ciphertext) VALUES (%s,%s,%s,%s,%s)",
                    [(o, n, k, bytes(nonce), bytes(ct)) for o, n, k, nonce, ct in secrets],
                )
                cur.executemany(
                    "INSERT INTO attempts (id, state_hash, profile_id, redirect_uri, scopes, connection_id, "
                    "expires_at, created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                    [tuple(r) for r in attempts],
                )
                cur.executemany(
                    "INSERT INTO connection_events (id, connection_id, at, status, reason) VALUES (%s,%s,%s,%s,%s)",
                    [tuple(r) for r in events],
                )
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('connection_events', 'id'), "
                "(SELECT coalesce(max(id), 0) + 1 FROM connection_events), false)"
            )
            if created is not None:
                conn.execute("UPDATE meta SET value = %s WHERE key = 'created_at'", (created[0],))
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('copied_from', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (f"{source.path} at {_now()}",),
            )
            self._set_store_id(conn, store_id)
        return CopyReport(
            source=str(source.path),
            target=self.path,
            store_id=store_id,
            profiles=len(profiles),
            connections=len(connections),
            secrets=len(secrets),
            events=len(events),
            attempts=len(attempts),
            verified=verify,
        )
