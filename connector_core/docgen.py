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
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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

__all__ = ["FORMATS", "render_api_reference", "render_cli_reference", "render_hook_reference", "render_provider"]

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


def _idle_limit(seconds: int | None) -> str:
    """What a provider page says of its refresh tokens' idle limit (the keeper acts on it)."""
    if seconds is None:
        return "not declared (if they do, run the keeper with `--refresh-every`)"
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit} (the keeper refreshes after half of that)"
    return f"{seconds} seconds (the keeper refreshes after half of that)"


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
            rows.append(("Refresh tokens die unused after", _idle_limit(auth.refresh_idle_limit)))
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


# -------------------------------------------------------------------- API reference

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SCHEMA_REF = "#/components/schemas/"
_ID_COUNT = re.compile(r"^(.*)_([0-9]+)$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)


def _unique(anchor: str, taken: set[str]) -> str:
    """``anchor``, or the ``_1``, ``_2``... form Python-Markdown's toc gives a repeated heading."""
    if anchor in taken or not anchor:
        match = _ID_COUNT.match(anchor)
        base, count = (match.group(1), int(match.group(2))) if match else (anchor, 0)
        count += 1
        while f"{base}_{count}" in taken:
            count += 1
        anchor = f"{base}_{count}"
    taken.add(anchor)
    return anchor


def _span(value: str) -> str:
    """An inline code span for Python-Markdown, which needs no escaped pipe inside a code span,
    even in a table (an escaped one would show its backslash)."""
    flat = " ".join(value.split())
    fence = "``" if "`" in flat else "`"
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _spans(values: Iterable[str]) -> str:
    return ", ".join(_span(v) for v in values)


def _prose(value: str, *, cell: bool = False) -> str:
    """An OpenAPI ``description`` (CommonMark) on one line: its Markdown kept, but outside code
    spans raw HTML escaped and, in a table cell, pipes; a leading ``#``, ``>`` or list marker
    escaped (no heading, quote or list)."""
    flat = " ".join(value.split())

    def plain(text: str) -> str:
        text = text.replace("<", "&lt;").replace(">", "&gt;")
        return text.replace("|", "\\|") if cell else text

    out: list[str] = []
    last = 0
    for match in _CODE_SPAN.finditer(flat):
        out.append(plain(flat[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(plain(flat[last:]))
    text = "".join(out)
    if text.startswith(("#", "&gt;", "-", "+", "=", "*")):
        text = "\\" + text
    return text


def _paragraphs_of(value: str) -> list[list[str]]:
    """A multi-paragraph description, each paragraph on one line."""
    return [[_prose(chunk)] for chunk in re.split(r"\n\s*\n", value.strip()) if chunk.strip()]


def _sentence(value: str, *, cell: bool = False) -> str:
    """A summary or description as a sentence: capitalised, ending with a full stop."""
    text = _prose(value, cell=cell)
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _json_value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _rules(rules: Sequence[str]) -> str:
    """Constraints as one sentence."""
    text = "; ".join(rules)
    return text[0].upper() + text[1:] + "."


def _count(low: object, high: object, unit: str) -> str | None:
    if low is not None and high is not None:
        return f"{low} to {high} {unit}"
    if low is not None:
        return f"at least {low} {unit}"
    if high is not None:
        return f"at most {high} {unit}"
    return None


class _ApiPage:
    """One rendering of an OpenAPI document: the document, and the heading ids the page's
    headings get, in page order, as Python-Markdown's toc extension gives them."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        if not isinstance(document, Mapping):
            raise ValidationError("document", "expected an OpenAPI document (a JSON object)")
        version = document.get("openapi")
        if not isinstance(version, str) or not version.startswith("3."):
            raise ValidationError("openapi", f"expected an OpenAPI 3 document version such as '3.1.0', got {version!r}")
        self.doc = document
        self.paths = self._mapping(document.get("paths", {}), "paths")
        components = self._mapping(document.get("components", {}), "components")
        self.components = components
        self.schemas = self._mapping(components.get("schemas", {}), "components.schemas")
        self.operations: list[tuple[str, str, Mapping[str, Any], list[Mapping[str, Any]]]] = []
        for path, item in self.paths.items():
            item = self._resolve(self._mapping(item, f"paths.{path}"))
            shared = [self._resolve(p) for p in item.get("parameters", [])]
            for method in item:
                if method in _METHODS:
                    op = self._mapping(item[method], f"paths.{path}.{method}")
                    self.operations.append((path, method, op, shared))
        self.anchors: dict[tuple[str, str], str] = {}
        taken: set[str] = set()
        headings: list[tuple[str, str]] = [("page", "API reference"), ("section", "Security")]
        headings.append(("section", "Operations"))
        seen_paths: list[str] = []
        for path, method, _, _ in self.operations:
            if path not in seen_paths:
                seen_paths.append(path)
                headings.append(("path", path))
            headings.append(("operation", f"{method.upper()} {path}"))
        headings.append(("section", "Schemas"))
        headings.extend(("schema", name) for name in self.schema_names)
        for kind, text in headings:
            self.anchors[(kind, text)] = _unique(_anchor(text), taken)

    @property
    def schema_names(self) -> list[str]:
        return sorted(self.schemas, key=lambda name: (name.lower(), name))

    @staticmethod
    def _mapping(value: object, field: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise ValidationError(field, f"expected a JSON object, got {type(value).__name__}")
        return value

    def _resolve(self, value: object) -> Mapping[str, Any]:
        """A parameter, response, request body or path item, its local ``$ref`` followed."""
        seen: set[str] = set()
        while isinstance(value, Mapping) and "$ref" in value:
            ref = value["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/") or ref in seen:
                raise ValidationError("$ref", f"expected a reference into this document, got {ref!r}")
            seen.add(ref)
            target: object = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, Mapping) or part not in target:
                    raise ValidationError("$ref", f"{ref!r} names nothing in the document")
                target = target[part]
            value = target
        if not isinstance(value, Mapping):
            raise ValidationError("$ref", f"expected a JSON object, got {type(value).__name__}")
        return value

    # -- schemas

    def link(self, ref: object) -> str:
        """A ``$ref`` to a component schema as a link to its section."""
        if not isinstance(ref, str):
            raise ValidationError("$ref", f"expected a string, got {type(ref).__name__}")
        if ref.startswith(_SCHEMA_REF):
            name = ref[len(_SCHEMA_REF) :].replace("~1", "/").replace("~0", "~")
            if name not in self.schemas:
                raise ValidationError("$ref", f"{ref!r} is not in components.schemas")
            return f"[{_span(name)}](#{self.anchors[('schema', name)]})"
        return _span(ref)

    def type_of(self, schema: object) -> str:
        """What a value of ``schema`` is, in a few words (Markdown)."""
        if schema is True or schema == {}:
            return "any"
        if schema is False:
            return "nothing"
        if not isinstance(schema, Mapping):
            raise ValidationError("schema", f"expected a JSON object or a boolean, got {type(schema).__name__}")
        if "$ref" in schema:
            return self.link(schema["$ref"])
        for key, word in (("oneOf", " or "), ("anyOf", " or "), ("allOf", " and ")):
            if key in schema:
                return word.join(self.type_of(part) for part in schema[key])
        if "const" in schema:
            return f"{_span(_json_value(schema['const']))} (constant)"
        declared = schema.get("type")
        if declared is None:
            declared = "object" if "properties" in schema else "array" if "items" in schema else None
        if declared is None:
            return "any" if "enum" not in schema else "enum"
        kinds = [declared] if isinstance(declared, str) else list(declared)
        words: list[str] = []
        for kind in kinds:
            if kind == "array" and "items" in schema:
                inner = self.type_of(schema["items"])
                words.append(f"array of ({inner})" if " or " in inner or " and " in inner else f"array of {inner}")
            elif (
                kind == "object"
                and "properties" not in schema
                and isinstance(schema.get("additionalProperties"), Mapping)
            ):
                words.append(f"object of {self.type_of(schema['additionalProperties'])} values")
            else:
                words.append(str(kind))
        return " or ".join(words)

    def constraints(self, schema: object) -> list[str]:
        """The rules a value of ``schema`` must follow, each as a few words (Markdown)."""
        if not isinstance(schema, Mapping) or "$ref" in schema:
            return []
        rules: list[str] = []
        for key in ("oneOf", "anyOf", "allOf"):
            for part in schema.get(key, ()):
                rules.extend(self.constraints(part))
        if "format" in schema:
            rules.append(f"format {_span(str(schema['format']))}")
        if "enum" in schema:
            rules.append("one of " + ", ".join(_span(_json_value(v)) for v in schema["enum"]))
        if "pattern" in schema:
            rules.append(f"pattern {_span(str(schema['pattern']))}")
        for low, high, unit in (
            ("minLength", "maxLength", "characters"),
            ("minItems", "maxItems", "items"),
            ("minProperties", "maxProperties", "fields"),
        ):
            words = _count(schema.get(low), schema.get(high), unit)
            if words:
                rules.append(words)
        if "minimum" in schema and "maximum" in schema:
            rules.append(f"from {schema['minimum']} to {schema['maximum']}")
        elif "minimum" in schema:
            rules.append(f"at least {schema['minimum']}")
        elif "maximum" in schema:
            rules.append(f"at most {schema['maximum']}")
        if "exclusiveMinimum" in schema:
            rules.append(f"more than {schema['exclusiveMinimum']}")
        if "exclusiveMaximum" in schema:
            rules.append(f"less than {schema['exclusiveMaximum']}")
        if "multipleOf" in schema:
            rules.append(f"a multiple of {schema['multipleOf']}")
        if schema.get("uniqueItems"):
            rules.append("no repeated items")
        if schema.get("additionalProperties") is False:
            rules.append("no other fields")
        items = schema.get("items")
        if isinstance(items, Mapping) and "properties" not in items:
            inner = self.constraints(items)
            if inner:
                rules.append("each: " + ", ".join(inner))
        if "default" in schema:
            rules.append(f"default {_span(_json_value(schema['default']))}")
        for flag, words in (("readOnly", "read-only"), ("writeOnly", "write-only"), ("deprecated", "deprecated")):
            if schema.get(flag):
                rules.append(words)
        return rules

    def describe(self, schema: object, description: object = None) -> str:
        """A table cell: the description, then the constraints as a sentence."""
        text = description if isinstance(description, str) else None
        if text is None and isinstance(schema, Mapping):
            found = schema.get("description", schema.get("title"))
            text = found if isinstance(found, str) else None
        parts = [_sentence(text, cell=True)] if text else []
        rules = self.constraints(schema)
        if rules:
            parts.append(_rules(rules))
        return " ".join(parts)

    def field_rows(self, schema: Mapping[str, Any], prefix: str, rows: list[tuple[str, ...]]) -> None:
        """One row per property, nested inline objects flattened (``owner.tags``, ``data[].at``)."""
        required = set(schema.get("required", ()))
        properties = self._mapping(schema.get("properties", {}), "properties")
        for name, sub in properties.items():
            path = prefix + name
            rows.append((_span(path), self.type_of(sub), "yes" if name in required else "no", self.describe(sub)))
            if isinstance(sub, Mapping) and "properties" in sub and "$ref" not in sub:
                self.field_rows(sub, path + ".", rows)
            elif isinstance(sub, Mapping) and isinstance(sub.get("items"), Mapping) and "properties" in sub["items"]:
                self.field_rows(sub["items"], path + "[].", rows)

    def schema_blocks(self, schema: object) -> list[list[str]]:
        """A schema's own section: its description, then its fields or what it is."""
        blocks: list[list[str]] = []
        if isinstance(schema, Mapping) and isinstance(schema.get("description"), str):
            blocks.extend(_paragraphs_of(schema["description"]))
        if isinstance(schema, Mapping) and "properties" in schema and "$ref" not in schema:
            rows: list[tuple[str, ...]] = []
            self.field_rows(schema, "", rows)
            blocks.append(_table(("Field", "Type", "Required", "Description"), rows))
            rules = self.constraints(schema)
            if "no other fields" in rules:
                rules.remove("no other fields")
                blocks.append(["No other fields are accepted."])
            if rules:
                blocks.append([f"The object: {_rules(rules)}"])
        else:
            rules = self.constraints(schema)
            blocks.append([f"Type: {self.type_of(schema)}." + (f" {_rules(rules)}" if rules else "")])
        return blocks

    # -- operations

    def security_of(self, op: Mapping[str, Any]) -> str:
        requirements = op.get("security", self.doc.get("security", []))
        if not requirements:
            return "none"
        options = []
        for requirement in requirements:
            names = [
                f"[{_span(name)}](#{self.anchors[('section', 'Security')]})"
                + (f" ({_spans(scopes)})" if scopes else "")
                for name, scopes in requirement.items()
            ]
            options.append(" and ".join(names) if names else "none")
        return " or ".join(options)

    def parameters(self, op: Mapping[str, Any], shared: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        merged: dict[tuple[str, str], Mapping[str, Any]] = {}
        for param in [*shared, *(self._resolve(p) for p in op.get("parameters", []))]:
            merged[(str(param.get("name")), str(param.get("in")))] = param
        return list(merged.values())

    def content(self, content: Mapping[str, Any], headers: Mapping[str, Any] | None = None) -> str:
        parts = []
        for media, body in content.items():
            schema = body.get("schema", {}) if isinstance(body, Mapping) else {}
            kind = self.type_of(schema)
            if isinstance(schema, Mapping) and "properties" in schema and "$ref" not in schema:
                kind = "object (fields below)"
            parts.append(f"{_span(media)}: {kind}")
        for name in headers or {}:
            parts.append(f"header {_span(name)}")
        return "<br>".join(parts) if parts else "no body"

    def inline_tables(self, label: str, content: Mapping[str, Any]) -> list[list[str]]:
        blocks: list[list[str]] = []
        for media, body in content.items():
            schema = body.get("schema") if isinstance(body, Mapping) else None
            if isinstance(schema, Mapping) and "properties" in schema and "$ref" not in schema:
                rows: list[tuple[str, ...]] = []
                self.field_rows(schema, "", rows)
                blocks.append([f"{label}, {_span(media)}:"])
                blocks.append(_table(("Field", "Type", "Required", "Description"), rows))
        return blocks

    def operation_blocks(
        self, path: str, method: str, op: Mapping[str, Any], shared: list[Mapping[str, Any]]
    ) -> list[list[str]]:
        blocks: list[list[str]] = [[f"### {_span(f'{method.upper()} {path}')}"]]
        if isinstance(op.get("summary"), str):
            blocks.append([_sentence(op["summary"])])
        if isinstance(op.get("description"), str):
            blocks.extend(_paragraphs_of(op["description"]))
        facts = []
        if op.get("operationId"):
            facts.append(f"- Operation id: {_span(str(op['operationId']))}")
        if op.get("tags"):
            facts.append(f"- Tags: {_spans(str(t) for t in op['tags'])}")
        facts.append(f"- Security: {self.security_of(op)}")
        if op.get("deprecated"):
            facts.append("- Deprecated.")
        blocks.append(facts)
        blocks.extend(self.parameter_blocks(self.parameters(op, shared)))
        if "requestBody" in op:
            blocks.extend(self.body_blocks(self._resolve(op["requestBody"])))
        blocks.extend(self.response_blocks(self._mapping(op.get("responses", {}), "responses")))
        return blocks

    def parameter_blocks(self, params: list[Mapping[str, Any]]) -> list[list[str]]:
        if not params:
            return []
        rows = []
        for param in params:
            schema = param.get("schema")
            if schema is None and isinstance(param.get("content"), Mapping) and param["content"]:
                schema = next(iter(param["content"].values())).get("schema", {})
            rows.append(
                (
                    _span(str(param.get("name"))),
                    str(param.get("in")),
                    self.type_of(schema if schema is not None else {}),
                    "yes" if param.get("required") else "no",
                    self.describe(schema, param.get("description")),
                )
            )
        return [["Parameters:"], _table(("Name", "In", "Type", "Required", "Description"), rows)]

    def body_blocks(self, body: Mapping[str, Any]) -> list[list[str]]:
        content = self._mapping(body.get("content", {}), "requestBody.content")
        need = "required" if body.get("required") else "optional"
        line = f"Request body ({need}): {self.content(content)}."
        if isinstance(body.get("description"), str):
            line += " " + _sentence(body["description"])
        return [[line], *self.inline_tables("Request body", content)]

    def response_blocks(self, responses: Mapping[str, Any]) -> list[list[str]]:
        if not responses:
            return []
        rows = []
        inline: list[list[str]] = []
        for status in sorted(responses, key=lambda s: (str(s) == "default", str(s))):
            answer = self._resolve(responses[status])
            content = self._mapping(answer.get("content", {}), "content")
            headers = self._mapping(answer.get("headers", {}), "headers")
            default = str(status) == "default"
            said = _sentence(str(answer.get("description", "")), cell=True)
            rows.append(("any other" if default else _span(str(status)), said, self.content(content, headers)))
            label = "Response for any other status" if default else f"Response {_span(str(status))}"
            inline.extend(self.inline_tables(label, content))
        return [["Responses:"], _table(("Status", "Description", "Content"), rows), *inline]

    # -- the page

    def render(self) -> str:
        info = self._mapping(self.doc.get("info", {}), "info")
        title = str(info.get("title", "the API"))
        blocks: list[list[str]] = [
            [
                "<!-- Generated from the OpenAPI document by 'connector docs --api-reference'. "
                "Do not edit by hand: a test fails when this page drifts from the document. -->"
            ],
            ["# API reference"],
            [
                f"Every operation of {_text(title)} and every schema it uses, generated from its OpenAPI "
                f"{_text(str(self.doc['openapi']))} document."
            ],
        ]
        if isinstance(info.get("description"), str):
            blocks.extend(_paragraphs_of(info["description"]))
        servers = [s for s in self.doc.get("servers", []) if isinstance(s, Mapping) and "url" in s]
        if servers:
            lines = [
                "Paths are relative to the server:" if len(servers) == 1 else "Paths are relative to a server:",
                "",
            ]
            for server in servers:
                extra = f": {_prose(server['description'])}" if isinstance(server.get("description"), str) else ""
                lines.append(f"- {_span(str(server['url']))}{extra}")
            blocks.append(lines)
        blocks.extend(self.security_blocks())
        blocks.append(["## Operations"])
        if self.operations:
            rows = []
            for path, method, op, _ in self.operations:
                name = f"{method.upper()} {path}"
                summary = _sentence(op["summary"], cell=True) if isinstance(op.get("summary"), str) else ""
                rows.append((f"[{_span(name)}](#{self.anchors[('operation', name)]})", summary))
            blocks.append(_table(("Operation", "Summary"), rows))
        else:
            blocks.append(["The document has no operations."])
        current = None
        for path, method, op, shared in self.operations:
            if path != current:
                current = path
                blocks.append([f"## {_span(path)}"])
                item = self._resolve(self.paths[path])
                for key in ("summary", "description"):
                    if isinstance(item.get(key), str):
                        blocks.extend(_paragraphs_of(item[key]))
            blocks.extend(self.operation_blocks(path, method, op, shared))
        blocks.append(["## Schemas"])
        if not self.schemas:
            blocks.append(["The document declares no component schemas."])
        for name in self.schema_names:
            blocks.append([f"### {_span(name)}"])
            blocks.extend(self.schema_blocks(self.schemas[name]))
        return _join(blocks)

    def security_blocks(self) -> list[list[str]]:
        schemes = self._mapping(self.components.get("securitySchemes", {}), "components.securitySchemes")
        blocks: list[list[str]] = [["## Security"]]
        default = self.security_of({})
        blocks.append(
            [
                "Operations need no credentials unless they say otherwise."
                if default == "none"
                else f"Every operation needs {default} unless it says otherwise."
            ]
        )
        rows = []
        for name, raw in schemes.items():
            scheme = self._resolve(raw)
            kind = str(scheme.get("type", ""))
            if kind == "http":
                how = f"HTTP {_span(str(scheme.get('scheme', '')))}"
                if scheme.get("scheme", "").lower() == "bearer":
                    how += f": {_span('Authorization: Bearer KEY')}"
            elif kind == "apiKey":
                how = f"API key in the {scheme.get('in')} {_span(str(scheme.get('name')))}"
            elif kind == "openIdConnect":
                how = f"OpenID Connect, {_span(str(scheme.get('openIdConnectUrl')))}"
            else:
                how = kind
            rows.append((_span(name), how, _sentence(str(scheme.get("description", "")), cell=True)))
        if rows:
            blocks.append(_table(("Scheme", "How", "Description"), rows))
        return blocks


def render_api_reference(document: Mapping[str, Any]) -> str:
    """The Markdown reference of an OpenAPI 3 document (such as
    :func:`connector_core.serve.openapi.openapi_document`): the security schemes, an index of the
    operations, each operation under its path (parameters, request body, responses), then each
    component schema once, linked to from wherever a ``$ref`` names it.

    The page depends only on the document; a ``$ref`` naming nothing in it, or a part that is
    not what OpenAPI says, is a :class:`ValidationError` naming it.
    """
    return _ApiPage(document).render()
