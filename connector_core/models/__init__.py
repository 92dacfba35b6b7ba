"""What a provider declares, as frozen, validated attrs records.

Plugins build these and hand them to the core through the hooks in
:mod:`connector_core.hookspecs`. Every record validates itself when it is built:
a bad declaration fails at once with a :class:`~connector_core.errors.DeclarationError`
naming the record, the field and what was expected, instead of misbehaving later
in a connect flow. Records are immutable; derive changed copies with
:func:`attrs.evolve`. Serialisation lives in :mod:`connector_core.serialize`.

Building an attrs class costs about half a millisecond, so the records live in
modules by what needs them and are imported on first use: ``providers list`` builds
only :class:`Provider` and :class:`Link`, a scope check only the catalogue's three.
Import them from here (or from :mod:`connector_core`), never from the private modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ._base import (
    CALLBACK_PATH_RE,
    ENDPOINT_NAMES,
    FIELD_NAME_RE,
    HTTP_METHODS,
    KEY_RE,
    PROFILE_OPTIONS,
    PROVIDER_KEY_RE,
    SCOPE_SEPARATORS,
    SCOPE_TOKEN_RE,
    Access,
    ApiKeyLocation,
    AuthKind,
    ClientAuthMethod,
    FieldKind,
    FieldLevel,
    ReconnectKind,
    is_loopback_host,
    url_problem,
)
from ._provider import Link, Provider

if TYPE_CHECKING:
    from ._auth import (
        AUTH_TYPE_CLASSES,
        ApiKeyAuth,
        AuthType,
        CredentialField,
        HttpBasicAuth,
        OAuth2AuthorizationCode,
        OAuth2ClientCredentials,
    )
    from ._declaration import (
        Action,
        Callback,
        ConnectionTest,
        Environment,
        ManualStep,
        Procedure,
        ProviderDeclaration,
        ReconnectPolicy,
        SetupGuide,
        SetupStep,
    )
    from ._scopes import Scope, ScopeCatalogue, ScopeGroup

__all__ = [
    "AUTH_TYPE_CLASSES",
    "CALLBACK_PATH_RE",
    "ENDPOINT_NAMES",
    "FIELD_NAME_RE",
    "HTTP_METHODS",
    "KEY_RE",
    "PROFILE_OPTIONS",
    "PROVIDER_KEY_RE",
    "SCOPE_SEPARATORS",
    "SCOPE_TOKEN_RE",
    "Access",
    "Action",
    "ApiKeyAuth",
    "ApiKeyLocation",
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
    "OAuth2ClientCredentials",
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
    "is_loopback_host",
    "url_problem",
]

_LAZY = {
    **dict.fromkeys(
        (
            "AUTH_TYPE_CLASSES",
            "ApiKeyAuth",
            "AuthType",
            "CredentialField",
            "HttpBasicAuth",
            "OAuth2AuthorizationCode",
            "OAuth2ClientCredentials",
        ),
        "._auth",
    ),
    **dict.fromkeys(("Scope", "ScopeCatalogue", "ScopeGroup"), "._scopes"),
    **dict.fromkeys(
        (
            "Action",
            "Callback",
            "ConnectionTest",
            "Environment",
            "ManualStep",
            "Procedure",
            "ProviderDeclaration",
            "ReconnectPolicy",
            "SetupGuide",
            "SetupStep",
        ),
        "._declaration",
    ),
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
