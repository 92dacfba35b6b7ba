"""Connections belong to the platform's end users: through an authorization, a credential
connection and an install begun at the provider, and attached afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import World

from connector_core import EndUser, Owner, ValidationError

SERVICE_USER = "service_user"
ADA = Owner(EndUser("user-ada", "ada@example.com", "Ada"), "org-1", ("tier-1",))
BOB = Owner(EndUser("user-bob"), "org-2")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, "acme-sandbox") as w:
        yield w


def _authorize(world: World, owner: Owner | None, *, company: str | None = None) -> str:
    start = world.connector.begin(world.profile, owner=owner)
    return world.connector.complete(world.consent(start.url, company=company)).connection.id


def test_an_authorization_makes_the_end_users_connection(world: World) -> None:
    cid = _authorize(world, ADA)
    conn = world.store.get_connection(cid)
    assert conn.owner == ADA and conn.owner.claimed
    assert [c.id for c in world.store.list_connections(end_user="user-ada")] == [cid]
    assert world.store.list_connections(unclaimed=True) == ()
    # The same company again for the same end user updates that connection, history kept.
    world.emu.uninstall()
    again = world.connector.complete(world.consent(world.connector.begin(world.profile, owner=ADA).url))
    assert again.connection.id == cid and "already connected" in again.warnings[0]


def test_another_end_users_connection_is_never_handed_over(world: World) -> None:
    ada = _authorize(world, ADA)
    world.emu.uninstall()  # HiBob installs once per company: Bob's admin reinstalls for the second
    bob = _authorize(world, BOB)
    assert bob != ada
    assert world.store.get_connection(ada).owner == ADA and world.store.get_connection(bob).owner == BOB


def test_a_connection_without_an_owner_is_unclaimed_until_attached(world: World) -> None:
    cid = _authorize(world, None)
    assert not world.store.get_connection(cid).owner.claimed
    assert [c.id for c in world.store.list_connections(unclaimed=True)] == [cid]
    attached = world.connector.attach(cid, ADA)
    assert attached.owner == ADA and world.store.list_connections(unclaimed=True) == ()
    # Its tags change for the same end user; another end user takes it only on purpose.
    retagged = world.connector.attach(cid, Owner(ADA.end_user, "org-1", ("tier-2",)))
    assert retagged.owner.tags == ("tier-2",)
    handed = "belongs to end user 'user-ada'; hand it over only on purpose"
    with pytest.raises(ValidationError, match=handed) as refused:
        world.connector.attach(cid, BOB)
    assert refused.value.code == "owned_by_another_end_user"  # what front ends key their advice on
    assert world.connector.attach(cid, BOB, replace=True).owner == BOB


def test_a_service_user_connection_belongs_to_its_end_user(world: World) -> None:
    issued = world.emu.issue_credentials(SERVICE_USER)
    profile = world.credential_profile(SERVICE_USER)
    result = world.connector.connect(profile, dict(issued), owner=ADA)
    assert result.connection.owner == ADA
    assert [c.id for c in world.store.list_connections(end_user="user-ada", tag="tier-1")] == [result.connection.id]


def test_a_reconnect_keeps_the_connections_owner(world: World) -> None:
    cid = _authorize(world, ADA)
    world.emu.uninstall()
    start = world.connector.begin_reconnect(cid, confirmed=True)
    done = world.connector.complete(world.consent(start.url))
    assert done.connection.id == cid and done.connection.owner == ADA


def test_a_separate_authorization_makes_a_new_connection_beside_the_end_users_own(world: World) -> None:
    cid = _authorize(world, ADA)
    world.emu.uninstall()
    start = world.connector.begin(world.profile, owner=ADA)
    apart = world.connector.complete(world.consent(start.url), separate=True)
    assert apart.connection.id != cid and apart.connection.owner == ADA
    assert not any("already connected" in w for w in apart.warnings)
    assert dict(apart.connection.identity) == dict(world.store.get_connection(cid).identity)  # the same account
    world.emu.uninstall()
    start = world.connector.begin(world.profile, owner=ADA)
    third = asyncio.run(world.connector.acomplete(world.consent(start.url), profile=world.profile, separate=True))
    assert third.connection.id not in (cid, apart.connection.id)
    assert len(world.store.list_connections(end_user="user-ada")) == 3
    # Without it, the same account again updates the end user's latest connection of it, as before.
    world.emu.uninstall()
    again = world.connector.complete(world.consent(world.connector.begin(world.profile, owner=ADA).url))
    assert again.connection.id == third.connection.id and "already connected" in again.warnings[0]
    assert len(world.store.list_connections(end_user="user-ada")) == 3


def test_a_separate_credential_connection_is_a_new_one(world: World) -> None:
    issued = world.emu.issue_credentials(SERVICE_USER)
    profile = world.credential_profile(SERVICE_USER)
    first = world.connector.connect(profile, dict(issued), owner=ADA).connection
    apart = world.connector.connect(profile, dict(issued), owner=ADA, separate=True)
    assert apart.connection.id != first.id and not apart.warnings
    third = asyncio.run(world.connector.aconnect(profile, dict(issued), owner=ADA, separate=True)).connection
    assert third.id not in (first.id, apart.connection.id)
    assert len(world.store.list_connections(end_user="user-ada")) == 3
    again = world.connector.connect(profile, dict(issued), owner=ADA)  # the default: update the latest
    assert again.connection.id == third.id and "already connected" in again.warnings[0]
    # Replacing a connection's credentials makes no new one: the two are refused together.
    with pytest.raises(ValidationError) as caught:
        world.connector.connect(profile, dict(issued), owner=ADA, connection_id=first.id, separate=True)
    assert caught.value.field == "separate" and "connection_id" in str(caught.value) and "\n" not in str(caught.value)
    assert len(world.store.list_connections(end_user="user-ada")) == 3


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: EndUser("has space"), "end_user.id: expected 1-200 printable characters"),
        (lambda: EndUser("u", email="not-an-email"), "end_user.email: expected an email address"),
        (lambda: EndUser("u", display_name="a\x00b"), "end_user.display_name: expected printable characters"),
        (lambda: Owner(tags=("Upper",)), "tags: expected lower-case letters"),
        (lambda: Owner(tags=tuple(f"t{n}" for n in range(51))), "tags: expected at most 50 tags"),
        (lambda: Owner(organisation=""), "organisation: expected 1-200 printable characters"),
    ],
)
def test_bad_owners_are_one_line_errors_naming_the_field(build: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        build()  # type: ignore[operator]
    assert "\n" not in str(caught.value)
