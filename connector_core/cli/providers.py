"""``connector providers``: list installed providers, show what one declares, its setup
guide, and the JSON Schemas of its profile form and its connection form."""

from __future__ import annotations

import argparse
from typing import IO, TYPE_CHECKING

from ..errors import ConnectorError
from ..registries import Command
from ..serialize import declaration_to_data, to_data
from .output import EXIT_OK, Parser, add_json, emit_json, needs_subcommand, run_handler, table
from .parser import HELP

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..models import Procedure, ProviderDeclaration
    from ..plugins import Plugins

__all__ = ["COMMAND"]


def configure(providers: argparse.ArgumentParser) -> None:
    psub = providers.add_subparsers(dest="providers_command", metavar="SUBCOMMAND", parser_class=Parser)
    p = psub.add_parser("list", help="list installed providers")
    add_json(p)
    p.set_defaults(handler=_list)
    p = psub.add_parser("show", help="show everything a provider declares")
    p.add_argument("provider", metavar="PROVIDER")
    add_json(p)
    p.set_defaults(handler=_show)
    p = psub.add_parser("setup-guide", help="the one-time onboarding checklist with a provider")
    p.add_argument("provider", metavar="PROVIDER")
    add_json(p)
    p.set_defaults(handler=_setup_guide)
    p = psub.add_parser("schema", help="the profile form's JSON Schema (draft 2020-12), or the connection form's")
    p.add_argument("provider", metavar="PROVIDER")
    p.add_argument("--auth-type", metavar="KEY", help="the auth type (default: the provider's preferred one)")
    p.add_argument(
        "--connection",
        action="store_true",
        help="the form an end user fills in to connect (a service user's ID and token, an API key) instead",
    )
    p.set_defaults(handler=_schema)
    providers.set_defaults(handler=needs_subcommand(providers))


COMMAND = Command("providers", HELP["providers"], configure, run_handler)


def _list(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
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


def _show(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
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
    # Here, not at the top: `providers list` must not build the auth and declaration records (cold start).
    from ..models import (
        ApiKeyAuth,
        ApiKeyLocation,
        FieldLevel,
        HttpBasicAuth,
        OAuth2AuthorizationCode,
        OAuth2ClientCredentials,
        ReconnectKind,
    )

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
        elif isinstance(auth, OAuth2ClientCredentials):
            w(f"    token URL:       {auth.token_url}\n")
            w(f"    client auth:     {auth.client_auth_method.value}\n")
            w(f"    scope separator: {auth.scope_separator!r}\n")
            for name, value in auth.extra_token_params:
                w(f"    extra parameter: {name}={value}\n")
        elif isinstance(auth, HttpBasicAuth):
            w(f"    username field: {auth.username_field}; password field: {auth.password_field}\n")
        elif isinstance(auth, ApiKeyAuth):
            if auth.location is ApiKeyLocation.QUERY:
                w(f"    query parameter: ?{auth.query_name}=<{auth.key_field}>\n")
            else:
                w(f"    header: {auth.header_name}: {auth.prefix + ' ' if auth.prefix else ''}<{auth.key_field}>\n")
        if isinstance(auth, (OAuth2AuthorizationCode, OAuth2ClientCredentials)):
            if auth.profile_endpoints:
                w(f"    a profile must set (--endpoint NAME=URL): {', '.join(auth.profile_endpoints)}\n")
            if auth.profile_options:
                w(f"    a profile may choose (--endpoint NAME=VALUE): {', '.join(auth.profile_options)}\n")
        rejected = getattr(auth, "rejected_guidance", "")
        if rejected:
            w(f"    when refused: {rejected}\n")
        user = decl.fields_for(auth.key, FieldLevel.USER)
        if isinstance(auth, OAuth2AuthorizationCode):
            w("    connect: a person authorizes at the provider (connector connect PROFILE)\n")
        elif isinstance(auth, OAuth2ClientCredentials):
            w("    connect: no end user; the profile's client fetches a token (connector connect PROFILE)\n")
        elif user:
            names = ", ".join(f.name for f in user)
            w(f"    connect: each connection holds the end user's {names} (connector connect PROFILE --help)\n")
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
        w(f"\nConnection test: {t.method} {t.path}{f' (needs {t.scope})' if t.scope else ''}\n")
        if t.description:
            w(f"  {t.description}\n")

    if decl.connect_checklist:
        w("\nBefore connecting\n")
        for proc in decl.connect_checklist:
            _procedure(w, proc)

    policy = decl.reconnect_policy
    w("\nReconnect policy: ")
    if policy is None:
        w(f"{ReconnectKind.REAUTHORIZE.value}\n")
    else:
        w(f"{policy.kind.value}\n  {policy.summary}\n")
        for proc in policy.procedures:
            _procedure(w, proc)
    if decl.setup_guide is not None:
        w(f"\nSetup guide: {len(decl.setup_guide.steps)} steps (see 'connector providers setup-guide {p.key}')\n")


def _procedure(w: Callable[[str], object], proc: Procedure) -> None:
    """A procedure's title, whom it is for and its numbered steps, indented."""
    scope = [
        f"{label}: {', '.join(keys)}"
        for label, keys in (("auth types", proc.auth_types), ("environments", proc.environments))
        if keys
    ]
    shown = f" ({'; '.join(scope)})" if scope else ""
    w(f"  {proc.title}{shown}\n")
    for number, step in enumerate(proc.steps, 1):
        where = f" [{step.location}]" if step.location else ""
        w(f"    {number}. {step.text}{where}\n")


def _setup_guide(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
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


def _schema(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    # Here, not at the top: only this sub-command needs it.
    from ..formschema import connection_form_schema, profile_form_schema

    form = connection_form_schema if args.connection else profile_form_schema
    emit_json(out, form(plugins.declaration(args.provider), args.auth_type))
    return EXIT_OK
