"""The provider file format: which TOML table builds which record, and how a file becomes
records, with every error naming the file, the line and the field.

One table, :data:`SHAPES`, says for each part of the format which attrs record it builds, which
of the record's fields come from the file's structure (a table's key, its parent) rather than
from a key, and which keys hold nested parts. The builder and the JSON Schema
(:mod:`connector_core.dataprovider._schema`) both read it, so they cannot disagree, and every
rule a record checks is checked once, by the record.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import attrs

from ..errors import DataFileError, DeclarationError

#: A nested part: ``one`` table, a ``list`` of tables (``[[x]]``), or ``keyed`` tables (``[x.KEY]``).
ONE, LIST, KEYED = "one", "list", "keyed"


class Shape(NamedTuple):
    """One part of the format: the record it builds and where its fields come from.

    A named tuple, not an attrs class: listing providers imports this module, and building
    an attrs class costs about half a millisecond."""

    #: The record class's name in :mod:`connector_core.models` or :mod:`connector_core.emulator.spec`
    #: (``None``: a table of the format's own, checked against ``extra`` only).
    model: str | None
    #: For ``keyed`` tables: the record field the table's key fills.
    key_field: str | None = None
    #: Record fields the file does not give: filled from the structure, or not offered.
    skip: tuple[str, ...] = ()
    #: TOML key -> (shape name, how it nests). Nested parts become the record field of that name
    #: unless ``into`` says otherwise.
    nested: Mapping[str, tuple[str, str]] = {}
    #: Keys of the format's own (not record fields), with their JSON Schema.
    extra: Mapping[str, Mapping[str, Any]] = {}
    #: Keys renamed: TOML key -> record field.
    into: Mapping[str, str] = {}
    description: str = ""


_AUTH_COMMON: dict[str, tuple[str, str]] = {"fields": ("CredentialField", KEYED)}
_KIND = {"const_of": "kind"}

#: Every part of the format, by name. ``document`` is the file itself.
SHAPES: dict[str, Shape] = {
    "document": Shape(
        None,
        nested={
            "provider": ("Provider", ONE),
            "auth_types": ("AuthType", KEYED),
            "scope_catalogue": ("ScopeCatalogue", ONE),
            "environments": ("Environment", KEYED),
            "callback": ("Callback", ONE),
            "reconnect_policy": ("ReconnectPolicy", ONE),
            "connection_test": ("ConnectionTest", ONE),
            "actions": ("Action", KEYED),
            "setup_guide": ("SetupGuide", ONE),
            "connect_checklist": ("Procedure", LIST),
            "identity": ("Identity", ONE),
            "emulator": ("EmulatorSpec", ONE),
        },
        extra={"$schema": {"type": "string", "description": "The URL or path of this format's JSON Schema."}},
        description="A connector provider declared as data (one TOML file).",
    ),
    "Provider": Shape("Provider", nested={"links": ("Link", LIST)}),
    "Link": Shape("Link"),
    "OAuth2AuthorizationCode": Shape("OAuth2AuthorizationCode", key_field="key", nested=_AUTH_COMMON),
    "OAuth2ClientCredentials": Shape("OAuth2ClientCredentials", key_field="key", nested=_AUTH_COMMON),
    "HttpBasicAuth": Shape("HttpBasicAuth", key_field="key", nested=_AUTH_COMMON),
    "ApiKeyAuth": Shape("ApiKeyAuth", key_field="key", nested=_AUTH_COMMON),
    "CredentialField": Shape("CredentialField", key_field="name", skip=("auth_type",)),
    "ScopeCatalogue": Shape("ScopeCatalogue", nested={"groups": ("ScopeGroup", KEYED)}),
    "ScopeGroup": Shape("ScopeGroup", key_field="key", nested={"scopes": ("Scope", LIST)}),
    "Scope": Shape("Scope"),
    "Environment": Shape("Environment", key_field="key"),
    "Callback": Shape("Callback"),
    "ReconnectPolicy": Shape("ReconnectPolicy", nested={"procedures": ("Procedure", LIST)}),
    "Procedure": Shape("Procedure", nested={"steps": ("ManualStep", LIST)}),
    "ManualStep": Shape("ManualStep"),
    "ConnectionTest": Shape("ConnectionTest"),
    "Action": Shape("Action", key_field="key"),
    "SetupGuide": Shape("SetupGuide", nested={"steps": ("SetupStep", KEYED)}),
    "SetupStep": Shape("SetupStep", key_field="key"),
    "Identity": Shape(
        None,
        extra={
            "name": {"type": "string", "description": "The identity's name, stored with the connection."},
            "token_fields": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "Token response fields that may hold it, first found wins (e.g. companyId).",
            },
        },
        description="Which token-response field names the tenant (company, workspace...).",
    ),
    "EmulatorSpec": Shape(
        "EmulatorSpec",
        skip=("error_body", "company_factory", "audiences"),
        nested={
            "app": ("AppRegistration", ONE),
            "permission_groups": ("PermissionGroup", KEYED),
            "resources": ("Resource", LIST),
        },
        description="How the built-in emulator imitates the provider, so it can be tested offline.",
    ),
    "AppRegistration": Shape("AppRegistration"),
    "PermissionGroup": Shape("PermissionGroup", key_field="key"),
    "Resource": Shape(
        "ResourceEndpoint",
        skip=("handler",),
        extra={
            "status": {"type": "integer", "minimum": 100, "maximum": 599, "description": "The answer's status."},
            "json": {"description": "The JSON body every call answers with."},
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Extra response headers.",
            },
        },
        description="An API endpoint answering static JSON.",
    ),
}

#: Auth types by the ``kind`` their table names.
AUTH_KINDS: dict[str, str] = {
    "oauth2_authorization_code": "OAuth2AuthorizationCode",
    "oauth2_client_credentials": "OAuth2ClientCredentials",
    "http_basic": "HttpBasicAuth",
    "api_key": "ApiKeyAuth",
}


def model_class(name: str) -> type:
    """The record class a shape builds (imported on first use: building one costs ~0.5 ms)."""
    if name in ("EmulatorSpec", "AppRegistration", "PermissionGroup", "ResourceEndpoint"):
        # on first use: only a data provider's emulator hook needs the emulator's records
        from ..emulator import spec

        return getattr(spec, name)  # type: ignore[no-any-return]
    # on first use: providers list builds none of these
    from .. import models

    return getattr(models, name)  # type: ignore[no-any-return]


def record_fields(shape: Shape) -> dict[str, attrs.Attribute[Any]]:
    """The record fields a file may give for ``shape`` (init fields, less the skipped, keyed and nested)."""
    if shape.model is None:
        return {}
    cls = model_class(shape.model)
    hidden = {*shape.skip, *shape.nested, *([shape.key_field] if shape.key_field else [])}
    return {a.alias or a.name: a for a in attrs.fields(cls) if a.init and a.name not in hidden}


# ---------------------------------------------------------------------- the file


class Source(NamedTuple):
    """A provider file's text and where it came from, for error messages."""

    name: str
    text: str

    def fail(self, path: Sequence[str | int], message: str, line: int | None = None) -> DataFileError:
        dotted = _dotted(path)
        if line is None:
            line = find_line(self.text, path)
        return DataFileError(self.name, line, dotted, message)


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + (part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"')
    return out


_SYNTAX_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def parse(source: Source) -> dict[str, Any]:
    """The TOML document; a syntax error names the file and the line."""
    import tomllib  # on first use: a command that never reads a provider file never pays for it

    try:
        return tomllib.loads(source.text)
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        found = _SYNTAX_LINE.search(text)
        line = int(found.group(1)) if found else None
        raise source.fail((), f"TOML syntax error: {_SYNTAX_LINE.sub('', text).strip()}", line) from None


def provider_table(source: Source) -> dict[str, Any]:
    """Only the ``[provider]`` table (what a listing needs), parsed from its own lines.

    The rest of the file is parsed when a declaration is first asked for. A file whose
    ``[provider]`` table is not written as one table falls back to parsing it whole.
    """
    lines = source.text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == "[provider]"), None)
    if start is None:
        document = parse(source)
        table = document.get("provider")
        if not isinstance(table, dict):
            raise source.fail(("provider",), "is missing: every provider file has a [provider] table", 1)
        return table
    end = next((i for i in range(start + 1, len(lines)) if _is_foreign_header(lines[i])), len(lines))
    # Blank lines keep the numbering, so a syntax error inside the table names its real line.
    piece = Source(source.name, "\n" * start + "".join(lines[start:end]))
    table = parse(piece).get("provider", {})
    return table if isinstance(table, dict) else {}


def _is_foreign_header(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith("[") and not re.match(r"\[\[?\s*provider\s*[.\]]", stripped)


# ------------------------------------------------------------------- line finding

_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY_RE = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*=""")


def _split_key(text: str) -> list[str]:
    parts = re.findall(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+)""", text)
    return [a or b or c for a, b, c in parts]


def find_line(text: str, path: Sequence[str | int]) -> int | None:
    """The line that best names ``path``: the key itself, else the nearest table above it.

    A heuristic over the text (TOML parsers keep no positions): table headers and keys are
    tracked, with array-of-tables headers counted so ``steps[1]`` finds the second ``[[...steps]]``.
    """
    if not path:
        return None
    want = [str(p) for p in path]
    best: tuple[int, int] | None = None  # (matched parts, line)
    current: list[str] = []
    counts: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER_RE.match(line)
        if header and not _KEY_RE.match(line):
            names = _split_key(header.group(2))
            if header.group(1) == "[[":
                prefix = tuple(current_prefix(names, counts))
                index = counts.get(prefix, 0)
                counts[prefix] = index + 1
                current = [*prefix, str(index)]
            else:
                current = list(current_prefix(names, counts))
            full = current
        else:
            key = _KEY_RE.match(line)
            if not key:
                continue
            full = [*current, *_split_key(key.group(1))]
        matched = _common(full, want)
        if matched and (best is None or matched > best[0]) and matched == min(len(full), len(want)):
            best = (matched, number)
            if matched == len(want):
                break
    return best[1] if best else None


def current_prefix(names: list[str], counts: Mapping[tuple[str, ...], int]) -> list[str]:
    """A header's path with the index of each array of tables it lies in."""
    out: list[str] = []
    for number, name in enumerate(names, 1):
        out.append(name)
        index = counts.get(tuple(out))
        if index and number < len(names):  # the header's own name is not inside itself
            out.append(str(index - 1))
    return out


def _common(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


# ------------------------------------------------------------------- building

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "array": (list,),
    "object": (dict,),
}
_PLURAL = {"string": "strings", "boolean": "booleans", "integer": "integers", "object": "tables"}
_TYPE_WORDS = {
    "string": "a string",
    "boolean": "true or false",
    "integer": "an integer",
    "array": "a list",
    "object": "a table",
}


def type_problem(schema: Mapping[str, Any], value: Any) -> str | None:
    """What is wrong with ``value``'s TOML type against a property's schema, or ``None``."""
    kind = schema.get("type")
    if kind is None:
        return None
    kinds = kind if isinstance(kind, list) else [kind]
    for name in kinds:
        types = _JSON_TYPES.get(name, ())
        if isinstance(value, types) and not (name == "integer" and isinstance(value, bool)):
            if (
                isinstance(value, list)
                and "items" in schema
                and any(type_problem(schema["items"], item) for item in value)
            ):
                return f"expected a list of {_PLURAL.get(schema['items'].get('type'), 'values')}"
            extra = schema.get("additionalProperties")
            if (
                isinstance(value, dict)
                and isinstance(extra, Mapping)
                and any(type_problem(extra, v) for v in value.values())
            ):
                return "expected a table of strings"
            return None
    shown = type(value).__name__
    shown = {"str": "a string", "bool": "a boolean", "int": "an integer", "list": "a list", "dict": "a table"}.get(
        shown, shown
    )
    if "enum" in schema and isinstance(value, str):
        return None  # the record names the allowed values
    return f"expected {' or '.join(_TYPE_WORDS.get(str(k), str(k)) for k in kinds)}, got {shown}"


_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "str | None": {"type": "string"},
    "bool": {"type": "boolean"},
    "int": {"type": "integer"},
    "int | None": {"type": "integer"},
    "tuple[str, ...]": {"type": "array", "items": {"type": "string"}},
    "tuple[str, ...] | None": {"type": "array", "items": {"type": "string"}},
    "tuple[tuple[str, str], ...]": {"type": "object", "additionalProperties": {"type": "string"}},
}


def _enum(name: str) -> type[enum.Enum] | None:
    # on first use: only schema generation needs the enums by name
    from .. import models

    found = getattr(models, name, None)
    return found if isinstance(found, type) and issubclass(found, enum.Enum) else None


def field_schema(attribute: attrs.Attribute[Any]) -> dict[str, Any]:
    """The JSON Schema of one record field, from its annotation."""
    annotation = str(attribute.type)
    if annotation in _SCALARS:
        schema = dict(_SCALARS[annotation])
    elif annotation.startswith("tuple[") and (found := _enum(annotation[6:].split(",")[0])) is not None:
        schema = {"type": "array", "items": {"type": "string", "enum": [m.value for m in found]}}
    elif (found := _enum(annotation)) is not None:
        schema = {"type": "string", "enum": [m.value for m in found]}
    else:  # a new kind of field: teach the format (and this table) about it
        raise TypeError(f"no JSON Schema for {attribute.name}: {annotation}")
    if attribute.default is not attrs.NOTHING and not isinstance(attribute.default, attrs.Factory):  # type: ignore[arg-type]
        default = attribute.default
        if isinstance(default, enum.Enum):
            default = default.value
        if isinstance(default, tuple):
            default = [d.value if isinstance(d, enum.Enum) else d for d in default]
        if default is not None and schema["type"] != "object":
            schema["default"] = default
    return schema


class Builder:
    """Turns a parsed document into records, raising :class:`DataFileError` at the first problem."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def fail(self, path: Sequence[str | int], message: str) -> DataFileError:
        return self.source.fail(path, message)

    def check_keys(self, table: Mapping[str, Any], allowed: Sequence[str], path: Sequence[str | int]) -> None:
        for key in table:
            if key not in allowed:
                import difflib  # on first use: only a bad file needs suggestions

                match = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
                hint = f"; did you mean {match[0]!r}?" if match else f"; expected one of: {', '.join(allowed)}"
                raise self.fail([*path, key], f"unknown key{hint}")

    def table(self, value: Any, path: Sequence[str | int]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a table, got {type(value).__name__}")
        return value

    def build(
        self, shape_name: str, value: Any, path: Sequence[str | int], *, key: str | None = None, **given: Any
    ) -> Any:
        """Build the record of ``shape_name`` from a table at ``path``."""
        shape = SHAPES[shape_name]
        table = self.table(value, path)
        fields = record_fields(shape)
        allowed = [*fields, *shape.nested, *shape.extra]
        self.check_keys(table, allowed, path)
        kwargs: dict[str, Any] = dict(given)
        for name, item in table.items():
            if name in shape.nested:
                continue
            where = [*path, name]
            schema = field_schema(fields[name]) if name in fields else shape.extra[name]
            problem = type_problem(schema, item)
            if problem:
                raise self.fail(where, problem)
            if name in fields:
                kwargs[fields[name].name] = item
            elif shape.model is None:
                kwargs[name] = item
        for name, (child, how) in shape.nested.items():
            if name not in table:
                continue
            kwargs[shape.into.get(name, name)] = self.nested(child, how, table[name], [*path, name])
        if shape.key_field is not None and key is not None:
            kwargs[shape.key_field] = key
        if shape.model == "ResourceEndpoint":
            kwargs["handler"] = static_handler(table.get("status", 200), table.get("json"), table.get("headers", {}))
        if shape.model is None:
            return kwargs
        return self.record(model_class(shape.model), kwargs, path)

    def nested(self, shape_name: str, how: str, value: Any, path: Sequence[str | int]) -> Any:
        if how == ONE:
            return self.build(shape_name, value, path)
        if how == LIST:
            if not isinstance(value, list):
                raise self.fail(path, f"expected a list of tables ([[{_dotted(path)}]]), got {type(value).__name__}")
            return tuple(self.build(shape_name, item, [*path, i]) for i, item in enumerate(value))
        table = self.table(value, path)
        return tuple(self.build(shape_name, item, [*path, k], key=k) for k, item in table.items())

    def record(self, cls: type, kwargs: dict[str, Any], path: Sequence[str | int]) -> Any:
        missing = [
            a.alias or a.name
            for a in attrs.fields(cls)
            if a.init and a.default is attrs.NOTHING and (a.alias or a.name) not in kwargs
        ]
        if missing:
            raise self.fail(path, f"missing {', '.join(missing)}")
        try:
            return cls(**kwargs)
        except DeclarationError as exc:
            raise self.fail([*path, *_attr_path(exc.field)], bare(exc)) from None


def bare(exc: DeclarationError) -> str:
    """A record's message without its ``Class.field: `` prefix (the file's path replaces it)."""
    prefix = f"{exc.field}: "
    return exc.message[len(prefix) :] if exc.message.startswith(prefix) else exc.message


def _attr_path(field: str) -> list[str | int]:
    """``Class.attr[2]`` (a record's own error) as path parts below the record: ``attr``, 2."""
    _, _, rest = field.partition(".")
    if not rest or field.startswith(("PermissionGroup(", "ResourceEndpoint(")):
        return []
    name, _, index = rest.partition("[")
    parts: list[str | int] = [name]
    if index.rstrip("]").isdigit():
        parts.append(int(index.rstrip("]")))
    return parts


Identity = Callable[[Mapping[str, Any]], dict[str, str]]


# ------------------------------------------------------------------ the document


class Records(NamedTuple):
    """Everything one provider file declares, built and cross-checked."""

    declaration: Any  # ProviderDeclaration (its class is imported on first use)
    #: (name, token response fields) of ``[identity]``, or ``None``.
    identity: tuple[str, tuple[str, ...]] | None
    #: The ``[emulator]`` table, built into an EmulatorSpec only when the emulator asks.
    emulator: Mapping[str, Any] | None


def build_records(source: Source, plugin: str) -> Records:
    """Parse ``source`` whole and build every record; the first problem raises :class:`DataFileError`."""
    document = parse(source)
    builder = Builder(source)
    shape = SHAPES["document"]
    builder.check_keys(document, [*shape.nested, *shape.extra], ())
    if "provider" not in document:
        raise source.fail(("provider",), "is missing: every provider file has a [provider] table", 1)
    provider = builder.build("Provider", document["provider"], ("provider",))
    auth_types: list[Any] = []
    fields: list[Any] = []
    for key, table in builder.table(document.get("auth_types", {}), ("auth_types",)).items():
        auth, auth_fields = _auth_type(builder, key, table)
        auth_types.append(auth)
        fields.extend(auth_fields)
    if not auth_types:
        raise source.fail(("auth_types",), "expected at least one auth type ([auth_types.KEY] with its kind)", 1)
    if "environments" not in document:
        raise source.fail(("environments",), "expected at least one environment ([environments.KEY])", 1)
    kwargs: dict[str, Any] = {"provider": provider, "plugin": plugin, "auth_types": auth_types}
    kwargs["credential_fields"] = fields
    for name in (
        "scope_catalogue",
        "environments",
        "callback",
        "reconnect_policy",
        "connection_test",
        "actions",
        "connect_checklist",
    ):
        if name in document:
            child, how = shape.nested[name]
            kwargs[name] = builder.nested(child, how, document[name], (name,))
    if "setup_guide" in document:
        kwargs["setup_guide"] = builder.build("SetupGuide", document["setup_guide"], ("setup_guide",))
    identity = None
    if "identity" in document:
        found = builder.build("Identity", document["identity"], ("identity",))
        if "name" not in found or "token_fields" not in found:
            raise source.fail(("identity",), "expected both name and token_fields")
        identity = (found["name"], tuple(found["token_fields"]))
    emulator = document.get("emulator")
    if emulator is not None:
        builder.table(emulator, ("emulator",))
    # on first use: the declaration's cross-checks live with its record
    from ..models import ProviderDeclaration

    try:
        declaration = ProviderDeclaration(**kwargs)
    except DeclarationError as exc:
        raise source.fail(_declaration_path(exc.field, fields), bare(exc)) from None
    return Records(declaration, identity, emulator)


def _auth_type(builder: Builder, key: str, value: Any) -> tuple[Any, list[Any]]:
    path = ("auth_types", key)
    table = dict(builder.table(value, path))
    kind = table.pop("kind", None)
    if kind is None:
        raise builder.fail(path, f"missing kind (one of: {', '.join(AUTH_KINDS)})")
    if kind not in AUTH_KINDS:
        import difflib  # on first use: only a bad file needs suggestions

        match = difflib.get_close_matches(str(kind), list(AUTH_KINDS), n=1)
        hint = f"did you mean {match[0]!r}?" if match else f"expected one of: {', '.join(AUTH_KINDS)}"
        raise builder.fail([*path, "kind"], f"unknown auth type kind {kind!r}; {hint}")
    raw_fields = table.pop("fields", {})
    auth = builder.build(AUTH_KINDS[kind], table, path, key=key)
    fields = [
        builder.build("CredentialField", item, [*path, "fields", name], key=name, auth_type=key)
        for name, item in builder.table(raw_fields, [*path, "fields"]).items()
    ]
    return auth, fields


def _declaration_path(field: str, fields: Sequence[Any]) -> list[str | int]:
    """A ProviderDeclaration error's field as the path in the file."""
    head, _, rest = field.partition(".")
    if head == "ScopeCatalogue":
        return ["scope_catalogue", *_split_key(rest)]
    if head == "ProviderDeclaration":
        return [rest]
    if head == "credential_fields":
        owner = next((f.auth_type for f in fields if f.name == rest), None)
        return ["auth_types", owner, "fields", rest] if owner else ["auth_types"]
    # ``connect_checklist[0].auth_types``, ``reconnect_policy.procedures[1].environments``
    return [int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field)]


def emulator_spec(source: Source, table: Mapping[str, Any]) -> Any:
    """The ``[emulator]`` table as an :class:`~connector_core.emulator.EmulatorSpec`."""
    return Builder(source).build("EmulatorSpec", table, ("emulator",))


def static_handler(status: int, body: Any, headers: Mapping[str, str]) -> Callable[[Any], Any]:
    """A resource handler answering the same JSON every time."""
    # on first use: only a running emulator calls handlers
    from ..emulator.spec import ResourceResponse

    def handle(request: Any) -> Any:
        return ResourceResponse(status=status, json=body, headers=dict(headers))

    return handle
