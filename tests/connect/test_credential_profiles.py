"""validate_profile() for an auth type whose connections hold the end user's credentials."""

from __future__ import annotations

import pytest
from support import hibob

from connector_core import ScopeError, validate_profile


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
