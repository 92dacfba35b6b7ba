"""JSON Schemas (draft 2020-12) for a provider's forms: the connector-profile form the
platform fills in (:func:`profile_form_schema`, its app-level fields), and the connection
form an end user fills in to connect (:func:`connection_form_schema`, the user-level fields
of an auth type that sends no one to the provider: a service user's ID and token, an API key).

Built from the same credential-field declarations the CLI validates with, so a
platform's UI can render the forms: properties in declaration order (also listed
in ``x-field-order``), labels as ``title``, help as ``description``, patterns
anchored for ECMA-262, secret fields ``writeOnly``, the scope list as an array
of the catalogue's scopes, and the environment as an enum. ``x-auth-kind`` says
what kind of auth type the form is for.
"""

from __future__ import annotations

from typing import Any

from .models import ApiKeyAuth, ApiKeyLocation, AuthType, CredentialField, FieldKind, FieldLevel, ProviderDeclaration

__all__ = ["DRAFT_2020_12", "connection_form_schema", "profile_form_schema"]

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
            prop = _string(field)
        properties[field.name] = _described(prop, field, examples=True)
        if field.required:
            required.append(field.name)
    if declaration.actions and auth.kind.uses_tokens:  # actions derive OAuth scopes
        properties["actions"] = {
            "type": "array",
            "title": "Actions",
            "description": "Operations to enable; scopes are derived from them when none are given.",
            "items": {"type": "string", "enum": [a.key for a in declaration.actions]},
            "uniqueItems": True,
        }
    user = [f.name for f in declaration.fields_for(auth.key, FieldLevel.USER)]
    title = f"{declaration.provider.display_name} {auth.label} connector profile"
    schema = _form("profile-form", title, declaration, auth, properties, required)
    #: What each connection of the profile holds instead (see connection_form_schema).
    schema["x-connection-fields"] = user
    if user:
        schema["description"] = (
            f"A {auth.key} profile holds no credentials of the end user's: each connection holds its own "
            f"({', '.join(user)}), given when it is made."
        )
    return schema


def connection_form_schema(declaration: ProviderDeclaration, auth_type: str | None = None) -> dict[str, Any]:
    """The JSON Schema of what an end user fills in to connect through a profile of
    ``auth_type`` (the preferred one by default): its user-level credential fields, such as a
    service user's ID and token (secret ones ``writeOnly``). An auth type that takes none (an
    OAuth 2.0 grant) gives an empty form; ``x-redirects`` says whether the person is sent to the
    provider instead."""
    auth = declaration.auth_type(auth_type)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in declaration.fields_for(auth.key, FieldLevel.USER):
        properties[field.name] = _described(_string(field), field, examples=not field.secret)
        if field.required:
            required.append(field.name)
    title = f"Connect {declaration.provider.display_name} ({auth.label})"
    schema = _form("connection-form", title, declaration, auth, properties, required)
    schema["x-redirects"] = auth.kind.redirects
    if auth.description:
        schema["description"] = auth.description
    if isinstance(auth, ApiKeyAuth):
        schema["x-api-key"] = (
            {"location": "query", "name": auth.query_name}
            if auth.location is ApiKeyLocation.QUERY
            else {"location": "header", "name": auth.header_name, "prefix": auth.prefix}
        )
    rejected = getattr(auth, "rejected_guidance", "")
    if rejected:
        schema["x-rejected-guidance"] = rejected
    return schema


def _form(
    kind: str,
    title: str,
    declaration: ProviderDeclaration,
    auth: AuthType,
    properties: dict[str, Any],
    required: list[str],
) -> dict[str, Any]:
    """The envelope both forms share: an object of ``properties`` in declaration order, no others."""
    return {
        "$schema": DRAFT_2020_12,
        "$id": f"urn:connector-core:{kind}:{declaration.key}:{auth.key}",
        "title": title,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        "x-field-order": list(properties),
        "x-provider": declaration.key,
        "x-auth-type": auth.key,
        "x-auth-kind": auth.kind.value,
    }


def _described(prop: dict[str, Any], field: CredentialField, *, examples: bool) -> dict[str, Any]:
    """A field's property with its label, help and kind (and its placeholder as an example)."""
    prop["title"] = field.label
    if field.help:
        prop["description"] = field.help
    prop["x-kind"] = field.kind.value
    if field.placeholder and examples:
        prop["examples"] = [field.placeholder]
    return prop


def _string(field: CredentialField) -> dict[str, Any]:
    """A text field: length bounds, its pattern anchored for ECMA-262, a URL's format, a secret
    ``writeOnly`` (a form never shows it back)."""
    prop: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": field.max_length}
    if field.pattern:
        prop["pattern"] = f"^(?:{field.pattern})$"
    if field.kind is FieldKind.URL:
        prop["format"] = "uri"
    if field.secret:
        prop["writeOnly"] = True
    return prop
