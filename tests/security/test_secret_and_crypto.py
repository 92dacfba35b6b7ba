"""The Secret type and the AES-GCM key ring."""

from __future__ import annotations

import base64
import json
import pickle
import stat
from pathlib import Path

import pytest

from connector_core.crypto import (
    ENV_KEY_FILE,
    ENV_PREVIOUS_SECRET_KEYS,
    ENV_SECRET_KEY,
    CryptoError,
    KeyRing,
    key_id,
)
from connector_core.secret import Secret

KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()


def test_secret_never_shows_itself() -> None:
    secret = Secret("hunter2-very-secret")
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret, repr([secret])):  # noqa: UP031
        assert "hunter2" not in text
    assert secret.reveal() == "hunter2-very-secret"
    assert secret == Secret("hunter2-very-secret") and secret != Secret("other")
    assert len(secret) == 19 and bool(secret) and not Secret("")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)
    with pytest.raises(AttributeError):
        secret._value = "x"  # type: ignore[misc]
    with pytest.raises(TypeError, match="expects a str"):
        Secret(b"bytes")  # type: ignore[arg-type]
    assert Secret(secret).reveal() == secret.reveal()


def test_env_key_round_trip_and_associated_data() -> None:
    ring = KeyRing.load("store", {ENV_SECRET_KEY: KEY_A})
    assert ring.path is None and ring.primary_id == key_id(b"a" * 32)
    kid, nonce, ct = ring.encrypt("token-value", "row-1|client_secret")
    assert b"token-value" not in ct and len(nonce) == 12
    assert ring.decrypt(kid, nonce, ct, "row-1|client_secret", what="x") == "token-value"
    _, nonce2, ct2 = ring.encrypt("token-value", "row-1|client_secret")
    assert nonce2 != nonce and ct2 != ct  # a fresh nonce per value
    with pytest.raises(CryptoError, match="integrity check failed"):
        ring.decrypt(kid, nonce, ct, "row-2|client_secret", what="client_secret of profile 'p'")
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    with pytest.raises(CryptoError, match="cannot decrypt client_secret of profile 'p': integrity check failed"):
        ring.decrypt(kid, nonce, flipped, "row-1|client_secret", what="client_secret of profile 'p'")
    with pytest.raises(CryptoError, match="nonce is damaged"):
        ring.decrypt(kid, nonce[:5], ct, "row-1|client_secret", what="x")


def test_wrong_env_key_names_the_key_and_the_variable() -> None:
    ring_a = KeyRing.load("s", {ENV_SECRET_KEY: KEY_A})
    kid, nonce, ct = ring_a.encrypt("v", "aad")
    ring_b = KeyRing.load("s", {ENV_SECRET_KEY: KEY_B})
    with pytest.raises(CryptoError) as info:
        ring_b.decrypt(kid, nonce, ct, "aad", what="client_secret of profile 'acme'")
    message = str(info.value)
    assert f"encrypted with key {kid}" in message and ENV_SECRET_KEY in message and "'acme'" in message
    both = KeyRing.load("s", {ENV_SECRET_KEY: KEY_B, ENV_PREVIOUS_SECRET_KEYS: f" {KEY_A} ,"})
    assert both.decrypt(kid, nonce, ct, "aad", what="x") == "v"
    assert both.primary_id == key_id(b"b" * 32)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64!!", "not base64"),
        (base64.b64encode(b"short").decode(), "expected base64 of 32 bytes, got 5 bytes"),
    ],
)
def test_malformed_env_key(value: str, message: str) -> None:
    with pytest.raises(CryptoError, match=message) as info:
        KeyRing.load("s", {ENV_SECRET_KEY: value})
    assert info.value.message.startswith(ENV_SECRET_KEY)


def test_key_file_generated_private_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "keys.json"
    ring = KeyRing.load("s", {ENV_KEY_FILE: str(path)})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = KeyRing.load("s", {ENV_KEY_FILE: str(path)})
    assert again.primary_id == ring.primary_id
    kid, nonce, ct = ring.encrypt("x", "a")
    assert again.decrypt(kid, nonce, ct, "a", what="x") == "x"
    rotated = ring.with_new_primary()
    assert rotated.primary_id != ring.primary_id and set(rotated.key_ids) == {ring.primary_id, rotated.primary_id}
    assert rotated.without({ring.primary_id, rotated.primary_id}).key_ids == (rotated.primary_id,)
    stored = json.loads(path.read_text())["keys"][0]["key"]
    assert stored not in repr(ring) and repr(ring).startswith("<KeyRing primary=")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe", "not a connector-core key file"),
        (b"[]", "expected a version 1 key file"),
        (json.dumps({"version": 1, "keys": []}).encode(), "holds no keys"),
        (json.dumps({"version": 1, "keys": [{"key": 3}]}).encode(), r"keys\[0\] is malformed"),
        (json.dumps({"version": 1, "primary": "zz", "keys": [{"key": KEY_A}]}).encode(), "primary key is not among"),
    ],
)
def test_bad_key_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content)
    path.chmod(0o600)  # a key file others can read is refused before it is read
    with pytest.raises(CryptoError, match=message):
        KeyRing.load("s", {ENV_KEY_FILE: str(path)})


def test_missing_key_file_without_create(tmp_path: Path) -> None:
    with pytest.raises(CryptoError, match="does not exist"):
        KeyRing.load("s", {ENV_KEY_FILE: str(tmp_path / "nope.json")}, create=False)
