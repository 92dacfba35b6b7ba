"""The building blocks every declaration record shares: name patterns, enums and
the validators and converters the records' fields use. Cheap to import: no record
classes are built here."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from ..errors import DeclarationError

#: Provider keys are used in URLs, entry-point names and file names.
PROVIDER_KEY_RE = re.compile(r"[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*")
#: Keys of environments, auth types, groups, actions, credential sets.
KEY_RE = re.compile(r"[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*")
#: Credential field names double as JSON property names and CLI option names.
FIELD_NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
#: RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
SCOPE_TOKEN_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
#: A callback path: absolute, no query or fragment, unreserved characters only.
CALLBACK_PATH_RE = re.compile(r"(?:/[A-Za-z0-9._~-]+)+")
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
#: What a profile may override: the OAuth and API URLs of its environment (to point at an
#: emulator or a proxy), the redirect URI registered on the provider's app, and for the RFC 9207
#: mix-up defence the authorization server's issuer and where its RFC 8414 metadata is.
ENDPOINT_NAMES: tuple[str, ...] = (
    "redirect_uri",
    "authorize_url",
    "token_url",
    "revocation_url",
    "api_base_url",
    "issuer",
    "metadata_url",
)
#: Settings beyond URLs that an OAuth 2.0 auth type may let each profile choose
#: (``profile_options``): how scopes are joined, PKCE on or off, how the client authenticates
#: at the token endpoint, and the path of the connection test on the profile's API.
PROFILE_OPTIONS: tuple[str, ...] = ("scope_separator", "pkce", "client_auth_method", "connection_test_path")
#: The scope separators RFC 6749 servers use, by the names a profile may give them too.
SCOPE_SEPARATORS: dict[str, str] = {" ": " ", ",": ",", "+": "+", "space": " ", "comma": ",", "plus": "+"}


# --------------------------------------------------------------------------- enums


class Access(enum.Enum):
    """Whether a scope grants reading or writing."""

    READ = "read"
    WRITE = "write"


class FieldKind(enum.Enum):
    """How a credential field is entered, shown and stored."""

    TEXT = "text"
    #: Never echoed, never shown, encrypted at rest.
    SECRET = "secret"  # noqa: S105 - a field kind, not a password
    #: A list of scope strings, checked against the provider's catalogue.
    SCOPE_LIST = "scope_list"
    URL = "url"


class FieldLevel(enum.Enum):
    """Who supplies a credential field."""

    #: The platform's app registration with the provider (a connector profile).
    APP = "app"
    #: The end user connecting their own account.
    USER = "user"


class ClientAuthMethod(enum.Enum):
    """How the client authenticates at the token endpoint (RFC 6749 section 2.3.1)."""

    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105 - a method name


class AuthKind(enum.Enum):
    """The kind of an auth type, as shown in listings and JSON."""

    OAUTH2_AUTHORIZATION_CODE = "oauth2_authorization_code"
    OAUTH2_CLIENT_CREDENTIALS = "oauth2_client_credentials"
    HTTP_BASIC = "http_basic"
    API_KEY = "api_key"

    @property
    def redirects(self) -> bool:
        """Connecting sends a person to the provider and back (an authorization code grant)."""
        return self is AuthKind.OAUTH2_AUTHORIZATION_CODE

    @property
    def uses_tokens(self) -> bool:
        """Requests carry an OAuth 2.0 access token the connection keeps fresh."""
        return self in (AuthKind.OAUTH2_AUTHORIZATION_CODE, AuthKind.OAUTH2_CLIENT_CREDENTIALS)


class ApiKeyLocation(enum.Enum):
    """Where an API key travels in each request."""

    HEADER = "header"
    QUERY = "query"


class ReconnectKind(enum.Enum):
    """How a broken or outdated connection is repaired."""

    #: Run the authorization flow again; the provider replaces the grant.
    REAUTHORIZE = "reauthorize"
    #: Revoke the old grant (RFC 7009), then authorize again.
    REVOKE_THEN_REAUTHORIZE = "revoke_then_reauthorize"
    #: A person must uninstall the app at the provider first, then authorize again.
    UNINSTALL_THEN_REAUTHORIZE = "uninstall_then_reauthorize"


# ---------------------------------------------------------------------- validators

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _where(instance: Any, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(instance).__name__}.{attribute.name}"


def _text(*, allow_empty: bool = False, max_length: int = 2000) -> _Validator:
    """A single-line (or, for descriptions, any) non-empty string of bounded length."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        where = _where(instance, attribute)
        if not isinstance(value, str):
            raise DeclarationError(where, f"expected a string, got {type(value).__name__}")
        if not allow_empty and not value.strip():
            raise DeclarationError(where, "expected a non-empty string")
        if len(value) > max_length:
            raise DeclarationError(where, f"expected at most {max_length} characters, got {len(value)}")

    return check


def _optional(validator: _Validator) -> _Validator:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            validator(instance, attribute, value)

    return check


def _matches(pattern: re.Pattern[str], expected: str) -> _Validator:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        where = _where(instance, attribute)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise DeclarationError(where, f"expected {expected}, got {value!r}")

    return check


def _url(*, allow_http_loopback: bool = True) -> _Validator:
    """An absolute https URL (http only for loopback hosts, as RFC 8252 allows)."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        where = _where(instance, attribute)
        if not isinstance(value, str):
            raise DeclarationError(where, f"expected a URL string, got {type(value).__name__}")
        problem = url_problem(value, allow_http_loopback=allow_http_loopback)
        if problem:
            raise DeclarationError(where, f"{problem}, got {value!r}")

    return check


def url_problem(value: str, *, allow_http_loopback: bool = True) -> str | None:
    """Say what is wrong with ``value`` as an absolute https URL, or ``None``."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return "expected an absolute URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "expected an absolute https:// URL"
    if any(ch.isspace() for ch in value):
        return "expected a URL without white space"
    if parts.fragment:
        return "expected a URL without a #fragment"
    if "\\" in value:  # a browser reads it as '/', httpx does not: two different hosts
        return "expected a URL without a backslash (a browser and an HTTP client read it differently)"
    if "@" in parts.netloc:
        return "expected a URL without user:password@ before the host"
    if parts.scheme == "http" and not (allow_http_loopback and is_loopback_host(parts.hostname)):
        if allow_http_loopback:
            return "expected https:// (http:// is allowed only for 127.0.0.1, [::1] or localhost)"
        return "expected https://"
    return None


def is_loopback_host(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _instances(kind: type | tuple[type, ...], *, non_empty: bool = False) -> _Validator:
    """Each member of a tuple is an instance of ``kind``."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        where = _where(instance, attribute)
        if non_empty and not value:
            raise DeclarationError(where, "expected at least one entry")
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        for index, item in enumerate(value):
            if not isinstance(item, kind):
                raise DeclarationError(f"{where}[{index}]", f"expected {names}, got {type(item).__name__}")

    return check


def _unique(key: Callable[[Any], str], what: str) -> _Validator:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        seen: set[str] = set()
        for item in value:
            k = key(item)
            if k in seen:
                raise DeclarationError(_where(instance, attribute), f"duplicate {what} {k!r}")
            seen.add(k)

    return check


def _bool(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise DeclarationError(_where(instance, attribute), f"expected true or false, got {value!r}")


def _enum_value(enum_type: type[enum.Enum], value: Any) -> Any:
    """Accept a member or its value; a wrong value becomes a DeclarationError in validation."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        return _BadEnum(value, enum_type)


# Named converters, one per enum (the attrs mypy plugin understands only named functions).
def _to_access(value: Any) -> Any:
    return _enum_value(Access, value)


def _to_field_kind(value: Any) -> Any:
    return _enum_value(FieldKind, value)


def _to_field_level(value: Any) -> Any:
    return _enum_value(FieldLevel, value)


def _to_client_auth_method(value: Any) -> Any:
    return _enum_value(ClientAuthMethod, value)


def _to_api_key_location(value: Any) -> Any:
    return _enum_value(ApiKeyLocation, value)


def _to_reconnect_kind(value: Any) -> Any:
    return _enum_value(ReconnectKind, value)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class _BadEnum:
    """A value that is not a member of its enum, kept for the validator's message."""

    __slots__ = ("enum_type", "value")

    def __init__(self, value: Any, enum_type: type) -> None:
        self.value = value
        self.enum_type = enum_type


def _is_enum(enum_type: type[enum.Enum]) -> _Validator:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, enum_type):
            bad = value.value if isinstance(value, _BadEnum) else value
            allowed = ", ".join(m.value for m in enum_type)
            raise DeclarationError(_where(instance, attribute), f"expected one of {allowed}, got {bad!r}")

    return check


def _to_tuple(value: Any) -> Any:
    """Lists and other iterables become tuples; strings stay as they are (and fail validation)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return value
    return tuple(value)


def _to_sorted_names(value: Any) -> Any:
    """A collection of names becomes a sorted tuple without duplicates."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return value
    items = list(value)
    if all(isinstance(v, str) for v in items):
        return tuple(sorted(set(items)))
    return tuple(items)


def _names(pattern: re.Pattern[str], expected: str) -> _Validator:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        where = _where(instance, attribute)
        if not isinstance(value, tuple):
            raise DeclarationError(where, f"expected a list of {expected}, got {type(value).__name__}")
        for item in value:
            if not isinstance(item, str) or not pattern.fullmatch(item):
                raise DeclarationError(where, f"expected {expected}, got {item!r}")

    return check


def _choices(allowed: tuple[str, ...], expected: str) -> _Validator:
    """A tuple of distinct names, each one of ``allowed``."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        where = _where(instance, attribute)
        if not isinstance(value, tuple):
            raise DeclarationError(where, f"expected a list of {expected}, got {type(value).__name__}")
        for item in value:
            if item not in allowed:
                raise DeclarationError(where, f"expected {expected} ({', '.join(allowed)}), got {item!r}")
        if len(set(value)) != len(value):
            raise DeclarationError(where, "expected each name once")

    return check


def _pairs(value: Any) -> Any:
    """A mapping of extra parameters becomes a tuple of (name, value) pairs."""
    if isinstance(value, Mapping):
        return tuple(value.items())
    return _to_tuple(value)


def _str_pairs(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    where = _where(instance, attribute)
    if not isinstance(value, tuple):
        raise DeclarationError(where, "expected a mapping of strings to strings")
    for pair in value:
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)):
            raise DeclarationError(where, f"expected a mapping of strings to strings, got {pair!r}")
