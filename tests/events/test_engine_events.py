"""The engine's changes carry what a platform needs in their lifecycle events: a refused
credential's needs-reconnect event says what to do (the provider's guidance)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import World

from connector_core import ConnectionStatus, ReconnectRequired
from connector_core.events import EventType


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, "acme-sandbox") as w:
        yield w


def test_a_refused_service_user_event_carries_the_providers_guidance(world: World) -> None:
    issued = world.emu.issue_credentials("service_user")
    cid = world.connector.connect(world.credential_profile("service_user"), dict(issued)).connection.id
    world.emu.revoke_credentials("service_user", issued["service_user_id"])
    with pytest.raises(ReconnectRequired):
        world.connector.request(cid, "POST", "/people/search", json={"fields": ["root.id"]})
    assert world.store.get_connection(cid).status is ConnectionStatus.NEEDS_RECONNECT
    (event,) = world.store.list_events(types=[EventType.NEEDS_RECONNECT])
    assert event.connection_id == cid and "Reset the service user's token" in event.data["details"]["guidance"]
    assert issued["service_user_token"] not in str(event.payload())


def test_an_authorization_then_a_deletion_are_two_events(world: World) -> None:
    conn = world.connect().connection
    world.connector.delete(conn.id)
    kinds = [e.type for e in world.store.list_events()]
    assert kinds == [EventType.CREATED, EventType.DELETED]
