"""What the CLI advises on top of a library error: the library says what went wrong
and what fixes it in its own terms, the CLI says which ``connector`` command or option
does that.

:func:`hint` keys on :attr:`~connector_core.ConnectorError.code`, a stable name of the
situation, so the advice never depends on a message's wording. An advice already given
by the message (a CLI command's own error) is not repeated.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConnectorError

__all__ = ["HINTS", "hint"]


def _reconnect(error: ConnectorError) -> str:
    return f"run 'connector reconnect {getattr(error, 'connection_id', 'CONNECTION')}'."


def _said(text: str) -> Callable[[ConnectorError], str]:
    return lambda error: text


#: Error code -> (what shows a message already gives the advice, the advice).
HINTS: dict[str, tuple[str, Callable[[ConnectorError], str]]] = {
    "reconnect_required": ("connector reconnect", _reconnect),
    "confirmation_required": ("--yes", _said("Do them, then confirm (--yes).")),
    "no_state_of_ours": (
        "--provider-initiated",
        _said("Complete it with 'connector connect PROFILE --provider-initiated URL'."),
    ),
    "has_state": ("connector connect", _said("Complete it with 'connector connect PROFILE' instead.")),
    "profile_in_use": ("--force", _said("Pass --force to force it.")),
}


def hint(error: ConnectorError) -> str | None:
    """The CLI's one-sentence advice for ``error``, or ``None``."""
    found = HINTS.get(error.code or "")
    if found is None:
        return None
    marker, advise = found
    return None if marker in error.message else advise(error)  # a CLI command's own error may say it already
