"""connector-core: a plugin-based connector framework.

Providers are plugins found through the ``connector_core`` entry-point group.
The stable public API is what ``__all__`` lists; everything else is internal.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._markers import hookimpl
from .commands import Command, CommandRegistry
from .crypto import CryptoError, KeyRing
from .errors import (
    ConnectorError,
    DeclarationError,
    PluginError,
    ScopeError,
    UnknownNameError,
    UsageError,
    ValidationError,
)
from .formschema import profile_form_schema
from .models import (
    Access,
    Action,
    ApiKeyAuth,
    AuthKind,
    AuthType,
    Callback,
    ClientAuthMethod,
    ConnectionTest,
    CredentialField,
    Environment,
    FieldKind,
    FieldLevel,
    HttpBasicAuth,
    Link,
    ManualStep,
    OAuth2AuthorizationCode,
    Procedure,
    Provider,
    ProviderDeclaration,
    ReconnectKind,
    ReconnectPolicy,
    Scope,
    ScopeCatalogue,
    ScopeGroup,
    SetupGuide,
    SetupStep,
)
from .plugins import LoadProblem, PluginInfo, Plugins, ProviderRegistry, load_plugins, make_plugin_manager
from .profiles import Profile, ProfileDraft, validate_profile
from .scopes import ScopeCheck, ScopeFinding, Severity, check_scopes, parse_scopes, scopes_for_actions
from .secret import Secret
from .store import KeyRotation, Store, StoreError

__all__ = [
    "Access",
    "Action",
    "ApiKeyAuth",
    "AuthKind",
    "AuthType",
    "Callback",
    "ClientAuthMethod",
    "Command",
    "CommandRegistry",
    "ConnectionTest",
    "ConnectorError",
    "CredentialField",
    "CryptoError",
    "DeclarationError",
    "Environment",
    "FieldKind",
    "FieldLevel",
    "HttpBasicAuth",
    "KeyRing",
    "KeyRotation",
    "Link",
    "LoadProblem",
    "ManualStep",
    "OAuth2AuthorizationCode",
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
    "ReconnectPolicy",
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
    "Store",
    "StoreError",
    "UnknownNameError",
    "UsageError",
    "ValidationError",
    "__version__",
    "check_scopes",
    "hookimpl",
    "load_plugins",
    "make_plugin_manager",
    "parse_scopes",
    "profile_form_schema",
    "scopes_for_actions",
    "validate_profile",
]
