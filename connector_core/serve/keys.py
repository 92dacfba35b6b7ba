"""The platform API's bearer keys: where they come from, and checking one in constant time.

Keys come from ``CONNECTOR_SERVE_API_KEYS`` (comma-separated) or a file (one per line, ``#``
comments; readable by its owner only). Several at once is how a key is rotated: add the new
one, move the platform over, remove the old one. A key is never shown: :class:`ApiKeys`'
repr counts them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import ValidationError
from ..secret import Secret

__all__ = ["ENV_API_KEYS", "MIN_KEY_LENGTH", "ApiKeys", "load_api_keys"]

ENV_API_KEYS = "CONNECTOR_SERVE_API_KEYS"
#: A key shorter than this is refused: it could be guessed.
MIN_KEY_LENGTH = 24
_KEY_RE = re.compile(r"[\x21-\x7e]+")
_HOW = f"set {ENV_API_KEYS} (comma-separated, at least {MIN_KEY_LENGTH} characters each) or pass --api-keys-file PATH"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class ApiKeys:
    """The configured keys, kept as SHA-256 digests: :meth:`matches` compares a presented key
    with every one of them (no early exit, equal-length digests), so its timing tells neither
    whether nor which key matched."""

    def __init__(self, keys: Iterable[str | Secret]) -> None:
        digests = []
        for number, key in enumerate(keys, 1):
            value = key.reveal() if isinstance(key, Secret) else key
            if not isinstance(value, str) or not _KEY_RE.fullmatch(value) or len(value) < MIN_KEY_LENGTH:
                raise ValidationError(
                    "api_keys",
                    f"key #{number} is not {MIN_KEY_LENGTH} or more printable characters without spaces",
                )
            digests.append(_digest(value))
        if not digests:
            raise ValidationError("api_keys", f"no API key is configured: {_HOW}")
        self._digests = tuple(digests)

    def __repr__(self) -> str:
        return f"<ApiKeys {len(self._digests)} key(s)>"

    def __len__(self) -> int:
        return len(self._digests)

    def matches(self, presented: str) -> bool:
        given = _digest(presented)
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(given, digest)
        return found


def _split(text: str, sep: str) -> list[str]:
    keys = []
    for raw in text.split(sep):
        line = raw.strip()
        if line and not line.startswith("#"):
            keys.append(line)
    return keys


def load_api_keys(env: Mapping[str, str], keys_file: str | Path | None = None) -> ApiKeys:
    """The keys of ``keys_file`` when given, else of ``CONNECTOR_SERVE_API_KEYS``; a one-line
    :class:`ValidationError` saying how to set one when there is none."""
    from .._files import UnsafePath, read_private_file  # here, not at the top: only a key file needs it

    if keys_file is not None:
        path = Path(keys_file)
        try:
            text = read_private_file(path).decode("utf-8")
        except UnsafePath as exc:
            raise ValidationError("--api-keys-file", f"{path} is refused: {exc}") from None
        except FileNotFoundError:
            raise ValidationError("--api-keys-file", f"{path} does not exist") from None
        except OSError as exc:
            raise ValidationError("--api-keys-file", f"{path} cannot be read ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise ValidationError("--api-keys-file", f"{path} is not UTF-8 text") from None
        keys = _split(text, "\n")
        if not keys:
            raise ValidationError("--api-keys-file", f"{path} holds no key (one per line)")
        return ApiKeys(keys)
    return ApiKeys(_split(env.get(ENV_API_KEYS, ""), ","))
