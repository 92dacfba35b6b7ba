"""``multiauth``: a small test provider, as a Python plugin, with every kind of auth type.

Besides the OAuth 2.0 authorization code grant it declares the kinds HiBob does not:
an API key in a header with a prefix (``Authorization: Token KEY``), an API key in the
query (``?api_key=KEY``), HTTP Basic (app-independent username and password), and the
OAuth 2.0 client credentials grant. Its emulator has two permission groups and three
endpoints, so the suite can test each auth type end to end against the generic emulator
without anything of HiBob.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connector_core import (
    ApiKeyAuth,
    AuthType,
    Callback,
    ConnectionTest,
    CredentialField,
    Environment,
    HttpBasicAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    Provider,
    ProviderRegistry,
    ReconnectPolicy,
    Scope,
    ScopeCatalogue,
    ScopeGroup,
    SetupGuide,
    SetupStep,
    hookimpl,
)
from connector_core.emulator import (
    AppRegistration,
    EmulatorSpec,
    PermissionGroup,
    ResourceEndpoint,
    ResourceRequest,
    ResourceResponse,
)

KEY = "multiauth"
OAUTH2 = "oauth2"
CLIENT_CREDENTIALS = "client_credentials"
HEADER_KEY = "header_key"
QUERY_KEY = "query_key"
BASIC = "basic"
#: The auth types a connection is made with Connector.connect() (no one is sent to the provider).
DIRECT = (CLIENT_CREDENTIALS, HEADER_KEY, QUERY_KEY, BASIC)
#: The user-level auth types (the end user gives the credential).
USER_LEVEL = (HEADER_KEY, QUERY_KEY, BASIC)
#: The query parameter the query API key travels in.
QUERY_NAME = "api_key"
GUIDANCE = "Create a new key in Multiauth's admin console and connect again with it."

_AUTH = "https://auth.multiauth.example"


def _auth_types() -> tuple[AuthType, ...]:
    return (
        OAuth2AuthorizationCode(
            key=OAUTH2,
            label="OAuth 2.0",
            authorize_url=f"{_AUTH}/authorize",
            token_url=f"{_AUTH}/token",
            revocation_url=f"{_AUTH}/revoke",
        ),
        OAuth2ClientCredentials(
            token_url=f"{_AUTH}/token",
            label="OAuth 2.0 client credentials",
            rejected_guidance="Check the client's credentials in Multiauth's admin console.",
        ),
        ApiKeyAuth(
            key=HEADER_KEY,
            label="API key (header)",
            key_field="header_api_key",
            header_name="Authorization",
            prefix="Token",
            rejected_guidance=GUIDANCE,
        ),
        ApiKeyAuth(
            key=QUERY_KEY,
            label="API key (query)",
            key_field="query_api_key",
            location="query",
            query_name=QUERY_NAME,
            rejected_guidance=GUIDANCE,
        ),
        HttpBasicAuth(
            key=BASIC,
            label="Username and password",
            username_field="username",
            password_field="password",
            rejected_guidance="Check the username and reset the password in Multiauth's admin console.",
        ),
    )


def _field(name: str, auth_type: str, **kw: Any) -> CredentialField:
    base = {"label": name.replace("_", " ").capitalize(), "help": f"The {name.replace('_', ' ')} from Multiauth."}
    return CredentialField(name=name, auth_type=auth_type, **{**base, **kw})


CREDENTIAL_FIELDS = (
    _field("client_id", OAUTH2),
    _field("client_secret", OAUTH2, kind="secret"),
    _field("client_id", CLIENT_CREDENTIALS),
    _field("client_secret", CLIENT_CREDENTIALS, kind="secret"),
    _field("header_api_key", HEADER_KEY, kind="secret", level="user", pattern=r"[A-Za-z0-9_-]{16,128}"),
    _field("query_api_key", QUERY_KEY, kind="secret", level="user", pattern=r"[A-Za-z0-9_-]{16,128}"),
    _field("username", BASIC, level="user", pattern=r"mu-[0-9]{6}", placeholder="mu-123456"),
    _field("password", BASIC, kind="secret", level="user"),
)

CATALOGUE = ScopeCatalogue(
    groups=(
        ScopeGroup(
            key="things",
            label="Things",
            description="The account's things.",
            scopes=(
                Scope("things:read", "Read things.", "read"),
                Scope("things:write", "Create things.", "write"),
            ),
        ),
    ),
    default_scopes=("things:read",),
    minimum_scopes=("things:read",),
)


def me(request: ResourceRequest) -> ResourceResponse:
    return ResourceResponse(json={"company": request.company.id, "client": request.client_id})


def list_things(request: ResourceRequest) -> ResourceResponse:
    return ResourceResponse(json={"things": [{"id": 1, "name": "first"}], "scopes": sorted(request.scopes)})


def add_thing(request: ResourceRequest) -> ResourceResponse:
    return ResourceResponse(201, {"added": request.json_body()})


def emulator_spec() -> EmulatorSpec:
    return EmulatorSpec(
        app=AppRegistration(app_id="multiauth-test-app", name="Multiauth test app"),
        resources=(
            ResourceEndpoint("GET", "/me", ("things:read",), me),
            ResourceEndpoint("GET", "/things", ("things:read",), list_things),
            ResourceEndpoint("POST", "/things", ("things:write",), add_thing),
        ),
        single_installation=False,
        permission_groups=(
            PermissionGroup("readers", "Readers", ("things:read",)),
            PermissionGroup("writers", "Writers", ("things:read", "things:write")),
        ),
        credential_username_prefix="mu-",
    )


@hookimpl
def connector_core_register_providers(register: ProviderRegistry) -> None:
    register.add(Provider(key=KEY, display_name="Multiauth", description="A test provider with every auth type."))


@hookimpl
def connector_core_auth_types(provider_key: str) -> Sequence[AuthType] | None:
    return _auth_types() if provider_key == KEY else None


@hookimpl
def connector_core_credential_fields(provider_key: str) -> Sequence[CredentialField] | None:
    return CREDENTIAL_FIELDS if provider_key == KEY else None


@hookimpl
def connector_core_environments(provider_key: str) -> Sequence[Environment] | None:
    if provider_key != KEY:
        return None
    return (
        Environment(
            key="sandbox",
            label="Sandbox",
            credential_set="sandbox",
            credential_set_label="Sandbox credentials",
            api_base_url="https://sandbox.api.multiauth.example/v1",
            default=True,
        ),
        Environment(
            key="production",
            label="Production",
            credential_set="production",
            credential_set_label="Production credentials",
            api_base_url="https://api.multiauth.example/v1",
        ),
    )


@hookimpl
def connector_core_scope_catalogue(provider_key: str) -> ScopeCatalogue | None:
    return CATALOGUE if provider_key == KEY else None


@hookimpl
def connector_core_callback(provider_key: str) -> Callback | None:
    return Callback(path="/connect/oauth2/multiauth/callback") if provider_key == KEY else None


@hookimpl
def connector_core_reconnect_policy(provider_key: str) -> ReconnectPolicy | None:
    return ReconnectPolicy("reauthorize", "Authorize again.") if provider_key == KEY else None


@hookimpl
def connector_core_connection_test(provider_key: str) -> ConnectionTest | None:
    return ConnectionTest("GET", "/me", "things:read") if provider_key == KEY else None


@hookimpl
def connector_core_setup_guide(provider_key: str) -> SetupGuide | None:
    if provider_key != KEY:
        return None
    return SetupGuide("Get credentials", (SetupStep("console", "Open Multiauth's admin console"),))


@hookimpl
def connector_core_emulator(provider_key: str) -> EmulatorSpec | None:
    return emulator_spec() if provider_key == KEY else None
