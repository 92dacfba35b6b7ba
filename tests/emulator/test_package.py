"""What a provider plugin imports to declare its emulator does not start to build one."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_MODULES = (
    "connector_core.emulator.running",
    "connector_core.emulator.http",
    "connector_core.emulator.authorization",
    "connector_core.emulator.oauth_server",
    "connector_core.emulator.state",
    "http.server",
    "oauthlib",
)


def _imported_after(statement: str) -> set[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(done.stdout))


def test_the_spec_records_come_without_the_server() -> None:
    modules = _imported_after(
        "from connector_core.emulator import EmulatorSpec, AppRegistration, ResourceEndpoint, ResourceError"
    )
    assert "connector_core.emulator.spec" in modules
    assert not modules & set(SERVER_MODULES), sorted(modules & set(SERVER_MODULES))


def test_the_server_comes_on_first_use() -> None:
    modules = _imported_after("from connector_core.emulator import start_emulator")
    assert {"connector_core.emulator.running", "connector_core.emulator.http"} <= modules


def test_a_key_without_plugins_is_one_clear_error() -> None:
    import pytest

    from connector_core.emulator import start_emulator
    from connector_core.errors import ValidationError

    with pytest.raises(ValidationError, match=r"plugins: the emulator of 'hibob' needs the plugins that declare it"):
        start_emulator("hibob")
