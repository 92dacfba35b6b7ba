"""connector-core: a plugin-based connector framework.

Providers are plugins found through the ``connector_core`` entry-point group.
The stable public API is what ``__all__`` lists; everything else is internal.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from ._markers import hookimpl
from .errors import (
    ConnectorError,
    DeclarationError,
    PluginError,
    ScopeError,
    UnknownNameError,
    UsageError,
    ValidationError,
)
from .models import (
    Access,
    AuthKind,
    ClientAuthMethod,
    FieldKind,
    FieldLevel,
    Link,
    Provider,
    ReconnectKind,
)
from .plugins import LoadProblem, PluginInfo, Plugins, ProviderRegistry, load_plugins, make_plugin_manager
from .secret import Secret

# Names whose modules pull in heavier dependencies (sqlite3, cryptography, httpx,
# oauthlib) or build many classes are imported on first use, so discovery commands stay fast.
_LAZY = {
    # Declaration records: building attrs classes is the costliest part of importing
    # the core, so each group of them is built when first used (see connector_core.models).
    "Action": ".models",
    "ApiKeyAuth": ".models",
    "AuthType": ".models",
    "Callback": ".models",
    "ConnectionTest": ".models",
    "CredentialField": ".models",
    "Environment": ".models",
    "HttpBasicAuth": ".models",
    "ManualStep": ".models",
    "OAuth2AuthorizationCode": ".models",
    "Procedure": ".models",
    "ProviderDeclaration": ".models",
    "ReconnectPolicy": ".models",
    "Scope": ".models",
    "ScopeCatalogue": ".models",
    "ScopeGroup": ".models",
    "SetupGuide": ".models",
    "SetupStep": ".models",
    "start_emulator": ".emulator",
    "RunningEmulator": ".emulator",
    "EmulatorSpec": ".emulator",
    "EmulatorEndpoints": ".emulator",
    "EmulatorError": ".emulator",
    "AppRegistration": ".emulator",
    "Audience": ".emulator",
    "EmulatedCompany": ".emulator",
    "ResourceEndpoint": ".emulator",
    "ResourceRequest": ".emulator",
    "ResourceResponse": ".emulator",
    "ResourceError": ".emulator",
    "Fault": ".emulator",
    "FaultKind": ".emulator",
    "Command": ".commands",
    "CommandRegistry": ".commands",
    "ScopeCheck": ".scopes",
    "ScopeFinding": ".scopes",
    "Severity": ".scopes",
    "check_scopes": ".scopes",
    "parse_scopes": ".scopes",
    "scopes_for_actions": ".scopes",
    "AlreadyInstalled": ".connector",
    "AuthorizationStart": ".connector",
    "ConfirmationRequired": ".connector",
    "ConnectResult": ".connector",
    "ConnectionAuth": ".connector",
    "Connector": ".connector",
    "ReconnectPlan": ".connector",
    "ReconnectRequired": ".connector",
    "RequestFailed": ".connector",
    "RevokeResult": ".connector",
    "TestResult": ".connector",
    "Connection": ".connection",
    "ConnectionEvent": ".connection",
    "ConnectionStatus": ".connection",
    "CryptoError": ".crypto",
    "KeyRing": ".crypto",
    "KeyRotation": ".store",
    "Store": ".store",
    "StoreError": ".store",
    "Profile": ".profiles",
    "ProfileDraft": ".profiles",
    "validate_profile": ".profiles",
    "profile_form_schema": ".formschema",
    "RefreshReport": ".bulk",
    "arefresh_all": ".bulk",
    "refresh_all": ".bulk",
    "AccessDenied": ".oauth",
    "InvalidClient": ".oauth",
    "InvalidGrant": ".oauth",
    "OAuthError": ".oauth",
    "StateError": ".oauth",
    "TokenSet": ".oauth",
    "TransientError": ".oauth",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'connector_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from .bulk import RefreshReport, arefresh_all, refresh_all
    from .commands import Command, CommandRegistry
    from .connection import Connection, ConnectionEvent, ConnectionStatus
    from .connector import (
        AlreadyInstalled,
        AuthorizationStart,
        ConfirmationRequired,
        ConnectionAuth,
        Connector,
        ConnectResult,
        ReconnectPlan,
        ReconnectRequired,
        RequestFailed,
        RevokeResult,
        TestResult,
    )
    from .crypto import CryptoError, KeyRing
    from .emulator import (
        AppRegistration,
        Audience,
        EmulatedCompany,
        EmulatorEndpoints,
        EmulatorError,
        EmulatorSpec,
        Fault,
        FaultKind,
        ResourceEndpoint,
        ResourceError,
        ResourceRequest,
        ResourceResponse,
        RunningEmulator,
        start_emulator,
    )
    from .formschema import profile_form_schema
    from .models import (
        Action,
        ApiKeyAuth,
        AuthType,
        Callback,
        ConnectionTest,
        CredentialField,
        Environment,
        HttpBasicAuth,
        ManualStep,
        OAuth2AuthorizationCode,
        Procedure,
        ProviderDeclaration,
        ReconnectPolicy,
        Scope,
        ScopeCatalogue,
        ScopeGroup,
        SetupGuide,
        SetupStep,
    )
    from .oauth import AccessDenied, InvalidClient, InvalidGrant, OAuthError, StateError, TokenSet, TransientError
    from .profiles import Profile, ProfileDraft, validate_profile
    from .scopes import ScopeCheck, ScopeFinding, Severity, check_scopes, parse_scopes, scopes_for_actions
    from .store import KeyRotation, Store, StoreError

__all__ = [
    "Access",
    "AccessDenied",
    "Action",
    "AlreadyInstalled",
    "ApiKeyAuth",
    "AppRegistration",
    "Audience",
    "AuthKind",
    "AuthType",
    "AuthorizationStart",
    "Callback",
    "ClientAuthMethod",
    "Command",
    "CommandRegistry",
    "ConfirmationRequired",
    "ConnectResult",
    "Connection",
    "ConnectionAuth",
    "ConnectionEvent",
    "ConnectionStatus",
    "ConnectionTest",
    "Connector",
    "ConnectorError",
    "CredentialField",
    "CryptoError",
    "DeclarationError",
    "EmulatedCompany",
    "EmulatorEndpoints",
    "EmulatorError",
    "EmulatorSpec",
    "Environment",
    "Fault",
    "FaultKind",
    "FieldKind",
    "FieldLevel",
    "HttpBasicAuth",
    "InvalidClient",
    "InvalidGrant",
    "KeyRing",
    "KeyRotation",
    "Link",
    "LoadProblem",
    "ManualStep",
    "OAuth2AuthorizationCode",
    "OAuthError",
    "PluginError",
    "PluginInfo",
    "Plugins",
    "Procedure",
    "Profile",
    "ProfileDraft",
    "Provider",
    "ProviderDeclaration",
    "ProviderRegistry",
    "ReconnectKind",
    "ReconnectPlan",
    "ReconnectPolicy",
    "ReconnectRequired",
    "RefreshReport",
    "RequestFailed",
    "ResourceEndpoint",
    "ResourceError",
    "ResourceRequest",
    "ResourceResponse",
    "RevokeResult",
    "RunningEmulator",
    "Scope",
    "ScopeCatalogue",
    "ScopeCheck",
    "ScopeError",
    "ScopeFinding",
    "ScopeGroup",
    "Secret",
    "SetupGuide",
    "SetupStep",
    "Severity",
    "StateError",
    "Store",
    "StoreError",
    "TestResult",
    "TokenSet",
    "TransientError",
    "UnknownNameError",
    "UsageError",
    "ValidationError",
    "__version__",
    "arefresh_all",
    "check_scopes",
    "hookimpl",
    "load_plugins",
    "make_plugin_manager",
    "parse_scopes",
    "profile_form_schema",
    "refresh_all",
    "scopes_for_actions",
    "start_emulator",
    "validate_profile",
]
