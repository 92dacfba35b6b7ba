"""The HiBob provider's hook implementations.

Registered through the ``connector_core`` entry point in this distribution's
``pyproject.toml``, exactly as a third party's plugin would be. Every hook
returns ``None`` for providers other than ``hibob``.

Importing this module is cheap on purpose: the records are built on first use, so
``connector providers list`` builds only the ``Provider`` and a scope check only the
scope catalogue (the modules are imported once and then cached as usual).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from connector_core import ProviderRegistry, hookimpl

from .provider import KEY, PROVIDER

if TYPE_CHECKING:
    from connector_core import (
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
    from connector_core.emulator import EmulatorSpec


def _declarations() -> ModuleType:
    from . import declarations

    return declarations


@hookimpl
def connector_core_register_providers(register: ProviderRegistry) -> None:
    register.add(PROVIDER)


@hookimpl
def connector_core_auth_types(provider_key: str) -> Sequence[AuthType] | None:
    return _declarations().auth_types() if provider_key == KEY else None


@hookimpl
def connector_core_credential_fields(provider_key: str) -> Sequence[CredentialField] | None:
    return _declarations().CREDENTIAL_FIELDS if provider_key == KEY else None


@hookimpl
def connector_core_scope_catalogue(provider_key: str) -> ScopeCatalogue | None:
    if provider_key != KEY:
        return None
    from .catalogue import CATALOGUE

    return CATALOGUE


@hookimpl
def connector_core_environments(provider_key: str) -> Sequence[Environment] | None:
    return _declarations().environments() if provider_key == KEY else None


@hookimpl
def connector_core_callback(provider_key: str) -> Callback | None:
    return _declarations().CALLBACK if provider_key == KEY else None


@hookimpl
def connector_core_reconnect_policy(provider_key: str) -> ReconnectPolicy | None:
    return _declarations().RECONNECT_POLICY if provider_key == KEY else None


@hookimpl
def connector_core_connection_test(provider_key: str) -> ConnectionTest | None:
    return _declarations().CONNECTION_TEST if provider_key == KEY else None


@hookimpl
def connector_core_actions(provider_key: str) -> Sequence[Action] | None:
    return _declarations().ACTIONS if provider_key == KEY else None


@hookimpl
def connector_core_identity(provider_key: str, token_response: Mapping[str, Any]) -> Mapping[str, str] | None:
    """HiBob identifies the tenant by companyId, stable across re-installs. Where a
    token response carries it (unconfirmed; the emulator sends it), keep it."""
    if provider_key != KEY:
        return None
    for key in ("companyId", "company_id"):
        value = token_response.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return {"companyId": str(value)}
    return {}


@hookimpl
def connector_core_setup_guide(provider_key: str) -> SetupGuide | None:
    return _declarations().SETUP_GUIDE if provider_key == KEY else None


@hookimpl
def connector_core_connect_checklist(provider_key: str) -> Sequence[Procedure] | None:
    return _declarations().CONNECT_CHECKLIST if provider_key == KEY else None


@hookimpl
def connector_core_emulator(provider_key: str) -> EmulatorSpec | None:
    """HiBob's test app, generated company and API slice for the built-in emulator."""
    if provider_key != KEY:
        return None
    from .emulator import emulator_spec

    return emulator_spec()
