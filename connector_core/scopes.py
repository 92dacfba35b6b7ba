"""Parsing and checking requested scope sets against a provider's catalogue.

Pure functions over the models: no I/O, no plugins. :func:`check_scopes`
never raises for a well-formed request; it returns every finding (unknown scopes
with a did-you-mean, missing minimum scopes, module-gated and sensitive scopes,
read scopes that do not exist where only write does) so a caller can show them
all at once.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

from .errors import ScopeError
from .models import SCOPE_TOKEN_RE, Access

if TYPE_CHECKING:
    from .models import ProviderDeclaration, ScopeCatalogue

__all__ = [
    "ScopeCheck",
    "ScopeFinding",
    "Severity",
    "check_scopes",
    "parse_scopes",
    "scopes_for_actions",
]

#: Scope lists from people arrive space-, comma- or newline-separated.
_SPLIT_RE = re.compile(r"[\s,]+")
MAX_SCOPES = 200


class Severity(enum.Enum):
    """How much a :class:`ScopeFinding` matters."""

    #: The set cannot be used as it is.
    ERROR = "error"
    #: Usable, but worth a second look (module subscription, sensitive data).
    WARNING = "warning"
    #: Worth knowing (a scope's documented quirk).
    INFO = "info"


@attrs.frozen
class ScopeFinding:
    """One thing :func:`check_scopes` noticed."""

    severity: Severity
    #: Stable machine-readable code: ``unknown_scope``, ``no_read_scope``,
    #: ``missing_minimum``, ``duplicate_scope``, ``module_required``,
    #: ``sensitive_scope``, ``scope_note``.
    code: str
    message: str
    scope: str | None = None
    suggestion: str | None = None


@attrs.frozen
class ScopeCheck:
    """The outcome of checking a requested scope set."""

    #: The requested scopes, de-duplicated, in the order given.
    requested: tuple[str, ...]
    findings: tuple[ScopeFinding, ...]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> tuple[ScopeFinding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[ScopeFinding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)


def parse_scopes(value: str | Iterable[str], *, field: str = "scopes") -> tuple[str, ...]:
    """Split scope strings as people type them into a tuple of scope tokens.

    Accepts one string or several, each space-, comma- or newline-separated.
    Order is kept and duplicates are kept (so :func:`check_scopes` can report
    them). Raises :class:`~connector_core.ScopeError` naming ``field`` for an
    empty set or a token that is not a valid scope token (RFC 6749 section 3.3).
    """
    parts = [value] if isinstance(value, str) else list(value)
    tokens: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise ScopeError(field, f"expected scope strings, got {type(part).__name__}")
        tokens.extend(t for t in _SPLIT_RE.split(part) if t)
    if not tokens:
        raise ScopeError(field, "expected at least one scope, got none")
    if len(tokens) > MAX_SCOPES:
        raise ScopeError(field, f"expected at most {MAX_SCOPES} scopes, got {len(tokens)}")
    for token in tokens:
        if not SCOPE_TOKEN_RE.fullmatch(token):
            shown = token.encode("ascii", "backslashreplace").decode("ascii")
            raise ScopeError(
                field,
                f"{shown!r} is not a valid scope (printable ASCII without spaces, quotes or backslashes)",
            )
    return tuple(tokens)


def check_scopes(catalogue: ScopeCatalogue, requested: Sequence[str]) -> ScopeCheck:
    """Check a parsed scope set against ``catalogue``; see :class:`ScopeFinding` codes."""
    findings: list[ScopeFinding] = []
    unique: list[str] = []
    for name in requested:
        if name in unique:
            findings.append(
                ScopeFinding(Severity.WARNING, "duplicate_scope", f"{name} is requested more than once", scope=name)
            )
            continue
        unique.append(name)

    for name in unique:
        scope = catalogue.get(name)
        if scope is None:
            if not catalogue.open:  # an open catalogue takes any scope token parse_scopes let through
                findings.append(_unknown(catalogue, name))
            continue
        if scope.module:
            findings.append(
                ScopeFinding(
                    Severity.WARNING,
                    "module_required",
                    f"{name} needs the {scope.module} subscription; without it connecting fails or calls answer 404",
                    scope=name,
                )
            )
        if scope.sensitive:
            findings.append(
                ScopeFinding(
                    Severity.WARNING,
                    "sensitive_scope",
                    f"{name} grants sensitive personal data; request it only when you need it",
                    scope=name,
                )
            )
        for note in scope.notes:
            findings.append(ScopeFinding(Severity.INFO, "scope_note", f"{name}: {note}", scope=name))

    missing = [m for m in catalogue.minimum_scopes if m not in unique]
    for name in missing:
        findings.append(
            ScopeFinding(
                Severity.ERROR,
                "missing_minimum",
                f"{name} is required for every connection and is missing",
                scope=name,
                suggestion=name,
            )
        )
    return ScopeCheck(requested=tuple(unique), findings=tuple(findings))


def _unknown(catalogue: ScopeCatalogue, name: str) -> ScopeFinding:
    base, sep, access = name.rpartition(":")
    if sep and access == Access.READ.value:
        write = f"{base}:{Access.WRITE.value}"
        if write in catalogue:
            return ScopeFinding(
                Severity.ERROR,
                "no_read_scope",
                f"{name} does not exist: {base} has no read scope, and {write} is needed even to read",
                scope=name,
                suggestion=write,
            )
    import difflib

    match = difflib.get_close_matches(name, catalogue.names, n=1, cutoff=0.6)
    if not match and name.lower() in catalogue:
        match = [name.lower()]
    if match:
        return ScopeFinding(
            Severity.ERROR,
            "unknown_scope",
            f"unknown scope {name}; did you mean {match[0]}?",
            scope=name,
            suggestion=match[0],
        )
    return ScopeFinding(Severity.ERROR, "unknown_scope", f"unknown scope {name}", scope=name)


def scopes_for_actions(declaration: ProviderDeclaration, actions: Iterable[str]) -> tuple[str, ...]:
    """The least scope set for ``actions``: their scopes plus the minimum, in catalogue order.

    Raises :class:`~connector_core.UnknownNameError` for an unknown action.
    """
    catalogue = declaration.scope_catalogue
    if catalogue is None:
        raise ScopeError("scopes", f"provider {declaration.key!r} has no scope catalogue")
    wanted = set(catalogue.minimum_scopes)
    keys = list(actions)
    if not keys:
        raise ScopeError("actions", "expected at least one action")
    for key in keys:
        wanted.update(declaration.action(key).scopes)
    return tuple(n for n in catalogue.names if n in wanted)
