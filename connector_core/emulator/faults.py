"""Fault injection: make an emulator endpoint fail the way real services do.

Tests switch faults on through :attr:`RunningEmulator.faults
<connector_core.emulator.RunningEmulator.faults>`::

    emu.faults.status("token", 503, times=2)        # the next two token requests answer 503
    emu.faults.rate_limited("api", retry_after=7)   # 429 with Retry-After: 7
    emu.faults.drop_connection("POST /people/search", times=None)   # always
    emu.faults.clear()

An endpoint is named ``authorize``, ``consent``, ``token``, ``revocation``,
``api`` (every resource endpoint), ``*`` (everything), or one resource
endpoint by ``METHOD /path`` or by its path alone.
"""

from __future__ import annotations

import email.utils
import enum
import threading
import time
from collections.abc import Iterable, Sequence

import attrs

from ..errors import UnknownNameError
from .http import HttpResponse, json_response
from .spec import ErrorBody

__all__ = ["Fault", "FaultKind", "Faults", "fault_response"]


class FaultKind(enum.Enum):
    """What goes wrong."""

    #: An error status (500, 502, 503...) with a JSON error body.
    STATUS = "status"
    #: 429 with ``Retry-After`` (seconds or an HTTP date) and, optionally, ``X-RateLimit-*`` headers.
    RATE_LIMITED = "rate_limited"
    #: A delay, then the normal response.
    SLOW = "slow"
    #: An error status with an HTML body, as a proxy or load balancer sends.
    HTML_ERROR = "html_error"
    #: The normal response with its JSON cut in half (the HTTP message itself is complete).
    TRUNCATED_JSON = "truncated_json"
    #: ``Content-Length`` promises the whole body, half is sent, then the connection closes.
    INCOMPLETE_BODY = "incomplete_body"
    #: The connection closes without any response.
    DROP_CONNECTION = "drop_connection"
    #: A 200 JSON body of at least ``size`` bytes.
    OVERSIZED = "oversized"
    #: The normal response, its body sent one byte every ``delay`` seconds.
    DRIP = "drip"


#: Kinds that corrupt the real response, so the request is always processed first.
_ALWAYS_PROCESSED = frozenset({FaultKind.TRUNCATED_JSON, FaultKind.INCOMPLETE_BODY, FaultKind.DRIP})


@attrs.frozen
class Fault:
    """One fault. Build them with the class methods.

    ``after_processing=True`` lets the request take effect (a token is issued,
    a refresh token rotated) before the response is replaced: the client then
    loses an answer the server acted on.
    """

    kind: FaultKind = attrs.field(validator=attrs.validators.instance_of(FaultKind))
    status: int = attrs.field(default=500)
    delay: float = attrs.field(default=0.0)
    retry_after: int | None = attrs.field(default=None)
    retry_after_http_date: bool = False
    rate_limit_headers: bool = True
    size: int = attrs.field(default=0)
    after_processing: bool = False

    @status.validator
    def _check_status(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or not 100 <= value <= 599:
            raise ValueError(f"Fault.status: expected an HTTP status code, got {value!r}")

    @delay.validator
    def _check_delay(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not isinstance(value, (int, float)) or not 0 <= value <= 600:
            raise ValueError(f"Fault.delay: expected 0 to 600 seconds, got {value!r}")

    @retry_after.validator
    def _check_retry_after(self, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError(f"Fault.retry_after: expected whole seconds, got {value!r}")

    @size.validator
    def _check_size(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or not 0 <= value <= 512 * 1024 * 1024:
            raise ValueError(f"Fault.size: expected 0 to 512 MiB, got {value!r}")

    @property
    def processed(self) -> bool:
        """Whether the request takes effect before the fault shapes the response."""
        return self.after_processing or self.kind in _ALWAYS_PROCESSED or self.kind is FaultKind.SLOW

    @classmethod
    def error_status(cls, status: int = 500, *, after_processing: bool = False) -> Fault:
        return cls(FaultKind.STATUS, status=status, after_processing=after_processing)

    @classmethod
    def rate_limited(cls, retry_after: int = 1, *, http_date: bool = False, rate_limit_headers: bool = True) -> Fault:
        return cls(
            FaultKind.RATE_LIMITED,
            status=429,
            retry_after=retry_after,
            retry_after_http_date=http_date,
            rate_limit_headers=rate_limit_headers,
        )

    @classmethod
    def slow(cls, seconds: float, *, after_processing: bool = False) -> Fault:
        return cls(FaultKind.SLOW, delay=seconds, after_processing=after_processing)

    @classmethod
    def html_error(cls, status: int = 502) -> Fault:
        return cls(FaultKind.HTML_ERROR, status=status)

    @classmethod
    def truncated_json(cls) -> Fault:
        return cls(FaultKind.TRUNCATED_JSON, status=200)

    @classmethod
    def incomplete_body(cls) -> Fault:
        return cls(FaultKind.INCOMPLETE_BODY, status=200)

    @classmethod
    def drop_connection(cls, *, after_processing: bool = False) -> Fault:
        return cls(FaultKind.DROP_CONNECTION, after_processing=after_processing)

    @classmethod
    def drip(cls, seconds_per_byte: float = 1.0) -> Fault:
        return cls(FaultKind.DRIP, delay=seconds_per_byte)

    @classmethod
    def oversized(cls, size: int = 10 * 1024 * 1024) -> Fault:
        return cls(FaultKind.OVERSIZED, status=200, size=size)


@attrs.define
class _Armed:
    endpoint: str
    fault: Fault
    #: ``None``: until cleared.
    remaining: int | None


class Faults:
    """The faults switched on for a running emulator. Thread-safe."""

    def __init__(self, endpoint_names: Iterable[str]) -> None:
        self._known = tuple(dict.fromkeys(("authorize", "consent", "token", "revocation", "api", "*", *endpoint_names)))
        self._armed: list[_Armed] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Faults {len(self._armed)} armed>"

    def inject(self, endpoint: str, fault: Fault, *, times: int | None = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests to ``endpoint`` (``None``: every request)."""
        if endpoint not in self._known:
            raise UnknownNameError("emulator endpoint", endpoint, self._known)
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ValueError(f"times: expected a positive number or None, got {times!r}")
        with self._lock:
            self._armed.append(_Armed(endpoint, fault, times))

    def status(
        self, endpoint: str, status: int = 500, *, times: int | None = 1, after_processing: bool = False
    ) -> None:
        """Answer with ``status`` and a JSON error body."""
        self.inject(endpoint, Fault.error_status(status, after_processing=after_processing), times=times)

    def rate_limited(
        self,
        endpoint: str,
        *,
        retry_after: int = 1,
        http_date: bool = False,
        rate_limit_headers: bool = True,
        times: int | None = 1,
    ) -> None:
        """Answer 429 with ``Retry-After`` in seconds (or as an HTTP date)."""
        fault = Fault.rate_limited(retry_after, http_date=http_date, rate_limit_headers=rate_limit_headers)
        self.inject(endpoint, fault, times=times)

    def slow(self, endpoint: str, seconds: float, *, times: int | None = 1, after_processing: bool = False) -> None:
        """Wait ``seconds`` before answering normally."""
        self.inject(endpoint, Fault.slow(seconds, after_processing=after_processing), times=times)

    def html_error(self, endpoint: str, status: int = 502, *, times: int | None = 1) -> None:
        """Answer ``status`` with an HTML page instead of JSON."""
        self.inject(endpoint, Fault.html_error(status), times=times)

    def truncated_json(self, endpoint: str, *, times: int | None = 1) -> None:
        """Answer normally, with the JSON body cut in half."""
        self.inject(endpoint, Fault.truncated_json(), times=times)

    def incomplete_body(self, endpoint: str, *, times: int | None = 1) -> None:
        """Promise the whole body in ``Content-Length``, send half, close the connection."""
        self.inject(endpoint, Fault.incomplete_body(), times=times)

    def drop_connection(self, endpoint: str, *, times: int | None = 1, after_processing: bool = False) -> None:
        """Close the connection without answering."""
        self.inject(endpoint, Fault.drop_connection(after_processing=after_processing), times=times)

    def oversized(self, endpoint: str, size: int = 10 * 1024 * 1024, *, times: int | None = 1) -> None:
        """Answer 200 with a JSON body of at least ``size`` bytes."""
        self.inject(endpoint, Fault.oversized(size), times=times)

    def drip(self, endpoint: str, seconds_per_byte: float = 1.0, *, times: int | None = 1) -> None:
        """Answer normally, sending the body one byte every ``seconds_per_byte``."""
        self.inject(endpoint, Fault.drip(seconds_per_byte), times=times)

    def clear(self, endpoint: str | None = None) -> None:
        """Switch off every fault, or those of one endpoint."""
        with self._lock:
            self._armed = [a for a in self._armed if endpoint is not None and a.endpoint != endpoint]

    @property
    def armed(self) -> tuple[tuple[str, Fault, int | None], ...]:
        """``(endpoint, fault, remaining)`` for every fault still switched on."""
        with self._lock:
            return tuple((a.endpoint, a.fault, a.remaining) for a in self._armed)

    def take(self, names: Sequence[str]) -> Fault | None:
        """The first armed fault for any of ``names``, counting it as used (internal)."""
        with self._lock:
            for armed in self._armed:
                if armed.endpoint in names:
                    if armed.remaining is not None:
                        armed.remaining -= 1
                        if armed.remaining <= 0:
                            self._armed.remove(armed)
                    return armed.fault
        return None


def fault_response(
    fault: Fault, processed: HttpResponse | None, *, error_body: ErrorBody | None, rate_limit: int | None
) -> HttpResponse:
    """The response a fault answers with. ``processed`` is the real response, for the
    kinds that need it; ``error_body`` is the provider's (API endpoints) or ``None``
    (OAuth endpoints: RFC 6749 style)."""
    kind = fault.kind

    def error(
        status: int, key: str, oauth_error: str, message: str, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        if error_body is not None:
            return json_response(status, error_body(status, key, message), headers)
        return json_response(status, {"error": oauth_error, "error_description": message}, headers)

    if kind is FaultKind.DROP_CONNECTION:
        return HttpResponse(0, drop=True)
    if kind is FaultKind.STATUS:
        oauth_error = "temporarily_unavailable" if fault.status == 503 else "server_error"
        return error(fault.status, "internal_error", oauth_error, f"Injected fault: HTTP {fault.status}.")
    if kind is FaultKind.RATE_LIMITED:
        retry_after = fault.retry_after or 1
        # Real time, not the emulator's clock: clients compare an HTTP date with their own.
        now = time.time()
        if fault.retry_after_http_date:
            headers = {"Retry-After": email.utils.formatdate(now + retry_after, usegmt=True)}
        else:
            headers = {"Retry-After": str(retry_after)}
        if fault.rate_limit_headers:
            headers["X-RateLimit-Limit"] = str(rate_limit or 60)
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(int(now + retry_after))
        message = f"Too many requests; retry after {retry_after} seconds."
        return error(429, "too_many_requests", "temporarily_unavailable", message, headers)
    if kind is FaultKind.HTML_ERROR:
        reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}.get(
            fault.status, "Error"
        )
        page = (
            f"<html><head><title>{fault.status} {reason}</title></head><body>"
            f"<center><h1>{fault.status} {reason}</h1></center><hr><center>proxy</center></body></html>\n"
        ).encode()
        return HttpResponse(fault.status, {"Content-Type": "text/html"}, page)
    if kind is FaultKind.OVERSIZED:
        return HttpResponse(200, {"Content-Type": "application/json"}, b'{"padding": "' + b"x" * fault.size + b'"}')
    # TRUNCATED_JSON and INCOMPLETE_BODY corrupt the real response.
    if processed is None:
        raise ValueError(f"a {kind.value} fault needs the processed response")
    if processed.drop:
        return processed
    if kind is FaultKind.DRIP:
        return attrs.evolve(processed, drip=fault.delay)
    body = processed.body if len(processed.body) >= 2 else b'{"emulator": "this body is cut short"}'
    if kind is FaultKind.TRUNCATED_JSON:
        return attrs.evolve(processed, body=body[: len(body) // 2])
    return attrs.evolve(processed, body=body, cut_body_at=len(body) // 2)
