"""A built-in emulator of a provider's OAuth server and a slice of its API.

A provider plugin describes its provider with an :class:`EmulatorSpec` (hook
``connector_core_emulator``); :func:`start_emulator` serves it on a free
loopback port in a background thread, for tests and for building before a
partner account exists. See ``docs/emulator.md``.
"""

from __future__ import annotations

from .faults import Fault, FaultKind, Faults
from .running import (
    AUDIENCE_HEADER,
    COMPANY_HEADER,
    CONSENT_HEADER,
    EmulatorEndpoints,
    EmulatorError,
    RunningEmulator,
    UnexpectedError,
    start_emulator,
)
from .spec import (
    AppRegistration,
    Audience,
    EmulatedCompany,
    EmulatorSpec,
    ErrorBody,
    ResourceEndpoint,
    ResourceError,
    ResourceRequest,
    ResourceResponse,
    default_company,
    oauth_style_error_body,
)
from .state import ClientCredentials, EmulatorApp, EmulatorStats, InstallationInfo, SnapshotError

__all__ = [
    "AUDIENCE_HEADER",
    "COMPANY_HEADER",
    "CONSENT_HEADER",
    "AppRegistration",
    "Audience",
    "ClientCredentials",
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
    "ResourceEndpoint",
    "ResourceError",
    "ResourceRequest",
    "ResourceResponse",
    "RunningEmulator",
    "SnapshotError",
    "UnexpectedError",
    "default_company",
    "oauth_style_error_body",
    "start_emulator",
]
