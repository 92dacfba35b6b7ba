"""``connector reconnect``: repair a connection with its provider's reconnect policy, asking
the person to confirm its manual steps first when it has any."""

from __future__ import annotations

import argparse
import sys
from typing import IO, TYPE_CHECKING

from ..errors import ConfirmationRequired, ConnectorError
from ..models import ReconnectKind
from ..registries import Command
from .context import open_connector
from .flow import finish, run_flow
from .output import add_json, run_handler
from .parser import HELP

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["COMMAND"]


def configure(reconnect: argparse.ArgumentParser) -> None:
    reconnect.add_argument("connection", metavar="CONNECTION")
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
    add_json(reconnect)
    reconnect.set_defaults(handler=_reconnect)


COMMAND = Command("reconnect", HELP["reconnect"], configure, run_handler)


def _reconnect(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    connector = open_connector(args, plugins)
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
