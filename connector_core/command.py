"""One sub-command of the ``connector`` CLI, built in or added by a plugin.

Every command reaches the parser as a :class:`Command`: the CLI's own commands
(one module each under :mod:`connector_core.cli`) and the ones plugins add
through :class:`~connector_core.CommandRegistry`. The record is a plain named
tuple and this module imports nothing of the CLI or of the plugin machinery, so
building it costs a command's cold start next to nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["Command"]


class Command(NamedTuple):
    """A ``connector`` sub-command: its name, its one-line help, how its parser is set up and how it runs."""

    name: str
    help: str
    #: Adds the command's arguments (and sub-commands) to its parser.
    configure: Callable[[argparse.ArgumentParser], None]
    #: Runs the command with the parsed arguments and the :class:`~connector_core.plugins.Plugins`;
    #: returns the exit status.
    run: Callable[[argparse.Namespace, Any], int]
    #: The plugin that added the command; ``None`` for the CLI's own commands.
    plugin: str | None = None
