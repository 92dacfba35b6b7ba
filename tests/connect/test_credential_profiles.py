"""validate_profile() and Connector.test() for an auth type whose connections hold the end user's credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import hibob

from connector_core import (
    ApiKeyAuth,
    Connector,
    CredentialField,
    Environment,
    Provider,
    ScopeError,
    hookimpl,
    load_plugins,
    validate_profile,
)
from connector_core.testing import isolated_store


def test_a_service_user_profile_has_no_values_and_no_scopes() -> None:
    draft = validate_profile(hibob().declaration("hibob"), name="su", auth_type="service_user")
    assert (draft.auth_type, draft.environment, draft.credential_set) == ("service_user", "sandbox", "development")
    assert draft.values == () and draft.secrets == () and draft.scopes == () and draft.actions == ()
    assert draft.warnings == ()


@pytest.mark.parametrize(("option", "value"), [("scopes", ["tasks:write"]), ("actions", ["list_tasks"])])
def test_a_service_user_profile_refuses_scopes_and_actions(option: str, value: list[str]) -> None:
    with pytest.raises(ScopeError) as caught:
        validate_profile(hibob().declaration("hibob"), name="su", auth_type="service_user", **{option: value})
    assert caught.value.field == option
    assert "service_user (http_basic) profiles request no OAuth scopes" in caught.value.message


def test_an_oauth_profile_still_gets_the_default_scopes() -> None:
    values = {"app_id": "A", "client_id": "c", "client_secret": "Client-Secret-123"}
    draft = validate_profile(hibob().declaration("hibob"), name="o", values=values)
    assert len(draft.scopes) == 11


class _NoTest:
    """A provider with an API key and no connection test."""

    @hookimpl
    def connector_core_register_providers(self, register: Any) -> None:
        register.add(Provider("plainkey", "PlainKey", links=[], categories=["crm"]))

    @hookimpl
    def connector_core_auth_types(self, provider_key: str) -> Any:
        return [ApiKeyAuth("api_key", "API key", key_field="api_key")] if provider_key == "plainkey" else None

    @hookimpl
    def connector_core_credential_fields(self, provider_key: str) -> Any:
        if provider_key != "plainkey":
            return None
        return [CredentialField("api_key", "API key", "api_key", kind="secret", level="user", help="The key.")]

    @hookimpl
    def connector_core_environments(self, provider_key: str) -> Any:
        return (
            [Environment("prod", "Production", "production", "https://api.plainkey.example")]
            if provider_key == "plainkey"
            else None
        )


def test_testing_a_credential_connection_of_a_provider_without_a_connection_test(tmp_path: Path) -> None:
    plugins = load_plugins([_NoTest()], entry_points=False)
    store = isolated_store(tmp_path)
    store.create_profile(validate_profile(plugins.declaration("plainkey"), name="k"))
    connector = Connector(store, plugins)
    conn = connector.connect("k", {"api_key": "Key-12345678"}).connection
    result = connector.test(conn.id)
    assert result.ok and result.status == 0
    assert result.detail == "the provider declares no connection test; the credentials are stored, not tried"
