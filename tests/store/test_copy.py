"""``connector store migrate --to URL``: a SQLite store copied into PostgreSQL, and the CLI's
``--store-url`` / ``CONNECTOR_STORE_URL``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import attrs
import httpx
import pytest
from support import run_connector
from support.workload import PROFILE, REDIRECT, connect_many, make_profile

from connector_core import ConnectSessions, EndUser, Plugins, Secret, SessionRequest, SessionStatus, load_plugins
from connector_core.connection import ConnectionStatus
from connector_core.connector import Connector
from connector_core.crypto import ENV_KEY_FILE
from connector_core.emulator import CONSENT_HEADER, RunningEmulator, start_emulator
from connector_core.store import PgStore, Store
from connector_core.store.contract import KeeperDue


@attrs.define
class Source:
    """A SQLite store in use: profiles, connections in several states, a pending authorization."""

    home: Path
    env: dict[str, str]
    store: Store
    emu: RunningEmulator
    plugins: Plugins
    connection_ids: list[str]
    pending_url: str
    session_token: Secret


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Source]:
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    env = {ENV_KEY_FILE: str(tmp_path / "keys.json")}
    home = tmp_path / "home"
    store = Store.open(home, env=env)
    with start_emulator(plugins.declaration("hibob"), plugins.emulator_spec("hibob"), redirect_uris=[REDIRECT]) as emu:
        make_profile(store, emu, plugins)
        make_profile(store, emu, plugins, "second-profile")
        connector = Connector(store, plugins)
        ids = connect_many(connector, emu, 3, threads=1)
        store.set_status(ids[2], ConnectionStatus.NEEDS_RECONNECT, "refresh refused: invalid_grant")
        connector.refresh(ids[1], force=True)  # a rotated refresh token, token_version 1
        # The keeper's record: the first connection's refresh failing, the second claimed.
        now = time.time()
        store.claim_due(KeeperDue(expiring_before=now + 7200), owner="keeper-a", ttl=600, now=now, limit=10)
        store.keeper_failed(ids[0], owner="keeper-a", error="provider down", next_attempt_at=now + 30, token_version=0)
        store.rotate_keys()  # values under a second key; the key file holds both
        pending = connector.begin(PROFILE).url  # the default company: not installed yet
        sessions = ConnectSessions(store, plugins)
        _, token = sessions.create(SessionRequest(EndUser("user-ada"), providers=("hibob",), profile=PROFILE))
        # One that makes a new connection even where the end user has one (its own sealed column).
        sessions.create(SessionRequest(EndUser("user-ada"), profile="second-profile", separate=True))
        connector.close()
        yield Source(home, env, store, emu, plugins, ids, pending, token)
    store.close()


def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``connector``; a URL's password goes into PGPASSWORD, never onto the command line."""
    argv = []
    for arg in args:
        parts = urlsplit(arg)
        if parts.scheme == "postgresql" and parts.password:
            env = {**env, "PGPASSWORD": parts.password}
            arg = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", "@")))
        argv.append(arg)
    done = run_connector(argv, env=env)
    return done.returncode, done.stdout, done.stderr


def snapshot(store: Store | PgStore) -> dict[str, object]:
    """Everything the store interface shows, secrets revealed."""
    profiles = {
        p.name: (p, [(n, s.reveal()) for n, s in store.get_profile(p.name).secrets]) for p in store.list_profiles()
    }
    connections = {}
    for conn in store.list_connections():
        _, access, refresh = store.get_tokens(conn.id)
        connections[conn.id] = (
            conn,
            access.reveal() if access else None,
            refresh.reveal() if refresh else None,
            store.connection_events(conn.id),
        )
    return {
        "store_id": store.store_id,
        "profiles": profiles,
        "connections": connections,
        "attention": [c.id for c in store.needing_attention()],
        "key_usage": store.key_usage(),
    }


def test_migrate_copies_everything_and_the_same_keys_read_it(source: Source, pg_url: str) -> None:
    before = snapshot(source.store)
    code, out, err = cli("--home", str(source.home), "store", "migrate", "--to", pg_url, "--json", env=source.env)
    assert code == 0, err
    report = json.loads(out)
    assert report["profiles"] == 2 and report["connections"] == 3 and report["attempts"] == 1
    assert report["sessions"] == 2 and report["keeper_states"] == 2
    assert report["secrets"] == 2 * 1 + 3 * 2 + 1 and report["verified"] is True
    assert report["store_id"] != source.store.store_id and str(urlsplit(pg_url).password) not in out
    with PgStore(pg_url, env=source.env) as target:
        assert target.store_id == report["store_id"]  # an identity of its own
        copied = snapshot(target)
        assert copied["key_usage"] == {target.keyring.primary_id: report["secrets"]}  # encrypted anew
        drop = ("store_id", "key_usage")
        assert {k: v for k, v in copied.items() if k not in drop} == {k: v for k, v in before.items() if k not in drop}
        # The keeper's record of a failing refresh is copied (so its recovery is announced once), claims are not.
        failing, claimed = (target.keeper_state(cid) for cid in source.connection_ids[:2])
        assert failing is not None and (failing.failures, failing.last_error) == (1, "provider down")
        assert failing.degraded_since == source.store.keeper_state(source.connection_ids[0]).degraded_since  # type: ignore[union-attr]
        assert claimed is not None and claimed.claimed_by is None and failing.claimed_by is None
        # The connect sessions copied under the target's seal, the separate flag with them.
        assert target.list_sessions() == source.store.list_sessions()
        assert {s.profile: s.separate for s in target.list_sessions()} == {PROFILE: False, "second-profile": True}
        # A pending connect session: its token still starts a flow.
        assert ConnectSessions(target, source.plugins).claim(source.session_token).status is SessionStatus.USED
        connector = Connector(target, source.plugins)
        # The pending authorization survives the move: its PKCE verifier decrypts on PostgreSQL.
        with httpx.Client(follow_redirects=False, trust_env=False) as browser:
            location = browser.get(source.pending_url, headers={CONSENT_HEADER: "allow"}).headers["location"]
        fresh = connector.complete(location, profile=PROFILE).connection
        assert fresh.status is ConnectionStatus.CONNECTED
        # A migrated connection works, refresh (its rotated refresh token) included.
        moved = source.connection_ids[1]
        assert connector.request(moved, "GET", "/company/named-lists").status == 200
        assert connector.refresh(moved, force=True).token_version == 2
        events = [e.reason for e in target.connection_events(source.connection_ids[2])]
        target.set_status(source.connection_ids[2], ConnectionStatus.REVOKED, "revoked")
        assert [e.reason for e in target.connection_events(source.connection_ids[2])] == [*events, "revoked"]
        connector.close()
    assert snapshot(source.store) == before  # the source is left as it was


def test_the_copy_has_its_own_keys_so_rotating_the_source_spares_it(
    source: Source, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector_core.store import copy_from_sqlite

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # each store's key file, named after its id
    monkeypatch.setenv("HOME", str(tmp_path))
    with Store.open(tmp_path / "own", env={}) as sqlite_store:
        make_profile(sqlite_store, source.emu, source.plugins)
        with PgStore(pg_url, env={}) as target:
            report = copy_from_sqlite(sqlite_store, target)
            assert report.store_id == target.store_id != sqlite_store.store_id
            assert target.keyring.path != sqlite_store.keyring.path
        rotated = sqlite_store.rotate_keys(retire=True)
        assert rotated.retired
    with PgStore(pg_url, env={}) as target:  # the copy's keys were not the source's to retire
        assert target.get_profile(PROFILE).secret("client_secret").reveal()
        assert target.rotate_keys(retire=True).retired
    with Store.open(tmp_path / "own", env={}) as sqlite_store:
        assert sqlite_store.get_profile(PROFILE).secret("client_secret").reveal()


def test_migrate_refuses_a_store_that_is_not_empty(source: Source, pg_url: str) -> None:
    assert cli("--home", str(source.home), "store", "migrate", "--to", pg_url, env=source.env)[0] == 0
    code, _, err = cli("--home", str(source.home), "store", "migrate", "--to", pg_url, env=source.env)
    assert code == 1
    assert "--to: the store at postgresql://" in err and "is not empty (2 profiles, 3 connections" in err
    with PgStore(pg_url, env=source.env) as target:
        assert len(target.list_connections()) == 3


def test_migrate_refuses_what_the_keys_here_cannot_read_unless_told(
    source: Source, pg_url: str, tmp_path: Path
) -> None:
    elsewhere = {ENV_KEY_FILE: str(tmp_path / "not-here" / "keys.json")}
    code, out, err = cli("--home", str(source.home), "store", "migrate", "--to", pg_url, env=elsewhere)
    assert code == 1 and "not-here/keys.json does not exist" in err and out == ""
    with PgStore(pg_url, env=source.env) as target:
        assert target.list_profiles() == ()  # nothing was written
    code, out, err = cli("--home", str(source.home), "store", "migrate", "--to", pg_url, "--no-verify", env=elsewhere)
    assert code == 0 and "not checked: --no-verify" in out, err
    assert not (tmp_path / "not-here").exists()
    with PgStore(pg_url, env=source.env) as target:  # where the keys are, the copy reads
        assert target.get_profile(PROFILE).secret("client_secret").reveal()
        # Seals copied as they are hold there too: a session's separate flag is stored alike.
        assert {s.profile: s.separate for s in target.list_sessions()} == {PROFILE: False, "second-profile": True}


def test_migrate_sources_and_targets_are_checked(source: Source, pg_url: str, tmp_path: Path) -> None:
    env = source.env
    missing = cli("store", "migrate", "--from", f"sqlite://{tmp_path}/nothing.db", "--to", pg_url, env=env)
    assert missing[0] == 1 and "there is no SQLite store at" in missing[2]
    assert not (tmp_path / "nothing.db").exists()
    to_sqlite = cli("--home", str(source.home), "store", "migrate", "--to", f"sqlite://{tmp_path}/x.db", env=env)
    assert to_sqlite[0] == 1 and "the target must be a PostgreSQL store" in to_sqlite[2]
    from_pg = cli("store", "migrate", "--to", pg_url, env={**env, "CONNECTOR_STORE_URL": pg_url})
    assert from_pg[0] == 2 and "the source must be a SQLite store" in from_pg[2]
    both = cli(
        "--home", str(source.home), "store", "migrate", "--from", f"sqlite://{source.home}", "--to", pg_url, env=env
    )
    assert both[0] == 2 and "give --from, or --store-url/--home, not both" in both[2]
    named = cli("store", "migrate", "--from", f"sqlite://{source.home}/connector.db", "--to", pg_url, env=env)
    assert named[0] == 0 and "Copied 2 profile(s), 3 connection(s)" in named[1], named[2]


def test_store_url_and_environment_select_postgresql_for_every_command(source: Source, pg_url: str) -> None:
    assert cli("--home", str(source.home), "store", "migrate", "--to", pg_url, env=source.env)[0] == 0
    code, out, err = cli("--store-url", pg_url, "profile", "list", "--json", env=source.env)
    assert code == 0, err
    assert sorted(p["name"] for p in json.loads(out)["profiles"]) == [PROFILE, "second-profile"]
    env = {**source.env, "CONNECTOR_STORE_URL": pg_url}
    code, out, err = cli("store", "info", "--json", env=env)
    assert code == 0, err
    info = json.loads(out)
    assert info["kind"] == "postgresql" and info["store_id"] != source.store.store_id and "***" in info["location"]
    code, out, err = cli("connections", "list", "--json", env=env)
    assert code == 0 and len(json.loads(out)["connections"]) == 3, err
    code, out, err = cli("connections", "attention", "--json", env=env)
    assert code == 0 and [c["id"] for c in json.loads(out)["connections"]] == [source.connection_ids[2]], err
    code, out, _ = cli("--home", str(source.home), "store", "info", env=env)  # --home beats the environment
    assert code == 0 and "kind: sqlite" in out
    code, _, err = cli("--store-url", "mysql://h/db", "profile", "list", env=source.env)
    assert code == 1 and "expected sqlite:///PATH or postgresql://" in err


def test_the_default_key_file_follows_the_store_id(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector_core.profiles import ProfileDraft
    from connector_core.secret import Secret

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # where the default key files go
    home = tmp_path / "home"
    with Store.open(home, env={}) as sqlite:
        sqlite.create_profile(
            ProfileDraft(
                name="acme",
                provider="hibob",
                auth_type="oauth2",
                environment="sandbox",
                credential_set="development",
                values=(("client_id", "c"),),
                secrets=(("client_secret", Secret("the-client-secret-42")),),
                scopes=(),
                actions=(),
            )
        )
        store_id = sqlite.store_id
    key_files = sorted(p.name for p in (tmp_path / "xdg").rglob("*.json"))
    assert key_files == [f"keys-{store_id}.json"]
    code, _, err = cli("--home", str(home), "store", "migrate", "--to", pg_url, env={})
    assert code == 0, err
    with PgStore(pg_url, env={}) as target:
        assert target.store_id != store_id  # its own identity, and so its own key file
        assert target.get_profile("acme").secret("client_secret").reveal() == "the-client-secret-42"
        own = f"keys-{target.store_id}.json"
    assert sorted(p.name for p in (tmp_path / "xdg").rglob("*.json")) == sorted([*key_files, own])
