"""The PostgreSQL store, shared by processes on several hosts (``postgresql://...``, see ``docs/postgresql.md``).

* Where: the tables live in one PostgreSQL schema, ``connector_core`` unless the
  URL's ``schema`` parameter names another; it is created on first use.
* Schema: ``schema_migrations`` records the versions applied; forward migrations
  (:data:`MIGRATIONS`) run in one transaction each under an advisory lock, so
  replicas starting together migrate once. A schema from a newer version is refused.
* Connections: a psycopg 3 connection pool for short operations, each write one
  transaction; a second pool for the refresh locks, which live as long as a refresh.
* Single-flight refresh across hosts: the lease is the connection row's lock
  (``SELECT ... FOR UPDATE``, waiting at most ``lock_timeout``) in a transaction held open
  on the lock pool; the lease's ``save`` (or any write by the holder's thread to the
  connection) commits in it, which releases the lock. A hung holder's session is ended
  after the ttl (``idle_in_transaction_session_timeout``).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlunsplit

import attrs

from ..errors import ConnectorError, ValidationError
from .contract import LockStats, StoreError
from .sql import Dialect, SqlStore, Taken, Tx, now
from .url import POSTGRES_SCHEMES, shown_url, split_url

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from ..connection import Connection
    from ..oauth import TokenSet

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "LockStats", "PgSettings", "PgStore"]

#: The schema the tables live in unless the URL's ``schema`` parameter names another.
DEFAULT_SCHEMA = "connector_core"
#: How long taking a refresh lease waits for another refresher (seconds).
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
STORE_PARAMS = ("schema", "pool_min_size", "pool_max_size", "lock_pool_max_size", "lock_timeout", "allow_plaintext")
#: The ``sslmode`` values that never send a password or a secret over plain TCP.
TLS_MODES = ("require", "verify-ca", "verify-full")
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: First key of the advisory lock that serialises migrations (the second is the schema's hash).
_MIGRATION_LOCK = 0x636F6E6E  # "conn"

#: Forward migrations: schema version -> statements. Append only; never edit a released one.
#: The concepts are the SQLite store's (see :mod:`.sqlite`); identifiers and
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
    2: (
        # Each row's seal: a MAC of the columns that say where its secrets go (see SqlStore._seal).
        "ALTER TABLE profiles ADD COLUMN seal text",
        "ALTER TABLE connections ADD COLUMN seal text",
    ),
    3: (
        # Whose a connection is: the platform's end user (NULL: unclaimed), organisation, tags.
        'ALTER TABLE connections ADD COLUMN end_user_id text COLLATE "C"',
        "ALTER TABLE connections ADD COLUMN end_user_email text",
        "ALTER TABLE connections ADD COLUMN end_user_name text",
        'ALTER TABLE connections ADD COLUMN organisation text COLLATE "C"',
        "ALTER TABLE connections ADD COLUMN tags text NOT NULL DEFAULT '[]'",
        "CREATE INDEX connections_end_user ON connections (end_user_id)",
        # Whose the connection an authorization makes will be.
        "ALTER TABLE attempts ADD COLUMN owner text",
    ),
    4: (
        # Connect sessions (see the SQLite store's migration 5).
        """CREATE TABLE connect_sessions (
            id text COLLATE "C" PRIMARY KEY,
            token_hash text NOT NULL UNIQUE,
            end_user_id text COLLATE "C" NOT NULL,
            end_user_email text,
            end_user_name text,
            organisation text,
            tags text NOT NULL DEFAULT '[]',
            providers text NOT NULL,
            profile text,
            scopes text NOT NULL DEFAULT '[]',
            connection_id text,
            redirect_url text,
            created_at text COLLATE "C" NOT NULL,
            expires_at double precision NOT NULL,
            status text NOT NULL,
            picked_provider text,
            picked_profile text,
            result_connection_id text,
            error_code text,
            error_message text,
            used_at text,
            finished_at text,
            seal text
        )""",
        "CREATE INDEX connect_sessions_end_user ON connect_sessions (end_user_id, id)",
        "CREATE INDEX connect_sessions_expires ON connect_sessions (expires_at)",
    ),
    5: (
        # A session that makes a new connection (see the SQLite store's migration 6): 1 or NULL, an
        # integer as SQLite keeps it, so that a seal copied as it is from there holds here too.
        "ALTER TABLE connect_sessions ADD COLUMN separate integer",
    ),
    6: (
        # Lifecycle events (connector_core.events), written in the transaction of their change;
        # seq is the order readers page in (and the outbox's), id the stable one receivers see.
        """CREATE TABLE events (
            seq bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            id text COLLATE "C" NOT NULL UNIQUE,
            type text COLLATE "C" NOT NULL,
            at text COLLATE "C" NOT NULL,
            connection_id text COLLATE "C",
            data text NOT NULL
        )""",
        "CREATE INDEX events_connection ON events (connection_id, seq)",
        "CREATE INDEX events_at ON events (at)",
    ),
    7: (
        # Webhook endpoints, the outbox and the delivery log (see the SQLite store's migration 8).
        # allow_private and replay are integers as SQLite keeps them: a seal copied from there holds.
        """CREATE TABLE webhook_endpoints (
            id text COLLATE "C" PRIMARY KEY,
            url text NOT NULL,
            allow_private integer NOT NULL DEFAULT 0,
            event_types text NOT NULL DEFAULT '[]',
            seal text,
            created_at text COLLATE "C" NOT NULL,
            updated_at text COLLATE "C" NOT NULL,
            disabled_at text,
            disabled_reason text
        )""",
        """CREATE TABLE webhook_deliveries (
            seq bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            id text COLLATE "C" NOT NULL UNIQUE,
            event_id text COLLATE "C" NOT NULL,
            endpoint_id text COLLATE "C" NOT NULL,
            status text COLLATE "C" NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at double precision,
            claimed_by text,
            claimed_until double precision,
            replay integer NOT NULL DEFAULT 0,
            created_at text COLLATE "C" NOT NULL,
            finished_at text
        )""",
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'",
        "CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, seq)",
        "CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id)",
        """CREATE TABLE webhook_attempts (
            delivery_id text COLLATE "C" NOT NULL,
            attempt integer NOT NULL,
            at text NOT NULL,
            status_code integer,
            latency_ms double precision,
            response text,
            error text,
            PRIMARY KEY (delivery_id, attempt)
        )""",
    ),
    8: (
        # The keeper's claims and failing refreshes, and the keepers' heartbeats (see the SQLite
        # store's migration 9); each keeper has its own row here: several share a store.
        """CREATE TABLE keeper_state (
            connection_id text COLLATE "C" PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
            claimed_by text COLLATE "C",
            claimed_until double precision,
            failures integer NOT NULL DEFAULT 0,
            degraded_since text COLLATE "C",
            failed_version bigint,
            next_attempt_at double precision,
            last_error text,
            tested_at text COLLATE "C",
            updated_at text NOT NULL
        )""",
        "CREATE INDEX keeper_state_claimed ON keeper_state (claimed_by)",
        """CREATE TABLE keeper_locks (
            name text COLLATE "C" PRIMARY KEY,
            owner text COLLATE "C" NOT NULL,
            host text NOT NULL,
            pid integer NOT NULL,
            started_at text NOT NULL,
            heartbeat_until double precision NOT NULL
        )""",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)

POSTGRES = Dialect(
    placeholder="%s",
    for_update=" FOR UPDATE",
    quote="quote_literal",
    row_order="seq",
    end_lease="",  # the lease is a row lock: the write's commit ends it
    shared=True,
    blob=bytes,
    sealed_from=2,
    owned_from=3,
    for_share=" FOR SHARE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    keeper_skip_locked=" FOR UPDATE OF c SKIP LOCKED",
)


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
    def from_url(cls, url: str, env: Mapping[str, str] | None = None) -> PgSettings:
        """Split ``postgresql://...?schema=x&pool_max_size=20`` into conninfo and settings.

        A server on another host must be reached over TLS (``sslmode=require`` or stronger, in the
        URL or ``PGSSLMODE``) unless ``allow_plaintext=true`` says plain TCP is meant."""
        parts = split_url(url)
        if parts.scheme not in POSTGRES_SCHEMES:
            raise ValidationError("store URL", f"expected postgresql://..., got a {parts.scheme or 'schemeless'} URL")
        ours: dict[str, str] = {}
        theirs: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            (ours.__setitem__(key, value) if key in STORE_PARAMS else theirs.append((key, value)))
        if not any(k == "application_name" for k, _ in theirs):
            theirs.append(("application_name", "connector-core"))
        conninfo = urlunsplit(parts._replace(query=urlencode(theirs)))
        shown = [(k, v) for k, v in theirs if k not in ("password", "application_name")]
        display = shown_url(urlunsplit(parts._replace(query=urlencode(shown))))
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
        settings = cls(
            conninfo=conninfo,
            display=display,
            schema=schema,
            pool_min_size=min(int(number("pool_min_size", DEFAULT_POOL_MIN, 0)), pool_max),
            pool_max_size=pool_max,
            lock_pool_max_size=int(number("lock_pool_max_size", DEFAULT_LOCK_POOL_MAX, 1)),
            lock_timeout=number("lock_timeout", DEFAULT_LOCK_TIMEOUT, 0),
        )
        _require_tls(parts.netloc, theirs, ours, os.environ if env is None else env)
        return settings


def _require_tls(netloc: str, theirs: list[tuple[str, str]], ours: dict[str, str], env: Mapping[str, str]) -> None:
    """Refuse plain TCP to a server that is not on this machine (see :meth:`PgSettings.from_url`)."""
    query = dict(theirs)
    allowed = ours.get("allow_plaintext", "false").lower()
    if allowed not in ("true", "false", "1", "0"):
        raise ValidationError("store URL", f"allow_plaintext must be true or false, got {allowed!r}")
    sslmode = query.get("sslmode") or env.get("PGSSLMODE") or "prefer"
    if allowed in ("true", "1") or sslmode in TLS_MODES:
        return
    named = netloc.rsplit("@", 1)[-1]
    hosts = [h for h in (query.get("host") or env.get("PGHOST") or "").split(",") if h] if not named else []
    if named:  # host:port,host:port; an IPv6 address is in brackets
        hosts = [re.sub(r":\d*$", "", h) for h in named.split(",")]
    remote = [h for h in hosts if h and not h.startswith("/") and h.lower() not in _LOOPBACK]
    remote = [h for h in remote if not h.startswith("127.")]
    if remote:
        raise ValidationError(
            "store URL",
            f"the server {remote[0]} is not on this machine, and sslmode={sslmode} may send the password and "
            "every secret in plain text; add sslmode=require (or verify-full), or allow_plaintext=true "
            "if plain TCP is what you mean",
        )


def _ms(seconds: float) -> str:
    return f"{max(int(seconds * 1000), 1)}ms"


class PgStore(SqlStore):
    """The PostgreSQL credential store, opened from its URL (or by :func:`~connector_core.store.open_store`).
    Safe to share between threads; any number of processes on any hosts may use one database at once."""

    dialect = POSTGRES

    def __init__(self, url: str, *, env: Mapping[str, str] | None = None) -> None:
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            raise StoreError(
                "PostgreSQL stores need psycopg 3 and psycopg-pool: pip install 'connector-core[postgres]'"
            ) from None
        super().__init__(env)
        self.settings = PgSettings.from_url(url, self._env)
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._lock_pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pools_lock = threading.Lock()
        #: The refresh locks this process holds, by (connection id, thread ident).
        self._held: dict[tuple[str, int], _Held] = {}
        self._held_lock = threading.Lock()
        self.stats = LockStats()
        self._prepare()

    @property
    def path(self) -> str:
        return self.settings.display

    # ------------------------------------------------------------- connections

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        from psycopg import sql

        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.settings.schema)))
        conn.execute(sql.SQL("SET lock_timeout TO {}").format(sql.Literal(_ms(WRITE_LOCK_TIMEOUT))))

    def _pools(self) -> tuple[ConnectionPool[psycopg.Connection[Any]], ConnectionPool[psycopg.Connection[Any]]]:
        """The pool for short operations and the pool for refresh locks, opened on first use."""
        with self._pools_lock:
            if self._pool is not None and self._lock_pool is not None:
                return self._pool, self._lock_pool
            from psycopg_pool import ConnectionPool

            s = self.settings
            kwargs = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT}
            opts: dict[str, Any] = dict(kwargs=kwargs, configure=self._configure, timeout=POOL_TIMEOUT, open=True)
            self._pool = ConnectionPool(
                s.conninfo, min_size=s.pool_min_size, max_size=s.pool_max_size, name="connector-core", **opts
            )
            self._lock_pool = ConnectionPool(
                s.conninfo, min_size=0, max_size=s.lock_pool_max_size, name="connector-core-locks", max_idle=60, **opts
            )
            return self._pool, self._lock_pool

    def close(self) -> None:
        """Release this process's refresh locks and close its pools (they reopen when used again)."""
        with self._held_lock:
            held, self._held = list(self._held.values()), {}
        for entry in held:
            self._release(entry.conn)
        with self._pools_lock:
            pools, self._pool, self._lock_pool = (self._pool, self._lock_pool), None, None
        for pool in pools:
            if pool is not None:
                pool.close()

    def _error(self, doing: str, exc: BaseException) -> StoreError:
        lines = str(exc).strip().splitlines()
        return StoreError(f"database {self.path}: {doing} failed ({lines[0] if lines else type(exc).__name__})")

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
        """A pooled connection in autocommit mode: each statement sees committed data. It is not
        checked on its way out of the pool (a round trip each time); when one turns out broken (a
        server restart, a failover), the pool checks its idle ones for the next operation."""
        pool, _ = self._pools()
        with self._guard(doing, unique), pool.connection() as conn:
            try:
                yield conn
            except BaseException:
                if conn.broken:
                    pool.check()
                raise

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read statement, tried again once when its connection was broken."""
        import psycopg

        query = POSTGRES.sql(statement)
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
    def _read(self) -> Iterator[Tx]:
        with self._conn() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield Tx(conn, POSTGRES)
            finally:
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self, connection_id: str | None = None, *, unique: ConnectorError | None = None) -> Iterator[Tx]:
        """One write transaction. When this thread holds the refresh lock of
        ``connection_id``, the write joins that transaction and its commit releases the
        lock (as every write to a connection releases the SQLite store's lease)."""
        import psycopg

        held = self._take_held(connection_id) if connection_id is not None else None
        if held is not None:
            try:
                held.conn.execute("SELECT 1")  # whether the lock's session still stands
            except psycopg.Error:
                self._release(held.conn)  # the server ended it: write on our own
                held = None
        if held is not None:
            try:
                with self._guard("writing", unique):
                    yield Tx(held.conn, POSTGRES)
                    held.conn.execute("COMMIT")
            finally:
                self._release(held.conn)
            return
        with self._conn("writing", unique) as conn, conn.transaction():
            yield Tx(conn, POSTGRES)

    # ------------------------------------------------------------------ schema

    def _prepare(self) -> None:
        import psycopg
        from psycopg import sql

        schema = sql.Identifier(self.settings.schema)
        with self._guard("connecting"):
            conn = psycopg.connect(self.settings.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        with self._guard("preparing the schema"), conn:
            version = self._current_version(conn)
            if version > SCHEMA_VERSION:
                raise self._newer(version, SCHEMA_VERSION)
            if version == SCHEMA_VERSION:
                return
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_MIGRATION_LOCK, self.settings.schema))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {}.schema_migrations "
                        "(version integer PRIMARY KEY, applied_at text NOT NULL)"
                    ).format(schema)
                )
            for target in sorted(MIGRATIONS):
                self._migrate(conn, target)

    def _current_version(self, conn: psycopg.Connection[Any]) -> int:
        from psycopg import sql

        row = conn.execute("SELECT to_regclass(%s)", (f'"{self.settings.schema}".schema_migrations',)).fetchone()
        if row is None or row[0] is None:
            return 0
        table = sql.Identifier(self.settings.schema, "schema_migrations")
        found = conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(table)).fetchone()
        return int(found[0]) if found else 0

    def _migrate(self, conn: psycopg.Connection[Any], target: int) -> None:
        from psycopg import sql

        schema = sql.Identifier(self.settings.schema)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_MIGRATION_LOCK, self.settings.schema))
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise self._newer(current, SCHEMA_VERSION)
            if self._apply(Tx(conn, POSTGRES), MIGRATIONS, current, target):
                conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)", (target, now()))

    @property
    def schema_version(self) -> int:
        return int(self._rows("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0])

    def _set_store_id(self, tx: Tx, store_id: str) -> None:
        """Give the store another id (``connector store migrate`` carries the source's over)."""
        tx.execute("UPDATE meta SET value = ? WHERE key = 'store_id'", (store_id,))
        with self._keyring_lock:
            self._store_id = store_id
            self._keyring = None

    def _take_held(self, connection_id: str) -> _Held | None:
        """Remove and return this thread's lock on ``connection_id``."""
        key = (connection_id, threading.get_ident())
        with self._held_lock:
            return self._held.pop(key, None)

    def _release(self, conn: psycopg.Connection[Any]) -> None:
        """End a lock's transaction (rolling back anything uncommitted) and return its connection to the lock pool."""
        import psycopg

        with contextlib.suppress(psycopg.Error):
            if not conn.closed:
                conn.execute("ROLLBACK")
        self._pools()[1].putconn(conn)

    def _take_lease(self, connection_id: str, owner: str, ttl: float) -> Taken:
        """Take the connection row's lock (see the module doc), waiting at most ``lock_timeout`` for
        another refresher on any host; refused when another holder kept it, or the connection is gone."""
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
                return "again"
            mine = sum(1 for (_, thread) in self._held if thread == me)
            if (held is not None and not stale) or mine >= self.settings.lock_pool_max_size:
                # Waiting would block the very thread (or event loop) that must release the
                # lock, or the lock pool's connections: refuse now, the caller tries again.
                self.stats.waited += 1
                self.stats.timed_out += 1
                return "refused"
        if held is not None:  # stale, and this thread's own: nothing else uses its connection
            self._release(held.conn)
        select = "SELECT token_version FROM connections WHERE id = %s FOR UPDATE"
        # The lease's ttl: the server ends the session, and so the lock, after that long idle.
        idle = sql.Literal(_ms(max(ttl, 1.0)))
        begin = sql.SQL("BEGIN; SET LOCAL idle_in_transaction_session_timeout = {}").format(idle)
        _, lock_pool = self._pools()
        try:
            conn = lock_pool.getconn(timeout=max(self.settings.lock_timeout, 0.05))
        except PoolTimeout:
            with self._held_lock:
                self.stats.timed_out += 1
            return "refused"
        waited = False
        try:
            with self._guard("locking"):
                conn.execute(begin)
                try:
                    row = conn.execute(select + " NOWAIT", (connection_id,)).fetchone()
                except psycopg.errors.LockNotAvailable:
                    waited = True  # another refresher holds it: wait for it, at most lock_timeout
                    wait = sql.Literal(_ms(self.settings.lock_timeout))
                    conn.execute(sql.SQL("ROLLBACK; {}; SET LOCAL lock_timeout = {}").format(begin, wait))
                    try:
                        row = conn.execute(select, (connection_id,)).fetchone()
                    except psycopg.errors.LockNotAvailable:
                        row = None
                        with self._held_lock:
                            self.stats.timed_out += 1
        except BaseException:
            self._release(conn)
            raise
        with self._held_lock:
            if waited:
                self.stats.waited += 1
            if row is not None:
                self._held[key] = _Held(owner, conn, time.monotonic() + ttl)
                self.stats.acquired += 1
                return "taken"
        self._release(conn)
        return "refused"

    def _end_lease(self, connection_id: str, owner: str) -> None:
        """Release ``owner``'s lock without writing (nothing was refreshed)."""
        with self._held_lock:  # taken by this owner, on this thread or another one
            found = [k for k, h in self._held.items() if k[0] == connection_id and h.owner == owner]
            if not found:
                return
            held = self._held.pop(found[0])
            self.stats.released_unused += 1
        self._release(held.conn)

    def _save_refresh(
        self, connection_id: str, expected_version: int, tokens: TokenSet, granted: tuple[str, ...]
    ) -> Connection:
        """The refresh's writes in the lock's own transaction, whose commit releases the lock.
        A lock cut off meanwhile (the lease's ttl, a server restart) does not lose the
        tokens: they are written in a transaction of their own, under the same check."""
        import psycopg

        self.keyring  # noqa: B018 - load the keys before the transaction starts
        held = self._take_held(connection_id)
        if held is not None:
            try:
                saved = self._write_refresh(Tx(held.conn, POSTGRES), connection_id, expected_version, tokens, granted)
                held.conn.execute("COMMIT")
            except psycopg.Error as exc:
                if not (held.conn.closed or held.conn.broken):
                    raise self._error("writing", exc) from None
            else:
                with self._held_lock:
                    self.stats.saved += 1
                return saved
            finally:
                self._release(held.conn)
        with self._write() as tx:
            saved = self._write_refresh(tx, connection_id, expected_version, tokens, granted)
        with self._held_lock:
            self.stats.saved += 1
        return saved
