"""Folders and files the store does not own are refused; folders it did not create keep their modes."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import run_connector

from connector_core._files import write_private_file
from connector_core.crypto import ENV_KEY_FILE, CryptoError, KeyRing
from connector_core.store import Store, StoreError

ROOT = os.geteuid() == 0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def test_created_folders_are_0700_whatever_the_umask(tmp_path: Path, umask: None) -> None:
    home = tmp_path / "a" / "b" / "home"
    with Store.open(home, env={ENV_KEY_FILE: str(tmp_path / "k" / "keys.json")}) as store:
        assert store.keyring.path is not None
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", home, tmp_path / "k")] == [0o700] * 4
    assert mode(home / "connector.db") == 0o600 and mode(tmp_path / "k" / "keys.json") == 0o600


def test_folders_that_exist_keep_their_modes(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    shared.chmod(0o750)
    Store.open(shared, env={ENV_KEY_FILE: str(tmp_path / "keys.json")}).close()
    write_private_file(shared / "snapshot.json", b"{}")
    assert mode(shared) == 0o750 and mode(tmp_path) == 0o700
    env = {"CONNECTOR_CORE_PLUGINS": "hibob", ENV_KEY_FILE: str(tmp_path / "keys.json")}
    for options in (["--home", str(shared)], ["--store-url", f"sqlite:///{shared}/x.db"]):
        listed = run_connector([*options, "profile", "list"], env=env)
        assert listed.returncode == 0, listed.stderr
        assert mode(shared) == 0o750


def test_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    with pytest.raises(StoreError, match=r"refusing its folder .*home: other users can write to it \(mode 0777\)"):
        Store.open(home, env={ENV_KEY_FILE: str(tmp_path / "keys.json")})
    assert not (home / "connector.db").exists() and mode(home) == 0o777
    result = run_connector(["--home", str(home), "profile", "list"], env={"CONNECTOR_CORE_PLUGINS": "hibob"})
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "other users can write to it" in result.stderr


@pytest.mark.skipif(not ROOT, reason="giving a folder to another user needs root")
def test_a_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, 65534, 65534)
    with pytest.raises(StoreError, match="owned by another user"):
        Store.open(home, env={ENV_KEY_FILE: str(tmp_path / "keys.json")})
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    os.chown(keys, 65534, 65534)
    with pytest.raises(CryptoError, match="owned by another user"):
        KeyRing.load("s", {ENV_KEY_FILE: str(keys / "keys.json")})


@pytest.mark.parametrize("name", ["connector.db", "connector.db-wal", "connector.db-shm"])
def test_a_symlink_planted_at_the_database_is_refused(tmp_path: Path, name: str) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (home / name).symlink_to(target)
    with pytest.raises(StoreError, match=f"refusing {name}: it is a symbolic link"):
        Store.open(home, env={ENV_KEY_FILE: str(tmp_path / "keys.json")})
    assert target.read_bytes() == b""


def test_a_symlink_at_the_key_file_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    KeyRing.load("s", {ENV_KEY_FILE: str(real)})
    link = tmp_path / "keys.json"
    link.symlink_to(real)
    with pytest.raises(CryptoError, match=r"keys\.json: refusing it: it is a symbolic link"):
        KeyRing.load("s", {ENV_KEY_FILE: str(link)})
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(CryptoError, match="it is a symbolic link"):
        KeyRing.load("s", {ENV_KEY_FILE: str(dangling)})
    assert not (tmp_path / "nowhere.json").exists()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing.load("s", {ENV_KEY_FILE: str(path)})
    path.chmod(0o644)
    with pytest.raises(CryptoError, match=r"other users can read it \(mode 0644; it must be 0600\)"):
        KeyRing.load("s", {ENV_KEY_FILE: str(path)})
    path.chmod(0o600)
    assert KeyRing.load("s", {ENV_KEY_FILE: str(path)}).primary_id == ring.primary_id
