"""Log lines with no secret in them: :func:`redact`, and two formatters that apply it to every
record, :class:`JsonFormatter` (one JSON object a line) and :class:`RedactingFormatter` (text).

The code that logs already keeps secrets out (tokens are :class:`~connector_core.secret.Secret`,
paths are logged without their query); these formatters are the second line, so that a careless
log call, or a library's message that quotes a URL or a header, still cannot leak one.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .secret import Secret

__all__ = ["MASK", "JsonFormatter", "RedactingFormatter", "redact"]

#: What a masked value becomes.
MASK = "***"
#: Query and form parameters whose values are secrets (``?code=...&state=...``).
_SECRET_PARAMS = (
    "code",
    "state",
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "client_secret",
    "password",
    "api_key",
)
_JSON_KEYS = "|".join(n for n in _SECRET_PARAMS if n not in ("code", "state", "token"))
_PATTERNS = (
    # Authorization: Bearer xxx / Basic xxx (and the scheme written alone in a message)
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"), rf"\1\2{MASK}"),
    # connect-session tokens and webhook signing secrets, by their prefixes
    (re.compile(r"\bcs_[A-Za-z0-9_-]+"), f"cs_{MASK}"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+"), f"whsec_{MASK}"),
    # name=value in a query string or a form body
    (re.compile(rf"(?i)\b({'|'.join(_SECRET_PARAMS)})=[^&\s\"'<>,;]+"), rf"\1={MASK}"),
    # "access_token": "..." in a JSON body or a Python repr
    (re.compile(rf"(?i)([\"'](?:{_JSON_KEYS})[\"']\s*:\s*[\"'])[^\"']*"), rf"\1{MASK}"),
)
#: The attributes every LogRecord has: anything else on a record came through ``extra=``.
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
#: Not fields: the formatter's own keys, and uvicorn's coloured copy of its message.
_SKIPPED = frozenset({"time", "level", "logger", "message", "color_message"})


def redact(text: str) -> str:
    """``text`` with whatever looks like a secret masked: bearer and basic credentials,
    ``cs_`` connect-session tokens, ``whsec_`` webhook secrets, the values of ``code=``,
    ``state=``, ``access_token=``, ``refresh_token=`` (and other secret parameters), and
    ``"access_token": "..."`` pairs."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _clean(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON can hold it, every string in it redacted."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, str):
        return redact(value)
    if depth < 5 and isinstance(value, Mapping):
        return {redact(str(k)): _clean(v, depth + 1) for k, v in value.items()}
    if depth < 5 and isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``,
    ``message``, then every field passed with ``extra={...}`` (``method``, ``path``,
    ``status``, ``ms``, ``connection_id``...), and for an exception its ``exc_type`` (the
    class name; its ``traceback`` too when ``tracebacks`` is true). The message and every
    string in the fields go through :func:`redact`."""

    def __init__(self, *, tracebacks: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        data: dict[str, Any] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_FIELDS and name not in _SKIPPED and not name.startswith("_"):
                data[name] = _clean(value)
        if record.exc_info and record.exc_info[0] is not None:
            data["exc_type"] = record.exc_info[0].__name__
            if self.tracebacks:
                data["traceback"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False, default=str)


class RedactingFormatter(logging.Formatter):
    """A :class:`logging.Formatter` (same arguments) whose whole output, traceback included,
    goes through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
