"""The built-in emulator's OAuth server, driven end to end with plain httpx.

Every test runs a real emulator on a free loopback port and fails if anything
inside it crashed (see ``support.emulator.running``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from support.emulator import REDIRECT, Flow, hibob, query_of, running

from connector_core import (
    ClientAuthMethod,
    DeclarationError,
    Environment,
    OAuth2AuthorizationCode,
    Provider,
    ProviderRegistry,
    Scope,
    ScopeCatalogue,
    ScopeGroup,
    UnknownNameError,
    ValidationError,
    hookimpl,
    load_plugins,
)
from connector_core.emulator import (
    AppRegistration,
    EmulatorError,
    EmulatorSpec,
    ResourceEndpoint,
    ResourceRequest,
    ResourceResponse,
    RunningEmulator,
    SnapshotError,
    start_emulator,
)
from connector_core.testing import http_client


def hibob_spec(**changes: Any) -> EmulatorSpec:
    from connector_hibob.emulator import emulator_spec

    return attrs.evolve(emulator_spec(), **changes)


def start_hibob(spec: EmulatorSpec, **kwargs: Any) -> RunningEmulator:
    plugins = hibob()
    return start_emulator(plugins.declaration("hibob"), spec, **kwargs)


# ------------------------------------------------------------------- the happy path


def test_full_flow_with_scripted_consent_and_basic_auth(emu: RunningEmulator, flow: Flow) -> None:
    answer = query_of(flow.authorize("employee_data:read tasks:write", state="xyz-123"))
    assert answer["state"] == "xyz-123"
    assert set(answer) == {"code", "state"}
    response = flow.exchange(answer["code"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["scope"] == "employee_data:read tasks:write"
    assert tokens["companyId"] == emu.default_company_id
    assert tokens["access_token"] and tokens["refresh_token"]
    # The connection test a platform runs: POST {api_base_url}/people/search.
    assert flow.endpoints.api_base_url.endswith("/v1")
    found = flow.search(tokens["access_token"], fields=["root.id"], showInactive=False)
    assert found.status_code == 200
    assert len(found.json()["employees"]) == 22
    assert flow.api("GET", "/tasks", tokens["access_token"]).status_code == 200
    stats = emu.stats
    assert stats.token_requests == {"authorization_code": 1}
    assert stats.resource_calls == {"POST /people/search": 1, "GET /tasks": 1}
    assert stats.consents == {"allow": 1}
    assert [i.company_id for i in emu.installations()] == [emu.default_company_id]


def test_the_test_app_has_an_app_id_and_credentials_per_set(emu: RunningEmulator) -> None:
    assert emu.app.app_id == "emulated-hibob-app"
    assert set(emu.app.credentials) == {"development", "production"}
    dev, prod = emu.app.credentials["development"], emu.app.credentials["production"]
    assert dev.client_id != prod.client_id
    assert dev.client_secret.reveal() != prod.client_secret.reveal()
    assert "***" in repr(dev.client_secret) and dev.client_secret.reveal() not in repr(dev)
    assert len(emu.app.scopes) == 27  # every catalogue scope is configured on the app by default
    assert emu.base_url.startswith("http://127.0.0.1:")
    info = httpx.get(emu.base_url + "/emulator/info", trust_env=False).json()
    assert info["app"]["app_id"] == emu.app.app_id
    assert dev.client_secret.reveal() not in json.dumps(info)


def test_client_secret_post_is_refused_unless_the_spec_accepts_it(emu: RunningEmulator, flow: Flow) -> None:
    refused = flow.exchange(flow.code(), method="post")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert "client_secret_basic" in refused.json()["error_description"]
    spec = hibob_spec(client_auth_methods=("client_secret_basic", "client_secret_post"))
    with start_hibob(spec) as both:
        client = Flow(both)
        accepted = client.exchange(client.code(), method="post")
        assert accepted.status_code == 200, accepted.text
        assert client.refresh(accepted.json()["refresh_token"], method="basic").status_code == 200


def test_refresh_rotates_and_the_old_refresh_token_stops_working(emu: RunningEmulator, flow: Flow) -> None:
    tokens = flow.connect()
    first = flow.refresh(tokens["refresh_token"])
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert rotated["access_token"] != tokens["access_token"]
    assert rotated["scope"] == "employee_data:read"
    assert rotated["companyId"] == emu.default_company_id
    again = flow.refresh(tokens["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert "already used" in again.json()["error_description"]
    assert flow.search(rotated["access_token"]).status_code == 200
    wider = flow.http.post(
        flow.endpoints.token_url,
        data={"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"], "scope": "tasks:write"},
        auth=flow.basic,
    )
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"
    assert wider.json()["error_description"]
    assert flow.refresh(rotated["refresh_token"]).status_code == 200
    assert emu.stats.token_requests == {"authorization_code": 1, "refresh_token": 4}


def test_without_rotation_the_refresh_token_is_reused() -> None:
    with start_hibob(hibob_spec(rotate_refresh_tokens=False)) as emu:
        flow = Flow(emu)
        tokens = flow.connect()
        for _ in range(2):
            response = flow.refresh(tokens["refresh_token"])
            assert response.status_code == 200
            assert response.json()["refresh_token"] == tokens["refresh_token"]


def test_concurrent_refreshes_with_one_rotating_token_succeed_once(emu: RunningEmulator, flow: Flow) -> None:
    tokens = flow.connect()
    statuses: list[int] = []

    def refresh() -> None:
        with http_client(timeout=10) as client:
            response = client.post(
                flow.endpoints.token_url,
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                auth=flow.basic,
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=refresh) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [400] * 7


# ----------------------------------------------------------------------- revocation


def test_revoking_an_access_token(flow: Flow) -> None:
    tokens = flow.connect()
    assert flow.revoke(tokens["access_token"], "access_token").status_code == 200
    denied = flow.search(tokens["access_token"])
    assert denied.status_code == 401
    assert denied.json() == {"key": "unauthorized", "error": "The access token is no longer valid: it was revoked."}
    assert "invalid_token" in denied.headers["www-authenticate"]
    assert flow.refresh(tokens["refresh_token"]).status_code == 200


def test_revoking_a_refresh_token_revokes_its_grant(flow: Flow) -> None:
    tokens = flow.connect()
    assert flow.revoke(tokens["refresh_token"]).status_code == 200
    assert flow.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert flow.search(tokens["access_token"]).status_code == 401


def test_revocation_errors(flow: Flow) -> None:
    assert flow.revoke("no-such-token").status_code == 200  # RFC 7009 section 2.2
    missing = flow.http.post(flow.endpoints.revocation_url, data={}, auth=flow.basic)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    anonymous = flow.http.post(flow.endpoints.revocation_url, data={"token": "x"})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"
    assert anonymous.json()["error_description"]


# ------------------------------------------------------------ install and uninstall


def test_uninstall_revokes_tokens_and_the_app_can_be_installed_again(emu: RunningEmulator, flow: Flow) -> None:
    tokens = flow.connect()
    company = tokens["companyId"]
    assert emu.uninstall() == 1
    assert emu.installations() == ()
    denied = flow.search(tokens["access_token"])
    assert denied.status_code == 401
    assert "uninstalled" in denied.json()["error"]
    refused = flow.refresh(tokens["refresh_token"])
    assert refused.status_code == 400
    assert "uninstalled" in refused.json()["error_description"]
    again = flow.connect()
    assert again["companyId"] == company  # stable across re-installs
    assert flow.search(again["access_token"]).status_code == 200
    assert emu.uninstall() == 1
    assert emu.uninstall() == 0
    assert emu.stats.uninstalls == 3


def test_uninstall_endpoint(emu: RunningEmulator, flow: Flow) -> None:
    tokens = flow.connect()
    http = flow.http
    wrong = http.post(emu.uninstall_url, json={"provider": "acme"})
    assert wrong.status_code == 400
    unknown = http.post(emu.uninstall_url, json={"company": "000000"})
    assert unknown.status_code == 404
    assert "unknown company" in unknown.json()["error_description"]
    assert http.get(emu.uninstall_url).status_code == 405
    done = http.post(emu.uninstall_url, json={"provider": "hibob", "company": tokens["companyId"]})
    assert done.status_code == 200
    assert done.json()["uninstalled"] == 1
    assert flow.search(tokens["access_token"]).status_code == 401
    form = http.post(emu.uninstall_url, data={"credential_set": "development"})
    assert form.json() == {
        "provider": "hibob",
        "company_id": emu.default_company_id,
        "credential_set": "development",
        "uninstalled": 0,
    }


def test_authorizing_an_installed_app_fails_until_uninstalled(emu: RunningEmulator, flow: Flow) -> None:
    flow.connect()
    answer = query_of(flow.authorize(state="second"))
    assert answer["error"] == "access_denied"
    assert "uninstall it first" in answer["error_description"].lower()
    assert answer["state"] == "second"
    assert "code" not in answer
    # The Production install is a separate installation.
    production = Flow(emu, "production")
    assert "code" in query_of(production.authorize())
    assert len(emu.installations()) == 2


def test_another_company_installs_separately(emu: RunningEmulator, flow: Flow) -> None:
    first = flow.connect()
    other = emu.add_company()
    assert other.id != first["companyId"]
    second = flow.connect(headers={"X-Emulator-Company": other.id})
    assert second["companyId"] == other.id
    ids = {e["id"] for e in flow.search(second["access_token"]).json()["employees"]}
    assert ids.isdisjoint({e["id"] for e in flow.search(first["access_token"]).json()["employees"]})
    unknown = flow.authorize(headers={"X-Emulator-Company": "999"})
    assert unknown.status_code == 400
    assert "Unknown company" in unknown.json()["error_description"]


# ------------------------------------------------------------------ error responses


def test_scope_not_configured_on_the_app_is_invalid_scope() -> None:
    spec = hibob_spec(app=attrs.evolve(hibob_spec().app, scopes=("employee_data:read", "company.metadata:read")))
    with start_hibob(spec) as emu:
        flow = Flow(emu)
        answer = query_of(flow.authorize("employee_data:read tasks:write", state="s"))
        assert answer["error"] == "invalid_scope"
        assert "tasks:write" in answer["error_description"]
        assert "not configured on app emulated-hibob-app" in answer["error_description"]
        assert answer["state"] == "s"
        assert emu.installations() == ()


def test_unknown_scope_is_invalid_scope(flow: Flow) -> None:
    answer = query_of(flow.authorize("employee_data:read tasks:read"))
    assert answer["error"] == "invalid_scope"
    assert "Unknown scope(s): tasks:read" in answer["error_description"]


def test_pkce_is_verified(flow: Flow) -> None:
    wrong = flow.exchange(flow.code(), verifier="x" * 50)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert wrong.json()["error_description"]


def test_pkce_verifier_is_required_when_a_challenge_was_sent(emu: RunningEmulator, flow: Flow) -> None:
    code = flow.code()
    flow.verifier = None
    missing = flow.exchange(code)
    assert missing.status_code == 400
    assert missing.json() == {"error": "invalid_request", "error_description": "Code verifier required."}


def test_without_pkce_the_flow_still_works_unless_the_spec_requires_it(flow: Flow) -> None:
    flow.verifier = None
    assert flow.exchange(flow.code(pkce=False)).status_code == 200
    with start_hibob(hibob_spec(pkce_required=True)) as emu:
        answer = query_of(Flow(emu).authorize(pkce=False))
        assert answer["error"] == "invalid_request"
        assert answer["error_description"] == "Code challenge required."


def test_wrong_client_secret_is_invalid_client(flow: Flow) -> None:
    code = flow.code()
    response = flow.http.post(
        flow.endpoints.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": flow.verifier,
        },
        auth=(flow.creds.client_id, "not-the-secret"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert flow.exchange(code).status_code == 200  # the failed attempt did not use up the code


def test_a_replayed_code_fails_and_revokes_the_tokens_issued_from_it(flow: Flow) -> None:
    code = flow.code()
    tokens = flow.exchange(code).json()
    replay = flow.exchange(code)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert "already used" in replay.json()["error_description"]
    assert flow.search(tokens["access_token"]).status_code == 401
    assert flow.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_codes_expire(emu: RunningEmulator, flow: Flow) -> None:
    code = flow.code()
    emu.advance_clock(61)
    response = flow.exchange(code)
    assert response.json() == {"error": "invalid_grant", "error_description": "The authorization code has expired."}


def test_access_tokens_expire_and_refresh_works(emu: RunningEmulator, flow: Flow) -> None:
    emu.set_access_token_lifetime(5)
    tokens = flow.connect()
    assert tokens["expires_in"] == 5
    assert flow.search(tokens["access_token"]).status_code == 200
    emu.advance_clock(6)
    expired = flow.search(tokens["access_token"])
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]
    fresh = flow.refresh(tokens["refresh_token"]).json()
    assert flow.search(fresh["access_token"]).status_code == 200


def test_the_access_token_lifetime_is_a_start_option() -> None:
    with running(access_token_lifetime=42) as emu:
        assert Flow(emu).connect()["expires_in"] == 42


def test_a_missing_scope_is_403_in_the_providers_error_shape(flow: Flow) -> None:
    token = flow.connect("employee_data:read")["access_token"]
    denied = flow.api("GET", "/tasks", token)
    assert denied.status_code == 403
    body = denied.json()
    assert set(body) == {"key", "error"}
    assert body["key"] == "forbidden"
    assert "tasks:write" in body["error"]
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]


def test_bad_bearer_tokens_are_401(flow: Flow) -> None:
    assert flow.search(None).status_code == 401
    assert flow.search("not-a-token").json() == {"key": "unauthorized", "error": "The access token is unknown."}
    refresh = flow.connect()["refresh_token"]
    assert flow.search(refresh).status_code == 401  # a refresh token is not an access token
    production_token = Flow(flow.emu, "production").connect()["access_token"]
    wrong_env = flow.search(production_token)
    assert wrong_env.status_code == 401
    assert "production credentials" in wrong_env.json()["error"]


def test_clients_belong_to_their_environment(emu: RunningEmulator, flow: Flow) -> None:
    production = emu.app.credentials["production"]
    response = flow.http.get(
        flow.endpoints.authorize_url,
        params={"response_type": "code", "client_id": production.client_id, "redirect_uri": REDIRECT},
        headers={"X-Emulator-Consent": "allow"},
    )
    assert response.status_code == 400
    assert "production credentials" in response.json()["error_description"]
    code = flow.code()
    stolen = flow.http.post(
        flow.endpoints.token_url,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(production.client_id, production.client_secret.reveal()),
    )
    assert stolen.status_code == 401
    assert "development credentials" in stolen.json()["error_description"]


def test_deny_redirects_with_access_denied(emu: RunningEmulator, flow: Flow) -> None:
    answer = query_of(flow.authorize(consent="deny", state="d1"))
    assert answer == {
        "error": "access_denied",
        "error_description": "The user denied the request.",
        "state": "d1",
    }
    assert emu.installations() == ()
    assert emu.stats.consents == {"deny": 1}


def test_scripted_consent_by_query_parameter(flow: Flow) -> None:
    response = flow.authorize(consent=None, params={"emulator_consent": "allow"})
    assert "code" in query_of(response)


TOKEN_ERRORS = [
    pytest.param({"json": {"grant_type": "authorization_code"}}, 400, "invalid_request", id="json-body"),
    pytest.param({"data": {"code": "x"}}, 400, "unsupported_grant_type", id="no-grant-type"),
    pytest.param({"data": {"grant_type": "password", "username": "a"}}, 400, "unsupported_grant_type", id="password"),
    pytest.param({"data": {"grant_type": "client_credentials"}}, 400, "unsupported_grant_type", id="client-creds"),
    pytest.param({"data": {"grant_type": "authorization_code"}}, 400, "invalid_request", id="no-code"),
    pytest.param({"data": {"grant_type": "refresh_token"}}, 400, "invalid_request", id="no-refresh-token"),
    pytest.param({"data": {"grant_type": "authorization_code", "code": "nope"}}, 400, "invalid_grant", id="bad-code"),
    pytest.param({"content": b"grant_type=%zz", "form": True}, 400, "invalid_request", id="bad-encoding"),
    pytest.param({"content": b"\xff\xfe", "form": True}, 400, "invalid_request", id="not-utf8"),
    pytest.param(
        {"data": {"grant_type": "authorization_code", "code": "a", "client_secret": "s"}},
        400,
        "invalid_request",
        id="two-auth-methods",
    ),
    pytest.param({"query": "grant_type=refresh_token"}, 400, "invalid_request", id="query-on-post"),
]


@pytest.mark.parametrize(("request_kwargs", "status", "error"), TOKEN_ERRORS)
def test_malformed_token_requests_get_rfc6749_errors(
    flow: Flow, request_kwargs: dict[str, Any], status: int, error: str
) -> None:
    kwargs = dict(request_kwargs)
    url = flow.endpoints.token_url
    if "query" in kwargs:
        url += "?" + kwargs.pop("query")
        kwargs["data"] = {"grant_type": "refresh_token", "refresh_token": "x"}
    if kwargs.pop("form", False):
        kwargs["headers"] = {"Content-Type": "application/x-www-form-urlencoded"}
    response = flow.http.post(url, auth=flow.basic, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_token_endpoint_client_authentication_errors(flow: Flow) -> None:
    url = flow.endpoints.token_url
    data = {"grant_type": "refresh_token", "refresh_token": "x"}
    for headers in (
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic " + "bm9jb2xvbg=="},  # "nocolon"
        {"Authorization": "Bearer abc"},
        {},
    ):
        response = flow.http.post(url, data=data, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"] == "invalid_client"
        assert response.json()["error_description"]
    get = flow.http.get(url)
    assert get.status_code == 405
    assert get.headers["allow"] == "POST"
    assert get.json()["error"] == "invalid_request"


AUTHORIZE_FATAL = [
    pytest.param({"client_id": None}, "Missing client_id", id="no-client-id"),
    pytest.param({"client_id": "unknown"}, "Invalid client_id", id="unknown-client"),
    pytest.param({"redirect_uri": "https://evil.example/cb"}, "Mismatching redirect URI", id="unregistered-redirect"),
    pytest.param({"redirect_uri": "not a url"}, "Invalid redirect URI", id="relative-redirect"),
]


@pytest.mark.parametrize(("override", "message"), AUTHORIZE_FATAL)
def test_untrusted_authorize_requests_are_not_redirected(
    flow: Flow, override: dict[str, str | None], message: str
) -> None:
    params = {"response_type": "code", "client_id": flow.creds.client_id, "redirect_uri": REDIRECT, "state": "s"}
    for key, value in override.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    scripted = flow.http.get(flow.endpoints.authorize_url, params=params, headers={"X-Emulator-Consent": "allow"})
    assert scripted.status_code == 400
    assert message in scripted.json()["error_description"]
    browser = flow.http.get(flow.endpoints.authorize_url, params=params)
    assert browser.status_code == 400
    assert browser.headers["content-type"].startswith("text/html")
    assert message in browser.text
    assert "location" not in browser.headers


AUTHORIZE_REDIRECTED = [
    pytest.param({"response_type": None}, "invalid_request", id="no-response-type"),
    pytest.param({"response_type": "token"}, "unsupported_response_type", id="implicit"),
    pytest.param({"code_challenge_method": "S512"}, "invalid_request", id="bad-pkce-method"),
]


@pytest.mark.parametrize(("override", "error"), AUTHORIZE_REDIRECTED)
def test_bad_authorize_requests_redirect_with_an_error(flow: Flow, override: dict[str, str | None], error: str) -> None:
    params = {
        "response_type": "code",
        "client_id": flow.creds.client_id,
        "redirect_uri": REDIRECT,
        "state": "st",
        "code_challenge": "a" * 43,
    }
    for key, value in override.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    answer = query_of(
        flow.http.get(flow.endpoints.authorize_url, params=params, headers={"X-Emulator-Consent": "allow"})
    )
    assert answer["error"] == error
    assert answer["error_description"]
    assert answer["state"] == "st"


def test_malformed_authorize_queries(emu: RunningEmulator, flow: Flow) -> None:
    url = flow.endpoints.authorize_url
    bad = flow.http.get(url + "?client_id=%zz", headers={"X-Emulator-Consent": "allow"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_request"
    twice = flow.http.get(
        f"{url}?client_id={flow.creds.client_id}&client_id=x&response_type=code",
        headers={"X-Emulator-Consent": "allow"},
    )
    assert twice.status_code == 400
    assert "Duplicate client_id" in twice.json()["error_description"]
    odd = flow.authorize(consent="maybe")
    assert odd.status_code == 400
    assert "allow or deny" in odd.json()["error_description"]
    assert flow.http.post(url).status_code == 405


def test_redirect_uri_rules() -> None:
    registered = "https://platform.example/connect/oauth2/hibob/callback"
    with running(redirect_uris=[registered], allow_loopback_redirects=False) as emu:
        assert emu.redirect_uris == (registered,)
        flow = Flow(emu)
        assert flow.authorize().status_code == 400  # loopback URIs need registering now
        emu.register_redirect_uri("http://127.0.0.1:1/connect/oauth2/hibob/callback")
        assert "code" in query_of(flow.authorize())  # RFC 8252 section 7.3: any port
        other_path = Flow(emu, redirect_uri="http://127.0.0.1:8765/elsewhere")
        assert other_path.authorize().status_code == 400
        # Without redirect_uri the server would use the app's one registered URI; there are two now.
        params = {"response_type": "code", "client_id": flow.creds.client_id}
        omitted = flow.http.get(flow.endpoints.authorize_url, params=params, headers={"X-Emulator-Consent": "allow"})
        assert omitted.status_code == 400
        assert omitted.json()["error_description"] == "Missing redirect URI."


def test_the_default_redirect_uri_is_the_providers_callback(emu: RunningEmulator) -> None:
    assert emu.redirect_uris == ("https://api.stackone.com/connect/oauth2/hibob/callback",)
    flow = Flow(emu, redirect_uri=emu.redirect_uris[0])
    params = {"response_type": "code", "client_id": flow.creds.client_id, "state": "s"}
    response = flow.http.get(flow.endpoints.authorize_url, params=params, headers={"X-Emulator-Consent": "allow"})
    assert response.headers["location"].startswith(emu.redirect_uris[0] + "?code=")
    code = query_of(response)["code"]
    assert flow.exchange(code, redirect_uri=None).status_code == 200


def test_a_redirect_uri_sent_at_authorize_must_be_repeated(flow: Flow) -> None:
    code = flow.code()
    missing = flow.exchange(code, redirect_uri=None)
    assert missing.status_code == 400
    assert "redirect_uri is required" in missing.json()["error_description"]
    other = flow.exchange(code, redirect_uri="http://127.0.0.1:9/other")
    assert other.status_code == 400
    assert other.json()["error_description"] == "Mismatching redirect URI."


def test_oauthlib_insecure_transport_is_never_switched_on(flow: Flow) -> None:
    flow.connect()
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


# -------------------------------------------------------------------- consent page


def _request_id(html: str) -> str:
    found = re.search(r'name="request_id" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_consent_page_over_plain_http(emu: RunningEmulator, flow: Flow) -> None:
    page = flow.authorize("employee_data:read employee_data.sensitive:read tasks:write", consent=None)
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert "<script" not in html
    for text in (
        "Emulator Test App",
        "emulated-hibob-app",
        "Core employee data",
        "Read employee profiles (people search, employee by id).",
        "Sensitive employee data",
        "sensitive</span>",
        "List, read and complete employee tasks.",
        "All employees",
        "Selected departments",
        'value="allow"',
        'value="deny"',
        "You allow all of it or none.",
    ):
        assert text in html, text
    assert "Goals" not in html  # only the requested feature areas
    consent_url = emu.base_url + "/sandbox/oauth2/consent"
    request_id = _request_id(html)
    form = {"request_id": request_id, "decision": "allow", "audience": "departments"}
    retry = flow.http.post(consent_url, data=form)
    assert retry.status_code == 400
    assert "Choose at least one of: Engineering" in retry.text
    chosen = flow.http.post(consent_url, data={**form, "option:departments": ["Sales", "Finance"]})
    answer = query_of(chosen)
    assert answer["state"] == "state-1"
    assert emu.installations()[0].audience_options == ("Sales", "Finance")
    tokens = flow.exchange(answer["code"]).json()
    departments = {e["work"]["department"] for e in flow.search(tokens["access_token"], fields=[]).json()["employees"]}
    assert departments == {"Sales", "Finance"}
    reused = flow.http.post(consent_url, data={**form, "option:departments": "Sales"})
    assert reused.status_code == 400
    assert "expired or was already used" in reused.text


def test_consent_page_deny_and_cross_site_posts(emu: RunningEmulator, flow: Flow) -> None:
    consent_url = emu.base_url + "/sandbox/oauth2/consent"
    request_id = _request_id(flow.authorize(consent=None, state="st9").text)
    cross = flow.http.post(
        consent_url, data={"request_id": request_id, "decision": "allow"}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    request_id = _request_id(flow.authorize(consent=None, state="st9").text)
    # A page with Referrer-Policy: no-referrer posts with "Origin: null".
    posted = flow.http.post(
        consent_url, data={"request_id": request_id, "decision": "deny"}, headers={"Origin": "null"}
    )
    denied = query_of(posted)
    assert denied["error"] == "access_denied"
    assert denied["state"] == "st9"
    assert flow.http.post(consent_url, content=b"{}", headers={"Content-Type": "application/json"}).status_code == 400
    assert flow.http.get(consent_url).status_code == 405


def test_partial_consent_when_the_spec_allows_it() -> None:
    with start_hibob(hibob_spec(all_or_nothing_consent=False)) as emu:
        flow = Flow(emu)
        page = flow.authorize("employee_data:read tasks:write timeoff:read", consent=None)
        assert 'type="checkbox" name="scope" value="tasks:write" checked' in page.text
        form = {"request_id": _request_id(page.text), "decision": "allow", "audience": "all"}
        url = emu.base_url + "/sandbox/oauth2/consent"
        none = flow.http.post(url, data=form)
        assert none.status_code == 400
        assert "Allow at least one" in none.text
        code = query_of(flow.http.post(url, data={**form, "scope": ["employee_data:read", "timeoff:read"]}))["code"]
        assert flow.exchange(code).json()["scope"] == "employee_data:read timeoff:read"


# ---------------------------------------------------------------------- snapshots


def test_snapshot_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "emulator.json"
    with running(snapshot=path) as emu:
        flow = Flow(emu)
        tokens = flow.connect("employee_data:read")
        client_id = flow.creds.client_id
        secret = flow.creds.client_secret.reveal()
        company = emu.default_company_id
        emu.set_access_token_lifetime(120)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert tokens["access_token"] not in text and tokens["refresh_token"] not in text
    assert not list(path.parent.glob(".*.tmp"))
    with running(snapshot=path) as again:
        flow = Flow(again)
        assert flow.creds.client_id == client_id
        assert flow.creds.client_secret.reveal() == secret
        assert again.default_company_id == company
        assert again.access_token_lifetime == 120
        assert flow.search(tokens["access_token"]).status_code == 200
        assert query_of(flow.authorize())["error"] == "access_denied"  # still installed
        assert flow.refresh(tokens["refresh_token"]).status_code == 200


def test_bad_snapshots_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(SnapshotError, match="malformed"):
        start_hibob(hibob_spec(), snapshot=garbage)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "connector-core-emulator-snapshot", "version": 1, "provider": "acme"}))
    with pytest.raises(SnapshotError, match="belongs to provider 'acme'"):
        start_hibob(hibob_spec(), snapshot=other)


# ------------------------------------------------------- a provider-neutral plugin


class Acme:
    """A minimal provider with an emulator, to show the core needs nothing provider-specific."""

    @hookimpl
    def connector_core_register_providers(self, register: ProviderRegistry) -> None:
        register.add(Provider(key="acme", display_name="Acme"))

    @hookimpl
    def connector_core_auth_types(self, provider_key: str) -> Any:
        if provider_key != "acme":
            return None
        return [
            OAuth2AuthorizationCode(
                authorize_url="https://acme.example/authorize",
                token_url="https://acme.example/token",
                client_auth_method="client_secret_post",
            )
        ]

    @hookimpl
    def connector_core_environments(self, provider_key: str) -> Any:
        if provider_key != "acme":
            return None
        return [Environment(key="live", label="Live", credential_set="main", api_base_url="https://api.acme.example")]

    @hookimpl
    def connector_core_scope_catalogue(self, provider_key: str) -> Any:
        if provider_key != "acme":
            return None
        scopes = [Scope("things:read", "Read things.", "read"), Scope("things:write", "Write things.", "write")]
        return ScopeCatalogue(
            groups=[ScopeGroup("things", "Things", scopes)],
            default_scopes=["things:read"],
            minimum_scopes=["things:read"],
        )

    @hookimpl
    def connector_core_callback(self, provider_key: str) -> Any:
        from connector_core import Callback

        return Callback(path="/cb/acme") if provider_key == "acme" else None

    @hookimpl
    def connector_core_emulator(self, provider_key: str) -> EmulatorSpec | None:
        if provider_key != "acme":
            return None

        def things(request: ResourceRequest) -> ResourceResponse:
            if request.query_value("boom"):
                raise RuntimeError("handler bug")
            return ResourceResponse(200, {"things": [request.company.id]}, {"X-Acme": "1"})

        return EmulatorSpec(
            app=AppRegistration(app_id="acme-app", name="Acme Test App"),
            resources=[ResourceEndpoint("GET", "/things", ["things:read"], things)],
            single_installation=False,
            rotate_refresh_tokens=False,
        )


def test_a_provider_neutral_emulator_from_a_plugin_hook() -> None:
    plugins = load_plugins([Acme()], entry_points=False)
    spec = plugins.emulator_spec("acme")
    assert isinstance(spec, EmulatorSpec)
    with start_emulator("acme", plugins=plugins) as emu:
        endpoints = emu.endpoints()
        assert endpoints.environment == "live"
        assert endpoints.api_base_url == emu.base_url + "/live/api"
        creds = emu.app.credentials["main"]
        http = httpx.Client(trust_env=False)
        params = {"response_type": "code", "client_id": creds.client_id, "redirect_uri": "http://127.0.0.1:5/cb"}
        for _ in range(2):  # installing twice is fine for this provider
            location = http.get(endpoints.authorize_url, params=params, headers={"X-Emulator-Consent": "allow"})
            code = query_of(location)["code"]
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://127.0.0.1:5/cb",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret.reveal(),
        }
        tokens = http.post(endpoints.token_url, data=data).json()
        assert tokens["scope"] == "things:read"  # the catalogue's default scopes
        assert "companyId" not in tokens
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        things = http.get(endpoints.api_base_url + "/things", headers=headers)
        assert things.json() == {"things": [emu.default_company_id]}
        assert things.headers["x-acme"] == "1"
        assert "x-ratelimit-limit" not in things.headers
        missing = http.get(endpoints.api_base_url + "/nothing", headers=headers)
        assert missing.status_code == 404
        assert missing.json()["error"] == "not_found"  # the default RFC 6750-style error body
        assert http.post(endpoints.api_base_url + "/things", headers=headers).status_code == 405
        crash = http.get(endpoints.api_base_url + "/things?boom=1", headers=headers)
        assert crash.status_code == 500
        assert http.get(endpoints.api_base_url + "/things", headers=headers).status_code == 200
        assert [e.error for e in emu.unexpected_errors] == ["RuntimeError: handler bug"]
        http.close()
        with pytest.raises(EmulatorError, match="1 unexpected error"):
            emu.close()


def test_start_emulator_needs_a_spec() -> None:
    class NoEmulator(Acme):
        @hookimpl
        def connector_core_emulator(self, provider_key: str) -> EmulatorSpec | None:
            return None

    plugins = load_plugins([NoEmulator()], entry_points=False)
    with pytest.raises(EmulatorError, match="no built-in emulator"):
        start_emulator("acme", plugins=plugins)
    with pytest.raises(UnknownNameError):
        start_emulator("nope", plugins=plugins)


def test_specs_are_validated() -> None:
    app = AppRegistration(app_id="a", name="A")

    def handler(request: ResourceRequest) -> ResourceResponse:
        return ResourceResponse()

    with pytest.raises(DeclarationError, match="access_token_lifetime"):
        EmulatorSpec(app=app, access_token_lifetime=0)
    with pytest.raises(DeclarationError, match="duplicate endpoint"):
        EmulatorSpec(app=app, resources=[ResourceEndpoint("GET", "/x", ["s"], handler)] * 2)
    with pytest.raises(DeclarationError, match="client_secret_basic or client_secret_post"):
        EmulatorSpec(app=app, client_auth_methods=["private_key_jwt"])
    with pytest.raises(DeclarationError, match="path"):
        ResourceEndpoint("GET", "no-slash", ["s"], handler)
    with pytest.raises(DeclarationError, match="app_id"):
        AppRegistration(app_id="", name="A")
    assert EmulatorSpec(app=app, client_auth_methods="client_secret_post").client_auth_methods == (
        ClientAuthMethod.CLIENT_SECRET_POST,
    )
    with pytest.raises(EmulatorError, match="not in the catalogue"):
        start_hibob(hibob_spec(app=attrs.evolve(app, scopes=["made:up"])))


def test_a_busy_port_is_a_one_line_error(emu: RunningEmulator) -> None:
    with pytest.raises(EmulatorError, match=f"cannot listen on 127.0.0.1:{emu.port}"):
        start_hibob(hibob_spec(), port=emu.port)
    with pytest.raises(ValidationError, match="loopback addresses only"):
        start_hibob(hibob_spec(), host="0.0.0.0")


def test_the_core_emulator_holds_no_provider_code() -> None:
    import connector_core

    core = Path(connector_core.__file__).parent
    files = [*core.joinpath("emulator").glob("*.py"), core / "cli" / "emulate.py"]
    assert len(files) >= 8
    for path in files:
        assert "hibob" not in path.read_text().lower(), path


def test_endpoints_as_profile_urls() -> None:
    from connector_core.emulator import EmulatorEndpoints

    endpoints = EmulatorEndpoints(
        "sandbox", "development", "http://e/authorize", "http://e/token", "http://e/revoke", "http://e/api"
    )
    assert endpoints.profile_urls("https://p/cb") == {
        "redirect_uri": "https://p/cb",
        "authorize_url": "http://e/authorize",
        "token_url": "http://e/token",
        "api_base_url": "http://e/api",
        "revocation_url": "http://e/revoke",
    }
    assert "revocation_url" not in endpoints.profile_urls("https://p/cb", revocation=False)


def test_a_failed_pkce_check_burns_the_code(flow: Flow) -> None:
    code = flow.code()
    assert flow.exchange(code, verifier="x" * 50).json()["error"] == "invalid_grant"
    again = flow.exchange(code)  # the right verifier, too late: one guess per code
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert "unknown" in again.json()["error_description"]


def test_a_missing_verifier_burns_the_code_too(flow: Flow) -> None:
    code = flow.code()
    verifier, flow.verifier = flow.verifier, None
    assert flow.exchange(code).json()["error"] == "invalid_request"
    flow.verifier = verifier
    assert flow.exchange(code).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1:1", "", "[::1"])
def test_a_foreign_host_header_is_refused(emu: RunningEmulator, host: str) -> None:
    """DNS rebinding: a page at evil.example resolved to 127.0.0.1 still says Host: evil.example."""
    url = emu.endpoints("sandbox").token_url
    with socket.create_connection(("127.0.0.1", emu.port)) as sock:
        head = f"Host: {host.format(port=emu.port)}\r\n" if host else ""
        sock.sendall(f"GET {httpx.URL(url).raw_path.decode()} HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 421 "), answer[:80]
    for own in (f"127.0.0.1:{emu.port}", f"localhost:{emu.port}"):  # its own names still work
        assert httpx.get(url, headers={"Host": own}).status_code != 421
