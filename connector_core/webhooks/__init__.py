"""Signed webhooks: the Standard Webhooks signature scheme, both sides, and the policy of
where deliveries may go.

* Signing (the sender): :func:`new_secret`, :func:`sign`, :func:`signature_header`,
  :func:`webhook_headers`.
* Verifying (a receiver, such as the platform's backend): :func:`verify`, which raises
  :class:`WebhookVerificationError`; the ``standardwebhooks`` package accepts the same
  deliveries.
* Where to (the endpoint's configuration and the deliverer): :func:`check_webhook_url` and
  :func:`address_allowed`.

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
from .urls import address_allowed, check_webhook_url

__all__ = [
    "SECRET_PREFIX",
    "WebhookVerificationError",
    "address_allowed",
    "check_webhook_url",
    "new_secret",
    "parse_secret",
    "sign",
    "signature_header",
    "verify",
    "webhook_headers",
]
