"""The rest of a provider's declaration, and ``ProviderDeclaration``, which gathers and cross-checks it all."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import attrs

from ..errors import DeclarationError, UnknownNameError, ValidationError
from ._auth import (
    AUTH_TYPE_CLASSES,
    ApiKeyAuth,
    AuthType,
    CredentialField,
    HttpBasicAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
)
from ._base import (
    CALLBACK_PATH_RE,
    HTTP_METHODS,
    KEY_RE,
    SCOPE_TOKEN_RE,
    FieldKind,
    FieldLevel,
    ReconnectKind,
    _bool,
    _instances,
    _is_enum,
    _matches,
    _names,
    _optional,
    _text,
    _to_reconnect_kind,
    _to_sorted_names,
    _to_tuple,
    _unique,
    _upper,
    _url,
    _where,
    url_problem,
)
from ._provider import Provider
from ._scopes import ScopeCatalogue


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
    """An ordered list of manual steps, possibly only for some environments or auth types."""

    title: str = attrs.field(validator=_text(max_length=200))
    steps: tuple[ManualStep, ...] = attrs.field(converter=_to_tuple, validator=_instances(ManualStep, non_empty=True))
    #: Environment keys this procedure applies to; empty means all.
    environments: tuple[str, ...] = attrs.field(
        default=(), converter=_to_sorted_names, validator=_names(KEY_RE, "an environment key")
    )
    url: str | None = attrs.field(default=None, validator=_optional(_url()))
    #: Auth type keys this procedure applies to; empty means all.
    auth_types: tuple[str, ...] = attrs.field(
        default=(), converter=_to_sorted_names, validator=_names(KEY_RE, "an auth type key")
    )

    def applies_to(self, environment: str, auth_type: str | None = None) -> bool:
        """Whether the procedure is for ``environment`` and, when one is given, for ``auth_type``
        (``None`` leaves the auth types out of the question)."""
        if self.environments and environment not in self.environments:
            return False
        return auth_type is None or not self.auth_types or auth_type in self.auth_types


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

    def procedures_for(self, environment: str, auth_type: str | None = None) -> tuple[Procedure, ...]:
        """The procedures for ``environment`` (and ``auth_type``, when given), in order."""
        return tuple(p for p in self.procedures if p.applies_to(environment, auth_type))

    def lines_for(self, environment: str, auth_type: str | None = None) -> tuple[str, ...]:
        """The manual procedures for ``environment`` (and ``auth_type``, when given) as
        numbered lines to show a person."""
        lines: list[str] = []
        for proc in self.procedures_for(environment, auth_type):
            lines.append(proc.title + (f" ({proc.url})" if proc.url else ""))
            for number, step in enumerate(proc.steps, 1):
                where = f" [{step.location}]" if step.location else ""
                lines.append(f"  {number}. {step.text}{where}")
        return tuple(lines)


@attrs.frozen
class ConnectionTest:
    """The cheapest request that proves a connection works, and the scope it needs."""

    method: str = attrs.field(converter=_upper)
    #: Path relative to the environment's API base URL.
    path: str = attrs.field(validator=_matches(re.compile(r"/[\x21-\x7e]*"), "a path starting with '/'"))
    #: The scope the request needs; ``None`` for a provider without OAuth scopes.
    scope: str | None = attrs.field(default=None, validator=_optional(_matches(SCOPE_TOKEN_RE, "a scope token")))
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
    #: What the end user does before connecting (install the app, create a service user...),
    #: in order; each procedure may be for some auth types or environments only.
    connect_checklist: tuple[Procedure, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_instances(Procedure)
    )

    def __attrs_post_init__(self) -> None:
        self._check_fields()
        self._check_oauth()
        self._check_scopes_used()
        if sum(1 for e in self.environments if e.default) > 1:
            raise DeclarationError("environments", "at most one environment may be the default")
        if self.reconnect_policy:
            self._check_procedures("reconnect_policy.procedures", self.reconnect_policy.procedures)
        self._check_procedures("connect_checklist", self.connect_checklist)

    def _check_procedures(self, where: str, procedures: tuple[Procedure, ...]) -> None:
        """Each procedure names only declared environments and auth types."""
        declared = {
            "environments": {e.key for e in self.environments},
            "auth_types": {a.key for a in self.auth_types},
        }
        words = {"environments": "environments", "auth_types": "auth types"}
        for index, proc in enumerate(procedures):
            for name, keys in declared.items():
                unknown = sorted(set(getattr(proc, name)) - keys)
                if unknown:
                    raise DeclarationError(
                        f"{where}[{index}].{name}",
                        f"procedure {proc.title!r} names unknown {words[name]}: {', '.join(unknown)}; "
                        f"expected one of {', '.join(sorted(keys))}",
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
            needed = self.credential_names(auth)
            missing = [n for n in needed if n not in names]
            if missing:
                raise DeclarationError(
                    f"auth_types.{auth.key}", f"refers to undeclared credential fields: {', '.join(missing)}"
                )
            if isinstance(auth, OAuth2ClientCredentials):
                user = [f.name for f in self.fields_for(auth.key) if f.level is FieldLevel.USER]
                if user:
                    raise DeclarationError(
                        f"credential_fields.{user[0]}",
                        "a client credentials grant has no end user, so its fields must be app-level",
                    )
            for name in needed:
                field = next(f for f in self.fields_for(auth.key) if f.name == name)
                must_be_secret = (
                    name in ("client_secret",)
                    or (isinstance(auth, HttpBasicAuth) and name == auth.password_field)
                    or (isinstance(auth, ApiKeyAuth) and name == auth.key_field)
                )
                if must_be_secret and not field.secret:
                    raise DeclarationError(f"credential_fields.{name}", "carries a secret, so its kind must be secret")

    @staticmethod
    def credential_names(auth: AuthType) -> tuple[str, ...]:
        """The credential fields an auth type reads, by name."""
        if isinstance(auth, HttpBasicAuth):
            return (auth.username_field, auth.password_field)
        if isinstance(auth, ApiKeyAuth):
            return (auth.key_field,)
        if isinstance(auth, OAuth2ClientCredentials):
            return ("client_id", "client_secret")
        return ()

    def _check_oauth(self) -> None:
        catalogue = self.scope_catalogue
        if self.connection_test is not None and self.connection_test.scope is None and catalogue and not catalogue.open:
            raise DeclarationError("connection_test.scope", "the provider has OAuth scopes, so name the one it needs")
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
        if test is not None and test.scope is not None:
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
        if key is None:
            return self.auth_types[0]
        for auth in self.auth_types:
            if auth.key == key:
                return auth
        raise UnknownNameError("auth type", key, [a.key for a in self.auth_types], within=f"provider {self.key!r}")

    def fields_for(self, auth_type: str, level: FieldLevel | None = None) -> tuple[CredentialField, ...]:
        """The credential fields of one auth type (of one level, when given), in form order."""
        return tuple(
            f for f in self.credential_fields if f.auth_type == auth_type and (level is None or f.level is level)
        )

    def environment(self, key: str | None = None) -> Environment:
        """The named environment, or the default one (the first when none is marked)."""
        if key is None:
            return next((e for e in self.environments if e.default), self.environments[0])
        for env in self.environments:
            if env.key == key:
                return env
        raise UnknownNameError("environment", key, [e.key for e in self.environments], within=f"provider {self.key!r}")

    def checklist_for(self, environment: str, auth_type: str) -> tuple[Procedure, ...]:
        """The connect checklist of one environment and auth type: what the end user does
        before connecting, in order. Unknown keys raise :class:`~connector_core.UnknownNameError`."""
        env = self.environment(environment).key
        auth = self.auth_type(auth_type).key
        return tuple(p for p in self.connect_checklist if p.applies_to(env, auth))

    def action(self, key: str) -> Action:
        for action in self.actions:
            if action.key == key:
                return action
        raise UnknownNameError("action", key, [a.key for a in self.actions], within=f"provider {self.key!r}")
