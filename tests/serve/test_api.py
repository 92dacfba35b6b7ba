"""The platform API's connection routes, its keys and its errors, in-process."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from connector_core import ValidationError
from connector_core.serve import ApiKeys, create_app, load_api_keys

from .conftest import KEY, OLD_KEY, Api

PROBLEM = "application/problem+json"


def _problem(response: object, status: int, field: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    assert "Traceback" not in str(body["detail"])
    if field is not None:
        assert body["field"] == field
    return body


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key-0123456789abcdefgh"}, {"Authorization": f"Basic {KEY}"}],
    ids=["missing", "wrong", "not bearer"],
)
def test_a_missing_or_wrong_key_gets_the_same_401(api: Api, headers: dict[str, str]) -> None:
    answer = api.client.get("/v1/connections", headers={"Authorization": "", **headers})
    body = _problem(answer, 401)
    assert answer.headers["www-authenticate"] == 'Bearer realm="connector"'
    assert body["detail"] == "send a valid API key as 'Authorization: Bearer KEY'"
    assert KEY not in answer.text


def test_every_configured_key_is_accepted_during_a_rotation(api: Api) -> None:
    assert api.client.get("/v1/connections", headers={"Authorization": f"Bearer {OLD_KEY}"}).status_code == 200
    assert api.client.get("/v1/connections").status_code == 200


def test_keys_are_checked_against_every_key_and_never_shown() -> None:
    keys = ApiKeys([KEY, OLD_KEY])
    assert keys.matches(OLD_KEY) and keys.matches(KEY) and not keys.matches(KEY[:-1])
    assert KEY not in repr(keys) and repr(keys) == "<ApiKeys 2 key(s)>"
    with pytest.raises(ValidationError, match="key #1 is not 24 or more"):
        ApiKeys(["short"])
    with pytest.raises(ValidationError, match="CONNECTOR_SERVE_API_KEYS"):
        load_api_keys({})
    assert len(load_api_keys({"CONNECTOR_SERVE_API_KEYS": f" {KEY} , {OLD_KEY} ,"})) == 2


def test_healthz_needs_no_key_and_says_nothing(api: Api) -> None:
    answer = api.client.get("/healthz", headers={"Authorization": ""})
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_every_answer_has_strict_security_headers(api: Api) -> None:
    for answer in (api.client.get("/healthz"), api.client.get("/v1/connections"), api.client.get("/nowhere")):
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["strict-transport-security"].startswith("max-age=")


# ----------------------------------------------------------- connections


def test_the_list_pages_and_filters(api: Api) -> None:
    everything = api.client.get("/v1/connections").json()
    assert sorted(c["id"] for c in everything["data"]) == sorted([api.ada, api.unclaimed, api.service])
    assert everything["next"] is None
    first = api.client.get("/v1/connections", params={"limit": 2}).json()
    assert len(first["data"]) == 2 and first["next"] == first["data"][-1]["id"]
    rest = api.client.get("/v1/connections", params={"limit": 2, "after": first["next"]}).json()
    assert len(rest["data"]) == 1 and rest["next"] is None
    ada = api.client.get("/v1/connections", params={"end_user": "user-ada", "tag": "tier-1"}).json()["data"]
    assert [c["id"] for c in ada] == [api.ada]
    assert ada[0]["owner"] == {
        "end_user": {"id": "user-ada", "email": "ada@example.com", "display_name": "Ada"},
        "organisation": "org-1",
        "tags": ["tier-1"],
    }
    unclaimed = api.client.get("/v1/connections", params={"unclaimed": "true"}).json()["data"]
    assert [c["id"] for c in unclaimed] == [api.unclaimed] and unclaimed[0]["owner"]["end_user"] is None
    assert api.client.get("/v1/connections", params={"organisation": "org-2"}).json()["data"][0]["id"] == api.service


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"status": "happy"}, "status"),
        ({"unclaimed": "yes"}, "unclaimed"),
        ({"tag": "Not A Tag"}, "tag"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_filter_is_a_problem_naming_it(api: Api, params: dict[str, str], field: str) -> None:
    _problem(api.client.get("/v1/connections", params=params), 400, field)


def test_one_connection_and_its_events(api: Api) -> None:
    conn = api.client.get(f"/v1/connections/{api.ada}").json()
    assert conn["id"] == api.ada and conn["status"] == "connected" and conn["auth_kind"] == "oauth2_authorization_code"
    events = api.client.get(f"/v1/connections/{api.ada}/events").json()["data"]
    assert events[0]["status"] == "connected" and events[0]["reason"] == "authorized"
    _problem(api.client.get("/v1/connections/conn_nope"), 404)
    _problem(api.client.get("/v1/connections/conn_nope/events"), 404)


def test_no_token_is_in_any_answer(api: Api) -> None:
    _, access, refresh = api.world.store.get_tokens(api.ada)
    assert access is not None and refresh is not None
    text = api.client.get("/v1/connections").text + api.client.post(f"/v1/connections/{api.ada}/refresh").text
    _, access, refresh = api.world.store.get_tokens(api.ada)
    assert access is not None and refresh is not None
    assert access.reveal() not in text and refresh.reveal() not in text


def test_refresh_issues_new_tokens(api: Api) -> None:
    before = api.world.store.get_connection(api.ada).token_version
    answer = api.client.post(f"/v1/connections/{api.ada}/refresh")
    assert answer.status_code == 200 and answer.json()["refreshed_at"] is not None
    assert api.world.store.get_connection(api.ada).token_version > before
    _problem(api.client.post(f"/v1/connections/{api.service}/refresh"), 409)


def test_delete_revokes_at_the_provider_then_deletes(api: Api) -> None:
    answer = api.client.delete(f"/v1/connections/{api.ada}")
    assert answer.status_code == 200
    assert answer.json() == {
        "id": api.ada,
        "deleted": True,
        "revoked_at_provider": True,
        "detail": "revoked at the provider, then deleted",
    }
    assert [line for line in api.world.log if "revoke" in line and line.endswith(" 200")]  # the provider was asked
    _problem(api.client.get(f"/v1/connections/{api.ada}"), 404)
    service = api.client.delete(f"/v1/connections/{api.service}").json()
    assert service["revoked_at_provider"] is False and "stay valid" in service["detail"]


# ----------------------------------------------------------------- owner


def test_an_unclaimed_connection_is_attached_and_never_handed_over_silently(api: Api) -> None:
    url = f"/v1/connections/{api.unclaimed}/owner"
    attached = api.client.put(url, json={"end_user": {"id": "user-cy", "email": "cy@example.com"}, "tags": ["new"]})
    assert attached.status_code == 200 and attached.json()["owner"]["end_user"]["id"] == "user-cy"
    assert api.world.store.get_connection(api.unclaimed).owner.end_user.id == "user-cy"  # type: ignore[union-attr]
    refused = _problem(api.client.put(url, json={"end_user": {"id": "user-dee"}}), 409, "end_user")
    assert "replace" in str(refused["detail"])
    handed = api.client.put(url, json={"end_user": {"id": "user-dee"}, "replace": True})
    assert handed.json()["owner"]["end_user"]["id"] == "user-dee"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ('{"end_user": {"id": "u"}, "colour": "blue"}', 400, "colour"),
        ('{"end_user": {"id": "u", "age": 3}}', 400, "end_user.age"),
        ('{"end_user": {"id": "has space"}}', 400, "end_user.id"),
        ('{"end_user": {"id": "u", "email": "nope"}}', 400, "end_user.email"),
        ('{"end_user": {"id": "u"}, "tags": ["Bad Tag"]}', 400, "tags"),
        ('{"end_user": {"id": "u"}, "replace": "yes"}', 400, "replace"),
        ('{"end_user": ', 400, "body"),
        ("[1, 2]", 400, "body"),
        ('{"organisation": "o"}', 400, "end_user"),
    ],
)
def test_a_bad_owner_body_is_a_problem_naming_the_field(api: Api, body: str, status: int, field: str) -> None:
    answer = api.client.put(
        f"/v1/connections/{api.unclaimed}/owner", content=body, headers={"Content-Type": "application/json"}
    )
    _problem(answer, status, field)
    assert api.world.store.get_connection(api.unclaimed).owner.end_user is None  # nothing half-written


def test_an_oversized_or_non_json_body_is_refused(api: Api) -> None:
    url = f"/v1/connections/{api.unclaimed}/owner"
    big = b'{"end_user": {"id": "u"}, "organisation": "' + b"x" * (1024 * 1024) + b'"}'
    _problem(api.client.put(url, content=big, headers={"Content-Type": "application/json"}), 413, "body")
    _problem(api.client.put(url, content=b"id=u", headers={"Content-Type": "text/plain"}), 415, "body")


def test_routes_and_methods_not_served_are_problems(api: Api) -> None:
    _problem(api.client.get("/v2/whatever"), 404)
    answer = api.client.post(f"/v1/connections/{api.ada}")
    _problem(answer, 405)
    assert "GET" in answer.headers["allow"]


def test_the_public_url_must_be_https_beyond_loopback(api: Api) -> None:
    for url in ("http://api.example", "ftp://x.example", "https://x.example/?q=1", "https://u:p@x.example"):
        with pytest.raises(ValidationError, match="public_url"):
            create_app(api.world.connector, api_keys=[KEY], public_url=url)
    local = create_app(api.world.connector, api_keys=[KEY], public_url="http://127.0.0.1:8080/")
    assert local.state.public_url == "http://127.0.0.1:8080"


def test_the_app_mounts_under_a_prefix_in_another_starlette_app(api: Api) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    inner = create_app(api.world.connector, api_keys=[KEY], public_url="https://platform.example/connect")
    host = Starlette(routes=[Mount("/connect", app=inner)])
    with TestClient(host, raise_server_exceptions=False) as client:
        assert client.get("/connect/healthz").status_code == 200
        assert client.get("/connect/v1/connections").status_code == 401
        listed = client.get("/connect/v1/connections", headers={"Authorization": f"Bearer {KEY}"})
        assert listed.status_code == 200 and len(listed.json()["data"]) == 3


def test_no_key_or_token_reaches_the_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    api.client.get("/v1/connections", headers={"Authorization": "Bearer wrong-key-0123456789abcdefgh"})
    api.client.post(f"/v1/connections/{api.ada}/refresh")
    api.client.get(f"/v1/connections/{api.ada}/proxy/company/named-lists")
    _, access, refresh = api.world.store.get_tokens(api.ada)
    # oauthlib's records are the in-process emulator's (the provider's side), not the service's.
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("oauthlib"))
    assert "HTTP Request" in ours  # httpx logged the provider calls
    for secret in (KEY, OLD_KEY, "wrong-key-0123456789abcdefgh", access.reveal(), refresh.reveal()):  # type: ignore[union-attr]
        assert secret not in ours
