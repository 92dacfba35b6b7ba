"""A built-in emulator of a provider's OAuth server and a slice of its API.

A provider plugin describes its provider with an :class:`EmulatorSpec` (hook
``connector_core_emulator``); :func:`start_emulator` serves it on a free
loopback port in a background thread, for tests and for building before a
partner account exists. See ``docs/emulator.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# What a plugin declares (EmulatorSpec and its records) is imported with the package;
# the server (HTTP, OAuth endpoints, state) only when something starts or inspects one.
from .spec import (
    AppRegistration,
    Audience,
    EmulatedCompany,
    EmulatorSpec,
    ErrorBody,
    PermissionGroup,
    ResourceEndpoint,
    ResourceError,
    ResourceRequest,
    ResourceResponse,
    default_company,
    oauth_style_error_body,
)

_LAZY = {
    "Fault": ".faults",
    "FaultKind": ".faults",
    "Faults": ".faults",
    "AUDIENCE_HEADER": ".running",
    "COMPANY_HEADER": ".running",
    "CONSENT_HEADER": ".running",
    "EmulatorEndpoints": ".running",
    "EmulatorError": ".running",
    "IssuedCredentials": ".running",
    "RunningEmulator": ".running",
    "SpecSource": ".running",
    "UnexpectedError": ".running",
    "start_emulator": ".running",
    "ClientCredentials": ".state",
    "CredentialInfo": ".state",
    "EmulatorApp": ".state",
    "EmulatorStats": ".state",
    "InstallationInfo": ".state",
    "SnapshotError": ".state",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)

if TYPE_CHECKING:
    from .faults import Fault, FaultKind, Faults
    from .running import (
        AUDIENCE_HEADER,
        COMPANY_HEADER,
        CONSENT_HEADER,
        EmulatorEndpoints,
        EmulatorError,
        IssuedCredentials,
        RunningEmulator,
        SpecSource,
        UnexpectedError,
        start_emulator,
    )
    from .state import ClientCredentials, CredentialInfo, EmulatorApp, EmulatorStats, InstallationInfo, SnapshotError

__all__ = [
    "AUDIENCE_HEADER",
    "COMPANY_HEADER",
    "CONSENT_HEADER",
    "AppRegistration",
    "Audience",
    "ClientCredentials",
    "CredentialInfo",
    "EmulatedCompany",
    "EmulatorApp",
    "EmulatorEndpoints",
    "EmulatorError",
    "EmulatorSpec",
    "EmulatorStats",
    "ErrorBody",
    "Fault",
    "FaultKind",
    "Faults",
    "InstallationInfo",
    "IssuedCredentials",
    "PermissionGroup",
    "ResourceEndpoint",
    "ResourceError",
    "ResourceRequest",
    "ResourceResponse",
    "RunningEmulator",
    "SnapshotError",
    "SpecSource",
    "UnexpectedError",
    "default_company",
    "oauth_style_error_body",
    "start_emulator",
]
