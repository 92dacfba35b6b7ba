"""What only the PostgreSQL store shows: URLs, schemas, keys across hosts, row locks across processes,
and the connect flow end to end on it. The shared behaviour is in test_store_conformance.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support import profile_draft
from support.workload import PROFILE, REDIRECT, connect_many, make_profile

from connector_core import StoreError, ValidationError, load_plugins, refresh_all
from connector_core.connector import Connector
from connector_core.crypto import ENV_KEY_FILE, CryptoError
from connector_core.emulator import CONSENT_HEADER, RunningEmulator, start_emulator
from connector_core.errors import UsageError
from connector_core.oauth import TokenSet
from connector_core.profiles import ProfileDraft
from connector_core.secret import Secret
from connector_core.store import ENV_STORE_URL, Store, open_store, select_store, sqlite_path, store_kind
from connector_core.store.postgres import MIGRATIONS, SCHEMA_VERSION, PgSettings, PgStore
from connector_core.testing.postgres import fresh_schema, with_params


def draft(name: str = "acme") -> ProfileDraft:
    return profile_draft(name)


def connection(store: PgStore) -> str:
    profile = store.create_profile(draft())
    return store.save_connection(
        profile,
        TokenSet(Secret("access-1"), "Bearer", Secret("refresh-1"), expires_at=time.time() + 3600),
        requested=(),
        granted=(),
        identity={},
        provider_initiated=False,
    ).id


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {ENV_KEY_FILE: str(tmp_path / "keys.json")}


@pytest.fixture
def store(pg_url: str, env: dict[str, str]) -> Iterator[PgStore]:
    with PgStore(pg_url, env=env) as opened:
        yield opened


# ---------------------------------------------------------------- URLs


def test_settings_from_url_keep_our_parameters_out_of_libpq() -> None:
    settings = PgSettings.from_url(
        "postgresql://app:s3cr%40t@db.example:5433/connector?sslmode=require&schema=tenant_a"
        "&pool_max_size=20&lock_pool_max_size=4&lock_timeout=0.5"
    )
    assert settings.schema == "tenant_a" and settings.pool_max_size == 20 and settings.lock_pool_max_size == 4
    assert settings.lock_timeout == 0.5 and settings.pool_min_size == 1
    assert "schema" not in settings.conninfo and "pool_max_size" not in settings.conninfo
    assert "sslmode=require" in settings.conninfo and "application_name=connector-core" in settings.conninfo
    assert "s3cr" not in settings.display and settings.display.startswith("postgresql://app:***@db.example:5433/")
    assert "s3cr" not in repr(settings)
    defaults = PgSettings.from_url("postgres://localhost/db")
    assert (defaults.schema, defaults.pool_max_size, defaults.lock_timeout) == ("connector_core", 10, 5.0)
    for bad, message in [
        ("postgresql://h/db?schema=Robert'); DROP", "schema must be a lower-case SQL identifier"),
        ("postgresql://h/db?pool_max_size=lots", "pool_max_size must be a number"),
        ("postgresql://h/db?pool_max_size=0", "pool_max_size must be at least 1"),
        ("mysql://h/db", "expected postgresql://"),
    ]:
        with pytest.raises(ValidationError, match=message):
            PgSettings.from_url(bad)


def test_the_store_url_selects_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert store_kind("sqlite:///x.db") == "sqlite" and store_kind("postgresql://h/d") == "postgresql"
    assert store_kind("postgres://h/d") == "postgresql"
    with pytest.raises(
        ValidationError, match=r"expected sqlite:///PATH or postgresql://\.\.\., got 'mysql://u:\*\*\*@h/d'"
    ):
        store_kind("mysql://u:pw@h/d")
    assert sqlite_path("sqlite:///var/lib/c/connector.db") == Path("/var/lib/c/connector.db")
    assert sqlite_path("sqlite:////var/lib/c.db") == Path("/var/lib/c.db")
    assert sqlite_path("sqlite:rel/c.db") == Path("rel/c.db")
    assert sqlite_path(f"sqlite://{tmp_path}") == tmp_path / "connector.db"  # a folder: the store in it
    with pytest.raises(ValidationError, match="needs a path"):
        sqlite_path("sqlite://")
    assert select_store(env={"CONNECTOR_HOME": str(tmp_path / "home")}) == (
        "sqlite",
        tmp_path / "home" / "connector.db",
    )
    monkeypatch.setenv(ENV_STORE_URL, f"sqlite://{tmp_path}/from-env.db")  # env=None: the process's environment
    assert select_store() == ("sqlite", tmp_path / "from-env.db")
    assert select_store(env={ENV_STORE_URL: "postgresql://h/d"}) == ("postgresql", "postgresql://h/d")
    assert select_store(home=tmp_path / "h", env={ENV_STORE_URL: "postgresql://h/d"})[0] == "sqlite"  # --home wins
    assert select_store("sqlite:///a.db", env={ENV_STORE_URL: "postgresql://h/d"}) == ("sqlite", Path("/a.db"))
    with pytest.raises(UsageError, match="give --store-url or --home, not both"):
        select_store("sqlite:///a.db", tmp_path)
    opened = open_store(f"sqlite:///{tmp_path}/s/connector.db", env={ENV_KEY_FILE: str(tmp_path / "k.json")})
    assert isinstance(opened, Store) and opened.path == tmp_path / "s" / "connector.db"


def test_open_store_opens_postgresql_from_the_environment(pg_url: str, env: dict[str, str]) -> None:
    with open_store(env={**env, ENV_STORE_URL: pg_url}) as store:
        assert isinstance(store, PgStore) and store.schema_version == SCHEMA_VERSION
        assert "***" in str(store.path) and pg_url.split("@")[0].split(":")[-1] not in str(store.path)


def test_an_unreachable_server_is_a_one_line_error(env: dict[str, str]) -> None:
    from connector_core.testing import free_port

    with pytest.raises(
        StoreError, match=r"database postgresql://u:\*\*\*@127\.0\.0\.1:\d+/db.*: connecting failed"
    ) as info:
        PgStore(f"postgresql://u:hunter2@127.0.0.1:{free_port()}/db?connect_timeout=2", env=env)
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------- schema


def test_schema_is_created_once_by_racing_processes_and_versioned(postgres_server: str, env: dict[str, str]) -> None:
    with fresh_schema(postgres_server) as url:
        with ThreadPoolExecutor(6) as pool:  # six replicas start at once
            stores = list(pool.map(lambda _: PgStore(url, env=env), range(6)))
        ids = {s.store_id for s in stores}
        assert len(ids) == 1 and all(s.schema_version == SCHEMA_VERSION for s in stores)
        with stores[0]._conn() as conn:
            rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
        assert [r[0] for r in rows] == sorted(MIGRATIONS)
        for s in stores:
            s.close()


def test_tables_live_in_their_own_schema(postgres_server: str, env: dict[str, str]) -> None:
    import psycopg

    with fresh_schema(postgres_server, "tenant_a") as a, fresh_schema(postgres_server, "tenant_b") as b:
        with PgStore(a, env=env) as one, PgStore(b, env={ENV_KEY_FILE: env[ENV_KEY_FILE] + ".b"}) as two:
            one.create_profile(draft("only-in-a"))
            assert [p.name for p in one.list_profiles()] == ["only-in-a"] and two.list_profiles() == ()
            assert one.store_id != two.store_id
        schema = a.split("schema=")[1]
        with psycopg.connect(postgres_server) as conn:
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
                )
            }
            public = conn.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_name = 'profiles'"
            ).fetchone()
    assert {
        "schema_migrations",
        "meta",
        "profiles",
        "connections",
        "secrets",
        "attempts",
        "connection_events",
    } <= tables
    assert public == (0,)


# ----------------------------------------------------------------- keys


def test_a_host_without_the_keys_never_makes_new_ones(pg_url: str, env: dict[str, str], tmp_path: Path) -> None:
    with PgStore(pg_url, env=env) as first:
        first.create_profile(draft())
    other_key_file = tmp_path / "other-host" / "keys.json"
    with PgStore(pg_url, env={ENV_KEY_FILE: str(other_key_file)}) as second:
        assert [p.name for p in second.list_profiles()] == ["acme"]  # listing needs no key
        with pytest.raises(
            CryptoError, match=r"key file .*other-host/keys\.json does not exist and CONNECTOR_CORE_SECRET_KEY"
        ):
            second.get_profile("acme")
        with pytest.raises(CryptoError):
            second.create_profile(draft("second"))
    assert not other_key_file.exists()  # no second key ring was started behind the first one's back


# ---------------------------------------------------------- refresh locks


def waiting_on_a_lock(server: str) -> int:
    import psycopg

    with psycopg.connect(server) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND application_name = 'connector-core'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_waiter_blocks_on_the_row_and_then_reads_the_fresh_tokens(
    pg_url: str, postgres_server: str, env: dict[str, str]
) -> None:
    url = with_params(pg_url, lock_timeout="30")
    with PgStore(url, env=env) as holder, PgStore(url, env=env) as waiter:
        cid = connection(holder)
        outcome: dict[str, object] = {}

        def wait() -> None:
            with waiter.refresh_lease(cid, 60, owner="waiter") as waiting:
                outcome["taken"] = waiting.held
                conn, access, refresh = waiting.read()  # the engine's re-read after the lock
                outcome["read"] = (conn.token_version, access, refresh)

        with holder.refresh_lease(cid, 60, owner="holder") as lease:
            assert lease.held
            thread = threading.Thread(target=wait)
            thread.start()
            deadline = time.monotonic() + 30
            while waiting_on_a_lock(postgres_server) == 0:
                assert time.monotonic() < deadline and thread.is_alive(), "the waiter never waited"
                time.sleep(0.02)
            assert "taken" not in outcome
            lease.save(0, TokenSet(Secret("access-2"), "Bearer", Secret("refresh-2")), ())
        thread.join(timeout=60)
        assert outcome == {"taken": True, "read": (1, Secret("access-2"), Secret("refresh-2"))}
        assert waiter.stats.waited == 1 and waiter.stats.released_unused == 1 and waiter.stats.timed_out == 0
        assert holder.stats.acquired == 1 and holder.stats.saved == 1


def test_a_holder_killed_mid_refresh_releases_the_lock_at_once(
    pg_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    url = with_params(pg_url, lock_timeout="60")
    with PgStore(url, env=env) as store:
        cid = connection(store)
        script = textwrap.dedent(
            """
            import sys, time
            from connector_core.store import PgStore
            store = PgStore(sys.argv[1])
            with store.refresh_lease(sys.argv[2], 3600, owner="doomed") as lease:
                assert lease.held
                print("locked", flush=True)
                time.sleep(3600)
            """
        )
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
        child_env[ENV_KEY_FILE] = env[ENV_KEY_FILE]
        proc = subprocess.Popen(
            [sys.executable, "-c", script, url, cid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            # The lease said an hour; the dead holder's session ended, and with it the lock.
            with store.refresh_lease(cid, 30, owner="survivor") as lease:
                assert lease.held
                assert store.stats.timed_out == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


def test_another_owner_on_the_same_thread_is_refused_without_waiting(store: PgStore) -> None:
    # One event loop (one thread) drives many refreshes: waiting for its own lock would hang it.
    cid = connection(store)
    with store.refresh_lease(cid, 30, owner="task-1") as first:
        assert first.held
        with store.refresh_lease(cid, 30, owner="task-2") as second:
            assert not second.held
        assert store.stats.waited == 1 and store.stats.timed_out == 1


# ------------------------------------------------- the connect flow on PostgreSQL


@pytest.fixture
def emu_world(pg_url: str, env: dict[str, str]) -> Iterator[tuple[RunningEmulator, PgStore, Connector]]:
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    with (
        PgStore(pg_url, env=env) as store,
        start_emulator(plugins.declaration("hibob"), plugins.emulator_spec("hibob"), redirect_uris=[REDIRECT]) as emu,
    ):
        connector = Connector(store, plugins)
        make_profile(store, emu, plugins)
        yield emu, store, connector
        connector.close()


def test_connect_request_and_refresh_on_401(emu_world: tuple[RunningEmulator, PgStore, Connector]) -> None:
    emu, store, connector = emu_world
    start = connector.begin(PROFILE)
    with httpx.Client(follow_redirects=False, trust_env=False) as browser:
        location = browser.get(start.url, headers={CONSENT_HEADER: "allow"}).headers["location"]
    conn = connector.complete(location, profile=PROFILE).connection
    assert connector.test(conn.id).ok
    emu.advance_clock(7200)  # the server expires the token; the store still thinks it valid
    assert connector.request(conn.id, "GET", "/company/named-lists").status == 200
    assert emu.stats.token_requests["refresh_token"] == 1 and store.get_connection(conn.id).token_version == 1
    assert "postgresql://" in repr(connector)


def test_50_threads_one_expired_connection_one_refresh(emu_world: tuple[RunningEmulator, PgStore, Connector]) -> None:
    emu, store, connector = emu_world
    (cid,) = connect_many(connector, emu, 1)
    with store._write() as db:
        db.execute("UPDATE connections SET expires_at = 0 WHERE id = %s", (cid,))
    barrier = threading.Barrier(50)

    def hit(_: int) -> int:
        barrier.wait()
        return connector.request(cid, "GET", "/company/named-lists").status

    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(hit, range(50)))
    assert statuses == [200] * 50
    assert emu.stats.token_requests["refresh_token"] == 1 and store.stats.saved == 1


def test_bulk_refresh_in_one_event_loop(emu_world: tuple[RunningEmulator, PgStore, Connector]) -> None:
    # More refreshes in flight (concurrency 48) than the lock pool holds (16 by default).
    emu, store, connector = emu_world
    ids = connect_many(connector, emu, 60)
    with store._write() as db:
        db.execute("UPDATE connections SET expires_at = 0 WHERE id = ANY(%s)", (ids[:40],))
    report = refresh_all(connector, concurrency=48)
    assert (report.refreshed, report.skipped, report.failed) == (40, 20, ())
    assert emu.stats.token_requests["refresh_token"] == 40
    assert sorted(c.token_version for c in store.list_connections()) == [0] * 20 + [1] * 40


def test_bulk_refresh_runs_its_store_work_off_the_event_loop(
    emu_world: tuple[RunningEmulator, PgStore, Connector],
) -> None:
    # Each refresh keeps one thread for its lease, reads and save (the lease is that thread's transaction).
    emu, store, connector = emu_world
    ids = connect_many(connector, emu, 12)
    seen: list[tuple[str, str, int]] = []
    for name in ("_take_lease", "get_tokens", "_save_refresh"):

        def recorded(cid: str, *args: object, _name: str = name, _real: object = getattr(store, name)) -> object:
            seen.append((_name, cid, threading.get_ident()))
            return _real(cid, *args)  # type: ignore[operator]

        setattr(store, name, recorded)
    report = refresh_all(connector, concurrency=4, force=True)
    assert (report.refreshed, report.failed) == (12, ()) and emu.stats.token_requests["refresh_token"] == 12
    assert store.stats.saved == 12 and store.stats.released_unused == 0
    assert threading.get_ident() not in {thread for _, _, thread in seen}
    for cid in ids:
        assert len({thread for _, c, thread in seen if c == cid}) == 1, "a refresh moved between threads"
    assert sorted(name for name, _, _ in seen) == ["_save_refresh"] * 12 + ["_take_lease"] * 12 + ["get_tokens"] * 12


# ------------------------------------------------- passwords and TLS


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@db.example/platform",
        "postgresql://app@db.example,127.0.0.1/platform?sslmode=prefer",
        "postgresql:///platform?host=db.example",
        "postgresql://app@10.0.0.7:5432/platform?sslmode=disable",
    ],
)
def test_a_remote_server_needs_tls_unless_plaintext_is_allowed(url: str) -> None:
    with pytest.raises(ValidationError, match=r"store URL: the server [\w.]+ is not on this machine.*sslmode=require"):
        PgSettings.from_url(url, {})
    assert "allow_plaintext" not in PgSettings.from_url(with_params(url, allow_plaintext="true"), {}).conninfo
    for mode in ("require", "verify-ca", "verify-full"):
        PgSettings.from_url(url.replace("sslmode=", "x=") + ("&" if "?" in url else "?") + f"sslmode={mode}", {})
    PgSettings.from_url(url.split("?")[0], {"PGSSLMODE": "verify-full"})


def test_a_local_server_needs_no_tls() -> None:
    for url in (
        "postgresql://a@localhost/d",
        "postgresql://a@127.0.0.1:5/d",
        "postgresql://a@[::1]/d",
        "postgresql:///d",
    ):
        PgSettings.from_url(url, {})
    PgSettings.from_url("postgresql:///d?host=/var/run/postgresql", {})


def test_a_password_on_the_command_line_is_refused_and_pgpassword_works(pg_url: str, tmp_path: Path) -> None:
    from urllib.parse import urlsplit

    from support import run_connector

    password = str(urlsplit(pg_url).password)
    env = {ENV_KEY_FILE: str(tmp_path / "keys.json"), "CONNECTOR_CORE_PLUGINS": "hibob"}
    for argv in (["--store-url", pg_url, "store", "info"], ["store", "migrate", "--to", pg_url]):
        refused = run_connector(argv, env=env)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr and password not in refused.stderr
        assert "holds a password" in refused.stderr and refused.stderr.count("\n") == 1
    bare = pg_url.replace(f":{password}@", "@")
    info = run_connector(["--store-url", bare, "store", "info"], env={**env, "PGPASSWORD": password})
    assert info.returncode == 0, info.stderr
    url_file = tmp_path / "store-url"
    url_file.write_text(pg_url + "\n")
    url_file.chmod(0o600)
    from_file = run_connector(["store", "info", "--json"], env={**env, "CONNECTOR_STORE_URL_FILE": str(url_file)})
    assert from_file.returncode == 0 and password not in from_file.stdout, from_file.stderr
    url_file.chmod(0o644)
    shared = run_connector(["store", "info"], env={**env, "CONNECTOR_STORE_URL_FILE": str(url_file)})
    assert shared.returncode == 1 and "other users can read it" in shared.stderr and password not in shared.stderr
