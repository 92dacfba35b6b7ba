"""KeyCo, a provider of every auth type that sends no one to the provider: an API key in a
header, one in the query, and an OAuth 2.0 client credentials grant; its API is wherever
``base_url`` says (a test's fake API on 127.0.0.1)."""

from __future__ import annotations

from typing import Any

from connector_core import (
    ApiKeyAuth,
    ConnectionTest,
    CredentialField,
    Environment,
    OAuth2ClientCredentials,
    Provider,
    hookimpl,
)

__all__ = ["KeyCo"]


class KeyCo:
    """A provider with an API key in a header, one in the query, and a client credentials grant."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    @hookimpl
    def connector_core_register_providers(self, register: Any) -> None:
        register.add(Provider("keyco", "KeyCo", links=[], categories=["crm"]))

    @hookimpl
    def connector_core_auth_types(self, provider_key: str) -> Any:
        if provider_key != "keyco":
            return None
        return [
            ApiKeyAuth(
                "api_key",
                "API key",
                key_field="api_key",
                header_name="X-Api-Key",
                prefix="Key",
                rejected_guidance="Create a new key in KeyCo's settings and connect again with it.",
            ),
            ApiKeyAuth(
                "query_key", "API key in the query", key_field="query_api_key", location="query", query_name="key"
            ),
            OAuth2ClientCredentials(f"{self.base_url}/token", key="machine", label="Machine to machine"),
        ]

    @hookimpl
    def connector_core_credential_fields(self, provider_key: str) -> Any:
        if provider_key != "keyco":
            return None
        return [
            CredentialField("api_key", "API key", "api_key", kind="secret", level="user", help="Your KeyCo API key."),
            CredentialField("query_api_key", "API key", "query_key", kind="secret", level="user", help="The key."),
            CredentialField("client_id", "Client ID", "machine", help="The machine client's ID."),
            CredentialField("client_secret", "Client secret", "machine", kind="secret", help="Its secret."),
        ]

    @hookimpl
    def connector_core_environments(self, provider_key: str) -> Any:
        return [Environment("prod", "Production", "production", self.base_url)] if provider_key == "keyco" else None

    @hookimpl
    def connector_core_connection_test(self, provider_key: str) -> Any:
        return ConnectionTest("GET", "/me") if provider_key == "keyco" else None
