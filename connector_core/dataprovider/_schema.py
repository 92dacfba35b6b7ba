"""The JSON Schema (draft 2020-12) of the provider file format, generated from :data:`SHAPES`
and the records' own fields, so it names every field a file may give.

The shipped copy, ``provider.schema.json`` beside this module, is this output; a test keeps
them equal. ``connector docs --data-schema`` prints the shipped copy, so regenerate it by writing
:func:`schema_text` to ``SCHEMA_FILE``, then copy it to ``docs/provider.schema.json``.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ._format import AUTH_KINDS, LIST, ONE, SHAPES, field_schema, record_fields

SCHEMA_ID = "https://connector-core.example/schemas/provider.schema.json"


def _nested_schema(child: str, how: str) -> dict[str, Any]:
    ref = {"$ref": f"#/$defs/{child}"}
    if how == ONE:
        return ref
    if how == LIST:
        return {"type": "array", "items": ref}
    return {"type": "object", "additionalProperties": ref}


def _definition(name: str) -> dict[str, Any]:
    shape = SHAPES[name]
    fields = record_fields(shape)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for key, attribute in fields.items():
        properties[key] = field_schema(attribute)
        if attribute.default is attrs.NOTHING:
            required.append(key)
    for key, (child, how) in shape.nested.items():
        properties[key] = _nested_schema(child, how)
    for key, schema in shape.extra.items():
        properties[key] = dict(schema)
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if shape.description:
        out["description"] = shape.description
    if required:
        out["required"] = required
    return out


def schema() -> dict[str, Any]:
    """The provider file format's JSON Schema."""
    defs: dict[str, Any] = {}
    for name in SHAPES:
        if name == "document":
            continue
        defs[name] = _definition(name)
    for kind, name in AUTH_KINDS.items():
        definition = defs[name]
        definition["properties"] = {"kind": {"const": kind}, **definition["properties"]}
        definition["required"] = ["kind", *definition.get("required", [])]
    defs["AuthType"] = {"oneOf": [{"$ref": f"#/$defs/{name}"} for name in AUTH_KINDS.values()]}
    document = _definition("document")
    document["required"] = ["provider", "auth_types", "environments"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "connector-core provider file",
        **document,
        "$defs": defs,
    }


def schema_text() -> str:
    """The schema as the shipped file holds it."""
    return json.dumps(schema(), indent=2, sort_keys=False) + "\n"
