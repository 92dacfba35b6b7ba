"""Tampered or foreign data in a store gets one line naming what is wrong, never a traceback."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from support import profile_draft, run_connector

from connector_core import StoreError, ValidationError
from connector_core.crypto import ENV_KEY_FILE
from connector_core.oauth import TokenSet
from connector_core.secret import Secret
from connector_core.store import Store, open_store, select_store
from connector_core.store.sql import SqlStore
from connector_core.store.sqlite import SCHEMA_VERSION

DRAFT = profile_draft()


def connected(store: SqlStore) -> str:
    profile = store.create_profile(DRAFT)
    tokens = TokenSet(Secret("access-1"), "Bearer", Secret("refresh-1"), expires_at=time.time() + 3600)
    return store.save_connection(profile, tokens, requested=(), granted=(), identity={}, provider_initiated=False).id


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "home", env={ENV_KEY_FILE: str(tmp_path / "keys.json")})


def tamper(tmp_path: Path, *statements: str) -> None:
    with sqlite3.connect(tmp_path / "home" / "connector.db") as db:
        for statement in statements:
            db.execute(statement)


@pytest.mark.parametrize(
    ("statement", "read", "message"),
    [
        ("UPDATE connections SET status = 'bogus'", "list_connections", r"connection conn_\w+: stored status: 'bogus'"),
        ("UPDATE connection_events SET status = 'x'", "events", r"an event of connection conn_\w+: stored status"),
        ("UPDATE connections SET granted_scopes = 'nope'", "list_connections", "stored granted scopes: not a JSON"),
        ("UPDATE connections SET identity = '[1]'", "list_connections", "stored identity: not a JSON object"),
        ("UPDATE connections SET expires_at = 'soon'", "list_connections", "stored expiry time: not a number"),
        # A listing that streams reads a damaged row as a listing did: the same one line.
        ("UPDATE connections SET status = 'bogus'", "iter_connections", r"conn_\w+: stored status: 'bogus'"),
        ("UPDATE connections SET requested_scopes = '{}'", "iter_connections", "stored requested scopes: not a JSON"),
        ("UPDATE connections SET identity = '{} x'", "iter_connections", "stored identity: not a JSON object"),
        ("UPDATE connections SET tags = '[\"A B\"]'", "iter_connections", "stored owner: tags: expected lower-case"),
        ("UPDATE connections SET expires_at = 'soon'", "iter_connections", "stored expiry time: not a number"),
        ("UPDATE profiles SET scopes = 'not json'", "list_profiles", "profile 'acme': stored scopes: not a JSON array"),
        ("UPDATE profiles SET endpoints = x'00ff'", "list_profiles", "profile 'acme': stored endpoints"),
    ],
)
def test_a_damaged_column_is_one_line_naming_it(
    sqlite_store: Store, tmp_path: Path, statement: str, read: str, message: str
) -> None:
    cid = connected(sqlite_store)
    tamper(tmp_path, statement)
    reads = {
        "list_connections": sqlite_store.list_connections,
        "iter_connections": lambda: list(sqlite_store.iter_connections()),
        "list_profiles": sqlite_store.list_profiles,
        "events": lambda: sqlite_store.connection_events(cid),
    }
    with pytest.raises(StoreError, match=message) as caught:
        reads[read]()
    assert caught.value.code == "damaged" and "\n" not in str(caught.value)


@pytest.mark.parametrize("version", [0, 1, 2, -3])
def test_a_schema_version_set_back_is_one_line(sqlite_store: Store, tmp_path: Path, version: int) -> None:
    connected(sqlite_store)
    sqlite_store.close()
    tamper(tmp_path, f"PRAGMA user_version = {version}")
    with pytest.raises(StoreError, match=rf"cannot upgrade the schema from version {version} to .*set back"):
        Store.open(tmp_path / "home", env={ENV_KEY_FILE: str(tmp_path / "keys.json")})
    tamper(tmp_path, f"PRAGMA user_version = {SCHEMA_VERSION}")  # nothing was lost meanwhile
    again = Store.open(tmp_path / "home", env={ENV_KEY_FILE: str(tmp_path / "keys.json")})
    assert again.get_profile("acme").secret("client_secret").reveal() == "client-secret-value-123"


def test_a_schema_version_set_back_on_postgresql_is_one_line(pg_url: str, tmp_path: Path) -> None:
    import psycopg

    from connector_core.store.postgres import PgStore

    env = {ENV_KEY_FILE: str(tmp_path / "keys.json")}
    with PgStore(pg_url, env=env) as store:
        connected(store)
        with psycopg.connect(store.settings.conninfo, autocommit=True) as db:
            db.execute(f"DELETE FROM {store.settings.schema}.schema_migrations WHERE version > 1")
    with pytest.raises(StoreError, match=r"cannot upgrade the schema from version 1 to 2 .*set back"):
        PgStore(pg_url, env=env)


@pytest.mark.parametrize(
    "url", ["postgresql://app:hunter2secret@[bad/db", "postgresql://app:hunter2secret@h:port/db", "sqlite://[x/y"]
)
def test_a_malformed_store_url_is_one_line_without_its_password(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="store URL: malformed URL") as caught:
        open_store(url)
    assert "hunter2secret" not in str(caught.value)
    with pytest.raises(ValidationError, match="store URL: malformed URL"):
        select_store(url)
    result = run_connector(["--store-url", url, "profile", "list"], env={"CONNECTOR_HOME": str(tmp_path)})
    assert result.returncode == 1 and "Traceback" not in result.stderr and "hunter2secret" not in result.stderr
    assert result.stderr.count("\n") == 1  # the CLI refuses a password on argv before it parses the URL
    assert result.stderr.startswith(("connector: error: store URL: malformed URL", "connector: error: --store-url:"))
