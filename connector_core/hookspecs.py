"""Hook specifications: what a plugin can declare or change.

This module holds only signatures and docstrings. Plugins implement any subset
of these with ``@connector_core.hookimpl``; an implementation may accept fewer
arguments than the spec names. Specs grow only by gaining arguments.

How results combine:

* :func:`connector_core_register_providers` and
  :func:`connector_core_register_commands` are called once per plugin with a
  registry object; everything registered is collected. A provider key registered
  by two plugins is an error naming both, and that key becomes unusable while
  every other provider keeps working.
* Every hook taking ``provider_key`` is ``firstresult``: the first
  implementation that returns something other than ``None`` answers, so a plugin
  returns ``None`` for providers that are not its own. Implementations marked
  ``tryfirst=True`` run first, so a platform plugin can override one
  declaration of a provider it does not own.
* :func:`connector_core_provider_files` is collected from every plugin: each file
  named becomes a plugin of its own (a provider declared as data).
* :func:`connector_core_callback_base_url` is ``firstresult`` too; the core's
  built-in plugin answers last, from ``CONNECTOR_CALLBACK_BASE_URL``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._markers import hookspec

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from .emulator.spec import EmulatorSpec
    from .models import (
        Action,
        AuthType,
        Callback,
        ConnectionTest,
        CredentialField,
        Environment,
        Procedure,
        ReconnectPolicy,
        ScopeCatalogue,
        SetupGuide,
    )
    from .registries import CommandRegistry, ProviderRegistry

__all__ = [
    "connector_core_actions",
    "connector_core_auth_types",
    "connector_core_callback",
    "connector_core_callback_base_url",
    "connector_core_connect_checklist",
    "connector_core_connection_test",
    "connector_core_credential_fields",
    "connector_core_emulator",
    "connector_core_environments",
    "connector_core_identity",
    "connector_core_provider_files",
    "connector_core_reconnect_policy",
    "connector_core_register_commands",
    "connector_core_register_providers",
    "connector_core_scope_catalogue",
    "connector_core_setup_guide",
]


# ------------------------------------------------------------- provider declarations


@hookspec
def connector_core_register_providers(register: ProviderRegistry) -> None:
    """Register the providers this plugin implements.

    Call ``register.add(Provider(...))`` once per provider. Collected from every
    plugin; registering a key another plugin registered already is an error
    naming both plugins.
    """


@hookspec(firstresult=True)
def connector_core_auth_types(provider_key: str) -> Sequence[AuthType] | None:
    """Return the provider's auth types, preferred first, or ``None`` if not yours.

    Each is an :class:`~connector_core.OAuth2AuthorizationCode`,
    :class:`~connector_core.HttpBasicAuth` or :class:`~connector_core.ApiKeyAuth`
    with a key unique within the provider. Required for every provider.
    """


@hookspec(firstresult=True)
def connector_core_credential_fields(provider_key: str) -> Sequence[CredentialField] | None:
    """Return every credential field of every auth type, in form order.

    Each :class:`~connector_core.CredentialField` names the auth type it belongs
    to and its level (the platform's app registration, or the end user).
    """


@hookspec(firstresult=True)
def connector_core_scope_catalogue(provider_key: str) -> ScopeCatalogue | None:
    """Return the provider's scope catalogue: groups, defaults and minimum.

    Required for providers with an OAuth 2.0 auth type.
    """


@hookspec(firstresult=True)
def connector_core_environments(provider_key: str) -> Sequence[Environment] | None:
    """Return the provider's environments (sandbox, production...), with hosts
    and the credential set each uses. Required for every provider."""


@hookspec(firstresult=True)
def connector_core_callback(provider_key: str) -> Callback | None:
    """Return the OAuth callback declaration: the provider's path and, optionally,
    a default platform base URL. Required for OAuth 2.0 providers."""


@hookspec(firstresult=True)
def connector_core_reconnect_policy(provider_key: str) -> ReconnectPolicy | None:
    """Return how a broken or outdated connection is repaired, with any manual
    steps a person must take first. ``None`` means plain re-authorization."""


@hookspec(firstresult=True)
def connector_core_connection_test(provider_key: str) -> ConnectionTest | None:
    """Return the cheapest request that proves a connection works. Its scope
    must be among the minimum scopes."""


@hookspec(firstresult=True)
def connector_core_actions(provider_key: str) -> Sequence[Action] | None:
    """Return the named operations a profile can enable, with the scopes each
    needs; the least scope set for a profile is derived from them."""


@hookspec(firstresult=True)
def connector_core_setup_guide(provider_key: str) -> SetupGuide | None:
    """Return the platform's one-time onboarding checklist with this provider
    (partner application, app registration, redirect URI, scopes...)."""


@hookspec(firstresult=True)
def connector_core_connect_checklist(provider_key: str) -> Sequence[Procedure] | None:
    """Return what the end user does before connecting, in order: the provider's pre-connect
    checklist (install the app and choose what it may see, create a service user...).

    Each :class:`~connector_core.Procedure` may name the ``auth_types`` and ``environments``
    it is for (empty means all); they must be declared ones. A connect page shows
    ``ProviderDeclaration.checklist_for(environment, auth_type)``. Steps to repair an
    existing connection belong to the reconnect policy, not here.
    """


@hookspec(firstresult=True)
def connector_core_identity(provider_key: str, token_response: Mapping[str, Any]) -> Mapping[str, str] | None:
    """Return the provider-specific identity found in a token response (a tenant
    or company id), or ``None``. Called after every code exchange; the result
    is stored with the connection. Secret values must not be returned."""


@hookspec(firstresult=True)
def connector_core_emulator(provider_key: str) -> EmulatorSpec | None:
    """Return how the built-in emulator imitates this provider (its test app,
    token behaviour, installation rules and resource endpoints), or ``None`` when
    the provider has no emulator. See :mod:`connector_core.emulator`."""


@hookspec
def connector_core_provider_files() -> Sequence[str | os.PathLike[str] | Traversable] | None:
    """Return provider files (TOML, see ``docs/writing-a-provider-as-data.md``) this plugin ships.

    Collected from every plugin. Each file becomes a plugin of its own, named ``data:PATH``,
    registered like an installed plugin and isolated like one: a broken file is reported by
    its name while every other provider keeps working. Return paths or
    :mod:`importlib.resources` traversables (package data:
    ``importlib.resources.files(__package__) / "acme.toml"``). A data provider's hook
    implementations answer last, so this plugin's own implementations of the provider hooks
    override the file's declarations one by one.
    """


# ------------------------------------------------------------------ platform hooks


@hookspec(firstresult=True)
def connector_core_callback_base_url(provider_key: str, environment: str) -> str | None:
    """Return the platform's public base URL that OAuth callbacks reach, or
    ``None`` to leave it to the next plugin, then the provider's default.

    The callback URL is this base URL joined with the provider's callback path.
    """


@hookspec
def connector_core_register_commands(commands: CommandRegistry) -> None:
    """Add sub-commands to the ``connector`` CLI with ``commands.add(...)``.

    A name that clashes with a built-in command or another plugin's is an error
    naming the plugin.
    """
