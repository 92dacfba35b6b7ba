"""The CLI's own commands: their names, in the order ``connector --help`` lists them, and
their one-line help.

Each command lives in its own module of this package, named after it (``new-provider`` in
``new_provider.py``), whose ``COMMAND`` record holds its parser set-up and its handler and
takes its help line from :data:`HELP`. The help lines are written here rather than in the
modules because ``connector --help`` shows every command: it builds them bare from this
table and imports none of their modules (importing all thirteen made it about 5 % slower).
"""

from __future__ import annotations

import argparse
import importlib

from ..registries import Command
from .output import run_handler

__all__ = ["HELP", "bare_command", "builtin_command"]

#: Every built-in command's help line, in ``connector --help``'s order; any other command
#: word may be a plugin's command.
HELP = {
    "providers": "list providers and show what they declare",
    "scopes": "show a provider's scope catalogue, check a scope set, or derive one from actions",
    "plugins": "list plugins with version, hooks and load errors",
    "profile": "create, list, show, update and delete connector profiles",
    "keys": "the encryption keys of the store",
    "emulate": "run a provider's built-in emulator (OAuth server and API) on 127.0.0.1",
    "connect": "connect an account through a profile (the OAuth flow)",
    "connections": "list, show, test, refresh, revoke and delete connections",
    "reconnect": "repair a connection with its provider's reconnect policy",
    "request": "an authenticated API call with a connection (like 'gh api')",
    "store": "the store itself: where it is, and moving it into PostgreSQL",
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
