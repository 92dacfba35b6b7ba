"""``RunningEmulator.install_url``: the link an install begun at the provider starts from (no
state, no PKCE), which the connector completes as a provider-initiated install."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import support.keysonly as keysonly
from support import PLATFORM_REDIRECT, World

from connector_core import EmulatorError, ValidationError, load_plugins
from connector_core.emulator import start_emulator


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, "acme-sandbox") as w:
        yield w


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_the_install_url_holds_the_client_the_redirect_and_the_apps_scopes_and_no_state(world: World) -> None:
    url = world.emu.install_url(PLATFORM_REDIRECT)
    endpoints = world.emu.endpoints()  # the provider's default environment
    assert url.startswith(endpoints.authorize_url + "?")
    query = _query(url)
    assert query == {
        "response_type": ["code"],
        "client_id": [world.emu.app.credentials[endpoints.credential_set].client_id],
        "redirect_uri": [PLATFORM_REDIRECT],
        "scope": [" ".join(world.emu.app.scopes)],
    }


def test_an_install_from_the_url_completes_as_provider_initiated(world: World) -> None:
    location = world.consent(world.emu.install_url(PLATFORM_REDIRECT, scopes=["employee_data:read"]))
    assert location.startswith(PLATFORM_REDIRECT + "?") and "state" not in _query(location)
    result = world.connector.complete_provider_initiated("acme-sandbox", location)
    assert result.connection.provider_initiated
    assert result.connection.granted_scopes == ("employee_data:read",)
    assert world.connector.test(result.connection.id).ok


def test_another_environment_uses_its_own_client_and_endpoint(world: World) -> None:
    url = world.emu.install_url(PLATFORM_REDIRECT, environment="production")
    production = world.emu.endpoints("production")
    assert url.startswith(production.authorize_url + "?")
    client_id = world.emu.app.credentials[production.credential_set].client_id
    assert _query(url)["client_id"] == [client_id] != _query(world.emu.install_url(PLATFORM_REDIRECT))["client_id"]


def test_a_bad_redirect_uri_or_scopes_as_one_string_are_refused(world: World) -> None:
    with pytest.raises(ValidationError, match="redirect URI"):
        world.emu.install_url("not a url")
    with pytest.raises(ValidationError, match="scopes"):
        world.emu.install_url(PLATFORM_REDIRECT, scopes="employee_data:read")


def test_a_provider_without_an_authorization_code_grant_has_no_install_url() -> None:
    plugins = load_plugins([keysonly], entry_points=False)
    with start_emulator(keysonly.KEY, plugins=plugins) as emu, pytest.raises(EmulatorError, match="declares no OAuth"):
        emu.install_url("http://127.0.0.1:9/callback")
