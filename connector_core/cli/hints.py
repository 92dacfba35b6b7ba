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
    cid = getattr(error, "connection_id", "CONNECTION")
    if "its credentials" in getattr(error, "reason", ""):
        # The provider refused the credentials the connection holds (a service user's token, an
        # API key): nothing refreshes them, the end user gives new ones.
        return (
            f"run 'connector reconnect {cid}' with the new token ('connector reconnect {cid} --help' lists the "
            "options)."
        )
    return f"run 'connector reconnect {cid}'."


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
    "credentials_rejected": (
        "run the command again",
        _said("Check them at the provider (reset the token if it was lost), then run the command again with them."),
    ),
    "unknown_key": (
        "connector keys",
        _said(
            "'connector keys list' shows the keys this store uses; give this process the store's key file "
            "(CONNECTOR_CORE_KEY_FILE)."
        ),
    ),
    "owned_by_another_end_user": (
        "--replace",
        _said("Pass --replace to hand it over."),
    ),
    "damaged": ("connector store", _said("'connector store info' shows which database this is.")),
    "tampered": ("connector store", _said("'connector store info' shows which database this is.")),
}


def hint(error: ConnectorError) -> str | None:
    """The CLI's one-sentence advice for ``error``, or ``None``."""
    found = HINTS.get(error.code or "")
    if found is None:
        return None
    marker, advise = found
    return None if marker in error.message else advise(error)  # a CLI command's own error may say it already
