"""The authenticated proxy: the host never changes, whatever the path tries; bodies and
headers cross by the rules; the provider's answer comes back as it was."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import anyio
import pytest

from connector_core.serve import proxy

from .conftest import KEY, Api


def test_a_call_through_the_proxy_reaches_the_provider_authenticated(api: Api) -> None:
    answer = api.client.get(f"/v1/connections/{api.ada}/proxy/company/named-lists")
    assert answer.status_code == 200 and "department" in answer.json()
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["cache-control"] == "no-store"


def test_the_providers_status_and_body_pass_through(api: Api) -> None:
    answer = api.client.get(f"/v1/connections/{api.ada}/proxy/no/such/thing")
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("application/json")
    assert answer.json()["key"] == "not_found"  # the provider's own error body, not a problem


def test_a_json_body_is_forwarded(api: Api) -> None:
    answer = api.client.post(
        f"/v1/connections/{api.ada}/proxy/people/search", json={"fields": ["root.id"], "showInactive": False}
    )
    assert answer.status_code == 200, answer.text
    assert "employees" in answer.json()


def test_the_api_key_and_cookies_are_never_forwarded() -> None:
    sent = proxy.request_headers(
        [("Authorization", f"Bearer {KEY}"), ("Cookie", "s=1"), ("If-None-Match", '"x"'), ("Host", "evil.example")]
    )
    assert sent == {"if-none-match": '"x"'}


def test_hop_by_hop_headers_are_dropped_from_the_answer() -> None:
    kept = proxy.response_headers(
        {
            "connection": "close, x-private",
            "x-private": "1",
            "transfer-encoding": "chunked",
            "etag": '"v1"',
            "x-ratelimit-remaining": "9",
            "set-cookie": "a=b",
        }
    )
    assert kept == {"etag": '"v1"', "x-ratelimit-remaining": "9"}
    assert proxy.response_media_type({"content-type": "text/html"}) == "application/octet-stream"


@pytest.mark.parametrize(
    "path",
    [
        "../v2/secret",
        "people/../../admin",
        "%2e%2e/admin",
        "%252e%252e/admin",
        "people/%2E%2E%2F%2E%2E/admin",
        "/evil.example/steal",
        "%2Fevil.example/steal",
        "https:%2F%2Fevil.example/x",
        "people%5c..%5cadmin",
        "people//evil",
        "people/%00",
    ],
)
def test_a_path_that_tries_to_leave_the_api_base_is_refused(api: Api, path: str) -> None:
    before = len(api.world.log)
    status, headers, body = _raw_get(api, f"/v1/connections/{api.ada}/proxy/{path}")
    assert status == 400, (path, status, body)
    assert json.loads(body)["field"] == "path" and headers["content-type"] == "application/problem+json"
    assert len(api.world.log) == before  # nothing reached the provider


def _raw_get(api: Api, raw: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``raw`` exactly as written (an HTTP client would remove its dot segments first),
    straight into the ASGI app."""
    app = api.client.app
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw),
        "raw_path": raw.encode("latin-1"),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {KEY}".encode())],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("path", ["../x", "%2e%2e/x", "a//b", "https:%2F%2Fe.example", "a%5cb", "%25252e%25252e/x"])
def test_the_path_rules_hold_in_every_decoding(path: str) -> None:
    assert proxy.path_problem(path) is not None


def test_ordinary_paths_pass_the_rules() -> None:
    assert proxy.path_problem("people/search") is None
    assert proxy.path_problem("docs/people/12%20b/shared") is None


def test_a_non_json_or_oversized_body_is_refused_before_the_provider(api: Api) -> None:
    url = f"/v1/connections/{api.ada}/proxy/people/search"
    assert api.client.post(url, content=b"a=b", headers={"Content-Type": "text/plain"}).status_code == 415
    assert api.client.post(url, content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
    big = b"[" + b"1," * (600 * 1024) + b"1]"
    answer = api.client.post(url, content=big, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["field"] == "body"


def test_an_unknown_connection_is_a_404_problem(api: Api) -> None:
    answer = api.client.get("/v1/connections/conn_nope/proxy/people")
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"
