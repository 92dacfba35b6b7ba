"""``connector new-provider``: write a complete provider plugin distribution.

:func:`new_provider` writes, for provider key ``acme``::

    PATH/
    ├── pyproject.toml               hatchling, the connector_core entry point "acme"
    ├── README.md
    ├── connector_acme/
    │   ├── __init__.py              __version__
    │   ├── declarations.py          the provider's records (example values to replace)
    │   ├── emulator.py              how the built-in emulator imitates it
    │   ├── plugin.py                the hook implementations
    │   └── py.typed
    └── tests/
        └── test_acme_conformance.py the conformance kit, one line

The example declarations are complete and valid: the distribution installs with
``pip install -e PATH`` and its tests pass unchanged, against the emulator. A
provider author then replaces the example values with the provider's real ones,
keeping the tests green. Nothing is ever overwritten.

With ``data=True`` (``connector new-provider KEY --data``) it writes a provider as data
instead (see ``docs/writing-a-provider-as-data.md``)::

    PATH/
    ├── acme.toml                    the whole provider, with an [emulator] section
    ├── test_acme_conformance.py     the conformance kit, loading the file
    └── README.md                    where to put the file, or how to package it
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from string import Template

import attrs

from ._markers import __version__
from .errors import ConnectorError, ValidationError
from .models import PROVIDER_KEY_RE

__all__ = ["Scaffold", "new_provider", "scaffold_names"]


@attrs.frozen
class Scaffold:
    """What :func:`new_provider` wrote."""

    key: str
    distribution: str
    package: str
    path: Path
    #: Paths of the files written, relative to :attr:`path`, in order.
    files: tuple[str, ...]


@attrs.frozen
class _Names:
    key: str
    display_name: str
    distribution: str
    package: str
    test_class: str
    host: str


def scaffold_names(key: str, display_name: str | None = None) -> dict[str, str]:
    """The names a scaffold for ``key`` uses: distribution, package, test class, example host.

    Raises :class:`~connector_core.ValidationError` for a key that is not a
    valid provider key (the rule of :attr:`Provider.key <connector_core.Provider.key>`).
    """
    names = _names(key, display_name)
    return attrs.asdict(names)


def _names(key: str, display_name: str | None) -> _Names:
    if not isinstance(key, str) or not PROVIDER_KEY_RE.fullmatch(key):
        raise ValidationError(
            "KEY", f"expected a lower-case provider key such as 'acme' or 'google-drive', got {key!r}"
        )
    words = re.split(r"[-_]", key)
    if display_name is None:
        display_name = " ".join(w.capitalize() for w in words)
    elif not display_name.strip() or len(display_name) > 100 or any(ch in display_name for ch in '"\\\n\r$'):
        raise ValidationError(
            "--name", f"expected a display name of 1-100 characters without quotes or backslashes, got {display_name!r}"
        )
    package = "connector_" + "_".join(words)
    return _Names(
        key=key,
        display_name=" ".join(display_name.split()),
        distribution="connector-" + "-".join(words),
        package=package,
        test_class="Test" + "".join(w.capitalize() for w in words),
        host="-".join(words) + ".example",
    )


def new_provider(key: str, path: str | Path, *, display_name: str | None = None, data: bool = False) -> Scaffold:
    """Write a provider plugin distribution for ``key`` into ``path`` (with ``data``: a
    provider file, its conformance test and a README).

    ``path`` must not exist, or be an empty folder. The files are written to a
    temporary folder beside it first and moved into place at the end, so a
    failure leaves nothing half-written. Raises
    :class:`~connector_core.ValidationError` for a bad key or an existing
    path, and :class:`~connector_core.ConnectorError` when the files cannot be
    written.
    """
    names = _names(key, display_name)
    target = Path(path).expanduser()
    if (target.exists() or target.is_symlink()) and (
        not target.is_dir() or target.is_symlink() or any(target.iterdir())
    ):
        raise ValidationError("--dir", f"{target} already exists and is not an empty folder; refusing to overwrite")
    files = _render_data(names) if data else _render(names)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as exc:
        raise ConnectorError(f"cannot create {target}: {_reason(exc)}") from None
    try:
        for relative, text in files.items():
            file = staging / relative
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
        staging.chmod(0o755)
        if target.is_dir():
            target.rmdir()
        os.replace(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConnectorError(f"cannot write {target}: {_reason(exc)}") from None
    return Scaffold(
        key=names.key,
        distribution=names.distribution,
        package=names.package,
        path=target,
        files=tuple(files),
    )


def _reason(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _render(names: _Names) -> dict[str, str]:
    values = attrs.asdict(names)
    values["key_upper"] = names.key.upper().replace("-", "_")
    values["core_version"] = ".".join(__version__.split(".")[:2])
    pkg = names.package
    test_file = f"tests/test_{'_'.join(re.split(r'[-_]', names.key))}_conformance.py"
    templates = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"{pkg}/__init__.py": _INIT,
        f"{pkg}/declarations.py": _DECLARATIONS,
        f"{pkg}/emulator.py": _EMULATOR,
        f"{pkg}/plugin.py": _PLUGIN,
        f"{pkg}/py.typed": "",
        test_file: _TEST,
    }
    values["test_file"] = test_file
    return {path: Template(text).substitute(values) for path, text in templates.items()}


def _render_data(names: _Names) -> dict[str, str]:
    values = attrs.asdict(names)
    stem = "_".join(re.split(r"[-_]", names.key))
    values["file"] = f"{names.key}.toml"
    values["core_version"] = ".".join(__version__.split(".")[:2])
    templates = {
        f"{names.key}.toml": _DATA_TOML,
        f"test_{stem}_conformance.py": _DATA_TEST,
        "README.md": _DATA_README,
    }
    return {path: Template(text).substitute(values) for path, text in templates.items()}


_DATA_TOML = """\
# $display_name, a provider declared as data. Replace the example values with the provider's own;
# the format: docs/writing-a-provider-as-data.md, its schema: connector docs --data-schema.
"$$schema" = "https://connector-core.example/schemas/provider.schema.json"

[provider]
key = "$key"
display_name = "$display_name"
description = "Connect $display_name accounts."
categories = ["example"]
links = [{ label = "$display_name API reference", url = "https://developers.$host/api" }]

[auth_types.oauth2]
kind = "oauth2_authorization_code"
label = "OAuth 2.0"
authorize_url = "https://auth.$host/oauth2/authorize"
token_url = "https://auth.$host/oauth2/token"
revocation_url = "https://auth.$host/oauth2/revoke"

[auth_types.oauth2.fields.client_id]
label = "Client ID"
help = "$display_name developer portal → your app → Client ID."

[auth_types.oauth2.fields.client_secret]
label = "Client secret"
kind = "secret"
help = "$display_name developer portal → your app → Client secret."

[scope_catalogue]
default_scopes = ["contacts:read"]
minimum_scopes = ["contacts:read"]

[scope_catalogue.groups.contacts]
label = "Contacts"
description = "The account's contacts."

[[scope_catalogue.groups.contacts.scopes]]
name = "contacts:read"
description = "Read contacts."
access = "read"

[[scope_catalogue.groups.contacts.scopes]]
name = "contacts:write"
description = "Create and change contacts."
access = "write"

[environments.production]
label = "Production"
credential_set = "production"
credential_set_label = "Production app"
api_base_url = "https://api.$host/v1"
default = true

[callback]
path = "/connect/oauth2/$key/callback"

[reconnect_policy]
kind = "reauthorize"
summary = "Authorize again; $display_name replaces the grant."

[connection_test]
method = "GET"
path = "/me"
scope = "contacts:read"
description = "Who the connection belongs to."

[actions.list_contacts]
label = "List contacts"
scopes = ["contacts:read"]
method = "GET"
path = "/contacts"

[setup_guide]
title = "Set up $display_name"

[setup_guide.steps.register]
title = "Register an app in the $display_name developer portal"
details = ["Add the callback URL connector shows as a redirect URI."]
url = "https://developers.$host/apps"

[emulator]
access_token_lifetime = 3600
# Authorizing again while installed is allowed (set true for a provider that refuses it).
single_installation = false

[emulator.app]
app_id = "emulated-$key-app"
name = "Emulated $display_name app"

[[emulator.resources]]
method = "GET"
path = "/me"
scopes = ["contacts:read"]
json = { id = "user-1", name = "Emulated User" }

[[emulator.resources]]
method = "GET"
path = "/contacts"
scopes = ["contacts:read"]
json = { contacts = [{ id = "c-1", name = "Ada Lovelace" }] }
"""

_DATA_TEST = '''\
"""$display_name (a provider as data) against connector-core's conformance suite and its emulator."""

from pathlib import Path

from connector_core.dataprovider import DataProvider
from connector_core.testing import ProviderConformance


class $test_class(ProviderConformance):
    provider = "$key"
    plugin = DataProvider(Path(__file__).with_name("$file"))
'''

_DATA_README = """\
# $display_name: a connector provider as data

`$file` declares the whole provider (see connector-core's `docs/writing-a-provider-as-data.md`;
`connector docs --data-schema` prints the format's JSON Schema).

Test it against the emulator with the conformance kit (connector-core $core_version or later):

    pip install connector-core pytest
    pytest

Use it by putting the file where connector looks for providers:

- `$$CONNECTOR_HOME/providers/$file` (the connector home's `providers` folder), or
- any folder or file on `CONNECTOR_PROVIDERS_PATH` (separated by `:`), then
  `connector providers show $key`.

Or package it: ship `$file` as package data of a plugin distribution and return it from the
`connector_core_provider_files` hook (`return [importlib.resources.files(__package__) / "$file"]`);
implement any other hook in Python there to override one declaration of the file.
"""


# --------------------------------------------------------------------- templates

_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "$distribution"
dynamic = ["version"]
description = "The $display_name provider plugin for connector-core."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["connector-core>=$core_version"]

[project.optional-dependencies]
test = ["pytest>=8"]

# connector-core finds the plugin through this entry point; by convention its name is
# the provider key.
[project.entry-points.connector_core]
$key = "$package.plugin"

[tool.hatch.version]
path = "$package/__init__.py"

[tool.hatch.build.targets.wheel]
packages = ["$package"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_README = """\
# $distribution

The $display_name provider plugin for [connector-core](https://pypi.org/project/connector-core/).
It registers the provider `$key` through the `connector_core` entry-point group.

The declarations are a complete, working example: an OAuth 2.0 provider with two environments, a
scope catalogue, actions, a connection test and a setup guide, plus an emulator of the provider
for the tests. Replace the example values in `$package/declarations.py` (URLs under
`$host`, scopes, fields) with $display_name's real ones, and the API slice in
`$package/emulator.py` with what your connection test and actions call. Keep the tests green
while you do.

## Layout

| File | Holds |
|---|---|
| `pyproject.toml` | The distribution and its `connector_core` entry point, `$key = "$package.plugin"`. |
| `$package/declarations.py` | The provider's records, from the `Provider` to the setup guide. |
| `$package/plugin.py` | The hook implementations; each returns `None` for other providers. |
| `$package/emulator.py` | The emulator of $display_name: its test app and the API the tests call. |
| `$test_file` | The conformance suite from `connector_core.testing`, in one line. |

## Develop

```console
pip install -e . pytest
pytest                                  # the conformance suite, against the emulator
connector providers show $key           # everything the plugin declares
connector docs $key                     # the provider's documentation page (Markdown)
connector connect $key --emulator       # the whole OAuth flow, end to end
```

The conformance suite checks every declaration (scopes, fields, secrets, callback path,
environments, reconnect steps, connection test, the docs page) and runs connect, test, refresh,
revoke and a connect with wrong credentials against the emulator. A failing check names the
record and what to change.
"""

_INIT = '''\
"""$distribution: the $display_name provider plugin for connector-core."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
'''

_DECLARATIONS = '''\
"""Everything the $display_name provider declares.

The values are examples under the reserved domain $host: replace them with
$display_name's real endpoints, scopes and fields.
"""

from __future__ import annotations

from connector_core import (
    Action,
    Callback,
    ConnectionTest,
    CredentialField,
    Environment,
    Link,
    OAuth2AuthorizationCode,
    Provider,
    ReconnectPolicy,
    Scope,
    ScopeCatalogue,
    ScopeGroup,
    SetupGuide,
    SetupStep,
)

KEY = "$key"
OAUTH2 = "oauth2"

AUTH_HOST = "https://auth.$host"
DEVELOPER_PORTAL = "https://developers.$host"

PROVIDER = Provider(
    key=KEY,
    display_name="$display_name",
    description="$display_name: accounts and contacts.",
    links=(Link("API reference", f"{DEVELOPER_PORTAL}/api"), Link("Developer portal", DEVELOPER_PORTAL)),
    categories=("crm",),
)

AUTH_TYPES = (
    OAuth2AuthorizationCode(
        key=OAUTH2,
        label="OAuth 2.0",
        description="Authorization code grant with PKCE; the customer consents to the requested scopes.",
        authorize_url=f"{AUTH_HOST}/oauth2/authorize",
        token_url=f"{AUTH_HOST}/oauth2/token",
        revocation_url=f"{AUTH_HOST}/oauth2/revoke",
        client_auth_method="client_secret_basic",
    ),
)

CREDENTIAL_FIELDS = (
    CredentialField(
        name="client_id",
        label="Client ID",
        auth_type=OAUTH2,
        help="The Client ID on your app's OAuth page in the $display_name developer portal.",
    ),
    CredentialField(
        name="client_secret",
        label="Client Secret",
        auth_type=OAUTH2,
        kind="secret",
        help="The Client Secret shown beside the Client ID. Never pass it on the command line.",
    ),
    CredentialField(
        name="scopes",
        label="OAuth Scopes",
        auth_type=OAUTH2,
        kind="scope_list",
        required=False,
        help="Space-separated scopes; the default scopes are requested when empty.",
    ),
)

ENVIRONMENTS = (
    Environment(
        key="sandbox",
        label="Sandbox",
        credential_set="development",
        credential_set_label="Development credentials",
        description="A test account with sample data.",
        api_base_url="https://sandbox.api.$host/v1",
        default=True,
    ),
    Environment(
        key="production",
        label="Production",
        credential_set="production",
        credential_set_label="Production credentials",
        description="Customers' real accounts.",
        api_base_url="https://api.$host/v1",
    ),
)

CATALOGUE = ScopeCatalogue(
    groups=(
        ScopeGroup(
            key="account",
            label="Account",
            description="The connected account itself.",
            scopes=(Scope("account:read", "Read the connected account's name and id.", "read"),),
        ),
        ScopeGroup(
            key="contacts",
            label="Contacts",
            description="The account's contacts.",
            scopes=(
                Scope("contacts:read", "List and read contacts.", "read"),
                Scope("contacts:write", "Create and update contacts.", "write", sensitive=True),
            ),
        ),
    ),
    default_scopes=("account:read", "contacts:read"),
    minimum_scopes=("account:read",),
)

CALLBACK = Callback(path="/connect/oauth2/$key/callback")

RECONNECT_POLICY = ReconnectPolicy(
    kind="reauthorize",
    summary="Authorize again: $display_name replaces the previous grant.",
)

CONNECTION_TEST = ConnectionTest(
    method="GET",
    path="/me",
    scope="account:read",
    description="Reads the connected account; needs only account:read.",
)

ACTIONS = (
    Action("get_account", "Get the account", ("account:read",), method="GET", path="/me"),
    Action("list_contacts", "List contacts", ("contacts:read",), method="GET", path="/contacts"),
    Action("create_contact", "Create a contact", ("contacts:write",), method="POST", path="/contacts"),
)

SETUP_GUIDE = SetupGuide(
    title="Register a $display_name OAuth app and create a connector profile",
    steps=(
        SetupStep(
            key="create_app",
            title="Create an OAuth app in the developer portal",
            url=DEVELOPER_PORTAL,
            details=("Sign in, open Apps and create an app for your platform.",),
        ),
        SetupStep(
            key="redirect_uri",
            title="Add the redirect URI",
            details=("Add your callback URL (your platform's base URL plus the callback path) to the app.",),
        ),
        SetupStep(
            key="configure_scopes",
            title="Configure the app's scopes",
            details=("Enable every scope your connector profiles will request.",),
        ),
        SetupStep(
            key="create_profile",
            title="Create the connector profile",
            details=(
                "Copy the Client ID and Client Secret of the environment's credential set.",
                "Run: connector profile create $key --name NAME --client-id ID --client-secret-env VAR",
            ),
        ),
    ),
)
'''

_EMULATOR = '''\
"""$display_name for connector-core's built-in emulator: the test app and a slice of the API.

The endpoints here are what the connection test and the actions call. Grow them
as the plugin grows; the conformance tests connect, test, refresh and revoke
against them.
"""

from __future__ import annotations

from connector_core.emulator import (
    AppRegistration,
    EmulatorSpec,
    ResourceEndpoint,
    ResourceError,
    ResourceRequest,
    ResourceResponse,
)

APP_ID = "emulated-$key-app"


def _contacts(request: ResourceRequest) -> list[dict[str, str]]:
    company = request.company
    return [{"id": f"{company.id}-{n}", "name": f"Contact {n}"} for n in range(1, 4)]


def me(request: ResourceRequest) -> ResourceResponse:
    return ResourceResponse(json={"id": request.company.id, "name": request.company.name})


def list_contacts(request: ResourceRequest) -> ResourceResponse:
    return ResourceResponse(json={"contacts": _contacts(request)})


def create_contact(request: ResourceRequest) -> ResourceResponse:
    body = request.json_body()
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
        raise ResourceError(400, "invalid_request", "Expected a JSON object with a name.")
    return ResourceResponse(status=201, json={"id": f"{request.company.id}-new", "name": body["name"]})


def emulator_spec() -> EmulatorSpec:
    return EmulatorSpec(
        app=AppRegistration(app_id=APP_ID, name="$display_name test app"),
        resources=(
            ResourceEndpoint("GET", "/me", ("account:read",), me, description="The connected account."),
            ResourceEndpoint("GET", "/contacts", ("contacts:read",), list_contacts),
            ResourceEndpoint("POST", "/contacts", ("contacts:write",), create_contact),
        ),
        single_installation=False,
    )
'''

_PLUGIN = '''\
"""The $display_name provider's hook implementations.

Registered through the ``connector_core`` entry point in ``pyproject.toml``.
Every hook returns ``None`` for providers other than ``$key``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from connector_core import (
    Action,
    AuthType,
    Callback,
    ConnectionTest,
    CredentialField,
    Environment,
    ProviderRegistry,
    ReconnectPolicy,
    ScopeCatalogue,
    SetupGuide,
    hookimpl,
)

from . import declarations as d

if TYPE_CHECKING:
    from connector_core.emulator import EmulatorSpec


@hookimpl
def connector_core_register_providers(register: ProviderRegistry) -> None:
    register.add(d.PROVIDER)


@hookimpl
def connector_core_auth_types(provider_key: str) -> Sequence[AuthType] | None:
    return d.AUTH_TYPES if provider_key == d.KEY else None


@hookimpl
def connector_core_credential_fields(provider_key: str) -> Sequence[CredentialField] | None:
    return d.CREDENTIAL_FIELDS if provider_key == d.KEY else None


@hookimpl
def connector_core_environments(provider_key: str) -> Sequence[Environment] | None:
    return d.ENVIRONMENTS if provider_key == d.KEY else None


@hookimpl
def connector_core_scope_catalogue(provider_key: str) -> ScopeCatalogue | None:
    return d.CATALOGUE if provider_key == d.KEY else None


@hookimpl
def connector_core_callback(provider_key: str) -> Callback | None:
    return d.CALLBACK if provider_key == d.KEY else None


@hookimpl
def connector_core_reconnect_policy(provider_key: str) -> ReconnectPolicy | None:
    return d.RECONNECT_POLICY if provider_key == d.KEY else None


@hookimpl
def connector_core_connection_test(provider_key: str) -> ConnectionTest | None:
    return d.CONNECTION_TEST if provider_key == d.KEY else None


@hookimpl
def connector_core_actions(provider_key: str) -> Sequence[Action] | None:
    return d.ACTIONS if provider_key == d.KEY else None


@hookimpl
def connector_core_setup_guide(provider_key: str) -> SetupGuide | None:
    return d.SETUP_GUIDE if provider_key == d.KEY else None


@hookimpl
def connector_core_emulator(provider_key: str) -> EmulatorSpec | None:
    """The emulator of $display_name, for tests and for building without an account."""
    if provider_key != d.KEY:
        return None
    from .emulator import emulator_spec

    return emulator_spec()
'''

_TEST = '''\
"""connector-core's conformance suite, run against this plugin (and its emulator)."""

from connector_core.testing import ProviderConformance


class $test_class(ProviderConformance):
    provider = "$key"
'''
