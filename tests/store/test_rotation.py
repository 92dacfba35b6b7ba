"""Key rotation with other processes holding the store open: nothing is lost, no retired key is used."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import profile_draft

from connector_core.crypto import ENV_KEY_FILE, CryptoError
from connector_core.profiles import ProfileDraft
from connector_core.store import Store, open_store


def draft(name: str, secret: str) -> ProfileDraft:
    return profile_draft(name, secret)


WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from support import profile_draft as draft
    from connector_core.store import open_store

    key_file, go = sys.argv[1:3]
    store = open_store(env={"CONNECTOR_CORE_KEY_FILE": key_file, "CONNECTOR_STORE_URL": os.environ["STORE"]})
    assert store.get_profile("first").secret("client_secret").reveal() == "secret-of-first-1"  # the ring is loaded
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.01)
    store.create_profile(draft("late", "secret-of-late-22"))  # written after the rotation, by a stale process
    print(store.get_profile("first").secret("client_secret").reveal(), flush=True)
    """
)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_rotate_and_retire_while_another_process_holds_the_store(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    env = {ENV_KEY_FILE: str(tmp_path / "keys.json")}
    url = f"sqlite:///{tmp_path}/home/connector.db" if kind == "sqlite" else request.getfixturevalue("pg_url")
    store = open_store(url, env=env)
    store.create_profile(draft("first", "secret-of-first-1"))
    old = store.keyring.primary_id
    go = tmp_path / "go"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")} | {"STORE": url}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, env[ENV_KEY_FILE], str(go), str(Path(__file__).parents[1])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        rotation = store.rotate_keys(retire=True)
        assert rotation.retired == (old,)
        go.touch()
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert out.strip() == "secret-of-first-1"
    store.close()
    fresh = open_store(url, env=env)
    assert fresh.get_profile("late").secret("client_secret").reveal() == "secret-of-late-22"
    assert fresh.get_profile("first").secret("client_secret").reveal() == "secret-of-first-1"
    assert set(fresh.key_usage()) == {fresh.keyring.primary_id}  # nothing under the retired key
    assert old not in fresh.keyring.key_ids
    fresh.close()


def test_a_process_whose_key_file_lacks_the_new_primary_refuses_to_write(tmp_path: Path) -> None:
    env = {ENV_KEY_FILE: str(tmp_path / "keys.json")}
    store = Store.open(tmp_path / "home", env=env)
    store.create_profile(draft("first", "secret-of-first-1"))
    other_env = {ENV_KEY_FILE: str(tmp_path / "other.json")}
    (tmp_path / "other.json").write_bytes((tmp_path / "keys.json").read_bytes())
    (tmp_path / "other.json").chmod(0o600)
    store.rotate_keys()
    stale = Store.open(tmp_path / "home", env=other_env)  # a copy of the key file from before the rotation
    with pytest.raises(CryptoError, match="the store's keys were rotated to key"):
        stale.create_profile(draft("late", "secret-of-late-22"))
    assert [p.name for p in store.list_profiles()] == ["first"]
