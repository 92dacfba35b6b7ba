"""The platform API over a store holding a few connections made against HiBob's emulator:
Ada's (authorized), an unclaimed one (another company's install) and a service user's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support import World

from connector_core import EndUser, Owner
from connector_core.serve import create_app

KEY = "test-api-key-0123456789abcdef"
OLD_KEY = "old-api-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
ADA = Owner(EndUser("user-ada", "ada@example.com", "Ada"), "org-1", ("tier-1",))
BOB = Owner(EndUser("user-bob"), "org-2")


class Api:
    """The world, its app's client (authenticated by default) and the connections' ids."""

    def __init__(self, world: World, client: TestClient, ada: str, unclaimed: str, service: str) -> None:
        self.world = world
        self.client = client
        self.ada = ada
        self.unclaimed = unclaimed
        self.service = service


def make_connections(world: World) -> tuple[str, str, str]:
    start = world.connector.begin(world.profile, owner=ADA)
    ada = world.connector.complete(world.consent(start.url)).connection.id
    other = world.emu.add_company().id  # another company's install: HiBob installs once per company
    start = world.connector.begin(world.profile)
    unclaimed = world.connector.complete(world.consent(start.url, company=other)).connection.id
    issued = world.emu.issue_credentials("service_user")
    service = world.connector.connect(world.credential_profile("service_user"), dict(issued), owner=BOB)
    return ada, unclaimed, service.connection.id


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, "acme-sandbox") as w:
        yield w


@pytest.fixture
def api(world: World) -> Iterator[Api]:
    ada, unclaimed, service = make_connections(world)
    app = create_app(world.connector, api_keys=[KEY, OLD_KEY], public_url="https://platform.example")
    with TestClient(app, raise_server_exceptions=False, headers=AUTH) as client:
        yield Api(world, client, ada, unclaimed, service)
