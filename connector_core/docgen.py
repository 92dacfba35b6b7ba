"""Documentation generated from the same metadata the code uses.

Three pages are rendered here, each as Markdown:

* :func:`render_provider`: a provider's page, from its
  :class:`~connector_core.ProviderDeclaration` alone (auth types, credential
  fields, environments and hosts, the callback URL, the scope catalogue by
  feature area, defaults and minimum, actions, the connection test, the
  checklist before connecting, reconnect steps and the setup guide). ``connector docs PROVIDER`` prints it.
* :func:`render_cli_reference`: every command and option of the ``connector``
  parser. ``connector docs --cli-reference`` prints it.
* :func:`render_hook_reference`: every hook specification's signature, how its
  results combine, and its docstring. ``connector docs --hook-reference``.

The output depends only on its input (never on the terminal width, the clock or
the Python version), so the generated pages in ``docs/`` can be compared with a
fresh rendering by a test that fails when they drift.
"""

from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import Iterable, Sequence

from . import hookspecs
from ._markers import PROJECT_NAME
from .errors import ValidationError
from .models import (
    ApiKeyAuth,
    ApiKeyLocation,
    AuthType,
    FieldLevel,
    HttpBasicAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    Procedure,
    ProviderDeclaration,
    ReconnectKind,
)

__all__ = ["FORMATS", "render_cli_reference", "render_hook_reference", "render_provider"]

#: Output formats ``connector docs`` knows.
FORMATS = ("markdown",)

_RECONNECT_TEXT = {
    ReconnectKind.REAUTHORIZE: "run the authorization again; the provider replaces the grant",
    ReconnectKind.REVOKE_THEN_REAUTHORIZE: "revoke the old grant (RFC 7009), then authorize again",
    ReconnectKind.UNINSTALL_THEN_REAUTHORIZE: (
        "a person uninstalls the app at the provider first (the steps below), then authorizes again"
    ),
}
_SEPARATORS = {" ": "space", ",": "comma", "+": "plus sign"}


# ---------------------------------------------------------------------- escaping


def _text(value: str) -> str:
    """Plain text for Markdown: one line, with the characters Markdown would act on escaped."""
    flat = " ".join(value.split())
    flat = re.sub(r"([\\`*\[\]])", r"\\\1", flat)
    return flat.replace("<", "&lt;").replace(">", "&gt;")


def _cell(value: str) -> str:
    """Text for a table cell: as :func:`_text`, with pipes escaped."""
    return _text(value).replace("|", "\\|")


def _code(value: str) -> str:
    """An inline code span that survives backticks and pipes in ``value``."""
    flat = " ".join(value.split()).replace("|", "\\|")
    fence = "``" if "`" in flat else "`"
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _url(value: str) -> str:
    return f"<{value}>"


def _codes(values: Iterable[str]) -> str:
    return ", ".join(_code(v) for v in values)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines.extend("| " + " | ".join(cell or " " for cell in row) + " |" for row in rows)
    return lines


def _join(blocks: Iterable[Sequence[str]]) -> str:
    """Blocks of lines, separated by one blank line; the page ends with one newline."""
    out: list[str] = []
    for block in blocks:
        if not block:
            continue
        if out:
            out.append("")
        out.extend(block)
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------- provider


def render_provider(declaration: ProviderDeclaration, *, format: str = "markdown") -> str:
    """The provider's documentation page, from its declaration alone.

    The callback URL is shown as the platform's base URL plus the provider's
    path, with the provider's default base URL when it declares one; the page
    never depends on ``CONNECTOR_CALLBACK_BASE_URL`` or other settings of the
    machine that renders it.
    """
    if format not in FORMATS:
        raise ValidationError("--format", f"expected one of {', '.join(FORMATS)}, got {format!r}")
    decl = declaration
    blocks: list[list[str]] = [
        [
            f"<!-- Generated from the {decl.key} plugin's declarations by 'connector docs {decl.key}'. "
            "Do not edit by hand: a test fails when this page drifts from the plugin. -->"
        ],
        [f"# {_text(decl.provider.display_name)}"],
    ]
    if decl.provider.description:
        blocks.append([_text(decl.provider.description)])
    facts = [f"- Provider key: {_code(decl.key)}"]
    if decl.provider.categories:
        facts.append(f"- Categories: {_codes(decl.provider.categories)}")
    if decl.provider.links:
        links = ", ".join(f"[{_text(link.label)}]({link.url})" for link in decl.provider.links)
        facts.append(f"- Links: {links}")
    blocks.append(facts)
    blocks.extend(_auth_section(decl))
    blocks.extend(_environment_section(decl))
    blocks.extend(_callback_section(decl))
    blocks.extend(_scope_section(decl))
    blocks.extend(_action_section(decl))
    blocks.extend(_connection_test_section(decl))
    blocks.extend(_checklist_section(decl))
    blocks.extend(_reconnect_section(decl))
    blocks.extend(_setup_section(decl))
    return _join(blocks)


def _auth_kind(auth: AuthType) -> str:
    if isinstance(auth, OAuth2AuthorizationCode):
        return "OAuth 2.0 authorization code grant"
    if isinstance(auth, OAuth2ClientCredentials):
        return "OAuth 2.0 client credentials grant (no end user: the profile's client fetches the token)"
    if isinstance(auth, HttpBasicAuth):
        return "HTTP Basic authentication"
    if auth.location is ApiKeyLocation.QUERY:
        return "API key in a query parameter"
    return "API key in a request header"


def _how_to_connect(decl: ProviderDeclaration, auth: AuthType) -> str:
    """Who gives what, and the command that connects: the part a reader looks for first."""
    user = decl.fields_for(auth.key, FieldLevel.USER)
    if isinstance(auth, OAuth2AuthorizationCode):
        return (
            f"A person authorizes at the provider: {_code('connector connect PROFILE')} sends them there and "
            "takes the callback."
        )
    if isinstance(auth, OAuth2ClientCredentials):
        return (
            f"The profile holds the client; {_code('connector connect PROFILE')} fetches a token, with no end "
            "user and no credential options, and fetches a new one before it expires."
        )
    options = ", ".join(_connect_option(f.name, secret=f.secret) for f in user)
    return (
        f"The profile holds no credentials of the end user's: each connection holds its own, given to "
        f"{_code('connector connect PROFILE')} ({options}; a secret is never taken from the command line, and "
        "is prompted for without either option), tested with the provider before it is stored, and kept encrypted."
    )


def _connect_option(name: str, *, secret: bool) -> str:
    opt = "--" + name.replace("_", "-")
    return f"{_code(opt + '-env VAR')} or {_code(opt + '-file PATH')}" if secret else _code(f"{opt} VALUE")


def _auth_section(decl: ProviderDeclaration) -> list[list[str]]:
    blocks: list[list[str]] = [["## Auth types"]]
    if len(decl.auth_types) > 1:
        blocks.append([f"{len(decl.auth_types)} auth types; the first is preferred."])
    for auth in decl.auth_types:
        blocks.append([f"### {_text(auth.label)}"])
        intro = f"Key {_code(auth.key)}: {_auth_kind(auth)}."
        if auth.description:
            intro += f" {_text(auth.description)}"
        blocks.append([intro])
        blocks.append([_how_to_connect(decl, auth)])
        rows: list[tuple[str, str]] = []
        if isinstance(auth, OAuth2ClientCredentials):
            rows = [
                ("Token URL", _code(auth.token_url)),
                ("Client authentication", _code(auth.client_auth_method.value)),
                ("Scope separator", _SEPARATORS[auth.scope_separator]),
            ]
            for name, value in auth.extra_token_params:
                rows.append(("Extra token parameter", _code(f"{name}={value}")))
        elif isinstance(auth, OAuth2AuthorizationCode):
            rows = [
                ("Authorize URL", _code(auth.authorize_url)),
                ("Token URL", _code(auth.token_url)),
                ("Revocation URL", _code(auth.revocation_url) if auth.revocation_url else "none declared"),
                ("Client authentication", _code(auth.client_auth_method.value)),
                ("PKCE (S256)", "on" if auth.pkce else "off"),
                ("Scope separator", _SEPARATORS[auth.scope_separator]),
            ]
            if auth.issuer:
                rows.append(("Issuer (RFC 9207)", _code(auth.issuer)))
            if auth.metadata_url:
                rows.append(("Metadata (RFC 8414)", _code(auth.metadata_url)))
            for name, value in auth.extra_authorize_params:
                rows.append(("Extra authorize parameter", _code(f"{name}={value}")))
            rows.append(
                (
                    "Installs begun at the provider",
                    "accepted" if auth.provider_initiated_install else "refused (no state of ours)",
                )
            )
        elif isinstance(auth, HttpBasicAuth):
            rows = [("Username field", _code(auth.username_field)), ("Password field", _code(auth.password_field))]
        elif isinstance(auth, ApiKeyAuth):
            prefix = f"{auth.prefix} " if auth.prefix else ""
            if auth.location is ApiKeyLocation.QUERY:
                rows = [("Query parameter", _code(f"?{auth.query_name}=<{auth.key_field}>"))]
            else:
                rows = [("Header", _code(f"{auth.header_name}: {prefix}<{auth.key_field}>"))]
        if isinstance(auth, (OAuth2AuthorizationCode, OAuth2ClientCredentials)):
            if auth.profile_endpoints:
                rows.append(("A profile must set", ", ".join(_code(n) for n in auth.profile_endpoints)))
            if auth.profile_options:
                rows.append(("A profile may choose", ", ".join(_code(n) for n in auth.profile_options)))
        rejected = getattr(auth, "rejected_guidance", "")
        if rejected:
            rows.append(("When the provider refuses the credentials", _cell(rejected)))
        blocks.append(_table(("Setting", "Value"), rows))
        fields = decl.fields_for(auth.key)
        if fields:
            blocks.append(["Credential fields, in form order:"])
            blocks.append(
                _table(
                    ("Field", "Label", "Kind", "Required", "Supplied by", "Help"),
                    [
                        (
                            _code(f.name),
                            _cell(f.label),
                            f.kind.value,
                            "yes" if f.required else "no",
                            "the app registration (profile)"
                            if f.level is FieldLevel.APP
                            else "the end user (each connection)",
                            _cell(f.help),
                        )
                        for f in fields
                    ],
                )
            )
    return blocks


def _environment_section(decl: ProviderDeclaration) -> list[list[str]]:
    default = decl.environment()
    blocks: list[list[str]] = [["## Environments"]]
    for env in decl.environments:
        marker = ", the default" if env.key == default.key else ""
        blocks.append([f"### {_text(env.label)}"])
        lines = [f"Key {_code(env.key)}{marker}."]
        if env.description:
            lines[0] += f" {_text(env.description)}"
        blocks.append(lines)
        creds = (
            f"{_text(env.credential_set_label)} ({_code(env.credential_set)})"
            if env.credential_set_label
            else _code(env.credential_set)
        )
        items = [f"- Credential set: {creds}", f"- API base URL: {_code(env.api_base_url)}"]
        for label, url in (
            ("Authorize URL", env.authorize_url),
            ("Token URL", env.token_url),
            ("Revocation URL", env.revocation_url),
        ):
            if url:
                items.append(f"- {label} (overrides the auth type's): {_code(url)}")
        if env.web_url:
            items.append(f"- Web app: {_url(env.web_url)}")
        blocks.append(items)
    return blocks


def _callback_section(decl: ProviderDeclaration) -> list[list[str]]:
    callback = decl.callback
    if callback is None:
        return []
    lines = [
        f"The provider redirects to your platform's base URL followed by {_code(callback.path)}. "
        "Register that URL as the app's redirect URI. The base URL comes from a plugin's "
        f"{_code('connector_core_callback_base_url')} hook or {_code('CONNECTOR_CALLBACK_BASE_URL')}"
        + (
            f"; without either, the provider's default gives {_code(callback.url(callback.default_base_url))}."
            if callback.default_base_url
            else "; the provider declares no default."
        )
    ]
    return [["## Callback URL"], lines]


def _scope_section(decl: ProviderDeclaration) -> list[list[str]]:
    catalogue = decl.scope_catalogue
    if catalogue is None:
        return []
    groups = len(catalogue.groups)
    count = f"{len(catalogue.names)} scopes in {groups} feature area{'s' if groups != 1 else ''}."
    if catalogue.open:
        count += " The catalogue is open: a profile may request any scope token (RFC 6749 §3.3) besides these."
    defaults = _codes(catalogue.default_scopes) or "none (the authorization server's default)"
    blocks: list[list[str]] = [
        ["## Scopes"],
        [
            count,
            "",
            f"- Default scopes (requested when a profile names neither scopes nor actions): {defaults}",
            f"- Minimum scopes (every connection needs them): {_codes(catalogue.minimum_scopes) or 'none'}",
        ],
    ]
    for group in catalogue.groups:
        blocks.append([f"### {_text(group.label)}"])
        intro = f"Feature area {_code(group.key)}."
        if group.description:
            intro += f" {_text(group.description)}"
        blocks.append([intro])
        rows = []
        for scope in group.scopes:
            flags = [
                flag
                for flag, on in (
                    ("default", scope.name in catalogue.default_scopes),
                    ("minimum", scope.name in catalogue.minimum_scopes),
                    ("sensitive", scope.sensitive),
                )
                if on
            ]
            rows.append(
                (
                    _code(scope.name),
                    scope.access.value,
                    _cell(scope.module or ""),
                    ", ".join(flags),
                    _cell(scope.description),
                    "<br>".join(_cell(note) for note in scope.notes),
                )
            )
        blocks.append(_table(("Scope", "Access", "Module", "Flags", "Description", "Notes"), rows))
    return blocks


def _action_section(decl: ProviderDeclaration) -> list[list[str]]:
    if not decl.actions:
        return []
    rows = [
        (
            _code(a.key),
            _cell(a.label),
            _codes(a.scopes),
            _code(f"{a.method or ''} {a.path or ''}".strip()) if (a.method or a.path) else "",
            _cell(a.description),
        )
        for a in decl.actions
    ]
    return [
        ["## Actions"],
        [
            "A profile can enable these; its least scope set is their scopes plus the minimum "
            f"({_code(f'connector scopes {decl.key} --for-actions ACTION...')})."
        ],
        _table(("Action", "Label", "Scopes", "Request", "Description"), rows),
    ]


def _connection_test_section(decl: ProviderDeclaration) -> list[list[str]]:
    test = decl.connection_test
    if test is None:
        return []
    needing = f", needing {_code(test.scope)}," if test.scope else ""
    line = f"{_code(f'{test.method} {test.path}')}{needing} passes when it answers {test.expected_status}."
    if test.description:
        line += f" {_text(test.description)}"
    blocks = [["## Connection test"], [line]]
    if test.json_body is not None:
        blocks.append(["Request body:", "", "```json", test.json_body, "```"])
    return blocks


def _reconnect_section(decl: ProviderDeclaration) -> list[list[str]]:
    policy = decl.reconnect_policy
    blocks: list[list[str]] = [["## Reconnecting"]]
    if policy is None:
        blocks.append(
            [
                f"Policy {_code(ReconnectKind.REAUTHORIZE.value)} (none declared): "
                f"{_RECONNECT_TEXT[ReconnectKind.REAUTHORIZE]}."
            ]
        )
        return blocks
    blocks.append([f"Policy {_code(policy.kind.value)}: {_RECONNECT_TEXT[policy.kind]}. {_text(policy.summary)}"])
    for proc in policy.procedures:
        blocks.extend(_procedure_blocks(proc))
    return blocks


def _checklist_section(decl: ProviderDeclaration) -> list[list[str]]:
    if not decl.connect_checklist:
        return []
    blocks: list[list[str]] = [
        ["## Before connecting"],
        [
            "What the end user does before connecting, in order. A connect page shows the procedures "
            f"of the chosen auth type and environment ({_code('ProviderDeclaration.checklist_for')})."
        ],
    ]
    for proc in decl.connect_checklist:
        blocks.extend(_procedure_blocks(proc))
    return blocks


def _procedure_blocks(proc: Procedure) -> list[list[str]]:
    """A procedure's heading, whom it is for, and its numbered steps."""
    where = (
        f"Only for the {_codes(proc.environments)} environment{'s' if len(proc.environments) > 1 else ''}."
        if proc.environments
        else "For every environment."
    )
    if proc.auth_types:
        plural = "s" if len(proc.auth_types) > 1 else ""
        where = f"Only with the {_codes(proc.auth_types)} auth type{plural}. {where}"
    if proc.url:
        where += f" At {_url(proc.url)}."
    steps = []
    for number, step in enumerate(proc.steps, 1):
        location = f" ({_text(step.location)})" if step.location else ""
        steps.append(f"{number}. {_text(step.text)}{location}")
    return [[f"### {_text(proc.title)}"], [where], steps]


def _setup_section(decl: ProviderDeclaration) -> list[list[str]]:
    guide = decl.setup_guide
    if guide is None:
        return []
    blocks: list[list[str]] = [["## Setup guide"], [f"{_text(guide.title)}."]]
    steps: list[str] = []
    for number, step in enumerate(guide.steps, 1):
        optional = " (optional)" if step.optional else ""
        steps.append(f"{number}. **{_text(step.title)}**{optional}")
        steps.extend(f"    - {_text(detail)}" for detail in step.details)
        if step.url:
            steps.append(f"    - At {_url(step.url)}")
    blocks.append(steps)
    if decl.callback is not None:
        blocks.append(["The redirect URI to register is described under [Callback URL](#callback-url)."])
    return blocks


# -------------------------------------------------------------------- CLI reference


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.option_strings:
        return action.dest.upper()
    return action.dest.upper()


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0 and not isinstance(
        action, (argparse._StoreConstAction, argparse._CountAction, argparse._VersionAction, argparse._HelpAction)
    )


def _argument(action: argparse.Action) -> str:
    """One argument as written in a usage line, without the optional brackets."""
    if isinstance(action, argparse._SubParsersAction):
        return f"{_metavar(action)} ..."
    name = action.option_strings[-1] if action.option_strings else ""
    if not _takes_value(action):
        return name
    value = _metavar(action)
    if action.nargs == argparse.REMAINDER:
        value = "..."
    elif action.nargs in ("+", argparse.ONE_OR_MORE):
        value = f"{value}..."
    elif action.nargs in ("*", argparse.ZERO_OR_MORE):
        value = f"[{value}...]"
    elif action.nargs == "?" and action.option_strings:
        value = f"[{value}]"
    return f"{name} {value}".strip()


def _usage(parser: argparse.ArgumentParser) -> str:
    parts = [parser.prog]
    grouped: dict[int, argparse._MutuallyExclusiveGroup] = {}
    for exclusive in parser._mutually_exclusive_groups:
        for member in exclusive._group_actions:
            grouped[id(member)] = exclusive
    done: set[int] = set()
    visible = [a for a in parser._actions if not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS]
    for action in [a for a in visible if a.option_strings] + [a for a in visible if not a.option_strings]:
        group = grouped.get(id(action))
        if group is not None:
            if id(group) in done:
                continue
            done.add(id(group))
            members = " | ".join(_argument(a) for a in group._group_actions if a.help != argparse.SUPPRESS)
            parts.append(f"({members})" if group.required else f"[{members}]")
            continue
        text = _argument(action)
        optional = (action.option_strings and not action.required) or (
            not action.option_strings and action.nargs in ("?", "*")
        )
        parts.append(f"[{text}]" if optional else text)
    return " ".join(parts)


def _describe(action: argparse.Action) -> str:
    text = _cell(action.help or "")
    extras: list[str] = []
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        extras.append(f"One of: {_codes(str(c) for c in action.choices)}.")
    default = action.default
    if (
        _takes_value(action)
        and action.option_strings
        and default not in (None, False, [], argparse.SUPPRESS)
        and not isinstance(action, argparse._AppendAction)
        and "default" not in text.lower()
    ):
        extras.append(f"Default: {_code(str(default))}.")
    if extras and text and not text.endswith("."):
        text += "."
    return " ".join([text, *extras]).strip()


def _command_help(parser: argparse.ArgumentParser, name: str) -> str | None:
    sub = _subparsers(parser)
    if sub is None:
        return None
    for choice in sub._choices_actions:
        if choice.dest == name:
            return choice.help
    return None


def _command_blocks(parser: argparse.ArgumentParser, depth: int, help_text: str | None, out: list[list[str]]) -> None:
    out.append([f"{'#' * min(depth, 6)} {_code(parser.prog)}"])
    if help_text:
        out.append([_text(help_text[0].upper() + help_text[1:]) + ("" if help_text.endswith(".") else ".")])
    if parser.description and parser.description != help_text:
        out.append([_text(parser.description)])
    out.append(["```text", _usage(parser), "```"])
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        name = ", ".join(action.option_strings) if action.option_strings else _metavar(action)
        shown = _argument(action) if action.option_strings and _takes_value(action) else name
        if action.option_strings and _takes_value(action) and len(action.option_strings) > 1:
            shown = ", ".join(action.option_strings[:-1]) + ", " + _argument(action)
        rows.append((_code(shown), _describe(action)))
    if rows:
        out.append(_table(("Argument", "Description"), rows))
    sub = _subparsers(parser)
    if sub is None:
        return
    commands = [(name, child) for name, child in sub.choices.items() if child.prog.endswith(f" {name}")]
    out.append(
        ["Sub-commands: " + ", ".join(f"[{_code(name)}](#{_anchor(child.prog)})" for name, child in commands) + "."]
    )
    for name, child in commands:
        _command_blocks(child, depth + 1, _command_help(parser, name), out)


def _anchor(prog: str) -> str:
    """The heading id Python-Markdown's toc extension gives ``## `PROG```."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", prog).strip().lower())


def render_cli_reference(parser: argparse.ArgumentParser) -> str:
    """Every command and argument of ``parser`` (from :func:`connector_core.cli.build_parser`)."""
    blocks: list[list[str]] = [
        [
            "<!-- Generated from the command-line parser by 'connector docs --cli-reference'. "
            "Do not edit by hand: a test fails when this page drifts from the parser. -->"
        ],
        ["# CLI reference"],
        [
            f"Every command of {_code(parser.prog)} and its arguments, generated from the parser itself. "
            "Exit statuses, error messages and the JSON shapes are described in [the command line](cli.md). "
            f"Plugins may add commands of their own; {_code(parser.prog + ' --help')} lists them."
        ],
    ]
    _command_blocks(parser, 2, None, blocks)
    return _join(blocks)


# ------------------------------------------------------------------- hook reference


def _rst_to_markdown(text: str) -> str:
    def role(match: re.Match[str]) -> str:
        target = match.group(2)
        return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"

    text = re.sub(r":(?:class|func|mod|meth|attr|data|exc):`(~?)([^`]+)`", role, text)
    text = text.replace("``", "`")
    return text


def _paragraphs(doc: str) -> list[list[str]]:
    """A docstring's paragraphs and bullet lists, each as Markdown lines."""
    blocks: list[list[str]] = []
    for chunk in re.split(r"\n\s*\n", doc.strip()):
        lines = [line.strip() for line in chunk.splitlines()]
        if lines and lines[0].startswith("* "):
            items: list[str] = []
            for line in lines:
                if line.startswith("* "):
                    items.append("- " + line[2:])
                else:
                    items[-1] += " " + line
            blocks.append([_rst_to_markdown(" ".join(i.split())) for i in items])
        else:
            blocks.append([_rst_to_markdown(" ".join(" ".join(lines).split()))])
    return blocks


def hook_signature(name: str) -> str:
    """``name(args) -> result`` of one hook specification, from its source, on one line."""
    source = inspect.getsource(getattr(hookspecs, name))
    head = source[source.index("def ") + 4 : source.index(":\n")]
    return " ".join(head.split()).replace("( ", "(").replace(", )", ")")


def render_hook_reference() -> str:
    """Each hook specification: its signature, how results combine, and its docstring."""
    names = sorted(hookspecs.__all__, key=lambda n: inspect.getsourcelines(getattr(hookspecs, n))[1])
    blocks: list[list[str]] = [
        [
            "<!-- Generated from connector_core/hookspecs.py by 'connector docs --hook-reference'. "
            "Do not edit by hand: a test fails when this page drifts from the specs. -->"
        ],
        ["# Hook reference"],
        [
            "A plugin implements any of these hooks with `@connector_core.hookimpl`; an implementation "
            "may take fewer arguments than the specification names, and the names must match. Specs "
            "only ever gain arguments. The records they return are described in "
            "[Writing a provider plugin](writing-a-provider.md); loading and failure isolation in "
            "[the architecture](architecture.md)."
        ],
    ]
    module_doc = _paragraphs(hookspecs.__doc__ or "")
    start = next((i for i, block in enumerate(module_doc) if block[0].startswith("How results combine")), 1)
    blocks.extend(module_doc[start:])
    for name in names:
        func = getattr(hookspecs, name)
        opts = getattr(func, f"{PROJECT_NAME}_spec", {}) or {}
        combine = (
            "`firstresult`: the first implementation returning something other than `None` answers."
            if opts.get("firstresult")
            else "Collected: every plugin's implementation is called."
        )
        blocks.append([f"## `{name}`"])
        blocks.append(["```python", f"def {hook_signature(name)}: ...", "```"])
        blocks.append([combine])
        blocks.extend(_paragraphs(inspect.getdoc(func) or ""))
    return _join(blocks)
