"""The exception hierarchy.

Every error the framework raises on purpose derives from :class:`ConnectorError`
and carries a one-line message a person can act on. The CLI prints that line and
exits with :attr:`ConnectorError.exit_code`; it never shows a traceback for them.
"""

from __future__ import annotations

__all__ = [
    "ConnectorError",
    "DeclarationError",
    "PluginError",
    "ScopeError",
    "StoreError",
    "UnknownNameError",
    "UsageError",
    "ValidationError",
]


class ConnectorError(Exception):
    """Root of every error connector-core raises on purpose."""

    #: The CLI's exit status for this kind of error.
    exit_code: int = 1

    #: Extra lines the CLI prints after the one-line error, such as manual steps to take.
    details: tuple[str, ...] = ()

    def __init__(self, message: str) -> None:
        # One line, always: multi-line messages break log parsers and CLI output.
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self.args[0])


class ValidationError(ConnectorError, ValueError):
    """A value failed validation. ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class DeclarationError(ValidationError):
    """A provider declaration (a model built by a plugin) is invalid."""


class UnknownNameError(ConnectorError, LookupError):
    """A name (provider, scope group, action, environment, ...) is not known."""

    def __init__(
        self, kind: str, name: str, known: list[str] | tuple[str, ...] = (), *, within: str | None = None
    ) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        msg = f"unknown {kind} {name!r}" + (f" for {within}" if within else "")
        suggestion = _did_you_mean(name, self.known)
        if suggestion:
            msg += f"; did you mean {suggestion!r}?"
        if self.known:
            msg += f" (expected one of: {', '.join(self.known)})"
        else:
            msg += f" (no {kind}s are available)"
        super().__init__(msg)


class ScopeError(ValidationError):
    """A requested scope set is malformed or does not satisfy the catalogue."""


class PluginError(ConnectorError):
    """A plugin failed to load, broke a hook contract, or clashed with another."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class StoreError(ConnectorError):
    """The store (its database) cannot be opened, read or written."""


class UsageError(ConnectorError):
    """The command line was used wrongly (exit status 2)."""

    exit_code = 2


def _did_you_mean(name: str, known: tuple[str, ...]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return matches[0] if matches else None
