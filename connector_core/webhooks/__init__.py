"""Signed webhooks: the Standard Webhooks signature scheme, both sides, where deliveries may go,
the endpoints, the outbox and the deliverer.

* Signing (the sender): :func:`new_secret`, :func:`sign`, :func:`signature_header`,
  :func:`webhook_headers`.
* Verifying (a receiver, such as the platform's backend): :func:`verify`, which raises
  :class:`WebhookVerificationError`; the ``standardwebhooks`` package accepts the same
  deliveries.
* Where to (the endpoint's configuration and the deliverer): :func:`check_webhook_url` and
  :func:`address_allowed`.
* Endpoints (:mod:`.endpoints`): :class:`WebhookEndpoint`, :func:`add_endpoint`,
  :func:`rotate_secret`; the store keeps them sealed, their secrets encrypted.
* The outbox (:mod:`.outbox`): a :class:`Delivery` per event and subscribed endpoint, written in
  the event's transaction, and the log of its attempts (:class:`DeliveryAttempt`).
* Delivering (:mod:`.delivery`, imported on first use: it needs httpx): :class:`WebhookDeliverer`
  and :func:`delivering`.

See docs/webhooks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from .endpoints import WebhookEndpoint, add_endpoint, check_event_types, endpoint_data, rotate_secret
from .outbox import Delivery, DeliveryAttempt, DeliveryStatus, WebhookStore, backoff, delivery_data
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

if TYPE_CHECKING:
    from .delivery import DeliveryReport, WebhookDeliverer, delivering

__all__ = [
    "SECRET_PREFIX",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryReport",
    "DeliveryStatus",
    "WebhookDeliverer",
    "WebhookEndpoint",
    "WebhookStore",
    "WebhookVerificationError",
    "add_endpoint",
    "address_allowed",
    "backoff",
    "check_event_types",
    "check_webhook_url",
    "delivering",
    "delivery_data",
    "endpoint_data",
    "new_secret",
    "parse_secret",
    "rotate_secret",
    "sign",
    "signature_header",
    "verify",
    "webhook_headers",
]

_LAZY = {"DeliveryReport": ".delivery", "WebhookDeliverer": ".delivery", "delivering": ".delivery"}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
