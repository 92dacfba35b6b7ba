"""What a provider declares, as frozen, validated attrs records.

Plugins build these and hand them to the core through the hooks in
:mod:`connector_core.hookspecs`. Every record validates itself when it is built:
a bad declaration fails at once with a :class:`~connector_core.errors.DeclarationError`
naming the record, the field and what was expected, instead of misbehaving later
in a connect flow. Records are immutable; derive changed copies with
:func:`attrs.evolve`. Serialisation lives in :mod:`connector_core.serialize`.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from .errors import DeclarationError, ValidationError

__all__ = [
    "Access",
    "Action",
    "ApiKeyAuth",
    "AuthKind",
    "AuthType",
    "Callback",
    "ClientAuthMethod",
    "ConnectionTest",
    "CredentialField",
    "Environment",
    "FieldKind",
    "FieldLevel",
    "HttpBasicAuth",
    "Link",
    "ManualStep",
    "OAuth2AuthorizationCode",
    "Procedure",
    "Provider",
    "ProviderDeclaration",
    "ReconnectKind",
    "ReconnectPolicy",
    "Scope",
    "ScopeCatalogue",
    "ScopeGroup",
    "SetupGuide",
    "SetupStep",
]


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
    HTTP_BASIC = "http_basic"
    API_KEY = "api_key"


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


def _to_reconnect_kind(value: Any) -> Any:
    return _enum_value(ReconnectKind, value)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


@attrs.frozen
class _BadEnum:
    value: Any
    enum_type: type


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


# -------------------------------------------------------------------------- records


@attrs.frozen
class Link:
    """A documentation link shown with a provider."""

    label: str = attrs.field(validator=_text(max_length=200))
    url: str = attrs.field(validator=_url(allow_http_loopback=False))


@attrs.frozen
class Provider:
    """The provider itself: what the user picks from a list."""

    key: str = attrs.field(validator=_matches(PROVIDER_KEY_RE, "a lower-case key such as 'acme' or 'google-drive'"))
    display_name: str = attrs.field(validator=_text(max_length=100))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))
    links: tuple[Link, ...] = attrs.field(default=(), converter=_to_tuple, validator=_instances(Link))
    categories: tuple[str, ...] = attrs.field(
        default=(), converter=_to_sorted_names, validator=_names(KEY_RE, "a lower-case category key")
    )


@attrs.frozen
class OAuth2AuthorizationCode:
    """OAuth 2.0 authorization code grant (RFC 6749 section 4.1).

    The URLs here are the defaults; an :class:`Environment` may override each.
    """

    authorize_url: str = attrs.field(validator=_url())
    token_url: str = attrs.field(validator=_url())
    key: str = attrs.field(default="oauth2", validator=_matches(KEY_RE, "a lower-case key"))
    label: str = attrs.field(default="OAuth 2.0", validator=_text(max_length=100))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))
    #: RFC 7009 endpoint, when the provider has one.
    revocation_url: str | None = attrs.field(default=None, validator=_optional(_url()))
    client_auth_method: ClientAuthMethod = attrs.field(
        default=ClientAuthMethod.CLIENT_SECRET_BASIC,
        converter=_to_client_auth_method,
        validator=_is_enum(ClientAuthMethod),
    )
    #: How scopes are joined in the ``scope`` parameter (RFC 6749 uses a space).
    scope_separator: str = attrs.field(default=" ")
    #: PKCE with S256 (RFC 7636). Only ever switch off for a provider that rejects it.
    pkce: bool = attrs.field(default=True, validator=_bool)
    #: Extra query parameters sent with every authorization request.
    extra_authorize_params: tuple[tuple[str, str], ...] = attrs.field(
        default=(), converter=_pairs, validator=_str_pairs
    )
    #: The authorization server's issuer identifier, for RFC 9207 ``iss`` checks.
    issuer: str | None = attrs.field(default=None, validator=_optional(_url()))
    #: Installs may begin at the provider (a marketplace), whose callback carries a code
    #: but no state of ours. Such callbacks are accepted only for providers that say so.
    provider_initiated_install: bool = attrs.field(default=False, validator=_bool)

    @property
    def kind(self) -> AuthKind:
        return AuthKind.OAUTH2_AUTHORIZATION_CODE

    @scope_separator.validator
    def _check_separator(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in (" ", ",", "+"):
            raise DeclarationError(_where(self, attribute), f"expected ' ', ',' or '+', got {value!r}")

    @extra_authorize_params.validator
    def _check_reserved(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        reserved = {
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
        }
        for name, _ in value:
            if name in reserved:
                raise DeclarationError(
                    _where(self, attribute),
                    f"{name!r} is set by the OAuth engine and cannot be an extra parameter",
                )


@attrs.frozen
class HttpBasicAuth:
    """HTTP Basic authentication (RFC 7617) from two credential fields."""

    key: str = attrs.field(validator=_matches(KEY_RE, "a lower-case key"))
    label: str = attrs.field(validator=_text(max_length=100))
    username_field: str = attrs.field(validator=_matches(FIELD_NAME_RE, "a credential field name"))
    password_field: str = attrs.field(validator=_matches(FIELD_NAME_RE, "a credential field name"))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))

    @property
    def kind(self) -> AuthKind:
        return AuthKind.HTTP_BASIC


@attrs.frozen
class ApiKeyAuth:
    """A key sent in a request header, optionally with a prefix (``Bearer <key>``)."""

    key: str = attrs.field(validator=_matches(KEY_RE, "a lower-case key"))
    label: str = attrs.field(validator=_text(max_length=100))
    key_field: str = attrs.field(validator=_matches(FIELD_NAME_RE, "a credential field name"))
    header_name: str = attrs.field(
        default="Authorization",
        validator=_matches(re.compile(r"[A-Za-z0-9-]+"), "an HTTP header name"),
    )
    prefix: str = attrs.field(default="", validator=_text(allow_empty=True, max_length=40))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))

    @property
    def kind(self) -> AuthKind:
        return AuthKind.API_KEY


AuthType = OAuth2AuthorizationCode | HttpBasicAuth | ApiKeyAuth
AUTH_TYPE_CLASSES: tuple[type, ...] = (OAuth2AuthorizationCode, HttpBasicAuth, ApiKeyAuth)


@attrs.frozen
class CredentialField:
    """One value a person supplies to connect: an App ID, a client secret, scopes..."""

    name: str = attrs.field(validator=_matches(FIELD_NAME_RE, "a snake_case field name such as 'client_id'"))
    label: str = attrs.field(validator=_text(max_length=100))
    #: The auth type (:attr:`OAuth2AuthorizationCode.key` etc.) this field belongs to.
    auth_type: str = attrs.field(validator=_matches(KEY_RE, "an auth type key"))
    kind: FieldKind = attrs.field(default=FieldKind.TEXT, converter=_to_field_kind, validator=_is_enum(FieldKind))
    required: bool = attrs.field(default=True, validator=_bool)
    help: str = attrs.field(default="", validator=_text(allow_empty=True))
    #: A regular expression the whole value must match (``re.fullmatch``).
    pattern: str | None = attrs.field(default=None)
    level: FieldLevel = attrs.field(default=FieldLevel.APP, converter=_to_field_level, validator=_is_enum(FieldLevel))
    max_length: int = attrs.field(default=4096)
    placeholder: str | None = attrs.field(default=None, validator=_optional(_text(max_length=200)))

    @pattern.validator
    def _check_pattern(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not value:
            raise DeclarationError(_where(self, attribute), "expected a regular expression string")
        try:
            re.compile(value)
        except re.error as exc:
            raise DeclarationError(_where(self, attribute), f"invalid regular expression: {exc}") from None

    @max_length.validator
    def _check_max_length(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1_000_000:
            raise DeclarationError(_where(self, attribute), f"expected an integer from 1 to 1000000, got {value!r}")

    @property
    def secret(self) -> bool:
        return self.kind is FieldKind.SECRET

    def check(self, value: str) -> str:
        """Validate one entered value; return it stripped of surrounding white space.

        Raises :class:`~connector_core.errors.ValidationError` naming this field.
        The value itself is never quoted in the message when the field is secret.
        """
        if not isinstance(value, str):
            raise ValidationError(self.name, f"expected text, got {type(value).__name__}")
        cleaned = value.strip()
        if not cleaned:
            raise ValidationError(self.name, f"{self.label} is required and was empty")
        if len(cleaned) > self.max_length:
            raise ValidationError(self.name, f"expected at most {self.max_length} characters, got {len(cleaned)}")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in cleaned):
            raise ValidationError(self.name, "expected printable characters, got a control character")
        if self.kind is FieldKind.URL:
            problem = url_problem(cleaned)
            if problem:
                raise ValidationError(self.name, problem)
        if self.pattern is not None and not re.fullmatch(self.pattern, cleaned):
            shown = "the value" if self.secret else repr(cleaned)
            raise ValidationError(self.name, f"{shown} does not match the expected pattern {self.pattern}")
        return cleaned


@attrs.frozen
class Scope:
    """One OAuth scope string and what it grants."""

    name: str = attrs.field(validator=_matches(SCOPE_TOKEN_RE, "a scope token (RFC 6749 section 3.3)"))
    description: str = attrs.field(validator=_text())
    access: Access = attrs.field(converter=_to_access, validator=_is_enum(Access))
    #: The provider module/subscription the scope needs, if any.
    module: str | None = attrs.field(default=None, validator=_optional(_text(max_length=100)))
    #: Grants sensitive personal data (pay, bank accounts, identification...).
    sensitive: bool = attrs.field(default=False, validator=_bool)
    #: Quirks worth knowing, such as "write is needed even for reads".
    notes: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple, validator=_instances(str))


@attrs.frozen
class ScopeGroup:
    """Scopes of one feature area."""

    key: str = attrs.field(validator=_matches(KEY_RE, "a lower-case group key"))
    label: str = attrs.field(validator=_text(max_length=100))
    scopes: tuple[Scope, ...] = attrs.field(converter=_to_tuple, validator=_instances(Scope, non_empty=True))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))


@attrs.frozen
class ScopeCatalogue:
    """Every scope a provider knows, by feature area, with its defaults and minimum.

    ``minimum_scopes`` must be a subset of ``default_scopes``, and both must name
    scopes in the catalogue.
    """

    groups: tuple[ScopeGroup, ...] = attrs.field(
        converter=_to_tuple,
        validator=[_instances(ScopeGroup, non_empty=True), _unique(lambda g: g.key, "group key")],
    )
    #: Requested when a profile names neither scopes nor actions.
    default_scopes: tuple[str, ...] = attrs.field(
        converter=_to_sorted_names, validator=_names(SCOPE_TOKEN_RE, "a scope token")
    )
    #: Every connection must be granted at least these.
    minimum_scopes: tuple[str, ...] = attrs.field(
        converter=_to_sorted_names, validator=_names(SCOPE_TOKEN_RE, "a scope token")
    )
    _by_name: dict[str, tuple[ScopeGroup, Scope]] = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        by_name: dict[str, tuple[ScopeGroup, Scope]] = {}
        for group in self.groups:
            for scope in group.scopes:
                if scope.name in by_name:
                    raise DeclarationError(
                        "ScopeCatalogue.groups",
                        f"scope {scope.name!r} appears in both {by_name[scope.name][0].key!r} and {group.key!r}",
                    )
                by_name[scope.name] = (group, scope)
        object.__setattr__(self, "_by_name", by_name)
        # Keep defaults and minimum in catalogue order, the order people read them in.
        order = {name: index for index, name in enumerate(by_name)}
        for attr in ("default_scopes", "minimum_scopes"):
            names = getattr(self, attr)
            object.__setattr__(self, attr, tuple(sorted(names, key=lambda n: order.get(n, len(order)))))
        for attr in ("default_scopes", "minimum_scopes"):
            unknown = [s for s in getattr(self, attr) if s not in by_name]
            if unknown:
                raise DeclarationError(f"ScopeCatalogue.{attr}", f"not in the catalogue: {', '.join(unknown)}")
        if not self.minimum_scopes:
            raise DeclarationError("ScopeCatalogue.minimum_scopes", "expected at least one scope")
        missing = sorted(set(self.minimum_scopes) - set(self.default_scopes))
        if missing:
            raise DeclarationError(
                "ScopeCatalogue.minimum_scopes",
                f"must be a subset of default_scopes; not among the defaults: {', '.join(missing)}",
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Every scope name, in catalogue order."""
        return tuple(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Scope | None:
        entry = self._by_name.get(name)
        return entry[1] if entry else None

    def group_of(self, name: str) -> ScopeGroup | None:
        entry = self._by_name.get(name)
        return entry[0] if entry else None

    def group(self, key: str) -> ScopeGroup | None:
        return next((g for g in self.groups if g.key == key), None)


@attrs.frozen
class Environment:
    """Where a connection lives (sandbox, production...) and which credentials it uses.

    The auth URLs override those of the OAuth auth type when set.
    """

    key: str = attrs.field(validator=_matches(KEY_RE, "a lower-case environment key"))
    label: str = attrs.field(validator=_text(max_length=100))
    #: Which set of app credentials this environment uses (e.g. ``development``).
    credential_set: str = attrs.field(validator=_matches(KEY_RE, "a lower-case credential set key"))
    api_base_url: str = attrs.field(validator=_url())
    credential_set_label: str = attrs.field(default="", validator=_text(allow_empty=True, max_length=100))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))
    authorize_url: str | None = attrs.field(default=None, validator=_optional(_url()))
    token_url: str | None = attrs.field(default=None, validator=_optional(_url()))
    revocation_url: str | None = attrs.field(default=None, validator=_optional(_url()))
    #: The provider's web app for people (where manual steps happen).
    web_url: str | None = attrs.field(default=None, validator=_optional(_url()))
    #: The environment chosen when none is named.
    default: bool = attrs.field(default=False, validator=_bool)


@attrs.frozen
class Callback:
    """Where the provider redirects after consent: platform base URL + provider path."""

    path: str = attrs.field(
        validator=_matches(CALLBACK_PATH_RE, "an absolute path such as '/connect/oauth2/KEY/callback'")
    )
    #: The base URL used when no plugin (or ``CONNECTOR_CALLBACK_BASE_URL``) gives the platform's own.
    default_base_url: str | None = attrs.field(default=None, validator=_optional(_url()))

    @path.validator
    def _no_dot_segments(self, attribute: attrs.Attribute[Any], value: str) -> None:
        if any(seg in (".", "..") for seg in value.split("/")):
            raise DeclarationError(_where(self, attribute), f"expected no '.' or '..' segments, got {value!r}")

    def url(self, base_url: str) -> str:
        """Join a base URL (with or without a trailing slash or a path) and the path."""
        problem = url_problem(base_url)
        if problem:
            raise ValidationError("callback base URL", f"{problem}, got {base_url!r}")
        parts = urlsplit(base_url)
        if parts.query:
            raise ValidationError("callback base URL", f"expected no query string, got {base_url!r}")
        return base_url.rstrip("/") + self.path


@attrs.frozen
class ManualStep:
    """One thing a person does by hand, and where."""

    text: str = attrs.field(validator=_text())
    #: Where to click, e.g. "Bob → waffle menu (top left) → Marketplace".
    location: str | None = attrs.field(default=None, validator=_optional(_text(max_length=300)))


@attrs.frozen
class Procedure:
    """An ordered list of manual steps, possibly only for some environments."""

    title: str = attrs.field(validator=_text(max_length=200))
    steps: tuple[ManualStep, ...] = attrs.field(converter=_to_tuple, validator=_instances(ManualStep, non_empty=True))
    #: Environment keys this procedure applies to; empty means all.
    environments: tuple[str, ...] = attrs.field(
        default=(), converter=_to_sorted_names, validator=_names(KEY_RE, "an environment key")
    )
    url: str | None = attrs.field(default=None, validator=_optional(_url()))

    def applies_to(self, environment: str) -> bool:
        return not self.environments or environment in self.environments


@attrs.frozen
class ReconnectPolicy:
    """How a connection that needs reconnecting is repaired."""

    kind: ReconnectKind = attrs.field(converter=_to_reconnect_kind, validator=_is_enum(ReconnectKind))
    summary: str = attrs.field(validator=_text())
    #: Alternative procedures; the first that applies to the environment is shown first.
    procedures: tuple[Procedure, ...] = attrs.field(default=(), converter=_to_tuple, validator=_instances(Procedure))

    def __attrs_post_init__(self) -> None:
        if self.kind is ReconnectKind.UNINSTALL_THEN_REAUTHORIZE and not self.procedures:
            raise DeclarationError(
                "ReconnectPolicy.procedures",
                "uninstall_then_reauthorize needs at least one procedure with manual steps",
            )

    def procedures_for(self, environment: str) -> tuple[Procedure, ...]:
        return tuple(p for p in self.procedures if p.applies_to(environment))


@attrs.frozen
class ConnectionTest:
    """The cheapest request that proves a connection works, and the scope it needs."""

    method: str = attrs.field(converter=_upper)
    #: Path relative to the environment's API base URL.
    path: str = attrs.field(validator=_matches(re.compile(r"/[\x21-\x7e]*"), "a path starting with '/'"))
    scope: str = attrs.field(validator=_matches(SCOPE_TOKEN_RE, "a scope token"))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))
    #: A JSON request body, as JSON text.
    json_body: str | None = attrs.field(default=None)
    expected_status: int = attrs.field(default=200)

    @method.validator
    def _check_method(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in HTTP_METHODS:
            raise DeclarationError(
                _where(self, attribute), f"expected one of {', '.join(sorted(HTTP_METHODS))}, got {value!r}"
            )

    @json_body.validator
    def _check_json(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        try:
            json.loads(value)
        except (TypeError, ValueError):
            raise DeclarationError(_where(self, attribute), "expected JSON text") from None

    @expected_status.validator
    def _check_status(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 200 <= value <= 299:
            raise DeclarationError(_where(self, attribute), f"expected a 2xx status code, got {value!r}")


@attrs.frozen
class Action:
    """A named operation a profile can enable, with the scopes it needs."""

    key: str = attrs.field(validator=_matches(KEY_RE, "a lower-case action key such as 'list_employees'"))
    label: str = attrs.field(validator=_text(max_length=100))
    scopes: tuple[str, ...] = attrs.field(converter=_to_sorted_names, validator=_names(SCOPE_TOKEN_RE, "a scope token"))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))
    method: str | None = attrs.field(default=None, converter=_upper)
    #: Path relative to the environment's API base URL.
    path: str | None = attrs.field(default=None)

    @scopes.validator
    def _some_scopes(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        if not value:
            raise DeclarationError(_where(self, attribute), "expected at least one scope")

    @method.validator
    def _check_method(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and value not in HTTP_METHODS:
            raise DeclarationError(
                _where(self, attribute), f"expected one of {', '.join(sorted(HTTP_METHODS))}, got {value!r}"
            )


@attrs.frozen
class SetupStep:
    """One step of the platform's one-time onboarding with the provider."""

    key: str = attrs.field(validator=_matches(KEY_RE, "a lower-case step key"))
    title: str = attrs.field(validator=_text(max_length=200))
    details: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple, validator=_instances(str))
    optional: bool = attrs.field(default=False, validator=_bool)
    url: str | None = attrs.field(default=None, validator=_optional(_url()))


@attrs.frozen
class SetupGuide:
    """The provider's onboarding checklist, in order."""

    title: str = attrs.field(validator=_text(max_length=200))
    steps: tuple[SetupStep, ...] = attrs.field(
        converter=_to_tuple,
        validator=[_instances(SetupStep, non_empty=True), _unique(lambda s: s.key, "step key")],
    )


def _auth_type_list(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _instances(AUTH_TYPE_CLASSES, non_empty=True)(instance, attribute, value)
    _unique(lambda a: a.key, "auth type key")(instance, attribute, value)


@attrs.frozen
class ProviderDeclaration:
    """Everything one provider declares, gathered from the hooks and checked as a whole.

    Built by :class:`connector_core.Plugins`; ``plugin`` names the plugin that
    registered the provider.
    """

    provider: Provider = attrs.field(validator=attrs.validators.instance_of(Provider))
    plugin: str
    auth_types: tuple[AuthType, ...] = attrs.field(converter=_to_tuple, validator=_auth_type_list)
    credential_fields: tuple[CredentialField, ...] = attrs.field(
        converter=_to_tuple, validator=_instances(CredentialField)
    )
    environments: tuple[Environment, ...] = attrs.field(
        converter=_to_tuple,
        validator=[_instances(Environment, non_empty=True), _unique(lambda e: e.key, "environment key")],
    )
    scope_catalogue: ScopeCatalogue | None = None
    callback: Callback | None = None
    reconnect_policy: ReconnectPolicy | None = None
    connection_test: ConnectionTest | None = None
    actions: tuple[Action, ...] = attrs.field(
        default=(),
        converter=_to_tuple,
        validator=[_instances(Action), _unique(lambda a: a.key, "action key")],
    )
    setup_guide: SetupGuide | None = None

    def __attrs_post_init__(self) -> None:
        self._check_fields()
        self._check_oauth()
        self._check_scopes_used()
        if sum(1 for e in self.environments if e.default) > 1:
            raise DeclarationError("environments", "at most one environment may be the default")
        if self.reconnect_policy:
            env_keys = {e.key for e in self.environments}
            for proc in self.reconnect_policy.procedures:
                unknown = sorted(set(proc.environments) - env_keys)
                if unknown:
                    raise DeclarationError(
                        "reconnect_policy", f"procedure {proc.title!r} names unknown environments: {', '.join(unknown)}"
                    )

    def _check_fields(self) -> None:
        auth_keys = {a.key for a in self.auth_types}
        seen: set[tuple[str, str]] = set()
        for field in self.credential_fields:
            if field.auth_type not in auth_keys:
                raise DeclarationError(
                    f"credential_fields.{field.name}",
                    f"names auth type {field.auth_type!r}; expected one of {', '.join(sorted(auth_keys))}",
                )
            if (field.auth_type, field.name) in seen:
                raise DeclarationError(f"credential_fields.{field.name}", f"declared twice for {field.auth_type!r}")
            seen.add((field.auth_type, field.name))
            if field.kind is FieldKind.SCOPE_LIST and self.scope_catalogue is None:
                raise DeclarationError(
                    f"credential_fields.{field.name}", "is a scope list but the provider has no scope catalogue"
                )
        for auth in self.auth_types:
            names = {f.name for f in self.fields_for(auth.key)}
            needed: tuple[str, ...] = ()
            if isinstance(auth, HttpBasicAuth):
                needed = (auth.username_field, auth.password_field)
            elif isinstance(auth, ApiKeyAuth):
                needed = (auth.key_field,)
            missing = [n for n in needed if n not in names]
            if missing:
                raise DeclarationError(
                    f"auth_types.{auth.key}", f"refers to undeclared credential fields: {', '.join(missing)}"
                )

    def _check_oauth(self) -> None:
        has_oauth = any(isinstance(a, OAuth2AuthorizationCode) for a in self.auth_types)
        if not has_oauth:
            return
        if self.callback is None:
            raise DeclarationError("callback", "an OAuth 2.0 provider must declare its callback path")
        if self.scope_catalogue is None:
            raise DeclarationError("scope_catalogue", "an OAuth 2.0 provider must declare its scopes")

    def _check_scopes_used(self) -> None:
        catalogue = self.scope_catalogue
        if catalogue is None:
            if self.actions:
                raise DeclarationError("actions", "actions name scopes but the provider has no scope catalogue")
            return
        for action in self.actions:
            unknown = [s for s in action.scopes if s not in catalogue]
            if unknown:
                raise DeclarationError(
                    f"actions.{action.key}", f"names scopes not in the catalogue: {', '.join(unknown)}"
                )
        test = self.connection_test
        if test is not None:
            if test.scope not in catalogue:
                raise DeclarationError("connection_test.scope", f"{test.scope!r} is not in the catalogue")
            if test.scope not in catalogue.minimum_scopes:
                raise DeclarationError(
                    "connection_test.scope",
                    f"{test.scope!r} is not among the minimum scopes, so a valid connection could fail its test",
                )

    # ------------------------------------------------------------------ lookups

    @property
    def key(self) -> str:
        return self.provider.key

    def auth_type(self, key: str | None = None) -> AuthType:
        """The named auth type, or the first (preferred) one."""
        from .errors import UnknownNameError

        if key is None:
            return self.auth_types[0]
        for auth in self.auth_types:
            if auth.key == key:
                return auth
        raise UnknownNameError("auth type", key, [a.key for a in self.auth_types], within=f"provider {self.key!r}")

    def fields_for(self, auth_type: str) -> tuple[CredentialField, ...]:
        return tuple(f for f in self.credential_fields if f.auth_type == auth_type)

    def environment(self, key: str | None = None) -> Environment:
        """The named environment, or the default one (the first when none is marked)."""
        from .errors import UnknownNameError

        if key is None:
            return next((e for e in self.environments if e.default), self.environments[0])
        for env in self.environments:
            if env.key == key:
                return env
        raise UnknownNameError("environment", key, [e.key for e in self.environments], within=f"provider {self.key!r}")

    def action(self, key: str) -> Action:
        from .errors import UnknownNameError

        for action in self.actions:
            if action.key == key:
                return action
        raise UnknownNameError("action", key, [a.key for a in self.actions], within=f"provider {self.key!r}")
