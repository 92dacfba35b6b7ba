"""The CLI's text and JSON output, exit codes and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from support import Result, run_connector

from connector_core import __version__

RunCli = Callable[..., Result]


def test_providers_list_text_and_json(run_cli: RunCli) -> None:
    text = run_cli(["providers", "list"])
    assert text.code == 0
    assert text.err == ""
    assert text.out.splitlines()[0].split() == ["KEY", "NAME", "CATEGORIES", "PLUGIN"]
    assert "hibob" in text.out
    assert "HiBob" in text.out
    data = json.loads(run_cli(["providers", "list", "--json"]).out)
    (hibob,) = data["providers"]
    assert set(hibob) == {"key", "display_name", "description", "links", "categories", "plugin"}
    assert hibob["key"] == "hibob"
    assert hibob["categories"] == ["hris"]
    assert {"label", "url"} == set(hibob["links"][0])


def test_providers_show_text(run_cli: RunCli) -> None:
    result = run_cli(["providers", "show", "hibob"])
    assert result.code == 0, result.err
    out = result.out
    for expected in (
        "HiBob (hibob)",
        "authorize URL:   https://auth.app.hibob.com/oauth2/v1/apps/authorize",
        "token URL:       https://auth.app.hibob.com/oauth2/v1/apps/token",
        "client auth:     client_secret_basic",
        "client_secret  Client Secret  secret",
        "service_user: Service user (HTTP Basic) (http_basic)",
        "sandbox: Sandbox (default), uses Development credentials",
        "production: Production, uses Production credentials",
        "API base URL: https://api.sandbox.hibob.com/v1",
        "API base URL: https://api.hibob.com/v1",
        "callback URL: https://api.stackone.com/connect/oauth2/hibob/callback",
        "Scopes: 27 in 15 feature areas",
        "minimum: employee_data:read",
        "Connection test: POST /people/search (needs employee_data:read)",
        "Reconnect policy: uninstall_then_reauthorize",
        "5. Click Uninstall. [left side of the app's detail view]",
        "Before connecting\n  Install the app in Bob (auth types: oauth2)\n    1. ",
        "  Create a service user in Bob (auth types: service_user)\n",
        "    2. Create a service user for this connection. [Bob → Settings → Integrations → Service users]",
        "  Or, for a sandbox (Development) install, uninstall it in the Developer Portal (environments: sandbox)\n",
        "Setup guide: 8 steps",
    ):
        assert expected in out, expected


def test_providers_show_json_shape(run_cli: RunCli) -> None:
    data = json.loads(run_cli(["providers", "show", "hibob", "--json"]).out)
    assert set(data) == {
        "key",
        "display_name",
        "description",
        "links",
        "categories",
        "plugin",
        "auth_types",
        "credential_fields",
        "environments",
        "scope_catalogue",
        "callback",
        "reconnect_policy",
        "connection_test",
        "actions",
        "setup_guide",
        "connect_checklist",
        "callback_urls",
    }
    oauth, basic = data["auth_types"]
    assert oauth["kind"] == "oauth2_authorization_code"
    assert oauth["client_auth_method"] == "client_secret_basic"
    assert oauth["pkce"] is True
    assert oauth["extra_authorize_params"] == {}
    assert basic["kind"] == "http_basic"
    assert basic["password_field"] == "service_user_token"
    secret = next(f for f in data["credential_fields"] if f["name"] == "client_secret")
    assert secret["kind"] == "secret"
    assert secret["level"] == "app"
    assert data["callback_urls"] == {
        "sandbox": "https://api.stackone.com/connect/oauth2/hibob/callback",
        "production": "https://api.stackone.com/connect/oauth2/hibob/callback",
    }
    assert data["scope_catalogue"]["minimum_scopes"] == ["employee_data:read"]
    assert data["reconnect_policy"]["kind"] == "uninstall_then_reauthorize"
    assert data["reconnect_policy"]["procedures"][1]["auth_types"] == []
    assert [(p["title"], p["auth_types"]) for p in data["connect_checklist"]] == [
        ("Install the app in Bob", ["oauth2"]),
        ("Create a service user in Bob", ["service_user"]),
    ]


def test_callback_base_url_env_changes_output(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOR_CALLBACK_BASE_URL", "https://connect.platform.example")
    data = json.loads(run_cli(["providers", "show", "hibob", "--json"]).out)
    assert data["callback_urls"]["production"] == "https://connect.platform.example/connect/oauth2/hibob/callback"


def test_setup_guide_text_and_json(run_cli: RunCli) -> None:
    text = run_cli(["providers", "setup-guide", "hibob"]).out
    assert text.startswith("Register a HiBob OAuth app and create a connector profile\n")
    assert "1. Apply to the HiBob Partner Programme as a Tech Partner" in text
    assert "7. Publish in the HiBob Marketplace (optional)" in text
    assert "production: https://api.stackone.com/connect/oauth2/hibob/callback" in text
    data = json.loads(run_cli(["providers", "setup-guide", "hibob", "--json"]).out)
    assert set(data) == {"provider", "title", "steps", "callback_urls"}
    assert [s["key"] for s in data["steps"]] == [
        "apply_partnership",
        "await_portal_access",
        "create_app",
        "copy_credentials",
        "redirect_uri",
        "configure_scopes",
        "marketplace_listing",
        "create_profile",
    ]
    assert set(data["steps"][0]) == {"key", "title", "details", "optional", "url"}


def test_scopes_listing(run_cli: RunCli) -> None:
    result = run_cli(["scopes", "hibob"])
    assert result.code == 0
    assert "Core employee data [core_employee_data]" in result.out
    assert "employee_data:read" in result.out
    assert "payrollhub.deductions:write" in result.out
    assert "note: tasks:write: There is no tasks:read" in result.out
    group = run_cli(["scopes", "hibob", "--group", "goals"]).out
    assert "goals:write" in group
    assert "tasks:write  " not in group
    data = json.loads(run_cli(["scopes", "hibob", "--json"]).out)
    assert set(data) == {"provider", "groups", "default_scopes", "minimum_scopes"}
    assert sum(len(g["scopes"]) for g in data["groups"]) == 27
    assert set(data["groups"][0]["scopes"][0]) == {"name", "description", "access", "module", "sensitive", "notes"}
    one = json.loads(run_cli(["scopes", "hibob", "--group", "hiring", "--json"]).out)
    assert [g["key"] for g in one["groups"]] == ["hiring"]


def test_scopes_check_exit_codes_and_output(run_cli: RunCli) -> None:
    good = run_cli(["scopes", "hibob", "--check", "employee_data:read", "timeoff:read"])
    assert good.code == 0
    assert good.out.splitlines()[-1] == "ok: 2 scopes, 0 errors, 0 warnings"
    bad = run_cli(["scopes", "hibob", "--check", "tasks:read employee_data:wrte,goals:read"])
    assert bad.code == 1
    assert "error: tasks:read does not exist" in bad.out
    assert "error: unknown scope employee_data:wrte; did you mean employee_data:write?" in bad.out
    assert "warning: goals:read needs the Talent module subscription" in bad.out
    assert "error: employee_data:read is required for every connection and is missing" in bad.out
    data = json.loads(run_cli(["scopes", "hibob", "--check", "tasks:read", "--json"]).out)
    assert set(data) == {"provider", "requested", "ok", "findings"}
    assert data["ok"] is False
    assert set(data["findings"][0]) == {"severity", "code", "message", "scope", "suggestion"}
    assert {f["code"] for f in data["findings"]} == {"no_read_scope", "missing_minimum"}


def test_scopes_for_actions(run_cli: RunCli) -> None:
    result = run_cli(["scopes", "hibob", "--for-actions", "list_tasks", "list_job_ads"])
    assert result.code == 0
    assert result.out == "employee_data:read tasks:write hiring:write\n"
    data = json.loads(run_cli(["scopes", "hibob", "--for-actions", "list_tasks,list_employees", "--json"]).out)
    assert data == {
        "provider": "hibob",
        "actions": ["list_tasks", "list_employees"],
        "scopes": ["employee_data:read", "tasks:write"],
    }


def test_plugins_command(run_cli: RunCli) -> None:
    text = run_cli(["plugins"]).out
    assert "connector_core.builtin (connector-core" in text
    data = json.loads(run_cli(["plugins", "--json"]).out)
    assert set(data["plugins"][0]) == {"name", "distribution", "version", "hooks", "providers", "error", "path"}


ERRORS: list[tuple[list[str], int, str]] = [
    (["providers", "show", "hibbo"], 1, "connector: error: unknown provider 'hibbo'; did you mean 'hibob'?"),
    (["scopes", "nope"], 1, "connector: error: unknown provider 'nope'"),
    (
        ["scopes", "hibob", "--group", "task"],
        1,
        "unknown scope group 'task' for provider 'hibob'; did you mean 'tasks'?",
    ),
    (["scopes", "hibob", "--check", 'a"b'], 1, "connector: error: --check: 'a\"b' is not a valid scope"),
    (["scopes", "hibob", "--check", ","], 1, "connector: error: --check: expected at least one scope, got none"),
    (
        ["scopes", "hibob", "--for-actions", "list_task"],
        1,
        "unknown action 'list_task' for provider 'hibob'; did you mean 'list_tasks'?",
    ),
    (["scopes", "hibob", "--check", "a", "--for-actions", "b"], 2, "not allowed with argument"),
    (["scopes", "hibob", "--group", "tasks", "--check", "employee_data:read"], 2, "--group cannot be combined"),
    (["providers"], 2, "connector providers: a subcommand is required"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["providers", "show"], 2, "the following arguments are required: PROVIDER"),
]


@pytest.mark.parametrize(("argv", "code", "message"), ERRORS, ids=[" ".join(a) for a, _, _ in ERRORS])
def test_errors_are_one_line_with_exit_codes(run_cli: RunCli, argv: list[str], code: int, message: str) -> None:
    result = run_cli(argv)
    assert result.code == code
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert result.err.startswith("connector: error: ")
    assert "Traceback" not in result.err


def test_no_command_prints_help_and_exits_2(run_cli: RunCli) -> None:
    result = run_cli([])
    assert result.code == 2
    assert "usage: connector" in result.out


def test_python_dash_m_and_version() -> None:
    result = run_connector(["--version"])
    assert result.returncode == 0
    assert result.stdout.strip() == f"connector-core {__version__}"
    shown = run_connector(["providers", "show", "hibob", "--json"], env={"CONNECTOR_CORE_PLUGINS": "hibob"})
    data: dict[str, Any] = json.loads(shown.stdout)
    assert data["key"] == "hibob"
    assert data["plugin"] == "hibob"
    bad = run_connector(["scopes", "hibob", "--check", "nope"])
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr


def test_top_level_help_from_the_table_matches_the_full_parser() -> None:
    # `connector --help` is built from the commands' bare names and help lines; it must read exactly like the
    # help of the parser with every command built (the one the CLI reference documents).
    from connector_core import load_plugins
    from connector_core.cli.parser import build_parser
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    skeleton, _ = build_parser(plugins, only="")
    full, _ = build_parser(plugins, only=None)
    assert skeleton.format_help() == full.format_help()
    assert "new-provider" in skeleton.format_help()


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["providers", "list"], "providers"),
        (["--home", "profile", "providers", "list"], "providers"),  # a folder named like a command
        (["--store-url", "sqlite:///x", "--json"], None),
        (["--home=scopes", "connect", "x"], "connect"),
        (["--", "scopes", "hibob"], "scopes"),
        (["--help"], None),
        ([], None),
    ],
)
def test_command_word_skips_top_level_option_values(words: list[str], expected: str | None) -> None:
    from connector_core.cli import command_word

    assert command_word(words) == expected


def test_value_options_are_the_top_level_options_taking_a_value() -> None:
    from connector_core import load_plugins
    from connector_core.cli.parser import VALUE_OPTIONS, build_parser
    from connector_hibob import plugin

    parser, _ = build_parser(load_plugins([plugin], entry_points=False), only="")
    taking_values = {
        option
        for action in parser._actions
        if action.option_strings and action.nargs != 0 and action.dest not in ("help", "version")
        for option in action.option_strings
    }
    assert taking_values == VALUE_OPTIONS


def test_home_named_like_a_command_runs_the_real_command(run_cli: RunCli, tmp_path: Any) -> None:
    result = run_cli(["--home", "profile", "providers", "list", "--json"])
    assert result.code == 0, result.err
    assert [p["key"] for p in json.loads(result.out)["providers"]] == ["hibob"]
