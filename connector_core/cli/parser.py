"""The ``connector`` argument parser: the top-level options, then every command, built in
(see :mod:`connector_core.cli.catalog`) or a plugin's, each from its
:class:`~connector_core.registries.Command` record. A built-in command's module is imported
only when its command is built, so a command's cold start pays for its own parser alone.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..registries import Command
from .catalog import HELP, bare_command, builtin_command
from .output import Parser

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["VALUE_OPTIONS", "build_parser"]

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
        help="the store: sqlite:///PATH or postgresql://... (default: $CONNECTOR_STORE_URL, else --home's SQLite)",
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
