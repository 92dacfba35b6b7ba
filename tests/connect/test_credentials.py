"""Connections made with credentials, through the library, against the emulator: HiBob's
service users (HTTP Basic), and the ``multiauth`` test provider's API keys (header and
query), HTTP Basic and OAuth 2.0 client credentials."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from support import World, multiauth_plugins
from support.multiauth import BASIC, CLIENT_CREDENTIALS, GUIDANCE, HEADER_KEY, QUERY_KEY, USER_LEVEL

from connector_core import CredentialsRejected, ReconnectRequired, Secret, ValidationError, validate_profile
from connector_core.connection import ConnectionStatus
from connector_core.connector import REJECTED_401
from connector_core.oauth import InvalidClient
from connector_core.testing import Harness, isolated_store

SERVICE_USER = "service_user"
SEARCH = {"fields": ["root.id"]}
HIBOB_GUIDANCE = "Reset the service user's token in Bob"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, "acme-sandbox") as w:
        yield w


@pytest.fixture
def multi(tmp_path: Path) -> Iterator[Harness]:
    store = isolated_store(tmp_path)
    with Harness(multiauth_plugins(), "multiauth", store, profile="multi") as harness:
        yield harness
    store.close()


def _service_profile(world: World) -> str:
    return world.credential_profile(SERVICE_USER)


def _searches(world: World) -> int:
    return world.emu.stats.resource_calls.get("POST /people/search", 0)


# ------------------------------------------------------------ HiBob service users


def test_a_service_user_connects_requests_and_is_listed(world: World) -> None:
    result = world.connect_credentials(SERVICE_USER)
    conn = result.connection
    issued = world.issued[conn.id]
    assert conn.status is ConnectionStatus.CONNECTED and conn.auth_type == SERVICE_USER and not result.warnings
    assert dict(conn.identity) == {"service_user_id": issued["service_user_id"]}
    assert _searches(world) == 1  # the connection test ran before anything was stored
    response = world.connector.request(conn.id, "POST", "/people/search", json=SEARCH)
    assert response.status == 200 and json.loads(response.body)["employees"]
    assert world.connector.test(conn.id).ok
    assert [c.id for c in world.store.list_connections(profile=_service_profile(world))] == [conn.id]
    _, stored = world.store.get_credentials(conn.id)
    assert stored["service_user_token"].reveal() == issued["service_user_token"]
    raw = b"".join(p.read_bytes() for p in world.home.glob("connector.db*"))
    assert issued["service_user_token"].encode() not in raw  # stored encrypted


def test_the_same_service_user_again_updates_its_connection(world: World) -> None:
    first = world.connect_credentials(SERVICE_USER).connection
    issued = world.issued[first.id]
    again = world.connector.connect(_service_profile(world), dict(issued))
    assert again.connection.id == first.id
    assert any("already connected" in w for w in again.warnings)
    assert len(world.store.list_connections(profile=_service_profile(world))) == 1


def test_a_reset_token_needs_reconnecting_with_hibobs_advice(world: World) -> None:
    conn = world.connect_credentials(SERVICE_USER).connection
    issued = world.issued[conn.id]
    fresh = world.emu.reset_credentials(SERVICE_USER, issued.identifier)
    with pytest.raises(ReconnectRequired) as caught:
        world.connector.request(conn.id, "POST", "/people/search", json=SEARCH)
    assert caught.value.reason == REJECTED_401
    assert caught.value.guidance is not None and HIBOB_GUIDANCE in caught.value.guidance
    assert "\n" not in str(caught.value) and issued["service_user_token"] not in str(caught.value)
    after = world.store.get_connection(conn.id)
    assert after.status is ConnectionStatus.NEEDS_RECONNECT and after.status_reason == REJECTED_401
    with pytest.raises(ReconnectRequired, match="needs reconnecting"):
        world.connector.test(conn.id)
    with pytest.raises(ValidationError, match=r"Connector\.connect"):
        world.connector.begin_reconnect(conn.id)
    # Reconnect with the new token: the same connection, usable again.
    again = world.connector.connect(_service_profile(world), dict(fresh), connection_id=conn.id)
    assert again.connection.id == conn.id and again.connection.status is ConnectionStatus.CONNECTED
    assert world.connector.request(conn.id, "POST", "/people/search", json=SEARCH).status == 200
    assert len(world.store.list_connections(profile=_service_profile(world))) == 1


def test_a_service_user_in_no_group_is_rejected_and_nothing_stored(world: World) -> None:
    profile = _service_profile(world)
    issued = world.issue(SERVICE_USER, groups=())
    with pytest.raises(CredentialsRejected) as caught:
        world.connector.connect(profile, dict(issued))
    assert caught.value.status == 403
    assert HIBOB_GUIDANCE in str(caught.value) and "\n" not in str(caught.value)
    assert world.store.list_connections() == ()


def test_a_wrong_token_is_rejected_and_nothing_stored(world: World) -> None:
    profile = _service_profile(world)
    issued = world.issue(SERVICE_USER)
    wrong = issued["service_user_token"][::-1]
    with pytest.raises(CredentialsRejected) as caught:
        world.connector.connect(profile, {**issued, "service_user_token": wrong})
    assert caught.value.status == 401
    message = str(caught.value)
    assert "\n" not in message and wrong not in message and issued["service_user_token"] not in message
    assert world.store.list_connections() == ()


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("", "is required"),
        ("   ", "is required"),
        ("abc def ghi jkl", "white space"),
        ("abcdefgh\x00ijkl", "control character"),
        ("abcdefgh\tijkl", "control character"),
    ],
)
def test_a_malformed_token_is_a_one_line_error_and_nothing_stored(world: World, token: str, problem: str) -> None:
    profile = _service_profile(world)
    issued = world.issue(SERVICE_USER)
    before = _searches(world)
    with pytest.raises(ValidationError, match=problem) as caught:
        world.connector.connect(profile, {**issued, "service_user_token": token})
    assert "\n" not in str(caught.value) and caught.value.field == "service_user_token"
    assert world.store.list_connections() == ()
    assert _searches(world) == before  # refused before anything was sent


def test_credentials_of_another_auth_type_are_refused(world: World) -> None:
    with pytest.raises(ValidationError, match="client_secret") as caught:
        world.connector.connect(_service_profile(world), {"client_secret": "s3cret-value-123"})
    assert "s3cret-value-123" not in str(caught.value)
    assert world.store.list_connections() == ()


def test_httpx_auth_signs_and_a_401_marks_needs_reconnect(world: World) -> None:
    conn = world.connect_credentials(SERVICE_USER, groups=["hr_read"]).connection
    base = world.emu.endpoints("sandbox").api_base_url
    with httpx.Client(base_url=base, auth=world.connector.auth(conn.id), trust_env=False) as client:
        assert client.get("/company/named-lists").status_code == 200
        world.emu.revoke_credentials(SERVICE_USER, world.issued[conn.id].identifier)
        assert client.get("/company/named-lists").status_code == 401
    after = world.store.get_connection(conn.id)
    assert after.status is ConnectionStatus.NEEDS_RECONNECT and after.status_reason == REJECTED_401


def test_aconnect_and_arequest(world: World) -> None:
    issued = world.issue(SERVICE_USER)
    profile = _service_profile(world)

    async def run() -> tuple[str, int]:
        result = await world.connector.aconnect(profile, dict(issued))
        response = await world.connector.arequest(result.connection.id, "POST", "/people/search", json=SEARCH)
        return result.connection.id, response.status

    cid, status = asyncio.run(run())
    assert status == 200
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED


def test_revoking_a_service_user_connection_deletes_it_here(world: World) -> None:
    conn = world.connect_credentials(SERVICE_USER).connection
    result = world.connector.revoke(conn.id)
    assert not result.revoked_at_provider and "stay valid at HiBob" in result.message
    assert result.connection.status is ConnectionStatus.DISCONNECTED
    assert world.store.get_credentials(conn.id)[1] == {}


# --------------------------------------------------- multiauth: keys and Basic


@pytest.mark.parametrize("auth_type", USER_LEVEL)
def test_each_credential_type_connects_requests_and_tests(multi: Harness, auth_type: str) -> None:
    conn = multi.connect_credentials(auth_type, groups=["writers"]).connection
    issued = multi.issued[conn.id]
    assert conn.status is ConnectionStatus.CONNECTED
    me = multi.connector.request(conn.id, "GET", "/me")
    assert me.status == 200 and json.loads(me.body)["client"] == issued.identifier
    assert multi.connector.request(conn.id, "POST", "/things", json={"n": 1}).status == 201
    assert multi.connector.test(conn.id).ok
    assert [c.id for c in multi.store.list_connections(profile=multi.credential_profile(auth_type))] == [conn.id]


@pytest.mark.parametrize("auth_type", USER_LEVEL)
def test_each_credential_type_fails_cleanly_with_a_wrong_secret(multi: Harness, auth_type: str) -> None:
    issued = multi.issue(auth_type)
    secret_name = multi.declaration.credential_names(multi.declaration.auth_type(auth_type))[-1]
    wrong = "W" * 20 if issued[secret_name] != "W" * 20 else "V" * 20
    with pytest.raises(CredentialsRejected) as caught:
        multi.connector.connect(multi.credential_profile(auth_type), {**issued, secret_name: wrong})
    assert caught.value.status == 401 and "\n" not in str(caught.value) and wrong not in str(caught.value)
    assert multi.store.list_connections() == ()


@pytest.mark.parametrize("auth_type", [HEADER_KEY, QUERY_KEY])
def test_a_revoked_key_needs_reconnecting_with_its_guidance(multi: Harness, auth_type: str) -> None:
    conn = multi.connect_credentials(auth_type).connection
    multi.emulator.revoke_credentials(auth_type, multi.issued[conn.id].identifier)
    with pytest.raises(ReconnectRequired) as caught:
        multi.connector.request(conn.id, "GET", "/things")
    assert caught.value.guidance == GUIDANCE


def test_basic_username_with_a_colon_is_refused(multi: Harness) -> None:
    with pytest.raises(ValidationError, match="username"):
        multi.connector.connect(multi.credential_profile(BASIC), {"username": "mu:12345", "password": "secret-1"})
    assert multi.store.list_connections() == ()


def test_the_query_key_never_reaches_the_log(multi: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    conn = multi.connect_credentials(QUERY_KEY).connection
    key = multi.issued[conn.id]["query_api_key"]
    assert multi.connector.request(conn.id, "GET", "/things").status == 200
    base = multi.emulator.endpoints().api_base_url
    with httpx.Client(base_url=base, auth=multi.connector.auth(conn.id), trust_env=False) as client:
        assert client.get("/things").status_code == 200
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/things" in logged and "api_key=" in logged  # httpx did log the requests...
    assert key not in logged and key not in caplog.text  # ...with the key masked


# ---------------------------------------------------- multiauth: client credentials


def _cc_requests(multi: Harness) -> int:
    return multi.emulator.stats.token_requests.get(CLIENT_CREDENTIALS, 0)


def test_client_credentials_fetch_cache_and_refetch_before_expiry_once(multi: Harness) -> None:
    result = multi.connect_credentials(CLIENT_CREDENTIALS)
    conn = result.connection
    assert conn.status is ConnectionStatus.CONNECTED and dict(conn.identity) == {
        "client_id": multi.emulator.app.credentials["sandbox"].client_id
    }
    assert _cc_requests(multi) == 1
    for _ in range(3):  # cached
        assert multi.connector.request(conn.id, "GET", "/things").status == 200
    assert multi.connector.test(conn.id).ok
    assert _cc_requests(multi) == 1
    assert [c.id for c in multi.store.list_connections(profile=multi.credential_profile(CLIENT_CREDENTIALS))] == [
        conn.id
    ]
    # Issued an hour ago, 30 seconds left: within the leeway, still valid at the provider.
    issued = (datetime.now(UTC) - timedelta(seconds=3570)).isoformat(timespec="microseconds")
    with multi.store._write() as db:
        db.execute(
            "UPDATE connections SET expires_at = ?, created_at = ?, updated_at = ?, refreshed_at = NULL WHERE id = ?",
            (datetime.now(UTC).timestamp() + 30, issued, issued, conn.id),
        )
    _, old, _ = multi.store.get_tokens(conn.id)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def hit() -> None:
        try:
            barrier.wait()
            assert multi.connector.request(conn.id, "GET", "/things").status == 200
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert _cc_requests(multi) == 2  # exactly one re-fetch for eight threads
    after, fresh, refresh = multi.store.get_tokens(conn.id)
    assert fresh is not None and old is not None and fresh.reveal() != old.reveal() and refresh is None
    assert after.token_version == conn.token_version + 1


def test_client_credentials_refetch_once_after_a_401(multi: Harness) -> None:
    conn = multi.connect_credentials(CLIENT_CREDENTIALS).connection
    _, access, _ = multi.store.get_tokens(conn.id)
    assert access is not None
    endpoints = multi.emulator.endpoints()
    client = multi.emulator.app.credentials[endpoints.credential_set]
    with httpx.Client(trust_env=False) as http:  # the provider revokes the token (RFC 7009)
        revoked = http.post(
            endpoints.revocation_url,
            data={"token": access.reveal()},
            auth=(client.client_id, client.client_secret.reveal()),
        )
    assert revoked.status_code == 200
    assert multi.connector.request(conn.id, "GET", "/things").status == 200
    assert _cc_requests(multi) == 2
    assert multi.store.get_connection(conn.id).status is ConnectionStatus.CONNECTED


def test_client_credentials_with_a_wrong_secret_store_nothing(multi: Harness) -> None:
    multi.create_profile("multi-wrong", auth_type=CLIENT_CREDENTIALS, client_secret=Secret("not-the-secret-1"))
    with pytest.raises(InvalidClient) as caught:
        multi.connector.connect("multi-wrong")
    assert "not-the-secret-1" not in str(caught.value) and "\n" not in str(caught.value)
    assert multi.store.list_connections() == ()


@pytest.mark.parametrize("host", ["a..b.example", "a" * 64 + ".example"])
def test_a_query_key_is_not_in_the_error_of_a_url_that_cannot_be_sent(multi: Harness, host: str) -> None:
    """Found by this suite: a host name that passes validation but that IDNA cannot encode made
    the transport's one-line error quote the whole URL, query API key included."""
    conn = multi.connect_credentials(QUERY_KEY).connection
    key = multi.issued[conn.id]["query_api_key"]
    profile = multi.store.get_profile(conn.profile)
    draft = validate_profile(
        multi.declaration, name=conn.profile, previous=profile, endpoints={"api_base_url": f"https://{host}/v1"}
    )
    multi.store.update_profile(conn.profile, draft)
    with pytest.raises(ValidationError, match="cannot be sent") as caught:
        multi.connector.request(conn.id, "GET", "/things")
    assert key not in str(caught.value)
    assert "/things" in str(caught.value)
