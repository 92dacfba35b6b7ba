"""Documentation generated from declarations, the parser and the hook specs; the docs site."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from support import REPO, Result

import connector_core
from connector_core import Plugins, hookspecs, load_plugins
from connector_core.cli.parser import build_parser
from connector_core.docgen import hook_signature, render_cli_reference, render_hook_reference, render_provider
from connector_core.models import Scope, ScopeCatalogue, ScopeGroup

DOCS = REPO / "docs"


def hibob_page(plugins: Plugins) -> str:
    return render_provider(plugins.declaration("hibob"))


def cli_parser() -> object:
    parser, _ = build_parser(load_plugins(entry_points=False, env={}), plugin_commands=False)
    return parser


# ------------------------------------------------------------------------ drift


def test_the_hibob_page_is_generated_from_the_plugin(hibob_plugins: Plugins) -> None:
    committed = (DOCS / "providers" / "hibob.md").read_text()
    assert committed == hibob_page(hibob_plugins), (
        "docs/providers/hibob.md drifted from the HiBob plugin; regenerate it with "
        "'connector docs hibob --output docs/providers/hibob.md' (with no HIBOB_* variables set)"
    )


def test_the_generic_oauth2_page_is_generated_from_its_data_file() -> None:
    from connector_core import _builtin
    from connector_core.dataprovider import DataProvider

    plugins = load_plugins(
        [DataProvider(path) for path in _builtin.connector_core_provider_files()], entry_points=False
    )
    committed = (DOCS / "providers" / "oauth2-generic.md").read_text()
    assert committed == render_provider(plugins.declaration("oauth2-generic")), (
        "docs/providers/oauth2-generic.md drifted from its data file; regenerate it with "
        "'connector docs oauth2-generic --output docs/providers/oauth2-generic.md'"
    )


def test_the_cli_reference_is_generated_from_the_parser() -> None:
    parser, _ = build_parser(load_plugins(entry_points=False, env={}), plugin_commands=False)
    assert (DOCS / "cli-reference.md").read_text() == render_cli_reference(parser), (
        "docs/cli-reference.md drifted from the parser; regenerate it with "
        "'connector docs --cli-reference --output docs/cli-reference.md'"
    )


def test_the_hook_reference_is_generated_from_the_specs() -> None:
    assert (DOCS / "hooks.md").read_text() == render_hook_reference(), (
        "docs/hooks.md drifted from connector_core/hookspecs.py; regenerate it with "
        "'connector docs --hook-reference --output docs/hooks.md'"
    )


@pytest.mark.parametrize("hook", sorted(hookspecs.__all__))
def test_each_hook_is_in_the_reference_with_its_real_signature(hook: str) -> None:
    func = getattr(hookspecs, hook)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in inspect.signature(func, eval_str=False).parameters.values())
    returns = inspect.signature(func, eval_str=False).return_annotation
    expected = f"def {hook}({params}) -> {returns}: ..."
    assert hook_signature(hook) == f"{hook}({params}) -> {returns}"
    page = (DOCS / "hooks.md").read_text()
    assert f"## `{hook}`\n\n```python\n{expected}\n```" in page
    firstresult = bool(func.connector_core_spec.get("firstresult"))
    section = page.split(f"## `{hook}`", 1)[1].split("\n## ", 1)[0]
    assert ("`firstresult`" in section) is firstresult


# ------------------------------------------------------------------ provider page


def test_the_provider_page_says_everything_the_declaration_does(hibob_plugins: Plugins) -> None:
    decl = hibob_plugins.declaration("hibob")
    page = hibob_page(hibob_plugins)
    assert page.startswith("<!-- Generated from the hibob plugin's declarations") and "\n# HiBob\n" in page
    for heading in (
        "## Auth types",
        "## Environments",
        "## Callback URL",
        "## Scopes",
        "## Actions",
        "## Connection test",
        "## Before connecting",
        "## Reconnecting",
        "## Setup guide",
    ):
        assert f"\n{heading}\n" in page
    for auth in decl.auth_types:
        assert f"### {auth.label}\n" in page
    for field in decl.credential_fields:
        assert f"| `{field.name}` | {field.label} | {field.kind.value} |" in page
    for env in decl.environments:
        assert f"- API base URL: `{env.api_base_url}`" in page
        assert f"- Credential set: {env.credential_set_label} (`{env.credential_set}`)" in page
    assert decl.callback is not None and f"followed by `{decl.callback.path}`" in page
    assert "`https://api.stackone.com/connect/oauth2/hibob/callback`" in page
    catalogue = decl.scope_catalogue
    assert catalogue is not None
    for group in catalogue.groups:
        assert f"### {group.label}\n\nFeature area `{group.key}`. {group.description}" in page
    assert (
        "| `tasks:write` | write |   | default | List, read and complete employee tasks. | There is no tasks:read"
        in page
    )
    assert "| `goals:read` | read | Talent module |" in page
    assert "- Minimum scopes (every connection needs them): `employee_data:read`" in page
    for action in decl.actions:
        assert f"| `{action.key}` | {action.label} | " + ", ".join(f"`{s}`" for s in action.scopes) in page
    assert "`POST /people/search`, needing `employee_data:read`, passes when it answers 200." in page
    assert decl.reconnect_policy is not None
    for proc in decl.reconnect_policy.procedures:
        assert f"### {proc.title}\n" in page
        for number, step in enumerate(proc.steps, 1):
            assert f"{number}. {step.text}" in page
    assert "Only for the `sandbox` environment." in page
    for proc in decl.connect_checklist:
        (auth,) = proc.auth_types
        section = page[page.index(f"### {proc.title}\n") :]
        assert section.startswith(f"### {proc.title}\n\nOnly with the `{auth}` auth type. For every environment.")
        for number, step in enumerate(proc.steps, 1):
            location = f" ({step.location})" if step.location else ""
            assert f"\n{number}. {step.text}{location}\n" in section
    assert page.index("## Before connecting") < page.index("## Reconnecting")
    assert decl.setup_guide is not None
    for number, setup_step in enumerate(decl.setup_guide.steps, 1):
        assert f"{number}. **{setup_step.title}**" in page
    assert "7. **Publish in the HiBob Marketplace** (optional)" in page


def test_the_page_never_depends_on_the_machine(hibob_plugins: Plugins, monkeypatch: pytest.MonkeyPatch) -> None:
    before = hibob_page(hibob_plugins)
    monkeypatch.setenv("CONNECTOR_CALLBACK_BASE_URL", "https://elsewhere.example")
    monkeypatch.setenv("COLUMNS", "20")
    assert hibob_page(load_plugins([_hibob()], entry_points=False)) == before


def _hibob() -> object:
    from connector_hibob import plugin

    return plugin


def test_text_from_a_plugin_cannot_break_the_markdown(hibob_plugins: Plugins) -> None:
    decl = hibob_plugins.declaration("hibob")
    nasty = "Pipes | and\nnew lines, <script>alert(1)</script>, *stars*, [links](x) and `ticks`"
    catalogue = ScopeCatalogue(
        groups=(ScopeGroup("odd", "Odd | group", (Scope("odd:read", nasty, "read", notes=(nasty,)),), nasty),),
        default_scopes=("odd:read",),
        minimum_scopes=("odd:read",),
    )
    page = render_provider(attrs.evolve(decl, scope_catalogue=catalogue, actions=(), connection_test=None))
    table = [line for line in page.splitlines() if line.startswith("| `odd:read`")]
    assert len(table) == 1
    assert len(re.findall(r"(?<!\\)\|", table[0])) == 7  # six cells: the pipes in the text are escaped
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert r"\*stars\*" in page and r"\[links\](x)" in page and r"\`ticks\`" in page


def test_a_provider_without_a_checklist_has_no_such_section(hibob_plugins: Plugins) -> None:
    page = render_provider(attrs.evolve(hibob_plugins.declaration("hibob"), connect_checklist=()))
    assert "## Before connecting" not in page
    assert "\n## Reconnecting\n" in page


def test_an_unknown_format_is_refused(hibob_plugins: Plugins) -> None:
    with pytest.raises(connector_core.ValidationError, match="--format: expected one of markdown, got 'html'"):
        render_provider(hibob_plugins.declaration("hibob"), format="html")


# ------------------------------------------------------------------ CLI reference


def test_the_cli_reference_lists_every_command_and_option() -> None:
    parser, choices = build_parser(load_plugins(entry_points=False, env={}), plugin_commands=False)
    page = render_cli_reference(parser)
    assert "```text\nconnector [--version] [--home DIR]" in page
    seen = 0
    stack = [parser]
    while stack:
        current = stack.pop()
        assert f"`{current.prog}`" in page, current.prog
        for action in current._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in page, (current.prog, option)
                    seen += 1
            if action.choices and isinstance(action.choices, dict):
                stack.extend(action.choices.values())
    assert seen > 40 and "new-provider" in choices and "docs" in choices
    assert "connector scopes [--group GROUP] [--check SCOPE... | --for-actions ACTION...] [--json] PROVIDER" in page
    assert (
        "connector docs [--format FORMAT] [--cli-reference | --hook-reference | --api-reference | --data-schema] "
        "[--output FILE] [PROVIDER]" in page
    )
    assert "| `--format FORMAT` | the output format. One of: `markdown`. Default: `markdown`. |" in page


def test_the_cli_reference_ignores_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    wide = render_cli_reference(cli_parser())  # type: ignore[arg-type]
    monkeypatch.setenv("COLUMNS", "30")
    assert render_cli_reference(cli_parser()) == wide  # type: ignore[arg-type]


# ------------------------------------------------------------------- the command


def test_connector_docs_prints_the_page(run_cli: Callable[..., Result], hibob_plugins: Plugins) -> None:
    result = run_cli(["docs", "hibob", "--format", "markdown"])
    assert result.code == 0 and result.err == ""
    assert result.out == hibob_page(hibob_plugins)


def test_connector_docs_writes_files(run_cli: Callable[..., Result], tmp_path: Path, hibob_plugins: Plugins) -> None:
    out = tmp_path / "hibob.md"
    assert run_cli(["docs", "hibob", "--output", str(out)]).code == 0
    assert out.read_text() == hibob_page(hibob_plugins)
    hooks = tmp_path / "hooks.md"
    result = run_cli(["docs", "--hook-reference", "--output", str(hooks)])
    assert result.code == 0 and result.out == "" and hooks.read_text() == render_hook_reference()
    cli = run_cli(["docs", "--cli-reference"])
    assert cli.code == 0 and cli.out == (DOCS / "cli-reference.md").read_text()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["docs"], 2, "connector docs: give a PROVIDER, --cli-reference, --hook-reference or --api-reference"),
        (["docs", "hibob", "--cli-reference"], 2, "connector docs: give a PROVIDER or a reference option, not both"),
        (["docs", "--cli-reference", "--hook-reference"], 2, "not allowed with argument"),
        (["docs", "hibob", "--format", "html"], 2, "argument --format: invalid choice: 'html'"),
        (["docs", "hibb"], 1, "unknown provider 'hibb'; did you mean 'hibob'?"),
    ],
)
def test_connector_docs_errors_are_one_line(
    run_cli: Callable[..., Result], argv: list[str], code: int, message: str
) -> None:
    result = run_cli(argv)
    assert result.code == code and result.out == ""
    assert result.err.startswith("connector: error: ") and message in result.err
    assert result.err.count("\n") == 1


def test_an_unwritable_output_is_a_one_line_error(run_cli: Callable[..., Result], tmp_path: Path) -> None:
    result = run_cli(["docs", "hibob", "--output", str(tmp_path / "missing" / "page.md")])
    assert result.code == 1 and result.err.startswith(f"connector: error: cannot write {tmp_path / 'missing'}")
    assert result.err.count("\n") == 1


# ------------------------------------------------------------------- the site


def _nav_pages() -> list[str]:
    text = (REPO / "mkdocs.yml").read_text()
    return re.findall(r"^\s*- [^:\n]+: (\S+\.md)\s*$", text, flags=re.MULTILINE)


def test_the_site_navigation_holds_every_page_once() -> None:
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    nav = _nav_pages()
    assert sorted(nav) == pages and len(set(nav)) == len(nav)
    assert "strict: true" in (REPO / "mkdocs.yml").read_text()


def test_the_site_has_the_pages_the_project_promises() -> None:
    titles = {page: (DOCS / page).read_text().split("\n", 3) for page in _nav_pages()}
    for page, heading in (
        ("getting-started.md", "Getting started"),
        ("concepts.md", "Concepts"),
        ("provider-kit.md", "Writing a provider plugin"),
        ("hooks.md", "Hook reference"),
        ("api.md", "The library API"),
        ("cli-reference.md", "CLI reference"),
        ("emulator.md", "The built-in emulator"),
        ("security.md", "Security"),
    ):
        assert f"# {heading}" in titles[page], page
    concepts = (DOCS / "concepts.md").read_text()
    for concept in ("## Profiles", "## Connections", "## Environments", "## Scopes", "## Reconnecting"):
        assert concept in concepts


def test_getting_started_shows_the_readmes_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```console\n(.+?)\n```", setup)
    assert len(commands) == 2
    page = (DOCS / "getting-started.md").read_text()
    for command in commands:
        assert f"```console\n{command}\n```" in page


def test_the_scaffold_walkthrough_matches_the_scaffold() -> None:
    from connector_core.scaffold import _names, _render

    page = (DOCS / "provider-kit.md").read_text()
    for path in _render(_names("acme", None)):
        assert f"  {path}\n" in page, path
    from connector_core.testing import ProviderConformance

    tests = sorted(n for n in vars(ProviderConformance) if n.startswith("test_"))
    assert len(tests) == 16
    for name in tests:
        assert f"| `{name}` |" in page, name


def test_the_api_page_documents_every_public_name() -> None:
    page = (DOCS / "api.md").read_text()
    missing = [name for name in connector_core.__all__ if name != "__version__" and f"`{name}`" not in page]
    assert missing == [], f"add these names of connector_core.__all__ to docs/api.md: {', '.join(missing)}"
    documented = set(re.findall(r"^\| ([^|]+) \|", page, flags=re.MULTILINE)) - {"Name"}
    names = {n for cell in documented for n in re.findall(r"`([A-Za-z_]+)`", cell)}
    assert names and names <= set(connector_core.__all__)


def test_the_page_of_api_keys_and_client_credentials() -> None:
    from support.keyco import KeyCo

    page = render_provider(load_plugins([KeyCo("https://api.keyco.example")], entry_points=False).declaration("keyco"))
    assert "Key `api_key`: API key in a request header." in page
    assert "| Header | `X-Api-Key: Key <api_key>` |" in page
    assert (
        "Key `query_key`: API key in a query parameter." in page
        and "| Query parameter | `?key=<query_api_key>` |" in page
    )
    assert "| When the provider refuses the credentials | Create a new key in KeyCo's settings" in page
    assert "(`--api-key-env VAR` or `--api-key-file PATH`; a secret is never taken from the command line" in page
    assert "Key `machine`: OAuth 2.0 client credentials grant (no end user" in page
    assert "| Token URL | `https://api.keyco.example/token` |" in page
    assert "fetches a token, with no end user and no credential options" in page
    assert "| `api_key` | API key | secret | yes | the end user (each connection) |" in page
    assert "| `client_secret` | Client secret | secret | yes | the app registration (profile) |" in page
    assert "`GET /me` passes when it answers 200." in page
