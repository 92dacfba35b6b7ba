"""What a provider plugin tells the emulator: its test app, token rules and resources.

A plugin returns an :class:`EmulatorSpec` from the ``connector_core_emulator``
hook. Everything generic (the OAuth server, consent, faults, snapshots) lives in
the core; the spec holds only what differs between providers. Records are
frozen and validated when built, like the declaration models: a bad spec fails
at once with a :class:`~connector_core.errors.DeclarationError`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from ..errors import DeclarationError
from ..models import HTTP_METHODS, KEY_RE, SCOPE_TOKEN_RE, ClientAuthMethod

__all__ = [
    "AppRegistration",
    "Audience",
    "EmulatedCompany",
    "EmulatorSpec",
    "ErrorBody",
    "PermissionGroup",
    "ResourceEndpoint",
    "ResourceError",
    "ResourceRequest",
    "ResourceResponse",
    "default_company",
    "oauth_style_error_body",
]

#: Builds a resource endpoint's JSON error body from (status, key, message).
ErrorBody = Callable[[int, str, str], Mapping[str, Any]]

#: ``{name}`` segments in a resource path template.
_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PATH_RE = re.compile(r"(?:/(?:[A-Za-z0-9._~-]+|\{[A-Za-z_][A-Za-z0-9_]*\}))+")


def oauth_style_error_body(status: int, key: str, message: str) -> Mapping[str, Any]:
    """The default error body: ``{"error": key, "error_description": message}`` (RFC 6750 style)."""
    return {"error": key, "error_description": message}


def _tuple(value: Any) -> Any:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return value
    return tuple(value)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _optional_tuple(value: Any) -> Any:
    return None if value is None else _tuple(value)


def _check(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise DeclarationError(where, message)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


@attrs.frozen
class EmulatedCompany:
    """One customer company inside the emulator, generated from a seed.

    ``data`` is whatever the provider's resource handlers need (employees,
    lists...), JSON-like and treated as read-only.
    """

    id: str
    name: str
    data: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        _check(
            isinstance(self.id, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", self.id) is not None,
            "EmulatedCompany.id",
            f"expected letters, digits, '.', '_' or '-', got {self.id!r}",
        )
        _check(_is_text(self.name), "EmulatedCompany.name", "expected a non-empty string")
        _check(isinstance(self.data, Mapping), "EmulatedCompany.data", "expected a mapping")


def default_company(seed: int) -> EmulatedCompany:
    """A company with a six-digit id and no data: for providers whose handlers need none."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    return EmulatedCompany(id=str(rng.randrange(100_000, 1_000_000)), name="Emulated Company")


@attrs.frozen
class Audience:
    """One choice of who the installed app may see, offered on the consent page.

    With ``options``, the person also picks some of the values it returns for
    the company (for example departments); handlers get the choice in
    :attr:`ResourceRequest.audience` and :attr:`ResourceRequest.audience_options`.
    """

    key: str
    label: str
    description: str = ""
    options: Callable[[EmulatedCompany], Sequence[str]] | None = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        _check(isinstance(self.key, str) and bool(KEY_RE.fullmatch(self.key)), "Audience.key", "a lower-case key")
        _check(_is_text(self.label), "Audience.label", "expected a non-empty string")
        _check(self.options is None or callable(self.options), "Audience.options", "expected a callable or None")


@attrs.frozen
class AppRegistration:
    """The test app registered with the emulated provider.

    Client IDs and secrets are generated when the emulator starts (or read from
    its snapshot), one pair per credential set.
    """

    app_id: str
    name: str
    description: str = ""
    #: Credential sets issued for the app; empty means one per environment's credential set.
    credential_sets: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    #: Scopes configured on the app; ``None`` means every scope in the provider's catalogue.
    scopes: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_tuple)
    #: Registered redirect URIs; empty means the provider's default callback URL.
    redirect_uris: tuple[str, ...] = attrs.field(default=(), converter=_tuple)

    def __attrs_post_init__(self) -> None:
        _check(
            isinstance(self.app_id, str)
            and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}", self.app_id) is not None,
            "AppRegistration.app_id",
            f"expected a printable identifier, got {self.app_id!r}",
        )
        _check(_is_text(self.name), "AppRegistration.name", "expected a non-empty string")
        _check(isinstance(self.credential_sets, tuple), "AppRegistration.credential_sets", "expected a list")
        for item in self.credential_sets:
            _check(
                isinstance(item, str) and bool(KEY_RE.fullmatch(item)),
                "AppRegistration.credential_sets",
                f"expected lower-case keys, got {item!r}",
            )
        if self.scopes is not None:
            _check(isinstance(self.scopes, tuple), "AppRegistration.scopes", "expected a list of scopes")
            for scope in self.scopes:
                _check(
                    isinstance(scope, str) and bool(SCOPE_TOKEN_RE.fullmatch(scope)),
                    "AppRegistration.scopes",
                    f"expected scope tokens, got {scope!r}",
                )
        _check(isinstance(self.redirect_uris, tuple), "AppRegistration.redirect_uris", "expected a list of URLs")


@attrs.frozen
class PermissionGroup:
    """A set of permissions an admin gives the credentials a company issues itself (a
    service user, an API key): what its resource calls may read or write, as scopes.

    Credentials in no group may call nothing (403), like a service user nobody has given permissions yet.
    """

    key: str
    label: str
    #: The scopes of the resource endpoints this group may call.
    scopes: tuple[str, ...] = attrs.field(converter=_tuple)
    description: str = ""

    def __attrs_post_init__(self) -> None:
        where = f"PermissionGroup({self.key!r})"
        _check(isinstance(self.key, str) and bool(KEY_RE.fullmatch(self.key)), where, "expected a lower-case key")
        _check(_is_text(self.label), f"{where}.label", "expected a non-empty string")
        _check(isinstance(self.scopes, tuple), f"{where}.scopes", "expected a list of scopes")
        for scope in self.scopes:
            _check(
                isinstance(scope, str) and bool(SCOPE_TOKEN_RE.fullmatch(scope)),
                f"{where}.scopes",
                f"expected scope tokens, got {scope!r}",
            )


class ResourceError(Exception):
    """Raise from a resource handler to answer with the provider's JSON error body."""

    def __init__(self, status: int, key: str, message: str) -> None:
        super().__init__(f"{status} {key}: {message}")
        self.status = status
        self.key = key
        self.message = message


@attrs.frozen
class ResourceResponse:
    """What a resource handler answers: a status, a JSON body and extra headers."""

    status: int = 200
    json: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class ResourceRequest:
    """One authorised call to a resource endpoint, as a handler sees it."""

    method: str
    #: The path relative to the API base URL, e.g. ``/people/search``.
    path: str
    path_params: Mapping[str, str]
    query: Mapping[str, tuple[str, ...]]
    #: Header names in lower case.
    headers: Mapping[str, str]
    body: bytes
    company: EmulatedCompany
    audience: str
    audience_options: tuple[str, ...]
    scopes: frozenset[str]
    client_id: str
    environment: str
    #: The emulator's clock (Unix seconds); tests may move it forward.
    now: float

    def query_value(self, name: str) -> str | None:
        """The last value of a query parameter, or ``None``."""
        values = self.query.get(name)
        return values[-1] if values else None

    def json_body(self) -> Any:
        """The body parsed as JSON; a malformed body raises a 400 :class:`ResourceError`."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError):
            raise ResourceError(400, "bad_request", "The request body is not valid JSON.") from None


Handler = Callable[[ResourceRequest], ResourceResponse]


@attrs.frozen
class ResourceEndpoint:
    """One API endpoint: its method, path template, the scopes it needs and its handler.

    ``path`` is relative to the environment's API base URL and may hold
    ``{name}`` segments, passed to the handler in ``path_params``. Every scope
    in ``scopes`` must have been granted (403 otherwise).
    """

    method: str = attrs.field(converter=_upper)
    path: str
    scopes: tuple[str, ...] = attrs.field(converter=_tuple)
    handler: Handler = attrs.field(eq=False)
    #: Requests per minute per installation; ``None`` means unlimited.
    rate_limit_per_minute: int | None = None
    description: str = ""

    def __attrs_post_init__(self) -> None:
        where = f"ResourceEndpoint({self.method} {self.path})"
        _check(self.method in HTTP_METHODS, where, f"expected one of {', '.join(sorted(HTTP_METHODS))}")
        _check(isinstance(self.path, str) and bool(_PATH_RE.fullmatch(self.path)), where, "expected a path like /a/{b}")
        _check(isinstance(self.scopes, tuple) and bool(self.scopes), where, "expected at least one scope")
        for scope in self.scopes:
            _check(isinstance(scope, str) and bool(SCOPE_TOKEN_RE.fullmatch(scope)), where, f"bad scope {scope!r}")
        _check(callable(self.handler), where, "expected a callable handler")
        limit = self.rate_limit_per_minute
        _check(
            limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1),
            where,
            "expected a positive rate limit or None",
        )

    @property
    def name(self) -> str:
        """``METHOD /path``: how stats, rate limits and faults name this endpoint."""
        return f"{self.method} {self.path}"

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when ``path`` matches this endpoint's template, else ``None``."""
        pattern = "".join(
            f"(?P<{part[1:-1]}>[^/]+)" if _PARAM_RE.fullmatch(part) else re.escape(part)
            for part in re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", self.path)
            if part
        )
        found = re.fullmatch(pattern, path)
        return dict(found.groupdict()) if found else None


def _methods(value: Any) -> Any:
    if isinstance(value, (str, ClientAuthMethod)):
        value = (value,)
    value = _tuple(value)
    if not isinstance(value, tuple):
        return value
    out = []
    for item in value:
        try:
            out.append(ClientAuthMethod(item))
        except ValueError:
            out.append(item)
    return tuple(out)


@attrs.frozen
class EmulatorSpec:
    """Everything the generic emulator needs to imitate one provider.

    The provider's declaration supplies the rest: its scope catalogue (shown
    on the consent page), environments and credential sets, callback URL and
    declared client authentication method.
    """

    app: AppRegistration
    resources: tuple[ResourceEndpoint, ...] = attrs.field(default=(), converter=_tuple)
    #: Accepted at the token and revocation endpoints; empty means the one the declaration names.
    client_auth_methods: tuple[ClientAuthMethod, ...] = attrs.field(default=(), converter=_methods)
    access_token_lifetime: int = 3600
    #: ``None``: refresh tokens do not expire.
    refresh_token_lifetime: int | None = None
    #: Authorization codes are single-use and live this many seconds.
    code_lifetime: int = 60
    #: A refresh issues a new refresh token and the old one stops working.
    rotate_refresh_tokens: bool = True
    #: The app can be installed once per company and credential set; authorizing
    #: again while installed fails until it is uninstalled.
    single_installation: bool = True
    #: The ``error`` sent to the redirect URI when the app is already installed.
    already_installed_error: str = "access_denied"
    already_installed_description: str = (
        "The app is already installed in this company. Uninstall it first, then authorize again."
    )
    #: Consent grants every requested scope or none; otherwise the page offers a checkbox per scope.
    all_or_nothing_consent: bool = True
    #: Who the installed app may see; the first is the default. Empty: one choice, everyone.
    audiences: tuple[Audience, ...] = attrs.field(default=(), converter=_tuple)
    #: A field added to every token response holding the company id (e.g. ``companyId``).
    identity_field: str | None = None
    #: Refuse authorization requests without a PKCE code challenge.
    pkce_required: bool = False
    error_body: ErrorBody = attrs.field(default=oauth_style_error_body, eq=False)
    company_factory: Callable[[int], EmulatedCompany] = attrs.field(default=default_company, eq=False)
    seed: int = 0
    #: Permission groups for credentials a company issues itself (HTTP Basic service users, API
    #: keys). Empty: such credentials may call every resource endpoint.
    permission_groups: tuple[PermissionGroup, ...] = attrs.field(default=(), converter=_tuple)
    #: How the authorization request joins scopes (a few providers use ',' or '+').
    scope_separator: str = " "
    #: What the usernames of HTTP Basic credentials the emulator issues start with (for
    #: service users, say, ``SERVICE-``); digits follow.
    credential_username_prefix: str = ""

    def __attrs_post_init__(self) -> None:
        _check(isinstance(self.app, AppRegistration), "EmulatorSpec.app", "expected an AppRegistration")
        _check(self.scope_separator in (" ", ",", "+"), "EmulatorSpec.scope_separator", "expected ' ', ',' or '+'")
        groups = [g.key for g in self.permission_groups if isinstance(g, PermissionGroup)]
        _check(
            len(groups) == len(self.permission_groups) and len(set(groups)) == len(groups),
            "EmulatorSpec.permission_groups",
            "expected PermissionGroup items with unique keys",
        )
        prefix = self.credential_username_prefix
        _check(
            isinstance(prefix, str) and re.fullmatch(r"[\x21-\x39\x3b-\x7e]{0,40}", prefix) is not None,
            "EmulatorSpec.credential_username_prefix",
            "expected at most 40 printable characters without spaces or ':'",
        )
        _check(isinstance(self.resources, tuple), "EmulatorSpec.resources", "expected a list")
        names: set[str] = set()
        for resource in self.resources:
            _check(isinstance(resource, ResourceEndpoint), "EmulatorSpec.resources", "expected ResourceEndpoint items")
            _check(resource.name not in names, "EmulatorSpec.resources", f"duplicate endpoint {resource.name!r}")
            names.add(resource.name)
        for method in self.client_auth_methods:
            _check(
                isinstance(method, ClientAuthMethod),
                "EmulatorSpec.client_auth_methods",
                f"expected client_secret_basic or client_secret_post, got {method!r}",
            )
        for name in ("access_token_lifetime", "code_lifetime"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"EmulatorSpec.{name}",
                f"expected a whole number of seconds, at least 1, got {value!r}",
            )
        lifetime = self.refresh_token_lifetime
        _check(
            lifetime is None or (isinstance(lifetime, int) and not isinstance(lifetime, bool) and lifetime >= 1),
            "EmulatorSpec.refresh_token_lifetime",
            f"expected a whole number of seconds, at least 1, or None, got {lifetime!r}",
        )
        _check(
            self.already_installed_error in ("access_denied", "invalid_request"),
            "EmulatorSpec.already_installed_error",
            "expected access_denied or invalid_request",
        )
        keys = [a.key for a in self.audiences]
        _check(
            all(isinstance(a, Audience) for a in self.audiences), "EmulatorSpec.audiences", "expected Audience items"
        )
        _check(len(keys) == len(set(keys)), "EmulatorSpec.audiences", "duplicate audience keys")
        _check(
            self.identity_field is None or _is_text(self.identity_field),
            "EmulatorSpec.identity_field",
            "expected a field name or None",
        )
        _check(callable(self.error_body), "EmulatorSpec.error_body", "expected a callable")
        _check(callable(self.company_factory), "EmulatorSpec.company_factory", "expected a callable")
        _check(isinstance(self.seed, int) and not isinstance(self.seed, bool), "EmulatorSpec.seed", "expected an int")

    def resource(self, name: str) -> ResourceEndpoint | None:
        """The resource endpoint named ``METHOD /path`` (or just ``/path`` when unique)."""
        for resource in self.resources:
            if resource.name == name:
                return resource
        by_path = [r for r in self.resources if r.path == name]
        return by_path[0] if len(by_path) == 1 else None
