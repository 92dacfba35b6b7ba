"""Encryption at rest: AES-256-GCM with a key ring.

Every secret value is encrypted with a fresh 96-bit nonce under the key ring's
primary key, with associated data naming the record it belongs to, so a
ciphertext copied onto another row fails to decrypt. The key's id is stored
beside each ciphertext so old keys stay readable after a rotation.

Where the keys come from:

* ``CONNECTOR_CORE_SECRET_KEY``: base64 of 32 bytes, the primary key;
  ``CONNECTOR_CORE_PREVIOUS_SECRET_KEYS``: comma-separated older keys still
  readable. Nothing is written to disk.
* Otherwise a key file (JSON, mode 0600) in platformdirs' user config dir,
  one per store, generated on first use; ``CONNECTOR_CORE_KEY_FILE`` names
  another path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from ._files import UnsafePath, read_private_file, unsafe_dir, unsafe_file, write_private_file
from .errors import CryptoError

__all__ = [
    "ENV_KEY_FILE",
    "ENV_PREVIOUS_SECRET_KEYS",
    "ENV_SECRET_KEY",
    "CryptoError",
    "KeyRing",
    "default_key_file",
]

ENV_SECRET_KEY = "CONNECTOR_CORE_SECRET_KEY"  # noqa: S105 - a variable name
ENV_PREVIOUS_SECRET_KEYS = "CONNECTOR_CORE_PREVIOUS_SECRET_KEYS"  # noqa: S105 - a variable name
ENV_KEY_FILE = "CONNECTOR_CORE_KEY_FILE"

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE_VERSION = 1
#: The HKDF ``info`` of the key that seals rows (a MAC of the columns that say where secrets go).
SEAL_INFO = b"connector-core/v1 row seal"


def key_id(key: bytes) -> str:
    """A short, stable, non-secret identifier of a key (not reversible)."""
    return hashlib.sha256(b"connector-core key id\x00" + key).hexdigest()[:16]


def _decode_key(text: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError(f"{where}: expected base64 of {KEY_BYTES} bytes, got text that is not base64") from None
    if len(raw) != KEY_BYTES:
        raise CryptoError(f"{where}: expected base64 of {KEY_BYTES} bytes, got {len(raw)} bytes")
    return raw


def default_key_file(store_id: str) -> Path:
    """Where the key file of the store ``store_id`` lives when no override is set."""
    override = os.environ.get(ENV_KEY_FILE)
    if override:
        return Path(override)
    from platformdirs import user_config_path

    return user_config_path("connector-core", appauthor=False) / f"keys-{store_id}.json"


@attrs.define(repr=False)
class KeyRing:
    """The keys a store can decrypt with, and the primary one it encrypts with."""

    _keys: dict[str, bytes]
    _primary: str
    #: The key file, or ``None`` when the keys come from the environment.
    path: Path | None = None
    _seal_keys: dict[str, bytes] = attrs.field(factory=dict, init=False)

    def __repr__(self) -> str:
        return f"<KeyRing primary={self._primary} keys={len(self._keys)} source={self.source}>"

    @property
    def source(self) -> str:
        return str(self.path) if self.path is not None else ENV_SECRET_KEY

    @property
    def primary_id(self) -> str:
        return self._primary

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, store_id: str, env: Mapping[str, str] | None = None, *, create: bool = True) -> KeyRing:
        """The key ring for a store: from the environment, else its key file."""
        env = os.environ if env is None else env
        if env.get(ENV_SECRET_KEY):
            primary = _decode_key(env[ENV_SECRET_KEY], ENV_SECRET_KEY)
            keys = {key_id(primary): primary}
            for index, text in enumerate(env.get(ENV_PREVIOUS_SECRET_KEYS, "").split(",")):
                if text.strip():
                    old = _decode_key(text, f"{ENV_PREVIOUS_SECRET_KEYS}[{index}]")
                    keys.setdefault(key_id(old), old)
            return cls(keys, key_id(primary), None)
        path = Path(env[ENV_KEY_FILE]) if env.get(ENV_KEY_FILE) else default_key_file(store_id)
        folder_problem = unsafe_dir(path.parent)
        if folder_problem is not None:
            raise CryptoError(f"key file {path}: refusing its folder {path.parent}: {folder_problem}")
        problem = unsafe_file(path)
        if problem is not None:
            raise CryptoError(f"key file {path}: refusing it: {problem}")
        if not path.exists():
            if not create:
                raise CryptoError(f"key file {path} does not exist and {ENV_SECRET_KEY} is not set")
            ring = cls.generate(path)
            if ring.save(exclusive=True):
                return ring
            # Another process created the key file first: use its key.
        return cls.from_file(path)

    @classmethod
    def generate(cls, path: Path | None = None) -> KeyRing:
        key = secrets.token_bytes(KEY_BYTES)
        return cls({key_id(key): key}, key_id(key), path)

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        try:
            data = json.loads(read_private_file(path).decode("utf-8"))
        except UnsafePath as exc:
            raise CryptoError(f"key file {path}: refusing it: {exc}") from None
        except OSError as exc:
            raise CryptoError(f"key file {path}: cannot read it ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, ValueError):
            raise CryptoError(f"key file {path}: not a connector-core key file (expected JSON)") from None
        if not isinstance(data, dict) or data.get("version") != KEY_FILE_VERSION:
            raise CryptoError(f"key file {path}: expected a version {KEY_FILE_VERSION} key file")
        keys: dict[str, bytes] = {}
        entries = data.get("keys")
        if not isinstance(entries, list) or not entries:
            raise CryptoError(f"key file {path}: holds no keys")
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                raise CryptoError(f"key file {path}: keys[{index}] is malformed")
            raw = _decode_key(entry["key"], f"key file {path}: keys[{index}]")
            keys[key_id(raw)] = raw
        primary = data.get("primary")
        if primary not in keys:
            raise CryptoError(f"key file {path}: its primary key is not among its keys")
        return cls(keys, primary, path)

    def save(self, *, exclusive: bool = False) -> bool:
        """Write the key file atomically with mode 0600 (its folder 0700).

        ``exclusive`` writes only when no key file exists yet; returns whether it wrote.
        """
        if self.path is None:
            raise CryptoError(f"the keys come from {ENV_SECRET_KEY}; there is no key file to write")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        data: dict[str, Any] = {
            "version": KEY_FILE_VERSION,
            "primary": self._primary,
            "keys": [
                {"id": kid, "key": base64.b64encode(key).decode("ascii"), "saved_at": now}
                for kid, key in self._keys.items()
            ],
        }
        return write_private_file(self.path, json.dumps(data, indent=2).encode("utf-8"), exclusive=exclusive)

    # ---------------------------------------------------------------- rotation

    def with_new_primary(self) -> KeyRing:
        """A copy with a freshly generated primary key; the old keys stay readable."""
        key = secrets.token_bytes(KEY_BYTES)
        keys = {key_id(key): key, **self._keys}
        return KeyRing(keys, key_id(key), self.path)

    def without(self, ids: set[str]) -> KeyRing:
        """A copy without the keys ``ids`` (never the primary)."""
        keys = {k: v for k, v in self._keys.items() if k not in ids or k == self._primary}
        return KeyRing(keys, self._primary, self.path)

    # ------------------------------------------------------------------ seals

    def _seal_key(self, kid: str) -> bytes:
        if kid not in self._seal_keys:
            # cryptography is costly to import: only when keys are used
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF

            hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=SEAL_INFO)
            self._seal_keys[kid] = hkdf.derive(self._keys[kid])
        return self._seal_keys[kid]

    def seal(self, data: bytes) -> str:
        """``KEY_ID:HMAC`` of ``data``: an HMAC-SHA256 under a key derived (HKDF) from the primary key."""
        return f"{self._primary}:{hmac.new(self._seal_key(self._primary), data, hashlib.sha256).hexdigest()}"

    def sealed(self, seal: object, data: bytes, *, what: str) -> bool:
        """Whether ``seal`` is :meth:`seal` of ``data`` under one of the ring's keys; a
        seal under a key the ring does not hold is a :class:`CryptoError` ``unknown_key``."""
        if not isinstance(seal, str) or seal.count(":") != 1:
            return False
        kid, mac = seal.split(":")
        if kid not in self._keys:
            raise CryptoError(
                f"cannot check {what}: it was sealed with key {kid}, which {self.source} does not hold "
                f"(wrong {ENV_SECRET_KEY}, or a retired or lost key file?)",
                code="unknown_key",
            )
        return hmac.compare_digest(mac, hmac.new(self._seal_key(kid), data, hashlib.sha256).hexdigest())

    # ------------------------------------------------------------ en/decryption

    def encrypt(self, plaintext: str, associated_data: str) -> tuple[str, bytes, bytes]:
        """Encrypt under the primary key; return ``(key_id, nonce, ciphertext)``."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = AESGCM(self._keys[self._primary]).encrypt(
            nonce, plaintext.encode("utf-8"), associated_data.encode("utf-8")
        )
        return self._primary, nonce, ciphertext

    def decrypt(self, kid: str, nonce: bytes, ciphertext: bytes, associated_data: str, *, what: str) -> str:
        """Decrypt one value. ``what`` names it in errors (never the value itself)."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self._keys.get(kid)
        if key is None:
            raise CryptoError(
                f"cannot decrypt {what}: it was encrypted with key {kid}, which {self.source} does not hold "
                f"(wrong {ENV_SECRET_KEY}, or a retired or lost key file?)",
                code="unknown_key",
            )
        # Stored columns can hold anything (SQLite is dynamically typed): check before use.
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
            raise CryptoError(f"cannot decrypt {what}: its stored nonce is damaged")
        if not isinstance(ciphertext, bytes):
            raise CryptoError(f"cannot decrypt {what}: its stored ciphertext is damaged")
        try:
            plaintext = AESGCM(key).decrypt(nonce, ciphertext, associated_data.encode("utf-8"))
        except InvalidTag:
            raise CryptoError(
                f"cannot decrypt {what}: integrity check failed (the value was altered or copied from another record)"
            ) from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:  # pragma: no cover - GCM authenticated it, so we wrote it
            raise CryptoError(f"cannot decrypt {what}: not UTF-8 text") from None
