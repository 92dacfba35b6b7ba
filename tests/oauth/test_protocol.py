"""The sans-I/O OAuth protocol layer: building requests and parsing callbacks and responses."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from connector_core import oauth
from connector_core.models import ClientAuthMethod
from connector_core.secret import Secret

SECRET = Secret("s3cr:et/with&odd=chars")


def test_rfc7636_appendix_b_vector() -> None:
    verifier = Secret("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    assert oauth.code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_fresh_state_and_verifier() -> None:
    states = {oauth.new_state() for _ in range(50)}
    assert len(states) == 50 and all(len(s) >= 43 for s in states)  # >= 256 bits base64url
    verifier = oauth.new_code_verifier().reveal()
    assert len(verifier) == 43 and set(verifier) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    )
    assert oauth.state_hash("abc") != "abc" and len(oauth.state_hash("abc")) == 64


def test_authorization_url_has_everything_and_pkce_s256() -> None:
    verifier = oauth.new_code_verifier()
    url = oauth.authorization_url(
        "https://auth.example.com/authorize",
        client_id="cid",
        redirect_uri="https://p.example/cb",
        scopes=["a:read", "b:write"],
        scope_separator=" ",
        state="st4te",
        verifier=verifier,
        extra_params=[("prompt", "consent")],
    )
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "auth.example.com", "/authorize")
    assert q == {
        "response_type": "code",
        "client_id": "cid",
        "redirect_uri": "https://p.example/cb",
        "scope": "a:read b:write",
        "state": "st4te",
        "code_challenge": oauth.code_challenge(verifier),
        "code_challenge_method": "S256",
        "prompt": "consent",
    }
    assert verifier.reveal() not in url
    plain = oauth.authorization_url(
        "https://a.example/x",
        client_id="c",
        redirect_uri="https://p.example/cb",
        scopes=[],
        scope_separator=" ",
        state="s",
        verifier=None,
    )
    assert "code_challenge" not in plain and "scope=" not in plain


def test_http_only_for_loopback() -> None:
    url = oauth.authorization_url(
        "http://127.0.0.1:9000/authorize",
        client_id="c",
        redirect_uri="http://127.0.0.1:8000/cb",
        scopes=["s"],
        scope_separator=" ",
        state="s",
        verifier=None,
    )
    assert url.startswith("http://127.0.0.1:9000/authorize?")
    for bad_authorize, bad_redirect in (
        ("http://auth.example.com/a", "https://p/cb"),
        ("https://auth.example.com/a", "http://p.example/cb"),
    ):
        with pytest.raises(oauth.OAuthError, match="is not https"):
            oauth.authorization_url(
                bad_authorize,
                client_id="c",
                redirect_uri=bad_redirect,
                scopes=["s"],
                scope_separator=" ",
                state="s",
                verifier=None,
            )
    import os

    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


def test_token_request_basic_urlencodes_before_base64() -> None:
    req = oauth.token_request(
        "https://a.example/token",
        code=Secret("the-code"),
        redirect_uri="https://p/cb",
        verifier=Secret("v" * 43),
        client_id="id:with space",
        client_secret=SECRET,
        method=ClientAuthMethod.CLIENT_SECRET_BASIC,
    )
    headers = dict(req.headers)
    assert req.method == "POST" and headers["Content-Type"] == "application/x-www-form-urlencoded"
    decoded = base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode()
    assert decoded == "id%3Awith%20space:s3cr%3Aet%2Fwith%26odd%3Dchars"
    body = parse_qs(req.body.decode())
    assert body == {
        "grant_type": ["authorization_code"],
        "code": ["the-code"],
        "redirect_uri": ["https://p/cb"],
        "code_verifier": ["v" * 43],
    }  # credentials one way only: not in the body
    assert "the-code" not in repr(req) and SECRET.reveal() not in repr(req)


def test_token_request_post_puts_credentials_in_the_body_only() -> None:
    req = oauth.refresh_request(
        "https://a.example/token",
        refresh_token=Secret("rt"),
        scopes=None,
        scope_separator=" ",
        client_id="cid",
        client_secret=SECRET,
        method=ClientAuthMethod.CLIENT_SECRET_POST,
    )
    assert "Authorization" not in dict(req.headers)
    body = parse_qs(req.body.decode())
    assert body == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["rt"],
        "client_id": ["cid"],
        "client_secret": [SECRET.reveal()],
    }
    rev = oauth.revocation_request(
        "https://a.example/revoke",
        token=Secret("tok"),
        token_type_hint="refresh_token",
        client_id="cid",
        client_secret=SECRET,
        method=ClientAuthMethod.CLIENT_SECRET_BASIC,
    )
    assert parse_qs(rev.body.decode()) == {"token": ["tok"], "token_type_hint": ["refresh_token"]}


def test_parse_callback_reads_only_what_it_should() -> None:
    params = oauth.parse_callback("https://p.example/cb?code=abc&state=xyz&iss=https%3A%2F%2Fas&access_token=evil")
    assert params.code is not None and params.code.reveal() == "abc"
    assert params.state == "xyz" and params.iss == "https://as" and params.error is None
    assert "abc" not in repr(params) and "xyz" not in repr(params)
    assert oauth.parse_callback("code=1&state=2").state == "2"
    assert oauth.parse_callback({"code": "1", "state": "2"}).code is not None
    denied = oauth.parse_callback("https://p/cb?error=access_denied&error_description=No%0A%1b[31mthanks&state=s")
    assert denied.error == "access_denied" and denied.error_description == "No[31mthanks"
    with pytest.raises(oauth.OAuthError, match="repeats the parameter 'state'"):
        oauth.parse_callback("https://p/cb?code=a&state=1&state=2")
    with pytest.raises(oauth.OAuthError, match="#fragment"):
        oauth.parse_callback("https://p/cb#code=a&state=1")
    with pytest.raises(oauth.StateError, match="empty"):
        oauth.parse_callback("  ")


def ok(body: object, status: int = 200, **headers: str) -> oauth.TokenSet:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return oauth.parse_token_response(
        status, {k.lower().replace("_", "-"): v for k, v in headers.items()}, raw, sent_at=1000.0
    )


def test_token_response_good_and_lenient_where_rfc_allows() -> None:
    tokens = ok(
        {
            "access_token": "at",
            "token_type": "bEAreR",
            "expires_in": "3600",
            "refresh_token": "rt",
            "scope": "a b",
            "companyId": "c-1",
        }
    )
    assert tokens.access_token.reveal() == "at" and tokens.refresh_token is not None
    assert tokens.token_type == "Bearer" and tokens.expires_at == 4600.0 and tokens.scopes == ("a", "b")
    assert dict(tokens.extra) == {"companyId": "c-1"}
    assert "at" not in repr(tokens).replace("expires_at", "").replace("extra", "")
    minimal = ok({"access_token": "at", "token_type": "Bearer"})
    assert minimal.expires_at is None and minimal.refresh_token is None and minimal.scopes is None


@pytest.mark.parametrize(
    ("body", "status", "kind", "message"),
    [
        ({"token_type": "Bearer"}, 200, oauth.OAuthError, "has no access_token"),
        ({"access_token": "", "token_type": "Bearer"}, 200, oauth.OAuthError, "has no access_token"),
        ({"access_token": "a", "token_type": "mac"}, 200, oauth.OAuthError, "token_type 'mac' is not Bearer"),
        ({"access_token": "a"}, 200, oauth.OAuthError, "is not Bearer"),
        (
            {"access_token": "a", "token_type": "Bearer", "expires_in": "soon"},
            200,
            oauth.OAuthError,
            "expires_in 'soon' is not a number",
        ),
        ({"access_token": "a", "token_type": "Bearer", "expires_in": -5}, 200, oauth.OAuthError, "expires_in"),
        (b"<html>captive portal</html>", 200, oauth.OAuthError, "answered 200 with an HTML page"),
        (b"", 200, oauth.OAuthError, "answered 200 with an empty body"),
        (b'{"access_token": "a", "tok', 200, oauth.OAuthError, "not a JSON object"),
        (b"[1, 2]", 200, oauth.OAuthError, "not a JSON object"),
        (b"x" * (oauth.MAX_TOKEN_RESPONSE_BYTES + 1), 200, oauth.OAuthError, "larger than 256 KiB"),
        (
            {"error": "invalid_grant", "error_description": "refresh token reused"},
            400,
            oauth.InvalidGrant,
            "failed with invalid_grant: refresh token reused",
        ),
        ({"error": "invalid_client"}, 401, oauth.InvalidClient, "check the profile's client id"),
        ({"error": "invalid_scope"}, 400, oauth.OAuthError, "failed with invalid_scope"),
        (b"<html>502 Bad Gateway</html>", 502, oauth.TransientError, "answered 502"),
        (b"{}", 503, oauth.TransientError, "answered 503"),
        (b"<html>oops</html>", 400, oauth.OAuthError, "answered 400 with an HTML page"),
    ],
)
def test_token_response_errors(body: object, status: int, kind: type, message: str) -> None:
    with pytest.raises(kind) as info:
        ok(body, status)
    assert message in str(info.value)
    assert type(info.value) is kind or issubclass(type(info.value), kind)


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert oauth.retry_after({"retry-after": "7"}, now) == 7.0
    date = "Tue, 14 Nov 2023 22:13:40 GMT"  # 20 s after now
    assert oauth.retry_after({"retry-after": date}, now) == pytest.approx(20.0, abs=1)
    assert oauth.retry_after({"x-ratelimit-reset": str(int(now) + 30)}, now) == 30.0
    assert oauth.retry_after({}, now) is None
    error = oauth.error_from_response(429, {"retry-after": "3"}, b"", what="refresh", now=now)
    assert isinstance(error, oauth.TransientError) and error.retry_after == 3.0
