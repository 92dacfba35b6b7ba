"""The SQLite store: round trips, encryption at rest, rotation, migrations, crashes, concurrency."""

from __future__ import annotations

import base64
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connector_core import Plugins, Store, StoreError, UnknownNameError, ValidationError, validate_profile
from connector_core.crypto import ENV_KEY_FILE, ENV_PREVIOUS_SECRET_KEYS, ENV_SECRET_KEY, CryptoError
from connector_core.profiles import ProfileDraft
from connector_core.secret import Secret
from connector_core.store.sqlite import SCHEMA_VERSION

SECRET = "Sup3r-Secret-Value-9f8e7d"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {ENV_KEY_FILE: str(tmp_path / "config" / "keys.json")}


@pytest.fixture
def store(tmp_path: Path, env: dict[str, str]) -> Store:
    return Store.open(tmp_path / "home", env=env)


def draft(hibob_plugins: Plugins, name: str = "acme-sandbox", secret: str = SECRET, **kw: object) -> ProfileDraft:
    values = {"app_id": "APP-1", "client_id": "client-dev", "client_secret": Secret(secret)}
    return validate_profile(hibob_plugins.declaration("hibob"), name=name, values=values, **kw)  # type: ignore[arg-type]


def add_connection(store: Store, profile_name: str, token: str = "access-token-value-123") -> str:
    """Connections arrive with the connect flow; until then the tests insert them directly."""
    profile = store.get_profile(profile_name, with_secrets=False)
    cid = f"conn_{random.getrandbits(64):x}"
    with store._write() as conn:
        conn.execute(
            "INSERT INTO connections (id, profile_id, provider, environment, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, 'connected', 'now', 'now')",
            (cid, profile.id, profile.provider, profile.environment),
        )
        store._put_secret(conn, cid, "access_token", Secret(token))
        store._seal(conn, "connections", cid)
    return cid


def test_round_trip_of_every_field(store: Store, hibob_plugins: Plugins) -> None:
    created = store.create_profile(
        draft(hibob_plugins, scopes="employee_data:read tasks:write", actions=["list_tasks"], environment="production")
    )
    loaded = store.get_profile("acme-sandbox")
    assert loaded == created
    assert loaded.id.startswith("prof_") and loaded.provider == "hibob" and loaded.auth_type == "oauth2"
    assert (loaded.environment, loaded.credential_set) == ("production", "production")
    assert loaded.values == (("app_id", "APP-1"), ("client_id", "client-dev"))
    assert loaded.secret_names == ("client_secret",)
    assert loaded.secret("client_secret").reveal() == SECRET
    assert loaded.scopes == ("employee_data:read", "tasks:write") and loaded.actions == ("list_tasks",)
    assert loaded.created_at == loaded.updated_at
    assert SECRET not in repr(loaded)
    listed = store.list_profiles()
    assert [p.name for p in listed] == ["acme-sandbox"] and listed[0].secrets == ()
    with pytest.raises(ValidationError, match="read without its secrets"):
        listed[0].secret("client_secret")
    assert store.list_profiles("other") == ()


def test_files_are_private_and_hold_no_plain_secret(store: Store, hibob_plugins: Plugins, tmp_path: Path) -> None:
    store.create_profile(draft(hibob_plugins))
    add_connection(store, "acme-sandbox", token="AccessTok-abcdef123456")
    home = tmp_path / "home"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in home.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        raw = path.read_bytes()
        assert SECRET.encode() not in raw and b"AccessTok-abcdef123456" not in raw, path
    store.close()
    raw = (home / "connector.db").read_bytes()
    assert SECRET.encode() not in raw


def test_ciphertexts_swapped_between_rows_fail(store: Store, hibob_plugins: Plugins) -> None:
    store.create_profile(draft(hibob_plugins, name="one", secret="secret-one-aaaaaaaa"))
    store.create_profile(draft(hibob_plugins, name="two", secret="secret-two-bbbbbbbb"))
    conn = store._connect()
    rows = {r[0]: r[1:] for r in conn.execute("SELECT owner_id, nonce, ciphertext FROM secrets")}
    (a, va), (b, vb) = rows.items()
    conn.execute("UPDATE secrets SET nonce = ?, ciphertext = ? WHERE owner_id = ?", (*vb, a))
    conn.execute("UPDATE secrets SET nonce = ?, ciphertext = ? WHERE owner_id = ?", (*va, b))
    for name in ("one", "two"):
        with pytest.raises(CryptoError, match=f"cannot decrypt client_secret of profile '{name}': integrity check"):
            store.get_profile(name)


def test_rotation_keeps_every_value_readable_then_retires(
    store: Store, hibob_plugins: Plugins, env: dict[str, str], tmp_path: Path
) -> None:
    store.create_profile(draft(hibob_plugins, name="one", secret="secret-one-aaaaaaaa"))
    cid = add_connection(store, "one", token="token-of-conn-1234")
    first = store.keyring.primary_id
    result = store.rotate_keys()
    assert (
        result.reencrypted == 2 and result.primary_key != first and set(result.remaining) == {first, result.primary_key}
    )
    assert store.key_usage() == {result.primary_key: 2}
    fresh = Store.open(tmp_path / "home", env=env)  # another process: reads the key file again
    assert fresh.get_profile("one").secret("client_secret").reveal() == "secret-one-aaaaaaaa"
    with fresh._read() as tx:
        assert fresh._secrets_of(tx, cid, "c")["access_token"].reveal() == "token-of-conn-1234"
    retired = store.rotate_keys(retire=True)
    assert set(retired.retired) == {first, result.primary_key} and retired.remaining == (retired.primary_key,)
    fresh = Store.open(tmp_path / "home", env=env)
    assert fresh.keyring.key_ids == (retired.primary_key,)
    assert fresh.get_profile("one").secret("client_secret").reveal() == "secret-one-aaaaaaaa"


def test_rotation_with_environment_keys(tmp_path: Path, hibob_plugins: Plugins) -> None:
    old, new = base64.b64encode(b"o" * 32).decode(), base64.b64encode(b"n" * 32).decode()
    home = tmp_path / "home"
    Store.open(home, env={ENV_SECRET_KEY: old}).create_profile(draft(hibob_plugins))
    with pytest.raises(CryptoError, match=f"which {ENV_SECRET_KEY} does not hold"):
        Store.open(home, env={ENV_SECRET_KEY: new}).get_profile("acme-sandbox")
    both = Store.open(home, env={ENV_SECRET_KEY: new, ENV_PREVIOUS_SECRET_KEYS: old})
    result = both.rotate_keys(retire=True)
    assert result.reencrypted == 1 and len(result.retired) == 1
    assert (
        Store.open(home, env={ENV_SECRET_KEY: new}).get_profile("acme-sandbox").secret("client_secret").reveal()
        == SECRET
    )
    assert not (tmp_path / "config").exists()


def test_lost_key_file_gives_a_clear_error_naming_the_profile(
    store: Store, hibob_plugins: Plugins, env: dict[str, str], tmp_path: Path
) -> None:
    store.create_profile(draft(hibob_plugins))
    Path(env[ENV_KEY_FILE]).unlink()
    reopened = Store.open(tmp_path / "home", env=env)
    with pytest.raises(
        CryptoError,
        match=r"cannot decrypt client_secret of profile 'acme-sandbox': it was "
        r"encrypted with key \w+, which .*keys.json does not hold",
    ):
        reopened.get_profile("acme-sandbox")
    assert [p.name for p in reopened.list_profiles()] == ["acme-sandbox"]  # listing needs no key


def test_duplicate_names_update_and_delete(store: Store, hibob_plugins: Plugins) -> None:
    store.create_profile(draft(hibob_plugins, name="one"))
    with pytest.raises(ValidationError, match="name: a profile named 'one' already exists"):
        store.create_profile(draft(hibob_plugins, name="one"))
    before = store.get_profile("one")
    decl = hibob_plugins.declaration("hibob")
    changed = validate_profile(
        decl, name="uno", values={"client_id": "client-2"}, scopes=["employee_data:read"], previous=before
    )
    after = store.update_profile("one", changed)
    assert after.id == before.id and after.name == "uno" and after.value("client_id") == "client-2"
    assert after.secret("client_secret").reveal() == SECRET and after.scopes == ("employee_data:read",)
    assert after.updated_at > before.updated_at and after.created_at == before.created_at
    with pytest.raises(UnknownNameError, match=r"unknown profile 'one' \(expected one of: uno\)"):
        store.get_profile("one")
    add_connection(store, "uno")
    with pytest.raises(ValidationError, match="'uno' is used by 1 connection"):
        store.delete_profile("uno")
    assert store.get_profile("uno").id == before.id
    assert store.delete_profile("uno", force=True) == 1
    assert store.list_profiles() == ()
    assert store._connect().execute("SELECT count(*) FROM secrets").fetchone()[0] == 0
    with pytest.raises(UnknownNameError):
        store.delete_profile("uno")


def test_schema_version_and_migrations(store: Store, tmp_path: Path, env: dict[str, str]) -> None:
    assert store.schema_version == SCHEMA_VERSION
    store_id = store.store_id
    assert Store.open(tmp_path / "home", env=env).store_id == store_id
    store._connect().execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(
        StoreError,
        match=f"schema version {SCHEMA_VERSION + 1} is newer than this connector-core "
        f"supports \\({SCHEMA_VERSION}\\); upgrade",
    ):
        Store.open(tmp_path / "home", env=env)


def test_not_a_database_and_unreadable_files(tmp_path: Path, env: dict[str, str]) -> None:
    home = tmp_path / "junk"
    home.mkdir()
    (home / "connector.db").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a connector-core database, or damaged"):
        Store.open(home, env=env)
    assert (home / "connector.db").read_bytes().startswith(b"this is not sqlite")
    if os.geteuid() != 0:  # root reads everything; the check below is for ordinary users
        locked = tmp_path / "locked"
        locked.mkdir()
        (locked / "connector.db").write_bytes(b"")
        (locked / "connector.db").chmod(0)
        with pytest.raises(StoreError, match="cannot read and write it"):
            Store.open(locked, env=env)


def test_home_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOR_HOME", str(tmp_path / "h"))
    monkeypatch.setenv(ENV_KEY_FILE, str(tmp_path / "k.json"))
    assert Store.open().path == tmp_path / "h" / "connector.db"


# --------------------------------------------------------------- processes

WORKER = textwrap.dedent(
    """
    import sys
    from connector_core import Store
    from connector_core.profiles import ProfileDraft
    from connector_core.secret import Secret

    home, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store.open(home)

    def draft(name, n):
        return ProfileDraft(name=name, provider="hibob", auth_type="oauth2", environment="sandbox",
                            credential_set="development", values=(("app_id", "A"), ("client_id", f"cid-{n}")),
                            secrets=(("client_secret", Secret(f"secret-{n}-xxxxxxxxxxxx")),),
                            scopes=("employee_data:read",), actions=())

    n = 0
    while count <= 0 or n < count:
        n += 1
        name = f"{prefix}-{n % 7}"
        try:
            store.update_profile(name, draft(name, n))
        except Exception:
            store.create_profile(draft(name, n))
    print("done", n, flush=True)
    """
)


def worker_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env[ENV_KEY_FILE] = str(tmp_path / "keys.json")
    return env


def check_consistent(home: Path, env: dict[str, str]) -> int:
    store = Store.open(home, env=env)
    assert store._connect().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    profiles = store.list_profiles()
    for listed in profiles:
        profile = store.get_profile(listed.name)
        n = profile.value("client_id").removeprefix("cid-")  # type: ignore[union-attr]
        assert profile.secret("client_secret").reveal() == f"secret-{n}-xxxxxxxxxxxx", "half-written profile"
    store.close()
    return len(profiles)


def test_kill_9_during_writes_leaves_a_consistent_store(tmp_path: Path) -> None:
    home, env = tmp_path / "home", worker_env(tmp_path)
    rng = random.Random(1234)
    seen = 0
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(home), "p", "0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.35 + rng.random() * 0.4)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        seen = max(seen, check_consistent(home, {k: v for k, v in env.items() if k.startswith("CONNECTOR")}))
    assert seen > 0


def test_two_processes_writing_at_once_both_succeed(tmp_path: Path) -> None:
    home, env = tmp_path / "home", worker_env(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(home), prefix, "60"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("a", "b")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in err and out.strip() == "done 60"
    assert check_consistent(home, {ENV_KEY_FILE: env[ENV_KEY_FILE]}) == 14
