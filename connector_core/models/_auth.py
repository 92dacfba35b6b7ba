"""Auth types and the credential fields people fill in for them."""

from __future__ import annotations

import re
from typing import Any

import attrs

from ..errors import DeclarationError, ValidationError
from ._base import (
    ENDPOINT_NAMES,
    FIELD_NAME_RE,
    KEY_RE,
    PROFILE_OPTIONS,
    ApiKeyLocation,
    AuthKind,
    ClientAuthMethod,
    FieldKind,
    FieldLevel,
    _bool,
    _choices,
    _is_enum,
    _matches,
    _optional,
    _pairs,
    _str_pairs,
    _text,
    _to_api_key_location,
    _to_client_auth_method,
    _to_field_kind,
    _to_field_level,
    _to_tuple,
    _url,
    _where,
    url_problem,
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
    #: The authorization server's issuer identifier, for RFC 9207 ``iss`` checks. A callback
    #: must then carry exactly this ``iss``.
    issuer: str | None = attrs.field(default=None, validator=_optional(_url()))
    #: Where the authorization server publishes its RFC 8414 metadata, for a provider that does:
    #: read before each code exchange for its ``issuer`` and whether ``iss`` is always sent.
    metadata_url: str | None = attrs.field(default=None, validator=_optional(_url()))
    #: Installs may begin at the provider (a marketplace), whose callback carries a code
    #: but no state of ours. Such callbacks are accepted only for providers that say so.
    provider_initiated_install: bool = attrs.field(default=False, validator=_bool)
    #: Settings each profile may choose for itself (names from ``PROFILE_OPTIONS``), for a provider
    #: that is really any OAuth 2.0 server: the declared values above are then the defaults.
    profile_options: tuple[str, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_choices(PROFILE_OPTIONS, "profile options")
    )
    #: Endpoints (names from ``ENDPOINT_NAMES``) every profile must set, because the provider
    #: cannot know them: the declared URLs are then placeholders, never called.
    profile_endpoints: tuple[str, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_choices(ENDPOINT_NAMES, "endpoint names")
    )
    #: Seconds after which a refresh token the provider issued dies when it is not used (some
    #: providers expire refresh tokens after days or months of disuse); ``None`` when they do not,
    #: or nobody knows. The keeper (:mod:`connector_core.keeper`) refreshes a connection once half
    #: of it has passed since its last refresh.
    refresh_idle_limit: int | None = attrs.field(default=None)

    @property
    def kind(self) -> AuthKind:
        return AuthKind.OAUTH2_AUTHORIZATION_CODE

    @refresh_idle_limit.validator
    def _check_idle_limit(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < 60:
            raise DeclarationError(
                _where(self, attribute), f"expected whole seconds, at least 60, or None, got {value!r}"
            )

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
class OAuth2ClientCredentials:
    """OAuth 2.0 client credentials grant (RFC 6749 section 4.4): no end user.

    The profile's ``client_id`` and ``client_secret`` fetch an access token from
    ``token_url``; the connection keeps it, and fetches a new one before it expires
    (single-flight, like a refresh) or once after a 401.
    """

    token_url: str = attrs.field(validator=_url())
    key: str = attrs.field(default="client_credentials", validator=_matches(KEY_RE, "a lower-case key"))
    label: str = attrs.field(default="OAuth 2.0 client credentials", validator=_text(max_length=100))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))
    client_auth_method: ClientAuthMethod = attrs.field(
        default=ClientAuthMethod.CLIENT_SECRET_BASIC,
        converter=_to_client_auth_method,
        validator=_is_enum(ClientAuthMethod),
    )
    #: How scopes are joined in the ``scope`` parameter (RFC 6749 uses a space).
    scope_separator: str = attrs.field(default=" ")
    #: Extra form parameters sent with every token request (an ``audience``, a ``resource``).
    extra_token_params: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs, validator=_str_pairs)
    #: What a person should do when the provider refuses the credential (a 401), e.g. "reset the
    #: token": shown with the connection's needs-reconnect status.
    rejected_guidance: str = attrs.field(default="", validator=_text(allow_empty=True))
    #: Settings each profile may choose (``PROFILE_OPTIONS`` but ``pkce``: no browser, no PKCE).
    profile_options: tuple[str, ...] = attrs.field(
        default=(),
        converter=_to_tuple,
        validator=_choices(tuple(o for o in PROFILE_OPTIONS if o != "pkce"), "profile options"),
    )
    #: Endpoints every profile must set (see :attr:`OAuth2AuthorizationCode.profile_endpoints`).
    profile_endpoints: tuple[str, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_choices(ENDPOINT_NAMES, "endpoint names")
    )

    @property
    def kind(self) -> AuthKind:
        return AuthKind.OAUTH2_CLIENT_CREDENTIALS

    @scope_separator.validator
    def _check_separator(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in (" ", ",", "+"):
            raise DeclarationError(_where(self, attribute), f"expected ' ', ',' or '+', got {value!r}")

    @extra_token_params.validator
    def _check_reserved(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        for name, _ in value:
            if name in ("grant_type", "client_id", "client_secret", "scope"):
                raise DeclarationError(
                    _where(self, attribute), f"{name!r} is set by the OAuth engine and cannot be an extra parameter"
                )


@attrs.frozen
class HttpBasicAuth:
    """HTTP Basic authentication (RFC 7617) from two credential fields.

    The fields' level says whose they are: ``user`` fields (a service user's ID and
    token) are given when a connection is made and kept, encrypted, with it; ``app``
    fields belong to the profile.
    """

    key: str = attrs.field(validator=_matches(KEY_RE, "a lower-case key"))
    label: str = attrs.field(validator=_text(max_length=100))
    username_field: str = attrs.field(validator=_matches(FIELD_NAME_RE, "a credential field name"))
    password_field: str = attrs.field(validator=_matches(FIELD_NAME_RE, "a credential field name"))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))
    #: What a person should do when the provider refuses the credential (a 401), e.g. "reset the
    #: token": shown with the connection's needs-reconnect status.
    rejected_guidance: str = attrs.field(default="", validator=_text(allow_empty=True))

    @property
    def kind(self) -> AuthKind:
        return AuthKind.HTTP_BASIC


@attrs.frozen
class ApiKeyAuth:
    """A key sent in a request header (optionally with a prefix, ``Bearer <key>``) or in a
    query parameter, as the provider expects it."""

    key: str = attrs.field(validator=_matches(KEY_RE, "a lower-case key"))
    label: str = attrs.field(validator=_text(max_length=100))
    key_field: str = attrs.field(validator=_matches(FIELD_NAME_RE, "a credential field name"))
    header_name: str = attrs.field(
        default="Authorization",
        validator=_matches(re.compile(r"[A-Za-z0-9-]+"), "an HTTP header name"),
    )
    prefix: str = attrs.field(default="", validator=_text(allow_empty=True, max_length=40))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))
    #: ``header`` (``header_name: prefix + key``) or ``query`` (``?query_name=key``).
    location: ApiKeyLocation = attrs.field(
        default=ApiKeyLocation.HEADER, converter=_to_api_key_location, validator=_is_enum(ApiKeyLocation)
    )
    query_name: str = attrs.field(
        default="api_key", validator=_matches(re.compile(r"[A-Za-z0-9_.-]+"), "a query parameter name")
    )
    #: What a person should do when the provider refuses the credential (a 401), e.g. "reset the
    #: token": shown with the connection's needs-reconnect status.
    rejected_guidance: str = attrs.field(default="", validator=_text(allow_empty=True))

    @property
    def kind(self) -> AuthKind:
        return AuthKind.API_KEY

    @prefix.validator
    def _check_prefix(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise DeclarationError(_where(self, attribute), "expected printable characters")


AuthType = OAuth2AuthorizationCode | OAuth2ClientCredentials | HttpBasicAuth | ApiKeyAuth
AUTH_TYPE_CLASSES: tuple[type, ...] = (OAuth2AuthorizationCode, OAuth2ClientCredentials, HttpBasicAuth, ApiKeyAuth)


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
        if self.secret and any(ch.isspace() for ch in cleaned):
            raise ValidationError(self.name, f"expected {self.label} without white space inside it")
        if self.kind is FieldKind.URL:
            problem = url_problem(cleaned)
            if problem:
                raise ValidationError(self.name, problem)
        if self.pattern is not None and not re.fullmatch(self.pattern, cleaned):
            shown = "the value" if self.secret else repr(cleaned)
            raise ValidationError(self.name, f"{shown} does not match the expected pattern {self.pattern}")
        return cleaned
