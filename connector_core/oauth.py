"""OAuth 2.0 protocol logic, sans I/O.

Builds authorization URLs and token/revocation requests (with oauthlib) and
parses callbacks and token responses strictly (with our own checks: oauthlib
parses a non-JSON body as form data and checks ``state`` only when asked). Nothing
here sends a byte; :mod:`connector_core.connections` drives these with httpx.

Follows RFC 6749, RFC 7636 (PKCE S256 only), RFC 8252 (http only for loopback
hosts, by an explicit per-URL allowance, never ``OAUTHLIB_INSECURE_TRANSPORT``),
RFC 7009 (revocation), RFC 9207 (``iss``) and RFC 9700.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import attrs

from .errors import AccessDenied, InvalidClient, InvalidGrant, OAuthError, StateError, TransientError
from .models import ClientAuthMethod, is_loopback_host
from .secret import Secret

__all__ = [
    "AccessDenied",
    "CallbackParams",
    "HttpRequest",
    "InvalidClient",
    "InvalidGrant",
    "OAuthError",
    "StateError",
    "TokenSet",
    "TransientError",
    "authorization_url",
    "basic_auth_header",
    "check_issuer",
    "client_credentials_request",
    "code_challenge",
    "metadata_request",
    "new_code_verifier",
    "new_state",
    "origin",
    "parse_callback",
    "parse_metadata",
    "parse_token_response",
    "refresh_request",
    "revocation_request",
    "state_hash",
    "token_request",
]

#: Token and error bodies larger than this are refused (checklist §4: bounded sizes).
MAX_TOKEN_RESPONSE_BYTES = 256 * 1024
#: 32 random octets: 256 bits of state, well over RFC 6749 §10.10's 128.
STATE_BYTES = 32


#: RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def _clean(text: object, limit: int = 200) -> str:
    """RFC 6749 limits error_description to printable ASCII; strip anything else before printing."""
    cleaned = "".join(ch for ch in str(text) if 0x20 <= ord(ch) < 0x7F)
    return cleaned[:limit] + ("..." if len(cleaned) > limit else "")


# ---------------------------------------------------------------- small helpers


@attrs.frozen
class HttpRequest:
    """A request to send: what the transport needs and nothing more. ``body`` may
    hold secrets; it is never logged or shown (``repr`` leaves it out)."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False, default=b"")
    #: Stop reading the body past this many bytes (``None``: the transport's cap for API bodies).
    max_bytes: int | None = None


def new_state() -> str:
    return secrets.token_urlsafe(STATE_BYTES)


def state_hash(state: str) -> str:
    """What the store keeps instead of the state itself."""
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def new_code_verifier() -> Secret:
    """RFC 7636 §4.1: 32 random octets, base64url: 43 characters."""
    return Secret(base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii"))


def code_challenge(verifier: Secret) -> str:
    """RFC 7636 §4.2 S256: BASE64URL(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.reveal().encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _check_transport(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
        return
    raise OAuthError(
        f"{what} {url!r} is not https (http is allowed only for loopback hosts)", error="insecure_transport"
    )


def _as_oauthlib_uri(url: str) -> tuple[str, bool]:
    """oauthlib refuses http:// outright unless a process-wide switch is set. For a
    loopback URL (already allowed by :func:`_check_transport`) hand it an https form
    and put http back afterwards: a per-URL allowance, not a global one."""
    if url.startswith("http://"):
        return "https://" + url[len("http://") :], True
    return url, False


def authorization_url(
    authorize_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    scope_separator: str,
    state: str,
    verifier: Secret | None,
    extra_params: Sequence[tuple[str, str]] = (),
) -> str:
    """The authorization request URL (RFC 6749 §4.1.1, RFC 7636 §4.3)."""
    from oauthlib.oauth2.rfc6749.parameters import prepare_grant_uri

    _check_transport(authorize_url, "authorize URL")
    _check_transport(redirect_uri, "redirect URI")
    uri, swapped = _as_oauthlib_uri(authorize_url)
    kwargs: dict[str, Any] = dict(extra_params)
    url: str = prepare_grant_uri(
        uri,
        client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=scope_separator.join(scopes) if scopes else None,
        state=state,
        code_challenge=code_challenge(verifier) if verifier is not None else None,
        code_challenge_method="S256" if verifier is not None else None,
        **kwargs,
    )
    return "http://" + url[len("https://") :] if swapped else url


def basic_auth_header(client_id: str, client_secret: Secret) -> str:
    """RFC 6749 §2.3.1: form-urlencode id and secret, then Basic (RFC 7617)."""
    user = quote(client_id, safe="")
    password = quote(client_secret.reveal(), safe="")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _token_post(
    url: str, body: str, *, client_id: str, client_secret: Secret | None, method: ClientAuthMethod
) -> HttpRequest:
    _check_transport(url, "token URL")
    headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")]
    if client_secret is not None and method is ClientAuthMethod.CLIENT_SECRET_BASIC:
        headers.append(("Authorization", basic_auth_header(client_id, client_secret)))
    return HttpRequest("POST", url, tuple(headers), body.encode("utf-8"), max_bytes=MAX_TOKEN_RESPONSE_BYTES)


def _client_params(client_id: str, client_secret: Secret | None, method: ClientAuthMethod) -> dict[str, Any]:
    if method is ClientAuthMethod.CLIENT_SECRET_POST:
        return {"client_id": client_id, "client_secret": client_secret.reveal() if client_secret else None}
    return {}


def token_request(
    token_url: str,
    *,
    code: Secret,
    redirect_uri: str,
    verifier: Secret | None,
    client_id: str,
    client_secret: Secret | None,
    method: ClientAuthMethod,
) -> HttpRequest:
    """The code exchange (RFC 6749 §4.1.3), credentials sent one way only."""
    from oauthlib.oauth2.rfc6749.parameters import prepare_token_request

    body: str = prepare_token_request(
        "authorization_code",
        code=code.reveal(),
        redirect_uri=redirect_uri,
        code_verifier=verifier.reveal() if verifier is not None else None,
        include_client_id=method is ClientAuthMethod.CLIENT_SECRET_POST,
        **_client_params(client_id, client_secret, method),
    )
    return _token_post(token_url, body, client_id=client_id, client_secret=client_secret, method=method)


def refresh_request(
    token_url: str,
    *,
    refresh_token: Secret,
    scopes: Sequence[str] | None,
    scope_separator: str,
    client_id: str,
    client_secret: Secret | None,
    method: ClientAuthMethod,
) -> HttpRequest:
    """A refresh (RFC 6749 §6), asking for the original scopes (or none: the same)."""
    from oauthlib.oauth2.rfc6749.parameters import prepare_token_request

    body: str = prepare_token_request(
        "refresh_token",
        refresh_token=refresh_token.reveal(),
        scope=scope_separator.join(scopes) if scopes else None,
        include_client_id=method is ClientAuthMethod.CLIENT_SECRET_POST,
        **_client_params(client_id, client_secret, method),
    )
    return _token_post(token_url, body, client_id=client_id, client_secret=client_secret, method=method)


def client_credentials_request(
    token_url: str,
    *,
    scopes: Sequence[str] | None,
    scope_separator: str,
    client_id: str,
    client_secret: Secret | None,
    method: ClientAuthMethod,
    extra_params: Sequence[tuple[str, str]] = (),
) -> HttpRequest:
    """A client credentials grant (RFC 6749 §4.4.2), for the given scopes (or the server's default)."""
    from oauthlib.oauth2.rfc6749.parameters import prepare_token_request

    body: str = prepare_token_request(
        "client_credentials",
        scope=scope_separator.join(scopes) if scopes else None,
        include_client_id=method is ClientAuthMethod.CLIENT_SECRET_POST,
        **dict(extra_params),
        **_client_params(client_id, client_secret, method),
    )
    return _token_post(token_url, body, client_id=client_id, client_secret=client_secret, method=method)


def revocation_request(
    revocation_url: str,
    *,
    token: Secret,
    token_type_hint: str,
    client_id: str,
    client_secret: Secret | None,
    method: ClientAuthMethod,
) -> HttpRequest:
    """RFC 7009 §2.1."""
    from urllib.parse import urlencode

    params = {"token": token.reveal(), "token_type_hint": token_type_hint}
    params.update({k: v for k, v in _client_params(client_id, client_secret, method).items() if v is not None})
    return _token_post(
        revocation_url, urlencode(params), client_id=client_id, client_secret=client_secret, method=method
    )


# ----------------------------------------------------------------------- callback


@attrs.frozen
class CallbackParams:
    """What a callback may carry; nothing else is read from it."""

    code: Secret | None = attrs.field(repr=False)
    state: str | None = attrs.field(repr=False)
    iss: str | None = None
    error: str | None = None
    error_description: str | None = None


_CALLBACK_KEYS = ("code", "state", "iss", "error", "error_description")


def parse_callback(callback: str | Mapping[str, str]) -> CallbackParams:
    """Parse a callback URL (or its query parameters). Only ``code``, ``state``,
    ``iss`` and the error fields are read; tokens smuggled into it are ignored, and
    a repeated parameter is refused."""
    if isinstance(callback, str):
        text = callback.strip()
        if not text:
            raise StateError("the callback URL is empty", error="invalid_request")
        try:
            parts = urlsplit(text)
        except ValueError:  # a malformed host: "[::1", "[abc]", characters NFKC turns into "#"...
            raise OAuthError("the callback URL is malformed", error="invalid_request") from None
        # A full URL, a path with a query, or just the query string itself.
        query = parts.query if (parts.scheme or "?" in text) else text
        if not query and parts.fragment:
            raise OAuthError(
                "the callback carries its parameters in the #fragment; expected a query string", error="invalid_request"
            )
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
        except ValueError:
            raise OAuthError("the callback has too many parameters", error="invalid_request") from None
    else:
        pairs = [(str(k), str(v)) for k, v in callback.items()]
    found: dict[str, str] = {}
    for key, value in pairs:
        if key not in _CALLBACK_KEYS:
            continue
        if key in found:
            raise OAuthError(f"the callback repeats the parameter {key!r}", error="invalid_request")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (undecodable bytes pasted in): unusable
            raise OAuthError(f"the callback's {key!r} is not valid text", error="invalid_request") from None
        found[key] = value
    code = found.get("code")
    return CallbackParams(
        code=Secret(code) if code else None,
        state=found.get("state") or None,
        iss=found.get("iss") or None,
        error=_clean(found["error"], 64) if found.get("error") else None,
        error_description=_clean(found["error_description"]) if found.get("error_description") else None,
    )


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased, without a default port (RFC 6454)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"https": 443, "http": 80}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def check_issuer(iss: str | None, *, issuer: str | None, required: bool, authorize_url: str) -> None:
    """The RFC 9207 mix-up defence on a callback's ``iss``, before any code exchange.

    With a known ``issuer`` the callback's ``iss`` must equal it (simple string comparison,
    §2.4), and must be present when ``required`` (the metadata advertises
    ``authorization_response_iss_parameter_supported``, or the issuer was configured). With
    no known issuer, an ``iss`` that is not the authorization endpoint's origin names another
    server and is refused too."""
    if issuer is not None:
        if iss == issuer or (iss is None and not required):
            return
        shown = "no iss" if iss is None else f"iss {_clean(iss, 100)!r}"
        raise OAuthError(
            f"the callback has {shown}, expected {issuer!r} (RFC 9207 mix-up defence); refused",
            error="invalid_issuer",
        )
    if iss is None:
        return
    server = origin(authorize_url)
    if iss.rstrip("/") != server:
        raise OAuthError(
            f"the callback has iss {_clean(iss, 100)!r}, but the authorization server is {server!r} "
            "(RFC 9207 mix-up defence); refused. If the provider's issuer differs from its origin, "
            "set the profile's issuer",
            error="invalid_issuer",
        )


#: RFC 8414 metadata bodies larger than this are refused.
MAX_METADATA_BYTES = 64 * 1024


def metadata_request(metadata_url: str) -> HttpRequest:
    """A GET of the authorization server's metadata (RFC 8414 §3.1)."""
    _check_transport(metadata_url, "metadata URL")
    return HttpRequest("GET", metadata_url, (("Accept", "application/json"),), max_bytes=MAX_METADATA_BYTES)


def _issuer_of_metadata_url(metadata_url: str) -> str | None:
    """The issuer a metadata URL was built from (RFC 8414 §3.1, and the OpenID Connect
    form), or None when the URL has neither well-known form."""
    parts = urlsplit(metadata_url)
    base = f"{parts.scheme}://{parts.netloc}"
    rfc8414 = "/.well-known/oauth-authorization-server"
    oidc = "/.well-known/openid-configuration"
    if parts.path == rfc8414 or parts.path.startswith(rfc8414 + "/"):
        return base + parts.path[len(rfc8414) :]
    if parts.path.endswith(oidc):
        return base + parts.path[: -len(oidc)]
    return None


def parse_metadata(status: int, body: bytes, *, metadata_url: str, truncated: bool = False) -> tuple[str, bool]:
    """The ``issuer`` and ``authorization_response_iss_parameter_supported`` of an RFC 8414
    metadata response. The issuer must be the one the metadata URL names (§3.3)."""
    what = f"the authorization server metadata at {metadata_url}"
    if truncated:
        raise OAuthError(f"{what} is larger than {MAX_METADATA_BYTES // 1024} KiB; refused", status=status)
    if status != 200:
        raise OAuthError(f"{what} answered {status}; the callback's issuer cannot be checked", status=status)
    data = _json_object(body)
    issuer = data.get("issuer") if data else None
    if not isinstance(issuer, str) or not issuer:
        raise OAuthError(f"{what} has no issuer; the callback's issuer cannot be checked", status=status)
    expected = _issuer_of_metadata_url(metadata_url)
    if expected is not None and issuer != expected:
        raise OAuthError(
            f"{what} names issuer {_clean(issuer, 100)!r}, not {expected!r} (RFC 8414 section 3.3); refused",
            error="invalid_issuer",
            status=status,
        )
    return issuer, data.get("authorization_response_iss_parameter_supported") is True if data else False


def states_match(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


# ----------------------------------------------------------------- token response


@attrs.frozen
class TokenSet:
    """A parsed token response. Tokens are :class:`Secret`; ``extra`` keeps the
    response's other scalar fields (never the tokens) for provider identity."""

    access_token: Secret = attrs.field(repr=False)
    token_type: str
    refresh_token: Secret | None = attrs.field(repr=False, default=None)
    #: Absolute UTC epoch seconds, from the time the request was sent; None if unknown.
    expires_at: float | None = None
    #: The granted scopes, or None when the response did not say (= as requested).
    scopes: tuple[str, ...] | None = None
    extra: tuple[tuple[str, Any], ...] = ()


_TOKEN_FIELDS = {"access_token", "refresh_token", "id_token"}


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        if value.isascii() and value.isdigit():  # RFC 9110: 1*DIGIT, ASCII only ("¹".isdigit() too)
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(0.0, when.timestamp() - now)
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            return None
    return None


def _redact(text: object, secrets: Sequence[str]) -> str:
    """``text`` with every secret value in it replaced by ``***`` (a provider may echo what we sent)."""
    shown = str(text)
    for value in secrets:
        if value:
            shown = shown.replace(value, "***")
    return shown


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    what: str,
    now: float | None = None,
    redact: Sequence[str] = (),
) -> OAuthError:
    """Turn a non-200 token/revocation response into the right typed error. ``redact``: the
    secret values the request carried; an error text that echoes one shows ``***`` instead."""
    now = time.time() if now is None else now
    if status == 429 or status in (500, 502, 503, 504):
        label = "rate limited (429)" if status == 429 else f"answered {status}"
        return TransientError(
            f"{what}: the provider {label}; try again later", status=status, retry_after=retry_after(headers, now)
        )
    data = _json_object(body)
    error = _clean(_redact(data.get("error"), redact), 64) if data and isinstance(data.get("error"), str) else None
    description = (
        _clean(_redact(data.get("error_description"), redact)) if data and data.get("error_description") else None
    )
    if error is None:
        kind = "an HTML page" if body.lstrip()[:1] == b"<" else "a body that is not an OAuth error"
        return OAuthError(f"{what}: the provider answered {status} with {kind}", status=status)
    detail = f": {description}" if description else ""
    message = f"{what} failed with {error}{detail}"
    if error == "invalid_grant":
        return InvalidGrant(message, error=error, status=status, description=description)
    if error in ("invalid_client", "unauthorized_client"):
        return InvalidClient(
            message + " (check the profile's client id, secret and environment)",
            error=error,
            status=status,
            description=description,
        )
    if error == "temporarily_unavailable":
        return TransientError(message, status=status, retry_after=retry_after(headers, now))
    return OAuthError(message, error=error, status=status, description=description)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    return data if isinstance(data, dict) else None


def parse_token_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    sent_at: float,
    what: str = "token request",
    redact: Sequence[str] = (),
) -> TokenSet:
    """Validate a token endpoint response (checklist §4) and return the tokens.

    ``headers`` keys must be lower-case. ``sent_at`` is when the request was sent:
    expiry counts from then, never from the server's clock. ``redact``: the secret values
    the request carried, never shown in an error even when the provider echoes them.
    """
    if len(body) > MAX_TOKEN_RESPONSE_BYTES:
        raise OAuthError(
            f"{what}: the response is larger than {MAX_TOKEN_RESPONSE_BYTES // 1024} KiB; refused", status=status
        )
    if status != 200:
        raise error_from_response(status, headers, body, what=what, redact=redact)
    data = _json_object(body)
    if data is None:
        kind = (
            "an HTML page"
            if body.lstrip()[:1] == b"<"
            else ("an empty body" if not body.strip() else "a body that is not a JSON object")
        )
        raise OAuthError(f"{what}: the provider answered 200 with {kind}", status=status)
    if "error" in data:
        raise error_from_response(400, headers, body, what=what, redact=redact)
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise OAuthError(f"{what}: the response has no access_token", status=status)
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        shown = _clean(token_type, 30) if isinstance(token_type, str) else type(token_type).__name__
        raise OAuthError(f"{what}: token_type {shown!r} is not Bearer; refused", status=status)
    expires_at: float | None = None
    raw = data.get("expires_in")
    if raw is not None:
        try:
            seconds = float(raw) if not isinstance(raw, bool) else float("nan")
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
            seconds = float("nan")
        if not (seconds == seconds) or seconds < 0 or seconds > 10 * 365 * 86400:  # NaN or absurd
            raise OAuthError(f"{what}: expires_in {_clean(raw, 30)!r} is not a number of seconds", status=status)
        expires_at = sent_at + seconds
    refresh = data.get("refresh_token")
    if refresh is not None and (not isinstance(refresh, str) or not refresh):
        raise OAuthError(f"{what}: refresh_token is not a string", status=status)
    scope = data.get("scope")
    scopes: tuple[str, ...] | None = None
    if isinstance(scope, str):
        scopes = tuple(s for s in scope.replace(",", " ").split() if s)
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        scopes = tuple(scope)
    for token in scopes or ():
        if not _SCOPE_TOKEN.fullmatch(token):  # RFC 6749 §3.3: printable ASCII but space, '"' and '\\'
            raise OAuthError(
                f"{what}: the granted scope {token[:60]!a} is not an RFC 6749 scope token; refused",
                status=status,
            )
    extra = tuple(
        (k, v)
        for k, v in data.items()
        if k not in _TOKEN_FIELDS
        and k not in ("token_type", "expires_in", "scope")
        and isinstance(v, (str, int, float, bool))
        and not isinstance(v, bool)
    )
    return TokenSet(
        access_token=Secret(access),
        token_type="Bearer",  # noqa: S106 - a token type, not a password
        refresh_token=Secret(refresh) if refresh else None,
        expires_at=expires_at,
        scopes=scopes,
        extra=extra,
    )
