"""The emulator's OAuth endpoints over HTTP: authorize (with the consent page), token, revoke.

oauthlib does the protocol (see :mod:`.oauth_server`); this module turns HTTP
requests into oauthlib calls and oauthlib's answers into HTTP responses, and
adds what a provider's authorization server does around the protocol: the
consent page or scripted consent, the audience choice, the company that
consents, and the one-installation-per-company rule.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
from oauthlib.common import urldecode
from oauthlib.oauth2 import WebApplicationServer
from oauthlib.oauth2.rfc6749 import errors as oauth_errors

from ..models import ClientAuthMethod, ProviderDeclaration, ScopeCatalogue
from .consent import AudienceChoice, ConsentPage, error_page, page_headers
from .http import HttpRequest, HttpResponse, json_response
from .spec import EmulatedCompany, EmulatorSpec
from .state import EmulatorApp, EmulatorState

__all__ = [
    "AUDIENCE_HEADER",
    "COMPANY_HEADER",
    "CONSENT_HEADER",
    "ERROR_DESCRIPTIONS",
    "AuthorizationEndpoints",
    "form_value",
    "parse_form",
]

#: ``allow`` or ``deny``: consent without the page (scripted clients). Query alternative: ``emulator_consent``.
CONSENT_HEADER = "X-Emulator-Consent"
#: ``KEY`` or ``KEY=option,option``: the audience for scripted consent. Query alternative: ``emulator_audience``.
AUDIENCE_HEADER = "X-Emulator-Audience"
#: The company that consents (default: the first). Query alternative: ``emulator_company``.
COMPANY_HEADER = "X-Emulator-Company"

#: How long a consent page stays usable.
CONSENT_TTL = 600

ERROR_DESCRIPTIONS = {
    "invalid_request": "The request is missing a parameter, repeats one, or is otherwise malformed.",
    "invalid_client": "Client authentication failed.",
    "invalid_grant": "The authorization code or refresh token is invalid, expired or revoked.",
    "invalid_scope": "The requested scope is invalid or not configured on the app.",
    "unauthorized_client": "The client may not use this grant type.",
    "unsupported_grant_type": "Only the authorization_code and refresh_token grant types are supported.",
    "unsupported_response_type": "Only response_type=code is supported.",
    "unsupported_token_type": "Only access and refresh tokens can be revoked.",
    "access_denied": "The resource owner denied the request.",
    "server_error": "The emulator failed unexpectedly.",
    "temporarily_unavailable": "The service is temporarily unavailable.",
}


@attrs.define
class _PendingConsent:
    uri: str
    headers: dict[str, str]
    scopes: tuple[str, ...]
    environment: str
    company_id: str
    redirect_uri: str
    state: str | None
    expires_at: float


_json = json_response


def _html(status: int, page: tuple[bytes, str], *, form_targets: Sequence[str] = ()) -> HttpResponse:
    body, nonce = page
    return HttpResponse(status, page_headers(nonce, form_targets=form_targets), body)


def _redirect(location: str) -> HttpResponse:
    return HttpResponse(302, {"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


class AuthorizationEndpoints:
    """Answers ``/ENV/oauth2/authorize``, ``consent``, ``token`` and ``revoke``."""

    def __init__(
        self,
        *,
        state: EmulatorState,
        spec: EmulatorSpec,
        declaration: ProviderDeclaration,
        catalogue: ScopeCatalogue | None,
        oauth_server: WebApplicationServer,
        client_auth_methods: Sequence[ClientAuthMethod],
        host: str,
        port: int,
        base_url: str,
    ) -> None:
        self._state = state
        self.spec = spec
        self.declaration = declaration
        self._catalogue = catalogue
        self._oauth_server = oauth_server
        self._client_auth_methods = tuple(client_auth_methods)
        self._host = host
        self.port = port
        self.base_url = base_url
        self._pending: dict[str, _PendingConsent] = {}

    @property
    def app(self) -> EmulatorApp:
        return self._state.app

    @property
    def company_ids(self) -> tuple[str, ...]:
        with self._state.lock:
            return tuple(self._state.companies)

    def company(self, company_id: str) -> EmulatedCompany:
        with self._state.lock:
            return self._state.companies[company_id]

    # --------------------------------------------------------------- authorize

    def _https_uri(self, request: HttpRequest) -> str:
        # oauthlib refuses plain-http URIs unless the process-wide
        # OAUTHLIB_INSECURE_TRANSPORT variable is set, which would weaken every
        # other OAuth client and server in the process. The emulator serves only
        # loopback addresses, so it hands oauthlib the https form of its own
        # request URI instead: oauthlib uses it only to read the query string and
        # path. The variable is never set, and the redirect URIs clients send are
        # checked by the emulator's own policy (RFC 8252 loopback rules).
        query = f"?{request.query}" if request.query else ""
        separator = self.spec.scope_separator
        if separator != " " and request.query and "scope=" in request.query:
            # A provider joining scopes with ',' or '+': oauthlib splits on spaces only.
            from urllib.parse import parse_qsl, urlencode  # on first use: only such providers need it

            pairs = [
                (k, " ".join(v.split(separator)) if k == "scope" else v)
                for k, v in parse_qsl(request.query, keep_blank_values=True)
            ]
            query = "?" + urlencode(pairs)
        return f"https://{self._host}:{self.port}{request.path}{query}"

    def _oauth_headers(self, request: HttpRequest) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k in ("authorization", "content-type", "origin")}

    def authorize(self, request: HttpRequest, env: str) -> HttpResponse:
        query = _parse_query(request.query)
        scripted_value = request.headers.get(CONSENT_HEADER.lower()) or _last(query, "emulator_consent")
        scripted = scripted_value is not None
        if request.method != "GET":
            return self._authorize_error(
                scripted, 405, "invalid_request", "The authorization endpoint takes GET requests.", {"Allow": "GET"}
            )
        if query is None:
            return self._authorize_error(scripted, 400, "invalid_request", "The query string is malformed.")
        uri = self._https_uri(request)
        headers = self._oauth_headers(request)
        try:
            with self._state.lock:
                scopes, info = self._oauth_server.validate_authorization_request(uri, "GET", None, headers)
        except oauth_errors.FatalClientError as exc:
            return self._authorize_error(scripted, exc.status_code, exc.error or "invalid_request", _describe(exc))
        except oauth_errors.OAuth2Error as exc:
            return _redirect(_error_uri(exc, exc.redirect_uri))
        redirect_uri: str = info["redirect_uri"]
        state: str | None = info.get("state")
        company_id = request.headers.get(COMPANY_HEADER.lower()) or _last(query, "emulator_company")
        company_id = company_id or self._state.default_company_id
        if company_id not in self.company_ids:
            return self._authorize_error(
                scripted,
                400,
                "invalid_request",
                f"Unknown company {company_id!r}; known: {', '.join(self.company_ids)}.",
            )
        pending = _PendingConsent(
            uri=uri,
            headers=headers,
            scopes=tuple(scopes),
            environment=env,
            company_id=company_id,
            redirect_uri=redirect_uri,
            state=state,
            expires_at=self._state.now() + CONSENT_TTL,
        )
        credential_set = self.declaration.environment(env).credential_set
        if self.spec.single_installation and self._state.installation(company_id, credential_set):
            # Fail before the page: the person cannot install it anyway.
            return self._already_installed(redirect_uri, state)
        if scripted:
            decision = (scripted_value or "").strip().lower()
            if decision not in ("allow", "deny"):
                return self._authorize_error(
                    True, 400, "invalid_request", f"{CONSENT_HEADER} must be allow or deny, got {scripted_value!r}."
                )
            if decision == "deny":
                return self._deny(redirect_uri, state)
            audience_value = request.headers.get(AUDIENCE_HEADER.lower()) or _last(query, "emulator_audience")
            key, _, raw_options = (audience_value or "").partition("=")
            options = tuple(o.strip() for o in raw_options.split(",") if o.strip())
            problem, audience, options = self._check_audience(company_id, key.strip() or None, options)
            if problem:
                return self._authorize_error(True, 400, "invalid_request", f"{AUDIENCE_HEADER}: {problem}")
            return self._grant(pending, scopes, audience, options)
        request_id = secrets.token_urlsafe(24)
        with self._state.lock:
            now = self._state.now()
            for key in [k for k, p in self._pending.items() if p.expires_at < now]:
                del self._pending[key]
            self._pending[request_id] = pending
        return self._consent_page(request_id, pending)

    def _authorize_error(
        self, scripted: bool, status: int, error: str, description: str, headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        if scripted:
            return _json(status, {"error": error, "error_description": description}, headers)
        response = _html(status, error_page("Authorization failed", error, description))
        return attrs.evolve(response, headers={**response.headers, **(headers or {})})

    def _already_installed(self, redirect_uri: str, state: str | None) -> HttpResponse:
        error = oauth_errors.CustomOAuth2Error(
            self.spec.already_installed_error, description=self.spec.already_installed_description, state=state
        )
        return _redirect(_error_uri(error, redirect_uri))

    def _deny(self, redirect_uri: str, state: str | None) -> HttpResponse:
        with self._state.lock:
            self._state.counters.consents["deny"] += 1
        error = oauth_errors.AccessDeniedError(description="The user denied the request.", state=state)
        return _redirect(_error_uri(error, redirect_uri))

    def _check_audience(
        self, company_id: str, key: str | None, options: tuple[str, ...]
    ) -> tuple[str | None, str, tuple[str, ...]]:
        """``(problem, audience, options)`` for a consent choice."""
        choices = self._audience_choices(company_id)
        if not choices:
            return None, "all", ()
        chosen = next((c for c in choices if c.key == key), None) if key else choices[0]
        if chosen is None:
            return f"unknown audience {key!r}; expected one of {', '.join(c.key for c in choices)}", "", ()
        if not chosen.options:
            return None, chosen.key, ()
        if not options:
            return f"choose at least one of: {', '.join(chosen.options)}", chosen.key, ()
        unknown = [o for o in options if o not in chosen.options]
        if unknown:
            return f"unknown {chosen.label.lower()} option(s) {', '.join(unknown)}", chosen.key, ()
        return None, chosen.key, tuple(dict.fromkeys(options))

    def _audience_choices(self, company_id: str) -> tuple[AudienceChoice, ...]:
        company = self.company(company_id)
        return tuple(
            AudienceChoice(
                key=a.key,
                label=a.label,
                description=a.description,
                options=tuple(a.options(company)) if a.options else (),
            )
            for a in self.spec.audiences
        )

    def _grant(
        self, consent: _PendingConsent, scopes: Sequence[str], audience: str, options: tuple[str, ...]
    ) -> HttpResponse:
        """Issue the code (and install the app), unless the app is installed already."""
        credential_set = self.declaration.environment(consent.environment).credential_set
        with self._state.lock:
            if self.spec.single_installation and self._state.installation(consent.company_id, credential_set):
                return self._already_installed(consent.redirect_uri, consent.state)
            try:
                response_headers, _, status = self._oauth_server.create_authorization_response(
                    consent.uri,
                    "GET",
                    None,
                    consent.headers,
                    scopes=list(scopes),
                    credentials={
                        "emulator_company": consent.company_id,
                        "emulator_audience": audience,
                        "emulator_audience_options": options,
                    },
                )
            except oauth_errors.FatalClientError as exc:
                return _json(exc.status_code, {"error": exc.error, "error_description": _describe(exc)})
            if status == 302 and "error=" not in urlsplit(response_headers["Location"]).query:
                self._state.counters.consents["allow"] += 1
        return _redirect(response_headers["Location"])

    def _consent_page(
        self,
        request_id: str,
        pending: _PendingConsent,
        *,
        error: str | None = None,
        chosen_audience: str | None = None,
        chosen_options: tuple[str, ...] = (),
        chosen_scopes: tuple[str, ...] | None = None,
    ) -> HttpResponse:
        env = self.declaration.environment(pending.environment)
        company = self.company(pending.company_id)
        assert self._catalogue is not None  # no authorize endpoint, so no consent page, without one
        page = ConsentPage(
            provider_name=self.declaration.provider.display_name,
            app_name=self.app.name,
            app_id=self.app.app_id,
            app_description=self.spec.app.description,
            environment_label=env.label,
            credential_set=env.credential_set,
            company_id=company.id,
            company_name=company.name,
            scopes=pending.scopes,
            catalogue=self._catalogue,
            audiences=self._audience_choices(company.id),
            all_or_nothing=self.spec.all_or_nothing_consent,
            request_id=request_id,
            action=f"/{env.key}/oauth2/consent",
            redirect_uri=pending.redirect_uri,
            error=error,
            chosen_audience=chosen_audience,
            chosen_options=chosen_options,
            chosen_scopes=chosen_scopes,
        )
        return _html(400 if error else 200, page.render(), form_targets=(_origin(pending.redirect_uri),))

    def consent(self, request: HttpRequest, env: str) -> HttpResponse:
        if request.method != "POST":
            return self._authorize_error(
                False, 405, "invalid_request", "The consent form is submitted with POST.", {"Allow": "POST"}
            )
        # Browsers send "Origin: null" from a page with Referrer-Policy: no-referrer; a
        # real other site is refused. The single-use request_id is the form's CSRF token.
        origin = request.headers.get("origin")
        if origin and origin not in ("null", self.base_url, f"http://localhost:{self.port}"):
            return self._authorize_error(False, 403, "access_denied", "The consent form was posted from another site.")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        form = parse_form(request.body) if content_type == "application/x-www-form-urlencoded" else None
        if form is None:
            return self._authorize_error(False, 400, "invalid_request", "Expected the consent form's fields.")
        request_id = _last(form, "request_id") or ""
        with self._state.lock:
            pending = self._pending.pop(request_id, None)
        if pending is None or pending.environment != env or pending.expires_at < self._state.now():
            return self._authorize_error(
                False,
                400,
                "invalid_request",
                "This consent page has expired or was already used; start the authorization again.",
            )
        decision = _last(form, "decision")
        if decision == "deny":
            return self._deny(pending.redirect_uri, pending.state)
        if decision != "allow":
            return self._retry(request_id, pending, "Choose Allow or Deny.")
        key = _last(form, "audience")
        options = tuple(form.get(f"option:{key}", ())) if key else ()
        problem, audience, options = self._check_audience(pending.company_id, key, options)
        scopes = pending.scopes
        chosen_scopes = None
        if not self.spec.all_or_nothing_consent:
            chosen_scopes = tuple(s for s in pending.scopes if s in form.get("scope", ()))
            scopes = chosen_scopes
            if not problem and not scopes:
                problem = "Allow at least one kind of access, or choose Deny."
        if problem:
            return self._retry(request_id, pending, problem[0].upper() + problem[1:], key, options, chosen_scopes)
        return self._grant(pending, scopes, audience, options)

    def _retry(
        self,
        request_id: str,
        pending: _PendingConsent,
        error: str,
        audience: str | None = None,
        options: tuple[str, ...] = (),
        scopes: tuple[str, ...] | None = None,
    ) -> HttpResponse:
        with self._state.lock:
            self._pending[request_id] = pending
        return self._consent_page(
            request_id, pending, error=error, chosen_audience=audience, chosen_options=options, chosen_scopes=scopes
        )

    # ------------------------------------------------------- token, revocation

    def _form_request(self, request: HttpRequest) -> tuple[str, str] | HttpResponse:
        """The (https URI, body text) oauthlib gets, or an RFC 6749 error response."""
        if request.body:
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/x-www-form-urlencoded":
                return self._oauth_error(400, "invalid_request", "Send an application/x-www-form-urlencoded body.")
        try:
            body = request.body.decode("utf-8")
            urldecode(body)
            urldecode(request.query)
        except (UnicodeDecodeError, ValueError):
            return self._oauth_error(400, "invalid_request", "The request body or query string is malformed.")
        return self._https_uri(request), body

    def token(self, request: HttpRequest) -> HttpResponse:
        return self._form_endpoint(request, self._oauth_server.create_token_response)

    def revoke(self, request: HttpRequest) -> HttpResponse:
        return self._form_endpoint(request, self._oauth_server.create_revocation_response)

    def _form_endpoint(self, request: HttpRequest, create: Callable[..., Any]) -> HttpResponse:
        """A form-posted oauthlib endpoint (token, revocation), run under the state lock."""
        prepared = self._form_request(request)
        if isinstance(prepared, HttpResponse):
            return prepared
        uri, body = prepared
        with self._state.lock:
            try:
                headers, text, status = create(uri, request.method, body, self._oauth_headers(request))
            except oauth_errors.OAuth2Error as exc:
                headers, text, status = exc.headers, exc.json, exc.status_code
        return self._oauth_response(request, dict(headers), text, status)

    def _oauth_response(
        self, request: HttpRequest, headers: dict[str, str], text: str | None, status: int
    ) -> HttpResponse:
        """oauthlib's answer, with an error_description always present and the right challenge."""
        headers.setdefault("Cache-Control", "no-store")
        data: Any = None
        if text:
            data = json.loads(text)
        if isinstance(data, dict) and "error" in data:
            data.setdefault("error_description", ERROR_DESCRIPTIONS.get(data["error"], "The request failed."))
            if data["error"] == "invalid_client":
                status = 401
                headers.pop("WWW-Authenticate", None)
                if ClientAuthMethod.CLIENT_SECRET_BASIC in self._client_auth_methods:
                    headers["WWW-Authenticate"] = f'Basic realm="{self.declaration.key} emulator", charset="UTF-8"'
            text = json.dumps(data)
        if request.method != "POST" and isinstance(data, dict) and data.get("error") == "invalid_request":
            status, headers["Allow"] = 405, "POST"
        if text:
            headers["Content-Type"] = "application/json"
        return HttpResponse(status, headers, (text or "").encode())

    @staticmethod
    def _oauth_error(status: int, error: str, description: str) -> HttpResponse:
        return _json(status, {"error": error, "error_description": description}, {"Cache-Control": "no-store"})


# ----------------------------------------------------------------------- helpers


def _parse_query(query: str) -> dict[str, list[str]] | None:
    try:
        pairs = urldecode(query)
    except ValueError:
        return None
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def parse_form(body: bytes) -> dict[str, list[str]] | None:
    """A form-encoded body's fields, or ``None`` when it is not one."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _parse_query(text)


def form_value(body: bytes, name: str) -> str | None:
    """One field of a form-encoded body, or ``None``."""
    form = parse_form(body)
    return _last(form, name) if form is not None else None


def _last(values: Mapping[str, Sequence[str]] | None, name: str) -> str | None:
    if not values:
        return None
    found = values.get(name)
    return found[-1] if found else None


def _describe(exc: oauth_errors.OAuth2Error) -> str:
    return str(exc.description or ERROR_DESCRIPTIONS.get(exc.error or "", "The request failed."))


def _error_uri(exc: oauth_errors.OAuth2Error, redirect_uri: str | None) -> str:
    if not redirect_uri:  # oauthlib reports errors without a usable redirect URI as fatal, so never here
        raise AssertionError(f"no redirect URI for {exc.error}")
    if not exc.description:
        exc.description = ERROR_DESCRIPTIONS.get(exc.error or "", "")
    return str(exc.in_uri(redirect_uri))
