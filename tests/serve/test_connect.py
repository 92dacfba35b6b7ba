"""Connect sessions, the connect page and the callback on the platform's URL, in-process
against HiBob's emulator (the browser is Starlette's test client and the harness's scripted
consent; tests/serve/test_browser.py drives a real one)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient
from support import PLATFORM, World

from connector_core import ConnectionStatus
from connector_core.serve import create_app

from .conftest import AUTH, KEY

DONE = "https://app.example.com/connected"
ORIGIN = "https://app.example.com"
ADA = {"id": "user-ada", "email": "ada@example.com", "display_name": "Ada"}


class Service:
    """The app over the world, a browser (cookies, no API key) and the platform's backend."""

    def __init__(self, world: World, app: Any) -> None:
        self.world = world
        self.app = app
        self._clients: list[TestClient] = []
        self.api = TestClient(app, base_url=PLATFORM, headers=AUTH, raise_server_exceptions=False)
        self.browser = self.new_browser()

    def new_browser(self) -> TestClient:
        client = TestClient(self.app, base_url=PLATFORM, follow_redirects=False, raise_server_exceptions=False)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in (self.api, *self._clients):
            client.close()

    def session(self, **body: Any) -> dict[str, Any]:
        body.setdefault("end_user", ADA)
        body.setdefault("profile", self.world.profile)
        answer = self.api.post("/v1/connect/sessions", json=body)
        assert answer.status_code == 201, answer.text
        data: dict[str, Any] = answer.json()
        return data

    def open(self, session: dict[str, Any], browser: TestClient | None = None) -> Any:
        return (browser or self.browser).get(_path(session["connect_url"]))

    def post(self, session: dict[str, Any], page: Any, browser: TestClient | None = None, **form: str) -> Any:
        browser = browser or self.browser
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text
        data = {"csrf": csrf.group(1), "action": "connect", **form}
        return browser.post(_path(session["connect_url"]), data=data, headers={"Origin": PLATFORM})

    def authorize(self, session: dict[str, Any], decision: str = "allow", **form: str) -> Any:
        """Open the page, press Continue, consent at the emulator; the callback's answer."""
        started = self.post(session, self.open(session), **form)
        assert started.status_code == 303, started.text
        location = self.world.consent(started.headers["location"], decision)
        assert location.startswith(f"{PLATFORM}/connect/oauth2/hibob/callback?")
        return self.browser.get(_path(location))

    def state(self, session: dict[str, Any]) -> dict[str, Any]:
        answer = self.api.get(f"/v1/connect/sessions/{session['id']}")
        assert answer.status_code == 200
        data: dict[str, Any] = answer.json()
        return data


def _event(page: Any) -> dict[str, Any]:
    """The event the page posts to its opener or parent."""
    found = re.search(r"var event = (\{.*?\});", page.text)
    assert found, page.text
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture
def service(world: World) -> Iterator[Service]:
    app = create_app(
        world.connector,
        api_keys=[KEY],
        public_url=PLATFORM,
        redirect_allow_list=[DONE],
        embed_origins=[ORIGIN],
    )
    service = Service(world, app)
    yield service
    service.close()


# ------------------------------------------------------------- sessions API


def test_a_session_is_made_once_and_its_token_never_shown_again(service: Service) -> None:
    made = service.session(redirect_url=f"{DONE}?tab=hr", tags=["pilot"], organisation="org-1")
    assert made["token"].startswith("cs_") and made["connect_url"] == f"{PLATFORM}/connect/{made['token']}"
    assert made["expires_at"].endswith("Z") and made["id"].startswith("sess_")
    shown = service.state(made)
    assert shown["status"] == "pending" and shown["end_user"]["id"] == "user-ada" and shown["tags"] == ["pilot"]
    assert made["token"] not in str(shown)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"profile": "acme-sandbox"}, "end_user.id"),
        ({"end_user": ADA, "profile": "acme-sandbox", "colour": "red"}, "colour"),
        ({"end_user": ADA, "profile": "acme-sandbox", "redirect_url": "https://evil.example/"}, "redirect_url"),
        ({"end_user": ADA, "profile": "acme-sandbox", "expires_in": 5}, "expires_in"),
        ({"end_user": ADA, "profile": "nope"}, "profile"),
        ({"end_user": ADA, "providers": ["nope"]}, "providers"),
        ({"end_user": ADA, "profile": "acme-sandbox", "scopes": ["no:such"]}, "scopes"),
    ],
)
def test_a_bad_session_request_is_a_problem_naming_the_field(
    service: Service, body: dict[str, Any], field: str
) -> None:
    answer = service.api.post("/v1/connect/sessions", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json" and answer.json()["field"] == field
    assert service.world.store.list_sessions() == ()


def test_sessions_need_the_api_key(service: Service) -> None:
    answer = service.browser.post("/v1/connect/sessions", json={"end_user": ADA, "profile": "acme-sandbox"})
    assert answer.status_code == 401


# ----------------------------------------------------------------- the page


def test_the_page_is_strict_html_with_the_checklist(service: Service) -> None:
    page = service.open(service.session())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and f'nonce="{nonce.group(1)}"' in page.text
    assert "default-src 'none'" in csp and f"frame-ancestors {ORIGIN}" in csp and "'unsafe-inline'" not in csp
    assert "form-action 'self' " in csp and service.world.emu.base_url in csp
    assert "x-frame-options" not in page.headers
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "same-origin"
    assert "<h1>Connect HiBob</h1>" in page.text and "Before you connect" in page.text
    assert "Continue to HiBob" in page.text and "<script" not in page.text


def test_a_page_without_embedding_origins_cannot_be_framed(world: World) -> None:
    app = create_app(world.connector, api_keys=[KEY], public_url=PLATFORM)
    service = Service(world, app)
    page = service.open(service.session())
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


@pytest.mark.parametrize("token", ["cs_" + "A" * 43, "nothing", "cs_short"])
def test_an_unknown_token_is_a_404_page(service: Service, token: str) -> None:
    page = service.browser.get(f"/connect/{token}")
    assert page.status_code == 404 and "This link is not valid" in page.text and token not in page.text


def test_an_expired_session_is_a_410_page(service: Service) -> None:
    made = service.session(expires_in=60)
    sessions = service.app.state.sessions
    sessions.clock = lambda: time.time() + 61
    page = service.open(made)
    assert page.status_code == 410 and "This link has expired" in page.text
    assert service.state(made)["status"] == "expired"


def test_a_form_from_another_site_or_without_its_token_is_refused(service: Service) -> None:
    made = service.session()
    page = service.open(made)
    path = _path(made["connect_url"])
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    other = service.browser.post(
        path, data={"csrf": csrf.group(1), "action": "connect"}, headers={"Origin": "https://evil.example"}
    )
    assert other.status_code == 403 and "another site" in other.text
    forged = service.browser.post(path, data={"csrf": "x" * 43, "action": "connect"}, headers={"Origin": PLATFORM})
    assert forged.status_code == 403
    fresh = service.new_browser()  # the token in the page, but not its cookie
    stolen = fresh.post(path, data={"csrf": csrf.group(1), "action": "connect"})
    assert stolen.status_code == 403
    assert service.state(made)["status"] == "pending"


# ----------------------------------------------------------- OAuth connects


def test_authorize_at_the_provider_and_land_on_the_success_page(service: Service) -> None:
    made = service.session(redirect_url=DONE)
    page = service.authorize(made)
    assert page.status_code == 200 and '<h1 class="ok">Connected</h1>' in page.text
    state = service.state(made)
    assert state["status"] == "completed" and state["provider"] == "hibob"
    conn = service.world.store.get_connection(state["connection_id"])
    assert conn.owner.end_user is not None and conn.owner.end_user.id == "user-ada"
    target = re.search(r'id="continue" href="([^"]+)"', page.text)
    assert target
    query = parse_qs(urlsplit(target.group(1).replace("&amp;", "&")).query)
    assert query == {"connection_id": [conn.id], "status": ["connected"]}
    listed = service.api.get("/v1/connections", params={"end_user": "user-ada"}).json()["data"]
    assert [c["id"] for c in listed] == [conn.id]
    assert _event(page) == {"type": "connected", "connection_id": conn.id}  # posted to the opener
    assert f'["{ORIGIN}"]' in page.text


def test_the_same_customer_gets_the_same_connection(service: Service) -> None:
    first = service.state(made := service.session())
    service.authorize(made)
    again = service.session()
    refused = service.authorize(again)  # HiBob installs once per company
    assert refused.status_code == 409 and "Uninstall the app first" in refused.text and "Marketplace" in refused.text
    assert service.state(again)["error"]["code"] == "already_installed"
    service.world.emu.uninstall()
    again = service.session()
    service.authorize(again)
    ids = {service.state(made)["connection_id"], service.state(again)["connection_id"]}
    assert len(ids) == 1 and first["status"] == "pending"
    conn = service.world.store.get_connection(ids.pop())
    reasons = [e.reason for e in service.world.store.connection_events(conn.id)]
    assert reasons.count("reauthorized") == 1


def test_a_callback_comes_back_to_the_browser_that_started_it(service: Service) -> None:
    made = service.session()
    started = service.post(made, service.open(made))
    location = service.world.consent(started.headers["location"])
    other = service.new_browser()
    page = other.get(_path(location))
    assert page.status_code == 400 and "another browser" in page.text
    assert service.state(made)["status"] == "used"  # the real browser may still finish it
    assert service.browser.get(_path(location)).status_code == 200
    replay = service.browser.get(_path(location))
    assert replay.status_code == 400 and "Connected" not in replay.text


@pytest.mark.parametrize(
    "query",
    ["state=forged&code=abc", "code=abc&code=def", "error=access_denied"],
    ids=["unknown state", "repeated", "error without state"],
)
def test_a_bad_callback_is_a_400_page(service: Service, query: str) -> None:
    page = service.browser.get(f"/connect/oauth2/hibob/callback?{query}")
    assert page.status_code == 400 and "Traceback" not in page.text and "abc" not in page.text


def test_a_denial_ends_the_session_and_says_so(service: Service) -> None:
    made = service.session(redirect_url=DONE)
    page = service.authorize(made, "deny")
    assert page.status_code == 403 and "Access was declined at HiBob" in page.text
    state = service.state(made)
    assert state["status"] == "failed" and state["error"]["code"] == "access_denied"
    assert "status=error&amp;error=access_denied" in page.text
    assert _event(page) == {"type": "error", "connection_id": None, "error": "access_denied"}
    assert service.world.store.list_connections() == ()


def test_a_used_token_is_a_410_page(service: Service) -> None:
    made = service.session()
    service.authorize(made)
    page = service.open(made)
    assert page.status_code == 410 and "already used" in page.text


def test_cancel_posts_closed(service: Service) -> None:
    made = service.session(redirect_url=DONE)
    page = service.post(made, service.open(made), action="cancel")
    assert page.status_code == 200 and "Cancelled" in page.text and _event(page)["type"] == "closed"
    assert "status=cancelled" in page.text
    assert service.state(made)["error"]["code"] == "cancelled"


def test_a_reconnect_session_keeps_the_id_and_asks_to_uninstall_first(service: Service) -> None:
    made = service.session()
    service.authorize(made)
    cid = service.state(made)["connection_id"]
    again = service.session(connection_id=cid)
    page = service.open(again)
    assert "<h1>Reconnect HiBob</h1>" in page.text and "Uninstall" in page.text and 'name="confirm"' in page.text
    unconfirmed = service.post(again, page)
    assert unconfirmed.status_code == 400 and "Tick the box" in unconfirmed.text
    assert service.state(again)["status"] == "pending"
    service.world.emu.uninstall()
    done = service.authorize(again, confirm="yes")
    assert done.status_code == 200 and "Connected" in done.text
    assert service.state(again)["connection_id"] == cid
    assert service.world.store.get_connection(cid).status is ConnectionStatus.CONNECTED


def test_a_reconnect_of_another_end_users_connection_is_refused(service: Service) -> None:
    made = service.session()
    service.authorize(made)
    cid = service.state(made)["connection_id"]
    answer = service.api.post("/v1/connect/sessions", json={"end_user": {"id": "user-eve"}, "connection_id": cid})
    assert answer.status_code == 400 and answer.json()["field"] == "connection_id"


# --------------------------------------------------------- marketplace installs


def _install(service: Service) -> Any:
    emu = service.world.emu
    endpoints = emu.endpoints("sandbox")
    creds = emu.app.credentials[endpoints.credential_set]
    url = (
        f"{endpoints.authorize_url}?response_type=code&client_id={creds.client_id}"
        f"&redirect_uri={PLATFORM}/connect/oauth2/hibob/callback&scope=employee_data:read"
    )
    location = service.world.consent(url)
    assert "state=" not in location
    return service.new_browser().get(_path(location))


def test_a_marketplace_install_is_unclaimed_until_the_platform_attaches_it(service: Service) -> None:
    page = _install(service)
    assert page.status_code == 200 and "HiBob is installed" in page.text and "go back to the platform" in page.text
    (conn,) = service.world.store.list_connections()
    assert conn.owner.end_user is None and conn.provider_initiated
    assert dict(conn.identity)["companyId"] in page.text
    assert service.api.get("/v1/connections", params={"end_user": "user-ada"}).json()["data"] == []
    unclaimed = service.api.get("/v1/connections", params={"unclaimed": "true"}).json()["data"]
    assert [c["id"] for c in unclaimed] == [conn.id]
    attached = service.api.put(f"/v1/connections/{conn.id}/owner", json={"end_user": ADA})
    assert attached.status_code == 200
    listed = service.api.get("/v1/connections", params={"end_user": "user-ada"}).json()["data"]
    assert [c["id"] for c in listed] == [conn.id]


def test_an_install_goes_on_to_the_platform_when_configured(world: World) -> None:
    app = create_app(
        world.connector,
        api_keys=[KEY],
        public_url=PLATFORM,
        redirect_allow_list=[DONE],
        install_redirect_url=f"{DONE}/install",
    )
    page = _install(Service(world, app))
    (conn,) = world.store.list_connections()
    assert f"{DONE}/install?connection_id={conn.id}&amp;provider=hibob&amp;status=installed" in page.text


def test_installs_need_a_profile_that_takes_them(world: World) -> None:
    app = create_app(world.connector, api_keys=[KEY], public_url=PLATFORM, install_profiles={"hibob": "nope"})
    page = _install(Service(world, app))
    assert page.status_code in (400, 404, 502) and "Traceback" not in page.text
    assert world.store.list_connections() == ()


# ------------------------------------------------------------ service users


def test_a_service_user_connects_through_the_form(service: Service) -> None:
    profile = service.world.credential_profile("service_user")
    made = service.session(profile=profile, redirect_url=DONE)
    page = service.open(made)
    assert 'type="password"' in page.text and "Service user ID" in page.text
    issued = service.world.issue("service_user")
    wrong = service.post(
        made, page, field_service_user_id=issued["service_user_id"], field_service_user_token="wrong-token-value"
    )
    assert wrong.status_code == 400 and "HiBob did not accept these details" in wrong.text
    assert "wrong-token-value" not in wrong.text
    assert issued["service_user_id"] in wrong.text  # the plain field is kept, the secret is not
    assert service.state(made)["status"] == "pending"  # a mistyped token does not use the session up
    done = service.post(
        made,
        wrong,
        field_service_user_id=issued["service_user_id"],
        field_service_user_token=issued["service_user_token"],
    )
    assert done.status_code == 200 and "Connected" in done.text, done.text
    state = service.state(made)
    assert state["status"] == "completed"
    conn = service.world.store.get_connection(state["connection_id"])
    assert conn.auth_type == "service_user" and conn.owner.end_user is not None
    assert issued["service_user_token"] not in done.text


def test_a_missing_field_is_shown_at_the_field(service: Service) -> None:
    made = service.session(profile=service.world.credential_profile("service_user"))
    answer = service.post(made, service.open(made), field_service_user_id="", field_service_user_token="")
    assert answer.status_code == 400 and 'aria-invalid="true"' in answer.text
    assert service.state(made)["status"] == "pending"


# ---------------------------------------------------------------- secrets


def test_no_token_code_or_state_is_logged(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="connector_core")
    made = service.session()
    service.authorize(made)
    text = caplog.text
    assert "/connect/cs_…" in text
    assert made["token"] not in text and "code=" not in text and "state=" not in text


def test_a_separate_session_makes_a_second_connection(service: Service) -> None:
    made = service.session()
    service.authorize(made)
    service.world.emu.uninstall()
    apart = service.session(separate=True)
    service.authorize(apart)
    first, second = service.state(made)["connection_id"], service.state(apart)["connection_id"]
    assert first != second and len(service.world.store.list_connections(end_user="user-ada")) == 2


def test_creating_sessions_clears_those_whose_time_ran_out(service: Service) -> None:
    old = service.session(expires_in=60)
    sessions = service.app.state.sessions
    later = time.time() + 2 * 86400 + 60
    sessions.clock = lambda: later
    fresh = service.session()
    ids = {s.id for s in service.world.store.list_sessions()}
    assert old["id"] not in ids and fresh["id"] in ids


def test_with_several_providers_the_page_asks_which_first(tmp_path: Path) -> None:
    from support import multiauth

    from connector_core import load_plugins, validate_profile
    from connector_hibob import plugin as hibob_plugin

    plugins = load_plugins([hibob_plugin, multiauth], entry_points=False)
    with World(tmp_path, "acme-sandbox", plugins=plugins) as world:
        decl = plugins.declaration(multiauth.KEY)
        world.store.create_profile(
            validate_profile(decl, name="multi-key", environment="sandbox", auth_type=multiauth.HEADER_KEY)
        )
        service = Service(world, create_app(world.connector, api_keys=[KEY], public_url=PLATFORM))
        made = service.session(profile=None, providers=["hibob", multiauth.KEY])
        picker = service.open(made)
        assert picker.status_code == 200 and "Choose what to connect" in picker.text
        buttons = re.findall(r'name="provider" value="([^"]+)">([^<]+)</button>', picker.text)
        assert buttons == [("hibob", "HiBob"), (multiauth.KEY, "Multiauth")]
        chosen = service.browser.get(_path(made["connect_url"]) + f"?provider={multiauth.KEY}")
        assert "<h1>Connect Multiauth</h1>" in chosen.text and 'name="field_header_api_key"' in chosen.text
        assert "Connect something else" in chosen.text
        refused = service.browser.get(_path(made["connect_url"]) + "?provider=nope")
        assert refused.status_code == 400
        service.close()


def test_a_service_user_reconnect_asks_for_new_credentials_not_an_uninstall(service: Service) -> None:
    profile = service.world.credential_profile("service_user")
    made = service.session(profile=profile)
    issued = service.world.issue("service_user")
    fields = {f"field_{k}": v for k, v in issued.items() if k.startswith("service_user")}
    assert service.post(made, service.open(made), **fields).status_code == 200
    cid = service.state(made)["connection_id"]
    again = service.session(profile=profile, connection_id=cid)
    page = service.open(again)
    assert (
        "<h1>Reconnect HiBob</h1>" in page.text and "Uninstall" not in page.text and 'name="confirm"' not in page.text
    )
    fresh = service.world.emu.reset_credentials("service_user", issued["service_user_id"])
    done = service.post(again, page, **{f"field_{k}": v for k, v in fresh.items() if k.startswith("service_user")})
    assert done.status_code == 200 and "Connected" in done.text
    assert service.state(again)["connection_id"] == cid


def test_every_empty_field_is_flagged_at_once(service: Service) -> None:
    made = service.session(profile=service.world.credential_profile("service_user"))
    answer = service.post(made, service.open(made), field_service_user_id="", field_service_user_token=" ")
    assert answer.status_code == 400 and answer.text.count('aria-invalid="true"') == 2
    assert "Enter the Service user ID." in answer.text and "Enter the Service user token." in answer.text
