"""A string that never shows itself.

:class:`Secret` wraps client secrets, tokens, codes and verifiers. Its
``repr`` and ``str`` are ``'***'``; the value comes out only through
:meth:`Secret.reveal`, so it cannot reach a log line, an exception or a
traceback's locals by accident.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["Secret"]


class Secret:
    """A secret string. ``repr(Secret("x")) == "Secret('***')"``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"Secret expects a str, got {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The secret value. Call it only where the value is sent or encrypted."""
        value: str = object.__getattribute__(self, "_value")
        return value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        import hmac  # on first comparison only: hmac pulls in hashlib/OpenSSL at import

        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash(("Secret", self.reveal()))

    def __bool__(self) -> bool:
        return bool(self.reveal())

    def __len__(self) -> int:
        return len(self.reveal())

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled; store it encrypted instead")
