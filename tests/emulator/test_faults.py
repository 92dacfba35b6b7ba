"""Fault injection: every kind, on the OAuth and the API endpoints, and switching them off."""

from __future__ import annotations

import email.utils
import json
import time

import httpx
import pytest
from support.emulator import Flow

from connector_core import UnknownNameError
from connector_core.emulator import Fault, FaultKind, RunningEmulator


@pytest.fixture
def token(flow: Flow) -> str:
    access: str = flow.connect()["access_token"]
    return access


@pytest.mark.parametrize("status", [500, 502, 503])
def test_error_statuses_on_the_api(emu: RunningEmulator, flow: Flow, token: str, status: int) -> None:
    emu.faults.status("POST /people/search", status, times=2)
    for _ in range(2):
        failed = flow.search(token)
        assert failed.status_code == status
        assert failed.json() == {"key": "internal_error", "error": f"Injected fault: HTTP {status}."}
    assert flow.search(token).status_code == 200
    assert emu.stats.faults_injected == {"status": 2}
    assert emu.faults.armed == ()


def test_error_statuses_on_the_token_endpoint(emu: RunningEmulator, flow: Flow) -> None:
    code = flow.code()
    emu.faults.status("token", 503)
    unavailable = flow.exchange(code)
    assert unavailable.status_code == 503
    assert unavailable.json()["error"] == "temporarily_unavailable"
    assert flow.exchange(code).status_code == 200  # the failed request never reached the server


def test_429_with_retry_after_seconds_and_rate_limit_headers(emu: RunningEmulator, flow: Flow, token: str) -> None:
    emu.faults.rate_limited("api", retry_after=7)
    limited = flow.search(token)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.headers["x-ratelimit-limit"] == "50"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert int(limited.headers["x-ratelimit-reset"]) > 0
    assert limited.json()["key"] == "too_many_requests"


def test_429_with_an_http_date_and_no_rate_limit_headers(emu: RunningEmulator, flow: Flow) -> None:
    before = time.time()
    emu.faults.rate_limited("token", retry_after=30, http_date=True, rate_limit_headers=False)
    limited = flow.refresh("whatever")
    assert limited.status_code == 429
    when = email.utils.parsedate_to_datetime(limited.headers["retry-after"])
    assert when.tzinfo is not None
    assert when.timestamp() >= int(before)
    assert "x-ratelimit-limit" not in limited.headers
    assert limited.json()["error_description"].startswith("Too many requests")


def test_slow_responses_time_clients_out(emu: RunningEmulator, flow: Flow, token: str) -> None:
    emu.faults.slow("api", 2.0)
    with pytest.raises(httpx.ReadTimeout):
        flow.http.post(
            flow.endpoints.api_base_url + "/people/search",
            headers={"Authorization": f"Bearer {token}"},
            json={},
            timeout=0.2,
        )
    assert flow.search(token).status_code == 200
    assert emu.stats.faults_injected == {"slow": 1}


def test_a_slow_refresh_that_times_out_still_rotated_the_token(emu: RunningEmulator, flow: Flow) -> None:
    tokens = flow.connect()
    emu.faults.slow("token", 1.0, after_processing=True)
    with pytest.raises(httpx.ReadTimeout):
        flow.http.post(
            flow.endpoints.token_url,
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=flow.basic,
            timeout=0.2,
        )
    assert flow.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert emu.stats.token_requests == {"authorization_code": 1, "refresh_token": 2}


def test_html_error_bodies(emu: RunningEmulator, flow: Flow, token: str) -> None:
    emu.faults.html_error("POST /people/search", 502)
    page = flow.search(token)
    assert page.status_code == 502
    assert page.headers["content-type"] == "text/html"
    assert "<h1>502 Bad Gateway</h1>" in page.text
    with pytest.raises(json.JSONDecodeError):
        page.json()


def test_truncated_json(emu: RunningEmulator, flow: Flow, token: str) -> None:
    whole = flow.search(token).content
    emu.faults.truncated_json("/people/search")
    cut = flow.search(token)
    assert cut.status_code == 200
    assert cut.content == whole[: len(whole) // 2]
    with pytest.raises(json.JSONDecodeError):
        cut.json()


def test_an_incomplete_body_breaks_the_connection(emu: RunningEmulator, flow: Flow, token: str) -> None:
    emu.faults.incomplete_body("api")
    with pytest.raises(httpx.RemoteProtocolError):
        flow.search(token)
    assert flow.search(token).status_code == 200


def test_dropped_connections(emu: RunningEmulator, flow: Flow, token: str) -> None:
    emu.faults.drop_connection("*", times=None)
    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            flow.search(token)
    with pytest.raises(httpx.RemoteProtocolError):
        flow.refresh("x")
    emu.faults.clear()
    assert flow.search(token).status_code == 200
    assert emu.stats.faults_injected == {"drop_connection": 3}


def test_a_dropped_exchange_that_was_processed_uses_up_the_code(emu: RunningEmulator, flow: Flow) -> None:
    code = flow.code()
    emu.faults.drop_connection("token", after_processing=True)
    with pytest.raises(httpx.RemoteProtocolError):
        flow.exchange(code)
    again = flow.exchange(code)
    assert again.json()["error"] == "invalid_grant"


def test_oversized_bodies(emu: RunningEmulator, flow: Flow, token: str) -> None:
    emu.faults.oversized("api", size=3 * 1024 * 1024)
    big = flow.search(token)
    assert big.status_code == 200
    assert len(big.content) >= 3 * 1024 * 1024


def test_faults_on_authorize_and_until_cleared(emu: RunningEmulator, flow: Flow) -> None:
    emu.faults.inject("authorize", Fault.error_status(500), times=None)
    assert flow.authorize().status_code == 500
    assert flow.authorize().status_code == 500
    assert [(endpoint, fault.kind) for endpoint, fault, _ in emu.faults.armed] == [("authorize", FaultKind.STATUS)]
    emu.faults.clear("token")
    assert flow.authorize().status_code == 500
    emu.faults.clear("authorize")
    assert flow.authorize().status_code == 302


def test_fault_arguments_are_checked(emu: RunningEmulator) -> None:
    with pytest.raises(UnknownNameError, match="emulator endpoint 'POST /nothing'"):
        emu.faults.status("POST /nothing")
    with pytest.raises(ValueError, match="times"):
        emu.faults.status("api", times=0)
    with pytest.raises(ValueError, match="status"):
        Fault.error_status(42)
    with pytest.raises(ValueError, match="delay"):
        Fault.slow(-1)
