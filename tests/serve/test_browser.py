"""The connect page in a real browser: Debian's chromium, driven by Playwright, against the app
served by uvicorn on 127.0.0.1, HiBob's emulator and a tiny platform (its redirect target, and
pages that frame the connect page or open it in a popup; :mod:`support.live`).

Each test takes a screenshot of the pages it reaches (into ``tmp_path``; with
``CONNECTOR_SCREENSHOTS=1`` also into ``docs/images/connect/``, the pictures of
docs/connect-page.md). Every page of every test must log no console error: a CSP violation is
one. Chromium comes from the system; the module fails, rather than skips, without it.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from support import REPO, World
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.live import LiveApp, Platform

from connector_core import EndUser, Owner
from connector_core.serve import callback_url, create_app

from .conftest import AUTH, KEY

VIEWPORT = {"width": 800, "height": 600}
SHOTS = REPO / "docs" / "images" / "connect"
#: Read at import: the suite's autouse fixture takes every CONNECTOR_* variable away from the tests.
WRITE_SHOTS = os.environ.get("CONNECTOR_SCREENSHOTS") == "1"
ADA = {"id": "user-ada", "email": "ada@example.com", "display_name": "Ada Lovelace"}
CALLBACK = "/connect/oauth2/hibob/callback"


class Live:
    """The app served for real over the world, the platform beside it, and the platform's
    backend (the API with its key)."""

    def __init__(self, world: World, app: Any, url: str, platform: Platform, api: httpx.Client) -> None:
        self.world = world
        self.app = app
        self.url = url
        self.platform = platform
        self.api = api

    @property
    def done_url(self) -> str:
        return f"{self.platform.origin}/done"

    def session(self, **body: Any) -> dict[str, Any]:
        body.setdefault("end_user", ADA)
        body.setdefault("profile", self.world.profile)
        answer = self.api.post("/v1/connect/sessions", json=body)
        assert answer.status_code == 201, answer.text
        data: dict[str, Any] = answer.json()
        assert data["connect_url"].startswith(f"{self.url}/connect/cs_")
        return data

    def state(self, made: dict[str, Any]) -> dict[str, Any]:
        answer = self.api.get(f"/v1/connect/sessions/{made['id']}")
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data

    def connections(self, **params: str) -> list[str]:
        answer = self.api.get("/v1/connections", params=params)
        assert answer.status_code == 200, answer.text
        return [c["id"] for c in answer.json()["data"]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def live(world: World) -> Iterator[Live]:
    with Platform() as platform, LiveApp.bind() as server:
        app = create_app(
            world.connector,
            api_keys=[KEY],
            public_url=server.url,
            redirect_allow_list=[f"{platform.origin}/done"],
            embed_origins=[platform.origin],
        )
        world.emu.register_redirect_uri(callback_url(server.url, "hibob"))
        server.start(app)
        with httpx.Client(base_url=server.url, headers=AUTH, trust_env=False, timeout=20) as api:
            yield Live(world, app, server.url, platform, api)


class Console:
    """What a browser context's pages (and their frames and popups) logged as errors. Chromium
    logs a page answered with an error status (a 410 page) as a failed resource: those pages'
    own statuses are the tests' to assert, so that one line about them is left out."""

    def __init__(self) -> None:
        self.logged: list[tuple[str, str]] = []
        self.error_pages: set[str] = set()

    def on_console(self, message: Any) -> None:
        if message.type == "error":
            self.logged.append((message.location.get("url", ""), message.text))

    def on_error(self, error: Any) -> None:
        self.logged.append(("", f"uncaught: {error.error}"))

    def on_response(self, response: Any) -> None:
        if response.request.resource_type == "document" and response.status >= 400:
            self.error_pages.add(response.url)

    @property
    def errors(self) -> list[str]:
        return [
            f"{url}: {text}"
            for url, text in self.logged
            if not (url in self.error_pages and text.startswith("Failed to load resource: the server responded"))
        ]


def _context(browser: Any, **options: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, **options)
    console = Console()
    context.on("console", console.on_console)
    context.on("weberror", console.on_error)
    context.on("response", console.on_response)
    context.set_default_timeout(15_000)
    try:
        yield context
        assert console.errors == [], "console errors:\n" + "\n".join(console.errors)
    finally:
        context.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own cookies); no console error may be logged in it."""
    yield from _context(browser)


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


def shoot(page: Any, name: str, tmp_path: Path, *, full_page: bool = True) -> Path:
    """A screenshot of ``page`` (the whole page, or the viewport) as NAME.png: into ``tmp_path``,
    and into docs/images/connect/ with CONNECTOR_SCREENSHOTS=1."""
    path = tmp_path / f"{name}.png"
    if not full_page:
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=full_page)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", name
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 300 and len(data) > 5_000, (name, width, height, len(data))
    if WRITE_SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SHOTS / f"{name}.png")
    return path


def _query(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


def continue_to_hibob(page: Any, live: Live, decision: str = "allow") -> Any:
    """On the connect page: Continue to HiBob, then Allow (or Deny) on the emulator's consent
    page; the response that ends the way back, at the service's callback."""
    page.get_by_role("button", name="Continue to HiBob").click()
    page.wait_for_url(f"{live.world.emu.base_url}/**")
    assert page.title().startswith("Install ")  # the emulator's consent page
    with page.expect_navigation(url=f"{live.url}{CALLBACK}?**") as landed:
        page.click(f"button.{decision}")
    return landed.value


def _heading(page: Any) -> str:
    text: str = page.locator("h1").inner_text()
    return text


# ------------------------------------------------------------------- OAuth


def test_connect_through_hibob_and_come_back_to_the_platform(live: Live, page: Any, tmp_path: Path) -> None:
    made = live.session(redirect_url=f"{live.done_url}?tab=hr")
    opened = page.goto(made["connect_url"])
    assert opened.status == 200 and _heading(page) == "Connect HiBob"
    checklist = page.get_by_role("region", name="Before you connect")
    assert checklist.is_visible() and checklist.locator("li").count() >= 3
    assert "For Ada Lovelace" in page.inner_text("main")
    shoot(page, "connect", tmp_path)

    landed = continue_to_hibob(page, live)
    assert landed.status == 200 and _heading(page) == "Connected"
    assert "HiBob is connected" in page.get_by_role("status").inner_text()
    shoot(page, "connected", tmp_path)
    state = live.state(made)
    assert state["status"] == "completed" and state["provider"] == "hibob"
    cid = state["connection_id"]

    page.get_by_role("link", name="Continue").click()
    page.wait_for_url(f"{live.done_url}?**")
    assert _heading(page) == "Back at the platform"
    assert live.platform.done == [{"tab": "hr", "connection_id": cid, "status": "connected"}]
    assert live.connections(end_user="user-ada") == [cid]


def test_deny_at_hibob_is_a_failure_page_in_plain_words(live: Live, page: Any, tmp_path: Path) -> None:
    made = live.session(redirect_url=live.done_url)
    page.goto(made["connect_url"])
    landed = continue_to_hibob(page, live, "deny")
    assert landed.status == 403 and _heading(page) == "Not connected"
    assert page.get_by_role("alert").inner_text() == "Access was declined at HiBob, so nothing was connected."
    shoot(page, "denied", tmp_path)
    state = live.state(made)
    assert state["status"] == "failed" and state["error"]["code"] == "access_denied"

    page.get_by_role("link", name="Continue").click()
    page.wait_for_url(f"{live.done_url}?**")
    assert live.platform.done == [{"status": "error", "error": "access_denied"}]
    assert live.world.store.list_connections() == ()


def test_an_expired_link_says_so(live: Live, page: Any, tmp_path: Path) -> None:
    made = live.session(expires_in=60)
    live.app.state.sessions.clock = lambda: time.time() + 120
    opened = page.goto(made["connect_url"])
    assert opened.status == 410 and _heading(page) == "This link has expired"
    assert "ask for a new one" in page.get_by_role("alert").inner_text()
    shoot(page, "expired", tmp_path)
    assert live.state(made)["status"] == "expired"


def test_a_used_link_says_so(live: Live, page: Any, tmp_path: Path) -> None:
    made = live.session()
    page.goto(made["connect_url"])
    assert continue_to_hibob(page, live).status == 200
    again = page.goto(made["connect_url"])
    assert again.status == 410 and _heading(page) == "This link was already used"
    assert "Each connect link works once" in page.get_by_role("alert").inner_text()
    shoot(page, "used", tmp_path)
    assert live.state(made)["status"] == "completed"


def test_a_reconnect_asks_to_uninstall_first(live: Live, page: Any, tmp_path: Path) -> None:
    world = live.world
    owner = Owner(EndUser(ADA["id"], ADA["email"], ADA["display_name"]))
    start = world.connector.begin(world.profile, owner=owner)
    cid = world.connector.complete(world.consent(start.url)).connection.id
    made = live.session(connection_id=cid, redirect_url=live.done_url)
    page.goto(made["connect_url"])
    assert _heading(page) == "Reconnect HiBob"
    steps = page.get_by_role("region", name="Before you reconnect")
    assert steps.is_visible() and "Uninstall" in steps.inner_text()
    confirm = page.get_by_label("I have done these steps")
    assert confirm.is_visible() and not confirm.is_checked()
    shoot(page, "reconnect", tmp_path)

    page.get_by_role("button", name="Continue to HiBob").click()  # not ticked: the page says so
    page.wait_for_selector("#error_confirm")
    assert "Tick the box" in page.locator("#error_confirm").inner_text()
    assert page.get_by_label("I have done these steps").get_attribute("aria-invalid") == "true"
    assert live.state(made)["status"] == "pending"

    world.emu.uninstall()
    page.get_by_label("I have done these steps").check()
    assert continue_to_hibob(page, live).status == 200 and _heading(page) == "Connected"
    assert live.state(made)["connection_id"] == cid and live.connections(end_user="user-ada") == [cid]


# --------------------------------------------------------- marketplace install


def test_an_install_begun_in_hibob_is_attached_by_the_platform(live: Live, page: Any, tmp_path: Path) -> None:
    emu = live.world.emu
    endpoints = emu.endpoints("sandbox")
    creds = emu.app.credentials[endpoints.credential_set]
    callback = callback_url(live.url, "hibob")
    url = (
        f"{endpoints.authorize_url}?response_type=code&client_id={creds.client_id}"
        f"&redirect_uri={quote(callback, safe='')}&scope=employee_data:read"
    )
    page.goto(url)
    with page.expect_navigation(url=f"{callback}?**") as landed:
        page.click("button.allow")
    assert landed.value.status == 200 and "state" not in _query(page.url)
    assert _heading(page) == "HiBob is installed"
    assert "go back to the platform and sign in" in page.get_by_role("status").inner_text()
    (conn,) = live.world.store.list_connections()
    assert dict(conn.identity)["companyId"] in page.inner_text("main")
    shoot(page, "installed", tmp_path)

    assert live.connections(unclaimed="true") == [conn.id]
    assert live.connections(end_user="user-ada") == []
    attached = live.api.put(f"/v1/connections/{conn.id}/owner", json={"end_user": ADA})
    assert attached.status_code == 200, attached.text
    assert live.connections(end_user="user-ada") == [conn.id]
    assert live.connections(unclaimed="true") == []


# ------------------------------------------------------------ service users


def test_a_service_user_connects_after_a_wrong_token(live: Live, page: Any, tmp_path: Path) -> None:
    made = live.session(profile=live.world.credential_profile("service_user"), redirect_url=live.done_url)
    issued = live.world.issue("service_user")
    page.goto(made["connect_url"])
    assert _heading(page) == "Connect HiBob"
    ident = page.get_by_label("Service user ID", exact=True)
    token = page.get_by_label("Service user token", exact=True)
    assert token.get_attribute("type") == "password"
    ident.fill(issued["service_user_id"])
    token.fill("wrong-token-value")
    with page.expect_navigation() as refused:
        page.get_by_role("button", name="Connect", exact=True).click()
    assert refused.value.status == 400
    alert = page.locator("#form-error")
    assert alert.is_visible() and "did not accept these details" in alert.inner_text()
    assert alert.inner_text().count("Reset the service user's token") == 1  # the provider's advice, once
    assert page.get_by_label("Service user ID", exact=True).input_value() == issued["service_user_id"]
    assert page.get_by_label("Service user token", exact=True).input_value() == ""
    assert "wrong-token-value" not in page.content()
    shoot(page, "service-user-error", tmp_path)
    assert live.state(made)["status"] == "pending"

    page.get_by_label("Service user token", exact=True).fill(issued["service_user_token"])
    with page.expect_navigation() as done:
        page.get_by_role("button", name="Connect", exact=True).click()
    assert done.value.status == 200 and _heading(page) == "Connected"
    assert issued["service_user_token"] not in page.content()
    state = live.state(made)
    assert state["status"] == "completed"
    assert live.world.store.get_connection(state["connection_id"]).auth_type == "service_user"


def _events(page: Any, count: int) -> list[dict[str, Any]]:
    page.wait_for_function(f"window.__events.length >= {count}")
    events: list[dict[str, Any]] = page.evaluate("window.__events")
    return events


def test_an_embedded_form_posts_connected_then_closed_to_the_platform(live: Live, page: Any, tmp_path: Path) -> None:
    profile = live.world.credential_profile("service_user")
    issued = live.world.issue("service_user")
    made = live.session(profile=profile)
    page.goto(f"{live.platform.origin}/embed?src={quote(made['connect_url'], safe='')}")
    frame = page.frame_locator("#frame")
    frame.get_by_label("Service user ID", exact=True).fill(issued["service_user_id"])
    frame.get_by_label("Service user token", exact=True).fill(issued["service_user_token"])
    shoot(page, "embedded", tmp_path)
    frame.get_by_role("button", name="Connect", exact=True).click()
    (event,) = _events(page, 1)
    cid = live.state(made)["connection_id"]
    assert cid and event == {"origin": live.url, "source": "frame", "data": {"type": "connected", "connection_id": cid}}
    assert frame.locator("h1").inner_text() == "Connected"

    cancelled = live.session(profile=profile)
    page.goto(f"{live.platform.origin}/embed?src={quote(cancelled['connect_url'], safe='')}")
    page.frame_locator("#frame").get_by_role("button", name="Cancel").click()
    (event,) = _events(page, 1)
    assert event == {"origin": live.url, "source": "frame", "data": {"type": "closed", "connection_id": None}}
    assert page.frame_locator("#frame").locator("h1").inner_text() == "Cancelled"
    shoot(page, "cancelled", tmp_path, full_page=False)
    state = live.state(cancelled)
    assert state["status"] == "failed" and state["error"]["code"] == "cancelled"


def test_a_popup_posts_connected_to_its_opener(live: Live, page: Any) -> None:
    issued = live.world.issue("service_user")
    made = live.session(profile=live.world.credential_profile("service_user"))
    page.goto(f"{live.platform.origin}/popup?src={quote(made['connect_url'], safe='')}")
    with page.expect_popup() as opened:
        page.click("#open")
    popup = opened.value
    popup.wait_for_load_state()
    assert popup.url == made["connect_url"]
    popup.get_by_label("Service user ID", exact=True).fill(issued["service_user_id"])
    popup.get_by_label("Service user token", exact=True).fill(issued["service_user_token"])
    popup.get_by_role("button", name="Connect", exact=True).click()
    (event,) = _events(page, 1)
    cid = live.state(made)["connection_id"]
    assert event == {"origin": live.url, "source": "popup", "data": {"type": "connected", "connection_id": cid}}


# --------------------------------------------------------------- accessibility


def test_the_keyboard_reaches_the_fields_then_connect_then_cancel(live: Live, page: Any) -> None:
    made = live.session(profile=live.world.credential_profile("service_user"))
    page.goto(made["connect_url"])
    inputs = page.locator("input:not([type=hidden])")
    assert inputs.count() == 2
    for i in range(inputs.count()):  # every input is named by a <label>
        field = inputs.nth(i)
        label = field.evaluate("e => e.labels.length === 1 ? e.labels[0].innerText : ''")
        assert label and page.get_by_label(label, exact=True).get_attribute("id") == field.get_attribute("id")
    assert page.evaluate("document.activeElement === document.body")  # no autofocus: the page is read from the top
    reached = []
    for _ in range(20):
        page.keyboard.press("Tab")
        here = page.evaluate(
            "(() => { const e = document.activeElement;"
            " return e.id || (e.tagName + ':' + (e.innerText || e.getAttribute('href') || '')); })()"
        )
        reached.append(here)
        if here == "BUTTON:Cancel":
            break
    controls = [r for r in reached if not r.startswith("A:")]  # the checklist's links come first
    assert controls == ["field_service_user_id", "field_service_user_token", "BUTTON:Connect", "BUTTON:Cancel"]
    assert reached[-len(controls) :] == controls


def test_the_oauth_flow_works_without_javascript(live: Live, browser: Any, tmp_path: Path) -> None:
    for context in _context(browser, java_script_enabled=False):
        page = context.new_page()
        made = live.session(redirect_url=live.done_url)
        page.goto(made["connect_url"])
        assert _heading(page) == "Connect HiBob"
        assert continue_to_hibob(page, live).status == 200 and _heading(page) == "Connected"
        state = live.state(made)
        assert state["status"] == "completed"
        page.get_by_role("link", name="Continue").click()
        page.wait_for_url(f"{live.done_url}?**")
        assert live.platform.done == [{"connection_id": state["connection_id"], "status": "connected"}]


def test_the_pages_fit_a_phone_screen(live: Live, page: Any, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    made = live.session(profile=live.world.credential_profile("service_user"))
    page.goto(made["connect_url"])
    page.get_by_role("button", name="Connect", exact=True).click()  # empty fields: their errors shown
    page.wait_for_selector("#error_service_user_id")
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 360, f"the page is {wide}px wide on a 360px screen"
    shoot(page, "phone", tmp_path)
