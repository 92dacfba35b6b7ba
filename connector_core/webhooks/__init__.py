"""Signed webhooks: the Standard Webhooks signature scheme, both sides.

* Signing (the sender): :func:`new_secret`, :func:`sign`, :func:`signature_header`,
  :func:`webhook_headers`.
* Verifying (a receiver, such as the platform's backend): :func:`verify`, which raises
  :class:`WebhookVerificationError`; the ``standardwebhooks`` package accepts the same
  deliveries.

See docs/webhooks.md.
"""

from __future__ import annotations

from .signing import (
    SECRET_PREFIX,
    WebhookVerificationError,
    new_secret,
    parse_secret,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

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
