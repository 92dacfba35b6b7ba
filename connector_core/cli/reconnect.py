"""``connector reconnect``: repair a connection with its provider's reconnect policy, asking
the person to confirm its manual steps first when it has any; a connection that holds the end
user's credentials takes new ones instead (see :mod:`connector_core.cli.credentials`)."""

from __future__ import annotations

import argparse
import sys
from typing import IO, TYPE_CHECKING

from ..errors import ConfirmationRequired, ConnectorError, ValidationError
from ..models import ReconnectKind
from ..registries import Command
from .context import open_connector
from .credentials import add_rest, parse_rest, read_credentials, refuse_other_auth_types, what_it_takes
from .flow import finish, run_flow
from .output import add_json, run_handler
from .parser import HELP

if TYPE_CHECKING:
    from ..connection import Connection
    from ..connector import Connector
    from ..models import AuthType, ProviderDeclaration
    from ..plugins import Plugins

__all__ = ["COMMAND"]


def configure(reconnect: argparse.ArgumentParser) -> None:
    reconnect.description = (
        "Repair a connection. An OAuth 2.0 authorization code connection follows its provider's reconnect "
        "policy and authorizes again; one that holds the end user's credentials (a service user, an API key) "
        "takes the new ones as options ('connector reconnect CONNECTION --help' lists them); a client "
        "credentials one fetches a new token. The connection keeps its id and history."
    )
    reconnect.add_argument("connection", metavar="CONNECTION")
    _options(reconnect)
    add_rest(reconnect)
    reconnect.set_defaults(handler=_reconnect)


def _options(reconnect: argparse.ArgumentParser) -> None:
    """The command's own options: before CONNECTION, and again with its credential options after it."""
    reconnect.add_argument("--yes", action="store_true", help="confirm the manual steps are done (for scripts)")
    reconnect.add_argument(
        "--scopes",
        nargs="+",
        metavar="SCOPE",
        help="request these scopes (default: the old grant plus the profile's scopes)",
    )
    reconnect.add_argument("--no-browser", action="store_true", help="print the authorization URL instead")
    reconnect.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS")
    reconnect.add_argument("--redirect-uri", metavar="URL", help="override the profile's redirect URI")
    reconnect.add_argument(
        "--no-test", action="store_true", help="store new credentials without running the connection test first"
    )
    add_json(reconnect)


COMMAND = Command("reconnect", HELP["reconnect"], configure, run_handler)


def _reconnect(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    connector = open_connector(args, plugins)
    conn = connector.store.get_connection(args.connection)
    decl = plugins.declaration(conn.provider)
    auth = decl.auth_type(conn.auth_type)
    if args.rest:  # the second parsing step, with the provider's credential options
        takes = what_it_takes(decl, auth, f"connection {conn.id}")
        args = parse_rest(args, f"connector reconnect {args.connection}", _options, decl, takes=takes)
    if not auth.kind.redirects:
        return _reconnect_credentials(connector, conn, decl, auth, args, out)
    refuse_other_auth_types(args, decl, auth, f"connection {conn.id}")
    plan = connector.reconnect_plan(args.connection, scopes=args.scopes)
    err = sys.stderr
    err.write(f"Reconnect policy: {plan.policy.kind.value}. {plan.policy.summary}\n")
    if plan.policy.kind is ReconnectKind.UNINSTALL_THEN_REAUTHORIZE:
        for line in plan.lines:
            err.write(f"  {line}\n")
        if not args.yes:
            if not (sys.stdin is not None and sys.stdin.isatty()):
                raise ConfirmationRequired(
                    "do the steps above, then run again with --yes to confirm (there is no terminal to ask on)"
                )
            err.write("Have you done this? [y/N] ")
            err.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                # Not ConfirmationRequired: its hint (confirm with --yes) is not for one who just said no.
                raise ConnectorError("not confirmed; nothing was changed")
    result = run_flow(connector, plan.connection.profile, args, out, None, reconnect=args.connection)
    return finish(connector, result, args, out)


def _reconnect_credentials(
    connector: Connector,
    conn: Connection,
    decl: ProviderDeclaration,
    auth: AuthType,
    args: argparse.Namespace,
    out: IO[str],
) -> int:
    """New credentials for a connection that holds them (its service user's ID is kept unless a
    new one is given), or a new client credentials token; tested first, then stored in place."""
    if args.redirect_uri:
        raise ValidationError(
            "--redirect-uri",
            f"applies to OAuth 2.0 authorization code connections; {conn.id} uses {auth.key} ({auth.label})",
        )
    credentials = read_credentials(args, decl, auth, f"connection {conn.id}", defaults=dict(conn.identity))
    result = connector.connect(
        conn.profile, credentials, connection_id=conn.id, scopes=args.scopes, test=not args.no_test
    )
    return finish(connector, result, args, out)
