"""Standard Webhooks signatures, both sides: signing a delivery and verifying one.

The scheme is the `Standard Webhooks <https://www.standardwebhooks.com/>`_ one, so a
receiver may verify with this module or with the ``standardwebhooks`` package:

* A secret is ``whsec_`` followed by the base64 of 24 to 64 random bytes; the bytes are
  the HMAC key.
* The signed content is ``f"{msg_id}.{timestamp}.".encode() + body``: the message id (the
  event id, the same on every retry, so receivers can drop duplicates), the time of the
  attempt in whole seconds since the epoch (so an old delivery cannot be replayed), and the
  exact body bytes.
* A signature is ``v1,`` followed by the base64 of that content's HMAC-SHA256. The
  ``webhook-signature`` header holds several, separated by spaces, while a secret rotates:
  one per secret, and a receiver accepts the delivery when any of them matches any secret
  it holds.

Pure functions, no I/O. Secrets come in as :class:`~connector_core.secret.Secret` (or the
``whsec_`` text); no error message holds a secret or a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets as _random
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ValidationError, WebhookVerificationError
from ..secret import Secret

__all__ = [
    "SECRET_PREFIX",
    "WebhookVerificationError",
    "new_secret",
    "parse_secret",
    "sign",
    "signature_header",
    "verify",
    "webhook_headers",
]

#: What every webhook secret's text begins with.
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret

#: The key sizes the Standard Webhooks spec allows, in bytes.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64

_VERSION = "v1"
_DIGEST_SIZE = hashlib.sha256().digest_size
# Visible ASCII without '.', the separator of the signed content: the id cannot be read back
# another way, and no header injection (no space, no CR/LF).
_MSG_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,256}")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")

SecretLike = Secret | str
"""A webhook secret: a :class:`Secret` holding the ``whsec_`` text, or that text."""


def new_secret(*, size: int = 32) -> Secret:
    """A new webhook secret: ``whsec_`` and the base64 of ``size`` random bytes (24 to 64)."""
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SECRET_BYTES <= size <= MAX_SECRET_BYTES:
        raise ValidationError("size", f"expected {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, got {size!r}")
    return Secret(SECRET_PREFIX + base64.b64encode(_random.token_bytes(size)).decode("ascii"))


def parse_secret(text: SecretLike) -> bytes:
    """The HMAC key a ``whsec_...`` secret holds.

    Surrounding white space (a file's final newline) is ignored; base64 padding may be
    left out. Anything else (no ``whsec_`` prefix, not base64, fewer than 24 or more than
    64 bytes) is a :class:`ValidationError` naming the field ``secret``, which never holds
    the value.
    """
    key, problem = _decode(text)
    if key is None:
        # Raised here, where no local holds the revealed value (a traceback may show locals).
        raise ValidationError("secret", problem)
    return key


def _decode(text: SecretLike) -> tuple[bytes | None, str]:
    """The key, or None and what is wrong; never raises."""
    value = text.reveal() if isinstance(text, Secret) else text
    if not isinstance(value, str):
        return None, f"expected a {SECRET_PREFIX}... string, got {type(value).__name__}"
    value = value.strip()
    if not value.startswith(SECRET_PREFIX):
        return None, f"expected a secret that begins with {SECRET_PREFIX!r}"
    encoded = value[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None, f"expected base64 after {SECRET_PREFIX!r}"
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        return None, f"expected {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes of key, got {len(key)}"
    return key, ""


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def _check_message(msg_id: str, timestamp: int, body: bytes) -> None:
    if not isinstance(msg_id, str) or not _MSG_ID.fullmatch(msg_id):
        raise ValidationError("msg_id", "expected 1 to 256 visible ASCII characters without '.'")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValidationError("timestamp", f"expected whole seconds since the epoch, got {timestamp!r}")
    if not isinstance(body, bytes):
        raise ValidationError("body", f"expected the body's bytes, got {type(body).__name__}")


def sign(secret: SecretLike, msg_id: str, timestamp: int, body: bytes) -> str:
    """The signature ``v1,<base64 HMAC-SHA256>`` of one message under one secret.

    ``msg_id`` is the event id (visible ASCII, no ``.``), ``timestamp`` the attempt's time in
    whole seconds since the epoch, ``body`` the exact bytes sent.
    """
    _check_message(msg_id, timestamp, body)
    key = parse_secret(secret)
    return f"{_VERSION},{base64.b64encode(_digest(key, msg_id, timestamp, body)).decode('ascii')}"


def _secret_list(secrets: SecretLike | Sequence[SecretLike], field: str) -> tuple[SecretLike, ...]:
    found = (secrets,) if isinstance(secrets, Secret | str) else tuple(secrets)
    if not found:
        raise ValidationError(field, "expected at least one secret")
    return found


def signature_header(secrets: Sequence[SecretLike], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one signature per secret, separated by spaces.

    Give the current secret and, while an endpoint's secret rotates, the next one (or the
    previous one): a receiver holding either accepts the delivery.
    """
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in _secret_list(secrets, "secrets"))


def webhook_headers(secrets: Sequence[SecretLike], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of a delivery: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``
    (see :func:`signature_header`) and ``content-type: application/json``."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    """The one value of header ``name`` (any case), or a ``missing_header`` error."""
    # Every pair, not headers.get(): a multi-valued header object (Starlette's Headers)
    # lists a repeated header once per value, and names may come in any case.
    values = {str(value).strip() for key, value in headers.items() if str(key).lower() == name}
    values.discard("")
    if len(values) != 1:
        why = "is missing" if not values else "is given twice with different values"
        raise WebhookVerificationError(f"the {name} header {why}", code="missing_header")
    return values.pop()


def _candidates(header: str) -> list[bytes]:
    """The ``v1`` signatures of a ``webhook-signature`` header, decoded. Other versions
    (``v1a``, asymmetric) and entries that are not base64 are ignored."""
    found = []
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if not comma or version != _VERSION:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def _signed_by_any(
    secrets: Sequence[SecretLike], msg_id: str, timestamp: int, body: bytes, candidates: Sequence[bytes]
) -> bool:
    """Whether any candidate is the signature under any secret. The keys live in this frame
    only, which has returned before :func:`verify` raises."""
    matched = False
    for secret in secrets:
        want = _digest(parse_secret(secret), msg_id, timestamp, body)
        for given in candidates:
            # No early exit: the time taken does not depend on which pair matched.
            matched |= len(given) == _DIGEST_SIZE and hmac.compare_digest(want, given)
    return matched


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: SecretLike | Sequence[SecretLike],
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a webhook delivery on the receiving side and return its JSON body.

    ``body`` is the request's raw body bytes, exactly as received (parse nothing first);
    ``headers`` its headers, names in any case; ``secret`` the endpoint's ``whsec_`` secret,
    or several while it rotates (any one matching is enough). The delivery is accepted when
    its ``webhook-timestamp`` is within ``tolerance`` seconds of ``now`` (default: the
    clock) and one of its ``v1`` signatures matches (compared in constant time).

    Raises :class:`WebhookVerificationError` with a ``code`` (``missing_header``,
    ``bad_timestamp``, ``expired``, ``bad_signature``, ``bad_body``) when the delivery is
    not good; a :class:`ValidationError` naming ``secret`` when a secret is malformed (the
    receiver's configuration, not the sender's fault). Use ``webhook-id`` to drop
    duplicates: a delivery is retried until it is answered with a 2xx.
    """
    given = _secret_list(secret, "secret")
    for one in given:
        parse_secret(one)  # a malformed secret is the receiver's error, found before any header
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValidationError("tolerance", f"expected whole seconds (0 or more), got {tolerance!r}")
    if not isinstance(body, bytes | bytearray | memoryview | str):
        raise ValidationError("body", f"expected the raw body's bytes, got {type(body).__name__}")
    raw = body.encode() if isinstance(body, str) else bytes(body)

    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")

    if not _TIMESTAMP.fullmatch(stamp):
        raise WebhookVerificationError(
            "the webhook-timestamp header is not whole seconds since the epoch", code="bad_timestamp"
        )
    timestamp = int(stamp)
    clock = time.time() if now is None else now
    if timestamp < clock - tolerance:
        raise WebhookVerificationError(
            f"timestamp too old: signed {int(clock - timestamp)} s ago, more than the tolerance of {tolerance} s",
            code="expired",
        )
    if timestamp > clock + tolerance:
        raise WebhookVerificationError(
            f"timestamp too new: {int(timestamp - clock)} s ahead of this clock, more than the tolerance of "
            f"{tolerance} s",
            code="bad_timestamp",
        )

    if not _signed_by_any(given, msg_id, timestamp, raw, _candidates(signatures)):
        raise WebhookVerificationError("no webhook signature matches the secret", code="bad_signature")

    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise WebhookVerificationError("the body is not JSON", code="bad_body") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError(
            f"the body is JSON but not an object ({type(payload).__name__})", code="bad_body"
        )
    return payload
