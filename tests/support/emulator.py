"""Helpers shared by the emulator tests (this module holds no tests itself).

:class:`Flow` drives the OAuth flow against a running emulator with plain
httpx, the way a platform's client would: authorize with scripted consent,
exchange the code, refresh, revoke, call the API.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from connector_core.emulator import RunningEmulator, start_emulator
from connector_core.testing import http_client
from support import hibob

REDIRECT = "http://127.0.0.1:8765/connect/oauth2/hibob/callback"


@contextmanager
def running(**kwargs: Any) -> Iterator[RunningEmulator]:
    """A HiBob emulator that fails the test if anything inside it crashed."""
    with start_emulator("hibob", plugins=hibob(), **kwargs) as emu:
        yield emu
        assert emu.unexpected_errors == ()


def query_of(response: httpx.Response) -> dict[str, str]:
    """The query parameters of a redirect's Location."""
    assert response.status_code == 302, (response.status_code, response.text)
    return {k: v[-1] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Flow:
    """One client of the emulator's test app, for one environment."""

    def __init__(self, emu: RunningEmulator, environment: str = "sandbox", *, redirect_uri: str = REDIRECT) -> None:
        self.emu = emu
        self.endpoints = emu.endpoints(environment)
        self.creds = emu.app.credentials[self.endpoints.credential_set]
        self.redirect_uri = redirect_uri
        self.verifier: str | None = None
        self.http = http_client(timeout=10, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    @property
    def basic(self) -> tuple[str, str]:
        return self.creds.client_id, self.creds.client_secret.reveal()

    def authorize(
        self,
        scope: str | None = "employee_data:read",
        *,
        state: str = "state-1",
        consent: str | None = "allow",
        audience: str | None = None,
        pkce: bool = True,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        query = {
            "response_type": "code",
            "client_id": self.creds.client_id,
            "redirect_uri": self.redirect_uri,
            "state": state,
        }
        if scope is not None:
            query["scope"] = scope
        if pkce:
            self.verifier, challenge = pkce_pair()
            query.update(code_challenge=challenge, code_challenge_method="S256")
        query.update(params or {})
        sent = dict(headers or {})
        if consent is not None:
            sent["X-Emulator-Consent"] = consent
        if audience is not None:
            sent["X-Emulator-Audience"] = audience
        return self.http.get(self.endpoints.authorize_url, params=query, headers=sent)

    def code(self, scope: str = "employee_data:read", **kwargs: Any) -> str:
        answer = query_of(self.authorize(scope, **kwargs))
        assert "code" in answer, answer
        assert answer["state"] == kwargs.get("state", "state-1")
        return answer["code"]

    def exchange(
        self, code: str, *, method: str = "basic", verifier: str | None = None, redirect_uri: str | None = "same"
    ) -> httpx.Response:
        data = {"grant_type": "authorization_code", "code": code}
        if redirect_uri is not None:
            data["redirect_uri"] = self.redirect_uri if redirect_uri == "same" else redirect_uri
        if verifier is not None or self.verifier is not None:
            data["code_verifier"] = verifier if verifier is not None else str(self.verifier)
        return self._token(data, method)

    def connect(self, scope: str = "employee_data:read", **kwargs: Any) -> dict[str, Any]:
        response = self.exchange(self.code(scope, **kwargs))
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    def refresh(self, refresh_token: str, *, method: str = "basic") -> httpx.Response:
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token}, method)

    def _token(self, data: dict[str, str], method: str) -> httpx.Response:
        if method == "basic":
            return self.http.post(self.endpoints.token_url, data=data, auth=self.basic)
        if method == "post":
            data = {**data, "client_id": self.creds.client_id, "client_secret": self.creds.client_secret.reveal()}
            return self.http.post(self.endpoints.token_url, data=data)
        return self.http.post(self.endpoints.token_url, data=data)

    def revoke(self, token: str, hint: str | None = None) -> httpx.Response:
        data = {"token": token} | ({"token_type_hint": hint} if hint else {})
        return self.http.post(self.endpoints.revocation_url, data=data, auth=self.basic)

    def api(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        return self.http.request(method, self.endpoints.api_base_url + path, headers=headers, **kwargs)

    def search(self, token: str, **body: Any) -> httpx.Response:
        return self.api("POST", "/people/search", token, json=body or {"fields": ["root.id"]})
