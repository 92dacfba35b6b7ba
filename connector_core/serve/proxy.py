"""The authenticated proxy's rules: which paths may be forwarded (never one that leaves the
connection's API base URL), and which headers cross in each direction.

Sans-I/O: plain functions over strings, used by the proxy route in :mod:`.app`, which sends
through :meth:`~connector_core.Connector.arequest` (its size cap, deadline and retries).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

__all__ = ["FORWARDED_REQUEST_HEADERS", "HOP_BY_HOP", "path_problem", "request_headers", "response_headers"]

#: The caller's headers the provider gets (the connector adds Authorization, Accept and
#: Content-Type itself; anything else, cookies and the API key above all, stays here).
FORWARDED_REQUEST_HEADERS = frozenset(
    {"accept-language", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "prefer"}
)
#: The provider's headers the caller gets besides Content-Type.
_FORWARDED_RESPONSE = frozenset({"etag", "last-modified", "retry-after", "link", "content-language"})
_RATE_LIMIT = re.compile(r"(x-)?rate-?limit-[a-z-]+")
#: Never forwarded either way (RFC 9110 §7.6.1), whatever a Connection header names.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
    | {"proxy-authenticate", "proxy-authorization"}
)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
#: Bytes a path may hold as they arrive (RFC 3986 pchar and '/', with percent-escapes).
_PATH_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
_MAX_PATH = 2048


def path_problem(raw: str) -> str | None:
    """Why the proxied path ``raw`` (as sent, still percent-encoded, after ``/proxy/``) is
    refused, or None. It must stay under the API base URL however it is decoded: no ``..``
    or ``.`` segment, no empty segment (``//host``), no scheme (an absolute URL), no
    backslash, no control character, in the raw form or after one, two or three decodings."""
    if not raw:
        return "is empty"
    if len(raw) > _MAX_PATH:
        return f"is longer than {_MAX_PATH} characters"
    if not _PATH_CHARS.fullmatch(raw):
        return "holds a character that is not allowed in a URL path"
    form = raw
    for _ in range(4):
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in form) or "\\" in form:
            return "holds a control character or a backslash"
        if _SCHEME.match(form) or form.startswith("/"):
            return "is an absolute URL or starts with '/'; give a path relative to the API base URL"
        segments = form.split("/")
        if any(segment in (".", "..") for segment in segments):
            return "holds a '.' or '..' segment, which would leave the API base URL"
        if "" in segments[:-1]:
            return "holds an empty segment ('//'), which could name another host"
        decoded = unquote(form)
        if decoded == form:
            return None
        form = decoded
    return "is encoded too many times"


def request_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The caller's headers that are forwarded to the provider."""
    return {name.lower(): value for name, value in headers if name.lower() in FORWARDED_REQUEST_HEADERS}


def response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The provider's headers (lower-case names) that are passed back, hop-by-hop ones and
    those a Connection header names dropped."""
    named = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    kept = {}
    for name, value in headers.items():
        if name in HOP_BY_HOP or name in named:
            continue
        if name in _FORWARDED_RESPONSE or _RATE_LIMIT.fullmatch(name):
            kept[name] = value
    return kept


def response_media_type(headers: Mapping[str, str]) -> str:
    """The provider's media type when it is JSON or plain text, else ``application/octet-stream``:
    the API never answers as HTML or script on the provider's say-so."""
    media = headers.get("content-type", "")
    base = media.split(";", 1)[0].strip().lower()
    if base == "application/json" or (base.startswith("application/") and base.endswith("+json")):
        return media
    if base == "text/plain":
        return media
    return "application/octet-stream"
