"""What the registry hooks are handed, and what they collect.

* :class:`ProviderRegistry` is the argument of
  :func:`~connector_core.hookspecs.connector_core_register_providers`;
* :class:`CommandRegistry` the argument of
  :func:`~connector_core.hookspecs.connector_core_register_commands`, collecting
  :class:`Command` records: the same record the CLI's own commands are (one module
  each under :mod:`connector_core.cli`), so every command reaches the parser one way.

They live apart from :mod:`connector_core.plugins` (the loader) and from the CLI, so
that the hook specifications can name them without depending on the code that calls
them. ``Command`` and ``CommandRegistry`` are plain classes, not attrs ones: every
``connector`` command imports this module, and building an attrs class costs more
than the rest of it.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

import attrs

from .errors import PluginError
from .models import Provider

__all__ = ["Command", "CommandRegistry", "ProviderRegistry"]

_COMMAND_NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


@attrs.define
class ProviderRegistry:
    """Handed to :func:`~connector_core.hookspecs.connector_core_register_providers`."""

    _plugin: str
    _providers: list[Provider] = attrs.field(factory=list, repr=False)

    def add(self, provider: Provider) -> None:
        """Register one provider."""
        if not isinstance(provider, Provider):
            raise PluginError(self._plugin, f"register.add() expected a Provider, got {type(provider).__name__}")
        self._providers.append(provider)

    @property
    def providers(self) -> tuple[Provider, ...]:
        return tuple(self._providers)


class Command:
    """A ``connector`` sub-command: its name, its one-line help, how its parser is set up and how it runs.

    A plain read-only record (see the module doc).
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


class CommandRegistry:
    """Handed to :func:`~connector_core.hookspecs.connector_core_register_commands`."""

    __slots__ = ("_commands", "_plugin", "_reserved")

    def __init__(self, reserved: frozenset[str], plugin: str = "", commands: dict[str, Command] | None = None) -> None:
        self._reserved = reserved
        self._plugin = plugin
        self._commands: dict[str, Command] = {} if commands is None else commands

    def __repr__(self) -> str:
        return f"<CommandRegistry {sorted(self._commands)}>"

    def add(
        self,
        name: str,
        *,
        help: str,
        run: Callable[[argparse.Namespace, Any], int],
        configure: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> None:
        """Add the sub-command ``connector NAME``; ``run(args, plugins)`` returns its exit status."""
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
        return CommandRegistry(self._reserved, plugin, self._commands)

    @property
    def commands(self) -> tuple[Command, ...]:
        return tuple(self._commands.values())
