"""``connector connect``: connect an account through a profile (the OAuth flow, or the end
user's credentials for an auth type that sends no one to the provider), complete an install
that began at the provider, or run the whole flow against the provider's emulator."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

from ..errors import ConnectorError, UnknownNameError, ValidationError
from ..registries import Command
from .context import open_connector, open_store
from .credentials import add_rest, parse_rest, read_credentials, refuse_other_auth_types, what_it_takes
from .flow import finish, run_flow
from .output import add_json, run_handler
from .owners import add_owner_options, owner_from
from .parser import HELP

if TYPE_CHECKING:
    from ..connection import ConnectResult, Owner
    from ..connector import Connector
    from ..models import AuthType, ProviderDeclaration
    from ..plugins import Plugins
    from ..profiles import Profile

__all__ = ["COMMAND"]

#: The status reason of a connection made by ``connect --emulator`` once its emulator stopped.
EMULATOR_GONE = "the emulator it was made against has stopped"


def configure(connect: argparse.ArgumentParser) -> None:
    connect.description = (
        "Connect an account through a profile. An OAuth 2.0 authorization code profile sends the person to the "
        "provider; a profile whose auth type takes the end user's credentials (a service user, an API key) takes "
        "them as options ('connector connect PROFILE --help' lists them); a client credentials profile needs none. "
        "--end-user says whose the connection is."
    )
    connect.add_argument(
        "target", metavar="PROFILE", help="the profile to connect with (with --emulator: the provider key)"
    )
    _options(connect)
    add_rest(connect)
    connect.set_defaults(handler=_connect)


def _options(connect: argparse.ArgumentParser) -> None:
    """The command's own options: parsed before PROFILE, and again with the profile's credential options after it."""
    connect.add_argument(
        "--emulator", action="store_true", help="start the provider's built-in emulator and connect to it end to end"
    )
    connect.add_argument(
        "--auth-type",
        metavar="KEY",
        help="with --emulator: the auth type to connect with (default: the provider's first); for a service user, "
        "an API key or client credentials the emulator issues them",
    )
    connect.add_argument("--no-browser", action="store_true", help="print the authorization URL instead of opening it")
    connect.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for the callback (default 300)",
    )
    connect.add_argument("--redirect-uri", metavar="URL", help="override the profile's redirect URI")
    connect.add_argument("--scopes", nargs="+", metavar="SCOPE", help="request these scopes instead of the profile's")
    connect.add_argument(
        "--provider-initiated",
        metavar="CALLBACK_URL",
        help="complete an install that began at the provider, from its callback URL",
    )
    connect.add_argument(
        "--no-test",
        action="store_true",
        help="store the connection without running the provider's connection test first (credentials) or after",
    )
    add_owner_options(connect)
    add_json(connect)


COMMAND = Command("connect", HELP["connect"], configure, run_handler)


def _free_port() -> int:
    import socket  # here, not at the top: only --emulator needs it

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connect(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    args = _full_arguments(args, plugins)
    owner = owner_from(args)  # checked before anyone is sent to the provider or anything is stored
    if args.emulator:
        return _connect_emulator(args, plugins, out, owner)
    connector = open_connector(args, plugins)
    prof = connector.store.get_profile(args.target, with_secrets=False)
    decl = plugins.declaration(prof.provider)
    auth = decl.auth_type(prof.auth_type)
    if args.auth_type is not None and args.auth_type != auth.key:
        # Without --emulator the profile decides; silently connecting another auth type would surprise.
        raise ValidationError(
            "--auth-type",
            f"profile {prof.name!r} uses {auth.key}; --auth-type picks one only with --emulator "
            "(make a profile of the other auth type to connect with it)",
        )
    if not auth.kind.redirects:
        return _connect_credentials(connector, prof, decl, auth, args, out, owner)
    refuse_other_auth_types(args, decl, auth, f"profile {prof.name!r}")
    if args.provider_initiated:
        if owner is not None:
            # Like a Marketplace install, it is unclaimed until the platform attaches it.
            raise ValidationError(
                "--provider-initiated",
                "an install that began at the provider is unclaimed until it is attached; complete it without "
                "--end-user, --organisation or --tag, then run 'connector connections attach CONNECTION "
                "--end-user ID'",
            )
        result = connector.complete_provider_initiated(args.target, args.provider_initiated)
    else:
        result = run_flow(connector, args.target, args, out, browser=None, owner=owner)
    return finish(connector, result, args, out)


def _full_arguments(args: argparse.Namespace, plugins: Plugins) -> argparse.Namespace:
    """The second parsing step (see :mod:`connector_core.cli.credentials`): the options after
    PROFILE, with the credential options of the profile's provider."""
    if not args.rest:
        return args
    prog = f"connector connect {args.target}"
    if args.emulator or "--emulator" in args.rest:  # the target is a provider key; the emulator gives credentials
        return parse_rest(args, prog, _options, None)
    prof = open_store(args).get_profile(args.target, with_secrets=False)
    decl = plugins.declaration(prof.provider)
    takes = what_it_takes(decl, decl.auth_type(prof.auth_type), f"profile {prof.name!r}")
    return parse_rest(args, prog, _options, decl, takes=takes)


def _connect_credentials(
    connector: Connector,
    prof: Profile,
    decl: ProviderDeclaration,
    auth: AuthType,
    args: argparse.Namespace,
    out: IO[str],
    owner: Owner | None,
) -> int:
    """A profile whose auth type sends no one to the provider: the end user's credentials from
    the options (none for client credentials), tested by the provider before they are stored."""
    whose = f"profile {prof.name!r}"
    for option, given in (("--redirect-uri", args.redirect_uri), ("--provider-initiated", args.provider_initiated)):
        if given:
            raise ValidationError(
                option,
                f"applies to OAuth 2.0 authorization code profiles; {whose} uses {auth.key} ({auth.label}), which "
                "sends no one to the provider",
            )
    credentials = read_credentials(args, decl, auth, whose)
    result = connector.connect(prof.name, credentials, scopes=args.scopes, test=not args.no_test, owner=owner)
    return finish(connector, result, args, out)


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Here we play the person's browser and run the provider in-process: the URLs and
    requests that httpx and oauthlib log carry the authorization code, so their loggers
    say nothing below WARNING while the emulator runs."""
    import logging  # here, not at the top: only --emulator needs it

    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _connect_emulator(args: argparse.Namespace, plugins: Plugins, out: IO[str], owner: Owner | None) -> int:
    """Start the built-in emulator, use its test app as a sandbox profile, consent
    automatically, and run the whole real flow against it; for an auth type that sends
    no one to the provider, have the emulator issue the credentials and connect with them."""
    # Here, not at the top: the emulator, httpx and the profile records are this option's alone (cold start).
    import httpx

    from ..emulator import CONSENT_HEADER, start_emulator
    from ..secret import Secret

    decl = plugins.declaration(args.target)
    spec = plugins.emulator_spec(decl.key)
    if spec is None:
        raise ValidationError("--emulator", f"provider {decl.key!r} has no built-in emulator")
    auth = decl.auth_type(args.auth_type)
    if not auth.kind.redirects:
        return _connect_emulator_credentials(args, plugins, out, auth.key, owner)
    if decl.callback is None:
        raise ValidationError("--emulator", f"provider {decl.key!r} declares no OAuth callback")
    connector = open_connector(args, plugins)
    port = _free_port()
    redirect = f"http://127.0.0.1:{port}{decl.callback.path}"
    env = decl.environment()
    with _quiet("httpx", "httpcore", "oauthlib"), start_emulator(decl, spec, redirect_uris=[redirect]) as emu:
        creds = emu.app.credentials[env.credential_set]
        endpoints = emu.endpoints(env.key)
        name = f"{decl.key}-emulator"
        values: dict[str, str | Secret] = {"client_id": creds.client_id, "client_secret": creds.client_secret}
        field_names = {f.name for f in decl.fields_for(auth.key)}
        if "app_id" in field_names:
            values["app_id"] = emu.app.app_id
        _save_profile(connector, decl, name, env.key, auth.key, values, endpoints.profile_urls(redirect))
        sys.stderr.write(f"Emulator running at {emu.base_url}; profile {name!r} uses its test app.\n")

        def consent(url: str) -> None:
            # Act as the person's browser: consent automatically, then follow the
            # redirect to our own loopback listener.
            with httpx.Client(timeout=10, follow_redirects=False, trust_env=False) as browser:
                answer = browser.get(url, headers={CONSENT_HEADER: "allow"})
                location = answer.headers.get("location")
                if answer.status_code not in (302, 303) or not location:
                    raise ConnectorError(f"the emulator did not redirect after consent (HTTP {answer.status_code})")
                browser.get(location)

        made = run_flow(connector, name, args, out, browser=consent, owner=owner)
        return _finish_run(connector, made, args, out, "tokens")


def _connect_emulator_credentials(
    args: argparse.Namespace, plugins: Plugins, out: IO[str], auth_type: str, owner: Owner | None
) -> int:
    """``--emulator`` for an auth type that sends no one to the provider: the emulator issues
    the credentials (a service user or an API key, in every permission group; a client
    credentials grant uses its test app's client), the profile ``KEY-emulator-AUTHTYPE``
    points at it, and ``Connector.connect`` runs the connection test and stores them."""
    # Here, not at the top: the emulator and the profile records are this option's alone (cold start).
    from ..emulator import start_emulator
    from ..models import FieldKind, FieldLevel
    from ..secret import Secret

    decl = plugins.declaration(args.target)
    spec = plugins.emulator_spec(decl.key)
    if spec is None:
        raise ValidationError("--emulator", f"provider {decl.key!r} has no built-in emulator")
    auth = decl.auth_type(auth_type)
    if args.scopes and not auth.kind.uses_tokens:
        raise ValidationError("--scopes", f"{auth.key} ({auth.kind.value}) connections request no OAuth scopes")
    connector = open_connector(args, plugins)
    env = decl.environment()
    name = f"{decl.key}-emulator-{auth.key}"
    with _quiet("httpx", "httpcore", "oauthlib"), start_emulator(decl, spec) as emu:
        endpoints = emu.endpoints(env.key)
        creds = emu.app.credentials[env.credential_set]
        issued: dict[str, str] = {}
        made = "the test app's client"
        if auth.key in emu.credential_auth_types:
            credential = emu.issue_credentials(auth.key, environment=env.key)
            issued = dict(credential)
            made = f"{auth.label} {credential.identifier}, issued in every permission group"
        known: dict[str, str | Secret] = {
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "app_id": emu.app.app_id,
            **{k: Secret(v) for k, v in issued.items()},
        }
        values = {
            f.name: known[f.name]
            for f in decl.fields_for(auth.key, FieldLevel.APP)
            if f.name in known and f.kind is not FieldKind.SCOPE_LIST
        }
        user = {f.name: Secret(issued[f.name]) for f in decl.fields_for(auth.key, FieldLevel.USER) if f.name in issued}
        urls = {
            "token_url": endpoints.token_url,
            "revocation_url": endpoints.revocation_url,
            "api_base_url": endpoints.api_base_url,
        }
        _save_profile(connector, decl, name, env.key, auth.key, values, urls)
        sys.stderr.write(f"Emulator running at {emu.base_url}; profile {name!r} connects with {made}.\n")
        held = "tokens" if auth.kind.uses_tokens else "its credentials"
        result = connector.connect(name, user, scopes=args.scopes, owner=owner)
        return _finish_run(connector, result, args, out, held)


def _save_profile(
    connector: Connector,
    decl: ProviderDeclaration,
    name: str,
    environment: str,
    auth_type: str,
    values: Mapping[str, Any],
    endpoints: Mapping[str, str | None],
) -> None:
    """Create the emulator run's profile, or update it from an earlier run."""
    # Here, not at the top: the profile records are --emulator's alone (cold start).
    from ..profiles import validate_profile

    try:
        previous = connector.store.get_profile(name)
    except UnknownNameError:
        previous = None
    draft = validate_profile(
        decl,
        name=name,
        environment=environment,
        auth_type=auth_type,
        values=values,
        previous=previous,
        endpoints=endpoints,
    )
    if previous is None:
        connector.store.create_profile(draft)
    else:
        connector.store.update_profile(name, draft)


def _finish_run(connector: Connector, result: ConnectResult, args: argparse.Namespace, out: IO[str], held: str) -> int:
    """Show the emulator run's connection, then disconnect it: what it holds (``held``) is good only
    at this emulator, whose port dies with it. The record of the run stays, never usable."""
    # Here, not at the top: see _connect_emulator.
    from ..connection import ConnectionStatus

    try:
        code: int = finish(connector, result, args, out)
    finally:
        connector.store.set_status(
            result.connection.id, ConnectionStatus.DISCONNECTED, EMULATOR_GONE, delete_tokens=True
        )
    if not args.json:
        out.write(
            "(The emulator stops now. The connection stays in the store as a record of the run, "
            f"disconnected, without {held}: they worked only at this emulator.)\n"
        )
    return code
