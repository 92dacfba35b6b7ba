"""The connect flow end to end against the built-in HiBob emulator, with plain httpx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
from support import PLATFORM_REDIRECT, World

from connector_core import Connector, hookimpl, load_plugins, oauth, validate_profile
from connector_core import connector as connector_module
from connector_core.connection import ConnectionStatus
from connector_core.connector import AlreadyInstalled, ConfirmationRequired, ReconnectRequired
from connector_core.emulator import CONSENT_HEADER, EmulatorSpec
from connector_core.models import ReconnectPolicy
from connector_core.testing import http_client
from connector_hibob.emulator import emulator_spec

REDIRECT = PLATFORM_REDIRECT
PROFILE = "acme-sandbox"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, PROFILE) as w:
        yield w


def test_connect_test_request(world: World) -> None:
    result = world.connect()
    conn = result.connection
    assert conn.status is ConnectionStatus.CONNECTED and conn.id.startswith("conn_")
    assert conn.identity == (("companyId", world.emu.default_company_id),)
    assert set(conn.granted_scopes) == set(conn.requested_scopes) and "employee_data:read" in conn.granted_scopes
    assert conn.expires_at is not None and conn.token_type == "Bearer" and not result.warnings
    assert world.connector.test(conn.id).ok
    response = world.connector.request(conn.id, "POST", "/people/search", json={"fields": ["root.id"]})
    assert response.status == 200 and json.loads(response.body)["employees"]
    stats = world.emu.stats
    assert stats.token_requests.get("authorization_code") == 1 and not stats.token_requests.get("refresh_token")
    raw = (world.home / "connector.db").read_bytes()
    _, access, refresh = world.store.get_tokens(conn.id)
    assert access is not None and refresh is not None
    assert access.reveal().encode() not in raw and refresh.reveal().encode() not in raw


def test_httpx_auth_sync_and_async(world: World) -> None:
    conn = world.connect().connection
    base = world.emu.endpoints("sandbox").api_base_url
    with httpx.Client(base_url=base, auth=world.connector.auth(conn.id)) as client:
        assert client.get("/company/named-lists").status_code == 200
    world.emu.advance_clock(10_000)  # the server expires the token; the client still thinks it valid

    async def run() -> int:
        async with httpx.AsyncClient(base_url=base, auth=world.connector.auth(conn.id)) as client:
            return (await client.get("/company/named-lists")).status_code

    import asyncio

    assert asyncio.run(run()) == 200
    assert world.emu.stats.token_requests.get("refresh_token") == 1


@pytest.mark.parametrize("target", ["https://evil.example/company/named-lists", "{http}/other", "{api}:1/x"])
def test_httpx_auth_sends_the_token_only_to_the_api_origin(world: World, target: str) -> None:
    """Another origin (another host, another scheme, another port) gets no
    token and its 401 forces no refresh: the request is refused before it is sent."""
    from connector_core.connector import RequestFailed

    conn = world.connect().connection
    api = world.emu.endpoints("sandbox").api_base_url
    url = target.format(http=api.replace("http://", "https://", 1), api=api.rsplit(":", 1)[0])
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401)

    client = httpx.Client(auth=world.connector.auth(conn.id), transport=httpx.MockTransport(answer))
    with (
        client,
        pytest.raises(RequestFailed, match=r"token is sent only to http://127\.0\.0\.1:\d+; a request to .* refused"),
    ):
        client.get(url)

    async def run() -> None:
        async with httpx.AsyncClient(auth=world.connector.auth(conn.id), transport=httpx.MockTransport(answer)) as c:
            await c.get(url)

    import asyncio

    with pytest.raises(RequestFailed, match="was refused without it"):
        asyncio.run(run())
    assert seen == [] and not world.emu.stats.token_requests.get("refresh_token")
    assert world.store.get_connection(conn.id).token_version == conn.token_version


def test_short_lived_token_is_not_refreshed_on_every_call(tmp_path: Path) -> None:
    """With 60-second tokens a flat 60 s leeway refreshed before every call, the connection
    test right after connecting included. The leeway is a tenth of the lifetime then."""
    with World(tmp_path, PROFILE, emulator_options={"access_token_lifetime": 60}) as world:
        conn = world.connect().connection
        assert world.connector.test(conn.id).ok
        assert world.connector.request(conn.id, "GET", "/company/named-lists").status == 200
        assert not world.emu.stats.token_requests.get("refresh_token")
        assert world.connector.leeway_for(conn) == pytest.approx(6.0, abs=1.0)
        refreshed = world.connector.refresh(conn.id, force=True)
        assert world.connector.leeway_for(refreshed) == pytest.approx(6.0, abs=1.0)
        assert world.connector.leeway_for(world.store.get_connection(conn.id)) <= 60


def test_refresh_before_expiry_rotates_and_persists(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = world.connect().connection
    _, old_access, old_refresh = world.store.get_tokens(conn.id)
    with monkeypatch.context() as patch:  # everything counts as expiring
        patch.setattr(world.connector, "leeway", 10 * 3600)
        patch.setattr(connector_module, "LEEWAY_FRACTION", 100.0)
        refreshed = world.connector.refresh(conn.id)
    _, new_access, new_refresh = world.store.get_tokens(conn.id)
    assert refreshed.token_version == conn.token_version + 1 and refreshed.refreshed_at is not None
    assert new_access != old_access and new_refresh != old_refresh and new_refresh is not None
    assert world.emu.stats.token_requests["refresh_token"] == 1
    # The old refresh token stopped working: rotation.
    endpoints = world.emu.endpoints("sandbox")
    creds = world.emu.app.credentials[endpoints.credential_set]
    assert old_refresh is not None
    answer = httpx.post(
        endpoints.token_url,
        data={"grant_type": "refresh_token", "refresh_token": old_refresh.reveal()},
        auth=(creds.client_id, creds.client_secret.reveal()),
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert world.connector.test(conn.id).ok  # the stored, rotated token works


def test_refresh_on_401(world: World) -> None:
    conn = world.connect().connection
    world.emu.advance_clock(7200)
    response = world.connector.request(conn.id, "GET", "/company/named-lists")
    assert response.status == 200
    assert world.emu.stats.token_requests["refresh_token"] == 1


def test_no_uninstall_guidance_when_the_provider_says_it_was_uninstalled(world: World) -> None:
    """HiBob's "uninstall first" applies while the app is still installed (a refresh token lost
    on our side); after an uninstall in Bob it was appended all the same, telling people to
    uninstall an app that is not there."""
    conn = world.connect().connection
    world.emu.uninstall()
    with pytest.raises(ReconnectRequired) as info:
        world.connector.refresh(conn.id, force=True)
    assert "uninstalled" in info.value.reason and info.value.guidance is None
    assert "uninstall the app in Bob first" not in str(info.value)
    with pytest.raises(ReconnectRequired) as again:  # and the same when the stored verdict is read back
        world.connector.request(conn.id, "GET", "/company/named-lists")
    assert again.value.guidance is None


def test_invalid_grant_needs_reconnect_then_reconnect_after_uninstall(world: World) -> None:
    conn = world.connect().connection
    # Someone else used the refresh token (rotation): ours is dead now.
    endpoints = world.emu.endpoints("sandbox")
    creds = world.emu.app.credentials[endpoints.credential_set]
    _, _, refresh = world.store.get_tokens(conn.id)
    assert refresh is not None
    httpx.post(
        endpoints.token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh.reveal()},
        auth=(creds.client_id, creds.client_secret.reveal()),
    ).raise_for_status()
    world.emu.advance_clock(7200)
    with pytest.raises(ReconnectRequired) as info:
        world.connector.request(conn.id, "GET", "/company/named-lists")
    assert "needs reconnecting (refresh refused" in str(info.value) and "uninstall" in str(info.value).lower()
    stuck = world.store.get_connection(conn.id)
    assert stuck.status is ConnectionStatus.NEEDS_RECONNECT
    assert [c.id for c in world.store.needing_attention()] == [conn.id]

    # HiBob's policy needs manual steps: refused without confirmation, steps shown.
    with pytest.raises(ConfirmationRequired) as confirm:
        world.connector.begin_reconnect(conn.id)
    assert any("Marketplace" in line for line in confirm.value.details)

    # Confirmed, but the app is still installed: HiBob refuses, and we say exactly that.
    start = world.connector.begin_reconnect(conn.id, confirmed=True)
    assert world.store.get_connection(conn.id).status is ConnectionStatus.PENDING
    with pytest.raises(AlreadyInstalled) as installed:
        world.connector.complete(world.consent(start.url), profile=PROFILE)
    assert "already installed" in str(installed.value) and "uninstall it first" in str(installed.value)
    assert str(installed.value).endswith("then reconnect again")  # a reconnect, so it says reconnect
    assert str(installed.value).lower().count("uninstall it first") == 1  # the provider's words are not repeated
    assert installed.value.description and "Uninstall it first" in installed.value.description
    assert any("Click Uninstall." in line for line in installed.value.details)
    assert world.store.get_connection(conn.id).status is ConnectionStatus.NEEDS_RECONNECT

    world.emu.uninstall()
    start = world.connector.begin_reconnect(conn.id, confirmed=True)
    again = world.connector.complete(world.consent(start.url), profile=PROFILE).connection
    assert again.id == conn.id and again.status is ConnectionStatus.CONNECTED
    assert again.created_at == conn.created_at
    history = [e.status.value for e in world.store.connection_events(conn.id)]
    assert history == ["connected", "needs_reconnect", "pending", "needs_reconnect", "pending", "connected"]
    assert world.connector.test(conn.id).ok


def test_uninstall_revokes_and_marks_the_connection(world: World) -> None:
    conn = world.connect().connection
    world.emu.uninstall()
    with pytest.raises(ReconnectRequired):
        world.connector.request(conn.id, "GET", "/company/named-lists")
    assert world.store.get_connection(conn.id).status is ConnectionStatus.NEEDS_RECONNECT


def test_scope_change_marks_connections(world: World) -> None:
    conn = world.connect().connection
    previous = world.store.get_profile(PROFILE)
    draft = validate_profile(
        world.plugins.declaration("hibob"), name=PROFILE, previous=previous, scopes=["employee_data:read", "goals:read"]
    )
    world.store.update_profile(PROFILE, draft)
    marked = world.store.get_connection(conn.id)
    assert marked.status is ConnectionStatus.NEEDS_RECONNECT and marked.status_reason == "scopes changed"
    plan = world.connector.reconnect_plan(conn.id)
    assert "goals:read" in plan.scopes and set(conn.granted_scopes) <= set(plan.scopes)


def test_in_place_reconnect_policy_needs_no_manual_steps(tmp_path: Path) -> None:
    from connector_hibob import plugin

    class InPlace:
        @hookimpl(tryfirst=True)
        def connector_core_reconnect_policy(self, provider_key: str) -> ReconnectPolicy | None:
            return ReconnectPolicy("reauthorize", "Authorize again.") if provider_key == "hibob" else None

        @hookimpl(tryfirst=True)
        def connector_core_emulator(self, provider_key: str) -> EmulatorSpec | None:
            return attrs.evolve(emulator_spec(), single_installation=False) if provider_key == "hibob" else None

    with World(tmp_path, PROFILE, plugins=load_plugins([plugin, InPlace()], entry_points=False)) as world:
        conn = world.connect().connection
        start = world.connector.begin_reconnect(conn.id)  # no confirmation needed
        again = world.connector.complete(world.consent(start.url), profile=PROFILE).connection
        assert again.id == conn.id and again.status is ConnectionStatus.CONNECTED


def test_access_denied(world: World) -> None:
    start = world.connector.begin(PROFILE)
    with pytest.raises(oauth.AccessDenied, match="the authorization was denied"):
        world.connector.complete(world.consent(start.url, "deny"))
    assert world.store.list_connections() == ()


def test_state_missing_wrong_reused_expired_and_other_profile(world: World) -> None:
    start = world.connector.begin(PROFILE)
    location = world.consent(start.url)
    code = oauth.parse_callback(location).code
    assert code is not None
    with pytest.raises(oauth.StateError, match="carries no state of ours"):
        world.connector.complete(f"{REDIRECT}?code={code.reveal()}")
    with pytest.raises(oauth.StateError, match="has no state"):
        world.connector.complete(f"{REDIRECT}?error=access_denied")
    with pytest.raises(oauth.StateError, match="unknown or was already used"):
        world.connector.complete(f"{REDIRECT}?code={code.reveal()}&state=forged")
    world.create_profile("other-profile")
    with pytest.raises(oauth.StateError, match="belongs to an authorization of profile 'acme-sandbox'"):
        world.connector.complete(location, profile="other-profile")
    with pytest.raises(oauth.StateError, match="unknown or was already used"):  # single use, even after a refusal
        world.connector.complete(location)
    expired = world.connector.begin(PROFILE, ttl=-1)
    with pytest.raises(oauth.StateError, match="expired"):
        world.connector.complete(world.consent(expired.url))
    assert world.emu.stats.token_requests.get("authorization_code") is None  # nothing was exchanged


def test_code_reuse_is_refused(world: World) -> None:
    start = world.connector.begin(PROFILE)
    location = world.consent(start.url)
    world.connector.complete(location)
    world.emu.uninstall()
    code = oauth.parse_callback(location).code
    second = world.connector.begin(PROFILE)
    state = oauth.parse_callback(world.consent(second.url)).state
    assert code is not None
    with pytest.raises(oauth.InvalidGrant, match="code exchange failed with invalid_grant"):
        world.connector.complete(f"{REDIRECT}?code={code.reveal()}&state={state}")


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("html_error", "with an HTML page"),
        ("truncated_json", "not a JSON object"),
        ("oversized", "larger than"),
    ],
)
def test_token_endpoint_garbage(world: World, fault: str, message: str) -> None:
    start = world.connector.begin(PROFILE)
    location = world.consent(start.url)
    if fault == "html_error":
        world.emu.faults.html_error("token", status=400)
    else:
        getattr(world.emu.faults, fault)("token")
    with pytest.raises(oauth.OAuthError, match=message) as info:
        world.connector.complete(location)
    assert "\n" not in str(info.value)
    assert world.store.list_connections() == ()


def test_transient_token_errors_are_retried(world: World) -> None:
    conn = world.connect().connection
    world.emu.faults.status("token", 503, times=1)
    world.connector.refresh(conn.id, force=True)
    assert world.emu.stats.token_requests["refresh_token"] == 2
    assert world.store.get_connection(conn.id).status is ConnectionStatus.CONNECTED


def test_redirect_uri_must_be_https_or_loopback(world: World) -> None:
    with pytest.raises(oauth.OAuthError, match=r"redirect URI 'http://platform\.example/cb' is not https"):
        world.connector.begin(PROFILE, redirect_uri="http://platform.example/cb")


def test_provider_initiated_install(world: World) -> None:
    # An install begun in Bob: the code arrives with no state of ours.
    endpoints = world.emu.endpoints("sandbox")
    creds = world.emu.app.credentials[endpoints.credential_set]
    url = (
        f"{endpoints.authorize_url}?response_type=code&client_id={creds.client_id}"
        f"&redirect_uri={REDIRECT}&scope=employee_data:read"
    )
    location = world.consent(url)
    result = world.connector.complete_provider_initiated(PROFILE, location)
    assert result.connection.provider_initiated and world.connector.test(result.connection.id).ok


def test_revoke_without_endpoint_is_local_and_says_so(world: World) -> None:
    conn = world.connect().connection
    # HiBob declares no revocation endpoint; the profile's override points at the emulator's.
    prof = world.store.get_profile(PROFILE)
    draft = validate_profile(
        world.plugins.declaration("hibob"), name=PROFILE, previous=prof, endpoints={"revocation_url": None}
    )
    world.store.update_profile(PROFILE, draft)
    result = world.connector.revoke(conn.id)
    assert not result.revoked_at_provider and "no token revocation endpoint" in result.message
    assert result.connection.status is ConnectionStatus.DISCONNECTED
    assert world.store.get_tokens(conn.id)[1] is None


def test_revoke_at_the_provider(world: World) -> None:
    conn = world.connect().connection
    result = world.connector.revoke(conn.id)
    assert result.revoked_at_provider and result.connection.status is ConnectionStatus.REVOKED
    assert world.emu.stats.revocation_requests == 2


WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from connector_core import Store, load_plugins
    from connector_core.connector import Connector
    from connector_hibob import plugin

    home, key_file, cid, go = sys.argv[1:5]
    store = Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": key_file})
    connector = Connector(store, load_plugins([plugin], entry_points=False))
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.005)
    response = connector.request(cid, "GET", "/company/named-lists")
    print("status", response.status, flush=True)
    """
)


def test_50_threads_and_4_processes_refresh_once(world: World, tmp_path: Path) -> None:
    conn = world.connect().connection
    with world.store._write() as db:  # the access token expires for everyone at once
        db.execute("UPDATE connections SET expires_at = 0 WHERE id = ?", (conn.id,))
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(world.home), str(world.key_file), conn.id, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    statuses: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def hit() -> None:
        try:
            barrier.wait()
            statuses.append(world.connector.request(conn.id, "GET", "/company/named-lists").status)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=hit) for _ in range(50)]
    for thread in threads:
        thread.start()
    go.touch()
    for thread in threads:
        thread.join(timeout=60)
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert not errors, errors
    assert statuses == [200] * 50
    for (out, err), proc in zip(outputs, procs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip().endswith("status 200"), (out, err)
    assert world.emu.stats.token_requests["refresh_token"] == 1
    assert world.store.get_connection(conn.id).token_version == conn.token_version + 1


def test_bulk_refresh_refreshes_each_exactly_once(world: World) -> None:
    from connector_core import refresh_all
    from connector_core.emulator import COMPANY_HEADER

    ids = []
    for _ in range(30):
        company = world.emu.add_company()
        start = world.connector.begin(PROFILE)
        with http_client(follow_redirects=False) as browser:
            answer = browser.get(start.url, headers={CONSENT_HEADER: "allow", COMPANY_HEADER: company.id})
        ids.append(world.connector.complete(answer.headers["location"]).connection.id)
    with world.store._write() as db:
        db.execute(f"UPDATE connections SET expires_at = 0 WHERE id IN ({','.join('?' * 20)})", ids[:20])
    report = refresh_all(world.connector, concurrency=8)
    assert (report.refreshed, report.skipped, report.failed) == (20, 10, ())
    assert world.emu.stats.token_requests["refresh_token"] == 20
    versions = {c.id: c.token_version for c in world.store.list_connections()}
    assert sorted(versions[i] for i in ids) == [0] * 10 + [1] * 20
    forced = refresh_all(world.connector, concurrency=8, force=True)
    assert forced.refreshed == 30 and world.emu.stats.token_requests["refresh_token"] == 50


def test_connecting_the_same_company_again_updates_its_connection(world: World) -> None:
    first = world.connect().connection
    world.emu.uninstall()  # HiBob refuses a second install; the company installs the app again
    again = world.connect()
    assert again.connection.id == first.id and again.connection.identity == first.identity
    assert again.connection.status is ConnectionStatus.CONNECTED
    assert again.connection.token_version > first.token_version
    assert any(first.id in w for w in again.warnings)
    assert [c.id for c in world.store.list_connections(profile=PROFILE)] == [first.id]
    assert world.connector.test(first.id).ok


# ------------------------------------------------------- RFC 9207 mix-up defence

META = "https://as.example/.well-known/oauth-authorization-server"


class Metadata(httpx.BaseTransport):
    """Serves RFC 8414 metadata at :data:`META`; everything else goes to the emulator."""

    def __init__(self, document: dict[str, object]) -> None:
        self.document = document
        self.reads = 0
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == META:
            self.reads += 1
            return httpx.Response(200, json=self.document)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def _set_endpoints(world: World, **endpoints: str) -> None:
    prof = world.store.get_profile(PROFILE)
    draft = validate_profile(world.plugins.declaration("hibob"), name=PROFILE, previous=prof, endpoints=endpoints)
    world.store.update_profile(PROFILE, draft)


def _callback(world: World, connector: Connector, iss: str | None) -> str:
    world.emu.uninstall()  # an earlier consent in the test installed the app
    start = connector.begin(PROFILE)
    location = world.consent(start.url)
    return location if iss is None else f"{location}&iss={iss}"


def test_iss_of_another_server_is_refused_without_a_declared_issuer(world: World) -> None:
    """HiBob declares no issuer: an ``iss`` naming another server than the authorization
    endpoint's origin is refused, and its code never exchanged."""
    with pytest.raises(oauth.OAuthError, match=r"iss 'https://evil\.example'.*mix-up defence\); refused") as info:
        world.connector.complete(_callback(world, world.connector, "https://evil.example"))
    assert info.value.error == "invalid_issuer"
    assert world.emu.stats.token_requests.get("authorization_code") is None
    origin = world.emu.endpoints("sandbox").authorize_url.split("/sandbox/")[0]
    assert world.connector.complete(_callback(world, world.connector, origin)).connection.status.value == "connected"


def test_profile_issuer_requires_a_matching_iss(world: World) -> None:
    _set_endpoints(world, issuer="https://as.example")
    for iss, shown in ((None, "no iss"), ("https://other.example", "iss 'https://other.example'")):
        with pytest.raises(oauth.OAuthError, match=f"has {shown}, expected 'https://as.example'"):
            world.connector.complete(_callback(world, world.connector, iss))
    assert world.emu.stats.token_requests.get("authorization_code") is None
    conn = world.connector.complete(_callback(world, world.connector, "https://as.example")).connection
    assert conn.status is ConnectionStatus.CONNECTED


@pytest.mark.parametrize("advertised", [True, False])
def test_issuer_discovered_from_metadata(world: World, advertised: bool) -> None:
    """The profile says where the metadata is: its issuer is the one ``iss`` must name, and
    a missing ``iss`` is refused exactly when the metadata advertises that it is always sent."""
    _set_endpoints(world, metadata_url=META)
    transport = Metadata({"issuer": "https://as.example", "authorization_response_iss_parameter_supported": advertised})
    connector = Connector(world.store, world.plugins, client=httpx.Client(transport=transport))
    with pytest.raises(oauth.OAuthError, match=r"expected 'https://as\.example'"):
        connector.complete(_callback(world, connector, "https://evil.example"))
    if advertised:
        with pytest.raises(oauth.OAuthError, match=r"has no iss, expected 'https://as\.example'"):
            connector.complete(_callback(world, connector, None))
    else:
        assert connector.complete(_callback(world, connector, None)).connection.status is ConnectionStatus.CONNECTED
    exchanged = 0 if advertised else 1
    assert world.emu.stats.token_requests.get("authorization_code", 0) == exchanged
    assert connector.complete(_callback(world, connector, "https://as.example")).connection
    assert transport.reads == 3
    connector.close()


def test_metadata_naming_another_issuer_is_refused(world: World) -> None:
    _set_endpoints(world, metadata_url=META)
    transport = Metadata({"issuer": "https://evil.example"})
    connector = Connector(world.store, world.plugins, client=httpx.Client(transport=transport))
    with pytest.raises(oauth.OAuthError, match=r"names issuer 'https://evil\.example', not 'https://as\.example'"):
        connector.complete(_callback(world, connector, "https://evil.example"))
    assert world.emu.stats.token_requests.get("authorization_code") is None
    connector.close()
