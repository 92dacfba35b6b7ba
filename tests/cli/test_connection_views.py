"""What the connection commands say (issue 15): why a bulk refresh skipped what it skipped,
no expiry for a connection without tokens, a did-you-mean for an abbreviated environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import World

from connector_core import validate_profile
from connector_core.errors import UnknownNameError
from connector_core.testing import run_cli


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with World(tmp_path, "acme") as w:
        monkeypatch.setenv("CONNECTOR_HOME", str(w.home))
        monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(w.key_file))
        yield w


def test_refresh_all_says_why_it_skipped(world: World) -> None:
    world.connect()
    result = run_cli(["connections", "refresh", "--all"], world.plugins)
    assert result.code == 0, result
    assert f"skipped 1 (1 not expiring within {world.connector.leeway:g} s)" in result.out
    data = json.loads(run_cli(["connections", "refresh", "--all", "--json"], world.plugins).out)
    assert data["skipped"] == 1 and [r["count"] for r in data["skipped_why"]] == [1]


def test_a_revoked_connection_shows_no_expiry(world: World) -> None:
    conn = world.connect().connection
    world.connector.revoke(conn.id)
    text = run_cli(["connections", "show", conn.id], world.plugins).out
    assert "revoked" in text
    (line,) = [row for row in text.splitlines() if row.startswith("expires")]
    assert line.split()[-1] == "-"
    listed = run_cli(["connections", "list"], world.plugins).out
    assert "UTC" not in listed
    assert json.loads(run_cli(["connections", "show", conn.id, "--json"], world.plugins).out)["expires_at"] is None


def test_an_abbreviated_environment_gets_a_did_you_mean(world: World) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'production'"):
        validate_profile(world.plugins.declaration("hibob"), name="p", environment="prod")
