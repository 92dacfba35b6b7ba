"""The HiBob plugin encodes the reference document and the provider facts."""

from __future__ import annotations

import pytest

from connector_core import (
    ClientAuthMethod,
    FieldKind,
    FieldLevel,
    HttpBasicAuth,
    OAuth2AuthorizationCode,
    Plugins,
    ReconnectKind,
    load_plugins,
)

DEFAULTS = {
    "employee_data:read",
    "employee_data:write",
    "employee_data.history:read",
    "company.metadata:read",
    "company.metadata:write",
    "documents:read",
    "documents:write",
    "reports:read",
    "tasks:write",
    "timeoff:read",
    "timeoff:write",
}
ALL_27 = DEFAULTS | {
    "employee_data.sensitive:read",
    "employee_data.sensitive:write",
    "employee_data.sensitive.history:read",
    "timeoff.sensitive:read",
    "goals:read",
    "goals:write",
    "hiring:write",
    "job_catalog:read",
    "attendance:write",
    "workforce_planning:read",
    "workforce_planning:write",
    "learning.integrations:write",
    "projects:write",
    "payrollhub.employee_sync:write",
    "payrollhub.payroll:read",
    "payrollhub.deductions:write",
}


def test_the_core_holds_no_hibob_code() -> None:
    from pathlib import Path

    import connector_core

    core = Path(connector_core.__file__).parent
    for path in core.rglob("*.py"):
        assert "hibob" not in path.read_text().lower(), path


def test_scope_catalogue(hibob_plugins: Plugins) -> None:
    catalogue = hibob_plugins.declaration("hibob").scope_catalogue
    assert catalogue is not None
    assert len(ALL_27) == 27
    assert set(catalogue.names) == ALL_27
    assert set(catalogue.default_scopes) == DEFAULTS
    assert catalogue.minimum_scopes == ("employee_data:read",)
    for name in (
        "employee_data.sensitive:read",
        "employee_data.sensitive:write",
        "employee_data.sensitive.history:read",
    ):
        scope = catalogue.get(name)
        assert scope is not None
        assert scope.sensitive
        group = catalogue.group_of(name)
        assert group is not None
        assert "payroll or compensation" in group.description
    modules = {n: s.module for n in catalogue.names if (s := catalogue.get(n)) and s.module}
    assert modules["goals:read"] == "Talent module"
    assert modules["hiring:write"] == "Hiring module"
    assert modules["attendance:write"] == "Attendance module"
    assert modules["workforce_planning:write"] == "Workforce Planning module"
    assert "Job Catalogue" in modules["job_catalog:read"]
    tasks, hiring = catalogue.get("tasks:write"), catalogue.get("hiring:write")
    assert tasks is not None
    assert "even to list" in tasks.notes[0]
    assert hiring is not None
    assert "reads included" in hiring.notes[0]


def test_auth_types_and_fields(hibob_plugins: Plugins) -> None:
    decl = hibob_plugins.declaration("hibob")
    oauth, basic = decl.auth_types
    assert isinstance(oauth, OAuth2AuthorizationCode)
    assert isinstance(basic, HttpBasicAuth)
    assert oauth.authorize_url == "https://auth.app.hibob.com/oauth2/v1/apps/authorize"
    assert oauth.token_url == "https://auth.app.hibob.com/oauth2/v1/apps/token"
    assert oauth.client_auth_method is ClientAuthMethod.CLIENT_SECRET_BASIC
    assert oauth.scope_separator == " "
    assert oauth.pkce
    assert oauth.revocation_url is None
    fields = {f.name: f for f in decl.fields_for("oauth2")}
    assert list(fields) == ["app_id", "client_id", "client_secret", "scopes"]
    assert [f.label for f in fields.values()] == ["App ID", "Client ID", "Client Secret", "OAuth Scopes"]
    assert fields["client_secret"].kind is FieldKind.SECRET
    assert fields["scopes"].kind is FieldKind.SCOPE_LIST
    assert not fields["scopes"].required
    assert all(f.level is FieldLevel.APP and f.help for f in fields.values())
    service = {f.name: f for f in decl.fields_for("service_user")}
    assert basic.username_field in service
    assert service[basic.password_field].secret
    assert service["service_user_id"].check("SERVICE-1234") == "SERVICE-1234"


def test_unconfirmed_values_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    from connector_hibob import plugin

    monkeypatch.setenv("HIBOB_OAUTH_PKCE", "0")
    monkeypatch.setenv("HIBOB_OAUTH_REVOCATION_URL", "https://auth.app.hibob.com/oauth2/v1/apps/revoke")
    monkeypatch.setenv("HIBOB_SANDBOX_AUTH_HOST", "https://auth.sandbox.example")
    decl = load_plugins([plugin], entry_points=False).declaration("hibob")
    oauth = decl.auth_type("oauth2")
    assert isinstance(oauth, OAuth2AuthorizationCode)
    assert oauth.pkce is False
    assert oauth.revocation_url == "https://auth.app.hibob.com/oauth2/v1/apps/revoke"
    assert decl.environment("sandbox").token_url == "https://auth.sandbox.example/oauth2/v1/apps/token"
    assert decl.environment("production").token_url is None


def test_environments(hibob_plugins: Plugins) -> None:
    decl = hibob_plugins.declaration("hibob")
    sandbox, production = decl.environment("sandbox"), decl.environment("production")
    assert decl.environment() is sandbox
    assert (sandbox.credential_set, sandbox.api_base_url) == ("development", "https://api.sandbox.hibob.com/v1")
    assert (production.credential_set, production.api_base_url) == ("production", "https://api.hibob.com/v1")


def test_callback_url_equals_the_reference_document(hibob_plugins: Plugins) -> None:
    assert hibob_plugins.callback_url("hibob") == "https://api.stackone.com/connect/oauth2/hibob/callback"
    decl = hibob_plugins.declaration("hibob")
    assert decl.callback is not None
    assert decl.callback.path == "/connect/oauth2/hibob/callback"


def test_reconnect_policy(hibob_plugins: Plugins) -> None:
    policy = hibob_plugins.declaration("hibob").reconnect_policy
    assert policy is not None
    assert policy.kind is ReconnectKind.UNINSTALL_THEN_REAUTHORIZE
    (bob,) = policy.procedures_for("production")
    texts = [s.text for s in bob.steps]
    assert texts[1].startswith("Open Marketplace from the waffle menu")
    assert bob.steps[1].location == "top-left corner"
    assert texts[-1] == "Click Uninstall."
    assert bob.steps[-1].location == "left side of the app's detail view"
    portal = policy.procedures_for("sandbox")[1]
    assert "Development Credentials" in " ".join(s.text for s in portal.steps)


def test_the_connect_checklist_has_one_procedure_per_auth_type(hibob_plugins: Plugins) -> None:
    decl = hibob_plugins.declaration("hibob")
    assert [(p.auth_types, p.environments) for p in decl.connect_checklist] == [
        (("oauth2",), ()),
        (("service_user",), ()),
    ]
    install, service_user = decl.connect_checklist
    for env in ("sandbox", "production"):
        assert decl.checklist_for(env, "oauth2") == (install,)
        assert decl.checklist_for(env, "service_user") == (service_user,)
    install_text = " ".join(s.text for s in install.steps)
    assert install.title == "Install the app in Bob"
    assert "install the app" in install_text
    assert "audience" in install_text
    assert "no partial grant" in install_text
    assert "Uninstall" not in install_text  # the reconnect policy's, not the checklist's
    user_text = " ".join(s.text for s in service_user.steps)
    assert service_user.title == "Create a service user in Bob"
    assert service_user.steps[1].location == "Bob → Settings → Integrations → Service users"
    assert "permission group" in user_text and "no permissions" in user_text
    assert "SERVICE-" in user_text and "only once" in user_text
    # The service user's credential fields point at the same place in Bob.
    assert "Settings → Integrations → Service users" in decl.fields_for("service_user")[0].help


def test_connection_test_and_actions(hibob_plugins: Plugins) -> None:
    decl = hibob_plugins.declaration("hibob")
    assert decl.connection_test is not None
    assert (decl.connection_test.method, decl.connection_test.path) == ("POST", "/people/search")
    actions = {a.key: a.scopes for a in decl.actions}
    assert actions["list_tasks"] == ("tasks:write",)
    assert actions["complete_task"] == ("tasks:write",)
    assert actions["list_job_ads"] == ("hiring:write",)
    assert actions["create_time_off_request"] == ("timeoff:write",)
    assert actions["upload_document"] == ("documents:write",)
    assert {"list_employees", "list_time_off_requests", "list_documents"} <= set(actions)


def test_setup_guide(hibob_plugins: Plugins) -> None:
    guide = hibob_plugins.declaration("hibob").setup_guide
    assert guide is not None
    steps = {s.key: s for s in guide.steps}
    assert "Tech Partner" in steps["apply_partnership"].title
    assert steps["marketplace_listing"].optional
    assert not any(s.optional for k, s in steps.items() if k != "marketplace_listing")
    assert any("Redirect URI" in d for d in steps["redirect_uri"].details)


def test_identity_is_the_company_id(hibob_plugins: Plugins) -> None:
    assert hibob_plugins.identity("hibob", {"companyId": 12345, "access_token": "x"}) == {"companyId": "12345"}
    assert hibob_plugins.identity("hibob", {"company_id": "c-9"}) == {"companyId": "c-9"}
    assert hibob_plugins.identity("hibob", {}) == {}


def test_installs_may_begin_in_bob(hibob_plugins: Plugins) -> None:
    oauth = hibob_plugins.declaration("hibob").auth_type("oauth2")
    assert isinstance(oauth, OAuth2AuthorizationCode) and oauth.provider_initiated_install
