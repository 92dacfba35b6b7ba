"""Sub-commands that plugins add to the ``connector`` CLI."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from .errors import PluginError

if TYPE_CHECKING:
    from .plugins import Plugins

__all__ = ["Command", "CommandRegistry"]

_COMMAND_NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


@attrs.frozen
class Command:
    """A CLI sub-command contributed by a plugin."""

    name: str
    help: str
    #: Adds the command's arguments to its parser.
    configure: Callable[[argparse.ArgumentParser], None]
    #: Runs the command; returns the exit status.
    run: Callable[[argparse.Namespace, Plugins], int]
    plugin: str


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
        run: Callable[[argparse.Namespace, Plugins], int],
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
