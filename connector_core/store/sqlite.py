"""The SQLite store: one database file holding profiles, connections and secrets.

* Where: ``<home>/connector.db``, home being ``--home``, else ``CONNECTOR_HOME``,
  else platformdirs' user data dir. The folder is created 0700 and the file 0600.
* Safety: WAL journal, ``synchronous=FULL``, every write one ``BEGIN IMMEDIATE`` transaction,
  so a crash (even ``kill -9``) leaves the previous state or the new one; a busy timeout
  and retries keep concurrent processes from seeing "database is locked".
* Schema: ``PRAGMA user_version`` holds the schema version; forward migrations
  run in a transaction each. A database from a newer version is refused.
* Single-flight refresh: the lease lives in the connection's row (``lock_owner``,
  ``lock_until``, epoch seconds); a holder that dies loses it when ``lock_until``
  passes, and every write to the connection ends it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._files import ensure_private_dir, unsafe_dir, unsafe_file
from ..errors import ConnectorError
from .contract import StoreError
from .sql import Dialect, SqlStore, Taken, Tx
from .url import DB_NAME, default_home

if TYPE_CHECKING:
    from ..connection import Connection
    from ..oauth import TokenSet

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Store"]

_T = TypeVar("_T")

BUSY_TIMEOUT_MS = 30_000

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
    3: (
        # Each row's seal: a MAC of the columns that say where its secrets go (see SqlStore._seal).
        "ALTER TABLE profiles ADD COLUMN seal TEXT",
        "ALTER TABLE connections ADD COLUMN seal TEXT",
    ),
    4: (
        # Whose a connection is: the platform's end user (NULL: unclaimed), organisation, tags.
        "ALTER TABLE connections ADD COLUMN end_user_id TEXT",
        "ALTER TABLE connections ADD COLUMN end_user_email TEXT",
        "ALTER TABLE connections ADD COLUMN end_user_name TEXT",
        "ALTER TABLE connections ADD COLUMN organisation TEXT",
        "ALTER TABLE connections ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'",
        "CREATE INDEX connections_end_user ON connections(end_user_id)",
        # Whose the connection an authorization makes will be.
        "ALTER TABLE attempts ADD COLUMN owner TEXT",
    ),
    5: (
        # Connect sessions: a platform's permission for one end user to connect (see connector_core.sessions);
        # only the token's SHA-256 is kept, and the row is sealed (SqlStore._seal).
        """CREATE TABLE connect_sessions (
            id TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            end_user_id TEXT NOT NULL,
            end_user_email TEXT,
            end_user_name TEXT,
            organisation TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            providers TEXT NOT NULL,
            profile TEXT,
            scopes TEXT NOT NULL DEFAULT '[]',
            connection_id TEXT,
            redirect_url TEXT,
            created_at TEXT NOT NULL,
            expires_at REAL NOT NULL,
            status TEXT NOT NULL,
            picked_provider TEXT,
            picked_profile TEXT,
            result_connection_id TEXT,
            error_code TEXT,
            error_message TEXT,
            used_at TEXT,
            finished_at TEXT,
            seal TEXT
        )""",
        "CREATE INDEX connect_sessions_end_user ON connect_sessions(end_user_id, id)",
        "CREATE INDEX connect_sessions_expires ON connect_sessions(expires_at)",
    ),
    6: (
        # A session that makes a new connection even where the end user has one to the same account:
        # 1, or NULL for no (so that rows sealed before this column existed keep their seal).
        "ALTER TABLE connect_sessions ADD COLUMN separate INTEGER",
    ),
    7: (
        # Lifecycle events (connector_core.events), written in the transaction of their change;
        # seq is the order readers page in (and the outbox's), id the stable one receivers see.
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            at TEXT NOT NULL,
            connection_id TEXT,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX events_connection ON events(connection_id, seq)",
        "CREATE INDEX events_at ON events(at)",
    ),
    8: (
        # Webhook endpoints (connector_core.webhooks.endpoints): where deliveries go, sealed like a
        # connection (id, url, allow_private, event_types); their secrets are rows of `secrets`.
        """CREATE TABLE webhook_endpoints (
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            allow_private INTEGER NOT NULL DEFAULT 0,
            event_types TEXT NOT NULL DEFAULT '[]',
            seal TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            disabled_at TEXT,
            disabled_reason TEXT
        )""",
        # The outbox: one row per event and subscribed endpoint, written in the event's transaction;
        # a deliverer claims due rows until claimed_until (epoch seconds).
        """CREATE TABLE webhook_deliveries (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            event_id TEXT NOT NULL,
            endpoint_id TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL,
            claimed_by TEXT,
            claimed_until REAL,
            replay INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            finished_at TEXT
        )""",
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending'",
        "CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, seq)",
        "CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_id)",
        # The delivery log: every attempt, its answer's status, latency and first KiB, or its error.
        """CREATE TABLE webhook_attempts (
            delivery_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            at TEXT NOT NULL,
            status_code INTEGER,
            latency_ms REAL,
            response TEXT,
            error TEXT,
            PRIMARY KEY (delivery_id, attempt)
        )""",
    ),
    9: (
        # The keeper (connector_core.keeper): per connection, its claim (which keeper refreshes it, until
        # when) and a failing refresh's attempts, since when and its retry time (epoch seconds)...
        """CREATE TABLE keeper_state (
            connection_id TEXT PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
            claimed_by TEXT,
            claimed_until REAL,
            failures INTEGER NOT NULL DEFAULT 0,
            degraded_since TEXT,
            failed_version INTEGER,
            next_attempt_at REAL,
            last_error TEXT,
            tested_at TEXT,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX keeper_state_claimed ON keeper_state(claimed_by)",
        # ...and the keepers' heartbeats: one row ('keeper') where a store has one keeper.
        """CREATE TABLE keeper_locks (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            heartbeat_until REAL NOT NULL
        )""",
    ),
    10: (
        # A listing filtered by status, end user, profile or organisation pages by id (keyset):
        # each filter's index ends with the id, so a page is one range of its index, in order,
        # not every matching row sorted anew for each page. (Indexes only: re-run on a schema
        # whose recorded version was set back, it leaves them as they are.)
        "DROP INDEX IF EXISTS connections_status",
        "CREATE INDEX connections_status ON connections(status, id)",
        "DROP INDEX IF EXISTS connections_end_user",
        "CREATE INDEX connections_end_user ON connections(end_user_id, id)",
        "DROP INDEX IF EXISTS connections_profile",
        "CREATE INDEX connections_profile ON connections(profile_id, id)",
        "CREATE INDEX IF NOT EXISTS connections_organisation ON connections(organisation, id)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)

SQLITE = Dialect(
    placeholder="?",
    for_update="",  # BEGIN IMMEDIATE already holds the database's write lock
    quote="quote",
    row_order="rowid",
    end_lease=", lock_owner = NULL, lock_until = NULL",
    shared=False,
    blob=lambda value: value,  # as stored: the key ring refuses anything that is not what it wrote
    sealed_from=3,
    owned_from=4,
)


class Store(SqlStore):
    """The SQLite credential store (open it with :meth:`Store.open`). Safe to share between
    threads; each thread gets its own connection. Several processes may use one store at once."""

    dialect = SQLITE

    def __init__(self, path: Path, *, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self._path = Path(path)
        self._local = threading.local()
        # This process's writers queue here rather than in SQLite's busy handler, which sleeps
        # (up to 100 ms a time) while another thread holds the write lock.
        self._writing = threading.RLock()
        # The WAL file, kept open for batched(defer_sync=True) to fsync.
        self._wal_fd: int | None = None
        self._wal_lock = threading.Lock()
        self._prepare()

    @classmethod
    def open(cls, home: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Store:
        """Open (creating if needed) the store under ``home`` (see the module doc)."""
        base = Path(home).expanduser() if home is not None else default_home(env)
        return cls(base / DB_NAME, env=env)

    @property
    def path(self) -> Path:
        return self._path

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
        with self._wal_lock:
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None

    def _error(self, doing: str, exc: BaseException) -> StoreError:
        text = str(exc)
        if "file is not a database" in text or "malformed" in text:
            return StoreError(f"database {self.path}: not a connector-core database, or damaged ({text})")
        if "unable to open" in text or "readonly" in text or isinstance(exc, PermissionError):
            return StoreError(f"database {self.path}: {doing} failed ({text}); check the file's permissions")
        return StoreError(f"database {self.path}: {doing} failed ({text})")

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._connect().execute(statement, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error("reading", exc) from None

    @contextlib.contextmanager
    def _write(self, connection_id: str | None = None, *, unique: ConnectorError | None = None) -> Iterator[Tx]:
        """One write transaction (``BEGIN IMMEDIATE``), retried while another writer holds the lock.
        Inside :meth:`batched`, a savepoint of the batch's transaction instead."""
        if getattr(self._local, "batch", None) is not None:
            with self._savepoint(unique, durable=True) as tx:
                yield tx
            return
        conn = self._connect()
        with self._writing:
            self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), "writing")
            try:
                yield Tx(conn, SQLITE)
            except BaseException as exc:
                conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError) and unique is not None:
                    raise unique from None
                if isinstance(exc, sqlite3.Error):
                    raise self._error("writing", exc) from None
                raise
            self._commit(conn)

    def _commit(self, conn: sqlite3.Connection) -> None:
        """End the write transaction; one the database refuses to commit is rolled back whole."""
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise self._error("committing", exc) from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[Tx]:
        conn = self._connect()
        if getattr(self._local, "batch", None) is not None:  # the batch's transaction reads consistently already
            yield Tx(conn, SQLITE)
            return
        try:
            conn.execute("BEGIN")
            try:
                yield Tx(conn, SQLITE)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error("reading", exc) from None

    # ------------------------------------------------------------------ schema

    def _prepare(self) -> None:
        try:
            ensure_private_dir(self.path.parent)
        except OSError as exc:
            raise StoreError(f"database {self.path}: cannot create its folder ({exc.strerror or exc})") from None
        problem = unsafe_dir(self.path.parent)
        if problem is not None:
            raise StoreError(f"database {self.path}: refusing its folder {self.path.parent}: {problem}")
        for path in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm", "-journal"))):
            problem = unsafe_file(path)
            if problem is not None:
                raise StoreError(f"database {self.path}: refusing {path.name}: {problem}")
        if not self.path.exists():
            try:  # never through a link planted meanwhile
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
            except FileExistsError:
                pass  # another process created it first
            except OSError as exc:
                raise StoreError(f"database {self.path}: cannot create it ({exc.strerror})") from None
            else:
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
            raise self._newer(version, SCHEMA_VERSION)
        for target in sorted(v for v in MIGRATIONS if v > version):
            self._migrate(target)

    def _retry_locked(self, action: Callable[[], _T], doing: str) -> _T:
        """Run ``action``, retrying while another process holds a lock SQLite does not wait for."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return action()
            except sqlite3.Error as exc:
                if not (isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))):
                    raise self._error(doing, exc) from None
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"database {self.path}: still locked by another process after {BUSY_TIMEOUT_MS // 1000} s"
                    ) from None
                time.sleep(0.01)

    def _migrate(self, target: int) -> None:
        with self._write() as tx:
            if self._apply(tx, MIGRATIONS, int(tx.one("PRAGMA user_version")[0]), target):
                tx.execute(f"PRAGMA user_version = {int(target)}")

    @property
    def schema_version(self) -> int:
        return int(self._rows("PRAGMA user_version")[0][0])

    # ------------------------------------------------------- refresh single-flight

    def _take_lease(self, connection_id: str, owner: str, ttl: float) -> Taken:
        """Taken unless another live holder has it (an expired one is no holder)."""
        at = time.time()
        with self._lease_write() as tx:
            row = tx.one("SELECT lock_owner, lock_until FROM connections WHERE id = ?", (connection_id,))
            if row is None:
                return "refused"
            live = row[0] is not None and row[1] is not None and row[1] >= at
            if live and row[0] != owner:
                return "refused"
            tx.execute(
                "UPDATE connections SET lock_owner = ?, lock_until = ? WHERE id = ?", (owner, at + ttl, connection_id)
            )
            return "again" if live else "taken"

    def _end_lease(self, connection_id: str, owner: str) -> None:
        with self._lease_write() as tx:
            tx.execute(
                "UPDATE connections SET lock_owner = NULL, lock_until = NULL WHERE id = ? AND lock_owner = ?",
                (connection_id, owner),
            )

    def _save_refresh(
        self, connection_id: str, expected_version: int, tokens: TokenSet, granted: tuple[str, ...]
    ) -> Connection:
        self.keyring  # noqa: B018 - load the keys before the transaction starts
        with self._write() as tx:
            return self._write_refresh(tx, connection_id, expected_version, tokens, granted)

    @contextlib.contextmanager
    def _lease_write(self) -> Iterator[Tx]:
        """A write that only takes or ends a refresh lease, committed with ``synchronous=NORMAL``:
        the WAL is written but not fsync'd. The lease is seen by every other process at once and
        survives a crash of this one; a power loss may lose it, and with it nothing (no process
        that held it lives on; the next durable commit, such as the refresh's save, syncs it).
        Inside :meth:`batched`, a savepoint like any write (SQLite fixes a transaction's safety
        level when it begins)."""
        if getattr(self._local, "batch", None) is not None:
            with self._savepoint(None, durable=False) as tx:
                yield tx
            return
        conn = self._connect()
        with self._writing:
            conn.execute("PRAGMA synchronous = NORMAL")
            try:
                with self._write() as tx:
                    yield tx
            finally:
                conn.execute("PRAGMA synchronous = FULL")

    # ------------------------------------------------------------ batched writes

    @contextlib.contextmanager
    def batched(self, *, defer_sync: bool = False) -> Iterator[_Batch | None]:
        """Run this thread's writes until the block ends in one transaction (a group commit),
        each write a savepoint of it: one that fails rolls back alone and raises as it would
        have, the others stand. Nothing is committed, or seen by another connection, before the
        block ends: whoever acts on a write made inside (sends a request under a lease, reports
        a saved token) must wait for the block to end without an error. Reads inside see the
        batch's own writes. Nested blocks join the outer one. Other threads' writes wait for
        the block, as for any write.

        The commit is fsync'd (``synchronous=FULL``), once for all the writes. With
        ``defer_sync`` it is not: the block yields the batch, whose ``sync()`` makes it durable
        (an fsync of the WAL file, what ``synchronous=FULL`` does at the commit), to be called
        after the block, outside the write lock, so that the next batch runs while the disk syncs
        this one; until it has returned, the batch may be lost to a power loss (not to a crash of
        this process) and what it wrote must not be acted on. One call covers every batch
        committed before it. Its ``durable_writes`` counts the writes so far that need the sync
        (all but a lease's, see :meth:`_lease_write`)."""
        if getattr(self._local, "batch", None) is not None:
            yield None
            return
        conn = self._connect()
        with self._writing:
            if defer_sync:
                conn.execute("PRAGMA synchronous = NORMAL")  # SQLite fixes it when a transaction begins
            try:
                self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), "writing")
                batch = self._local.batch = _Batch(self._sync_wal)
                try:
                    yield batch if defer_sync else None
                except BaseException:
                    self._local.batch = None
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                self._local.batch = None
                self._commit(conn)
            finally:
                if defer_sync:
                    conn.execute("PRAGMA synchronous = FULL")

    def _sync_wal(self) -> None:
        """fsync the WAL file: every transaction committed before is durable when it returns
        (a checkpoint syncs what it moves into the database file itself). The WAL lives as long
        as a connection of this process is open, as this thread's is; a new one (after every
        connection closed, or another process's checkpoint truncated it) is opened anew."""
        path = self.path.with_name(self.path.name + "-wal")
        with self._wal_lock:
            fd = self._wal_fd
            try:
                if fd is not None and os.fstat(fd).st_ino != os.stat(path).st_ino:
                    os.close(fd)
                    fd = self._wal_fd = None
                if fd is None:
                    fd = self._wal_fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                os.fsync(fd)
            except OSError as exc:
                raise StoreError(f"database {self.path}: syncing its WAL failed ({exc.strerror or exc})") from None

    @contextlib.contextmanager
    def _savepoint(self, unique: ConnectorError | None, *, durable: bool) -> Iterator[Tx]:
        """One write of a :meth:`batched` block: a savepoint, rolled back alone if it fails.
        ``durable``: it needs the batch's sync before it is acted on (every write but a lease's)."""
        batch: _Batch = self._local.batch
        conn = self._connect()
        name = f"write{batch.depth}"
        batch.depth += 1
        try:
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield Tx(conn, SQLITE)
            except BaseException as exc:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
                if isinstance(exc, sqlite3.IntegrityError) and unique is not None:
                    raise unique from None
                if isinstance(exc, sqlite3.Error):
                    raise self._error("writing", exc) from None
                raise
            conn.execute(f"RELEASE {name}")
            if durable:
                batch.durable_writes += 1
        except sqlite3.Error as exc:
            raise self._error("writing", exc) from None
        finally:
            batch.depth -= 1


class _Batch:
    """The open transaction of a :meth:`Store.batched` block (what it yields with ``defer_sync``)."""

    __slots__ = ("depth", "durable_writes", "sync")

    def __init__(self, sync: Callable[[], None]) -> None:
        #: How many savepoints are open (a write inside a write nests one).
        self.depth = 0
        #: How many writes so far need :attr:`sync` before they are acted on (any but a lease's).
        self.durable_writes = 0
        #: Make the batch durable once it has committed (``defer_sync``): fsync the WAL.
        self.sync = sync
