"""The provider file format's JSON Schema: shipped, in sync with the records, and what every
shipped and sample file follows."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import attrs
import jsonschema
import pytest
from support import run_connector
from support.dataprovider import ACME, DATA

from connector_core.dataprovider import GENERIC_OAUTH2_FILE, SCHEMA_FILE
from connector_core.dataprovider._format import SHAPES, model_class
from connector_core.dataprovider._schema import schema, schema_text

REPO = Path(__file__).resolve().parents[2]
FILES = [GENERIC_OAUTH2_FILE, ACME, *sorted(DATA.glob("*.toml"))]


def test_the_shipped_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "regenerate it: connector docs --data-schema is the shipped copy; write schema_text() to " + str(SCHEMA_FILE)
    )


def test_the_docs_publish_the_shipped_schema() -> None:
    published = REPO / "docs" / "provider.schema.json"
    assert published.read_text(encoding="utf-8") == SCHEMA_FILE.read_text(encoding="utf-8"), (
        f"copy {SCHEMA_FILE} to {published}: the documentation site publishes the schema"
    )


def test_the_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


@pytest.mark.parametrize("path", sorted(set(FILES)), ids=lambda p: p.name)
def test_every_shipped_and_sample_file_follows_the_schema(path: Path) -> None:
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(document), key=str)
    assert [e.message for e in errors] == []


def test_the_schema_rejects_an_unknown_key() -> None:
    document = tomllib.loads(ACME.read_text(encoding="utf-8"))
    document["provider"]["colour"] = "red"
    assert not jsonschema.Draft202012Validator(schema()).is_valid(document)


@pytest.mark.parametrize("name", [n for n, s in SHAPES.items() if s.model], ids=str)
def test_the_schema_names_every_field_of_every_record(name: str) -> None:
    shape = SHAPES[name]
    assert shape.model is not None
    properties = schema()["$defs"][name]["properties"]
    for field in attrs.fields(model_class(shape.model)):
        if not field.init or field.name in shape.skip or field.name == shape.key_field:
            continue
        assert (field.alias or field.name) in properties, f"{name}.{field.name} is not in the schema"


def test_the_docs_link_the_schema_and_the_cli_prints_it() -> None:
    page = (REPO / "docs" / "writing-a-provider-as-data.md").read_text(encoding="utf-8")
    assert "provider.schema.json" in page
    printed = run_connector(["docs", "--data-schema"])
    assert printed.returncode == 0
    assert json.loads(printed.stdout) == schema()
