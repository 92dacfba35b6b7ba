"""What the CLI advises on top of a library error: the library says what went wrong,
the CLI says which ``connector`` command or option repairs it.

:func:`hint` looks the error's class up by its qualified name, walking the class's bases,
so an error of a module nobody imported costs nothing to know about (the CLI's cold start
never imports :mod:`connector_core.connector` to tell these errors apart).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConnectorError

__all__ = ["hint"]


def _reconnect(error: ConnectorError) -> str | None:
    command = f"connector reconnect {getattr(error, 'connection_id', 'CONNECTION')}"
    return None if command in error.message else f"run '{command}'."


def _confirm(error: ConnectorError) -> str | None:
    return None if "--yes" in error.message else "Do them, then confirm (--yes)."


#: Error class (``module.QualName``) -> its advice, or ``None`` when the message already gives it.
HINTS: dict[str, Callable[[ConnectorError], str | None]] = {
    "connector_core.connector.ReconnectRequired": _reconnect,
    "connector_core.connector.ConfirmationRequired": _confirm,
}


def hint(error: ConnectorError) -> str | None:
    """The CLI's one-sentence advice for ``error``, or ``None``."""
    for cls in type(error).__mro__:
        advise = HINTS.get(f"{cls.__module__}.{cls.__qualname__}")
        if advise is not None:
            return advise(error)
    return None
