"""The plugin manager, the facade, each hook, and entry-point discovery."""

from __future__ import annotations

import argparse
import json
import types
from pathlib import Path
from typing import Any

import pytest
from support import make_distribution, run_connector

from connector_core import (
    Action,
    Callback,
    ConnectionTest,
    CredentialField,
    Environment,
    ManualStep,
    OAuth2AuthorizationCode,
    PluginError,
    Plugins,
    Procedure,
    Provider,
    ReconnectPolicy,
    Scope,
    ScopeCatalogue,
    ScopeGroup,
    SetupGuide,
    SetupStep,
    UnknownNameError,
    ValidationError,
    hookimpl,
    load_plugins,
    make_plugin_manager,
)
from connector_core.plugins import ENV_ALLOW, ENV_BLOCK, ENV_TRACE


class Acme:
    """A complete, valid provider plugin implementing every provider hook."""

    key = "acme"

    @hookimpl
    def connector_core_register_providers(self, register: Any) -> None:
        register.add(Provider(self.key, "Acme", links=[], categories=["crm"]))

    @hookimpl
    def connector_core_auth_types(self, provider_key: str) -> Any:
        if provider_key == self.key:
            return [OAuth2AuthorizationCode("https://acme.example/authorize", "https://acme.example/token")]
        return None

    @hookimpl
    def connector_core_credential_fields(self, provider_key: str) -> Any:
        if provider_key == self.key:
            return [
                CredentialField("client_id", "Client ID", "oauth2"),
                CredentialField("client_secret", "Client secret", "oauth2", kind="secret"),
            ]
        return None

    @hookimpl
    def connector_core_scope_catalogue(self, provider_key: str) -> Any:
        if provider_key == self.key:
            group = ScopeGroup("core", "Core", [Scope("read", "Read", "read"), Scope("write", "Write", "write")])
            return ScopeCatalogue([group], default_scopes=["read", "write"], minimum_scopes=["read"])
        return None

    @hookimpl
    def connector_core_environments(self, provider_key: str) -> Any:
        if provider_key == self.key:
            return [Environment("prod", "Production", "production", "https://api.acme.example")]
        return None

    @hookimpl
    def connector_core_callback(self, provider_key: str) -> Any:
        return Callback("/oauth/acme/callback") if provider_key == self.key else None

    @hookimpl
    def connector_core_reconnect_policy(self, provider_key: str) -> Any:
        if provider_key == self.key:
            return ReconnectPolicy(
                "revoke_then_reauthorize",
                "Revoke, then connect again.",
                [Procedure("Check", [ManualStep("Look at the app list.")])],
            )
        return None

    @hookimpl
    def connector_core_connection_test(self, provider_key: str) -> Any:
        return ConnectionTest("GET", "/me", "read") if provider_key == self.key else None

    @hookimpl
    def connector_core_actions(self, provider_key: str) -> Any:
        return [Action("sync", "Sync", ["write"])] if provider_key == self.key else None

    @hookimpl
    def connector_core_setup_guide(self, provider_key: str) -> Any:
        return (
            SetupGuide("Set up Acme", [SetupStep("register", "Register an app")]) if provider_key == self.key else None
        )

    @hookimpl
    def connector_core_connect_checklist(self, provider_key: str) -> Any:
        if provider_key == self.key:
            return [Procedure("Allow apps", [ManualStep("Allow third-party apps.")], auth_types=["oauth2"])]
        return None


def test_make_plugin_manager_has_every_spec_and_nothing_registered() -> None:
    pm = make_plugin_manager()
    assert pm.project_name == "connector_core"
    assert not pm.get_plugins()
    from connector_core import hookspecs

    for name in hookspecs.__all__:
        assert getattr(pm.hook, name).spec is not None


def test_each_provider_hook_reaches_the_declaration() -> None:
    plugins = load_plugins([Acme()], entry_points=False)
    assert plugins.provider_keys() == ("acme",)
    decl = plugins.declaration("acme")
    assert decl.plugin == "Acme-0"
    assert decl.provider.categories == ("crm",)
    assert [a.key for a in decl.auth_types] == ["oauth2"]
    assert [f.name for f in decl.credential_fields] == ["client_id", "client_secret"]
    assert decl.scope_catalogue is not None
    assert decl.scope_catalogue.minimum_scopes == ("read",)
    assert [e.key for e in decl.environments] == ["prod"]
    assert decl.callback == Callback("/oauth/acme/callback")
    assert decl.reconnect_policy is not None
    assert decl.reconnect_policy.kind.value == "revoke_then_reauthorize"
    assert decl.connection_test is not None
    assert decl.connection_test.path == "/me"
    assert [a.key for a in decl.actions] == ["sync"]
    assert decl.setup_guide is not None
    assert decl.setup_guide.steps[0].key == "register"
    assert [p.title for p in decl.connect_checklist] == ["Allow apps"]
    assert [p.title for p in decl.checklist_for("prod", "oauth2")] == ["Allow apps"]
    assert plugins.declaration("acme") is decl  # cached
    assert plugins.problems == ()


def test_optional_hooks_may_be_absent() -> None:
    class Minimal:
        @hookimpl
        def connector_core_register_providers(self, register: Any) -> None:
            register.add(Provider("mini", "Mini"))

        @hookimpl
        def connector_core_auth_types(self, provider_key: str) -> Any:
            from connector_core import ApiKeyAuth

            return [ApiKeyAuth("key", "API key", "api_key", prefix="Bearer")] if provider_key == "mini" else None

        @hookimpl
        def connector_core_credential_fields(self, provider_key: str) -> Any:
            return [CredentialField("api_key", "API key", "key", kind="secret")] if provider_key == "mini" else None

        @hookimpl
        def connector_core_environments(self) -> Any:  # takes a subset of the spec's arguments
            return [Environment("prod", "Production", "production", "https://api.mini.example")]

    decl = load_plugins([Minimal()], entry_points=False).declaration("mini")
    assert decl.scope_catalogue is None
    assert decl.callback is None
    assert decl.actions == ()
    assert decl.reconnect_policy is None
    assert decl.setup_guide is None
    assert decl.connection_test is None
    assert decl.connect_checklist == ()


def test_unknown_provider_suggests() -> None:
    plugins = load_plugins([Acme()], entry_points=False)
    with pytest.raises(UnknownNameError, match="unknown provider 'acm'; did you mean 'acme'"):
        plugins.declaration("acm")


def test_tryfirst_plugin_overrides_one_declaration() -> None:
    class Override:
        @hookimpl(tryfirst=True)
        def connector_core_callback(self, provider_key: str) -> Any:
            return Callback("/custom/acme") if provider_key == "acme" else None

    plugins = load_plugins([Acme(), Override()], entry_points=False)
    assert plugins.declaration("acme").callback == Callback("/custom/acme")


def test_required_hooks_missing_is_a_plugin_error() -> None:
    class NoAuth:
        @hookimpl
        def connector_core_register_providers(self, register: Any) -> None:
            register.add(Provider("bare", "Bare"))

    plugins = load_plugins([NoAuth()], entry_points=False)
    with pytest.raises(PluginError, match="provider 'bare' does not implement connector_core_auth_types"):
        plugins.declaration("bare")
    assert any("connector_core_auth_types" in p.message for p in plugins.problems)


def test_duplicate_provider_key_names_both_plugins_and_others_keep_working() -> None:
    class Other(Acme):
        pass

    class Beta(Acme):
        key = "beta"

    plugins = load_plugins([Acme(), Other(), Beta()], entry_points=False)
    assert plugins.provider_keys() == ("beta",)
    with pytest.raises(PluginError) as info:
        plugins.declaration("acme")
    assert "'Acme-0'" in str(info.value)
    assert "'Other-1'" in str(info.value)
    assert "registered by both" in str(info.value)
    assert {p.plugin for p in plugins.problems} == {"Acme-0", "Other-1"}
    assert plugins.declaration("beta").key == "beta"


def test_hook_raising_is_attributed_to_its_plugin() -> None:
    class Broken(Acme):
        @hookimpl
        def connector_core_scope_catalogue(self, provider_key: str) -> Any:
            raise RuntimeError("catalogue file missing")

    class Fine(Acme):
        key = "fine"

    broken = Broken()
    plugins = load_plugins([broken, Fine()], entry_points=False)
    with pytest.raises(
        PluginError,
        match=r"plugin 'Broken-0': connector_core_scope_catalogue raised RuntimeError: "
        r"catalogue file missing",
    ):
        plugins.declaration("acme")
    with pytest.raises(PluginError):  # the failure is remembered, not retried
        plugins.declaration("acme")
    assert plugins.declaration("fine").key == "fine"
    assert [d.key for d in plugins.declarations()] == ["fine"]


def test_wrong_return_type_is_attributed_to_its_plugin() -> None:
    class WrongType(Acme):
        @hookimpl
        def connector_core_callback(self, provider_key: str) -> Any:
            return "/oauth/callback" if provider_key == "acme" else None

    class WrongList(Acme):
        key = "wl"

        @hookimpl
        def connector_core_actions(self, provider_key: str) -> Any:
            return [{"key": "sync"}] if provider_key == "wl" else None

    class NotAList(Acme):
        key = "nal"

        @hookimpl
        def connector_core_environments(self, provider_key: str) -> Any:
            return Environment("p", "P", "p", "https://x") if provider_key == "nal" else None

    plugins = load_plugins([WrongType(), WrongList(), NotAList()], entry_points=False)
    with pytest.raises(
        PluginError,
        match="plugin 'WrongType-0': connector_core_callback for provider 'acme' "
        "returned str; expected Callback or None",
    ):
        plugins.declaration("acme")
    with pytest.raises(PluginError, match=r"plugin 'WrongList-1': .*returned a list holding dict; expected Action"):
        plugins.declaration("wl")
    with pytest.raises(PluginError, match=r"plugin 'NotAList-2': .*returned Environment; expected a list of"):
        plugins.declaration("nal")


def test_invalid_declaration_is_a_plugin_error_naming_the_field() -> None:
    class BadTest(Acme):
        @hookimpl
        def connector_core_connection_test(self, provider_key: str) -> Any:
            return ConnectionTest("GET", "/me", "write") if provider_key == "acme" else None

    plugins = load_plugins([BadTest()], entry_points=False)
    with pytest.raises(PluginError, match=r"provider 'acme': connection_test\.scope: 'write' is not among the minimum"):
        plugins.declaration("acme")


def test_a_connect_checklist_naming_an_unknown_auth_type_is_a_plugin_error() -> None:
    class BadChecklist(Acme):
        @hookimpl
        def connector_core_connect_checklist(self, provider_key: str) -> Any:
            if provider_key == "acme":
                return [Procedure("Create a user", [ManualStep("Create it.")], auth_types=["service_user"])]
            return None

    class NotProcedures(Acme):
        key = "np"

        @hookimpl
        def connector_core_connect_checklist(self, provider_key: str) -> Any:
            return [ManualStep("Install it.")] if provider_key == "np" else None

    plugins = load_plugins([BadChecklist(), NotProcedures()], entry_points=False)
    with pytest.raises(PluginError) as info:
        plugins.declaration("acme")
    assert info.value.message == (
        "plugin 'BadChecklist-0': provider 'acme': connect_checklist[0].auth_types: procedure 'Create a user' "
        "names unknown auth types: service_user; expected one of oauth2"
    )
    with pytest.raises(
        PluginError, match=r"plugin 'NotProcedures-1': .*returned a list holding ManualStep; expected Procedure"
    ):
        plugins.declaration("np")


def test_model_error_raised_inside_a_hook_names_the_plugin() -> None:
    class BuildsBadModel(Acme):
        @hookimpl
        def connector_core_environments(self, provider_key: str) -> Any:
            return [Environment("prod", "P", "production", "ftp://api")]

    plugins = load_plugins([BuildsBadModel()], entry_points=False)
    with pytest.raises(
        PluginError, match=r"plugin 'BuildsBadModel-0': connector_core_environments: Environment\.api_base_url"
    ):
        plugins.declaration("acme")


def test_register_providers_failure_does_not_stop_others() -> None:
    class Raises:
        @hookimpl
        def connector_core_register_providers(self, register: Any) -> None:
            raise KeyError("boom")

    class AddsJunk:
        @hookimpl
        def connector_core_register_providers(self, register: Any) -> None:
            register.add("acme")

    plugins = load_plugins([Raises(), AddsJunk(), Acme()], entry_points=False)
    assert plugins.provider_keys() == ("acme",)
    messages = {p.plugin: p.message for p in plugins.problems}
    assert messages["Raises-0"] == "connector_core_register_providers raised KeyError: 'boom'"
    assert messages["AddsJunk-1"] == "register.add() expected a Provider, got str"


def test_misspelled_hook_leaves_only_that_plugin_out() -> None:
    class Typo(Acme):
        key = "typo"

        @hookimpl
        def connector_core_enviroments(self, provider_key: str) -> Any:
            return None

    plugins = load_plugins([Typo(), Acme()], entry_points=False)
    assert plugins.provider_keys() == ("acme",)
    (problem,) = plugins.problems
    assert problem.plugin == "Typo-0"
    assert "unknown hook 'connector_core_enviroments'; did you mean 'connector_core_environments'?" in problem.message


def test_optionalhook_for_unknown_spec_is_allowed() -> None:
    class Future(Acme):
        @hookimpl(optionalhook=True)
        def connector_core_some_future_hook(self) -> None:
            return None

    plugins = load_plugins([Future()], entry_points=False)
    assert plugins.provider_keys() == ("acme",)
    assert plugins.problems == ()


def test_hookimpl_with_arguments_the_spec_lacks_is_rejected() -> None:
    class BadSig(Acme):
        key = "badsig"

        @hookimpl
        def connector_core_callback(self, provider_key: str, tenant: str) -> Any:
            return None

    plugins = load_plugins([BadSig(), Acme()], entry_points=False)
    assert plugins.provider_keys() == ("acme",)
    (problem,) = plugins.problems
    assert problem.plugin == "BadSig-0"
    assert "tenant" in problem.message


def test_callback_base_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = load_plugins([Acme()], entry_points=False)
    with pytest.raises(ValidationError, match="set CONNECTOR_CALLBACK_BASE_URL"):
        plugins.callback_url("acme")
    monkeypatch.setenv("CONNECTOR_CALLBACK_BASE_URL", "https://env.example.com")
    assert plugins.callback_url("acme") == "https://env.example.com/oauth/acme/callback"
    assert plugins.callback_url("acme", base_url="https://arg.example.com/") == (
        "https://arg.example.com/oauth/acme/callback"
    )

    class Platform:
        @hookimpl
        def connector_core_callback_base_url(self, provider_key: str, environment: str) -> str:
            return f"https://{environment}.platform.example"

    plugins = load_plugins([Acme(), Platform()], entry_points=False)
    assert plugins.callback_url("acme", "prod") == "https://prod.platform.example/oauth/acme/callback"


def test_register_commands_adds_cli_commands_and_rejects_clashes() -> None:
    calls: list[str] = []

    class Commands:
        @hookimpl
        def connector_core_register_commands(self, commands: Any) -> None:
            def configure(parser: argparse.ArgumentParser) -> None:
                parser.add_argument("--who", default="world")

            def run(args: argparse.Namespace, plugins: Plugins) -> int:
                calls.append(args.who)
                return 3

            commands.add("hello", help="say hello", configure=configure, run=run)

    class Clashes:
        @hookimpl
        def connector_core_register_commands(self, commands: Any) -> None:
            commands.add("plugins", help="mine", run=lambda args, plugins: 0)

    class Twice:
        @hookimpl
        def connector_core_register_commands(self, commands: Any) -> None:
            commands.add("hello", help="again", run=lambda args, plugins: 0)

    from connector_core.cli import main

    plugins = load_plugins([Commands(), Clashes(), Twice()], entry_points=False)
    assert main(["hello", "--who", "bob"], plugins=plugins) == 3
    assert calls == ["bob"]
    messages = {p.plugin: p.message for p in plugins.problems}
    assert "command 'plugins' clashes with a built-in command" in messages["Clashes-1"]
    assert "command 'hello' is already added by plugin 'Commands-0'" in messages["Twice-2"]


def test_module_plugins_are_named_by_module() -> None:
    module = types.ModuleType("my_module_plugin")
    plugins = load_plugins([module], entry_points=False)
    assert "my_module_plugin" in {i.name for i in plugins.plugin_infos()}


def test_plugin_infos_list_hooks_and_errors() -> None:
    class Typo:
        @hookimpl
        def connector_core_nope(self) -> None:
            return None

    plugins = load_plugins([Acme(), Typo()], entry_points=False)
    infos = {i.name: i for i in plugins.plugin_infos()}
    assert infos["Acme-0"].providers == ("acme",)
    assert "connector_core_auth_types" in infos["Acme-0"].hooks
    assert infos["Typo-1"].error is not None
    assert "unknown hook" in infos["Typo-1"].error
    builtin = infos["connector_core.builtin"]
    assert builtin.distribution == "connector-core"
    assert builtin.hooks == ("connector_core_callback_base_url", "connector_core_provider_files")


# ----------------------------------------------------- entry points, for real


GOOD = """
from connector_core import hookimpl, Provider, Environment, HttpBasicAuth, CredentialField

@hookimpl
def connector_core_register_providers(register):
    register.add(Provider("{key}", "{name}"))

@hookimpl
def connector_core_auth_types(provider_key):
    return [HttpBasicAuth("basic", "Basic", "user", "password")] if provider_key == "{key}" else None

@hookimpl
def connector_core_credential_fields(provider_key):
    if provider_key == "{key}":
        return [
            CredentialField("user", "User", "basic"),
            CredentialField("password", "Password", "basic", kind="secret"),
        ]

@hookimpl
def connector_core_environments(provider_key):
    if provider_key == "{key}":
        return [Environment("prod", "Production", "production", "https://api.example.com")]
"""


def test_entry_point_discovery_finds_the_installed_hibob_plugin() -> None:
    plugins = load_plugins(env={ENV_ALLOW: "hibob"})
    assert plugins.provider_keys() == ("hibob",)
    assert plugins.plugin_of("hibob") == "hibob"
    info = {i.name: i for i in plugins.plugin_infos()}["hibob"]
    assert info.distribution == "connector-hibob"
    assert info.version


def test_allow_list_set_but_empty_loads_no_external_plugin() -> None:
    plugins = load_plugins(env={ENV_ALLOW: ""})
    assert plugins.provider_keys() == ()


@pytest.mark.parametrize("name", ["connector-hibob", "Connector_HiBob", "connector.hibob", "HIBOB"])
def test_block_list_by_distribution_or_entry_point_name(name: str) -> None:
    plugins = load_plugins(env={ENV_BLOCK: name})
    assert "hibob" not in plugins.provider_keys()
    assert load_plugins(env={ENV_ALLOW: name}).provider_keys() == ("hibob",)


def test_broken_and_duplicate_distributions_via_subprocess(site_dir: Path) -> None:
    make_distribution(
        site_dir, "connector-broken", {"broken_plugin": "import does_not_exist\n"}, {"broken": "broken_plugin"}
    )
    make_distribution(
        site_dir, "connector-alpha", {"alpha_plugin": GOOD.format(key="alpha", name="Alpha")}, {"alpha": "alpha_plugin"}
    )
    make_distribution(
        site_dir,
        "connector-alpha-fork",
        {"alpha_fork": GOOD.format(key="alpha", name="Alpha fork")},
        {"alpha-fork": "alpha_fork"},
    )
    make_distribution(
        site_dir, "connector-gamma", {"gamma_plugin": GOOD.format(key="gamma", name="Gamma")}, {"gamma": "gamma_plugin"}
    )
    # Two plugins claiming "delta", neither with an entry point named after it: ambiguous.
    make_distribution(
        site_dir, "connector-dup-a", {"dup_a": GOOD.format(key="delta", name="Delta A")}, {"dup-a": "dup_a"}
    )
    make_distribution(
        site_dir, "connector-dup-b", {"dup_b": GOOD.format(key="delta", name="Delta B")}, {"dup-b": "dup_b"}
    )

    listed = run_connector(["providers", "list", "--json"], site=site_dir)
    assert listed.returncode == 0, listed.stderr
    keys = [p["key"] for p in json.loads(listed.stdout)["providers"]]
    assert "gamma" in keys
    assert "hibob" in keys
    assert "delta" not in keys  # ambiguous: unusable
    alpha = next(p for p in json.loads(listed.stdout)["providers"] if p["key"] == "alpha")
    assert alpha["plugin"] == "alpha"  # the entry point named after the key keeps it
    assert "Traceback" not in listed.stderr
    assert (
        "connector: warning: plugin 'broken': failed to import broken_plugin: "
        "ModuleNotFoundError: No module named 'does_not_exist'"
    ) in listed.stderr
    dup_lines = [line for line in listed.stderr.splitlines() if "provider key 'alpha' is registered by both" in line]
    assert len(dup_lines) == 1
    assert dup_lines[0].startswith("connector: warning: plugin 'alpha-fork': ")
    assert "'alpha-fork'" in dup_lines[0].split("both")[1]
    assert "using 'alpha', whose entry point is named after the key" in dup_lines[0]
    assert "provider key 'delta' is registered by both" in listed.stderr
    for line in listed.stderr.splitlines():
        assert line.startswith("connector: warning: ")

    shown = run_connector(["providers", "show", "alpha", "--json"], site=site_dir)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["plugin"] == "alpha"
    ambiguous = run_connector(["providers", "show", "delta"], site=site_dir)
    assert ambiguous.returncode == 1
    last = ambiguous.stderr.strip().splitlines()[-1]
    assert "provider key 'delta' is registered by both" in last
    assert "'dup-a'" in last
    assert "'dup-b'" in last
    assert "Traceback" not in ambiguous.stderr

    plugins_out = run_connector(["plugins", "--json"], site=site_dir)
    infos = {p["name"]: p for p in json.loads(plugins_out.stdout)["plugins"]}
    assert infos["broken"]["error"].startswith("failed to import broken_plugin")
    assert infos["broken"]["distribution"] == "connector-broken"
    assert infos["broken"]["version"] == "1.2.3"
    assert infos["gamma"]["providers"] == ["gamma"]
    assert infos["gamma"]["error"] is None

    blocked = run_connector(["providers", "list"], site=site_dir, env={ENV_BLOCK: "broken,alpha-fork,dup-b"})
    assert blocked.stderr == ""
    assert "alpha" in blocked.stdout
    assert "Alpha" in blocked.stdout

    allowed = run_connector(["providers", "list", "--json"], site=site_dir, env={ENV_ALLOW: "gamma"})
    assert [p["key"] for p in json.loads(allowed.stdout)["providers"]] == ["gamma"]


def test_trace_env_writes_hook_calls_to_stderr(site_dir: Path) -> None:
    result = run_connector(["providers", "show", "hibob"], env={ENV_TRACE: "1", ENV_ALLOW: "hibob"})
    assert result.returncode == 0
    assert "connector_core_scope_catalogue" in result.stderr


def test_identity_hook_and_its_contract() -> None:
    class Identity(Acme):
        @hookimpl
        def connector_core_identity(self, provider_key: str, token_response: Any) -> Any:
            if provider_key != "acme":
                return None
            return {"tenant": str(token_response["tenant_id"])}

    class BadIdentity(Acme):
        key = "bad"

        @hookimpl
        def connector_core_identity(self, provider_key: str, token_response: Any) -> Any:
            return {"tenant": 42} if provider_key == "bad" else None

    plugins = load_plugins([Identity(), BadIdentity()], entry_points=False)
    assert plugins.identity("acme", {"tenant_id": 7, "access_token": "x"}) == {"tenant": "7"}
    with pytest.raises(PluginError, match="plugin 'BadIdentity-1': connector_core_identity for provider 'bad' must"):
        plugins.identity("bad", {})
    assert load_plugins([Acme()], entry_points=False).identity("acme", {}) == {}


def test_emulator_hook_is_optional_and_type_checked() -> None:
    class NoEmulator(Acme):
        @hookimpl
        def connector_core_emulator(self, provider_key: str) -> Any:
            return None

    class WrongEmulator(Acme):
        key = "wrong"

        @hookimpl
        def connector_core_emulator(self, provider_key: str) -> Any:
            return {"port": 1} if provider_key == "wrong" else None

    plugins = load_plugins([NoEmulator(), WrongEmulator()], entry_points=False)
    assert plugins.emulator_spec("acme") is None
    with pytest.raises(PluginError, match="connector_core_emulator for provider 'wrong' returned dict"):
        plugins.emulator_spec("wrong")
    with pytest.raises(UnknownNameError):
        plugins.emulator_spec("nope")


class CatalogueOnly(Acme):
    """Acme with every hook but the scope catalogue broken: a scope check must not ask them."""

    @hookimpl
    def connector_core_auth_types(self, provider_key: str) -> Any:
        raise RuntimeError("asked a hook a scope check does not need")

    @hookimpl
    def connector_core_environments(self, provider_key: str) -> Any:
        raise RuntimeError("asked a hook a scope check does not need")


def test_scope_catalogue_asks_only_the_scope_hook() -> None:
    plugins = load_plugins([CatalogueOnly()], entry_points=False)
    catalogue = plugins.scope_catalogue("acme")
    assert catalogue is not None and catalogue.names == ("read", "write")
    assert plugins.problems == ()
    with pytest.raises(PluginError, match="asked a hook"):
        plugins.declaration("acme")
    # Once the whole declaration is known to be broken, the scope check says so too.
    with pytest.raises(PluginError, match="asked a hook"):
        plugins.scope_catalogue("acme")


def test_scope_catalogue_reuses_a_gathered_declaration_and_names_unknown_keys() -> None:
    plugins = load_plugins([Acme()], entry_points=False)
    decl = plugins.declaration("acme")
    assert plugins.scope_catalogue("acme") is decl.scope_catalogue
    with pytest.raises(UnknownNameError, match="'nope'"):
        plugins.scope_catalogue("nope")


def test_scope_catalogue_of_the_wrong_type_is_the_plugins_error() -> None:
    class Wrong(Acme):
        @hookimpl
        def connector_core_scope_catalogue(self, provider_key: str) -> Any:
            return ["read"] if provider_key == self.key else None

    plugins = load_plugins([Wrong()], entry_points=False)
    with pytest.raises(PluginError, match="returned list; expected ScopeCatalogue"):
        plugins.scope_catalogue("acme")
    assert [p.plugin for p in plugins.problems] == ["Wrong-0"]


def test_module_fast_path_registers_exactly_what_pluggy_does() -> None:
    import pluggy

    from connector_core import hookspecs

    module = types.ModuleType("connector_fastpath")
    source = """
from connector_core import hookimpl, Provider

KEY = "fast"
PROVIDER = Provider(KEY, "Fast")

@hookimpl
def connector_core_register_providers(register):
    register.add(PROVIDER)

@hookimpl(specname="connector_core_callback_base_url", trylast=True)
def any_name_at_all(provider_key, environment):
    return None

def connector_core_auth_types(provider_key):  # no marker: not an implementation
    return None

class Helper:
    @hookimpl
    def connector_core_actions(self, provider_key):  # in a class, not the module: not seen
        return None

bound = Helper().connector_core_actions  # a bound method with the marker: implements 'bound'
plain_static = staticmethod(lambda provider_key: None)
"""
    exec(compile(source, "<fastpath>", "exec"), module.__dict__)

    def registered(pm: pluggy.PluginManager) -> list[tuple[str, str, bool]]:
        pm.add_hookspecs(hookspecs)
        pm.register(module, name="fast")
        return sorted(
            (caller.name, impl.function.__name__, impl.trylast)
            for caller in pm.get_hookcallers(module) or []
            for impl in caller.get_hookimpls()
        )

    ours = registered(make_plugin_manager().__class__("connector_core"))
    pluggys = registered(pluggy.PluginManager("connector_core"))
    assert ours == pluggys
    assert ours == [
        ("bound", "connector_core_actions", False),  # named by the attribute (an unknown hook)
        ("connector_core_callback_base_url", "any_name_at_all", True),
        ("connector_core_register_providers", "connector_core_register_providers", False),
    ]
