"""connector-core's pytest plugin, registered through the ``pytest11`` entry point.

It is inert unless used: importing it loads no provider plugin, opens no store
and starts nothing, and it implements no pytest hook. Its fixtures act only
when a test asks for them:

* ``connector_provider``: the provider key under test, from the test class's
  ``provider`` attribute (override the fixture in a ``conftest.py`` to set it
  for plain test functions);
* ``connector_plugin``: the plugin object, from the class's ``plugin``
  attribute or the installed entry point named after the key;
* ``connector_plugins``: a fresh :class:`~connector_core.Plugins` holding only
  that plugin;
* ``connector_declaration``: the provider's declaration;
* ``connector_store``: a store in the test's temporary folder, key file included;
* ``connector_harness``: the provider's emulator, a connector and a profile of
  the emulator's test app (a skip when the provider configures no emulator);
* ``connector_emulator``: that harness's running emulator.

:class:`~connector_core.testing.ProviderConformance` carries the same fixtures
itself, so the conformance suite also runs with this plugin disabled
(``-p no:connector_core``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..emulator import RunningEmulator
    from ..models import ProviderDeclaration
    from ..plugins import Plugins
    from ..store import Store
    from .harness import Harness


@pytest.fixture
def connector_provider(request: pytest.FixtureRequest) -> str:
    """The provider key under test (the test class's ``provider`` attribute)."""
    # on first use: pytest loads this plugin in every run of every project
    from .conformance import provider_for_class

    return provider_for_class(request.cls)


@pytest.fixture
def connector_plugin(request: pytest.FixtureRequest, connector_provider: str) -> object:
    """The plugin under test: the class's ``plugin``, else the entry point named after the key."""
    # on first use: pytest loads this plugin in every run of every project
    from .conformance import plugin_for_class

    return plugin_for_class(request.cls, connector_provider)


@pytest.fixture
def connector_plugins(connector_plugin: object) -> Plugins:
    """A fresh plugin manager holding only the plugin under test (and the built-in one)."""
    # on first use: pytest loads this plugin in every run of every project
    from .harness import isolated_plugins

    return isolated_plugins(connector_plugin)


@pytest.fixture
def connector_declaration(connector_plugins: Plugins, connector_provider: str) -> ProviderDeclaration:
    """Everything the provider under test declares."""
    # on first use: pytest loads this plugin in every run of every project
    from .conformance import declaration_or_fail

    return declaration_or_fail(connector_plugins, connector_provider)


@pytest.fixture
def connector_store(tmp_path: Path) -> Iterator[Store]:
    """A store in the test's temporary folder, with its key file there too."""
    # on first use: pytest loads this plugin in every run of every project
    from .harness import isolated_store

    store = isolated_store(tmp_path)
    yield store
    store.close()


@pytest.fixture
def connector_harness(
    request: pytest.FixtureRequest, connector_plugins: Plugins, connector_provider: str, connector_store: Store
) -> Iterator[Harness]:
    """The provider's emulator with a store, a connector and a profile of its test app."""
    # on first use: pytest loads this plugin in every run of every project
    from .conformance import start_harness
    from .harness import default_profile_values

    values = getattr(request.instance, "emulator_profile_values", None) or default_profile_values
    environment = getattr(request.cls, "emulator_environment", None)
    with start_harness(connector_plugins, connector_provider, connector_store, environment, values) as harness:
        yield harness


@pytest.fixture
def connector_emulator(connector_harness: Harness) -> RunningEmulator:
    """The running emulator of the provider under test."""
    return connector_harness.emulator
