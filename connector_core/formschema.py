"""A JSON Schema (draft 2020-12) for a provider's connector-profile form.

Built from the same credential-field declarations the CLI validates with, so a
platform's UI can render the form: properties in declaration order (also listed
in ``x-field-order``), labels as ``title``, help as ``description``, patterns
anchored for ECMA-262, secret fields ``writeOnly``, the scope list as an array
of the catalogue's scopes, and the environment as an enum.
"""

from __future__ import annotations

from typing import Any

from .models import FieldKind, FieldLevel, ProviderDeclaration

__all__ = ["DRAFT_2020_12", "profile_form_schema"]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def profile_form_schema(declaration: ProviderDeclaration, auth_type: str | None = None) -> dict[str, Any]:
    """The profile form's JSON Schema for one auth type (the preferred one by default)."""
    auth = declaration.auth_type(auth_type)
    catalogue = declaration.scope_catalogue
    properties: dict[str, Any] = {}
    required: list[str] = ["name", "environment"]

    properties["name"] = {
        "type": "string",
        "title": "Profile name",
        "description": "A name for this profile, unique in the store.",
        "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    }
    default_env = declaration.environment()
    properties["environment"] = {
        "type": "string",
        "title": "Environment",
        "description": "; ".join(
            f"{e.key}: {e.label}, uses {e.credential_set_label or e.credential_set}" for e in declaration.environments
        ),
        "enum": [e.key for e in declaration.environments],
        "default": default_env.key,
    }
    for field in declaration.fields_for(auth.key):
        if field.level is not FieldLevel.APP:
            continue
        prop: dict[str, Any]
        if field.kind is FieldKind.SCOPE_LIST and catalogue is not None:
            prop = {
                "type": "array",
                "items": {"type": "string", "enum": list(catalogue.names)},
                "uniqueItems": True,
                "default": list(catalogue.default_scopes),
                "contains": {"enum": list(catalogue.minimum_scopes)},
            }
        else:
            prop = {"type": "string", "minLength": 1, "maxLength": field.max_length}
            if field.pattern:
                prop["pattern"] = f"^(?:{field.pattern})$"
            if field.kind is FieldKind.URL:
                prop["format"] = "uri"
            if field.secret:
                prop["writeOnly"] = True
        prop["title"] = field.label
        if field.help:
            prop["description"] = field.help
        prop["x-kind"] = field.kind.value
        if field.placeholder:
            prop["examples"] = [field.placeholder]
        properties[field.name] = prop
        if field.required:
            required.append(field.name)
    if declaration.actions:
        properties["actions"] = {
            "type": "array",
            "title": "Actions",
            "description": "Operations to enable; scopes are derived from them when none are given.",
            "items": {"type": "string", "enum": [a.key for a in declaration.actions]},
            "uniqueItems": True,
        }
    return {
        "$schema": DRAFT_2020_12,
        "$id": f"urn:connector-core:profile-form:{declaration.key}:{auth.key}",
        "title": f"{declaration.provider.display_name} {auth.label} connector profile",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        "x-field-order": list(properties),
        "x-provider": declaration.key,
        "x-auth-type": auth.key,
    }
