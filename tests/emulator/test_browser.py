"""The consent page in a real headless browser: Debian's chromium driven by Playwright.

Chromium comes from the system (``.ci/system-packages`` installs it under tox);
Playwright's own browser downloads are never used. The test fails, rather than
skips, when chromium is missing.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.emulator import Flow

from connector_core.emulator import RunningEmulator


class _Callback(http.server.BaseHTTPRequestHandler):
    """The platform's redirect target: records the query and answers a tiny page."""

    hits: list[dict[str, str]]

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/connect/oauth2/hibob/callback":  # the browser's own /favicon.ico
            self.send_response(204)
            self.end_headers()
            return
        query = parse_qs(parts.query)
        self.server.hits.append({k: v[-1] for k, v in query.items()})  # type: ignore[attr-defined]
        self.server.referers.append(self.headers.get("Referer"))  # type: ignore[attr-defined]
        body = b"<!doctype html><title>Connected</title><h1>Back at the platform</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def callback() -> Iterator[tuple[str, list[dict[str, str]], list[str | None]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Callback)
    server.hits = []  # type: ignore[attr-defined]
    server.referers = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/connect/oauth2/hibob/callback"
        yield url, server.hits, server.referers  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _authorize_url(flow: Flow, state: str) -> str:
    query = {
        "response_type": "code",
        "client_id": flow.creds.client_id,
        "redirect_uri": flow.redirect_uri,
        "scope": "employee_data:read employee_data.sensitive:read tasks:write",
        "state": state,
    }
    return f"{flow.endpoints.authorize_url}?{urlencode(query)}"


def test_clicking_allow_lands_on_the_redirect_uri_with_code_and_state(
    emu: RunningEmulator, browser: Any, callback: tuple[str, list[dict[str, str]], list[str | None]]
) -> None:
    redirect_uri, hits, referers = callback
    flow = Flow(emu, redirect_uri=redirect_uri)
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(_authorize_url(flow, "browser-state-1"))

    assert page.title() == "Install Emulator Test App · HiBob emulator"
    text = page.inner_text("main")
    for expected in (
        "emulated-hibob-app",
        "Core employee data",
        "Read employee profiles (people search, employee by id).",
        "Sensitive employee data",
        "Tasks",
        "List, read and complete employee tasks.",
        "All employees",
        "Selected departments",
    ):
        assert expected in text, expected
    # The inline style is allowed by the page's CSP nonce: the Allow button is styled.
    assert page.eval_on_selector("button.allow", "b => getComputedStyle(b).backgroundColor") == "rgb(29, 78, 216)"

    page.check("input[name=audience][value=departments]")
    page.check("input[name='option:departments'][value=Engineering]")
    page.click("button.allow")
    page.wait_for_url(redirect_uri + "?*")

    assert page.inner_text("h1") == "Back at the platform"
    final = parse_qs(urlsplit(page.url).query)
    assert final["state"] == ["browser-state-1"]
    assert hits == [{"code": final["code"][0], "state": "browser-state-1"}]
    assert referers == [None]  # Referrer-Policy: no-referrer
    assert problems == []

    tokens = flow.exchange(hits[0]["code"], redirect_uri=redirect_uri)
    assert tokens.status_code == 200, tokens.text
    employees = flow.search(tokens.json()["access_token"], fields=["work.department"]).json()["employees"]
    assert employees and {e["work"]["department"] for e in employees} == {"Engineering"}
    page.close()


def test_clicking_deny_returns_access_denied(
    emu: RunningEmulator, browser: Any, callback: tuple[str, list[dict[str, str]], list[str | None]]
) -> None:
    redirect_uri, hits, _ = callback
    flow = Flow(emu, redirect_uri=redirect_uri)
    page = browser.new_page()
    page.goto(_authorize_url(flow, "browser-state-2"))
    page.click("button.deny")
    page.wait_for_url(redirect_uri + "?*")
    assert hits == [
        {"error": "access_denied", "error_description": "The user denied the request.", "state": "browser-state-2"}
    ]
    assert emu.installations() == ()
    assert emu.stats.consents == {"deny": 1}
    page.close()
