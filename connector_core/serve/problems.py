"""Every error the platform API answers, as an RFC 9457 problem (``application/problem+json``),
and reading a request's JSON body strictly (size, syntax, known fields only).

A problem carries ``type``, ``title``, ``status``, ``detail`` in plain words and, when one
value was wrong, ``field`` naming it. Never a traceback, never a secret: details come from the
library's own one-line messages, which carry none, or are written here.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import (
    ConnectorError,
    CredentialsRejected,
    OAuthError,
    ReconnectRequired,
    RequestFailed,
    StoreError,
    TransientError,
    UnknownNameError,
    ValidationError,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "PROBLEM_TYPE",
    "Problem",
    "error_problem",
    "problem_response",
    "read_json",
    "read_query",
]

#: The largest request body the API reads.
DEFAULT_MAX_BODY = 1024 * 1024
#: Where the problem types are described (``PROBLEM_TYPE + "not-found"``...).
PROBLEM_TYPE = "https://connector-core.dev/problems/"
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An answer that is an error: raised anywhere in a handler, answered as a problem."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = " ".join(detail.split())
        self.field = field
        self.headers = headers or {}


def problem_response(problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + problem.kind,
        "title": HTTPStatus(problem.status).phrase,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.field is not None:
        body["field"] = problem.field
    return Response(
        json.dumps(body, ensure_ascii=False).encode("utf-8"),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=problem.headers,
    )


def error_problem(exc: ConnectorError) -> Problem:
    """The problem a library error becomes: what was wrong decides the status."""
    if isinstance(exc, UnknownNameError):
        return Problem(404, "not-found", f"no {exc.kind} {exc.name!r}")
    if isinstance(exc, ValidationError):
        return Problem(400, "invalid", exc.message, field=exc.field)
    if isinstance(exc, ReconnectRequired):
        return Problem(409, "reconnect-required", exc.message)
    if isinstance(exc, CredentialsRejected):
        return Problem(409, "credentials-rejected", exc.message)
    if isinstance(exc, TransientError):
        return Problem(503, "provider-unavailable", exc.message, headers={"Retry-After": "30"})
    if isinstance(exc, (OAuthError, RequestFailed)):
        return Problem(502, "provider-error", exc.message)
    if isinstance(exc, StoreError):
        return Problem(503, "store-unavailable", "the store cannot be reached; try again later")
    return Problem(500, "internal", "the request could not be completed")


def read_query(request: Request, allowed: Sequence[str]) -> dict[str, str]:
    """The query parameters, each at most once and all of them known: else a 400 naming the first."""
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise Problem(
                400,
                "unknown-field",
                f"{name[:50]}: unknown parameter (expected: {', '.join(allowed)})",
                field=name[:50],
            )
        if name in found:
            raise Problem(400, "invalid", f"{name}: given more than once", field=name)
        found[name] = value
    return found


async def read_json(request: Request, fields: Collection[str], limit: int = DEFAULT_MAX_BODY) -> dict[str, Any]:
    """The request's JSON object, at most ``limit`` bytes, with no field but ``fields``:
    413 when larger, 400 (naming the field) when malformed, not an object, or unknown."""
    body = await read_body(request, limit)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise Problem(415, "unsupported-media-type", "send the body as application/json", field="body")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        where = f" ({exc.msg} at position {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        raise Problem(400, "malformed-json", f"body: is not valid JSON{where}", field="body") from None
    if not isinstance(data, dict):
        raise Problem(400, "invalid", f"body: expected a JSON object, got {type(data).__name__}", field="body")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise Problem(
            400,
            "unknown-field",
            f"{unknown[0]}: unknown field (expected: {', '.join(sorted(fields))})",
            field=unknown[0],
        )
    return data


async def read_body(request: Request, limit: int = DEFAULT_MAX_BODY) -> bytes:
    """The request body, refused (413) as soon as it is larger than ``limit`` bytes, whatever
    its Content-Length says."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "too-large", f"body: larger than {limit} bytes", field="body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "too-large", f"body: larger than {limit} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)
