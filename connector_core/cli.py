"""The ``connector`` command line: a thin layer over the library.

Exit statuses: 0 success, 1 a validation failure or an error the user can fix,
2 a usage error. Errors are one line on standard error, never a traceback.
Every listing command takes ``--json``; the shapes are documented in
``docs/cli.md`` and only ever gain fields.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from . import __version__
from ._cli_output import COMMAND_HELP, Parser, add_json, emit_json, needs_subcommand, table
from .errors import ConnectorError, UsageError, ValidationError
from .plugins import Plugins, load_plugins
from .serialize import declaration_to_data, to_data

if TYPE_CHECKING:
    from .models import ProviderDeclaration, ScopeCatalogue

__all__ = ["main", "main_exit"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace, Plugins, IO[str]], int]

#: The CLI's own commands; any other first word may be a plugin's command.
BUILTIN_COMMANDS = frozenset(COMMAND_HELP)
#: The top-level options that take a value (the command word is the first word that is
#: neither an option nor such a value; options are never abbreviated).
_VALUE_OPTIONS = frozenset({"--home", "--store-url"})


def build_parser(
    plugins: Plugins, *, plugin_commands: bool = True, only: str | None = None
) -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    """The ``connector`` argument parser.

    ``only`` names the built-in command about to run: the other built-in commands'
    modules are then neither imported nor built, which keeps the CLI's cold start close
    to Python's own. ``only=""`` builds every built-in command as a bare name with its
    help line, enough for ``connector --help`` and for naming a plugin's command.
    """
    skeleton = only == ""

    def wants(*names: str) -> bool:
        return only is None or only in names

    parser = Parser(
        prog="connector",
        description="Connect your customers' SaaS accounts through provider plugins.",
    )
    parser.add_argument("--version", action="version", version=f"connector-core {__version__}")
    parser.add_argument(
        "--home", metavar="DIR", help="the store's folder (default: $CONNECTOR_HOME, else the user data dir)"
    )
    parser.add_argument(
        "--store-url",
        metavar="URL",
        help="the store: sqlite:///PATH or postgresql://... (default: $CONNECTOR_STORE_URL, else --home's SQLite)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    if skeleton:
        for name, help_line in COMMAND_HELP.items():
            sub.add_parser(name, help=help_line)
    else:
        _add_core_commands(sub, wants)

    builtin = set(COMMAND_HELP)
    for command in plugins.register_commands(builtin) if plugin_commands else ():
        cp = sub.add_parser(command.name, help=f"{command.help} [plugin {command.plugin}]")
        command.configure(cp)
        cp.set_defaults(handler=_plugin_handler(command.run))
    return parser, sub.choices


def _add_core_commands(sub: Any, wants: Callable[..., bool]) -> None:
    """Add the built-in commands ``wants`` names, in ``COMMAND_HELP``'s order."""
    psub = None
    if wants("providers"):
        psub = _add_providers(sub)
    if wants("scopes"):
        _add_scopes(sub)
    if wants("plugins"):
        plugins_cmd = sub.add_parser("plugins", help=COMMAND_HELP["plugins"])
        add_json(plugins_cmd)
        plugins_cmd.set_defaults(handler=_plugins)
    if wants("profile", "keys", "providers"):
        from . import _cli_store

        _cli_store.add_commands(sub, psub, profile_and_keys=wants("profile", "keys"))
    if wants("emulate"):
        from . import _cli_emulator

        _cli_emulator.add_commands(sub)
    if wants("connect", "connections", "reconnect", "request"):
        from . import _cli_connect

        _cli_connect.add_commands(sub)
    if wants("store"):
        from . import _cli_storecmd

        _cli_storecmd.add_commands(sub)
    if wants("new-provider", "docs"):
        from . import _cli_author

        _cli_author.add_commands(sub)


def _add_providers(sub: Any) -> Any:
    providers = sub.add_parser("providers", help=COMMAND_HELP["providers"])
    psub = providers.add_subparsers(dest="providers_command", metavar="SUBCOMMAND", parser_class=Parser)
    p = psub.add_parser("list", help="list installed providers")
    add_json(p)
    p.set_defaults(handler=_providers_list)
    p = psub.add_parser("show", help="show everything a provider declares")
    p.add_argument("provider", metavar="PROVIDER")
    add_json(p)
    p.set_defaults(handler=_providers_show)
    p = psub.add_parser("setup-guide", help="the one-time onboarding checklist with a provider")
    p.add_argument("provider", metavar="PROVIDER")
    add_json(p)
    p.set_defaults(handler=_providers_setup_guide)
    providers.set_defaults(handler=needs_subcommand(providers))
    return psub


def _add_scopes(sub: Any) -> None:
    scopes = sub.add_parser(
        "scopes",
        help=COMMAND_HELP["scopes"],
    )
    scopes.add_argument("provider", metavar="PROVIDER")
    scopes.add_argument("--group", metavar="GROUP", help="show only this feature area")
    mode = scopes.add_mutually_exclusive_group()
    mode.add_argument("--check", nargs="+", metavar="SCOPE", help="check a requested scope set")
    mode.add_argument("--for-actions", nargs="+", metavar="ACTION", help="the least scope set for these actions")
    add_json(scopes)
    scopes.set_defaults(handler=_scopes)


def _plugin_handler(run: Callable[[argparse.Namespace, Plugins], int]) -> Handler:
    def handler(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
        return int(run(args, plugins) or 0)

    return handler


def main(argv: Sequence[str] | None = None, *, plugins: Plugins | None = None) -> int:
    """Run the CLI; return the exit status. ``plugins`` replaces discovery (for tests)."""
    out, err = sys.stdout, sys.stderr
    try:
        if plugins is None:
            # Lazily: a command about one provider imports only that provider's plugin.
            plugins = load_plugins(lazy=True)
        words = list(sys.argv[1:] if argv is None else argv)
        command = _command_word(words)
        builtin = command in BUILTIN_COMMANDS
        # A built-in command builds only its own parser; anything else (no command, a
        # plugin's command, a typo) needs the built-ins' names only, and the plugins'.
        parser, _ = build_parser(plugins, plugin_commands=not builtin, only=command if builtin else "")
        args = parser.parse_args(words)
        if args.command is None:
            parser.print_help(out)
            return EXIT_USAGE
        handler: Handler = args.handler
        code = handler(args, plugins, out)
        if args.command != "plugins":
            for problem in plugins.problems_so_far:
                err.write(f"connector: warning: {problem}\n")
        return code
    except ConnectorError as exc:
        err.write(f"connector: error: {exc.message}\n")
        for line in exc.details:
            err.write(f"  {line}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        err.write("connector: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK


def _command_word(words: Sequence[str]) -> str | None:
    """The command word: the first word that is neither a top-level option nor its value."""
    expect_value = False
    for index, word in enumerate(words):
        if expect_value:
            expect_value = False
        elif word == "--":
            return words[index + 1] if index + 1 < len(words) else None
        elif word in _VALUE_OPTIONS:
            expect_value = True
        elif not word.startswith("-"):
            return word
    return None


def main_exit() -> None:
    """Console-script entry point: run :func:`main` and exit with its status."""
    sys.exit(main())


# ----------------------------------------------------------------------- providers


def _providers_list(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    providers = plugins.providers()
    if args.json:
        emit_json(
            out,
            {"providers": [{**to_data(p), "plugin": plugins.plugin_of(p.key)} for p in providers]},
        )
        return EXIT_OK
    if not providers:
        out.write(
            "No providers installed. Install a provider plugin (a distribution with a connector_core entry point).\n"
        )
        return EXIT_OK
    table(
        out,
        ("KEY", "NAME", "CATEGORIES", "PLUGIN"),
        [(p.key, p.display_name, ", ".join(p.categories), plugins.plugin_of(p.key)) for p in providers],
    )
    return EXIT_OK


def _providers_show(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    decl = plugins.declaration(args.provider)
    callbacks = _callback_urls(plugins, decl)
    if args.json:
        data = declaration_to_data(decl)
        data["callback_urls"] = callbacks
        emit_json(out, data)
        return EXIT_OK
    _render_declaration(out, decl, callbacks)
    return EXIT_OK


def _callback_urls(plugins: Plugins, decl: ProviderDeclaration) -> dict[str, str | None]:
    urls: dict[str, str | None] = {}
    if decl.callback is None:
        return urls
    for env in decl.environments:
        try:
            urls[env.key] = plugins.callback_url(decl.key, env.key)
        except ConnectorError:
            urls[env.key] = None
    return urls


def _render_declaration(out: IO[str], decl: ProviderDeclaration, callbacks: dict[str, str | None]) -> None:
    from .models import ApiKeyAuth, HttpBasicAuth, OAuth2AuthorizationCode, ReconnectKind

    p = decl.provider
    w = out.write
    w(f"{p.display_name} ({p.key})  [plugin {decl.plugin}]\n")
    if p.description:
        w(f"{p.description}\n")
    if p.categories:
        w(f"Categories: {', '.join(p.categories)}\n")
    for link in p.links:
        w(f"  {link.label}: {link.url}\n")

    w("\nAuth types\n")
    for auth in decl.auth_types:
        w(f"  {auth.key}: {auth.label} ({auth.kind.value})\n")
        if auth.description:
            w(f"    {auth.description}\n")
        if isinstance(auth, OAuth2AuthorizationCode):
            w(f"    authorize URL:   {auth.authorize_url}\n")
            w(f"    token URL:       {auth.token_url}\n")
            w(f"    revocation URL:  {auth.revocation_url or '(none declared)'}\n")
            w(f"    client auth:     {auth.client_auth_method.value}\n")
            w(f"    PKCE (S256):     {'on' if auth.pkce else 'off'}\n")
            w(f"    scope separator: {auth.scope_separator!r}\n")
            for name, value in auth.extra_authorize_params:
                w(f"    extra parameter: {name}={value}\n")
        elif isinstance(auth, HttpBasicAuth):
            w(f"    username field: {auth.username_field}; password field: {auth.password_field}\n")
        elif isinstance(auth, ApiKeyAuth):
            w(f"    header: {auth.header_name}: {auth.prefix + ' ' if auth.prefix else ''}<{auth.key_field}>\n")
        fields = decl.fields_for(auth.key)
        if fields:
            w("    credential fields:\n")
            table(
                out,
                ("FIELD", "LABEL", "KIND", "REQUIRED", "LEVEL", "PATTERN"),
                [
                    (f.name, f.label, f.kind.value, "yes" if f.required else "no", f.level.value, f.pattern or "")
                    for f in fields
                ],
                indent="      ",
            )

    w("\nEnvironments\n")
    for env in decl.environments:
        default = " (default)" if env.default else ""
        creds = env.credential_set_label or env.credential_set
        w(f"  {env.key}: {env.label}{default}, uses {creds}\n")
        if env.description:
            w(f"    {env.description}\n")
        w(f"    API base URL: {env.api_base_url}\n")
        for label, url in (
            ("authorize URL", env.authorize_url),
            ("token URL", env.token_url),
            ("revocation URL", env.revocation_url),
            ("web app", env.web_url),
        ):
            if url:
                w(f"    {label}: {url}\n")
        if env.key in callbacks:
            w(f"    callback URL: {callbacks[env.key] or '(set CONNECTOR_CALLBACK_BASE_URL)'}\n")

    catalogue = decl.scope_catalogue
    if catalogue is not None:
        w(
            f"\nScopes: {len(catalogue.names)} in {len(catalogue.groups)} feature areas "
            f"(see 'connector scopes {p.key}')\n"
        )
        w(f"  default: {' '.join(catalogue.default_scopes)}\n")
        w(f"  minimum: {' '.join(catalogue.minimum_scopes)}\n")

    if decl.actions:
        w("\nActions\n")
        table(
            out,
            ("ACTION", "LABEL", "SCOPES"),
            [(a.key, a.label, " ".join(a.scopes)) for a in decl.actions],
            indent="  ",
        )

    if decl.connection_test is not None:
        t = decl.connection_test
        w(f"\nConnection test: {t.method} {t.path} (needs {t.scope})\n")
        if t.description:
            w(f"  {t.description}\n")

    policy = decl.reconnect_policy
    w("\nReconnect policy: ")
    if policy is None:
        w(f"{ReconnectKind.REAUTHORIZE.value}\n")
    else:
        w(f"{policy.kind.value}\n  {policy.summary}\n")
        for proc in policy.procedures:
            scope = f" (environments: {', '.join(proc.environments)})" if proc.environments else ""
            w(f"  {proc.title}{scope}\n")
            for number, step in enumerate(proc.steps, 1):
                where = f" [{step.location}]" if step.location else ""
                w(f"    {number}. {step.text}{where}\n")
    if decl.setup_guide is not None:
        w(f"\nSetup guide: {len(decl.setup_guide.steps)} steps (see 'connector providers setup-guide {p.key}')\n")


def _providers_setup_guide(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    decl = plugins.declaration(args.provider)
    guide = decl.setup_guide
    if guide is None:
        if args.json:
            emit_json(
                out, {"provider": decl.key, "title": None, "steps": [], "callback_urls": _callback_urls(plugins, decl)}
            )
        else:
            out.write(f"{decl.provider.display_name} declares no setup guide.\n")
        return EXIT_OK
    if args.json:
        emit_json(out, {"provider": decl.key, **to_data(guide), "callback_urls": _callback_urls(plugins, decl)})
        return EXIT_OK
    out.write(f"{guide.title}\n\n")
    for number, step in enumerate(guide.steps, 1):
        optional = " (optional)" if step.optional else ""
        out.write(f"{number}. {step.title}{optional}\n")
        for detail in step.details:
            out.write(f"   - {detail}\n")
        if step.url:
            out.write(f"   {step.url}\n")
    callbacks = _callback_urls(plugins, decl)
    if callbacks:
        out.write("\nYour callback (redirect) URL:\n")
        for env, url in callbacks.items():
            out.write(f"  {env}: {url or '(set CONNECTOR_CALLBACK_BASE_URL to your platform base URL)'}\n")
    return EXIT_OK


# -------------------------------------------------------------------------- scopes


def _scopes(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    key = args.provider
    if args.group and (args.check or args.for_actions):
        other = "--check" if args.check else "--for-actions"
        raise UsageError(f"connector scopes: --group cannot be combined with {other}")
    if args.for_actions:  # actions live in the whole declaration
        from .scopes import scopes_for_actions

        decl = plugins.declaration(key)
        if decl.scope_catalogue is None:
            raise ValidationError("provider", f"{key!r} declares no OAuth scopes")
        actions = [a for arg in args.for_actions for a in arg.replace(",", " ").split()]
        scopes = scopes_for_actions(decl, actions)
        if args.json:
            emit_json(out, {"provider": key, "actions": actions, "scopes": list(scopes)})
        else:
            out.write(" ".join(scopes) + "\n")
        return EXIT_OK
    # Listing and checking need only the catalogue: the other hooks are not asked.
    catalogue = plugins.scope_catalogue(key)
    if catalogue is None:
        raise ValidationError("provider", f"{key!r} declares no OAuth scopes")
    if args.check:
        return _scopes_check(args, key, catalogue, out)

    groups = catalogue.groups
    if args.group:
        group = catalogue.group(args.group)
        if group is None:
            from .errors import UnknownNameError

            raise UnknownNameError("scope group", args.group, [g.key for g in groups], within=f"provider {key!r}")
        groups = (group,)
    if args.json:
        emit_json(
            out,
            {
                "provider": key,
                "groups": to_data(groups),
                "default_scopes": list(catalogue.default_scopes),
                "minimum_scopes": list(catalogue.minimum_scopes),
            },
        )
        return EXIT_OK
    for group in groups:
        out.write(f"{group.label} [{group.key}]\n")
        if group.description:
            out.write(f"  {group.description}\n")
        rows = []
        for s in group.scopes:
            marks = [
                m
                for m, on in (
                    ("default", s.name in catalogue.default_scopes),
                    ("minimum", s.name in catalogue.minimum_scopes),
                    ("sensitive", s.sensitive),
                )
                if on
            ]
            rows.append((s.name, s.access.value, s.module or "", ", ".join(marks), s.description))
        table(out, ("SCOPE", "ACCESS", "MODULE", "FLAGS", "DESCRIPTION"), rows, indent="  ")
        for s in group.scopes:
            for note in s.notes:
                out.write(f"  note: {s.name}: {note}\n")
        out.write("\n")
    out.write(f"default: {' '.join(catalogue.default_scopes)}\n")
    out.write(f"minimum: {' '.join(catalogue.minimum_scopes)}\n")
    return EXIT_OK


def _scopes_check(args: argparse.Namespace, key: str, catalogue: ScopeCatalogue, out: IO[str]) -> int:
    from .scopes import check_scopes, parse_scopes

    requested = parse_scopes(args.check, field="--check")
    result = check_scopes(catalogue, requested)
    if args.json:
        emit_json(
            out,
            {
                "provider": key,
                "requested": list(result.requested),
                "ok": result.ok,
                "findings": to_data(result.findings),
            },
        )
    else:
        for finding in result.findings:
            out.write(f"{finding.severity.value}: {finding.message}\n")
        errors, warnings = len(result.errors), len(result.warnings)
        verdict = "ok" if result.ok else "invalid"
        out.write(
            f"{verdict}: {_count(len(result.requested), 'scope')}, {_count(errors, 'error')}, "
            f"{_count(warnings, 'warning')}\n"
        )
    return EXIT_OK if result.ok else EXIT_INVALID


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# ------------------------------------------------------------------------- plugins


def _plugins(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    infos = plugins.plugin_infos()
    if args.json:
        emit_json(out, {"plugins": to_data(infos)})
        return EXIT_OK
    for info in infos:
        version = f" {info.version}" if info.version else ""
        dist = f" ({info.distribution}{version})" if info.distribution else ""
        out.write(f"{info.name}{dist}\n")
        if info.providers:
            out.write(f"  providers: {', '.join(info.providers)}\n")
        if info.hooks:
            out.write(f"  hooks: {', '.join(info.hooks)}\n")
        if info.error:
            out.write(f"  error: {info.error}\n")
    return EXIT_OK
