"""The platform API reference (docs/api-reference.md), generated from the OpenAPI document by
:func:`connector_core.docgen.render_api_reference`: the committed page, and the generator on a
small hand-written document."""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import REPO, Result

from connector_core.cli.docs import API_REFERENCE_URL
from connector_core.docgen import render_api_reference
from connector_core.errors import ValidationError
from connector_core.serve.openapi import openapi_document

PAGE = REPO / "docs" / "api-reference.md"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _pets() -> dict[str, Any]:
    """A small document with what the generator must handle: $refs (schemas, parameters,
    responses), required fields, enums, arrays, nested objects, nullable unions, security."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pet store", "version": "1", "description": "Pets, <b>bold</b> and `<code>`."},
        "servers": [{"url": "https://pets.example/api", "description": "production"}],
        "security": [{"key": []}],
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "listPets",
                    "summary": "the pets",
                    "tags": ["pets"],
                    "parameters": [
                        {
                            "name": "kind",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["cat", "dog"], "default": "cat"},
                            "description": "only pets of this kind",
                        },
                        {"$ref": "#/components/parameters/Limit"},
                    ],
                    "responses": {
                        "default": {"$ref": "#/components/responses/Error"},
                        "200": {
                            "description": "a page",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["data"],
                                        "properties": {
                                            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}},
                                            "next": {"type": ["string", "null"], "description": "the cursor"},
                                        },
                                    }
                                }
                            },
                        },
                    },
                },
                "post": {
                    "summary": "add a pet",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewPet"}}},
                    },
                    "responses": {"201": {"description": "added", "headers": {"Location": {"schema": {}}}}},
                },
            },
            "/pets/{id}": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "old"}
                ],
                "get": {
                    "summary": "one pet",
                    "security": [],
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^(a|b)[0-9]{1,8}$"},
                            "description": "the pet's id",
                        }
                    ],
                    "responses": {"404": {"$ref": "#/components/responses/Error"}},
                },
            },
        },
        "components": {
            "schemas": {
                "Pet": {
                    "type": "object",
                    "description": "A pet.",
                    "required": ["id", "name", "kind"],
                    "properties": {
                        "id": {"type": "integer", "minimum": 1},
                        "name": {"type": "string", "minLength": 1, "maxLength": 40},
                        "kind": {"type": "string", "enum": ["cat", "dog"]},
                        "owner": {"oneOf": [{"$ref": "#/components/schemas/Owner"}, {"type": "null"}]},
                        "tags": {
                            "type": "array",
                            "maxItems": 5,
                            "items": {"type": "string", "pattern": "^[a-z]+$"},
                            "description": "labels | free text",
                        },
                        "visits": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["at"],
                                "properties": {"at": {"type": "string", "format": "date-time"}, "vet": {}},
                            },
                        },
                        "extra": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "NewPet": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "kind": {"type": "string", "default": "cat"}},
                },
                "Owner": {"type": "object", "properties": {"name": {"type": "string"}}},
                "Error": {"type": "object", "properties": {"detail": {"type": "string"}}},
                "Kind": {"type": "string", "enum": ["cat", "dog"]},
            },
            "parameters": {
                "Limit": {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                }
            },
            "responses": {
                "Error": {
                    "description": "an error",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            },
            "securitySchemes": {"key": {"type": "http", "scheme": "bearer", "description": "an API key"}},
        },
    }


def _section(page: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    body = page.split(f"\n{heading}\n", 1)[1]
    stop = re.search(rf"^#{{1,{len(level)}}} ", body, flags=re.MULTILINE)
    return body[: stop.start()] if stop else body


# ------------------------------------------------------------------ the committed page


def test_the_api_reference_is_generated_from_the_openapi_document() -> None:
    assert PAGE.read_text() == render_api_reference(openapi_document(API_REFERENCE_URL)), (
        "docs/api-reference.md drifted from connector_core/serve/openapi.py; regenerate it with "
        "'connector docs --api-reference --output docs/api-reference.md'"
    )


def test_the_page_has_every_operation_and_every_schema_of_the_document() -> None:
    document = openapi_document(API_REFERENCE_URL)
    page = PAGE.read_text()
    operations = [(m, p) for p, item in document["paths"].items() for m in item if m in METHODS]
    assert len(operations) >= 13
    for method, path in operations:
        heading = f"### `{method.upper()} {path}`"
        assert page.count(f"\n{heading}\n") == 1, heading
        assert f"[`{method.upper()} {path}`](#" in page
        operation = document["paths"][path][method]
        assert f"- Operation id: `{operation['operationId']}`" in _section(page, heading)
    for name in document["components"]["schemas"]:
        assert page.count(f"\n### `{name}`\n") == 1, name
    assert "- `https://platform.example`" in page
    assert "\n- Security: none\n" in _section(page, "### `GET /healthz`")


def test_every_link_of_the_page_names_a_heading_of_it() -> None:
    page = PAGE.read_text()
    links = set(re.findall(r"\]\(#([^)]+)\)", page))
    headings = {
        re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text.replace("`", "")).strip().lower())
        for text in re.findall(r"^#+ (.+)$", page, flags=re.MULTILINE)
    }
    assert links and links <= headings, sorted(links - headings)


# ------------------------------------------------------------------- the generator


def test_operations_come_under_their_path_with_every_part_of_them() -> None:
    page = render_api_reference(_pets())
    assert page.startswith("<!-- Generated from the OpenAPI document by 'connector docs --api-reference'.")
    assert "\n# API reference\n" in page
    assert "Every operation of Pet store and every schema it uses, generated from its OpenAPI 3.1.0 document." in page
    assert "- `https://pets.example/api`: production" in page
    assert "| [`GET /pets`](#get-pets) | The pets. |" in page
    assert "| [`GET /pets/{id}`](#get-petsid) | One pet. |" in page
    listing = _section(page, "### `GET /pets`")
    assert "- Operation id: `listPets`\n- Tags: `pets`\n- Security: [`key`](#security)" in listing
    assert "| `kind` | query | string | no | Only pets of this kind. One of `cat`, `dog`; default `cat`. |" in listing
    assert "| `limit` | query | integer | no | From 1 to 100; default `20`. |" in listing  # a $ref'd parameter
    # the statuses in order, "default" last; a $ref'd response followed
    assert listing.index("| `200` | A page. |") < listing.index("| any other | An error. |")
    assert "`application/problem+json`: [`Error`](#error)" in listing
    assert "| `200` | A page. | `application/json`: object (fields below) |" in listing
    # an inline response object gets its own field table
    assert "Response `200`, `application/json`:" in listing
    assert "| `data` | array of [`Pet`](#pet) | yes |   |" in listing
    assert "| `next` | string or null | no | The cursor. |" in listing
    adding = _section(page, "### `POST /pets`")
    assert "Request body (required): `application/json`: [`NewPet`](#newpet)." in adding
    assert "| `201` | Added. | header `Location` |" in adding


def test_path_parameters_are_shared_and_an_operation_overrides_them() -> None:
    one = _section(render_api_reference(_pets()), "### `GET /pets/{id}`")
    rows = [line for line in one.splitlines() if line.startswith("| `id` |")]
    assert rows == ["| `id` | path | string | yes | The pet's id. Pattern `^(a|b)[0-9]{1,8}$`. |"]
    assert "- Security: none" in one  # security: [] drops the document's requirement


def test_component_schemas_are_rendered_once_in_name_order_with_their_rules() -> None:
    page = render_api_reference(_pets())
    schemas = _section(page, "## Schemas")
    assert re.findall(r"^### `(\w+)`$", schemas, flags=re.MULTILINE) == ["Error", "Kind", "NewPet", "Owner", "Pet"]
    pet = _section(page, "### `Pet`")
    assert pet.startswith("\nA pet.\n")
    for row in (
        "| `id` | integer | yes | At least 1. |",
        "| `name` | string | yes | 1 to 40 characters. |",
        "| `kind` | string | yes | One of `cat`, `dog`. |",
        "| `owner` | [`Owner`](#owner) or null | no |   |",
        r"| `tags` | array of string | no | Labels \| free text. At most 5 items; each: pattern `^[a-z]+$`. |",
        "| `visits` | array of object | no |   |",
        "| `visits[].at` | string | yes | Format `date-time`. |",
        "| `visits[].vet` | any | no |   |",
        "| `extra` | object of string values | no |   |",
    ):
        assert row in pet, row
    new = _section(page, "### `NewPet`")
    assert "| `kind` | string | no | Default `cat`. |" in new and "No other fields are accepted." in new
    assert "Type: string. One of `cat`, `dog`." in _section(page, "### `Kind`")


def test_descriptions_keep_their_markdown_but_not_raw_html() -> None:
    page = render_api_reference(_pets())
    assert "Pets, &lt;b&gt;bold&lt;/b&gt; and `<code>`." in page and "<b>" not in page


def test_the_security_section_names_each_scheme() -> None:
    security = _section(render_api_reference(_pets()), "## Security")
    assert "Every operation needs [`key`](#security) unless it says otherwise." in security
    assert "| `key` | HTTP `bearer`: `Authorization: Bearer KEY` | An API key. |" in security


def test_the_page_depends_only_on_the_document() -> None:
    document = _pets()
    page = render_api_reference(document)
    assert render_api_reference(copy.deepcopy(document)) == page
    reordered = copy.deepcopy(document)
    reordered["components"]["schemas"] = dict(reversed(list(document["components"]["schemas"].items())))
    assert render_api_reference(reordered) == page  # schemas are listed by name, not by dict order
    assert document == _pets()  # the document is not changed


def test_headings_whose_anchors_collide_get_the_suffix_mkdocs_gives_them() -> None:
    document = _pets()
    document["components"]["schemas"]["Pet.v2"] = {"type": "string"}
    document["components"]["schemas"]["Petv2"] = {"type": "string"}
    document["paths"]["/pets"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "type": "array",
        "items": {"oneOf": [{"$ref": "#/components/schemas/Pet.v2"}, {"$ref": "#/components/schemas/Petv2"}]},
    }
    page = render_api_reference(document)
    assert "`application/json`: array of ([`Pet.v2`](#petv2) or [`Petv2`](#petv2_1))" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(openapi="2.0"), "openapi: expected an OpenAPI 3 document version"),
        (lambda d: d.update(paths=[]), "paths: expected a JSON object, got list"),
        (
            lambda d: d["paths"]["/pets"]["post"]["requestBody"]["content"]["application/json"].update(
                schema={"$ref": "#/components/schemas/Nope"}
            ),
            "$ref: '#/components/schemas/Nope' is not in components.schemas",
        ),
        (
            lambda d: d["paths"]["/pets"]["get"]["parameters"].append({"$ref": "#/components/parameters/Nope"}),
            "$ref: '#/components/parameters/Nope' names nothing in the document",
        ),
        (
            lambda d: d["paths"]["/pets"]["get"]["parameters"].append({"$ref": "https://elsewhere.example/p.json"}),
            "$ref: expected a reference into this document",
        ),
    ],
)
def test_a_broken_document_is_a_one_line_error_naming_the_part(change: Callable[[Any], None], message: str) -> None:
    document = _pets()
    change(document)
    with pytest.raises(ValidationError) as caught:
        render_api_reference(document)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValidationError, match="document: expected an OpenAPI document"):
        render_api_reference([])  # type: ignore[arg-type]


# --------------------------------------------------------------------- the command


def test_connector_docs_api_reference_prints_and_writes_the_page(
    run_cli: Callable[..., Result], tmp_path: Path
) -> None:
    printed = run_cli(["docs", "--api-reference"])
    assert printed.code == 0 and printed.err == "" and printed.out == PAGE.read_text()
    out = tmp_path / "api.md"
    written = run_cli(["docs", "--api-reference", "--output", str(out)])
    assert written.code == 0 and written.out == "" and out.read_text() == PAGE.read_text()


def test_without_the_serve_extra_the_api_reference_is_a_one_line_error(
    run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [n for n in sys.modules if n.startswith(("connector_core.serve", "starlette."))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "starlette", None)  # as if it were not installed
    out = tmp_path / "api.md"
    result = run_cli(["docs", "--api-reference", "--output", str(out)])
    assert result.code == 1 and result.out == "" and not out.exists()
    assert result.err == (
        "connector: error: connector docs --api-reference needs the 'serve' extra (starlette is missing): "
        "pip install 'connector-core[serve]'\n"
    )


def test_a_provider_and_the_api_reference_are_refused_together(run_cli: Callable[..., Result]) -> None:
    result = run_cli(["docs", "hibob", "--api-reference"])
    assert result.code == 2 and "give a PROVIDER or a reference option, not both" in result.err
