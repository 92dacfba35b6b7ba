"""The conformance kit catches each defect it claims to.

A small, correct plugin (``GOOD``, with an emulator) passes every check. Each
broken variant appends one defect to it (a later ``def`` of a hook replaces the
earlier one) and runs ``ProviderConformance`` on it in an inner pytest session:
the check named for the defect fails with a message naming it, and where the
models cannot see the defect, every other check still passes.
"""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
import textwrap

import pytest
from support import REPO

from connector_core import load_plugins
from connector_core.testing import checks
from connector_core.testing.harness import find_plugin

pytest_plugins = ["pytester"]

# pytester's inline runs forget the modules first imported inside them; cryptography's Rust
# bindings cannot be imported twice in one process, so its Python side is imported here, once.
importlib.import_module("cryptography.hazmat.primitives.hashes")
importlib.import_module("cryptography.hazmat.primitives.kdf.hkdf")
importlib.import_module("cryptography.hazmat.primitives.ciphers.aead")

GOOD = """
from connector_core import (
    Action, Callback, ConnectionTest, CredentialField, Environment, ManualStep, OAuth2AuthorizationCode,
    Procedure, Provider, ReconnectPolicy, Scope, ScopeCatalogue, ScopeGroup, SetupGuide, SetupStep, hookimpl,
)
from connector_core.emulator import AppRegistration, EmulatorSpec, ResourceEndpoint, ResourceResponse

KEY = "acme"

def oauth(**kw):
    base = dict(
        authorize_url="https://auth.acme.example/authorize",
        token_url="https://auth.acme.example/token",
        revocation_url="https://auth.acme.example/revoke",
    )
    return OAuth2AuthorizationCode(**{**base, **kw})

def field(name, **kw):
    base = dict(label=name.replace("_", " ").title(), auth_type="oauth2", help=f"The {name} of your app.")
    return CredentialField(name=name, **{**base, **kw})

def env(key, **kw):
    base = dict(
        label=key.title(), credential_set=key, credential_set_label=f"{key.title()} credentials",
        api_base_url=f"https://{key}.api.acme.example/v1",
    )
    return Environment(key=key, **{**base, **kw})

def group(key, scopes, **kw):
    return ScopeGroup(key=key, label=key.title(), scopes=scopes, **{"description": f"{key} things.", **kw})

def catalogue(**kw):
    base = dict(
        groups=(
            group("account", (Scope("account:read", "Read the account.", "read"),)),
            group("contacts", (Scope("contacts:read", "Read contacts.", "read"),
                               Scope("contacts:write", "Write contacts.", "write"))),
        ),
        default_scopes=("account:read", "contacts:read"),
        minimum_scopes=("account:read",),
    )
    return ScopeCatalogue(**{**base, **kw})

def me(request):
    return ResourceResponse(json={"id": request.company.id})

def spec(**kw):
    return EmulatorSpec(
        app=AppRegistration(**{"app_id": "acme-test-app", "name": "Acme test app", **kw.pop("app", {})}),
        resources=(ResourceEndpoint("GET", "/me", ("account:read",), me),),
        **{"single_installation": False, **kw},
    )

@hookimpl
def connector_core_register_providers(register):
    register.add(Provider(key=KEY, display_name="Acme", description="Acme CRM."))

@hookimpl
def connector_core_auth_types(provider_key):
    return (oauth(),) if provider_key == KEY else None

@hookimpl
def connector_core_credential_fields(provider_key):
    if provider_key != KEY:
        return None
    return (field("client_id"), field("client_secret", kind="secret"),
            field("scopes", kind="scope_list", required=False))

@hookimpl
def connector_core_environments(provider_key):
    return (env("sandbox", default=True), env("production")) if provider_key == KEY else None

@hookimpl
def connector_core_scope_catalogue(provider_key):
    return catalogue() if provider_key == KEY else None

@hookimpl
def connector_core_callback(provider_key):
    return Callback(path="/connect/oauth2/acme/callback") if provider_key == KEY else None

@hookimpl
def connector_core_reconnect_policy(provider_key):
    return ReconnectPolicy("reauthorize", "Authorize again.") if provider_key == KEY else None

@hookimpl
def connector_core_connection_test(provider_key):
    return ConnectionTest("GET", "/me", "account:read") if provider_key == KEY else None

@hookimpl
def connector_core_actions(provider_key):
    if provider_key != KEY:
        return None
    return (Action("list_contacts", "List contacts", ("contacts:read",), method="GET", path="/contacts"),)

@hookimpl
def connector_core_setup_guide(provider_key):
    if provider_key != KEY:
        return None
    return SetupGuide("Register an app", (SetupStep("create_app", "Create the app"),))

@hookimpl
def connector_core_emulator(provider_key):
    return spec() if provider_key == KEY else None
"""

STATIC = [
    "test_models_validate",
    "test_scope_defaults_and_minimum",
    "test_action_scopes_exist",
    "test_credential_fields_have_label_and_help",
    "test_secret_fields_are_marked",
    "test_callback_path_is_well_formed",
    "test_environments_are_complete",
    "test_reconnect_steps",
    "test_connection_test_scope_in_minimum",
    "test_docs_page_renders",
]
EMULATED = [
    "test_emulator_connect",
    "test_emulator_connection_test",
    "test_emulator_refresh",
    "test_emulator_revoke",
    "test_emulator_wrong_credentials_fail",
    "test_emulator_each_auth_type",
]
_serial = itertools.count()


@pytest.fixture(autouse=True)
def _no_plugin_autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed pytest plugins stay out of the inner sessions: the conformance class needs none."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def hook(name: str, body: str) -> str:
    """A replacement for one hook of GOOD, answering ``body`` for 'acme'."""
    return f"\n@hookimpl\ndef {name}(provider_key):\n    return ({body}) if provider_key == KEY else None\n"


def run_suite(pytester: pytest.Pytester, patch: str = "", *args: str, extra: str = "") -> dict[str, tuple[str, str]]:
    """Run ProviderConformance on GOOD + ``patch``; return {test name: (outcome, message)}."""
    module = f"kit_plugin_{next(_serial)}"
    pytester.makepyfile(**{module: GOOD + textwrap.dedent(patch)})
    pytester.syspathinsert()
    lines = [
        "from connector_core.testing import ProviderConformance",
        f"import {module}",
        "",
        "class TestAcme(ProviderConformance):",
        '    provider = "acme"',
        f"    plugin = {module}",
        textwrap.indent(textwrap.dedent(extra), "    "),
    ]
    test_file = pytester.makepyfile(**{f"test_{module}": "\n".join(lines)})
    reprec = pytester.inline_run(str(test_file), "-p", "no:cacheprovider", *args)
    results: dict[str, tuple[str, str]] = {}
    for report in reprec.getreports("pytest_runtest_logreport"):
        name = report.nodeid.rsplit("::", 1)[-1]
        if report.when == "call" or report.outcome != "passed":
            message = str(report.longrepr) if report.longrepr else ""
            if name not in results or results[name][0] == "passed":
                results[name] = (report.outcome, message)
    return results


def test_a_good_plugin_passes_every_check(pytester: pytest.Pytester) -> None:
    results = run_suite(pytester)
    assert results == {name: ("passed", "") for name in STATIC + EMULATED}


# A defect the models cannot see: only its own check fails.
KIT_ONLY = [
    (
        "test_credential_fields_have_label_and_help",
        hook("connector_core_credential_fields", 'field("client_id", help=""), field("client_secret", kind="secret")'),
        "credential_fields.client_id (oauth2): has no help text",
    ),
    (
        "test_secret_fields_are_marked",
        hook("connector_core_credential_fields", 'field("client_id"), field("client_secret")'),
        "credential_fields.client_secret (oauth2): looks like a secret but is of kind 'text'",
    ),
    (
        "test_callback_path_is_well_formed",
        hook("connector_core_callback", 'Callback(path="/oauth/callback")'),
        "callback.path: '/oauth/callback' does not name the provider",
    ),
    (
        "test_environments_are_complete",
        hook("connector_core_environments", 'env("sandbox"), env("production", credential_set_label="")'),
        "environments.production: names no credential set label",
    ),
    (
        "test_environments_are_complete",
        hook(
            "connector_core_environments",
            'env("sandbox", authorize_url="https://sandbox.auth.acme.example/authorize"), env("production")',
        ),
        "environments.sandbox: overrides authorize_url but not token_url",
    ),
    (
        "test_reconnect_steps",
        hook(
            "connector_core_reconnect_policy",
            'ReconnectPolicy("uninstall_then_reauthorize", "Uninstall first.", procedures=(Procedure('
            '"Uninstall in the sandbox", (ManualStep("Click Uninstall."),), environments=("sandbox",)),))',
        ),
        "reconnect_policy: environment 'production' has no procedure with the uninstall steps",
    ),
    (
        "test_reconnect_steps",
        hook("connector_core_auth_types", "oauth(revocation_url=None),")
        + hook("connector_core_reconnect_policy", 'ReconnectPolicy("revoke_then_reauthorize", "Revoke first.")'),
        "environment 'sandbox' has no procedure with the steps to revoke the grant by hand",
    ),
    (
        "test_docs_page_renders",
        hook(
            "connector_core_scope_catalogue",
            'catalogue(groups=(group("account", (Scope("account:read", "Read.", "read"),), description=""),'
            ' group("contacts", (Scope("contacts:read", "Read.", "read"),))))',
        ),
        "docs page: scope group 'account' has no description",
    ),
    (
        "test_docs_page_renders",
        hook("connector_core_setup_guide", "None"),
        "docs page: the provider declares no setup guide",
    ),
]


@pytest.mark.parametrize(
    ("check", "patch", "message"), KIT_ONLY, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(KIT_ONLY)]
)
def test_the_kit_catches_a_defect_the_models_allow(
    pytester: pytest.Pytester, check: str, patch: str, message: str
) -> None:
    results = run_suite(pytester, patch, "-k", "not emulator")
    assert results[check][0] == "failed" and message in results[check][1], results[check]
    assert {name for name, (outcome, _) in results.items() if outcome != "passed"} == {check}


# A defect the records reject when built: the check named for it fails and names it.
MODEL_ENFORCED = [
    (
        "test_models_validate",
        "\n@hookimpl\ndef connector_core_enviroments(provider_key):\n    return None\n",
        "implements unknown hook 'connector_core_enviroments'; did you mean 'connector_core_environments'?",
    ),
    (
        "test_models_validate",
        hook("connector_core_environments", '"sandbox"'),
        "connector_core_environments for provider 'acme' returned str; expected a list of Environment",
    ),
    (
        "test_scope_defaults_and_minimum",
        hook("connector_core_scope_catalogue", 'catalogue(minimum_scopes=("contacts:write",))'),
        "ScopeCatalogue.minimum_scopes: must be a subset of default_scopes; not among the defaults: contacts:write",
    ),
    (
        "test_scope_defaults_and_minimum",
        hook("connector_core_scope_catalogue", 'catalogue(default_scopes=("account:read", "contacts:delete"))'),
        "ScopeCatalogue.default_scopes: not in the catalogue: contacts:delete",
    ),
    (
        "test_action_scopes_exist",
        hook("connector_core_actions", 'Action("delete_contact", "Delete a contact", ("contacts:delete",)),'),
        "actions.delete_contact: names scopes not in the catalogue: contacts:delete",
    ),
    (
        "test_connection_test_scope_in_minimum",
        hook("connector_core_connection_test", 'ConnectionTest("GET", "/me", "contacts:read")'),
        "connection_test.scope: 'contacts:read' is not among the minimum scopes",
    ),
    (
        "test_callback_path_is_well_formed",
        hook("connector_core_callback", 'Callback(path="/connect/acme/../callback")'),
        "Callback.path: expected no '.' or '..' segments",
    ),
    (
        "test_reconnect_steps",
        hook("connector_core_reconnect_policy", 'ReconnectPolicy("uninstall_then_reauthorize", "Uninstall.")'),
        "uninstall_then_reauthorize needs at least one procedure with manual steps",
    ),
]


@pytest.mark.parametrize(
    ("check", "patch", "message"), MODEL_ENFORCED, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(MODEL_ENFORCED)]
)
def test_the_kit_catches_a_defect_the_models_reject(
    pytester: pytest.Pytester, check: str, patch: str, message: str
) -> None:
    results = run_suite(pytester, patch, "-k", check)
    assert results[check][0] == "failed", results[check]
    assert message in results[check][1], results[check][1]


EMULATOR_DEFECTS = [
    (
        "test_emulator_connect",
        # The emulated app lacks a default scope: consent refuses the request.
        hook("connector_core_emulator", 'spec(app={"scopes": ("account:read",)})'),
        "connecting through the emulator failed",
    ),
    (
        "test_emulator_connection_test",
        hook("connector_core_connection_test", 'ConnectionTest("GET", "/missing", "account:read")'),
        "the connection test failed: GET /missing answered 404",
    ),
    (
        "test_emulator_refresh",
        # Refresh tokens that die before the access token does.
        hook("connector_core_emulator", "spec(refresh_token_lifetime=60)"),
        "refreshing failed",
    ),
    (
        "test_emulator_revoke",
        # The provider refuses a new install while the old one exists, but the policy has no uninstall steps.
        hook("connector_core_emulator", "spec(single_installation=True)"),
        "after revoking, connecting again failed",
    ),
    (
        "test_emulator_wrong_credentials_fail",
        # The emulator demands PKCE that the declaration switches off: the flow fails for another reason.
        hook("connector_core_auth_types", "oauth(pkce=False),")
        + hook("connector_core_emulator", "spec(pkce_required=True)"),
        "connecting with a wrong client secret should fail with InvalidClient, but raised",
    ),
]


@pytest.mark.parametrize(("check", "patch", "message"), EMULATOR_DEFECTS, ids=[c for c, _, _ in EMULATOR_DEFECTS])
def test_the_kit_catches_a_defect_against_the_emulator(
    pytester: pytest.Pytester, check: str, patch: str, message: str
) -> None:
    results = run_suite(pytester, patch, "-k", check)
    assert results[check][0] == "failed" and message in results[check][1], results[check]


def test_revoke_without_an_endpoint_follows_the_manual_steps(pytester: pytest.Pytester) -> None:
    # Like HiBob: no revocation endpoint, one installation at a time, uninstall steps. Revoking deletes
    # locally; the kit does the steps (uninstalls in the emulator) and connects again.
    patch = (
        hook("connector_core_auth_types", "oauth(revocation_url=None),")
        + hook("connector_core_emulator", "spec(single_installation=True)")
        + hook(
            "connector_core_reconnect_policy",
            'ReconnectPolicy("uninstall_then_reauthorize", "Uninstall first.", '
            'procedures=(Procedure("Uninstall", (ManualStep("Click Uninstall."),)),))',
        )
    )
    results = run_suite(pytester, patch, "-k", "revoke or reconnect")
    assert results == {"test_emulator_revoke": ("passed", ""), "test_reconnect_steps": ("passed", "")}


def test_the_emulator_checks_skip_for_a_provider_without_one(pytester: pytest.Pytester) -> None:
    results = run_suite(pytester, hook("connector_core_emulator", "None"))
    assert {name for name, (outcome, _) in results.items() if outcome == "passed"} == set(STATIC)
    for name in EMULATED:
        outcome, message = results[name]
        assert outcome == "skipped" and "configures no emulator" in message


def test_profile_values_can_be_given_by_the_test_class(pytester: pytest.Pytester) -> None:
    # A required field the harness cannot fill fails the emulator checks with advice...
    patch = hook(
        "connector_core_credential_fields",
        'field("client_id"), field("client_secret", kind="secret"), field("tenant")',
    )
    only = "test_emulator_connect and not connection_test"
    results = run_suite(pytester, patch, "-k", only)
    assert (
        "the profile of the emulator's test app is invalid: tenant: Tenant is required"
        in results["test_emulator_connect"][1]
    )
    # ...and the class supplies it.
    extra = """
        def emulator_profile_values(self, emulator, declaration, environment):
            from connector_core.testing.harness import default_profile_values

            return {**default_profile_values(emulator, declaration, environment), "tenant": "t-1"}
    """
    results = run_suite(pytester, patch, "-k", only, extra=extra)
    assert results == {"test_emulator_connect": ("passed", "")}


def test_a_class_without_a_provider_fails_with_advice(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from connector_core.testing import ProviderConformance

        class TestNothing(ProviderConformance):
            pass
        """
    )
    reprec = pytester.inline_run("-p", "no:cacheprovider", "-k", "models")
    (report,) = [r for r in reprec.getreports("pytest_runtest_logreport") if r.outcome != "passed"]
    assert "test class TestNothing names no provider: set provider = 'KEY'" in str(report.longrepr)


def test_the_plugin_is_found_by_its_entry_point() -> None:
    from connector_hibob import plugin

    assert find_plugin("hibob") is plugin
    from connector_core import PluginError

    with pytest.raises(PluginError, match=r"no installed connector_core entry point is named 'nope'.*plugin = "):
        find_plugin("nope")


def test_the_pytest_plugin_fixtures_serve_plain_test_functions(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def connector_provider():
            return "hibob"
        """
    )
    pytester.makepyfile(
        """
        from connector_core.connection import ConnectionStatus

        def test_connect(connector_harness, connector_emulator, connector_declaration, connector_store):
            assert connector_declaration.key == "hibob"
            assert connector_harness.emulator is connector_emulator
            connection = connector_harness.connect().connection
            assert connection.status is ConnectionStatus.CONNECTED
            assert [c.id for c in connector_store.list_connections()] == [connection.id]

        def test_only_the_plugin_under_test(connector_plugins):
            assert connector_plugins.provider_keys() == ("hibob",)
        """
    )
    # Whether or not the entry point is registered in this environment, load the module by name.
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:connector_core", "-p", "connector_core.testing.pytest_plugin"
    )
    result.assert_outcomes(passed=2)


def test_importing_the_pytest_plugin_loads_and_starts_nothing() -> None:
    code = textwrap.dedent(
        """
        import sys, threading
        import connector_core.testing.pytest_plugin as plugin
        heavy = [m for m in ("connector_hibob", "connector_core.emulator", "connector_core.store",
                             "connector_core.connector", "httpx") if m in sys.modules]
        hooks = [n for n in vars(plugin) if n.startswith("pytest_")]
        print(heavy, hooks, threading.active_count())
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[] [] 1"


def test_the_pytest_plugin_is_registered_under_the_project_name() -> None:
    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["pytest11"] == {"connector_core": "connector_core.testing.pytest_plugin"}


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("client_secret", True),
        ("api_key", True),
        ("apikey", True),
        ("service_user_token", True),
        ("password", True),
        ("client_id", False),
        ("app_id", False),
        ("scopes", False),
        ("username", False),
    ],
)
def test_secret_looking_names(name: str, secret: bool) -> None:
    assert checks.looks_secret(name) is secret


def test_fields_that_only_look_secret_can_be_exempted() -> None:
    from connector_core import CredentialField
    from connector_hibob import plugin

    decl = load_plugins([plugin], entry_points=False).declaration("hibob")
    public = CredentialField(name="public_key_id", label="Public key ID", auth_type="oauth2", help="The key's id.")
    import attrs

    changed = attrs.evolve(decl, credential_fields=(*decl.credential_fields, public))
    assert checks.check_secret_fields(changed) == (
        "credential_fields.public_key_id (oauth2): looks like a secret but is of kind 'text'; declare "
        "kind='secret' so it is never echoed, shown or stored in plain text",
    )
    assert checks.check_secret_fields(changed, not_secret=["public_key_id"]) == ()
