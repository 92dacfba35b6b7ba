"""The provider author's kit: conformance checks, an emulator harness and a pytest plugin.

A provider plugin's test file runs the whole suite in one line::

    from connector_core.testing import ProviderConformance


    class TestAcme(ProviderConformance):
        provider = "acme"

The pieces are usable on their own: :mod:`connector_core.testing.checks` holds
the declaration checks as plain functions, :mod:`connector_core.testing.harness`
the isolated plugin manager and store and the emulator-driven checks,
:mod:`connector_core.testing.runner` running the CLI in-process or as a subprocess,
:mod:`connector_core.testing.postgres` a throwaway PostgreSQL server (no pytest needed),
:mod:`connector_core.testing.workload` the multi-process refresh workload, and
:mod:`connector_core.testing.pytest_plugin` the fixtures (registered through the
``pytest11`` entry point ``connector_core``). This package needs pytest only for
:class:`ProviderConformance`, which is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .checks import (
    check_action_scopes,
    check_callback,
    check_connection_test,
    check_credential_fields,
    check_docs_page,
    check_environments,
    check_models,
    check_reconnect_policy,
    check_scope_catalogue,
    check_secret_fields,
)
from .harness import Harness, find_plugin, http_client, isolated_plugins, isolated_store
from .runner import CliResult, free_port, run_cli, run_connector

if TYPE_CHECKING:
    from .conformance import ProviderConformance

__all__ = [
    "CliResult",
    "Harness",
    "ProviderConformance",
    "check_action_scopes",
    "check_callback",
    "check_connection_test",
    "check_credential_fields",
    "check_docs_page",
    "check_environments",
    "check_models",
    "check_reconnect_policy",
    "check_scope_catalogue",
    "check_secret_fields",
    "find_plugin",
    "free_port",
    "http_client",
    "isolated_plugins",
    "isolated_store",
    "run_cli",
    "run_connector",
]


def __getattr__(name: str) -> Any:
    if name == "ProviderConformance":
        # on first use: it imports pytest
        from .conformance import ProviderConformance

        return ProviderConformance
    raise AttributeError(f"module 'connector_core.testing' has no attribute {name!r}")
