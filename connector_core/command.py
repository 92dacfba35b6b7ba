"""One sub-command of the ``connector`` CLI, built in or added by a plugin.

Every command reaches the parser as a :class:`Command`: the CLI's own commands
(one module each under :mod:`connector_core.cli`) and the ones plugins add
through :class:`~connector_core.CommandRegistry`. The record is a plain class and
this module imports nothing of the CLI or of the plugin machinery, so
building it costs a command's cold start next to nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["Command"]


class Command:
    """A ``connector`` sub-command: its name, its one-line help, how its parser is set up and how it runs.

    A plain read-only record rather than an attrs or named-tuple class: building either class
    costs every command's cold start more than the rest of this module.
    """

    __slots__ = ("configure", "help", "name", "plugin", "run")

    name: str
    help: str
    #: Adds the command's arguments (and sub-commands) to its parser.
    configure: Callable[[argparse.ArgumentParser], None]
    #: Runs the command with the parsed arguments and the :class:`~connector_core.plugins.Plugins`;
    #: returns the exit status.
    run: Callable[[argparse.Namespace, Any], int]
    #: The plugin that added the command; ``None`` for the CLI's own commands.
    plugin: str | None

    def __init__(
        self,
        name: str,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace, Any], int],
        plugin: str | None = None,
    ) -> None:
        set_field = object.__setattr__  # past the read-only __setattr__ below
        set_field(self, "name", name)
        set_field(self, "help", help)
        set_field(self, "configure", configure)
        set_field(self, "run", run)
        set_field(self, "plugin", plugin)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Command is read-only: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Command) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"Command(name={self.name!r}, help={self.help!r}, plugin={self.plugin!r})"

    def _values(self) -> tuple[Any, ...]:
        return (self.name, self.help, self.configure, self.run, self.plugin)
