"""The kit's check of each declared auth type (``emulated_auth_types``), and the harness's
``connect_credentials``, on providers with and without an OAuth grant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
import support.keysonly as keysonly
import support.multiauth as multiauth
from support.multiauth import HEADER_KEY

from connector_core import hookimpl, load_plugins
from connector_core.connection import ConnectionStatus
from connector_core.emulator import EmulatorSpec, PermissionGroup
from connector_core.errors import HarnessError
from connector_core.testing import Harness, isolated_store
from connector_core.testing.harness import emulated_auth_types


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[Harness]:
    store = isolated_store(tmp_path)
    with Harness(load_plugins([keysonly], entry_points=False), "keysonly", store) as harness:
        yield harness
    store.close()


def test_a_provider_of_api_keys_alone_is_emulated_and_checked(keys: Harness) -> None:
    assert keys.auth is None and [a.key for a in keys.direct_auth_types] == ["api_key"]
    assert emulated_auth_types(keys) == ()
    conn = keys.connect_credentials().connection
    assert conn.status is ConnectionStatus.CONNECTED and conn.profile == "conformance-api_key"
    with pytest.raises(HarnessError, match="connect_credentials"):
        keys.connect()
    with httpx.Client(trust_env=False) as http:  # no OAuth grant: no authorization endpoint
        answer = http.get(keys.emulator.endpoints().authorize_url)
    assert answer.status_code == 404 and "no authorization endpoint" in answer.text


class _NoReaders:
    """Replaces multiauth's emulator with one whose only group cannot read what the connection test reads."""

    @hookimpl(tryfirst=True)
    def connector_core_emulator(self, provider_key: str) -> EmulatorSpec | None:
        spec = multiauth.emulator_spec()
        return attrs.evolve(spec, permission_groups=(PermissionGroup("writers", "Writers", ("things:write",)),))


def test_problems_name_the_auth_type(tmp_path: Path) -> None:
    store = isolated_store(tmp_path)
    plugins = load_plugins([multiauth, _NoReaders()], entry_points=False)
    with Harness(plugins, "multiauth", store) as harness:
        problems = emulated_auth_types(harness)
    store.close()
    failing = {p.split(":", 1)[0] for p in problems}
    assert failing == {"header_key (api_key)", "query_key (api_key)", "basic (http_basic)"}
    assert all("403" in p for p in problems if "connecting through the emulator failed" in p)


def test_connect_credentials_keeps_what_was_issued(tmp_path: Path) -> None:
    store = isolated_store(tmp_path)
    with Harness(load_plugins([multiauth], entry_points=False), "multiauth", store) as harness:
        conn = harness.connect_credentials(HEADER_KEY, groups=["readers"]).connection
        issued = harness.issued[conn.id]
        assert issued.groups == ("readers",) and issued.auth_type == HEADER_KEY
        assert harness.store.get_credentials(conn.id)[1]["header_api_key"].reveal() == issued["header_api_key"]
        with pytest.raises(HarnessError, match="sends a person"):
            harness.connect_credentials("oauth2")
    store.close()
