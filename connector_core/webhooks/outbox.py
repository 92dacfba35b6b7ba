"""The outbox: one delivery per event and subscribed endpoint, written by the store in the
transaction that records the event, and the log of every attempt to deliver it.

* A **delivery** is ``pending`` until an attempt is answered with a 2xx (``delivered``), or it
  is given up (``failed``): its endpoint answered 410 Gone, or it was retried for longer than
  the deliverer's ``max_age`` (3 days). Between attempts it waits an exponential backoff with
  full jitter (:func:`backoff`). A deliverer *claims* the deliveries it is about to attempt
  until ``claimed_until``: a deliverer killed mid-delivery leaves claims that expire, and the
  delivery is attempted again, with the same ``webhook-id`` (at least once).
* Each **attempt** is logged: when, the answer's status (none when there was no answer), how
  long it took, the first KiB of the answer's body (text, control characters replaced) and a
  one-line error.
* A **replay** makes new deliveries of events already recorded (one event, or a time range),
  with the same ``webhook-id`` as the first time: the receiver deduplicates on it.

:class:`WebhookStore` is what the webhooks modules need of a store; the stores
(:mod:`connector_core.store`) keep it.
"""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

import attrs

from ..errors import ValidationError
from ..events import EventType

if TYPE_CHECKING:
    from ..events import Event
    from ..secret import Secret
    from .endpoints import WebhookEndpoint

__all__ = [
    "DELIVERY_ID_PREFIX",
    "MAX_ANSWER_BYTES",
    "AttemptRecord",
    "AttemptResult",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryStatus",
    "Outcome",
    "WebhookStore",
    "answer_text",
    "backoff",
    "delivery_data",
    "iso_time",
    "utc_time",
]

#: What every delivery's id begins with.
DELIVERY_ID_PREFIX = "dlv_"
#: How much of an answer's body the log keeps (and the deliverer reads).
MAX_ANSWER_BYTES = 1024
#: How an attempt ended: ``delivered`` (a 2xx), ``retry`` (anything else, while the delivery is
#: young enough), ``failed`` (given up: too old), ``gone`` (410 Gone: the endpoint is disabled and
#: its pending deliveries failed).
Outcome = Literal["delivered", "retry", "failed", "gone"]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class DeliveryStatus(enum.Enum):
    """Where a delivery stands."""

    #: Not yet answered with a 2xx; attempted again at ``next_attempt_at``.
    PENDING = "pending"
    #: Answered with a 2xx.
    DELIVERED = "delivered"
    #: Given up: the endpoint answered 410 Gone, or the delivery outlived the deliverer's ``max_age``.
    FAILED = "failed"


@attrs.frozen
class DeliveryAttempt:
    """One attempt to deliver, as the log keeps it."""

    #: 1 for the first attempt of its delivery.
    attempt: int
    #: When it was made (ISO 8601, UTC).
    at: str
    #: The answer's status; None when there was none (a timeout, a refused connection...).
    status_code: int | None
    #: How long it took, in milliseconds.
    latency_ms: float | None
    #: The first KiB of the answer's body as text, control characters replaced.
    response: str | None
    #: What went wrong, in one line; None when it was delivered.
    error: str | None


@attrs.frozen
class AttemptRecord:
    """What a deliverer hands the store after one attempt (the store numbers it)."""

    at: str
    status_code: int | None
    latency_ms: float | None
    response: str | None
    error: str | None


@attrs.frozen
class AttemptResult:
    """One attempt and where it moves its delivery, as
    :meth:`WebhookStore.record_webhook_attempts` takes it (the arguments of
    :meth:`~WebhookStore.record_webhook_attempt`)."""

    delivery_id: str
    attempt: AttemptRecord
    outcome: Outcome
    next_attempt_at: float | None = None
    reason: str | None = None


@attrs.frozen
class Delivery:
    """One event's delivery to one endpoint."""

    #: ``dlv_`` and 32 hex digits.
    id: str
    #: The outbox's order (pages of :meth:`WebhookStore.list_webhook_deliveries` follow it).
    seq: int
    #: The event delivered: its id is the delivery's ``webhook-id``.
    event_id: str
    event_type: EventType
    endpoint_id: str
    status: DeliveryStatus
    #: How many attempts were made.
    attempts: int
    #: When it is due next (epoch seconds); None once it is finished.
    next_attempt_at: float | None
    created_at: str
    finished_at: str | None
    #: Made by a replay rather than by the event.
    replay: bool = False
    #: Its attempts, oldest first (when the listing asked for them).
    log: tuple[DeliveryAttempt, ...] = ()

    @property
    def created_epoch(self) -> float:
        return datetime.fromisoformat(self.created_at).timestamp()


def backoff(attempts: int, *, base: float = 5.0, cap: float = 3600.0, rng: random.Random | None = None) -> float:
    """How long to wait after ``attempts`` failed attempts: a delay drawn uniformly between 0
    and ``base * 2 ** (attempts - 1)``, at most ``cap`` (exponential backoff with full jitter:
    receivers coming back are not hit by every sender at once)."""
    ceiling = min(cap, base * 2 ** min(max(attempts - 1, 0), 40))
    return (rng or random).uniform(0, ceiling)


def answer_text(body: bytes) -> str:
    """The first :data:`MAX_ANSWER_BYTES` of an answer's body as one line of text: UTF-8 (an
    undecodable byte replaced), every control and line-breaking character replaced by a space."""
    text = body[:MAX_ANSWER_BYTES].decode("utf-8", errors="replace")
    return _CONTROL.sub(" ", text)


def utc_time(epoch: float) -> str:
    """Epoch seconds as the stores write times: ISO 8601, UTC, microseconds."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


def iso_time(text: str, field: str) -> str:
    """``text``, an ISO 8601 time with a zone (``Z`` or ``+01:00``) or a UTC date, as the stores
    write times (so that it compares with theirs as text); a :class:`ValidationError` naming
    ``field`` otherwise."""
    if not isinstance(text, str):
        raise ValidationError(field, f"expected an ISO 8601 time, got {type(text).__name__}")
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise ValidationError(field, f"expected an ISO 8601 time (2026-01-31T12:00:00Z), got {text[:60]!r}") from None
    if moment.tzinfo is None:
        if len(value) > 10:
            raise ValidationError(field, f"expected a time with its zone (Z, or +01:00), got {text[:60]!r}")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def delivery_data(delivery: Delivery) -> dict[str, object]:
    """A delivery as JSON (the CLI's ``--json`` and the API), with its log."""
    return {
        "id": delivery.id,
        "seq": delivery.seq,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type.value,
        "endpoint_id": delivery.endpoint_id,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": utc_time(delivery.next_attempt_at) if delivery.next_attempt_at is not None else None,
        "created_at": delivery.created_at,
        "finished_at": delivery.finished_at,
        "replay": delivery.replay,
        "log": [attrs.asdict(attempt) for attempt in delivery.log],
    }


class WebhookStore(Protocol):
    """What the webhooks modules need of a store (:class:`~connector_core.store.StoreLike` keeps it).
    An unknown endpoint or delivery is an :class:`~connector_core.errors.UnknownNameError`; an
    endpoint's row changed outside connector-core a :class:`~connector_core.errors.StoreError`
    coded ``tampered``."""

    # endpoints
    def create_webhook_endpoint(
        self, url: str, *, secret: Secret, event_types: Sequence[EventType] = (), allow_private: bool = False
    ) -> WebhookEndpoint:
        """Store a new endpoint (its row sealed, ``secret`` encrypted); the URL is not checked here."""

    def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        """One endpoint, its seal checked."""

    def list_webhook_endpoints(self) -> tuple[WebhookEndpoint, ...]:
        """Every endpoint, oldest first, each seal checked."""

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint with its secrets, deliveries and log."""

    def set_webhook_endpoint_disabled(
        self, endpoint_id: str, disabled: bool, reason: str | None = None
    ) -> WebhookEndpoint:
        """Disable an endpoint (no new deliveries; pending ones wait) or enable it again."""

    def rotate_webhook_secret(self, endpoint_id: str, secret: Secret) -> WebhookEndpoint:
        """``secret`` becomes the current secret and the current one the previous (both sign);
        refused (a ValidationError ``secret``) while a previous one is still kept."""

    def drop_previous_webhook_secret(self, endpoint_id: str) -> WebhookEndpoint:
        """End a rotation: only the current secret signs from now on."""

    def webhook_secrets(self, endpoint_id: str) -> tuple[Secret, ...]:
        """The secrets that sign the endpoint's deliveries: the current one, then the previous one."""

    # the outbox
    def claim_webhook_deliveries(self, owner: str, *, now: float, ttl: float, limit: int) -> tuple[Delivery, ...]:
        """Claim up to ``limit`` due pending deliveries of enabled endpoints for ``owner`` until
        ``now + ttl``: ones nobody claims, whose claim expired, or that ``owner`` claimed itself.
        Concurrent claimers never get the same delivery."""

    def record_webhook_attempt(
        self,
        delivery_id: str,
        attempt: AttemptRecord,
        outcome: Outcome,
        *,
        owner: str,
        next_attempt_at: float | None = None,
        reason: str | None = None,
    ) -> DeliveryStatus | None:
        """Log one attempt and move the delivery on as ``outcome`` says (``gone``: the endpoint is
        disabled with ``reason`` and its pending deliveries failed), in one transaction; the
        delivery's status after it, or None when it is gone (its endpoint was deleted)."""

    def record_webhook_attempts(
        self, results: Sequence[AttemptResult], *, owner: str
    ) -> tuple[DeliveryStatus | None, ...]:
        """:meth:`record_webhook_attempt` for each of ``results``, in order, in one transaction
        (a deliverer's round: one commit for all its attempts); each delivery's status after it."""

    def get_webhook_delivery(self, delivery_id: str) -> Delivery:
        """One delivery with its log."""

    def list_webhook_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        after: int | None = None,
        limit: int | None = None,
        with_log: bool = True,
    ) -> tuple[Delivery, ...]:
        """Deliveries in the outbox's order, filtered, each with its log unless ``with_log=False``."""

    def outbox_depth(self) -> int:
        """How many deliveries are pending."""

    def replay_webhooks(
        self,
        *,
        event_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        endpoint_id: str | None = None,
    ) -> int:
        """New deliveries of one event, or of the events recorded from ``since`` until before
        ``until``, to every enabled endpoint subscribed to each (or to ``endpoint_id`` only);
        returns how many were made."""

    def get_event(self, event_id: str) -> Event:
        """One lifecycle event by id."""

    def get_events(self, event_ids: Sequence[str]) -> tuple[Event, ...]:
        """The events of these ids that exist, in the order they were recorded."""
