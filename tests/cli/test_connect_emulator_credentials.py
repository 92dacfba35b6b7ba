"""`connector connect KEY --emulator --auth-type AUTHTYPE` for auth types that send no one to
the provider: the emulator issues the credentials, the library connects with them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import hibob, multiauth_plugins
from support.multiauth import DIRECT

from connector_core import Store
from connector_core.connection import ConnectionStatus
from connector_core.testing import isolated_store, run_cli


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("CONNECTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(tmp_path / "keys.json"))
    opened = isolated_store(tmp_path)
    yield opened
    opened.close()


def test_a_hibob_service_user_from_the_emulator(store: Store) -> None:
    result = run_cli(["connect", "hibob", "--emulator", "--auth-type", "service_user"], hibob())
    assert result.code == 0, result.err
    assert result.out.startswith("Connected.\n")
    assert "test            ok: POST /people/search answered 200" in result.out
    assert "profile 'hibob-emulator-service_user' connects with Service user (HTTP Basic) SERVICE-" in result.err
    assert "disconnected, without its credentials" in result.out
    (conn,) = store.list_connections()
    assert conn.profile == "hibob-emulator-service_user" and conn.auth_type == "service_user"
    assert dict(conn.identity)["service_user_id"].startswith("SERVICE-")
    # The emulator and its port are gone: the record stays, without its credentials.
    assert conn.status is ConnectionStatus.DISCONNECTED and "emulator" in (conn.status_reason or "")
    assert store.get_credentials(conn.id)[1] == {}
    assert store.get_profile("hibob-emulator-service_user").auth_type == "service_user"


def test_the_json_result_and_a_second_run(store: Store) -> None:
    first = run_cli(["connect", "hibob", "--emulator", "--auth-type", "service_user", "--json"], hibob())
    assert first.code == 0, first.err
    data = json.loads(first.out)
    assert data["test"]["ok"] is True and data["connection"]["auth_type"] == "service_user"
    again = run_cli(["connect", "hibob", "--emulator", "--auth-type", "service_user", "--json"], hibob())
    assert again.code == 0, again.err  # the profile is updated to the new emulator's URLs
    assert len(store.list_connections()) == 2


@pytest.mark.parametrize("auth_type", DIRECT)
def test_every_direct_auth_type_of_a_provider(store: Store, auth_type: str) -> None:
    result = run_cli(["connect", "multiauth", "--emulator", "--auth-type", auth_type], multiauth_plugins())
    assert result.code == 0, result.err
    assert "test            ok: GET /me answered 200" in result.out
    (conn,) = store.list_connections()
    assert conn.profile == f"multiauth-emulator-{auth_type}" and conn.auth_type == auth_type


def test_the_oauth_path_still_takes_an_auth_type(store: Store) -> None:
    result = run_cli(["connect", "multiauth", "--emulator", "--auth-type", "oauth2"], multiauth_plugins())
    assert result.code == 0, result.err
    (conn,) = store.list_connections()
    assert conn.profile == "multiauth-emulator" and conn.auth_type == "oauth2"


def test_an_unknown_auth_type_is_a_one_line_error(store: Store) -> None:
    result = run_cli(["connect", "hibob", "--emulator", "--auth-type", "service-user"], hibob())
    assert result.code != 0
    (line,) = result.err.strip().splitlines()
    assert "unknown auth type 'service-user'" in line and "service_user" in line
    assert store.list_connections() == ()


def test_scopes_are_refused_for_a_credential(store: Store) -> None:
    argv = ["connect", "hibob", "--emulator", "--auth-type", "service_user", "--scopes", "employee_data:read"]
    result = run_cli(argv, hibob())
    assert result.code != 0 and "request no OAuth scopes" in result.err
    assert store.list_connections() == ()
