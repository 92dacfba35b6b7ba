"""Credentials a company issues itself (service users, API keys) and the client credentials
grant, at the emulator, with plain httpx: no connector-core client code."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
from support import hibob, multiauth_plugins
from support.emulator import Flow, running
from support.multiauth import BASIC, HEADER_KEY, QUERY_KEY, QUERY_NAME, emulator_spec

from connector_core import DeclarationError, EmulatorError, UnknownNameError, ValidationError
from connector_core.emulator import PermissionGroup, RunningEmulator, start_emulator
from connector_core.testing import http_client

SEARCH = {"fields": ["root.id"]}


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with http_client(timeout=10) as client:
        yield client


@pytest.fixture
def multi() -> Iterator[RunningEmulator]:
    with start_emulator("multiauth", plugins=multiauth_plugins()) as emu:
        yield emu
        assert emu.unexpected_errors == ()


def search(emu: RunningEmulator, http: httpx.Client, user: str, token: str, env: str = "sandbox") -> httpx.Response:
    url = emu.endpoints(env).api_base_url + "/people/search"
    return http.post(url, json=SEARCH, auth=(user, token))


def api(emu: RunningEmulator, http: httpx.Client, method: str, path: str, **kw: object) -> httpx.Response:
    return http.request(method, emu.endpoints().api_base_url + path, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ service users


def test_a_service_user_in_every_group_reads_employees(emu: RunningEmulator, http: httpx.Client) -> None:
    user = emu.issue_credentials("service_user")
    assert set(user) == {"service_user_id", "service_user_token"}
    assert re.fullmatch(r"SERVICE-[0-9]{6}", user["service_user_id"])
    assert user.identifier == user["service_user_id"]
    assert user.company == emu.default_company_id
    assert user.groups == ("employees_read", "hr_read", "tasks")
    decl = hibob().declaration("hibob")
    for field in decl.fields_for("service_user"):
        assert field.check(user[field.name]) == user[field.name]
    answer = search(emu, http, user["service_user_id"], user["service_user_token"])
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["employees"]) == 22  # the 25 employees less the 3 inactive
    assert emu.stats.resource_calls["POST /people/search"] == 1


def test_issued_credentials_hide_the_secret_in_their_repr(emu: RunningEmulator) -> None:
    user = emu.issue_credentials("service_user")
    assert user["service_user_token"] not in repr(user)
    assert user["service_user_token"] not in str(user)
    assert user["service_user_id"] in repr(user)


def test_a_service_user_in_no_group_may_read_nothing(emu: RunningEmulator, http: httpx.Client) -> None:
    user = emu.issue_credentials("service_user", groups=())
    answer = search(emu, http, user["service_user_id"], user["service_user_token"])
    assert answer.status_code == 403
    assert answer.json()["key"] == "forbidden"
    assert "employee_data:read" in answer.json()["error"]
    emu.set_permission_groups("service_user", user.identifier, ["employees_read"])
    assert search(emu, http, user["service_user_id"], user["service_user_token"]).status_code == 200
    lists = api(emu, http, "GET", "/company/named-lists", auth=(user["service_user_id"], user["service_user_token"]))
    assert lists.status_code == 403


def test_a_reset_token_stops_the_old_one_at_once(emu: RunningEmulator, http: httpx.Client) -> None:
    user = emu.issue_credentials("service_user")
    fresh = emu.reset_credentials("service_user", user.identifier)
    assert fresh["service_user_id"] == user["service_user_id"]
    assert fresh["service_user_token"] != user["service_user_token"]
    old = search(emu, http, user["service_user_id"], user["service_user_token"])
    assert old.status_code == 401
    assert set(old.json()) == {"key", "error"}  # HiBob's error body
    assert old.headers["www-authenticate"].startswith('Basic realm="hibob emulator"')
    assert search(emu, http, fresh["service_user_id"], fresh["service_user_token"]).status_code == 200


def test_a_revoked_or_unknown_service_user_is_refused(emu: RunningEmulator, http: httpx.Client) -> None:
    user = emu.issue_credentials("service_user")
    emu.revoke_credentials("service_user", user.identifier)
    revoked = search(emu, http, user["service_user_id"], user["service_user_token"])
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["error"]
    assert search(emu, http, "SERVICE-000000", "not-a-token-at-all").status_code == 401
    garbled = api(emu, http, "POST", "/people/search", json=SEARCH, headers={"Authorization": "Basic %%%"})
    assert garbled.status_code == 401
    with pytest.raises(UnknownNameError, match="SERVICE-000000"):
        emu.reset_credentials("service_user", "SERVICE-000000")
    with pytest.raises(ValidationError, match="was revoked; issue a new one"):
        emu.reset_credentials("service_user", user.identifier)


def test_a_service_user_works_only_in_its_environment(emu: RunningEmulator, http: httpx.Client) -> None:
    user = emu.issue_credentials("service_user", environment="production")
    assert user.environment == "production"
    assert search(emu, http, user["service_user_id"], user["service_user_token"], "production").status_code == 200
    elsewhere = search(emu, http, user["service_user_id"], user["service_user_token"], "sandbox")
    assert elsewhere.status_code == 401
    assert "production" in elsewhere.json()["error"]


def test_a_service_user_reads_its_own_company(emu: RunningEmulator, http: httpx.Client) -> None:
    other = emu.add_company()
    user = emu.issue_credentials("service_user", company=other.id, groups=["employees_read"])
    answer = search(emu, http, user["service_user_id"], user["service_user_token"])
    ids = {e["id"] for e in other.data["employees"]}
    assert answer.status_code == 200
    assert {e["id"] for e in answer.json()["employees"]} <= ids


def test_unknown_names_are_refused(emu: RunningEmulator) -> None:
    with pytest.raises(UnknownNameError, match="oauth2"):
        emu.issue_credentials("oauth2")
    with pytest.raises(UnknownNameError, match="permission group 'admins'"):
        emu.issue_credentials("service_user", groups=["admins"])
    with pytest.raises(UnknownNameError, match="company"):
        emu.issue_credentials("service_user", company="999")


def test_a_request_without_credentials_is_told_every_way_in(emu: RunningEmulator, http: httpx.Client) -> None:
    answer = api(emu, http, "POST", "/people/search", json=SEARCH)
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="hibob emulator"')
    assert 'Basic realm="hibob emulator"' in challenge
    assert "Service user" in answer.json()["error"]


def test_bearer_tokens_still_work_beside_service_users(flow: Flow, emu: RunningEmulator) -> None:
    emu.issue_credentials("service_user")
    tokens = flow.connect()
    assert flow.search(tokens["access_token"]).status_code == 200


def test_the_control_endpoint_issues_credentials(emu: RunningEmulator, http: httpx.Client) -> None:
    answer = http.post(emu.credentials_url, json={"auth_type": "service_user", "groups": ["employees_read"]})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    data = answer.json()
    assert data["groups"] == ["employees_read"]
    assert data["company_id"] == emu.default_company_id
    values = data["values"]
    assert values["service_user_id"] == data["identifier"]
    assert search(emu, http, values["service_user_id"], values["service_user_token"]).status_code == 200
    # One credential auth type: it need not be named. Bad requests are refused in one line.
    assert http.post(emu.credentials_url, json={}).status_code == 200
    assert http.post(emu.credentials_url, json={"groups": "employees_read"}).status_code == 400
    assert http.post(emu.credentials_url, json={"auth_type": "nope"}).status_code == 404
    assert http.post(emu.credentials_url, json={"provider": "acme"}).status_code == 400
    assert http.get(emu.credentials_url).status_code == 405
    # JSON only: another site's page can post a form to a loopback port, but not JSON.
    assert http.post(emu.credentials_url, data={"auth_type": "service_user"}).status_code == 415
    assert emu.credentials() and len(emu.credentials()) == 2


def test_info_lists_credentials_without_secrets(emu: RunningEmulator, http: httpx.Client) -> None:
    user = emu.issue_credentials("service_user", groups=["tasks"])
    info = http.get(f"{emu.base_url}/emulator/info").json()
    assert user["service_user_token"] not in json.dumps(info)
    [listed] = info["issued_credentials"]
    assert listed["identifier"] == user.identifier
    assert listed["groups"] == ["tasks"]
    assert [g["key"] for g in info["permission_groups"]] == ["employees_read", "hr_read", "tasks"]
    assert info["credentials_url"] == emu.credentials_url
    assert [c.identifier for c in emu.credentials()] == [user.identifier]


def test_credentials_survive_a_snapshot_without_their_secret(tmp_path: Path, http: httpx.Client) -> None:
    snapshot = tmp_path / "emu.json"
    with running(snapshot=snapshot) as emu:
        user = emu.issue_credentials("service_user", groups=["employees_read"])
        gone = emu.issue_credentials("service_user")
        emu.revoke_credentials("service_user", gone.identifier)
    assert user["service_user_token"] not in snapshot.read_text()
    with running(snapshot=snapshot) as emu:
        assert search(emu, http, user["service_user_id"], user["service_user_token"]).status_code == 200
        assert search(emu, http, gone["service_user_id"], gone["service_user_token"]).status_code == 401
        assert {c.identifier: c.groups for c in emu.credentials()}[user.identifier] == ("employees_read",)


# ------------------------------------------------------------------ API keys


def test_an_api_key_in_a_header_with_its_prefix(multi: RunningEmulator, http: httpx.Client) -> None:
    key = multi.issue_credentials(HEADER_KEY, groups=["readers"])
    assert set(key) == {"header_api_key"}
    assert key.identifier.startswith("key-")
    assert key.identifier != key["header_api_key"]
    good = api(multi, http, "GET", "/things", headers={"Authorization": f"Token {key['header_api_key']}"})
    assert good.status_code == 200
    assert good.json()["scopes"] == ["things:read"]  # the handler sees the group's scopes
    without_prefix = api(multi, http, "GET", "/things", headers={"Authorization": key["header_api_key"]})
    assert without_prefix.status_code == 401
    forbidden = api(
        multi, http, "POST", "/things", json={}, headers={"Authorization": f"Token {key['header_api_key']}"}
    )
    assert forbidden.status_code == 403
    multi.revoke_credentials(HEADER_KEY, key.identifier)
    revoked = api(multi, http, "GET", "/things", headers={"Authorization": f"Token {key['header_api_key']}"})
    assert revoked.status_code == 401
    assert revoked.headers["www-authenticate"].startswith("Token realm=")


def test_an_api_key_in_the_query(multi: RunningEmulator, http: httpx.Client) -> None:
    key = multi.issue_credentials(QUERY_KEY)
    good = api(multi, http, "GET", "/me", params={QUERY_NAME: key["query_api_key"]})
    assert good.status_code == 200
    assert good.json() == {"company": multi.default_company_id, "client": key.identifier}
    fresh = multi.reset_credentials(QUERY_KEY, key.identifier)
    assert api(multi, http, "GET", "/me", params={QUERY_NAME: key["query_api_key"]}).status_code == 401
    assert api(multi, http, "GET", "/me", params={QUERY_NAME: fresh["query_api_key"]}).status_code == 200
    # A query key is not a header key.
    header = api(multi, http, "GET", "/me", headers={"Authorization": f"Token {fresh['query_api_key']}"})
    assert header.status_code == 401


def test_basic_credentials_match_the_declared_pattern(multi: RunningEmulator, http: httpx.Client) -> None:
    user = multi.issue_credentials(BASIC, groups=["writers"])
    assert re.fullmatch(r"mu-[0-9]{6}", user["username"])
    assert api(multi, http, "POST", "/things", json={"a": 1}, auth=(user["username"], user["password"])).json() == {
        "added": {"a": 1}
    }


# ------------------------------------------------------------------ client credentials


def _grant(multi: RunningEmulator, http: httpx.Client, **data: str) -> httpx.Response:
    endpoints = multi.endpoints()
    creds = multi.app.credentials[endpoints.credential_set]
    auth = (creds.client_id, creds.client_secret.reveal())
    return http.post(endpoints.token_url, data={"grant_type": "client_credentials", **data}, auth=auth)


def test_the_client_credentials_grant_issues_an_access_token(multi: RunningEmulator, http: httpx.Client) -> None:
    answer = _grant(multi, http, scope="things:read things:write")
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert "refresh_token" not in tokens
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == multi.access_token_lifetime
    assert tokens["scope"] == "things:read things:write"
    me = api(multi, http, "GET", "/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    assert me.json()["company"] == multi.default_company_id
    assert multi.stats.token_requests["client_credentials"] == 1
    multi.advance_clock(multi.access_token_lifetime + 1)
    expired = api(multi, http, "GET", "/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert expired.status_code == 401


def test_the_grant_gives_only_scopes_the_app_has(http: httpx.Client) -> None:
    plugins = multiauth_plugins()
    spec = emulator_spec()
    spec = attrs.evolve(spec, app=attrs.evolve(spec.app, scopes=("things:read",)))
    with start_emulator(plugins.declaration("multiauth"), spec) as multi:
        tokens = _grant(multi, http, scope="things:read things:write").json()
        assert tokens["scope"] == "things:read"
        unknown = _grant(multi, http, scope="things:delete")
        assert unknown.status_code == 400
        assert unknown.json()["error"] == "invalid_scope"


def test_a_wrong_client_is_invalid_client(multi: RunningEmulator, http: httpx.Client) -> None:
    endpoints = multi.endpoints()
    creds = multi.app.credentials[endpoints.credential_set]
    answer = http.post(
        endpoints.token_url, data={"grant_type": "client_credentials"}, auth=(creds.client_id, "wrong-secret")
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic ")
    assert multi.stats.token_requests["client_credentials"] == 1


def test_a_provider_without_the_grant_refuses_it(emu: RunningEmulator, flow: Flow) -> None:
    answer = flow._token({"grant_type": "client_credentials"}, "basic")
    assert answer.status_code == 400
    assert answer.json()["error"] in ("unsupported_grant_type", "unauthorized_client")


def test_rate_limits_and_faults_apply_to_service_users(emu: RunningEmulator, http: httpx.Client) -> None:
    user = emu.issue_credentials("service_user")
    emu.set_rate_limit("POST /people/search", 1)
    first = search(emu, http, user["service_user_id"], user["service_user_token"])
    assert first.status_code == 200 and first.headers["x-ratelimit-limit"] == "1"
    limited = search(emu, http, user["service_user_id"], user["service_user_token"])
    assert limited.status_code == 429 and "retry-after" in limited.headers
    emu.set_rate_limit("POST /people/search", None)
    emu.faults.status("api", 503)
    assert search(emu, http, user["service_user_id"], user["service_user_token"]).status_code == 503
    assert search(emu, http, user["service_user_id"], user["service_user_token"]).status_code == 200


def test_the_emulator_log_never_shows_a_query_key(http: httpx.Client) -> None:
    lines: list[str] = []
    with start_emulator("multiauth", plugins=multiauth_plugins(), log=lines.append) as multi:
        key = multi.issue_credentials(QUERY_KEY)
        assert api(multi, http, "GET", "/me", params={QUERY_NAME: key["query_api_key"]}).status_code == 200
    assert any("/me 200" in line for line in lines)
    assert all(key["query_api_key"] not in line for line in lines)


def test_a_spec_is_checked_for_its_groups_and_prefix() -> None:
    plugins = multiauth_plugins()
    spec = emulator_spec()
    with pytest.raises(DeclarationError, match="credential_username_prefix"):
        attrs.evolve(spec, credential_username_prefix="has:colon")
    with pytest.raises(DeclarationError, match="unique keys"):
        attrs.evolve(spec, permission_groups=(spec.permission_groups[0],) * 2)
    bad = attrs.evolve(spec, permission_groups=(PermissionGroup("x", "X", ("things:delete",)),))
    with pytest.raises(EmulatorError, match="things:delete"):
        start_emulator(plugins.declaration("multiauth"), bad)
    # A prefix the username field's pattern refuses is said when issuing, not later.
    odd = attrs.evolve(spec, credential_username_prefix="zz-")
    with start_emulator(plugins.declaration("multiauth"), odd) as multi, pytest.raises(EmulatorError, match="prefix"):
        multi.issue_credentials(BASIC)
