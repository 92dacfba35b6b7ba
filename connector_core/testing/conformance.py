"""The conformance suite a provider plugin's tests subclass in one line.

.. code-block:: python

    from connector_core.testing import ProviderConformance


    class TestAcme(ProviderConformance):
        provider = "acme"

The class finds the plugin through the installed ``connector_core`` entry point
named after the provider key (set ``plugin = your_module`` to name it instead),
registers it alone in a fresh plugin manager, and runs one test per check. The
emulator tests run when the provider configures an emulator and are skipped,
with the reason, when it does not.

The class carries its own fixtures, so it works whether or not the
``connector_core`` pytest plugin is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import pytest

from ..errors import ConnectorError
from . import checks
from . import harness as h

if TYPE_CHECKING:
    from ..emulator import RunningEmulator
    from ..models import ProviderDeclaration
    from ..plugins import Plugins
    from ..secret import Secret
    from ..store import Store

__all__ = ["ProviderConformance", "plugin_for_class", "provider_for_class"]


def _fail(problems: tuple[str, ...]) -> None:
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _oauth_only(harness: h.Harness) -> None:
    """Skip a check of the OAuth flow for a provider without an authorization code grant."""
    if harness.auth is None:
        pytest.skip(
            "the provider declares no OAuth 2.0 authorization code grant "
            "(test_emulator_each_auth_type checks its auth types)"
        )


def _usage(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def provider_for_class(cls: type | None) -> str:
    """The provider key a test class names in its ``provider`` attribute."""
    key = getattr(cls, "provider", None)
    if not isinstance(key, str) or not key:
        where = f"test class {cls.__name__}" if cls is not None else "this test"
        _usage(
            f"{where} names no provider: set provider = 'KEY' on the class (or override the connector_provider fixture)"
        )
    return key


def plugin_for_class(cls: type | None, key: str) -> object:
    """The class's ``plugin`` attribute, else the installed entry point named ``key``."""
    plugin = getattr(cls, "plugin", None)
    if plugin is not None:
        return plugin
    try:
        return h.find_plugin(key)
    except ConnectorError as exc:
        message = exc.message
    _usage(message)


def declaration_or_fail(plugins: Plugins, key: str) -> ProviderDeclaration:
    """The provider's declaration; a test fails with the reason when it cannot be gathered."""
    try:
        return plugins.declaration(key)
    except ConnectorError as exc:
        message = exc.message
    _usage(f"the declaration cannot be gathered: {message}")


def start_harness(
    plugins: Plugins,
    key: str,
    store: Store,
    environment: str | None,
    values: h.ProfileValues,
    profile_options: Mapping[str, Any] | None = None,
) -> h.Harness:
    """A :class:`~connector_core.testing.harness.Harness`, or a skip when the provider has no emulator."""
    declaration_or_fail(plugins, key)
    try:
        return h.Harness(
            plugins, key, store, environment=environment, profile_values=values, profile_options=profile_options
        )
    except h.NoEmulator as exc:
        skipped, message = True, exc.message
    except ConnectorError as exc:
        skipped, message = False, exc.message
    if skipped:
        pytest.skip(message)
    _usage(f"the emulator cannot start: {message}")


class ProviderConformance:
    """Subclass with ``provider = "KEY"`` to run every conformance check on a provider plugin.

    Optional class attributes:

    * ``plugin``: the plugin object (usually its module) instead of the entry point named ``KEY``;
    * ``not_secret_fields``: credential fields whose names only look secret;
    * ``emulator_environment``: the environment to connect to (default: the provider's default);
    * ``emulator_profile_options``: more for the test app's profile, as
      :func:`~connector_core.validate_profile` takes it (``scopes``, ``endpoints`` with the
      settings a generic provider's profile chooses...).

    Override :meth:`emulator_profile_values` when the emulator's test app needs profile
    values beyond ``client_id``, ``client_secret`` and ``app_id``.
    """

    provider: ClassVar[str]
    plugin: ClassVar[object | None] = None
    not_secret_fields: ClassVar[tuple[str, ...]] = ()
    emulator_environment: ClassVar[str | None] = None
    emulator_profile_options: ClassVar[Mapping[str, Any]] = {}

    def emulator_profile_values(
        self, emulator: RunningEmulator, declaration: ProviderDeclaration, environment: str
    ) -> Mapping[str, str | Secret]:
        """The profile values for the emulator's test app (by default
        :func:`~connector_core.testing.harness.default_profile_values`)."""
        return h.default_profile_values(emulator, declaration, environment)

    # ---------------------------------------------------------------- fixtures

    @pytest.fixture
    def connector_provider(self) -> str:
        """The provider key under test."""
        return provider_for_class(type(self))

    @pytest.fixture
    def connector_plugin(self, connector_provider: str) -> object:
        """The plugin under test."""
        return plugin_for_class(type(self), connector_provider)

    @pytest.fixture
    def connector_plugins(self, connector_plugin: object) -> Plugins:
        """A fresh plugin manager holding only the plugin under test (and the built-in one)."""
        return h.isolated_plugins(connector_plugin)

    @pytest.fixture
    def connector_store(self, tmp_path: Path) -> Iterator[Store]:
        """A store in the test's temporary folder, with its key file there too."""
        store = h.isolated_store(tmp_path)
        yield store
        store.close()

    @pytest.fixture
    def connector_harness(
        self, connector_plugins: Plugins, connector_provider: str, connector_store: Store
    ) -> Iterator[h.Harness]:
        """The provider's emulator with a profile of its test app (skipped without an emulator)."""
        harness = start_harness(
            connector_plugins,
            connector_provider,
            connector_store,
            self.emulator_environment,
            self.emulator_profile_values,
            self.emulator_profile_options,
        )
        with harness:
            yield harness

    # ----------------------------------------------------------- declarations

    def test_models_validate(self, connector_plugins: Plugins, connector_provider: str) -> None:
        """The plugin loads alone, registers the provider, and every record validates and agrees."""
        _fail(checks.check_models(connector_plugins, connector_provider))

    def test_scope_defaults_and_minimum(self, connector_plugins: Plugins, connector_provider: str) -> None:
        """Defaults and minimum exist in the catalogue; the minimum lies within the defaults."""
        _fail(checks.check_scope_catalogue(declaration_or_fail(connector_plugins, connector_provider)))

    def test_action_scopes_exist(self, connector_plugins: Plugins, connector_provider: str) -> None:
        """Every action's scopes are in the catalogue."""
        _fail(checks.check_action_scopes(declaration_or_fail(connector_plugins, connector_provider)))

    def test_credential_fields_have_label_and_help(self, connector_plugins: Plugins, connector_provider: str) -> None:
        """Every credential field has a label and a help text."""
        _fail(checks.check_credential_fields(declaration_or_fail(connector_plugins, connector_provider)))

    def test_secret_fields_are_marked(self, connector_plugins: Plugins, connector_provider: str) -> None:
        """Fields named like secrets (secret, token, password, key) are of kind secret."""
        declaration = declaration_or_fail(connector_plugins, connector_provider)
        _fail(checks.check_secret_fields(declaration, not_secret=self.not_secret_fields))

    def test_callback_path_is_well_formed(self, connector_plugins: Plugins, connector_provider: str) -> None:
        """The OAuth callback path is absolute, clean and names the provider."""
        _fail(checks.check_callback(declaration_or_fail(connector_plugins, connector_provider)))

    def test_environments_are_complete(self, connector_plugins: Plugins, connector_provider: str) -> None:
        """Each environment names its credential set and its hosts."""
        _fail(checks.check_environments(declaration_or_fail(connector_plugins, connector_provider)))

    def test_reconnect_steps(self, connector_plugins: Plugins, connector_provider: str) -> None:
        """Where reconnecting needs a person, every environment has steps."""
        _fail(checks.check_reconnect_policy(declaration_or_fail(connector_plugins, connector_provider)))

    def test_connection_test_scope_in_minimum(self, connector_plugins: Plugins, connector_provider: str) -> None:
        """The connection test needs only a minimum scope."""
        _fail(checks.check_connection_test(declaration_or_fail(connector_plugins, connector_provider)))

    def test_docs_page_renders(self, connector_plugins: Plugins, connector_provider: str) -> None:
        """The provider's documentation page renders and has something in every section."""
        _fail(checks.check_docs_page(declaration_or_fail(connector_plugins, connector_provider)))

    # --------------------------------------------------------------- emulator

    def test_emulator_connect(self, connector_harness: h.Harness) -> None:
        """Connect through the real OAuth flow against the emulator."""
        _oauth_only(connector_harness)
        _fail(h.emulated_connect(connector_harness))

    def test_emulator_connection_test(self, connector_harness: h.Harness) -> None:
        """A fresh connection passes the connection test."""
        _oauth_only(connector_harness)
        _fail(h.emulated_connection_test(connector_harness))

    def test_emulator_refresh(self, connector_harness: h.Harness) -> None:
        """Expired access tokens are refreshed; forced refreshes store working tokens."""
        _oauth_only(connector_harness)
        _fail(h.emulated_refresh(connector_harness))

    def test_emulator_revoke(self, connector_harness: h.Harness) -> None:
        """Revoking ends the grant (or says it could not), and connecting again works."""
        _oauth_only(connector_harness)
        _fail(h.emulated_revoke(connector_harness))

    def test_emulator_wrong_credentials_fail(self, connector_harness: h.Harness) -> None:
        """A wrong client secret fails with InvalidClient."""
        _oauth_only(connector_harness)
        _fail(h.emulated_wrong_credentials(connector_harness))

    def test_emulator_each_auth_type(self, connector_harness: h.Harness) -> None:
        """Each declared auth type connects, passes the connection test, makes a request, is
        listed, and fails cleanly with wrong credentials (storing nothing)."""
        _fail(h.emulated_auth_types(connector_harness))
