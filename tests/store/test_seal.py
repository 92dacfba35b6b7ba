"""A database-only attacker gets no secret: every row that says where secrets go is sealed.

The attacker here can write the database (the SQLite file, or the PostgreSQL tables) but holds
no key. Whatever they change in a profile or a connection, the next refresh or request is
refused with one line naming the row, and nothing reaches their server.
"""

from __future__ import annotations

import http.server
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import profile_draft
from support.workload import PROFILE, REDIRECT, connect_many, make_profile

from connector_core import StoreError, load_plugins
from connector_core.connector import Connector
from connector_core.crypto import ENV_KEY_FILE
from connector_core.emulator import RunningEmulator, start_emulator
from connector_core.store import Store
from connector_core.store.postgres import SCHEMA_VERSION as PG_SCHEMA_VERSION
from connector_core.store.sql import SqlStore
from connector_core.store.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION


class Attacker:
    """An HTTP server on loopback that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                seen.append(f"{self.command} {self.path} {self.headers} {self.rfile.read(length)!r}")
                body = json.dumps({"access_token": "x", "token_type": "Bearer", "expires_in": 3600}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    server = Attacker()
    yield server
    server.close()


World = tuple[RunningEmulator, SqlStore, Connector, Callable[[str, tuple[Any, ...]], None]]


@pytest.fixture(params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A connected store and a way to change it behind the store's back (raw SQL, ``?`` marks)."""
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    env = {ENV_KEY_FILE: str(tmp_path / "keys.json")}
    store: SqlStore
    if request.param == "sqlite":
        store = Store.open(tmp_path / "home", env=env)

        def raw(statement: str, args: tuple[Any, ...]) -> None:
            with sqlite3.connect(tmp_path / "home" / "connector.db") as db:
                db.execute(statement, args)
    else:
        import psycopg

        from connector_core.store.postgres import PgStore

        store = PgStore(request.getfixturevalue("pg_url"), env=env)

        def raw(statement: str, args: tuple[Any, ...]) -> None:
            pg = store.settings  # type: ignore[attr-defined]
            with psycopg.connect(pg.conninfo, autocommit=True) as db:
                db.execute(f"SET search_path TO {pg.schema}")
                db.execute(statement.replace("?", "%s"), args)

    with (
        store,
        start_emulator(plugins.declaration("hibob"), plugins.emulator_spec("hibob"), redirect_uris=[REDIRECT]) as emu,
    ):
        connector = Connector(store, plugins)
        make_profile(store, emu, plugins)
        yield emu, store, connector, raw
        connector.close()


def _endpoints_to(store: SqlStore, url: str) -> str:
    endpoints = dict(store.get_profile(PROFILE, with_secrets=False).endpoints)
    endpoints["token_url"] = f"{url}/oauth2/token"
    endpoints["api_base_url"] = url
    return json.dumps(endpoints)


def test_rewritten_endpoints_send_nothing(world: World, attacker: Attacker) -> None:
    emu, store, connector, raw = world
    (cid,) = connect_many(connector, emu, 1)
    raw("UPDATE profiles SET endpoints = ? WHERE name = ?", (_endpoints_to(store, attacker.url), PROFILE))
    for attempt in (lambda: connector.refresh(cid, force=True), lambda: connector.request(cid, "GET", "/x")):
        with pytest.raises(StoreError, match=rf"profile '{PROFILE}' was changed outside connector-core") as caught:
            attempt()
        assert caught.value.code == "tampered" and "\n" not in str(caught.value)
    assert attacker.requests == []
    assert not emu.stats.token_requests.get("refresh_token")


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("""UPDATE profiles SET field_values = '{"app_id": "A", "client_id": "evil"}'""", f"profile '{PROFILE}'"),
        ("UPDATE profiles SET environment = 'production'", f"profile '{PROFILE}'"),
        ("UPDATE profiles SET seal = NULL", f"profile '{PROFILE}'"),
        ("UPDATE connections SET provider = 'other'", "connection conn_"),
        ("UPDATE connections SET seal = 'nonsense'", "connection conn_"),
    ],
)
def test_any_bound_column_changed_is_refused(world: World, statement: str, named: str) -> None:
    emu, _, connector, raw = world
    (cid,) = connect_many(connector, emu, 1)
    raw(statement, ())
    with pytest.raises(StoreError, match=f"{named}.* was changed outside connector-core"):
        connector.refresh(cid, force=True)
    assert not emu.stats.token_requests.get("refresh_token")


def test_a_connection_moved_to_another_profile_is_refused(world: World, attacker: Attacker) -> None:
    emu, store, connector, raw = world
    (cid,) = connect_many(connector, emu, 1)
    make_profile(store, emu, load_plugins(), name="other")
    other = store.get_profile("other", with_secrets=False).id
    raw("UPDATE connections SET profile_id = ? WHERE id = ?", (other, cid))
    with pytest.raises(StoreError, match=f"connection {cid} was changed outside connector-core"):
        connector.refresh(cid, force=True)
    assert not emu.stats.token_requests.get("refresh_token")


def test_rotation_reseals_and_does_not_launder_a_changed_row(world: World, attacker: Attacker) -> None:
    emu, store, connector, raw = world
    (cid,) = connect_many(connector, emu, 1)
    rotation = store.rotate_keys(retire=True)
    assert rotation.retired  # the rows are sealed under the new key only: the old one could go
    assert connector.refresh(cid, force=True).token_version == 1
    raw("UPDATE profiles SET endpoints = ?", (_endpoints_to(store, attacker.url),))
    with pytest.raises(StoreError, match=f"profile '{PROFILE}' was changed outside connector-core"):
        store.rotate_keys()
    with pytest.raises(StoreError, match="was changed outside connector-core"):
        connector.refresh(cid, force=True)
    assert attacker.requests == []


def test_a_store_from_before_the_seals_is_sealed_on_upgrade(tmp_path: Path) -> None:

    env = {ENV_KEY_FILE: str(tmp_path / "keys.json")}
    with Store.open(tmp_path / "home", env=env) as store:
        draft = profile_draft("old")
        store.create_profile(draft)
    with sqlite3.connect(tmp_path / "home" / "connector.db") as db:  # as schema version 2 left it
        db.execute("DROP TABLE connect_sessions")
        db.execute("DROP TABLE keeper_state")
        db.execute("DROP TABLE keeper_locks")
        db.execute("DROP TABLE events")
        for table in ("webhook_endpoints", "webhook_deliveries", "webhook_attempts"):  # added later
            db.execute(f"DROP TABLE {table}")
        db.execute("DROP INDEX connections_end_user")
        db.execute("DROP INDEX connections_organisation")  # added later
        for column in ("end_user_id", "end_user_email", "end_user_name", "organisation", "tags"):
            db.execute(f"ALTER TABLE connections DROP COLUMN {column}")
        db.execute("ALTER TABLE attempts DROP COLUMN owner")
        db.execute("ALTER TABLE profiles DROP COLUMN seal")
        db.execute("ALTER TABLE connections DROP COLUMN seal")
        db.execute("PRAGMA user_version = 2")
    with Store.open(tmp_path / "home", env=env) as store:
        assert store.schema_version == SQLITE_SCHEMA_VERSION
        assert store.get_profile("old").secret("client_secret").reveal() == "client-secret-value-123"
        assert store._rows("SELECT count(*) FROM profiles WHERE seal IS NULL") == [(0,)]


def test_a_refused_row_names_itself_on_the_cli(tmp_path: Path) -> None:
    from support import run_connector

    env = {"CONNECTOR_HOME": str(tmp_path / "home"), ENV_KEY_FILE: str(tmp_path / "keys.json"), "S": "sec-ret-1234"}
    env["CONNECTOR_CORE_PLUGINS"] = "hibob"
    argv = ["profile", "create", "hibob", "--name", "p", "--environment", "sandbox", "--app-id", "APP-1"]
    created = run_connector([*argv, "--client-id", "c", "--client-secret-env", "S"], env=env)
    assert created.returncode == 0, created.stderr
    with sqlite3.connect(tmp_path / "home" / "connector.db") as db:
        db.execute("""UPDATE profiles SET endpoints = '{"token_url": "https://evil.example/t"}'""")
    shown = run_connector(["profile", "show", "p"], env=env)
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert shown.stderr.count("\n") == 1 and "profile 'p' was changed outside connector-core" in shown.stderr


def test_a_postgresql_store_from_before_the_seals_is_sealed_on_upgrade(pg_url: str, tmp_path: Path) -> None:
    import time

    import psycopg

    from connector_core.oauth import TokenSet
    from connector_core.secret import Secret
    from connector_core.store.postgres import PgStore

    env = {ENV_KEY_FILE: str(tmp_path / "keys.json")}
    draft = profile_draft("old")
    with PgStore(pg_url, env=env) as store:
        profile = store.create_profile(draft)
        tokens = TokenSet(Secret("access-1"), "Bearer", Secret("refresh-1"), expires_at=time.time() + 3600)
        cid = store.save_connection(profile, tokens, requested=(), granted=(), identity={}, provider_initiated=False).id
        settings = store.settings
    with psycopg.connect(settings.conninfo, autocommit=True) as db:  # as schema version 1 left it
        db.execute(f"SET search_path TO {settings.schema}")
        db.execute("DROP TABLE connect_sessions")
        db.execute("DROP TABLE keeper_state")
        db.execute("DROP TABLE keeper_locks")
        db.execute("DROP TABLE events")
        for table in ("webhook_endpoints", "webhook_deliveries", "webhook_attempts"):  # added later
            db.execute(f"DROP TABLE {table}")
        for column in ("end_user_id", "end_user_email", "end_user_name", "organisation", "tags"):
            db.execute(f"ALTER TABLE connections DROP COLUMN {column}")  # its index goes with it
        db.execute("ALTER TABLE attempts DROP COLUMN owner")
        db.execute("ALTER TABLE profiles DROP COLUMN seal")
        db.execute("ALTER TABLE connections DROP COLUMN seal")
        db.execute("DELETE FROM schema_migrations WHERE version >= 2")
    with PgStore(pg_url, env=env) as store:
        assert store.schema_version == PG_SCHEMA_VERSION
        assert store.get_profile("old").secret("client_secret").reveal() == "client-secret-value-123"
        _, access, refresh = store.get_tokens(cid)
        assert access is not None and access.reveal() == "access-1" and refresh is not None
        assert store._rows("SELECT count(*) FROM connections WHERE seal IS NULL") == [(0,)]


#: The columns a connect session's seal covered at SQLite schema 5 / PostgreSQL schema 4, before
#: ``separate`` came: the seal such a row carries is over these alone.
_SESSION_SEALED_BEFORE_SEPARATE = (
    *("id", "token_hash", "end_user_id", "organisation", "providers", "profile", "scopes"),
    *("connection_id", "redirect_url", "expires_at", "status", "picked_provider", "picked_profile"),
    "result_connection_id",
)


def _seal_sessions_as_before_separate(store: SqlStore) -> None:
    """Seal every session row as the code before ``separate`` did (its canonical text, written out here)."""
    ring = store.keyring
    with store._write() as tx:
        for row in tx.all(f"SELECT {', '.join(_SESSION_SEALED_BEFORE_SEPARATE)} FROM connect_sessions"):
            text = json.dumps(["connector-core/v1", "connect_sessions", *row], separators=(",", ":")).encode()
            tx.execute("UPDATE connect_sessions SET seal = ? WHERE id = ?", (ring.seal(text), row[0]))


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_sessions_sealed_before_the_separate_flag_still_verify(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    import time

    from connector_core.connection import SessionStatus
    from connector_core.testing.store_conformance import session

    env = {ENV_KEY_FILE: str(tmp_path / "keys.json")}
    if engine == "sqlite":

        def open_store() -> SqlStore:
            return Store.open(tmp_path / "home", env=env)

        def downgrade() -> None:  # as SQLite schema version 5 left it
            with sqlite3.connect(tmp_path / "home" / "connector.db") as db:
                db.execute("ALTER TABLE connect_sessions DROP COLUMN separate")
                db.execute("DROP TABLE keeper_state")
                db.execute("DROP TABLE keeper_locks")
                db.execute("DROP TABLE events")
                for table in ("webhook_endpoints", "webhook_deliveries", "webhook_attempts"):  # added later
                    db.execute(f"DROP TABLE {table}")
                db.execute("PRAGMA user_version = 5")

        latest = SQLITE_SCHEMA_VERSION
    else:
        import psycopg

        from connector_core.store.postgres import PgStore

        url = request.getfixturevalue("pg_url")

        def open_store() -> SqlStore:
            return PgStore(url, env=env)

        def downgrade() -> None:  # as PostgreSQL schema version 4 left it
            with open_store() as pg:
                settings = pg.settings
            with psycopg.connect(settings.conninfo, autocommit=True) as db:
                db.execute(f"SET search_path TO {settings.schema}")
                db.execute("ALTER TABLE connect_sessions DROP COLUMN separate")
                db.execute("DROP TABLE keeper_state")
                db.execute("DROP TABLE keeper_locks")
                db.execute("DROP TABLE events")
                for table in ("webhook_endpoints", "webhook_deliveries", "webhook_attempts"):  # added later
                    db.execute(f"DROP TABLE {table}")
                db.execute("DELETE FROM schema_migrations WHERE version >= 5")

        latest = PG_SCHEMA_VERSION
    with open_store() as store:
        pending = store.create_session(session(), "hash-1")
        store.create_session(session("sess_2"), "hash-2")
        store.claim_session("hash-2", at=time.time())
        done = store.complete_session("sess_2", "conn_1")
        _seal_sessions_as_before_separate(store)
    downgrade()
    with open_store() as store:
        assert store.schema_version == latest
        assert store._rows("SELECT count(*) FROM connect_sessions WHERE separate IS NULL") == [(2,)]
        assert store.get_session("sess_1") == pending and store.get_session("sess_2") == done
        assert not pending.separate and store.claim_session("hash-1", at=time.time()).status is SessionStatus.USED
        # Their seals cover the new column: a flag set behind the store's back is refused.
        with store._write() as tx:
            tx.execute("UPDATE connect_sessions SET separate = 1 WHERE id = ?", ("sess_2",))
        with pytest.raises(StoreError, match="connect session sess_2 was changed outside") as caught:
            store.get_session("sess_2")
        assert caught.value.code == "tampered"
