"""The registry through which plugins add sub-commands to the ``connector`` CLI.

What it collects are :class:`~connector_core.command.Command` records, the same
the CLI's own commands are; it is imported only when a plugin implements
``connector_core_register_commands``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

import attrs

from .command import Command
from .errors import PluginError

__all__ = ["Command", "CommandRegistry"]

_COMMAND_NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


@attrs.define
class CommandRegistry:
    """Handed to :func:`~connector_core.hookspecs.connector_core_register_commands`."""

    _reserved: frozenset[str]
    _plugin: str = ""
    _commands: dict[str, Command] = attrs.field(factory=dict)

    def add(
        self,
        name: str,
        *,
        help: str,
        run: Callable[[argparse.Namespace, Any], int],
        configure: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> None:
        """Add the sub-command ``connector NAME``."""
        if not isinstance(name, str) or not _COMMAND_NAME_RE.fullmatch(name):
            raise PluginError(self._plugin, f"command name {name!r} is not a lower-case word like 'sync-users'")
        if name in self._reserved:
            raise PluginError(self._plugin, f"command {name!r} clashes with a built-in command")
        if name in self._commands:
            other = self._commands[name].plugin
            raise PluginError(self._plugin, f"command {name!r} is already added by plugin {other!r}")
        self._commands[name] = Command(
            name=name, help=help, configure=configure or (lambda parser: None), run=run, plugin=self._plugin
        )

    def for_plugin(self, plugin: str) -> CommandRegistry:
        """The same registry, attributing what is added to ``plugin``."""
        return attrs.evolve(self, plugin=plugin, commands=self._commands)

    @property
    def commands(self) -> tuple[Command, ...]:
        return tuple(self._commands.values())
