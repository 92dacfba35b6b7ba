"""The JSON Schemas of a provider's forms for every auth type: the profile form (app-level fields)
and the connection form an end user fills in (user-level fields)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from support import hibob

from connector_core import (
    ApiKeyAuth,
    CredentialField,
    Environment,
    OAuth2ClientCredentials,
    Provider,
    ProviderDeclaration,
    connection_form_schema,
    hookimpl,
    load_plugins,
    profile_form_schema,
)


class _Keys:
    @hookimpl
    def connector_core_register_providers(self, register: Any) -> None:
        register.add(Provider("keyco", "KeyCo", links=[], categories=["crm"]))

    @hookimpl
    def connector_core_auth_types(self, provider_key: str) -> Any:
        if provider_key != "keyco":
            return None
        return [
            ApiKeyAuth("header_key", "API key", key_field="api_key", header_name="X-Api-Key", prefix="Key",
                       rejected_guidance="Create a new key."),
            ApiKeyAuth("query_key", "Query key", key_field="query_api_key", location="query", query_name="key"),
            OAuth2ClientCredentials("https://keyco.example/token", key="machine"),
        ]  # fmt: skip

    @hookimpl
    def connector_core_credential_fields(self, provider_key: str) -> Any:
        if provider_key != "keyco":
            return None
        return [
            CredentialField("api_key", "API key", "header_key", kind="secret", level="user",
                            pattern=r"[A-Za-z0-9-]{8,64}", help="From KeyCo's settings."),
            CredentialField("query_api_key", "API key", "query_key", kind="secret", level="user", help="The key."),
            CredentialField("client_id", "Client ID", "machine", help="The client."),
            CredentialField("client_secret", "Client secret", "machine", kind="secret", help="Its secret."),
        ]  # fmt: skip

    @hookimpl
    def connector_core_environments(self, provider_key: str) -> Any:
        return (
            [Environment("prod", "Production", "production", "https://api.keyco.example")]
            if provider_key == "keyco"
            else None
        )


@pytest.fixture
def keyco() -> ProviderDeclaration:
    return load_plugins([_Keys()], entry_points=False).declaration("keyco")


def _errors(schema: dict[str, Any], value: dict[str, Any]) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(value)]


def test_the_service_user_connection_form() -> None:
    schema = connection_form_schema(hibob().declaration("hibob"), "service_user")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == "urn:connector-core:connection-form:hibob:service_user"
    assert schema["x-field-order"] == ["service_user_id", "service_user_token"]
    assert schema["required"] == ["service_user_id", "service_user_token"]
    token = schema["properties"]["service_user_token"]
    assert token["writeOnly"] is True and token["title"] == "Service user token"
    assert token["pattern"] == r"^(?:[\x21-\x7e]{8,512})$"
    user = schema["properties"]["service_user_id"]
    assert "writeOnly" not in user and user["examples"] == ["SERVICE-12345"] and user["title"] == "Service user ID"
    assert schema["x-auth-kind"] == "http_basic" and schema["x-redirects"] is False
    assert schema["x-rejected-guidance"].startswith("Reset the service user's token in Bob")
    assert _errors(schema, {"service_user_id": "SERVICE-1", "service_user_token": "Good-Token-123"}) == []
    for bad in (
        {"service_user_id": "SERVICE-1"},
        {"service_user_id": "SERVICE-1", "service_user_token": "has space inside"},
        {"service_user_id": "SERVICE-1", "service_user_token": "Good-Token-123", "client_id": "x"},
    ):
        assert _errors(schema, bad), bad


def test_the_oauth_connection_form_is_empty_and_redirects() -> None:
    schema = connection_form_schema(hibob().declaration("hibob"))
    assert schema["properties"] == {} and schema["required"] == [] and schema["x-redirects"] is True
    assert schema["x-auth-kind"] == "oauth2_authorization_code"


def test_the_service_user_profile_form_has_no_actions_and_points_at_the_connection_form() -> None:
    schema = profile_form_schema(hibob().declaration("hibob"), "service_user")
    assert schema["x-field-order"] == ["name", "environment"]
    assert schema["x-connection-fields"] == ["service_user_id", "service_user_token"]
    assert "holds no credentials of the end user's" in schema["description"]
    oauth = profile_form_schema(hibob().declaration("hibob"))
    assert "actions" in oauth["properties"] and oauth["x-connection-fields"] == [] and "description" not in oauth


def test_api_key_forms_say_where_the_key_goes(keyco: ProviderDeclaration) -> None:
    header = connection_form_schema(keyco, "header_key")
    jsonschema.Draft202012Validator.check_schema(header)
    assert header["x-api-key"] == {"location": "header", "name": "X-Api-Key", "prefix": "Key"}
    assert header["properties"]["api_key"]["writeOnly"] is True
    assert _errors(header, {"api_key": "short"}) and _errors(header, {"api_key": "Long-Enough-Key"}) == []
    query = connection_form_schema(keyco, "query_key")
    assert query["x-api-key"] == {"location": "query", "name": "key"} and "x-rejected-guidance" not in query
    assert profile_form_schema(keyco, "query_key")["x-field-order"] == ["name", "environment"]


def test_the_client_credentials_forms(keyco: ProviderDeclaration) -> None:
    profile = profile_form_schema(keyco, "machine")
    jsonschema.Draft202012Validator.check_schema(profile)
    assert profile["x-auth-kind"] == "oauth2_client_credentials"
    assert profile["x-field-order"] == ["name", "environment", "client_id", "client_secret"]
    assert profile["required"] == ["name", "environment", "client_id", "client_secret"]
    assert profile["properties"]["client_secret"]["writeOnly"] is True
    connection = connection_form_schema(keyco, "machine")
    assert connection["properties"] == {} and connection["x-redirects"] is False
