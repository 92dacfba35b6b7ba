"""Turning declarations into plain JSON-ready data.

Serialisation lives here, outside the models. The shapes are the CLI's
``--json`` output and are stable: fields are only ever added. Each record
becomes an object with its public attrs fields (enums as their values, tuples
as lists); auth types also carry their ``kind``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import attrs

from .models import AuthKind

if TYPE_CHECKING:
    from .models import ProviderDeclaration

__all__ = ["declaration_to_data", "to_data"]


def to_data(obj: Any) -> Any:
    """A JSON-ready copy of ``obj`` (attrs records, enums, tuples, dicts, scalars)."""
    if attrs.has(type(obj)):
        data: dict[str, Any] = {}
        kind = getattr(obj, "kind", None)
        if isinstance(kind, AuthKind):  # an auth type: its kind is a property, not a field
            data["kind"] = kind.value
        for field in attrs.fields(type(obj)):
            if field.name.startswith("_") or not field.init:
                continue
            value = getattr(obj, field.name)
            if field.name == "extra_authorize_params":
                data[field.name] = {k: v for k, v in value}
            else:
                data[field.name] = to_data(value)
        return data
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (tuple, list, frozenset, set)):
        return [to_data(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    return obj


def declaration_to_data(declaration: ProviderDeclaration) -> dict[str, Any]:
    """The ``providers show --json`` shape: the provider's fields at the top level,
    then each declaration under its own key."""
    data: dict[str, Any] = to_data(declaration.provider)
    data["plugin"] = declaration.plugin
    rest = to_data(declaration)
    del rest["provider"], rest["plugin"]
    data.update(rest)
    return data
