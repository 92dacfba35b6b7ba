"""The store conformance suite: the behaviour every :class:`~connector_core.store.StoreLike` keeps.

A third-party store is checked by subclassing :class:`StoreConformance` and giving it
a ``store_harness`` fixture that says how to open the store and reach its SQL:

.. code-block:: python

    import pytest

    from connector_core.testing.store_conformance import StoreConformance, StoreHarness


    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store_harness(self, tmp_path):
            env = {"CONNECTOR_CORE_KEY_FILE": str(tmp_path / "keys.json")}
            return StoreHarness(
                kind="mystore",
                opener=lambda e: MyStore(tmp_path / "db", env=e),
                sql=my_raw_sql,  # (store, statement with ? placeholders, params) -> rows
                bump_schema=my_bump,  # marks the schema one version newer than the code knows
                schema_version=MY_SCHEMA_VERSION,
                env=env,
            )

:func:`sqlite_harness` and :func:`postgres_harness` are the harnesses of the two
built-in stores (the project's own ``tests/store/test_conformance.py`` runs the suite
on both); :func:`sql_store_sql` serves any :class:`~connector_core.store.sql.SqlStore`.
Every test opens the stores it needs through the harness, which closes them after.
What only one engine can show (file modes, crash safety, row locks across hosts) is
tested beside each engine, not here.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from ..connection import ConnectionStatus, ConnectSession, EndUser, Owner, SessionStatus
from ..crypto import ENV_KEY_FILE, ENV_PREVIOUS_SECRET_KEYS, ENV_SECRET_KEY, CryptoError
from ..errors import SessionError, StoreError, UnknownNameError, ValidationError
from ..events import EventType
from ..oauth import TokenSet
from ..profiles import Profile, ProfileDraft
from ..secret import Secret
from ..store import StoreLike
from ..store.contract import ConnectionStamp, KeeperDue

__all__ = ["StoreConformance", "StoreHarness", "postgres_harness", "sql_store_sql", "sqlite_harness"]

SECRET = "Sup3r-Secret-Value-9f8e7d"


@attrs.define
class StoreHarness:
    """One store under test, and what the tests need beyond the interface."""

    kind: str
    #: Opens another handle on the same store (as another process would) with these settings.
    opener: Callable[[dict[str, str]], StoreLike]
    #: Runs raw SQL with ``?`` placeholders; returns the rows, if any.
    sql: Callable[[StoreLike, str, tuple[Any, ...]], list[tuple[Any, ...]]]
    #: Marks the store's schema as one version newer than this code knows.
    bump_schema: Callable[[StoreLike], None]
    schema_version: int
    env: dict[str, str]
    opened: list[StoreLike] = attrs.Factory(list)

    def open(self, env: dict[str, str] | None = None) -> StoreLike:
        store = self.opener(self.env if env is None else env)
        self.opened.append(store)
        return store


def sql_store_sql(store: Any, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Raw SQL in a transaction of a :class:`~connector_core.store.sql.SqlStore`."""
    with store._write() as tx:
        cur = tx.execute(statement, params)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


def sqlite_harness(tmp_path: Path) -> StoreHarness:
    """The harness of a SQLite store under ``tmp_path``, its key file there too."""
    from ..store.sqlite import SCHEMA_VERSION, Store  # each engine only when asked for (sqlite3, psycopg)

    def bump(store: StoreLike) -> None:
        sql_store_sql(store, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    return StoreHarness(
        "sqlite",
        lambda e: Store.open(tmp_path / "home", env=e),
        sql_store_sql,
        bump,
        SCHEMA_VERSION,
        {ENV_KEY_FILE: str(tmp_path / "config" / "keys.json")},
    )


def postgres_harness(url: str, tmp_path: Path) -> StoreHarness:
    """The harness of the PostgreSQL store at ``url`` (an empty schema), its key file under ``tmp_path``."""
    from ..store.postgres import SCHEMA_VERSION, PgStore  # each engine only when asked for

    def bump(store: StoreLike) -> None:
        sql_store_sql(store, "INSERT INTO schema_migrations VALUES (?, 'later')", (SCHEMA_VERSION + 1,))

    return StoreHarness(
        "postgresql",
        lambda e: PgStore(url, env=e),
        sql_store_sql,
        bump,
        SCHEMA_VERSION,
        {ENV_KEY_FILE: str(tmp_path / "config" / "keys.json")},
    )


def draft(name: str = "acme-sandbox", secret: str = SECRET, **kw: Any) -> ProfileDraft:
    values: dict[str, Any] = {
        "name": name,
        "provider": "example",
        "auth_type": "oauth2",
        "environment": "sandbox",
        "credential_set": "development",
        "values": (("app_id", "APP-1"), ("client_id", "client-dev")),
        "secrets": (("client_secret", Secret(secret)), ("signing_key", Secret(secret[::-1]))),
        "scopes": ("employee_data:read", "tasks:read"),
        "actions": ("list_tasks",),
        "endpoints": (("token_url", "https://emu.example/token"), ("redirect_uri", "https://p.example/cb")),
    }
    values.update(kw)
    return ProfileDraft(**values)


def tokens(access: str = "access-1", refresh: str | None = "refresh-1", expires_in: float = 3600) -> TokenSet:
    return TokenSet(
        Secret(access),
        "Bearer",
        Secret(refresh) if refresh is not None else None,
        expires_at=time.time() + expires_in,
        scopes=("employee_data:read",),
    )


def connect(store: StoreLike, profile: Profile, n: int = 1, **kw: Any) -> str:
    conn = store.save_connection(
        profile,
        tokens(f"access-{n}", f"refresh-{n}"),
        requested=("employee_data:read", "tasks:read"),
        granted=("employee_data:read",),
        identity={"companyId": f"company-{n}"},
        provider_initiated=False,
        **kw,
    )
    return conn.id


def session(session_id: str = "sess_1", **kw: Any) -> ConnectSession:
    """A pending connect session of end user ``user-ada``, for the example provider."""
    values: dict[str, Any] = {
        "id": session_id,
        "owner": Owner(EndUser("user-ada", "ada@example.com", "Ada"), "org-1", ("tier-1",)),
        "providers": ("example",),
        "profile": None,
        "scopes": ("employee_data:read",),
        "connection_id": None,
        "redirect_url": None,
        "created_at": "2026-01-01T00:00:00.000000+00:00",
        "expires_at": time.time() + 1800,
        "status": SessionStatus.PENDING,
    }
    values.update(kw)
    return ConnectSession(**values)


class StoreConformance:
    """The suite; subclass it with a ``store_harness`` fixture (see the module doc)."""

    @pytest.fixture
    def store_harness(self) -> StoreHarness:
        pytest.fail("a StoreConformance subclass needs a store_harness fixture (see its module doc)", pytrace=False)

    @pytest.fixture
    def harness(self, store_harness: StoreHarness) -> Iterator[StoreHarness]:
        try:
            yield store_harness
        finally:
            for store in store_harness.opened:
                store.close()

    @pytest.fixture
    def store(self, harness: StoreHarness) -> StoreLike:
        return harness.open()

    # ------------------------------------------------------------------- profiles

    def test_profile_round_trip(self, store: StoreLike) -> None:
        created = store.create_profile(draft())
        loaded = store.get_profile("acme-sandbox")
        assert loaded == created
        assert loaded.id.startswith("prof_") and loaded.provider == "example" and loaded.auth_type == "oauth2"
        assert (loaded.environment, loaded.credential_set) == ("sandbox", "development")
        assert loaded.values == (("app_id", "APP-1"), ("client_id", "client-dev"))
        assert loaded.secret_names == ("client_secret", "signing_key")
        assert (
            loaded.secret("client_secret").reveal() == SECRET and loaded.secret("signing_key").reveal() == SECRET[::-1]
        )
        assert loaded.scopes == ("employee_data:read", "tasks:read") and loaded.actions == ("list_tasks",)
        assert loaded.endpoints == (
            ("token_url", "https://emu.example/token"),
            ("redirect_uri", "https://p.example/cb"),
        )
        assert loaded.created_at == loaded.updated_at and SECRET not in repr(loaded)
        bare = store.get_profile("acme-sandbox", with_secrets=False)
        assert bare.secrets == () and bare.secret_names == loaded.secret_names
        assert store.profile_by_id(created.id) == loaded
        assert store.profile_by_id(created.id, with_secrets=False) == bare

    def test_list_profiles_sorted_filtered_and_without_secrets(self, store: StoreLike) -> None:
        for name in ("b-two", "B-upper", "a_one", "a-one"):
            store.create_profile(draft(name))
        store.create_profile(draft("other", provider="acme"))
        listed = store.list_profiles()
        assert [p.name for p in listed] == ["B-upper", "a-one", "a_one", "b-two", "other"]  # bytewise order
        assert all(p.secrets == () and p.secret_names == ("client_secret", "signing_key") for p in listed)
        assert [p.name for p in store.list_profiles("acme")] == ["other"]
        assert store.list_profiles("nobody") == ()

    def test_duplicate_unknown_update_and_rename(self, store: StoreLike) -> None:
        store.create_profile(draft("one"))
        with pytest.raises(ValidationError, match="name: a profile named 'one' already exists"):
            store.create_profile(draft("one"))
        store.create_profile(draft("two"))
        with pytest.raises(ValidationError, match="a profile named 'two' already exists"):
            store.update_profile("one", draft("two"))
        before = store.get_profile("one")
        changed = draft(
            "uno",
            values=(("app_id", "APP-2"), ("client_id", "client-2")),
            secrets=(("client_secret", Secret("a-new-secret-value")),),
        )
        after = store.update_profile("one", changed)
        assert after.id == before.id and after.name == "uno" and after.value("client_id") == "client-2"
        assert (
            after.secret_names == ("client_secret",) and after.secret("client_secret").reveal() == "a-new-secret-value"
        )
        assert after.updated_at > before.updated_at and after.created_at == before.created_at
        with pytest.raises(UnknownNameError, match=r"unknown profile 'one'.*\(expected one of: two, uno\)"):
            store.get_profile("one")
        with pytest.raises(UnknownNameError, match="unknown profile 'nope'"):
            store.update_profile("nope", draft("nope"))
        with pytest.raises(StoreError, match="profile prof_missing is gone"):
            store.profile_by_id("prof_missing")

    def test_scope_change_marks_connections_for_reconnect(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        kept, revoked = connect(store, profile, 1), connect(store, profile, 2)
        store.set_status(revoked, ConnectionStatus.REVOKED, "revoked")
        store.update_profile("acme-sandbox", draft(actions=("list_tasks", "x")))  # same scopes: nothing happens
        assert store.get_connection(kept).status is ConnectionStatus.CONNECTED
        store.update_profile("acme-sandbox", draft(scopes=("employee_data:read", "goals:read")))
        marked = store.get_connection(kept)
        assert marked.status is ConnectionStatus.NEEDS_RECONNECT and marked.status_reason == "scopes changed"
        assert [e.status for e in store.connection_events(kept)][-1] is ConnectionStatus.NEEDS_RECONNECT
        assert store.get_connection(revoked).status is ConnectionStatus.REVOKED  # only usable ones are flagged

    def test_delete_profile_refuses_then_forces(self, harness: StoreHarness, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        cid = connect(store, profile)
        assert store.profile_connection_count("acme-sandbox") == 1 and store.profile_connection_count("nope") == 0
        with pytest.raises(ValidationError, match="'acme-sandbox' is used by 1 connection"):
            store.delete_profile("acme-sandbox")
        assert store.get_profile("acme-sandbox").id == profile.id
        assert store.delete_profile("acme-sandbox", force=True) == 1
        assert store.list_profiles() == () and store.list_connections() == ()
        assert harness.sql(store, "SELECT count(*) FROM secrets", ())[0][0] == 0
        with pytest.raises(UnknownNameError):
            store.get_connection(cid)
        with pytest.raises(UnknownNameError, match="unknown profile 'acme-sandbox'"):
            store.delete_profile("acme-sandbox")
        store.create_profile(draft("lonely"))
        assert store.delete_profile("lonely") == 0 and store.list_profiles() == ()

    # ------------------------------------------------------------ encryption at rest

    def test_secrets_are_encrypted_and_bound_to_their_row(self, harness: StoreHarness, store: StoreLike) -> None:
        store.create_profile(draft("one", secret="secret-one-aaaaaaaa"))
        store.create_profile(draft("two", secret="secret-two-bbbbbbbb"))
        rows = harness.sql(store, "SELECT owner_id, name, key_id, nonce, ciphertext FROM secrets", ())
        assert len(rows) == 4 and {r[2] for r in rows} == {store.keyring.primary_id}
        assert all(b"secret-" not in bytes(r[4]) and len(bytes(r[3])) == 12 for r in rows)
        (a, va), (b, vb) = [(r[0], (bytes(r[3]), bytes(r[4]))) for r in rows if r[1] == "client_secret"]
        harness.sql(
            store,
            "UPDATE secrets SET nonce = ?, ciphertext = ? WHERE owner_id = ? AND name = ?",
            (*vb, a, "client_secret"),
        )
        harness.sql(
            store,
            "UPDATE secrets SET nonce = ?, ciphertext = ? WHERE owner_id = ? AND name = ?",
            (*va, b, "client_secret"),
        )
        for name in ("one", "two"):
            with pytest.raises(CryptoError, match=f"cannot decrypt client_secret of profile '{name}': integrity check"):
                store.get_profile(name)
        assert len(store.list_profiles()) == 2  # listing needs no key

    def test_rotation_keeps_values_readable_then_retires(self, harness: StoreHarness, store: StoreLike) -> None:
        profile = store.create_profile(draft("one", secret="secret-one-aaaaaaaa"))
        cid = connect(store, profile)
        first = store.keyring.primary_id
        result = store.rotate_keys()
        assert result.reencrypted == 4 and result.primary_key != first
        assert set(result.remaining) == {first, result.primary_key} and result.retired == ()
        assert store.key_usage() == {result.primary_key: 4}
        other = harness.open()  # another process: reads the key file again
        assert other.get_profile("one").secret("client_secret").reveal() == "secret-one-aaaaaaaa"
        assert other.get_tokens(cid)[1] == Secret("access-1")
        retired = store.rotate_keys(retire=True)
        assert set(retired.retired) == {first, result.primary_key} and retired.remaining == (retired.primary_key,)
        fresh = harness.open()
        assert fresh.keyring.key_ids == (retired.primary_key,) and fresh.key_usage() == {retired.primary_key: 4}
        assert fresh.get_tokens(cid)[2] == Secret("refresh-1")

    def test_rotation_with_environment_keys(self, harness: StoreHarness, tmp_path: Path) -> None:
        old, new = base64.b64encode(b"o" * 32).decode(), base64.b64encode(b"n" * 32).decode()
        harness.open({ENV_SECRET_KEY: old}).create_profile(draft())
        with pytest.raises(CryptoError, match=f"which {ENV_SECRET_KEY} does not hold"):
            harness.open({ENV_SECRET_KEY: new}).get_profile("acme-sandbox")
        result = harness.open({ENV_SECRET_KEY: new, ENV_PREVIOUS_SECRET_KEYS: old}).rotate_keys(retire=True)
        assert result.reencrypted == 2 and len(result.retired) == 1
        reopened = harness.open({ENV_SECRET_KEY: new})
        assert reopened.get_profile("acme-sandbox").secret("client_secret").reveal() == SECRET
        assert not (tmp_path / "config").exists()  # environment keys write no key file

    def test_a_lost_key_file_is_a_clear_error_naming_the_key_file(
        self, harness: StoreHarness, store: StoreLike
    ) -> None:
        store.create_profile(draft())
        Path(harness.env[ENV_KEY_FILE]).unlink()
        reopened = harness.open()
        with pytest.raises(CryptoError, match=r"keys\.json"):
            reopened.get_profile("acme-sandbox")
        assert [p.name for p in reopened.list_profiles()] == ["acme-sandbox"]

    # ------------------------------------------------------------------- schema

    def test_schema_version_store_id_and_newer_schemas(self, harness: StoreHarness, store: StoreLike) -> None:
        assert store.schema_version == harness.schema_version
        assert len(store.store_id) == 32 and harness.open().store_id == store.store_id
        harness.bump_schema(store)
        with pytest.raises(StoreError, match=f"schema version {harness.schema_version + 1} is newer than"):
            harness.open()

    def test_close_and_reuse(self, harness: StoreHarness) -> None:
        with harness.open() as store:
            store.create_profile(draft())
        store.close()  # twice is fine
        assert store.get_profile("acme-sandbox").secret("client_secret").reveal() == SECRET  # reopens on use
        assert repr(store).startswith("<") and SECRET not in repr(store)

    # ----------------------------------------------------------------- attempts

    def test_attempts_are_single_use_and_expire(self, harness: StoreHarness, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        later = time.time() + 600
        attempt = store.create_attempt(
            profile,
            state_hash="hash-1",
            verifier=Secret("verifier-abc"),
            redirect_uri="https://p.example/cb",
            scopes=("a", "b"),
            expires_at=later,
            connection_id="conn_x",
        )
        assert attempt.id.startswith("att_") and attempt.connection_id == "conn_x"
        plain = store.create_attempt(
            profile,
            state_hash="hash-2",
            verifier=None,
            redirect_uri="https://p.example/cb",
            scopes=(),
            expires_at=later,
        )
        assert store.consume_attempt("nope") is None
        found = store.consume_attempt("hash-1")
        assert found is not None
        taken, verifier = found
        assert taken == attempt and verifier == Secret("verifier-abc")
        assert store.consume_attempt("hash-1") is None  # single use
        assert store.consume_attempt("hash-2") == (plain, None)
        store.create_attempt(
            profile, state_hash="old", verifier=Secret("v-old"), redirect_uri="r", scopes=(), expires_at=time.time() - 1
        )
        store.create_attempt(
            profile, state_hash="new", verifier=Secret("v-new"), redirect_uri="r", scopes=(), expires_at=later
        )
        assert store.consume_attempt("old") is None  # expired attempts are cleared when another is made
        assert harness.sql(store, "SELECT count(*) FROM secrets WHERE name = 'code_verifier'", ())[0][0] == 1

    # -------------------------------------------------------------- connections

    def test_save_connection_and_read_it_back(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        before = time.time()
        cid = connect(store, profile, 7)
        conn = store.get_connection(cid)
        assert cid.startswith("conn_") and conn.profile == "acme-sandbox" and conn.profile_id == profile.id
        assert (conn.provider, conn.environment, conn.auth_type) == ("example", "sandbox", "oauth2")
        assert conn.status is ConnectionStatus.CONNECTED and conn.status_reason is None and conn.token_type == "Bearer"
        assert conn.expires_at is not None and conn.expires_at > before + 3000
        assert conn.requested_scopes == ("employee_data:read", "tasks:read") and conn.granted_scopes == (
            "employee_data:read",
        )
        assert conn.identity == (("companyId", "company-7"),) and not conn.provider_initiated
        assert conn.token_version == 0 and conn.refreshed_at is None and conn.created_at == conn.updated_at
        same, access, refresh = store.get_tokens(cid)
        assert same == conn and access == Secret("access-7") and refresh == Secret("refresh-7")
        assert [(e.status, e.reason) for e in store.connection_events(cid)] == [
            (ConnectionStatus.CONNECTED, "authorized")
        ]
        with pytest.raises(UnknownNameError, match="unknown connection 'conn_nope'"):
            store.get_connection("conn_nope")
        with pytest.raises(UnknownNameError):
            store.get_tokens("conn_nope")
        assert store.connection_events("conn_nope") == ()

    def test_reauthorizing_keeps_the_id_and_replaces_the_tokens(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        cid = connect(store, profile)
        store.set_status(cid, ConnectionStatus.NEEDS_RECONNECT, "refresh refused")
        first = store.get_connection(cid)
        again = store.save_connection(
            profile,
            tokens("access-2", None),
            requested=("employee_data:read",),
            granted=("employee_data:read",),
            identity={"companyId": "company-1"},
            provider_initiated=True,
            connection_id=cid,
            reason="reconnected",
        )
        assert (
            again.id == cid and again.created_at == first.created_at and again.token_version == first.token_version + 1
        )
        assert again.status is ConnectionStatus.CONNECTED and again.status_reason is None and again.provider_initiated
        _, access, refresh = store.get_tokens(cid)
        assert access == Secret("access-2") and refresh is None  # the old grant's refresh token is gone
        assert [e.reason for e in store.connection_events(cid)] == ["authorized", "refresh refused", "reconnected"]
        fresh = connect(store, profile, 3, connection_id="conn_chosen")  # a new connection with a given id
        assert fresh == "conn_chosen" and store.get_connection(fresh).token_version == 0

    def test_the_stamp_changes_with_every_write_and_the_access_token_reads_alone(
        self, harness: StoreHarness, store: StoreLike
    ) -> None:
        """What a connector keeps between requests is checked against ``connection_stamp``: every
        write to the connection or its profile, from any handle, must change it."""
        profile = store.create_profile(draft())
        cid = connect(store, profile, 4)
        conn, access = store.get_access_token(cid)
        assert conn == store.get_connection(cid) and access == Secret("access-4")
        stamp = store.connection_stamp(cid)
        assert stamp == ConnectionStamp.of(conn, store.profile_by_id(conn.profile_id, with_secrets=False))
        assert harness.open().connection_stamp(cid) == stamp  # another process reads the same
        assert store.connection_stamp("conn_nope") is None
        with pytest.raises(UnknownNameError):
            store.get_access_token("conn_nope")
        seen = [stamp]

        def changed() -> None:
            now = harness.open().connection_stamp(cid)
            assert now is not None and now not in seen
            assert now == store.connection_stamp(cid)
            seen.append(now)

        with store.refresh_lease(cid, 30) as lease:
            lease.save(conn.token_version, tokens("access-5", "refresh-5"), ("employee_data:read",))
        changed()
        assert store.get_access_token(cid)[1] == Secret("access-5")
        store.set_status(cid, ConnectionStatus.CONNECTED, "checked")
        changed()
        store.set_owner(cid, Owner(EndUser("user-1"), None, ()))
        changed()
        store.update_profile("acme-sandbox", draft(secret="An0ther-Secret-Value-1a2b3c"))
        changed()
        other = harness.open()
        other.set_status(cid, ConnectionStatus.NEEDS_RECONNECT, "from another handle")
        changed()
        assert store.connection_stamp(cid).status == "needs_reconnect"  # type: ignore[union-attr]

    def test_credentials_are_stored_encrypted_with_the_connection(
        self, harness: StoreHarness, store: StoreLike
    ) -> None:
        profile = store.create_profile(draft())
        cid = store.save_connection(
            profile,
            None,
            requested=(),
            granted=(),
            identity={"user_id": "SERVICE-1"},
            provider_initiated=False,
            reason="connected",
            credentials={"user_id": Secret("SERVICE-1"), "user_token": Secret("token-one-cccccccc")},
        ).id
        conn, credentials = store.get_credentials(cid)
        assert conn.token_type is None and conn.expires_at is None and conn.identity == (("user_id", "SERVICE-1"),)
        assert credentials == {"user_id": Secret("SERVICE-1"), "user_token": Secret("token-one-cccccccc")}
        assert store.get_tokens(cid)[1:] == (None, None)  # credentials are not tokens
        rows = harness.sql(store, "SELECT ciphertext FROM secrets WHERE owner_id = ?", (cid,))
        assert len(rows) == 2 and all(b"cccccccc" not in bytes(r[0]) for r in rows)
        # Replacing the credentials replaces all of them; deleting the tokens deletes them too.
        store.save_connection(
            profile,
            None,
            requested=(),
            granted=(),
            identity={"user_id": "SERVICE-1"},
            provider_initiated=False,
            connection_id=cid,
            reason="credentials replaced",
            credentials={"user_token": Secret("token-two-dddddddd")},
        )
        assert store.get_credentials(cid)[1] == {"user_token": Secret("token-two-dddddddd")}
        store.set_status(cid, ConnectionStatus.DISCONNECTED, "deleted", delete_tokens=True)
        assert store.get_credentials(cid)[1] == {}
        token_only = connect(store, profile, 2)
        assert store.get_credentials(token_only)[1] == {}  # tokens are not credentials
        with pytest.raises(UnknownNameError):
            store.get_credentials("conn_nope")

    def test_connections_belong_to_end_users(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        ada = Owner(EndUser("user-ada", "ada@example.com", "Ada"), "org-1", ("tier_1", "payroll"))
        bob = Owner(EndUser("user-bob"), "org-1", ("tier-1",))
        a = connect(store, profile, 1, owner=ada)
        b = connect(store, profile, 2, owner=bob)
        nobody = connect(store, profile, 3)
        conn = store.get_connection(a)
        assert conn.owner == ada and store.get_connection(nobody).owner == Owner()
        assert not store.get_connection(nobody).owner.claimed

        def ids(**kw: Any) -> list[str]:
            return [c.id for c in store.list_connections(**kw)]

        assert ids(end_user="user-ada") == [a] and ids(end_user="user-nobody") == []
        assert sorted(ids(organisation="org-1")) == sorted([a, b]) and ids(unclaimed=True) == [nobody]
        # A tag matches whole: 'tier_1' is not 'tier-1' ('_' is no wildcard), nor 'tier' a prefix.
        assert ids(tag="tier_1") == [a] and ids(tag="tier-1") == [b] and ids(tag="tier") == []
        assert ids(end_user="user-bob", tag="payroll") == [] and ids(provider="example", end_user="user-ada") == [a]
        with pytest.raises(ValidationError, match="tag: expected a tag"):
            store.list_connections(tag='x" OR 1=1')
        # A re-authorization without an owner keeps the connection's; one with an owner sets it.
        connect(store, profile, 4, connection_id=a)
        assert store.get_connection(a).owner == ada
        connect(store, profile, 5, connection_id=nobody, owner=bob)
        assert store.get_connection(nobody).owner == bob

    def test_setting_an_owner_is_sealed_and_recorded(self, harness: StoreHarness, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        cid = connect(store, profile)
        owned = store.set_owner(cid, Owner(EndUser("user-ada"), None, ("a",)))
        assert owned.owner.end_user == EndUser("user-ada") and owned.status is ConnectionStatus.CONNECTED
        assert store.connection_events(cid)[-1].reason == "owner set: end user user-ada"
        assert store.get_tokens(cid)[1] == Secret("access-1")  # the reseal keeps the row readable
        with pytest.raises(UnknownNameError):
            store.set_owner("conn_nope", Owner())
        # Someone who can only write the database cannot hand the connection to another end user.
        harness.sql(store, "UPDATE connections SET end_user_id = ? WHERE id = ?", ("user-mallory", cid))
        with pytest.raises(StoreError, match=f"connection {cid} was changed outside connector-core") as caught:
            store.get_connection(cid)
        assert caught.value.code == "tampered"
        harness.sql(store, "UPDATE connections SET end_user_id = ? WHERE id = ?", ("user-ada", cid))
        assert store.get_connection(cid).owner.end_user == EndUser("user-ada")
        # Nor unclaim it to have it attached to someone else.
        harness.sql(store, "UPDATE connections SET end_user_id = NULL WHERE id = ?", (cid,))
        with pytest.raises(StoreError, match="was changed outside connector-core"):
            store.get_connection(cid)

    def test_an_attempt_keeps_whose_connection_it_makes(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        owner = Owner(EndUser("user-ada", display_name="Ada Lovelace"), "org-9", ("x",))
        for state, given in (("hash-o", owner), ("hash-n", None)):
            store.create_attempt(
                profile,
                state_hash=state,
                verifier=None,
                redirect_uri="https://p.example/cb",
                scopes=("a",),
                expires_at=time.time() + 600,
                owner=given,
            )
            found = store.consume_attempt(state)
            assert found is not None and found[0].owner == given

    # ----------------------------------------------------------- connect sessions

    def test_a_connect_session_round_trips_and_is_claimed_once(self, store: StoreLike) -> None:
        wanted = session()
        made = store.create_session(wanted, "hash-1")
        assert made == wanted and store.get_session("sess_1") == made
        assert store.find_session("hash-1") == made and store.find_session("hash-2") is None
        claimed = store.claim_session("hash-1", at=time.time())
        assert claimed.status is SessionStatus.USED and claimed.used_at is not None
        assert (claimed.picked_provider, claimed.picked_profile) == ("example", None)
        for token_hash, code in (("hash-1", "used"), ("hash-nope", "unknown")):
            with pytest.raises(SessionError) as caught:
                store.claim_session(token_hash, at=time.time())
            assert caught.value.code == code and token_hash not in str(caught.value)
        with pytest.raises(UnknownNameError):
            store.get_session("sess_nope")
        with pytest.raises(StoreError) as dup:
            store.create_session(session(), "hash-1")
        assert dup.value.code == "duplicate"

    def test_a_claim_records_the_pick_and_refuses_another_provider(self, store: StoreLike) -> None:
        store.create_session(session(providers=("example", "other")), "hash-1")
        with pytest.raises(ValidationError, match=r"^provider: 'third'"):
            store.claim_session("hash-1", at=time.time(), provider="third")
        assert store.get_session("sess_1").status is SessionStatus.PENDING  # a refused pick claims nothing
        picked = store.claim_session("hash-1", at=time.time(), provider="other")
        assert picked.picked_provider == "other" and picked.status is SessionStatus.USED
        store.create_session(session("sess_2", profile="acme-sandbox"), "hash-2")
        with pytest.raises(ValidationError, match=r"^profile: "):
            store.claim_session("hash-2", at=time.time(), profile="another")
        assert store.claim_session("hash-2", at=time.time()).picked_profile == "acme-sandbox"

    def test_an_expired_session_cannot_be_claimed(self, store: StoreLike) -> None:
        store.create_session(session(expires_at=time.time() + 60), "hash-1")
        with pytest.raises(SessionError) as caught:
            store.claim_session("hash-1", at=time.time() + 61)
        assert caught.value.code == "expired"
        assert store.get_session("sess_1").status is SessionStatus.EXPIRED  # recorded, then refused
        with pytest.raises(SessionError, match="expired"):
            store.claim_session("hash-1", at=time.time())  # the clock set back does not revive it

    def test_a_session_ends_once(self, store: StoreLike) -> None:
        store.create_session(session(), "hash-1")
        with pytest.raises(SessionError) as early:
            store.complete_session("sess_1", "conn_1")
        assert early.value.code == "not_started"
        store.claim_session("hash-1", at=time.time())
        done = store.complete_session("sess_1", "conn_1")
        assert done.status is SessionStatus.COMPLETED and done.result_connection_id == "conn_1"
        assert store.complete_session("sess_1", "conn_1") == done  # the same completion again
        with pytest.raises(SessionError) as late:
            store.complete_session("sess_1", "conn_2")
        assert late.value.code == "finished"
        with pytest.raises(SessionError) as late:
            store.fail_session("sess_1", "x", "y")
        assert late.value.code == "finished"
        assert store.get_session("sess_1") == done
        store.create_session(session("sess_2"), "hash-2")
        failed = store.fail_session("sess_2", "access_denied", "the end user\nrefused")
        assert (failed.status, failed.error_code, failed.error_message) == (
            SessionStatus.FAILED,
            "access_denied",
            "the end user refused",
        )
        assert store.fail_session("sess_2", "other", "later") == failed  # the first outcome stands
        with pytest.raises(SessionError, match="used"):
            store.claim_session("hash-2", at=time.time())
        with pytest.raises(ValidationError, match=r"^code: "):
            store.fail_session("sess_2", "Not A Code", "x")
        with pytest.raises(UnknownNameError):
            store.complete_session("sess_nope", "conn_1")

    def test_a_reconnect_session_completes_with_its_connection(self, store: StoreLike) -> None:
        store.create_session(session(connection_id="conn_1"), "hash-1")
        store.claim_session("hash-1", at=time.time())
        with pytest.raises(ValidationError, match=r"^connection_id: "):
            store.complete_session("sess_1", "conn_2")
        assert store.complete_session("sess_1", "conn_1").result_connection_id == "conn_1"

    def test_sessions_list_by_end_user_and_purge(self, store: StoreLike) -> None:
        at = time.time()
        store.create_session(session("sess_1"), "h1")
        store.create_session(session("sess_2", expires_at=at - 10), "h2")
        bob = Owner(EndUser("user-bob"))
        store.create_session(session("sess_3", owner=bob, expires_at=at - 10), "h3")
        store.claim_session("h1", at=at)

        def ids(**kw: Any) -> list[str]:
            return [s.id for s in store.list_sessions(**kw)]

        assert ids(end_user="user-ada") == ["sess_1", "sess_2"] and ids(end_user="user-bob") == ["sess_3"]
        assert ids(limit=1) == ["sess_1"] and ids(after="sess_1", limit=5) == ["sess_2", "sess_3"]
        assert ids(status=SessionStatus.USED) == ["sess_1"]
        assert store.purge_sessions(at) == 2 and ids() == ["sess_1"]
        # A used session (its end user still at the provider) outlives its expiry by a day.
        assert store.purge_sessions(at + 3600) == 0 and store.purge_sessions(at + 2 * 86400) == 1

    def test_a_tampered_session_is_refused(self, harness: StoreHarness, store: StoreLike) -> None:
        store.create_session(session(redirect_url="https://app.example/back"), "hash-1")
        changes = {
            "end_user_id": "user-mallory",
            "redirect_url": "https://evil.example/",
            "providers": '["other"]',
            "expires_at": time.time() + 10**6,
            "token_hash": "hash-mallory",
        }
        for column, value in changes.items():
            (row,) = harness.sql(store, f"SELECT {column} FROM connect_sessions", ())  # noqa: S608 - our names
            harness.sql(store, f"UPDATE connect_sessions SET {column} = ?", (value,))  # noqa: S608
            with pytest.raises(StoreError, match="connect session sess_1 was changed outside") as caught:
                store.get_session("sess_1")
            assert caught.value.code == "tampered"
            harness.sql(store, f"UPDATE connect_sessions SET {column} = ?", row)  # noqa: S608
            assert store.get_session("sess_1").owner == session().owner  # restored: readable again
        # A used token set back to pending does not start a flow again.
        store.claim_session("hash-1", at=time.time())
        harness.sql(store, "UPDATE connect_sessions SET status = 'pending'", ())
        with pytest.raises(StoreError, match="changed outside"):
            store.claim_session("hash-1", at=time.time())

    def test_racing_claims_have_one_winner(self, harness: StoreHarness) -> None:
        import threading  # only this test races threads

        first, second = harness.open(), harness.open()  # two handles, as two processes hold
        first.create_session(session(), "hash-1")
        barrier = threading.Barrier(8)
        won: list[str] = []
        lost: list[str | None] = []

        def claim(n: int) -> None:
            store = (first, second)[n % 2]
            barrier.wait()
            try:
                won.append(store.claim_session("hash-1", at=time.time()).id)
            except SessionError as exc:
                lost.append(exc.code)

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert won == ["sess_1"] and lost == ["used"] * 7

    def test_count_connections_counts_each_status(self, store: StoreLike) -> None:
        assert store.count_connections() == dict.fromkeys(ConnectionStatus, 0)
        profile = store.create_profile(draft("one"))
        ids = [connect(store, profile, n) for n in range(5)]
        store.set_status(ids[0], ConnectionStatus.REVOKED, "revoked")
        store.set_status(ids[1], ConnectionStatus.NEEDS_RECONNECT, "refused")
        counts = store.count_connections()
        assert set(counts) == set(ConnectionStatus)
        assert counts[ConnectionStatus.CONNECTED] == 3
        assert counts[ConnectionStatus.REVOKED] == 1
        assert counts[ConnectionStatus.NEEDS_RECONNECT] == 1
        assert sum(counts.values()) == len(store.list_connections())

    def test_list_connections_filters_and_pages_by_id(self, store: StoreLike) -> None:
        one = store.create_profile(draft("one"))
        two = store.create_profile(draft("two"))
        ids = [connect(store, one if n % 2 else two, n) for n in range(7)]
        store.set_status(ids[0], ConnectionStatus.REVOKED, "revoked")
        everything = store.list_connections()
        assert [c.id for c in everything] == sorted(ids)
        assert {c.id for c in store.list_connections(profile="one")} == {ids[n] for n in (1, 3, 5)}
        assert [c.id for c in store.list_connections(status=ConnectionStatus.REVOKED)] == [ids[0]]
        assert store.list_connections(profile="nobody") == ()
        pages, after = [], None
        while page := store.list_connections(limit=3, after=after):
            pages.append([c.id for c in page])
            after = page[-1].id
        assert [len(p) for p in pages] == [3, 3, 1] and [i for p in pages for i in p] == sorted(ids)
        assert len(store.list_connections(status=ConnectionStatus.CONNECTED, limit=2)) == 2

    def test_iter_connections_lists_what_list_connections_does_in_pages(self, store: StoreLike) -> None:
        one = store.create_profile(draft("one"))
        two = store.create_profile(draft("two"))
        ada = Owner(EndUser("user-ada"), "org-1", ("tier-1",))
        ids = [connect(store, one if n % 2 else two, n, owner=ada if n % 3 == 0 else None) for n in range(8)]
        store.set_status(ids[1], ConnectionStatus.REVOKED, "revoked")
        for kw in (
            {},
            {"profile": "one"},
            {"status": ConnectionStatus.CONNECTED},
            {"end_user": "user-ada"},
            {"organisation": "org-1", "tag": "tier-1"},
            {"unclaimed": True},
            {"provider": "example"},
            {"after": sorted(ids)[2]},
            {"limit": 5},
            {"limit": 5, "after": sorted(ids)[4]},
            {"status": ConnectionStatus.CONNECTED, "limit": 4, "after": sorted(ids)[0]},
        ):
            listed = store.list_connections(**kw)
            for page in (1, 2, 3, 500):
                assert tuple(store.iter_connections(**kw, page=page)) == listed, (kw, page)
        assert list(store.iter_connections(profile="nobody")) == []
        with pytest.raises(ValidationError, match="page"):
            store.iter_connections(page=0)
        with pytest.raises(ValidationError, match="tag: expected a tag"):
            store.iter_connections(tag='x" OR 1=1')  # checked when called, not at the first row

    def test_needing_attention_oldest_first(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        a, b, c = (connect(store, profile, n) for n in range(3))
        store.set_status(b, ConnectionStatus.NEEDS_RECONNECT, "refresh refused")
        store.set_status(a, ConnectionStatus.PENDING, "reconnect under way")
        store.set_status(c, ConnectionStatus.DISCONNECTED, "tokens deleted")
        found = store.needing_attention()
        assert [x.id for x in found] == [b, a] and found[0].status_reason == "refresh refused"

    def test_set_status_events_token_deletion_and_version_guard(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        cid = connect(store, profile)
        same = store.set_status(cid, ConnectionStatus.NEEDS_RECONNECT, "401 after a fresh refresh", if_version=5)
        assert (
            same.status is ConnectionStatus.CONNECTED and len(store.connection_events(cid)) == 1
        )  # stale verdict ignored
        marked = store.set_status(cid, ConnectionStatus.NEEDS_RECONNECT, "401 after a fresh refresh", if_version=0)
        assert marked.status is ConnectionStatus.NEEDS_RECONNECT and marked.token_version == 0
        gone = store.set_status(cid, ConnectionStatus.REVOKED, "revoked at the provider", delete_tokens=True)
        assert gone.status is ConnectionStatus.REVOKED and gone.token_version == 1
        assert store.get_tokens(cid)[1:] == (None, None)
        assert [(e.status.value, e.reason) for e in store.connection_events(cid)] == [
            ("connected", "authorized"),
            ("needs_reconnect", "401 after a fresh refresh"),
            ("revoked", "revoked at the provider"),
        ]
        with pytest.raises(UnknownNameError):
            store.set_status("conn_nope", ConnectionStatus.REVOKED, "x")

    def test_delete_connection(self, harness: StoreHarness, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        cid, other = connect(store, profile, 1), connect(store, profile, 2)
        store.delete_connection(cid)
        assert [c.id for c in store.list_connections()] == [other] and store.connection_events(cid) == ()
        assert harness.sql(store, "SELECT count(*) FROM secrets WHERE owner_id = ?", (cid,))[0][0] == 0
        with pytest.raises(UnknownNameError, match="unknown connection"):
            store.delete_connection(cid)
        assert store.get_tokens(other)[1] == Secret("access-2")

    # -------------------------------------------------------- refresh single-flight

    def test_refresh_lease_is_exclusive_reentrant_and_released(self, harness: StoreHarness, store: StoreLike) -> None:
        cid = connect(store, store.create_profile(draft()))
        other = harness.open()  # another process
        with store.refresh_lease(cid, 30, owner="worker-a") as lease:
            assert lease.held
            with store.refresh_lease(cid, 30, owner="worker-a") as again:
                assert again.held  # the same owner again
            with other.refresh_lease(cid, 30, owner="worker-b") as refused:
                assert not refused.held
            with store.refresh_lease(cid, 30, owner="worker-c") as refused:
                assert not refused.held  # another owner in this process too
            with other.refresh_lease(cid, 30, owner="worker-b") as refused:
                assert not refused.held  # neither the inner lease nor the refused ones ended it
        with other.refresh_lease(cid, 30, owner="worker-b") as lease:
            assert lease.held
        with store.refresh_lease(cid, 30, owner="worker-c") as lease:
            assert lease.held
        with store.refresh_lease("conn_nope", 30) as lease:
            assert not lease.held

    def test_saving_refreshed_tokens_rotates_and_releases(self, harness: StoreHarness, store: StoreLike) -> None:
        cid = connect(store, store.create_profile(draft()))
        other = harness.open()
        with store.refresh_lease(cid, 30, owner="worker-a") as lease:
            saved = lease.save(0, tokens("access-2", "refresh-2", 7200), ("employee_data:read", "x"))
            assert saved.token_version == 1 and saved.refreshed_at is not None and saved.granted_scopes[-1] == "x"
            assert saved.expires_at is not None and saved.expires_at > time.time() + 7000
            assert other.get_tokens(cid)[1:] == (Secret("access-2"), Secret("refresh-2"))
            assert not lease.held
            with other.refresh_lease(cid, 30, owner="worker-b") as second:
                assert second.held  # saving released the lease
                kept = second.save(1, tokens("access-3", None), ("employee_data:read",))
        assert kept.token_version == 2 and store.get_tokens(cid)[1:] == (Secret("access-3"), Secret("refresh-2"))
        assert [e.reason for e in store.connection_events(cid)] == ["authorized"]  # refreshes are not status events
        with other.refresh_lease(cid, 30) as lease:
            lease.save(2, tokens("access-4", None), ())
            with pytest.raises(StoreError, match="not held"):
                lease.save(3, tokens("access-5", None), ())  # a lease saves once

    def test_a_stale_refresh_is_not_saved(self, harness: StoreHarness, store: StoreLike) -> None:
        cid = connect(store, store.create_profile(draft()))
        with store.refresh_lease(cid, 30, owner="worker-a") as lease:
            assert lease.held
            with pytest.raises(StoreError, match="its tokens changed during the refresh"):
                lease.save(3, tokens("access-x", "refresh-x"), ())
        assert store.get_tokens(cid)[1:] == (Secret("access-1"), Secret("refresh-1"))
        assert store.get_connection(cid).token_version == 0
        with harness.open().refresh_lease(cid, 30, owner="worker-b") as lease:
            assert lease.held

    def test_a_status_change_releases_the_refresh_lease(self, harness: StoreHarness, store: StoreLike) -> None:
        cid = connect(store, store.create_profile(draft()))
        with store.refresh_lease(cid, 30, owner="worker-a") as lease:
            assert lease.held
            store.set_status(cid, ConnectionStatus.NEEDS_RECONNECT, "refresh refused: invalid_grant")
            other = harness.open()
            with other.refresh_lease(cid, 30, owner="worker-b") as second:
                assert second.held  # while the first lease's block still runs
                assert other.get_connection(cid).status is ConnectionStatus.NEEDS_RECONNECT

    def test_an_abandoned_lease_expires(self, harness: StoreHarness, store: StoreLike) -> None:
        cid = connect(store, store.create_profile(draft()))
        other = harness.open()
        with store.refresh_lease(cid, 1, owner="worker-a") as lease:  # then its holder goes silent
            assert lease.held
            deadline = time.monotonic() + 30
            while True:
                with other.refresh_lease(cid, 30, owner="worker-b") as second:
                    if second.held:
                        break
                assert time.monotonic() < deadline, "the lease never expired"
                time.sleep(0.2)
            saved = lease.save(0, tokens("access-late", "refresh-late"), ())  # not lost for all that
        assert saved.token_version == 1 and other.get_tokens(cid)[1] == Secret("access-late")

    # ------------------------------------------------------------ lifecycle events

    def test_every_change_has_its_lifecycle_event(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        owner = Owner(EndUser("user-ada", "ada@example.com", "Ada"), "org-1", ("tier-1",))
        cid = connect(store, profile, owner=owner)
        again = connect(store, profile, connection_id=cid)
        assert again == cid
        store.set_status(cid, ConnectionStatus.NEEDS_RECONNECT, "refresh refused: invalid_grant", details={"x": 1})
        store.set_status(cid, ConnectionStatus.NEEDS_RECONNECT, "still refused")  # no second event: no transition
        store.set_status(cid, ConnectionStatus.REVOKED, "revoked at the provider", delete_tokens=True)
        store.delete_connection(cid)
        events = store.list_events()
        assert [e.type.value for e in events] == [
            "connection.created",
            "connection.reconnected",
            "connection.needs_reconnect",
            "connection.revoked",
            "connection.deleted",
        ]
        assert [e.seq for e in events] == sorted(e.seq for e in events) and len({e.id for e in events}) == 5
        assert all(e.id.startswith("evt_") and len(e.id) == 30 for e in events)
        created = events[0].data["connection"]
        assert created["id"] == cid and created["profile"] == "acme-sandbox" and created["status"] == "connected"
        assert created["end_user"] == {"id": "user-ada", "email": "ada@example.com", "display_name": "Ada"}
        assert created["organisation"] == "org-1" and created["tags"] == ["tier-1"]
        assert created["identity"] == {"companyId": "company-1"}
        needs = events[2].data["details"]
        assert needs["reason"] == "refresh refused: invalid_grant" and needs["x"] == 1
        assert needs["previous_status"] == "connected"
        assert events[3].data["details"]["at_provider"] is True
        assert events[4].data["connection"]["status"] == "revoked"  # as it stood when it went
        text = repr(events) + str([e.payload() for e in events])
        assert "access-1" not in text and "refresh-1" not in text and SECRET not in text
        assert store.get_event(events[1].id) == events[1]
        with pytest.raises(UnknownNameError):
            store.get_event("evt_nope")

    def test_events_are_listed_by_type_connection_time_and_page(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        first, second = connect(store, profile, 1), connect(store, profile, 2)
        store.set_status(second, ConnectionStatus.NEEDS_RECONNECT, "refused")
        everything = store.list_events()
        assert len(everything) == 3
        assert [e.connection_id for e in store.list_events(connection_id=first)] == [first]
        only = store.list_events(types=[EventType.NEEDS_RECONNECT])
        assert [e.connection_id for e in only] == [second]
        page = store.list_events(limit=2)
        assert page == everything[:2] and store.list_events(after=page[-1].seq) == everything[2:]
        assert store.list_events(since=everything[1].at) == everything[1:]
        assert store.list_events(until=everything[1].at) == everything[:1]

    def test_scope_changes_and_session_failures_have_events(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        cid = connect(store, profile)
        with store.refresh_lease(cid, 30, owner="worker-a") as lease:
            lease.save(0, tokens("access-2", "refresh-2"), ("employee_data:read", "tasks:read"))
        with store.refresh_lease(cid, 30, owner="worker-a") as lease:
            lease.save(1, tokens("access-3", "refresh-3"), ("employee_data:read", "tasks:read"))  # same: no event
        (changed,) = store.list_events(types=[EventType.SCOPES_CHANGED])
        assert changed.data["details"]["added"] == ["tasks:read"] and changed.data["details"]["removed"] == []
        store.create_session(session("sess_f"), "f" * 64)
        store.fail_session("sess_f", "access_denied", "the end user declined")
        store.fail_session("sess_f", "access_denied", "again")  # its first outcome stands: no second event
        (failed,) = store.list_events(types=[EventType.SESSION_FAILED])
        assert failed.data["session"]["id"] == "sess_f" and failed.data["session"]["end_user"]["id"] == "user-ada"
        assert failed.data["details"] == {"code": "access_denied", "message": "the end user declined"}
        assert failed.connection_id is None

    def test_a_rolled_back_change_leaves_no_event(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        cid = connect(store, profile)
        before = store.list_events()
        with pytest.raises(StoreError), store.refresh_lease(cid, 30, owner="worker-a") as lease:
            lease.save(7, tokens("access-x", "refresh-x"), ("other:scope",))  # a stale version: refused
        assert store.list_events() == before

    # -------------------------------------------------------------------- the keeper

    def test_the_keeper_claims_what_is_due_soonest_first_and_once(
        self, harness: StoreHarness, store: StoreLike
    ) -> None:
        profile = store.create_profile(draft())
        soon, later, idle = (connect(store, profile, n) for n in range(1, 4))
        now = time.time()
        harness.sql(store, "UPDATE connections SET expires_at = ? WHERE id = ?", (now + 60, soon))
        harness.sql(store, "UPDATE connections SET refreshed_at = ? WHERE id = ?", ("2001-01-01T00:00:00+00:00", idle))
        due = KeeperDue(expiring_before=now + 300, idle=(("example", "oauth2", now - 86400),))
        first = store.claim_due(due, owner="keeper-a", ttl=60, now=now, limit=10)
        assert [c.connection_id for c in first] == [soon, idle]  # by expiry; `later` is due by no rule
        assert first[0].token_version == 0 and first[0].expires_at == now + 60 and first[0].provider == "example"
        assert (first[0].state.claimed_by, first[0].state.claimed_until, first[0].state.failures) == (
            "keeper-a",
            now + 60,
            0,
        )
        assert first[1].last_refreshed == "2001-01-01T00:00:00+00:00"
        other = harness.open()  # another keeper's process
        assert other.claim_due(due, owner="keeper-b", ttl=60, now=now, limit=10) == ()  # claimed already
        taken = other.claim_due(due, owner="keeper-b", ttl=60, now=now + 61, limit=10)  # keeper-a's claims lapsed
        assert [c.connection_id for c in taken] == [soon, idle]
        assert other.release_claims("keeper-b") == 2 and store.release_claims("keeper-b") == 0
        assert [c.connection_id for c in store.claim_due(due, owner="keeper-a", ttl=60, now=now, limit=1)] == [soon]
        tests = KeeperDue(expiring_before=0.0, tested_before=now + 5)  # none tested yet: all made before then
        claimed = other.claim_due(tests, owner="keeper-b", ttl=60, now=now, limit=10)
        assert [c.connection_id for c in claimed] == [later, idle]  # `soon` is keeper-a's
        assert store.keeper_state(later) is not None and store.keeper_state("conn_nope") is None

    def test_a_failing_refresh_has_one_event_and_its_recovery_one(self, store: StoreLike) -> None:
        cid = connect(store, store.create_profile(draft()))
        now = time.time()
        due = KeeperDue(expiring_before=now + 7200)
        (claim,) = store.claim_due(due, owner="keeper-a", ttl=60, now=now, limit=10)
        failed = store.keeper_failed(
            cid,
            owner="keeper-a",
            error="refresh: the provider answered 503\n(after 4 attempts)",
            next_attempt_at=now + 30,
            token_version=claim.token_version,
        )
        assert failed is not None and failed.failures == 1 and failed.claimed_by is None
        assert failed.next_attempt_at == now + 30 and failed.failed_version == 0 and failed.degraded_since
        assert failed.last_error == "refresh: the provider answered 503 (after 4 attempts)"  # one line
        assert store.claim_due(due, owner="keeper-a", ttl=60, now=now + 10, limit=10) == ()  # until its retry time
        (again,) = store.claim_due(due, owner="keeper-a", ttl=60, now=now + 31, limit=10)
        assert again.state.failures == 1 and again.state.degraded_since == failed.degraded_since
        second = store.keeper_failed(
            cid, owner="keeper-a", error="still down", next_attempt_at=now + 90, token_version=0
        )
        assert second is not None and second.failures == 2 and second.degraded_since == failed.degraded_since
        (failing,) = store.list_events(types=[EventType.REFRESH_FAILING])  # once per degradation
        assert failing.connection_id == cid and failing.data["connection"]["status"] == "connected"
        details = failing.data["details"]
        assert details["attempt"] == 1 and details["error"] == failed.last_error
        assert details["expires_at"].endswith("+00:00") and details["next_attempt_at"].endswith("+00:00")
        assert store.keeper_succeeded(cid, owner="keeper-a") is True
        assert store.keeper_succeeded(cid, owner="keeper-a") is False  # healthy already: no second event
        (recovered,) = store.list_events(types=[EventType.RECOVERED])
        assert recovered.data["details"] == {"attempts": 2, "degraded_since": failed.degraded_since}
        assert recovered.seq > failing.seq
        healthy = store.keeper_state(cid)
        assert healthy is not None and (healthy.failures, healthy.degraded_since, healthy.next_attempt_at) == (
            0,
            None,
            None,
        )
        # A new degradation is announced again.
        store.keeper_failed(cid, owner="keeper-a", error="down again", next_attempt_at=now + 30, token_version=0)
        assert len(store.list_events(types=[EventType.REFRESH_FAILING])) == 2

    def test_a_failing_connection_refreshed_elsewhere_is_claimed_for_its_recovery(self, store: StoreLike) -> None:
        cid = connect(store, store.create_profile(draft()))
        now = time.time()
        store.claim_due(KeeperDue(expiring_before=now + 7200), owner="keeper-a", ttl=60, now=now, limit=10)
        store.keeper_failed(cid, owner="keeper-a", error="down", next_attempt_at=now + 3600, token_version=0)
        nothing = KeeperDue(expiring_before=0.0)
        assert store.claim_due(nothing, owner="keeper-a", ttl=60, now=now, limit=10) == ()
        with store.refresh_lease(cid, 30, owner="worker-a") as lease:  # a request's refresh worked meanwhile
            lease.save(0, tokens("access-2", "refresh-2"), ("employee_data:read",))
        (claim,) = store.claim_due(nothing, owner="keeper-a", ttl=60, now=now, limit=10)
        assert claim.token_version == 1 and claim.state.failed_version == 0 and claim.state.failures == 1
        assert store.keeper_succeeded(cid, owner="keeper-a") is True
        assert store.claim_due(nothing, owner="keeper-a", ttl=60, now=now, limit=10) == ()

    def test_the_keepers_record_goes_with_its_connection(self, store: StoreLike) -> None:
        profile = store.create_profile(draft())
        cid, other = connect(store, profile, 1), connect(store, profile, 2)
        now = time.time()
        store.claim_due(KeeperDue(expiring_before=now + 7200), owner="keeper-a", ttl=60, now=now, limit=10)
        store.keeper_failed(cid, owner="keeper-a", error="down", next_attempt_at=now, token_version=0)
        store.delete_connection(cid)
        assert store.keeper_state(cid) is None
        assert store.keeper_failed(cid, owner="keeper-a", error="x", next_attempt_at=now, token_version=0) is None
        assert store.keeper_succeeded(cid, owner="keeper-a") is False
        assert store.keeper_state(other) is not None
        store.keeper_forget(other)  # a permanent failure: the connection's own status event tells
        assert store.keeper_state(other) is None
        store.set_status(other, ConnectionStatus.NEEDS_RECONNECT, "refresh refused: invalid_grant")
        assert store.claim_due(KeeperDue(expiring_before=now + 7200), owner="keeper-a", ttl=60, now=now, limit=9) == ()

    def test_the_keeper_lock_heartbeat_and_its_end(self, harness: StoreHarness, store: StoreLike) -> None:
        cid = connect(store, store.create_profile(draft()))
        other = harness.open()
        now = time.time()
        due = KeeperDue(expiring_before=now + 7200)
        with store.keeper_lock("keeper-a", ttl=30) as lock:
            assert lock.owner == "keeper-a" and lock.renew()
            store.claim_due(due, owner="keeper-a", ttl=600, now=now, limit=10)
            if lock.exclusive:
                refused = pytest.raises(StoreError, match=rf"another keeper \(pid {os.getpid()} on ")
                with refused as caught, other.keeper_lock("keeper-b", ttl=30):
                    pass
                assert caught.value.code == "keeper_running" and "\n" not in caught.value.message
            else:  # a shared store: every keeper has its own lock
                with other.keeper_lock("keeper-b", ttl=30) as second:
                    assert second.renew() and not second.exclusive
        # Its end released its claims, and the lock: another keeper takes both.
        with other.keeper_lock("keeper-b", ttl=30) as lock:
            assert lock.renew()
            assert [c.connection_id for c in other.claim_due(due, owner="keeper-b", ttl=60, now=now, limit=10)] == [cid]

    def test_a_lapsed_keeper_lock_is_taken_over_with_its_claims(self, harness: StoreHarness, store: StoreLike) -> None:
        cid = connect(store, store.create_profile(draft()))
        now = time.time()
        due = KeeperDue(expiring_before=now + 7200)
        other = harness.open()
        with store.keeper_lock("keeper-a", ttl=0.2) as lock:  # then its holder hangs: no heartbeat
            store.claim_due(due, owner="keeper-a", ttl=600, now=now, limit=10)
            deadline = time.monotonic() + 30
            while True:
                try:
                    with other.keeper_lock("keeper-b", ttl=30) as taken:
                        assert taken.renew()
                        if taken.exclusive:
                            assert not lock.renew()  # the lapsed keeper learns it lost its lock
                            claims = other.claim_due(due, owner="keeper-b", ttl=60, now=now, limit=10)
                            assert [c.connection_id for c in claims] == [cid]  # its claims went with it
                    break
                except StoreError as exc:
                    if exc.code != "keeper_running" or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
