"""A provider declared as data (tests/dataprovider/data/acme.toml): the conformance kit, the
places it loads from, the CLI, Python overrides, and one-line errors for every bad file while
HiBob keeps working."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from support import run_connector
from support.dataprovider import ACME, acme_plugin, variant

from connector_core import ConnectionTest, PluginError, hookimpl, load_plugins
from connector_core.dataprovider import DataProvider
from connector_core.docgen import render_provider
from connector_core.errors import DataFileError
from connector_core.testing import ProviderConformance


class TestAcmeConformance(ProviderConformance):
    provider = "acme"
    plugin = acme_plugin()


def _isolated(*plugins: object) -> Any:
    return load_plugins(list(plugins), entry_points=False, env={})


def test_every_part_of_the_file_reaches_the_declaration() -> None:
    plugins = _isolated(acme_plugin())
    decl = plugins.declaration("acme")
    assert decl.plugin == f"data:{ACME}"
    assert [a.kind.value for a in decl.auth_types] == [
        "oauth2_authorization_code",
        "http_basic",
        "api_key",
        "oauth2_client_credentials",
    ]
    assert [(f.auth_type, f.name, f.level.value) for f in decl.credential_fields][2:4] == [
        ("service_user", "user_id", "user"),
        ("service_user", "token", "user"),
    ]
    assert decl.auth_type("oauth2").client_auth_method.value == "client_secret_post"
    assert decl.auth_type("api_key").header_name == "X-Api-Key"
    catalogue = decl.scope_catalogue
    assert catalogue is not None
    assert [g.key for g in catalogue.groups] == ["people", "time_off"]
    assert catalogue.get("people:write") is not None and catalogue.get("people:write").sensitive
    assert catalogue.minimum_scopes == ("people:read",)
    assert decl.environment().key == "production"
    assert decl.environment("sandbox").token_url == "https://sandbox-auth.acme.example/oauth2/token"
    assert decl.reconnect_policy is not None
    assert (
        decl.reconnect_policy.lines_for("production")[1]
        == "  1. Remove the app from the company. [Acme → Settings → Apps]"
    )
    assert [a.key for a in decl.actions] == ["list_people", "read_time_off"]
    assert decl.setup_guide is not None and decl.setup_guide.steps[1].optional
    apps, user = decl.connect_checklist
    assert (apps.title, apps.auth_types, apps.environments) == ("Allow third-party apps in Acme", ("oauth2",), ())
    assert apps.url == "https://app.acme.example/settings/apps"
    assert apps.steps[0].location == "Acme → Settings → Apps"
    assert (user.auth_types, user.environments) == (("service_user",), ("production",))
    assert [s.text for s in user.steps] == ["Create a service user.", "Copy its ID and its token (shown once)."]
    assert decl.checklist_for("production", "service_user") == (user,)
    assert decl.checklist_for("sandbox", "service_user") == ()
    assert decl.checklist_for("sandbox", "oauth2") == (apps,)
    assert plugins.identity("acme", {"company_id": 42}) == {"companyId": "42"}
    spec = plugins.emulator_spec("acme")
    assert [r.name for r in spec.resources] == ["GET /me", "GET /people", "GET /time-off"]
    answer = spec.resources[2].handler(None)
    assert (answer.status, answer.json, answer.headers) == (202, {"pending": True}, {"X-Acme-Note": "emulated"})
    assert spec.permission_groups[0].scopes == ("people:read",)


def test_the_generated_provider_page_renders_the_data_provider() -> None:
    page = render_provider(_isolated(acme_plugin()).declaration("acme"))
    assert "# Acme HR" in page
    assert "people:write" in page
    assert "X-Api-Key" in page
    assert "Register an app in the Acme developer portal" in page
    assert (
        "### Create a service user in Acme\n\nOnly with the `service_user` auth type. Only for the `production`" in page
    )


def test_a_python_hook_overrides_one_declaration_of_a_data_provider() -> None:
    class Quirks:
        @hookimpl(tryfirst=True)
        def connector_core_connection_test(self, provider_key: str) -> ConnectionTest | None:
            return ConnectionTest("GET", "/people", scope="people:read") if provider_key == "acme" else None

    class Plain:
        @hookimpl
        def connector_core_setup_guide(self, provider_key: str) -> None:
            return None  # not an answer: the file's guide stays

    decl = _isolated(acme_plugin(), Quirks(), Plain()).declaration("acme")
    assert decl.connection_test is not None and decl.connection_test.path == "/people"
    assert decl.plugin == f"data:{ACME}"
    assert decl.setup_guide is not None and decl.setup_guide.title == "Set up Acme"

    # A plain (not tryfirst) implementation is asked before the data provider's trylast one too.
    class PlainAnswer:
        @hookimpl
        def connector_core_connection_test(self, provider_key: str) -> ConnectionTest | None:
            return ConnectionTest("HEAD", "/me", scope="people:read") if provider_key == "acme" else None

    assert _isolated(PlainAnswer(), acme_plugin()).declaration("acme").connection_test.method == "HEAD"
    assert _isolated(acme_plugin(), PlainAnswer()).declaration("acme").connection_test.method == "HEAD"


def test_listing_reads_only_the_provider_table(tmp_path: Path) -> None:
    # A broken table further down does not hide the provider from a listing; asking for its
    # declaration then reports it in one line.
    path = variant(tmp_path, 'path = "/me"\nscope', "path = 12\nscope")
    plugins = _isolated(DataProvider(path))
    assert [p.key for p in plugins.providers()] == ["acme"]
    with pytest.raises(PluginError) as caught:
        plugins.declaration("acme")
    assert "connection_test.path: expected a string, got an integer" in caught.value.message


# ------------------------------------------------------------------ bad files


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


API_KEY_FIELD = (
    '[auth_types.api_key.fields.api_key]\nlabel = "API key"\nkind = "secret"\nlevel = "user"\n'
    'help = "Acme → Settings → API keys."\n'
)
BAD = [
    pytest.param(
        'label = "Readers"', 'label = "Readers', "TOML syntax error: Illegal character", 'label = "Readers', id="syntax"
    ),
    pytest.param(
        'header_name = "X-Api-Key"',
        'header_nam = "X-Api-Key"',
        "auth_types.api_key.header_nam: unknown key; did you mean 'header_name'?",
        "header_nam =",
        id="unknown-key",
    ),
    pytest.param(
        "default = true",
        'default = "yes"',
        "environments.production.default: expected true or false, got a string",
        'default = "yes"',
        id="wrong-type",
    ),
    pytest.param(
        'default_scopes = ["people:read", "time_off:read"]',
        'default_scopes = ["people:read", "people:raed"]',
        "scope_catalogue.default_scopes: not in the catalogue: people:raed",
        "default_scopes =",
        id="default-not-in-catalogue",
    ),
    pytest.param(
        API_KEY_FIELD,
        "",
        "auth_types.api_key: refers to undeclared credential fields: api_key",
        "[auth_types.api_key]",
        id="auth-type-without-fields",
    ),
    pytest.param(
        'token_url = "https://auth.acme.example/oauth2/token"\nrevocation_url',
        "revocation_url",
        "auth_types.oauth2: missing token_url",
        "[auth_types.oauth2]",
        id="missing-field",
    ),
    pytest.param(
        'token_url = "https://auth.acme.example/oauth2/token"\nrevocation_url',
        'token_url = "ftp://x"\nrevocation_url',
        "auth_types.oauth2.token_url: expected an absolute https:// URL",
        'token_url = "ftp://x"',
        id="bad-url",
    ),
    pytest.param(
        'kind = "http_basic"',
        'kind = "http-basic"',
        "auth_types.service_user.kind: unknown auth type kind 'http-basic'; did you mean 'http_basic'?",
        'kind = "http-basic"',
        id="unknown-kind",
    ),
    pytest.param(
        '[[reconnect_policy.procedures.steps]]\ntext = "Connect again from the platform."',
        '[[reconnect_policy.procedures.steps]]\ntext = ""',
        "reconnect_policy.procedures[0].steps[1].text: expected a non-empty string",
        'text = ""',
        id="nested-array",
    ),
    pytest.param(
        'auth_types = ["oauth2"]\nurl',
        'auth_types = ["oath2"]\nurl',
        "connect_checklist[0].auth_types: procedure 'Allow third-party apps in Acme' names unknown auth types: "
        "oath2; expected one of api_key, client_credentials, oauth2, service_user",
        'auth_types = ["oath2"]',
        id="checklist-unknown-auth-type",
    ),
    pytest.param(
        'auth_types = ["service_user"]\nenvironments = ["production"]',
        'auth_types = ["service_user"]\nenvironments = ["staging"]',
        "connect_checklist[1].environments: procedure 'Create a service user in Acme' names unknown environments: "
        "staging; expected one of production, sandbox",
        'environments = ["staging"]',
        id="checklist-unknown-environment",
    ),
    pytest.param(
        'auth_types = ["service_user"]\nenvironments',
        'auth_types = "service_user"\nenvironments',
        "connect_checklist[1].auth_types: expected a list, got a string",
        'auth_types = "service_user"',
        id="checklist-auth-types-not-a-list",
    ),
    pytest.param(
        'auth_types = ["service_user"]\nenvironments',
        'auth_type = ["service_user"]\nenvironments',
        "connect_checklist[1].auth_type: unknown key; did you mean 'auth_types'?",
        'auth_type = ["service_user"]',
        id="checklist-misspelled-key",
    ),
    pytest.param(
        'text = "Create a service user."',
        'text = ""',
        "connect_checklist[1].steps[0].text: expected a non-empty string",
        'text = ""',
        id="checklist-empty-step",
    ),
]


@pytest.mark.parametrize(("old", "new", "message", "line_text"), BAD)
def test_a_bad_file_is_one_line_naming_file_line_and_field(
    tmp_path: Path, old: str, new: str, message: str, line_text: str
) -> None:
    path = variant(tmp_path, old, new)
    from connector_hibob import plugin as hibob

    plugins = _isolated(hibob, DataProvider(path))
    with pytest.raises(PluginError) as caught:
        plugins.declaration("acme")
    text = caught.value.message
    assert "\n" not in text
    assert f"{path}:{_line_of(path, line_text)}: " in text
    assert message in text
    assert plugins.declaration("hibob").key == "hibob"  # everyone else keeps working
    assert any(str(path) in p.plugin and message in p.message for p in plugins.problems)


def test_a_syntax_error_in_the_provider_table_is_reported_by_the_file_plugin(tmp_path: Path) -> None:
    path = variant(tmp_path, 'display_name = "Acme HR"', 'display_name = "Acme HR')
    from connector_hibob import plugin as hibob

    plugins = _isolated(hibob, DataProvider(path))
    assert plugins.provider_keys() == ("hibob",)
    (problem,) = plugins.problems
    assert problem.plugin == f"data:{path}"
    assert problem.message.startswith(f"{path}:7: TOML syntax error")


def test_a_duplicate_key_in_two_files_names_both(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, two = shutil.copy(ACME, tmp_path / "a"), shutil.copy(ACME, tmp_path / "b")
    plugins = _isolated(DataProvider(one), DataProvider(two))
    with pytest.raises(PluginError) as caught:
        plugins.declaration("acme")
    assert f"data:{one}" in caught.value.message and f"data:{two}" in caught.value.message


def test_a_duplicate_of_a_python_plugin_names_both_and_the_python_one_is_used(tmp_path: Path) -> None:
    from connector_hibob import plugin as hibob

    path = variant(tmp_path, 'key = "acme"', 'key = "hibob"', name="copy.toml")
    plugins = _isolated(hibob, DataProvider(path))
    plugins.plugin_infos()
    messages = [p.message for p in plugins.problems]
    assert any("'hibob'" in m and f"data:{path}" in m for m in messages), messages


def test_a_missing_file_is_a_problem_of_its_own(tmp_path: Path) -> None:
    plugins = _isolated(DataProvider(tmp_path / "nope.toml"), acme_plugin())
    assert plugins.provider_keys() == ("acme",)
    assert [p.message for p in plugins.problems] == [f"{tmp_path / 'nope.toml'}: no such file"]


def test_data_errors_are_data_file_errors() -> None:
    error = DataFileError("a.toml", 3, "auth_types.x.token_url", "expected a URL")
    assert str(error) == "a.toml:3: auth_types.x.token_url: expected a URL"
    assert (error.file, error.line, error.field) == ("a.toml", 3, "auth_types.x.token_url")


# ------------------------------------------------------------ loading places


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {
        "CONNECTOR_HOME": str(tmp_path / "home"),
        "CONNECTOR_CORE_KEY_FILE": str(tmp_path / "keys.json"),
        **more,
    }


def test_the_cli_finds_a_file_in_the_home_providers_folder(tmp_path: Path) -> None:
    folder = tmp_path / "home" / "providers"
    folder.mkdir(parents=True)
    shutil.copy(ACME, folder)
    env = _env(tmp_path)
    listed = run_connector(["providers", "list"], env=env)
    assert listed.returncode == 0, listed.stderr
    assert "acme" in listed.stdout and f"data:{folder / 'acme.toml'}" in listed.stdout
    shown = run_connector(["providers", "show", "acme"], env=env)
    assert shown.returncode == 0, shown.stderr
    assert "Acme HR (acme)" in shown.stdout and "X-Api-Key" in shown.stdout
    infos = {p["name"]: p for p in json.loads(run_connector(["plugins", "--json"], env=env).stdout)["plugins"]}
    assert infos[f"data:{folder / 'acme.toml'}"]["providers"] == ["acme"]
    assert infos[f"data:{folder / 'acme.toml'}"]["path"] == str(folder / "acme.toml")


def test_the_cli_finds_files_and_folders_on_the_providers_path(tmp_path: Path) -> None:
    folder = tmp_path / "more"
    folder.mkdir()
    shutil.copy(ACME, folder)
    single = variant(tmp_path, 'key = "acme"', 'key = "acme-two"', name="two.toml")
    env = _env(tmp_path, CONNECTOR_PROVIDERS_PATH=os.pathsep.join([str(folder), str(single)]))
    listed = run_connector(["providers", "list", "--json"], env=env)
    assert listed.returncode == 0, listed.stderr
    keys = [p["key"] for p in json.loads(listed.stdout)["providers"]]
    assert {"acme", "acme-two", "hibob", "oauth2-generic"} <= set(keys)
    plugins = run_connector(["plugins"], env=env)
    assert f"data:{single}" in plugins.stdout and f"  file: {single}" in plugins.stdout


def test_the_cli_shows_a_bad_file_in_one_line_and_hibob_keeps_working(tmp_path: Path) -> None:
    bad = variant(tmp_path, 'header_name = "X-Api-Key"', 'header_nam = "X-Api-Key"')
    env = _env(tmp_path, CONNECTOR_PROVIDERS_PATH=str(bad))
    shown = run_connector(["providers", "show", "acme"], env=env)
    assert shown.returncode != 0
    assert "Traceback" not in shown.stderr
    last = shown.stderr.strip().splitlines()[-1]
    assert f"{bad}:{_line_of(bad, 'header_nam =')}: auth_types.api_key.header_nam: unknown key" in last
    assert run_connector(["providers", "show", "hibob"], env=env).returncode == 0
    plugins = run_connector(["plugins"], env=env)
    assert "auth_types.api_key.header_nam: unknown key" in plugins.stdout


def test_the_block_list_names_a_file_by_its_name(tmp_path: Path) -> None:
    env = _env(tmp_path, CONNECTOR_PROVIDERS_PATH=str(ACME), CONNECTOR_CORE_DISABLED_PLUGINS="acme,oauth2-generic")
    keys = [p["key"] for p in json.loads(run_connector(["providers", "list", "--json"], env=env).stdout)["providers"]]
    assert "acme" not in keys and "oauth2-generic" not in keys and "hibob" in keys


def test_a_listing_builds_no_declaration_record() -> None:
    plugin = acme_plugin()
    plugins = _isolated(plugin)
    assert [p.key for p in plugins.providers()] == ["acme"]
    assert plugin._records is None  # only the [provider] table was read
    plugins.declaration("acme")
    assert plugin._records is not None
