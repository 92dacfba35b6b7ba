"""Connector profiles: a provider app's registration, validated against its declaration.

A profile records, once, what the platform registered with a provider (App ID,
Client ID, Client Secret, scopes...) for one environment, and therefore for one
credential set. :func:`validate_profile` checks every value against the
provider's credential fields and scope catalogue and returns a
:class:`ProfileDraft` the store can save; it touches no disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from .errors import ScopeError, ValidationError
from .models import (
    ENDPOINT_NAMES,
    PROFILE_OPTIONS,
    SCOPE_SEPARATORS,
    AuthKind,
    ClientAuthMethod,
    FieldKind,
    FieldLevel,
    ProviderDeclaration,
    url_problem,
)

if TYPE_CHECKING:
    from .models import AuthType
from .scopes import check_scopes, parse_scopes, scopes_for_actions
from .secret import Secret

__all__ = ["ENDPOINT_NAMES", "PROFILE_OPTIONS", "Profile", "ProfileDraft", "check_credentials", "validate_profile"]

PROFILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_TRUE = frozenset({"true", "on", "yes", "1"})
_FALSE = frozenset({"false", "off", "no", "0"})
_PATH_RE = re.compile(r"/[\x21-\x7e]*")


@attrs.frozen
class ProfileDraft:
    """A validated profile, not yet stored."""

    name: str
    provider: str
    auth_type: str
    environment: str
    credential_set: str
    #: Non-secret field values, in declaration order.
    values: tuple[tuple[str, str], ...]
    #: Secret field values, in declaration order.
    secrets: tuple[tuple[str, Secret], ...] = attrs.field(repr=False)
    scopes: tuple[str, ...]
    actions: tuple[str, ...]
    #: Non-fatal scope findings (module-gated, sensitive) worth showing.
    warnings: tuple[str, ...] = ()
    #: Overrides of the environment's URLs, the registered redirect URI (see :data:`ENDPOINT_NAMES`),
    #: and the settings its auth type lets a profile choose (see :data:`PROFILE_OPTIONS`).
    endpoints: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class Profile:
    """A stored connector profile.

    ``secrets`` is filled only when the profile was read with its secrets
    (:meth:`connector_core.Store.get_profile`); listings leave it empty and keep
    only ``secret_names``. Secrets are :class:`~connector_core.Secret`: their
    repr is ``'***'``.
    """

    id: str
    name: str
    provider: str
    auth_type: str
    environment: str
    credential_set: str
    values: tuple[tuple[str, str], ...]
    secret_names: tuple[str, ...]
    scopes: tuple[str, ...]
    actions: tuple[str, ...]
    created_at: str
    updated_at: str
    endpoints: tuple[tuple[str, str], ...] = ()
    secrets: tuple[tuple[str, Secret], ...] = attrs.field(default=(), repr=False)

    def endpoint(self, name: str) -> str | None:
        """An endpoint override (``authorize_url``, ``redirect_uri``...) or ``None``."""
        return dict(self.endpoints).get(name)

    def option(self, name: str) -> str | None:
        """A setting the profile chose (``scope_separator``, ``pkce``...; see
        :data:`PROFILE_OPTIONS`), as validated text, or ``None`` for the declared default.
        Options are kept with the endpoints, under the same seal."""
        return dict(self.endpoints).get(name) if name in PROFILE_OPTIONS else None

    def value(self, name: str) -> str | None:
        """A non-secret field's value, or ``None`` when it was not given."""
        return dict(self.values).get(name)

    def secret(self, name: str) -> Secret:
        """A secret field's value (read with secrets, see the class doc)."""
        found = dict(self.secrets)
        if name not in found:
            if name in self.secret_names:
                raise ValidationError(name, f"profile {self.name!r} was read without its secrets")
            raise ValidationError(name, f"profile {self.name!r} has no secret named {name!r}")
        return found[name]


def validate_profile(
    declaration: ProviderDeclaration,
    *,
    name: str,
    environment: str | None = None,
    auth_type: str | None = None,
    values: Mapping[str, str | Secret] | None = None,
    scopes: str | Sequence[str] | None = None,
    actions: Sequence[str] | None = None,
    previous: Profile | None = None,
    endpoints: Mapping[str, str | None] | None = None,
) -> ProfileDraft:
    """Check a profile's values against ``declaration`` and return the draft to store.

    Only app-level credential fields belong in a profile; user-level ones are
    given when a connection is made. Scopes: when given they are checked like
    ``connector scopes --check``; otherwise derived from ``actions``; otherwise
    the provider's defaults. When both are given, the scopes must cover the
    actions. An auth type without OAuth tokens (HTTP Basic, an API key) has no
    scopes, and a profile of it may hold no values at all: its connections hold
    the end user's credentials. ``previous`` supplies unchanged values for an update.

    Raises :class:`~connector_core.ValidationError` (or its subclass
    :class:`~connector_core.ScopeError`) naming the field.
    """
    if not isinstance(name, str) or not PROFILE_NAME_RE.fullmatch(name):
        raise ValidationError(
            "name", f"expected 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit, got {name!r}"
        )
    auth = declaration.auth_type(auth_type if auth_type is not None else (previous.auth_type if previous else None))
    env = declaration.environment(
        environment if environment is not None else (previous.environment if previous else None)
    )

    given: dict[str, str | Secret] = dict(values or {})
    fields = [f for f in declaration.fields_for(auth.key) if f.level is FieldLevel.APP]
    known = {f.name for f in fields}
    for unknown in sorted(set(given) - known):
        expected = ", ".join(sorted(known)) or "none"
        raise ValidationError(
            unknown, f"is not a field of {declaration.key} {auth.key} profiles (expected: {expected})"
        )

    plain: list[tuple[str, str]] = []
    secret: list[tuple[str, Secret]] = []
    # Values of another credential set (Development vs Production) never carry over.
    carry = previous is not None and previous.credential_set == env.credential_set and previous.auth_type == auth.key
    old_values = dict(previous.values) if previous and carry else {}
    old_secrets = dict(previous.secrets) if previous and carry else {}
    for field in fields:
        if field.kind is FieldKind.SCOPE_LIST:
            if field.name in given:
                raw = given.pop(field.name)
                if scopes is None:
                    scopes = raw.reveal() if isinstance(raw, Secret) else raw
            continue
        if field.name in given:
            raw = given[field.name]
            text = raw.reveal() if isinstance(raw, Secret) else raw
            if not text.strip() and not field.required:
                continue
            cleaned = field.check(text)
            if field.secret:
                secret.append((field.name, Secret(cleaned)))
            else:
                plain.append((field.name, cleaned))
        elif field.secret and field.name in old_secrets:
            secret.append((field.name, old_secrets[field.name]))
        elif not field.secret and field.name in old_values:
            plain.append((field.name, old_values[field.name]))
        elif field.secret and carry and previous is not None and field.name in previous.secret_names:
            raise ValidationError(field.name, f"profile {previous.name!r} must be read with its secrets to update it")
        elif field.required:
            why = ""
            if previous is not None and not carry:
                why = f" (the profile now uses {env.credential_set_label or env.credential_set}, so give its values)"
            raise ValidationError(field.name, f"{field.label} is required{why}")

    if auth.kind.uses_tokens:
        chosen_scopes, chosen_actions, warnings = _scopes(declaration, scopes, actions, previous)
    elif scopes or actions:
        # A service user's or an API key's rights are set at the provider, not requested as scopes.
        raise ScopeError(
            "scopes" if scopes else "actions",
            f"{auth.key} ({auth.kind.value}) profiles request no OAuth scopes: the credentials each connection "
            "holds carry their own rights at the provider",
        )
    else:
        chosen_scopes, chosen_actions, warnings = (), (), ()
    chosen_endpoints = dict(previous.endpoints) if previous else {}
    options: tuple[str, ...] = getattr(auth, "profile_options", ())
    for name in set(chosen_endpoints) - set(options) - set(ENDPOINT_NAMES):  # options of another auth type
        chosen_endpoints.pop(name)
    for key, url in (endpoints or {}).items():
        if key in PROFILE_OPTIONS and key in options:
            if url is None or url == "":
                chosen_endpoints.pop(key, None)
            else:
                chosen_endpoints[key] = _option(key, url)
            continue
        if key not in ENDPOINT_NAMES:
            expected = ", ".join((*ENDPOINT_NAMES, *options))
            what = "a setting" if key in PROFILE_OPTIONS else "an endpoint"
            raise ValidationError(
                key, f"is not {what} a {declaration.key} {auth.key} profile can set (expected: {expected})"
            )
        if url is None or url == "":
            chosen_endpoints.pop(key, None)
            continue
        problem = url_problem(url)
        if problem:  # a URL with user:password@ is not shown: it may carry a secret
            shown = "" if "@" in url else f", got {url!r}"
            raise ValidationError(key, f"{problem}{shown}")
        chosen_endpoints[key] = url.rstrip("/") if key == "api_base_url" else url
    required: tuple[str, ...] = getattr(auth, "profile_endpoints", ())
    for key in required:
        if key not in chosen_endpoints:
            raise ValidationError(
                key, f"is required: provider {declaration.key!r} cannot know it, so each profile must set it"
            )
    return ProfileDraft(
        name=name,
        provider=declaration.key,
        auth_type=auth.key,
        environment=env.key,
        credential_set=env.credential_set,
        values=tuple(plain),
        secrets=tuple(secret),
        scopes=chosen_scopes,
        actions=chosen_actions,
        warnings=warnings,
        endpoints=tuple(sorted(chosen_endpoints.items())),
    )


def _option(name: str, value: str) -> str:
    """A profile option's value, checked and in its stored form."""
    if not isinstance(value, str):
        raise ValidationError(name, f"expected text, got {type(value).__name__}")
    text = value if name == "scope_separator" else value.strip()
    if name == "scope_separator":
        if text.strip() in SCOPE_SEPARATORS:
            text = text.strip()
        if text not in SCOPE_SEPARATORS:
            raise ValidationError(name, f"expected space, comma or plus (' ', ',' or '+'), got {value!r}")
        return SCOPE_SEPARATORS[text]
    if name == "pkce":
        if text.lower() in _TRUE:
            return "true"
        if text.lower() in _FALSE:
            return "false"
        raise ValidationError(name, f"expected true or false, got {value!r}")
    if name == "client_auth_method":
        allowed = [m.value for m in ClientAuthMethod]
        if text not in allowed:
            raise ValidationError(name, f"expected one of {', '.join(allowed)}, got {value!r}")
        return text
    if not _PATH_RE.fullmatch(text):  # connection_test_path
        raise ValidationError(name, f"expected a path starting with '/', got {value!r}")
    return text


def check_credentials(
    declaration: ProviderDeclaration, auth: AuthType, given: Mapping[str, str | Secret]
) -> dict[str, Secret]:
    """Check the end user's credential values for a connection of ``auth`` (its user-level
    fields) and return them, cleaned, as secrets to store encrypted.

    Raises :class:`~connector_core.ValidationError` naming the field: one that the auth type
    does not have, a required one missing or empty, or a value its field refuses (a secret
    with white space or control characters in it, a pattern it does not match). A secret's
    value is never quoted.
    """
    fields = declaration.fields_for(auth.key, FieldLevel.USER)
    known = {f.name for f in fields}
    for unknown in sorted(set(given) - known):
        expected = ", ".join(f.name for f in fields) or "none: the profile holds everything"
        raise ValidationError(
            unknown, f"is not a credential of {declaration.key} {auth.key} connections (expected: {expected})"
        )
    values: dict[str, Secret] = {}
    for field in fields:
        raw = given.get(field.name)
        if raw is None:
            if field.required:
                raise ValidationError(field.name, f"{field.label} is required")
            continue
        text = raw.reveal() if isinstance(raw, Secret) else raw
        if not text.strip() and not field.required:
            continue
        values[field.name] = Secret(field.check(text))
    username = getattr(auth, "username_field", None) if auth.kind is AuthKind.HTTP_BASIC else None
    if username in values and ":" in values[username].reveal():  # RFC 7617 §2: a user-id holds no colon
        raise ValidationError(username, "expected no ':' (HTTP Basic cannot carry one in a user-id)")
    return values


def _scopes(
    declaration: ProviderDeclaration,
    scopes: str | Sequence[str] | None,
    actions: Sequence[str] | None,
    previous: Profile | None,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    catalogue = declaration.scope_catalogue
    if catalogue is None:
        if scopes or actions:
            raise ScopeError("scopes", f"provider {declaration.key!r} has no OAuth scopes")
        return (), (), ()
    action_keys: tuple[str, ...]
    if actions is not None:
        action_keys = tuple(dict.fromkeys(_words(actions)))
        for key in action_keys:
            declaration.action(key)  # raises UnknownNameError with a suggestion
    else:
        action_keys = previous.actions if previous else ()

    if scopes is not None:
        requested = parse_scopes(scopes, field="scopes")
        result = check_scopes(catalogue, requested)
        if not result.ok:
            raise ScopeError("scopes", "; ".join(f.message for f in result.errors))
        chosen = result.requested
    elif actions is not None and action_keys:
        chosen = scopes_for_actions(declaration, action_keys)
    elif previous is not None:
        chosen = previous.scopes
    else:
        chosen = catalogue.default_scopes

    if action_keys:
        needed = set(scopes_for_actions(declaration, action_keys))
        missing = [s for s in catalogue.names if s in needed and s not in chosen]
        if missing:
            raise ScopeError(
                "scopes", f"the selected actions also need {', '.join(missing)}; add them or drop the actions"
            )
    warnings = tuple(f.message for f in check_scopes(catalogue, chosen).warnings)
    return tuple(chosen), action_keys, warnings


def _words(values: Iterable[str]) -> list[str]:
    return [w for value in values for w in value.replace(",", " ").split()]
