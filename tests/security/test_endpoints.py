"""Every endpoint is checked when a profile is written and again when a request is sent:
https only (http to a loopback address), no user:password@, no backslash that a browser and
httpx would read as two different hosts (issue 15)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
from support import World

from connector_core import validate_profile
from connector_core.errors import ValidationError

PROFILE = "acme-sandbox"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, PROFILE) as w:
        yield w


def _store_endpoint(world: World, key: str, url: str) -> None:
    """Store an endpoint that no validation let through, as an older version or another
    program holding the store's keys might: the row is properly sealed (a database-only
    rewrite is refused earlier, see tests/store/test_seal.py), so the send-time check is
    all that stands between the token and that URL."""
    draft = validate_profile(
        world.plugins.declaration("hibob"), name=PROFILE, previous=world.store.get_profile(PROFILE)
    )
    endpoints = {**dict(draft.endpoints), key: url}
    world.store.update_profile(PROFILE, attrs.evolve(draft, endpoints=tuple(endpoints.items())))


def _wildcard(url: str) -> str:
    """The emulator's own URL with its host replaced by 0.0.0.0, which reaches it over plain http."""
    parts = httpx.URL(url)
    return str(parts.copy_with(host="0.0.0.0"))


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.example\\@127.0.0.1/t",  # a browser opens evil.example, httpx 127.0.0.1
        "https://user:hunter2@api.example.com/v1",
        "https://user@api.example.com/v1",
    ],
)
def test_profile_refuses_ambiguous_or_credentialed_endpoint(world: World, url: str) -> None:
    for key in ("authorize_url", "token_url", "api_base_url"):
        with pytest.raises(ValidationError) as info:
            validate_profile(
                world.plugins.declaration("hibob"),
                name=PROFILE,
                previous=world.store.get_profile(PROFILE),
                endpoints={key: url},
            )
        assert info.value.field == key
        assert "hunter2" not in str(info.value)  # a password in the URL is not echoed


def test_api_base_url_from_the_store_is_checked_at_send_time(world: World) -> None:
    conn = world.connect().connection
    base = world.emu.endpoints("sandbox").api_base_url
    _store_endpoint(world, "api_base_url", _wildcard(base))
    before = len(world.lines("GET "))
    with pytest.raises(ValidationError) as info:
        world.connector.request(conn.id, "GET", "/company/named-lists")
    assert "http://0.0.0.0" in str(info.value) and "https" in str(info.value)
    assert len(world.lines("GET ")) == before  # nothing reached the server, the token stayed home


def test_token_url_with_credentials_from_the_store_is_checked_at_send_time(world: World) -> None:
    conn = world.connect().connection
    token_url = httpx.URL(world.emu.endpoints("sandbox").token_url)
    _store_endpoint(world, "token_url", str(token_url.copy_with(username="user", password="hunter2")))
    before = len(world.lines("POST "))
    with pytest.raises(ValidationError) as info:
        world.connector.refresh(conn.id, force=True)
    assert "hunter2" not in str(info.value)
    assert len(world.lines("POST ")) == before


def test_connection_auth_never_sends_a_bearer_token_in_the_clear(world: World) -> None:
    conn = world.connect().connection
    base = _wildcard(world.emu.endpoints("sandbox").api_base_url)
    before = len(world.lines("GET "))
    with httpx.Client(base_url=base, auth=world.connector.auth(conn.id)) as client, pytest.raises(ValidationError):
        client.get("/company/named-lists")
    assert len(world.lines("GET ")) == before
