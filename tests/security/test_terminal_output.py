"""A provider's text never reaches the terminal raw, and a granted scope must be RFC 6749
scope-token syntax (issue 15)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import World

from connector_core import oauth
from connector_core.connection import ConnectionStatus
from connector_core.errors import OAuthError
from connector_core.testing import run_cli

HOSTILE = "ok\x1b[2J\x1b]0;owned\x07\x00\u202etxt.exe\u2066x\u2069\x9b1m\r"
RAW = ("\x1b", "\x00", "\x07", "\u202e", "\u2066", "\u2069", "\x9b", "\r")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with World(tmp_path, "acme") as w:
        monkeypatch.setenv("CONNECTOR_HOME", str(w.home))
        monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(w.key_file))
        yield w


def _token_body(scope: object) -> bytes:
    return json.dumps({"access_token": "a", "token_type": "Bearer", "scope": scope}).encode()


@pytest.mark.parametrize(
    "scope", ["read \x1b[31mwrite", "read w\u202eetirw", ["read", "a\x00b"], 'a"b', "a\\b", "caf\u00e9"]
)
def test_a_granted_scope_outside_scope_token_syntax_is_refused(scope: object) -> None:
    with pytest.raises(OAuthError) as info:
        oauth.parse_token_response(200, {}, _token_body(scope), sent_at=0)
    assert "RFC 6749 scope token" in str(info.value)
    assert not any(ch in str(info.value) for ch in RAW)
    # What the providers do send still parses: space- or comma-separated, or a JSON list.
    ok = oauth.parse_token_response(200, {}, _token_body("a:read, b/c.write"), sent_at=0)
    assert ok.scopes == ("a:read", "b/c.write")


def test_connection_text_and_json_escape_control_characters(world: World) -> None:
    conn = world.connect().connection
    world.store.set_status(conn.id, ConnectionStatus.NEEDS_RECONNECT, HOSTILE)
    for argv in (["connections", "show", conn.id], ["connections", "list"], ["connections", "show", conn.id, "--json"]):
        result = run_cli(argv, world.plugins)
        assert result.code == 0, result
        assert not any(ch in result.out + result.err for ch in RAW), (argv, result.out)
        assert argv[1] == "list" or "\\x1b[2J" in result.out or "\\u001b[2J" in result.out  # escaped, not dropped
    shown = json.loads(run_cli(["connections", "show", conn.id, "--json"], world.plugins).out)
    assert shown["status_reason"] == HOSTILE  # the JSON still carries the exact text


def test_an_error_carrying_provider_text_is_printed_escaped(world: World) -> None:
    conn = world.connect().connection
    world.store.set_status(conn.id, ConnectionStatus.NEEDS_RECONNECT, HOSTILE)
    result = run_cli(["request", conn.id, "GET", "/company/named-lists"], world.plugins)
    assert result.code == 1 and result.err.startswith("connector: error: ")
    assert "\\x1b[2J" in result.err and not any(ch in result.err for ch in RAW), result.err
