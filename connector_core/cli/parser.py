"""The ``connector`` argument parser: the top-level options, then every command, built in
or a plugin's, each from its :class:`~connector_core.registries.Command` record.

The CLI's own commands live in one module each of this package, named after them
(``new-provider`` in ``new_provider.py``), whose ``COMMAND`` record holds its parser set-up and
its handler and takes its help line from :data:`HELP`. A built-in command's module is imported
only when its command is built, so a command's cold start pays for its own parser alone; the
help lines are written here rather than in the modules because ``connector --help`` shows every
command, built bare from this table without importing any command module (importing all
fourteen made it about 5 % slower).
"""

from __future__ import annotations

import argparse
import importlib
from typing import TYPE_CHECKING, Any

from .._markers import __version__
from ..registries import Command
from .output import Parser, run_handler

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["HELP", "VALUE_OPTIONS", "bare_command", "build_parser", "builtin_command"]

#: Every built-in command's help line, in ``connector --help``'s order; any other command
#: word may be a plugin's command.
HELP = {
    "providers": "list providers and show what they declare",
    "scopes": "show a provider's scope catalogue, check a scope set, or derive one from actions",
    "plugins": "list plugins with version, hooks and load errors",
    "profile": "create, list, show, update and delete connector profiles",
    "keys": "the encryption keys of the store",
    "emulate": "run a provider's built-in emulator (OAuth server and API) on 127.0.0.1",
    "connect": "connect an account through a profile (OAuth, or a service user's or an API key's credentials)",
    "connections": "list, show, attach, test, refresh, revoke and delete connections",
    "reconnect": "repair a connection with its provider's reconnect policy, or give it new credentials",
    "request": "an authenticated API call with a connection (like 'gh api')",
    "serve": "run the connect service (API, connect page, callback) under uvicorn; needs connector-core[serve]",
    "keeper": "refresh every connection before it expires, test them on a schedule, record failing refreshes",
    "store": "the store itself: where it is, and moving it into PostgreSQL",
    "webhooks": "webhook endpoints, the delivery log, replays, and the deliverer (signed, at least once)",
    "new-provider": "write a new provider plugin distribution, ready to install and test",
    "docs": "print a provider's documentation page, or the CLI or hook reference",
}


def builtin_command(name: str) -> Command:
    """The record of the built-in command ``name``, from its own module (imported now)."""
    module = importlib.import_module(f"{__package__}.{name.replace('-', '_')}")
    command: Command = module.COMMAND
    return command


def bare_command(name: str) -> Command:
    """The built-in command ``name`` as a bare name with its help line, without its module."""
    return Command(name, HELP[name], _no_arguments, run_handler)


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


#: The top-level options that take a value (the command word is the first word that is
#: neither an option nor such a value; options are never abbreviated).
VALUE_OPTIONS = frozenset({"--home", "--store-url"})


def build_parser(
    plugins: Plugins, *, plugin_commands: bool = True, only: str | None = None
) -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    """The ``connector`` argument parser.

    ``only`` names the built-in command about to run: the other built-in commands'
    modules are then neither imported nor built, which keeps the CLI's cold start close
    to Python's own. ``only=""`` builds every built-in command as a bare name with its
    help line, enough for ``connector --help`` and for naming a plugin's command.
    """
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
        help="the store: sqlite:///PATH or postgresql://... with no password in it (default: $CONNECTOR_STORE_URL, "
        "else the file $CONNECTOR_STORE_URL_FILE names, else --home's SQLite)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    if only == "":
        commands = [bare_command(name) for name in HELP]
    else:
        commands = [builtin_command(name) for name in (HELP if only is None else (only,))]
    if plugin_commands:
        commands += plugins.register_commands(HELP)
    for command in commands:
        _add(sub, command)
    return parser, sub.choices


def _add(sub: Any, command: Command) -> None:
    """The one way a command reaches the parser, built in or a plugin's."""
    help_line = command.help if command.plugin is None else f"{command.help} [plugin {command.plugin}]"
    parser = sub.add_parser(command.name, help=help_line)
    command.configure(parser)
    parser.set_defaults(run=command.run)
