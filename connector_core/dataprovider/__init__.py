"""Providers as data: one TOML file declaring everything the hooks declare.

Each file becomes one plugin, a :class:`DataProvider`, registered like any other and answering
the provider hooks for its own key with ``trylast=True``, so a Python plugin's implementation
of any hook is asked first and overrides that one declaration. Files are found in
``$CONNECTOR_HOME/providers/*.toml``, in the folders and files of ``CONNECTOR_PROVIDERS_PATH``
and in what plugins return from ``connector_core_provider_files`` (see :func:`provider_files`).

Listing providers reads only a file's ``[provider]`` table; the rest is parsed and built into
the declaration records when a declaration is first asked for, through the same attrs records
a Python plugin builds, so every rule applies once. Every problem is a one-line
:class:`~connector_core.DataFileError` naming the file, the line where it can be found, and the
field; the file's plugin reports it and every other provider keeps working.

The format is described by a JSON Schema, :data:`SCHEMA_FILE` (``connector docs --data-schema``),
and by example in ``docs/writing-a-provider-as-data.md``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._markers import hookimpl
from ..errors import DataFileError
from ._format import Records, Source, build_records, emulator_spec, provider_table

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from ..emulator.spec import EmulatorSpec
    from ..models import (
        Action,
        AuthType,
        Callback,
        ConnectionTest,
        CredentialField,
        Environment,
        Procedure,
        Provider,
        ReconnectPolicy,
        ScopeCatalogue,
        SetupGuide,
    )
    from ..registries import ProviderRegistry

__all__ = [
    "ENV_PROVIDERS_PATH",
    "GENERIC_OAUTH2_FILE",
    "SCHEMA_FILE",
    "DataProvider",
    "provider_files",
]

#: Folders (every ``*.toml`` in them) and files of providers as data, separated by ``os.pathsep``.
ENV_PROVIDERS_PATH = "CONNECTOR_PROVIDERS_PATH"
#: The format's JSON Schema, shipped with the package.
SCHEMA_FILE = Path(__file__).with_name("provider.schema.json")
#: The generic OAuth 2.0 provider (``oauth2-generic``), a provider as data the core ships.
GENERIC_OAUTH2_FILE = Path(__file__).with_name("oauth2-generic.toml")
#: Where a data plugin's name starts: ``data:PATH``.
PREFIX = "data:"


class DataProvider:
    """The plugin of one provider file. Its hook implementations answer for its own key only,
    and last (``trylast=True``): a Python plugin's implementation of a hook overrides it."""

    def __init__(self, file: str | os.PathLike[str] | Traversable, *, origin: str | None = None) -> None:
        self.file = file
        #: Who supplied the file: the plugin whose ``connector_core_provider_files`` named it, or ``None``.
        self.origin = origin
        self.__name__ = PREFIX + str(file)
        self._source: Source | None = None
        self._key: str | None = None
        self._records: Records | None = None
        self._failure: DataFileError | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<DataProvider {self.file}>"

    @property
    def path(self) -> str:
        return str(self.file)

    @property
    def stem(self) -> str:
        """The file's name without ``.toml``: how the allow-list and block-list name it."""
        name = getattr(self.file, "name", None) or os.path.basename(str(self.file))
        return str(name).removesuffix(".toml")

    def source(self) -> Source:
        if self._source is None:
            file = Path(self.file) if isinstance(self.file, (str, os.PathLike)) else self.file
            try:
                text = file.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise DataFileError(self.path, None, "", "no such file") from None
            except UnicodeDecodeError:
                raise DataFileError(self.path, None, "", "is not UTF-8 text") from None
            except OSError as exc:
                raise DataFileError(self.path, None, "", f"cannot be read ({exc.strerror or exc})") from None
            self._source = Source(self.path, text)
        return self._source

    def provider(self) -> Provider:
        """The ``[provider]`` record, from that table alone."""
        source = self.source()
        table = provider_table(source)
        # on first use: Provider is cheap but the builder is not needed to list providers
        from ._format import Builder

        provider: Provider = Builder(source).build("Provider", table, ("provider",))
        self._key = provider.key
        return provider

    def records(self) -> Records:
        """Every record of the file (parsed and built once; a failure is kept and raised again)."""
        with self._lock:
            if self._records is None and self._failure is None:
                try:
                    self._records = build_records(self.source(), self.__name__)
                except DataFileError as exc:
                    self._failure = exc
            if self._failure is not None:
                raise self._failure
            assert self._records is not None
            return self._records

    def check(self) -> None:
        """Build everything; raise the file's first problem as a :class:`DataFileError`."""
        self.records()

    def _mine(self, provider_key: str) -> bool:
        return self._key is not None and provider_key == self._key

    # -------------------------------------------------------------- the hooks

    @hookimpl(trylast=True)
    def connector_core_register_providers(self, register: ProviderRegistry) -> None:
        register.add(self.provider())

    @hookimpl(trylast=True)
    def connector_core_auth_types(self, provider_key: str) -> Sequence[AuthType] | None:
        return self.records().declaration.auth_types if self._mine(provider_key) else None

    @hookimpl(trylast=True)
    def connector_core_credential_fields(self, provider_key: str) -> Sequence[CredentialField] | None:
        return self.records().declaration.credential_fields if self._mine(provider_key) else None

    @hookimpl(trylast=True)
    def connector_core_scope_catalogue(self, provider_key: str) -> ScopeCatalogue | None:
        return self.records().declaration.scope_catalogue if self._mine(provider_key) else None

    @hookimpl(trylast=True)
    def connector_core_environments(self, provider_key: str) -> Sequence[Environment] | None:
        return self.records().declaration.environments if self._mine(provider_key) else None

    @hookimpl(trylast=True)
    def connector_core_callback(self, provider_key: str) -> Callback | None:
        return self.records().declaration.callback if self._mine(provider_key) else None

    @hookimpl(trylast=True)
    def connector_core_reconnect_policy(self, provider_key: str) -> ReconnectPolicy | None:
        return self.records().declaration.reconnect_policy if self._mine(provider_key) else None

    @hookimpl(trylast=True)
    def connector_core_connection_test(self, provider_key: str) -> ConnectionTest | None:
        return self.records().declaration.connection_test if self._mine(provider_key) else None

    @hookimpl(trylast=True)
    def connector_core_actions(self, provider_key: str) -> Sequence[Action] | None:
        return self.records().declaration.actions if self._mine(provider_key) else None

    @hookimpl(trylast=True)
    def connector_core_setup_guide(self, provider_key: str) -> SetupGuide | None:
        return self.records().declaration.setup_guide if self._mine(provider_key) else None

    @hookimpl(trylast=True)
    def connector_core_connect_checklist(self, provider_key: str) -> Sequence[Procedure] | None:
        return self.records().declaration.connect_checklist if self._mine(provider_key) else None

    @hookimpl(trylast=True)
    def connector_core_identity(self, provider_key: str, token_response: Mapping[str, Any]) -> Mapping[str, str] | None:
        if not self._mine(provider_key):
            return None
        identity = self.records().identity
        if identity is None:
            return {}
        name, fields = identity
        for field in fields:
            value = token_response.get(field)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return {name: str(value)}
        return {}

    @hookimpl(trylast=True)
    def connector_core_emulator(self, provider_key: str) -> EmulatorSpec | None:
        if not self._mine(provider_key):
            return None
        table = self.records().emulator
        if table is None:
            return None
        spec: EmulatorSpec = emulator_spec(self.source(), table)
        return spec


# ----------------------------------------------------------------- discovery


def provider_files(env: Mapping[str, str]) -> Iterator[Path]:
    """The provider files the environment names, in order: ``providers/*.toml`` in the connector
    home (``CONNECTOR_HOME``, else the user data folder, as for the store), then each entry of
    ``CONNECTOR_PROVIDERS_PATH`` (a folder: its ``*.toml`` files by name; a file: itself, whatever
    it is called, so a missing one is reported by its plugin)."""
    # on first use: only loading installed plugins looks for provider files
    from ..store.url import default_home

    folder = default_home(env) / "providers"
    if folder.is_dir():
        yield from sorted(folder.glob("*.toml"))
    for entry in (env.get(ENV_PROVIDERS_PATH) or "").split(os.pathsep):
        if not entry.strip():
            continue
        path = Path(entry).expanduser()
        if path.is_dir():
            yield from sorted(path.glob("*.toml"))
        else:
            yield path
