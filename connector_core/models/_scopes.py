"""The scope catalogue: scopes by feature area, with the defaults and the minimum."""

from __future__ import annotations

import attrs

from ..errors import DeclarationError
from ._base import (
    KEY_RE,
    SCOPE_TOKEN_RE,
    Access,
    _bool,
    _instances,
    _is_enum,
    _matches,
    _names,
    _optional,
    _text,
    _to_access,
    _to_sorted_names,
    _to_tuple,
    _unique,
)


@attrs.frozen
class Scope:
    """One OAuth scope string and what it grants."""

    name: str = attrs.field(validator=_matches(SCOPE_TOKEN_RE, "a scope token (RFC 6749 section 3.3)"))
    description: str = attrs.field(validator=_text())
    access: Access = attrs.field(converter=_to_access, validator=_is_enum(Access))
    #: The provider module/subscription the scope needs, if any.
    module: str | None = attrs.field(default=None, validator=_optional(_text(max_length=100)))
    #: Grants sensitive personal data (pay, bank accounts, identification...).
    sensitive: bool = attrs.field(default=False, validator=_bool)
    #: Quirks worth knowing, such as "write is needed even for reads".
    notes: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple, validator=_instances(str))


@attrs.frozen
class ScopeGroup:
    """Scopes of one feature area."""

    key: str = attrs.field(validator=_matches(KEY_RE, "a lower-case group key"))
    label: str = attrs.field(validator=_text(max_length=100))
    scopes: tuple[Scope, ...] = attrs.field(converter=_to_tuple, validator=_instances(Scope, non_empty=True))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))


@attrs.frozen
class ScopeCatalogue:
    """Every scope a provider knows, by feature area, with its defaults and minimum.

    ``minimum_scopes`` must be a subset of ``default_scopes``, and both must name
    scopes in the catalogue.

    An ``open`` catalogue (a generic OAuth 2.0 server's) accepts any scope token
    (RFC 6749 section 3.3) besides the scopes it lists: ``name in catalogue`` is true
    for every valid token, its groups may be empty, and so may its defaults and minimum.
    """

    groups: tuple[ScopeGroup, ...] = attrs.field(
        converter=_to_tuple,
        validator=[_instances(ScopeGroup), _unique(lambda g: g.key, "group key")],
    )
    #: Requested when a profile names neither scopes nor actions.
    default_scopes: tuple[str, ...] = attrs.field(
        converter=_to_sorted_names, validator=_names(SCOPE_TOKEN_RE, "a scope token")
    )
    #: Every connection must be granted at least these.
    minimum_scopes: tuple[str, ...] = attrs.field(
        converter=_to_sorted_names, validator=_names(SCOPE_TOKEN_RE, "a scope token")
    )
    #: Any scope token is accepted, listed or not (a generic OAuth 2.0 provider).
    open: bool = attrs.field(default=False, validator=_bool)
    _by_name: dict[str, tuple[ScopeGroup, Scope]] = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        if not self.groups and not self.open:
            raise DeclarationError("ScopeCatalogue.groups", "expected at least one entry")
        by_name: dict[str, tuple[ScopeGroup, Scope]] = {}
        for group in self.groups:
            for scope in group.scopes:
                if scope.name in by_name:
                    raise DeclarationError(
                        "ScopeCatalogue.groups",
                        f"scope {scope.name!r} appears in both {by_name[scope.name][0].key!r} and {group.key!r}",
                    )
                by_name[scope.name] = (group, scope)
        object.__setattr__(self, "_by_name", by_name)
        # Keep defaults and minimum in catalogue order, the order people read them in.
        order = {name: index for index, name in enumerate(by_name)}
        for attr in ("default_scopes", "minimum_scopes"):
            names = getattr(self, attr)
            object.__setattr__(self, attr, tuple(sorted(names, key=lambda n: order.get(n, len(order)))))
        for attr in ("default_scopes", "minimum_scopes"):
            unknown = [s for s in getattr(self, attr) if s not in by_name]
            if unknown and not self.open:
                raise DeclarationError(f"ScopeCatalogue.{attr}", f"not in the catalogue: {', '.join(unknown)}")
        if not self.minimum_scopes and not self.open:
            raise DeclarationError("ScopeCatalogue.minimum_scopes", "expected at least one scope")
        missing = sorted(set(self.minimum_scopes) - set(self.default_scopes))
        if missing:
            raise DeclarationError(
                "ScopeCatalogue.minimum_scopes",
                f"must be a subset of default_scopes; not among the defaults: {', '.join(missing)}",
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Every scope name, in catalogue order."""
        return tuple(self._by_name)

    def __contains__(self, name: object) -> bool:
        if self.open:
            return isinstance(name, str) and SCOPE_TOKEN_RE.fullmatch(name) is not None
        return name in self._by_name

    def get(self, name: str) -> Scope | None:
        entry = self._by_name.get(name)
        return entry[1] if entry else None

    def group_of(self, name: str) -> ScopeGroup | None:
        entry = self._by_name.get(name)
        return entry[0] if entry else None

    def group(self, key: str) -> ScopeGroup | None:
        return next((g for g in self.groups if g.key == key), None)
