"""``connector profile``: create, list, show, update and delete connector profiles.

A provider's profile options come from its declaration: ``profile create PROVIDER``
parses the rest of the line with a parser built from the provider's credential fields.
Secret fields are read with :mod:`connector_core.cli.secrets`, never from argv.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, TYPE_CHECKING, Any

from ..errors import UnknownNameError, UsageError, ValidationError
from ..registries import Command
from .context import open_store
from .credentials import parse_quietly
from .output import Parser, add_json, emit_json, needs_subcommand, run_handler, table
from .parser import HELP
from .secrets import add_field_option, option_name, read_secret

if TYPE_CHECKING:
    from ..models import ProviderDeclaration
    from ..plugins import Plugins
    from ..profiles import Profile
    from ..secret import Secret
    from ..store import StoreLike

__all__ = ["COMMAND"]


def configure(profile: argparse.ArgumentParser) -> None:
    psub = profile.add_subparsers(dest="profile_command", metavar="SUBCOMMAND", parser_class=Parser)
    create = psub.add_parser(
        "create",
        help="create a profile: connector profile create PROVIDER --name NAME ... (PROVIDER --help for its fields)",
        add_help=True,
    )
    create.add_argument("provider", metavar="PROVIDER")
    create.add_argument("rest", nargs=argparse.REMAINDER, help="the provider's profile options")
    create.set_defaults(handler=_create)
    update = psub.add_parser("update", help="change a profile; it is validated again (NAME --help for options)")
    update.add_argument("name", metavar="NAME")
    update.add_argument("rest", nargs=argparse.REMAINDER, help="the provider's profile options")
    update.set_defaults(handler=_update)
    lst = psub.add_parser("list", help="list profiles")
    lst.add_argument("--provider", metavar="PROVIDER", help="only this provider's profiles")
    add_json(lst)
    lst.set_defaults(handler=_list)
    show = psub.add_parser("show", help="show a profile (secrets as ***)")
    show.add_argument("name", metavar="NAME")
    add_json(show)
    show.set_defaults(handler=_show)
    delete = psub.add_parser("delete", help="delete a profile")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--force", action="store_true", help="also delete the connections that use it")
    add_json(delete)
    delete.set_defaults(handler=_delete)
    profile.set_defaults(handler=needs_subcommand(profile))


COMMAND = Command("profile", HELP["profile"], configure, run_handler)


def _field_parser(prog: str, decl: ProviderDeclaration, *, update: bool) -> argparse.ArgumentParser:
    from ..models import FieldKind, FieldLevel  # here: `profile list` must not build the auth records

    parser = Parser(prog=prog, description=f"{decl.provider.display_name} connector profile options.")
    if update:
        parser.add_argument("--rename", metavar="NEW_NAME", help="give the profile a new name")
    else:
        parser.add_argument("--name", required=True, metavar="NAME", help="the profile's name, unique in the store")
    envs = ", ".join(f"{e.key} ({e.credential_set_label or e.credential_set})" for e in decl.environments)
    parser.add_argument("--environment", metavar="ENV", help=f"one of: {envs}")
    parser.add_argument("--auth-type", metavar="KEY", help=f"one of: {', '.join(a.key for a in decl.auth_types)}")
    seen: set[str] = set()
    for auth in decl.auth_types:
        fields = [f for f in decl.fields_for(auth.key, FieldLevel.APP) if f.kind is not FieldKind.SCOPE_LIST]
        shared = [option_name(f) for f in fields if f.name in seen]
        also = f" (also {', '.join(shared)}, above)" if shared else ""
        group = parser.add_argument_group(
            f"{auth.key} profile options ({auth.label})",
            f"With --auth-type {auth.key}{also}." + _holds_no_credentials(decl, auth.key, prefix=" "),
        )
        for field in fields:
            if field.name in seen:
                continue
            seen.add(field.name)
            add_field_option(group, field, field.name)
    if decl.scope_catalogue is not None:
        parser.add_argument(
            "--scopes",
            nargs="+",
            metavar="SCOPE",
            help="scopes to request (default: from --actions, else the provider's defaults)",
        )
        parser.add_argument("--actions", nargs="+", metavar="ACTION", help="actions to enable")
    parser.add_argument(
        "--redirect-uri",
        metavar="URL",
        help="the redirect URI registered on the provider's app (default: the callback URL)",
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="override one of the environment's URLs (authorize_url, token_url, revocation_url, "
        "api_base_url), e.g. to point at an emulator or a proxy, or set the authorization server's "
        "issuer or metadata_url (RFC 9207, RFC 8414), or a setting the auth type lets a profile choose "
        "(scope_separator, pkce, client_auth_method, connection_test_path; see 'providers show'); "
        "NAME= clears it",
    )
    add_json(parser)
    return parser


def _holds_no_credentials(
    decl: ProviderDeclaration, auth_key: str, *, prefix: str = "", profile: str = "PROFILE"
) -> str:
    """For an auth type whose credentials are the end user's: a profile of it holds none of
    them, each connection does (given to ``connector connect``). Empty for any other."""
    from ..models import FieldLevel  # here: `profile list` must not build the auth records

    user = decl.fields_for(auth_key, FieldLevel.USER)
    if not user:
        return ""
    names = ", ".join(f.name for f in user)
    return (
        f"{prefix}A {auth_key} profile holds no credentials of its own: each connection holds the end user's "
        f"({names}), given to 'connector connect {profile}' (its --help lists the options)."
    )


def _endpoints(opts: argparse.Namespace) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    if opts.redirect_uri is not None:
        found["redirect_uri"] = opts.redirect_uri
    for item in opts.endpoint:
        name, sep, url = item.partition("=")
        if not sep:
            raise UsageError(f"--endpoint: expected NAME=URL, got {item!r}")
        found[name.strip()] = url.strip() or None
    return found


def _fields_from_args(
    args: argparse.Namespace, decl: ProviderDeclaration, auth_key: str, *, prompt_missing: bool
) -> dict[str, str | Secret]:
    from ..models import FieldKind, FieldLevel  # here: `profile list` must not build the auth records

    values: dict[str, str | Secret] = {}
    for field in decl.fields_for(auth_key):
        if field.level is not FieldLevel.APP or field.kind is FieldKind.SCOPE_LIST:
            continue
        if field.secret:
            secret = read_secret(
                field,
                getattr(args, f"{field.name}__env", None),
                getattr(args, f"{field.name}__file", None),
                prompt=prompt_missing,
            )
            if secret is not None:
                values[field.name] = secret
        else:
            value = getattr(args, field.name, None)
            if value is not None:
                values[field.name] = value
    for field in decl.credential_fields:  # options of the other auth types must not be silently ignored
        if field.auth_type == auth_key or field.level is not FieldLevel.APP:
            continue
        dests = (field.name, f"{field.name}__env", f"{field.name}__file")
        given = any(getattr(args, d, None) is not None for d in dests)
        if given and field.name not in {f.name for f in decl.fields_for(auth_key)}:
            raise ValidationError(field.name, f"belongs to auth type {field.auth_type!r}, not {auth_key!r}")
    return values


def _print_warnings(warnings: tuple[str, ...]) -> None:
    for warning in warnings:
        sys.stderr.write(f"connector: warning: {warning}\n")


def _create(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from ..profiles import validate_profile  # here, not at the top: it builds the profile records

    decl = plugins.declaration(args.provider)
    opts = parse_quietly(_field_parser(f"connector profile create {decl.key}", decl, update=False), args.rest)
    auth = decl.auth_type(opts.auth_type)
    store = open_store(args)
    try:
        store.get_profile(opts.name, with_secrets=False)
    except UnknownNameError:
        pass
    else:
        raise ValidationError("name", f"a profile named {opts.name!r} already exists")
    draft = validate_profile(
        decl,
        name=opts.name,
        environment=opts.environment,
        auth_type=auth.key,
        values=_fields_from_args(opts, decl, auth.key, prompt_missing=True),
        scopes=getattr(opts, "scopes", None),
        endpoints=_endpoints(opts),
        actions=getattr(opts, "actions", None),
    )
    profile = store.create_profile(draft)
    _print_warnings(draft.warnings)
    return _emit_profile(out, profile, decl, opts.json, store, verb="created")


def _update(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from ..profiles import validate_profile  # here, not at the top: it builds the profile records

    store = open_store(args)
    previous = store.get_profile(args.name)
    decl = plugins.declaration(previous.provider)
    opts = parse_quietly(_field_parser(f"connector profile update {args.name}", decl, update=True), args.rest)
    auth_key = decl.auth_type(opts.auth_type or previous.auth_type).key
    draft = validate_profile(
        decl,
        name=opts.rename or previous.name,
        environment=opts.environment,
        auth_type=auth_key,
        values=_fields_from_args(opts, decl, auth_key, prompt_missing=False),
        scopes=getattr(opts, "scopes", None),
        endpoints=_endpoints(opts),
        actions=getattr(opts, "actions", None),
        previous=previous,
    )
    profile = store.update_profile(previous.name, draft)
    _print_warnings(draft.warnings)
    return _emit_profile(out, profile, decl, opts.json, store, verb="updated")


def _profile_data(profile: Profile, connections: int) -> dict[str, Any]:
    fields: dict[str, str] = dict(profile.values)
    for name in profile.secret_names:
        fields[name] = "***"
    return {
        "id": profile.id,
        "name": profile.name,
        "provider": profile.provider,
        "auth_type": profile.auth_type,
        "environment": profile.environment,
        "credential_set": profile.credential_set,
        "fields": fields,
        "scopes": list(profile.scopes),
        "actions": list(profile.actions),
        "endpoints": dict(profile.endpoints),
        "connections": connections,
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
    }


def _emit_profile(
    out: IO[str],
    profile: Profile,
    decl: ProviderDeclaration | None,
    as_json: bool,
    store: StoreLike,
    *,
    verb: str | None = None,
) -> int:
    data = _profile_data(profile, store.profile_connection_count(profile.name))
    if as_json:
        emit_json(out, data)
        return 0
    if verb:
        out.write(f"Profile {profile.name!r} {verb}.\n")
    note = _holds_no_credentials(decl, profile.auth_type, profile=profile.name) if decl is not None else ""
    labels: dict[str, str] = {}
    env_label = profile.environment
    if decl is not None:
        labels = {f.name: f.label for f in decl.fields_for(profile.auth_type)}
        try:
            env = decl.environment(profile.environment)
            env_label = f"{env.label} ({env.key}), uses {env.credential_set_label or env.credential_set}"
        except Exception:  # noqa: BLE001 - a provider that dropped the environment still shows the profile
            env_label = f"{profile.environment} (no longer declared by the provider)"
    rows = [
        ("name", profile.name),
        ("id", profile.id),
        ("provider", profile.provider),
        ("auth type", profile.auth_type),
        ("environment", env_label),
    ]
    rows += [(labels.get(k, k), v) for k, v in data["fields"].items()]
    rows += [
        ("scopes", " ".join(profile.scopes) or "-"),
        ("actions", " ".join(profile.actions) or "-"),
        *((name.replace("_", " "), url) for name, url in profile.endpoints),
        ("connections", str(data["connections"])),
        ("created", profile.created_at),
        ("updated", profile.updated_at),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.write(f"{key.ljust(width)}  {value}\n")
    if note:
        out.write(f"{note}\n")
    return 0


def _show(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    store = open_store(args)
    profile = store.get_profile(args.name)
    try:
        decl: ProviderDeclaration | None = plugins.declaration(profile.provider)
    except Exception:  # noqa: BLE001 - the profile is still shown if its plugin is gone
        decl = None
    return _emit_profile(out, profile, decl, args.json, store)


def _list(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    store = open_store(args)
    profiles = store.list_profiles(args.provider)
    counts = {p.name: store.profile_connection_count(p.name) for p in profiles}
    if args.json:
        emit_json(out, {"profiles": [_profile_data(p, counts[p.name]) for p in profiles]})
        return 0
    if not profiles:
        out.write("No profiles. Create one with: connector profile create PROVIDER --name NAME ...\n")
        return 0
    table(
        out,
        ("NAME", "PROVIDER", "AUTH", "ENVIRONMENT", "CREDENTIALS", "SCOPES", "CONNECTIONS"),
        [
            (p.name, p.provider, p.auth_type, p.environment, p.credential_set, str(len(p.scopes)), str(counts[p.name]))
            for p in profiles
        ],
    )
    return 0


def _delete(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    store = open_store(args)
    removed = store.delete_profile(args.name, force=args.force)
    if args.json:
        emit_json(out, {"deleted": args.name, "connections_deleted": removed})
    else:
        extra = f" with {removed} connection(s)" if removed else ""
        out.write(f"Profile {args.name!r} deleted{extra}.\n")
    return 0
