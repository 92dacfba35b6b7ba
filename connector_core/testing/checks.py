"""The conformance checks over a provider's declaration, as plain functions.

Each check takes what it needs (a :class:`~connector_core.ProviderDeclaration`,
or the :class:`~connector_core.Plugins` and a key) and returns the problems it
found, each one line a provider author can act on; an empty tuple means the
check passed. No I/O, no pytest: :class:`~connector_core.testing.ProviderConformance`
turns each into a test, and anything else (a CI script, a platform's own
onboarding check) can call them directly.

Some rules are already enforced when the records are built (a scope catalogue
whose minimum is not within its defaults cannot be constructed); the checks
repeat them so that a declaration assembled some other way is held to the same
rules, and add what the models cannot know (help texts, secret-looking fields,
procedures for every environment, a docs page that says everything).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..docgen import render_provider
from ..errors import ConnectorError
from ..models import (
    CALLBACK_PATH_RE,
    FieldKind,
    OAuth2AuthorizationCode,
    ProviderDeclaration,
    ReconnectKind,
    url_problem,
)

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = [
    "SECRET_WORDS",
    "check_action_scopes",
    "check_callback",
    "check_connection_test",
    "check_credential_fields",
    "check_docs_page",
    "check_environments",
    "check_models",
    "check_reconnect_policy",
    "check_scope_catalogue",
    "check_secret_fields",
    "looks_secret",
]

#: A credential field whose name has a part equal to, or ending in, one of these
#: words must be of kind ``secret``.
SECRET_WORDS = ("secret", "token", "password", "passwd", "passphrase", "key")

Problems = tuple[str, ...]


def _oauth(declaration: ProviderDeclaration) -> tuple[OAuth2AuthorizationCode, ...]:
    return tuple(a for a in declaration.auth_types if isinstance(a, OAuth2AuthorizationCode))


def check_models(plugins: Plugins, key: str) -> Problems:
    """The plugin loads without problems, the provider is registered, every hook answer
    has the right type and validates, the records agree with each other, and the
    emulator spec (if any) validates too."""
    errors: list[str] = []
    try:
        plugins.declaration(key)
    except ConnectorError as exc:
        errors.append(exc.message)
    else:
        try:
            plugins.emulator_spec(key)
        except ConnectorError as exc:
            errors.append(exc.message)
    problems = [str(problem) for problem in plugins.problems_so_far]
    problems.extend(error for error in errors if error not in problems)
    return tuple(problems)


def check_scope_catalogue(declaration: ProviderDeclaration) -> Problems:
    """Defaults and minimum exist in the catalogue, the minimum is not empty and lies within the defaults."""
    catalogue = declaration.scope_catalogue
    if catalogue is None:
        if _oauth(declaration):
            return ("an OAuth 2.0 provider must declare a scope catalogue (connector_core_scope_catalogue)",)
        return ()
    problems: list[str] = []
    for name in ("default_scopes", "minimum_scopes"):
        unknown = [s for s in getattr(catalogue, name) if s not in catalogue]
        if unknown:
            problems.append(f"scope_catalogue.{name}: not in the catalogue: {', '.join(unknown)}")
    if not catalogue.default_scopes and not catalogue.open:
        problems.append("scope_catalogue.default_scopes: expected at least one scope")
    if not catalogue.minimum_scopes and not catalogue.open:
        problems.append("scope_catalogue.minimum_scopes: expected at least one scope")
    outside = [s for s in catalogue.minimum_scopes if s not in catalogue.default_scopes]
    if outside:
        problems.append(
            f"scope_catalogue.minimum_scopes: must lie within the default scopes; not among them: {', '.join(outside)}"
        )
    return tuple(problems)


def check_action_scopes(declaration: ProviderDeclaration) -> Problems:
    """Every action names at least one scope, and each exists in the catalogue."""
    catalogue = declaration.scope_catalogue
    problems: list[str] = []
    for action in declaration.actions:
        if not action.scopes:
            problems.append(f"actions.{action.key}: names no scope")
        unknown = [s for s in action.scopes if catalogue is None or s not in catalogue]
        if unknown:
            problems.append(f"actions.{action.key}: names scopes not in the catalogue: {', '.join(unknown)}")
    return tuple(problems)


def check_credential_fields(declaration: ProviderDeclaration) -> Problems:
    """Every credential field has a label and a help text saying where its value comes from."""
    problems: list[str] = []
    for field in declaration.credential_fields:
        where = f"credential_fields.{field.name} ({field.auth_type})"
        if not field.label.strip():
            problems.append(f"{where}: has no label")
        if not field.help.strip():
            problems.append(f"{where}: has no help text; say where the value is found (help=...)")
    return tuple(problems)


def looks_secret(name: str) -> bool:
    """Whether a field name looks like it holds a secret (see :data:`SECRET_WORDS`)."""
    parts = re.split(r"[_\-]", name.lower())
    return any(part == word or part.endswith(word) for part in parts for word in SECRET_WORDS)


def check_secret_fields(declaration: ProviderDeclaration, *, not_secret: Iterable[str] = ()) -> Problems:
    """Fields whose names look secret (secret, token, password, key...) are of kind ``secret``.

    ``not_secret`` names fields that only look secret (a public key id, say).
    """
    allowed = set(not_secret)
    return tuple(
        f"credential_fields.{field.name} ({field.auth_type}): looks like a secret but is of kind "
        f"{field.kind.value!r}; declare kind='secret' so it is never echoed, shown or stored in plain text"
        for field in declaration.credential_fields
        if looks_secret(field.name) and field.kind is not FieldKind.SECRET and field.name not in allowed
    )


def check_callback(declaration: ProviderDeclaration) -> Problems:
    """An OAuth provider declares a callback path: absolute, without query, fragment,
    trailing slash or dot segments, with the provider key as one of its segments (so two
    providers never share a callback), and a default base URL that joins cleanly."""
    callback = declaration.callback
    if callback is None:
        if _oauth(declaration):
            return ("an OAuth 2.0 provider must declare its callback path (connector_core_callback)",)
        return ()
    problems: list[str] = []
    path = callback.path
    if not CALLBACK_PATH_RE.fullmatch(path) or any(seg in (".", "..") for seg in path.split("/")):
        problems.append(
            f"callback.path: {path!r} is not an absolute path of unreserved characters without "
            "query, fragment, trailing slash or '.' segments"
        )
    elif declaration.key not in path.split("/"):
        problems.append(
            f"callback.path: {path!r} does not name the provider; use a path with {declaration.key!r} as a "
            f"segment, such as '/connect/oauth2/{declaration.key}/callback'"
        )
    if callback.default_base_url is not None:
        problem = url_problem(callback.default_base_url)
        if problem is None:
            try:
                callback.url(callback.default_base_url)
            except ConnectorError as exc:
                problem = exc.message
        if problem:
            problems.append(f"callback.default_base_url: {problem}")
    return tuple(problems)


def check_environments(declaration: ProviderDeclaration) -> Problems:
    """Each environment has a label, names its credential set (key and label) and its API host,
    and overrides the authorization hosts of an OAuth auth type together or not at all."""
    problems: list[str] = []
    if not declaration.environments:
        return ("declares no environment",)
    for env in declaration.environments:
        where = f"environments.{env.key}"
        if not env.label.strip():
            problems.append(f"{where}: has no label")
        if not env.credential_set:
            problems.append(f"{where}: names no credential set")
        if not env.credential_set_label.strip():
            problems.append(
                f"{where}: names no credential set label; say which credentials it uses, such as "
                "credential_set_label='Development credentials'"
            )
        problem = url_problem(env.api_base_url)
        if problem:
            problems.append(f"{where}.api_base_url: {problem}")
        if _oauth(declaration) and (env.authorize_url is None) != (env.token_url is None):
            given = "authorize_url" if env.authorize_url else "token_url"
            missing = "token_url" if env.authorize_url else "authorize_url"
            problems.append(
                f"{where}: overrides {given} but not {missing}; an environment's authorization server "
                "is overridden as a whole"
            )
    return tuple(problems)


def check_reconnect_policy(declaration: ProviderDeclaration) -> Problems:
    """Where the policy needs a person to act, every environment has a procedure with steps:
    ``uninstall_then_reauthorize`` always, ``revoke_then_reauthorize`` where the
    environment has no revocation endpoint."""
    policy = declaration.reconnect_policy
    if policy is None:
        return ()
    problems: list[str] = []
    if not policy.summary.strip():
        problems.append("reconnect_policy.summary: is empty")
    for proc in policy.procedures:
        if not proc.steps or any(not step.text.strip() for step in proc.steps):
            problems.append(f"reconnect_policy: procedure {proc.title!r} has an empty step list or an empty step")
    revocation = {a.revocation_url for a in _oauth(declaration)} - {None}
    for env in declaration.environments:
        if policy.kind is ReconnectKind.UNINSTALL_THEN_REAUTHORIZE:
            needs = "the uninstall steps"
        elif policy.kind is ReconnectKind.REVOKE_THEN_REAUTHORIZE and not (env.revocation_url or revocation):
            needs = "the steps to revoke the grant by hand (it has no revocation endpoint)"
        else:
            continue
        if not any(proc.steps for proc in policy.procedures_for(env.key)):
            problems.append(
                f"reconnect_policy: environment {env.key!r} has no procedure with {needs}; add a Procedure "
                "that applies to it"
            )
    return tuple(problems)


def check_connection_test(declaration: ProviderDeclaration) -> Problems:
    """The connection test's scope is in the catalogue and among the minimum scopes, so
    every valid connection can pass it."""
    test = declaration.connection_test
    catalogue = declaration.scope_catalogue
    if test is None or catalogue is None or (test.scope is None and catalogue.open):
        return ()
    if test.scope not in catalogue:
        return (f"connection_test.scope: {test.scope!r} is not in the catalogue",)
    if test.scope not in catalogue.minimum_scopes:
        return (
            f"connection_test.scope: {test.scope!r} is not among the minimum scopes "
            f"({', '.join(catalogue.minimum_scopes)}), so a valid connection could fail its test",
        )
    return ()


def check_docs_page(declaration: ProviderDeclaration) -> Problems:
    """The provider's page renders (as ``connector docs KEY`` does) and has something to say
    in every section: a description, a description per scope group, a setup guide; and it
    names every environment, scope, action and credential field."""
    try:
        page = render_provider(declaration)
    except Exception as exc:  # noqa: BLE001 - any failure to render is the finding
        return (f"the docs page does not render: {type(exc).__name__}: {' '.join(str(exc).split())}",)
    problems: list[str] = []
    if not declaration.provider.description.strip():
        problems.append("docs page: the provider has no description (Provider.description)")
    catalogue = declaration.scope_catalogue
    for group in catalogue.groups if catalogue else ():
        if not group.description.strip():
            problems.append(f"docs page: scope group {group.key!r} has no description (ScopeGroup.description)")
    if declaration.setup_guide is None:
        problems.append("docs page: the provider declares no setup guide (connector_core_setup_guide)")
    names = [
        *(f"`{env.key}`" for env in declaration.environments),
        *(f"`{name}`" for name in (catalogue.names if catalogue else ())),
        *(f"`{action.key}`" for action in declaration.actions),
        *(f"`{field.name}`" for field in declaration.credential_fields),
    ]
    missing = [name for name in names if name not in page]
    if missing:
        problems.append(f"docs page: does not mention {', '.join(missing)}")
    return tuple(problems)
