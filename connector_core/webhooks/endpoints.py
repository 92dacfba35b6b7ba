"""Webhook endpoints: where deliveries go, which events each one gets, and how its signing
secrets rotate.

An endpoint is a URL (held to :func:`~.urls.check_webhook_url` when it is configured, and its
address checked again on every delivery), the event types it subscribes to (all by default),
whether it may be a private-network address (an explicit opt-in), and one or two ``whsec_``
secrets: the current one and, while a rotation is under way, the previous one, both signing
every delivery until the previous one is dropped.

The store keeps the secrets encrypted like every other secret, and seals the endpoint's row
(id, URL, private opt-in, event types) so that someone who can write the database but holds
no key cannot point deliveries elsewhere: a changed row is refused as tampered.

:func:`add_endpoint` and :func:`rotate_secret` are what the CLI and the API call: they check
the URL and the secret, generate one when none is given, and hand the store what it keeps.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import attrs

from ..errors import ValidationError
from ..events import EventType
from ..secret import Secret
from .signing import new_secret, parse_secret
from .urls import Resolver, check_webhook_url

__all__ = [
    "ENDPOINT_ID_PREFIX",
    "PREVIOUS_SECRET_NAME",
    "SECRET_NAME",
    "EndpointStore",
    "WebhookEndpoint",
    "add_endpoint",
    "check_event_types",
    "checked_secret",
    "endpoint_data",
    "new_endpoint_id",
    "rotate_secret",
]

#: What every endpoint's id begins with.
ENDPOINT_ID_PREFIX = "we_"
#: The names an endpoint's secrets have in the store's secrets table (owner: the endpoint's id).
SECRET_NAME = "signing_secret"  # noqa: S105 - a name, not a secret
PREVIOUS_SECRET_NAME = "previous_signing_secret"  # noqa: S105 - a name, not a secret


class EndpointStore(Protocol):
    """What :func:`add_endpoint` and :func:`rotate_secret` need of a store (see
    :class:`~.outbox.WebhookStore`, which every store keeps)."""

    def create_webhook_endpoint(
        self, url: str, *, secret: Secret, event_types: Sequence[EventType] = (), allow_private: bool = False
    ) -> WebhookEndpoint: ...

    def rotate_webhook_secret(self, endpoint_id: str, secret: Secret) -> WebhookEndpoint: ...


def new_endpoint_id() -> str:
    """A new endpoint id: ``we_`` and 32 hex digits."""
    return ENDPOINT_ID_PREFIX + uuid.uuid4().hex


@attrs.frozen
class WebhookEndpoint:
    """One webhook endpoint as the store keeps it (never its secrets)."""

    #: ``we_`` and 32 hex digits.
    id: str
    #: Where deliveries are POSTed.
    url: str
    #: The event types it gets; empty: every type.
    event_types: tuple[EventType, ...]
    #: Whether its URL may resolve to a private-network address (an explicit opt-in).
    allow_private: bool
    created_at: str
    updated_at: str
    #: When it was disabled (by an operator, or by a receiver answering 410 Gone), and why.
    disabled_at: str | None = None
    disabled_reason: str | None = None
    #: Whether a previous secret still signs beside the current one (a rotation under way).
    rotating: bool = False

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def subscribed(self, kind: EventType) -> bool:
        """Whether events of ``kind`` are delivered to this endpoint (when it is enabled)."""
        return not self.event_types or kind in self.event_types


def check_event_types(values: Iterable[str | EventType] | None, field: str = "event_types") -> tuple[EventType, ...]:
    """The event types ``values`` name, each once, in their order; ``None`` (every type) is
    ``()``. An unknown type, a value that is not a string, or an empty list (give none for
    every type) is a :class:`ValidationError` naming ``field``."""
    if values is None:
        return ()
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValidationError(field, "expected a list of event types")
    found: list[EventType] = []
    known = ", ".join(kind.value for kind in EventType)
    for value in values:
        if isinstance(value, EventType):
            kind = value
        elif isinstance(value, str):
            try:
                kind = EventType(value)
            except ValueError:
                raise ValidationError(field, f"unknown event type {value[:80]!r} (expected: {known})") from None
        else:
            raise ValidationError(field, f"expected event type names, got {type(value).__name__}")
        if kind not in found:
            found.append(kind)
    if not found:
        raise ValidationError(field, "expected at least one event type (leave it out for every type)")
    return tuple(found)


def checked_secret(secret: Secret | str | None, field: str = "secret") -> tuple[Secret, bool]:
    """The secret to keep, and whether it was generated: ``secret`` when it is a good
    ``whsec_`` secret (surrounding white space dropped), else a :class:`ValidationError`
    naming ``field`` (never holding the value); a new one when ``secret`` is None."""
    if secret is None:
        return new_secret(), True
    value = secret.reveal() if isinstance(secret, Secret) else secret
    if not isinstance(value, str):
        raise ValidationError(field, f"expected a whsec_... string, got {type(value).__name__}")
    try:
        parse_secret(value)
    except ValidationError as exc:
        raise ValidationError(field, exc.message.removeprefix("secret: ")) from None
    return Secret(value.strip()), False


def add_endpoint(
    store: EndpointStore,
    url: str,
    *,
    event_types: Iterable[str | EventType] | None = None,
    allow_private: bool = False,
    secret: Secret | str | None = None,
    resolve: Resolver = socket.getaddrinfo,
) -> tuple[WebhookEndpoint, Secret | None]:
    """Configure a new endpoint: ``url`` held to :func:`~.urls.check_webhook_url` (resolved
    with ``resolve``), ``event_types`` checked (None: every type), ``secret`` checked or, when
    None, generated. Returns the endpoint and the generated secret (None when one was given):
    it is shown nowhere else, so the caller hands it over once."""
    if not isinstance(allow_private, bool):
        raise ValidationError("allow_private", "expected true or false")
    kinds = check_event_types(event_types)
    kept, generated = checked_secret(secret)
    checked = check_webhook_url(url, allow_private=allow_private, resolve=resolve)
    endpoint = store.create_webhook_endpoint(checked, secret=kept, event_types=kinds, allow_private=allow_private)
    return endpoint, kept if generated else None


def rotate_secret(
    store: EndpointStore, endpoint_id: str, secret: Secret | str | None = None
) -> tuple[WebhookEndpoint, Secret | None]:
    """Start a rotation: ``secret`` (checked) or a new one becomes the current secret, the
    current one the previous; both sign until :meth:`~.outbox.WebhookStore.drop_previous_webhook_secret`.
    Returns the endpoint and the generated secret (None when one was given)."""
    kept, generated = checked_secret(secret)
    endpoint = store.rotate_webhook_secret(endpoint_id, kept)
    return endpoint, kept if generated else None


def endpoint_data(endpoint: WebhookEndpoint, secret: Secret | None = None) -> dict[str, Any]:
    """An endpoint as JSON (the CLI's ``--json`` and the API): ``event_types`` is null for every
    type. ``secret``, a generated one, is added as ``secret`` (shown that once)."""
    data: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": [kind.value for kind in endpoint.event_types] or None,
        "allow_private": endpoint.allow_private,
        "disabled": endpoint.disabled,
        "disabled_at": endpoint.disabled_at,
        "disabled_reason": endpoint.disabled_reason,
        "rotating": endpoint.rotating,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }
    if secret is not None:
        data["secret"] = secret.reveal()
    return data
