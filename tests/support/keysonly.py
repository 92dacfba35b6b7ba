"""``keysonly``: a test provider whose only auth type is an API key: no OAuth, no scope
catalogue. The emulator serves it all the same (no authorization endpoint), and the kit
checks its one auth type."""

from __future__ import annotations

from collections.abc import Sequence

from connector_core import (
    ApiKeyAuth,
    AuthType,
    ConnectionTest,
    CredentialField,
    Environment,
    Provider,
    ProviderRegistry,
    SetupGuide,
    SetupStep,
    hookimpl,
)
from connector_core.emulator import AppRegistration, EmulatorSpec, ResourceEndpoint, ResourceRequest, ResourceResponse

KEY = "keysonly"
API_KEY = "api_key"


def me(request: ResourceRequest) -> ResourceResponse:
    return ResourceResponse(json={"key": request.client_id, "company": request.company.id})


@hookimpl
def connector_core_register_providers(register: ProviderRegistry) -> None:
    register.add(Provider(key=KEY, display_name="Keys Only", description="A test provider with API keys alone."))


@hookimpl
def connector_core_auth_types(provider_key: str) -> Sequence[AuthType] | None:
    if provider_key != KEY:
        return None
    return (ApiKeyAuth(key=API_KEY, label="API key", key_field="api_key", header_name="X-Api-Key"),)


@hookimpl
def connector_core_credential_fields(provider_key: str) -> Sequence[CredentialField] | None:
    if provider_key != KEY:
        return None
    return (
        CredentialField(
            name="api_key", label="API key", auth_type=API_KEY, kind="secret", level="user", help="From Settings."
        ),
    )


@hookimpl
def connector_core_environments(provider_key: str) -> Sequence[Environment] | None:
    if provider_key != KEY:
        return None
    return (
        Environment(
            key="live",
            label="Live",
            credential_set="live",
            credential_set_label="Live keys",
            api_base_url="https://api.keysonly.example/v2",
        ),
    )


@hookimpl
def connector_core_connection_test(provider_key: str) -> ConnectionTest | None:
    return ConnectionTest("GET", "/me") if provider_key == KEY else None


@hookimpl
def connector_core_setup_guide(provider_key: str) -> SetupGuide | None:
    return SetupGuide("Get a key", (SetupStep("key", "Create an API key"),)) if provider_key == KEY else None


@hookimpl
def connector_core_emulator(provider_key: str) -> EmulatorSpec | None:
    if provider_key != KEY:
        return None
    return EmulatorSpec(
        app=AppRegistration(app_id="keysonly-app", name="Keys Only"),
        resources=(ResourceEndpoint("GET", "/me", ("me",), me),),
    )
