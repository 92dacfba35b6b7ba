"""The running emulator: routes, the consent flow, resources, and the public object tests hold.

URL layout, for each environment key ``ENV`` of the provider's declaration::

    GET  /ENV/oauth2/authorize     authorization endpoint (consent page, or scripted consent)
    POST /ENV/oauth2/consent       the consent page's form
    POST /ENV/oauth2/token         token endpoint (authorization_code, refresh_token)
    POST /ENV/oauth2/revoke        RFC 7009 revocation endpoint
    *    /ENV/api/v1/...           resource endpoints (the API base path comes from the declaration)
    GET  /emulator/info            the app, client IDs, endpoints, companies and installations (no secrets)
    POST /emulator/uninstall       uninstall the app from a company (revokes its tokens)
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
from oauthlib.common import urldecode
from oauthlib.oauth2.rfc6749 import errors as oauth_errors

from ..errors import ConnectorError, UnknownNameError, ValidationError
from ..models import ClientAuthMethod, OAuth2AuthorizationCode, ProviderDeclaration, is_loopback_host, url_problem
from .consent import AudienceChoice, ConsentPage, error_page, page_headers
from .faults import FaultKind, Faults, fault_response
from .http import HttpRequest, HttpResponse, LoopbackServer, json_response
from .oauth_server import REASONS, EmulatorValidator, RedirectPolicy, build_server
from .spec import EmulatedCompany, EmulatorSpec, ResourceEndpoint, ResourceError, ResourceRequest, ResourceResponse
from .state import EmulatorApp, EmulatorState, EmulatorStats, InstallationInfo, _Counters

__all__ = [
    "AUDIENCE_HEADER",
    "COMPANY_HEADER",
    "CONSENT_HEADER",
    "EmulatorEndpoints",
    "EmulatorError",
    "RunningEmulator",
    "UnexpectedError",
    "start_emulator",
]

#: ``allow`` or ``deny``: consent without the page (scripted clients). Query alternative: ``emulator_consent``.
CONSENT_HEADER = "X-Emulator-Consent"
#: ``KEY`` or ``KEY=option,option``: the audience for scripted consent. Query alternative: ``emulator_audience``.
AUDIENCE_HEADER = "X-Emulator-Audience"
#: The company that consents (default: the first). Query alternative: ``emulator_company``.
COMPANY_HEADER = "X-Emulator-Company"

#: How long a consent page stays usable.
CONSENT_TTL = 600

_DEFAULT_DESCRIPTIONS = {
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


class EmulatorError(ConnectorError):
    """The emulator cannot start, or one of its handlers crashed during a run."""


@attrs.frozen
class UnexpectedError:
    """An exception inside the emulator: a bug, which tests must see."""

    where: str
    error: str
    traceback: str


@attrs.frozen
class EmulatorEndpoints:
    """The URLs a platform's profile uses for one environment of the emulator."""

    environment: str
    credential_set: str
    authorize_url: str
    token_url: str
    revocation_url: str
    api_base_url: str


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


class RunningEmulator:
    """An emulator serving on a loopback port in a background thread.

    Get one from :func:`start_emulator`; use it as a context manager, or call
    :meth:`close`. Thread-safe.
    """

    def __init__(
        self,
        declaration: ProviderDeclaration,
        spec: EmulatorSpec,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        snapshot: str | Path | None = None,
        access_token_lifetime: int | None = None,
        redirect_uris: Iterable[str] = (),
        allow_loopback_redirects: bool = True,
        clock: Callable[[], float] = time.time,
        log: Callable[[str], None] | None = None,
        raise_on_error: bool = True,
    ) -> None:
        self.declaration = declaration
        self.spec = spec
        self._raise_on_error = raise_on_error
        self._log = log or (lambda line: None)
        self._errors: list[UnexpectedError] = []
        self._reported = False
        self._errors_lock = threading.Lock()
        self._stopping = threading.Event()
        self._pending: dict[str, _PendingConsent] = {}
        if not is_loopback_host(host):
            raise ValidationError("host", f"the emulator listens on loopback addresses only, got {host!r}")
        if access_token_lifetime is not None and access_token_lifetime < 1:
            raise ValidationError("access_token_lifetime", f"expected at least 1 second, got {access_token_lifetime}")

        oauth = next((a for a in declaration.auth_types if isinstance(a, OAuth2AuthorizationCode)), None)
        catalogue = declaration.scope_catalogue
        if oauth is None or catalogue is None:
            raise EmulatorError(f"provider {declaration.key!r} has no OAuth 2.0 auth type to emulate")
        self._oauth = oauth
        self._catalogue = catalogue
        env_sets = {env.key: env.credential_set for env in declaration.environments}
        credential_sets = spec.app.credential_sets or tuple(dict.fromkeys(env_sets.values()))
        missing = sorted(set(env_sets.values()) - set(credential_sets))
        if missing:
            raise EmulatorError(f"the emulated app has no credential set for: {', '.join(missing)}")
        app_scopes = catalogue.names if spec.app.scopes is None else spec.app.scopes
        unknown = [s for s in (*app_scopes, *(s for r in spec.resources for s in r.scopes)) if s not in catalogue]
        if unknown:
            raise EmulatorError(
                f"the emulator spec names scopes not in the catalogue: {', '.join(sorted(set(unknown)))}"
            )
        registered = list(redirect_uris) or list(spec.app.redirect_uris)
        if not registered and declaration.callback is not None and declaration.callback.default_base_url:
            registered = [declaration.callback.url(declaration.callback.default_base_url)]
        for uri in registered:
            problem = url_problem(uri)
            if problem:
                raise ValidationError("redirect URI", f"{problem}, got {uri!r}")
        self._api_paths = {env.key: urlsplit(env.api_base_url).path.rstrip("/") for env in declaration.environments}

        self._state = EmulatorState(
            provider_key=declaration.key,
            spec=spec,
            app_scopes=tuple(app_scopes),
            credential_sets=tuple(credential_sets),
            redirect_uris=registered,
            clock=clock,
            snapshot=Path(snapshot) if snapshot is not None else None,
            access_token_lifetime=access_token_lifetime,
        )
        self._redirects = RedirectPolicy(self._state, allow_loopback=allow_loopback_redirects)
        self._validator = EmulatorValidator(
            self._state,
            spec=spec,
            credential_sets=env_sets,
            client_auth_methods=spec.client_auth_methods or (oauth.client_auth_method,),
            catalogue=catalogue.names,
            default_scopes=catalogue.default_scopes,
            redirects=self._redirects,
        )
        self._oauth_server = build_server(self._validator, lambda: self._state.access_token_lifetime)
        self.faults = Faults([*(r.name for r in spec.resources), *(r.path for r in spec.resources)])
        self._server = LoopbackServer(host, port, self._handle, self._log, self._server_error)
        self._host = host
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"connector-emulator-{declaration.key}-{self._server.port}",
            daemon=True,
        )
        self._thread.start()
        self._state.flush(force=True)

    # ------------------------------------------------------------------ public

    def __repr__(self) -> str:
        return f"<RunningEmulator {self.declaration.key} at {self.base_url}>"

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(check=exc is None)

    def close(self, *, check: bool = True) -> None:
        """Stop serving. With ``check`` (and ``raise_on_error``), raise :class:`EmulatorError`
        if anything inside the emulator crashed during the run."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._state.flush(force=True)
        if check and self._raise_on_error and not self._reported:
            self._reported = True
            self.raise_unexpected_errors()

    @property
    def base_url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._server.port}"

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def app(self) -> EmulatorApp:
        """The test app: App ID, configured scopes and client credentials by credential set."""
        return self._state.app

    @property
    def environments(self) -> tuple[str, ...]:
        return tuple(env.key for env in self.declaration.environments)

    def endpoints(self, environment: str | None = None) -> EmulatorEndpoints:
        """The URLs of one environment (the provider's default environment when ``None``)."""
        env = self.declaration.environment(environment)
        prefix = f"{self.base_url}/{env.key}"
        return EmulatorEndpoints(
            environment=env.key,
            credential_set=env.credential_set,
            authorize_url=f"{prefix}/oauth2/authorize",
            token_url=f"{prefix}/oauth2/token",
            revocation_url=f"{prefix}/oauth2/revoke",
            api_base_url=f"{prefix}/api{self._api_paths[env.key]}",
        )

    @property
    def uninstall_url(self) -> str:
        return f"{self.base_url}/emulator/uninstall"

    @property
    def redirect_uris(self) -> tuple[str, ...]:
        """The registered redirect URIs (loopback URIs are accepted as well unless switched off)."""
        return self._redirects.registered

    def register_redirect_uri(self, uri: str) -> None:
        """Register one more redirect URI on the test app."""
        problem = url_problem(uri)
        if problem:
            raise ValidationError("redirect URI", f"{problem}, got {uri!r}")
        with self._state.lock:
            if uri not in self._state.redirect_uris:
                self._state.redirect_uris.append(uri)
                self._state.flush()

    @property
    def companies(self) -> tuple[EmulatedCompany, ...]:
        with self._state.lock:
            return tuple(self._state.companies.values())

    @property
    def company_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.companies)

    @property
    def default_company_id(self) -> str:
        """The company that consents when a request names none."""
        return self._state.default_company_id

    def company(self, company_id: str | None = None) -> EmulatedCompany:
        with self._state.lock:
            key = company_id or self._state.default_company_id
            if key not in self._state.companies:
                raise UnknownNameError("company", key, tuple(self._state.companies))
            return self._state.companies[key]

    def add_company(self) -> EmulatedCompany:
        """Generate another company (from the next seed); returns it."""
        company = self._state.add_company()
        self._state.flush()
        return company

    def installations(self) -> tuple[InstallationInfo, ...]:
        with self._state.lock:
            return tuple(self._state.installations.values())

    def uninstall(self, company_id: str | None = None, credential_set: str | None = None) -> int:
        """Uninstall the app from a company (default: the first), as a person does in the
        provider's web app: the installation's codes and tokens stop working at once.
        Returns how many installations were removed (0 when it was not installed)."""
        company = self.company(company_id)
        if credential_set is not None and credential_set not in self.app.credentials:
            raise UnknownNameError("credential set", credential_set, tuple(self.app.credentials))
        removed = self._state.uninstall(company.id, credential_set)
        self._state.flush()
        return removed

    def set_access_token_lifetime(self, seconds: int) -> None:
        """Lifetime of access tokens issued from now on."""
        if not isinstance(seconds, int) or seconds < 1:
            raise ValidationError("access token lifetime", f"expected at least 1 second, got {seconds!r}")
        with self._state.lock:
            self._state.access_token_lifetime = seconds
            self._state.flush()

    @property
    def access_token_lifetime(self) -> int:
        return self._state.access_token_lifetime

    def set_rate_limit(self, endpoint: str, per_minute: int | None) -> None:
        """Change one resource endpoint's per-minute limit (``None``: unlimited)."""
        resource = self.spec.resource(endpoint)
        if resource is None:
            raise UnknownNameError("resource endpoint", endpoint, tuple(r.name for r in self.spec.resources))
        with self._state.lock:
            if per_minute is None:
                self._state.rate_limits.pop(resource.name, None)
            else:
                self._state.rate_limits[resource.name] = per_minute

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward: codes and tokens expire, rate-limit windows pass."""
        with self._state.lock:
            self._state.clock_offset += seconds
            self._state.flush()

    def now(self) -> float:
        """The emulator's clock, Unix seconds."""
        return self._state.now()

    @property
    def stats(self) -> EmulatorStats:
        """A copy of the counters: token requests by grant type, resource calls..."""
        with self._state.lock:
            return self._state.counters.freeze()

    def reset_stats(self) -> None:
        with self._state.lock:
            self._state.counters = _Counters()

    @property
    def unexpected_errors(self) -> tuple[UnexpectedError, ...]:
        """Exceptions raised inside the emulator (each one is a bug in it or in a handler)."""
        with self._errors_lock:
            return tuple(self._errors)

    def raise_unexpected_errors(self) -> None:
        """Raise :class:`EmulatorError` if anything crashed inside the emulator."""
        found = self.unexpected_errors
        if found:
            first = found[0]
            raise EmulatorError(
                f"the emulator hit {len(found)} unexpected error(s); the first, in {first.where}: {first.error}"
            )

    def info(self) -> dict[str, Any]:
        """What ``GET /emulator/info`` answers: no secrets."""
        return {
            "provider": self.declaration.key,
            "base_url": self.base_url,
            "app": {
                "app_id": self.app.app_id,
                "name": self.app.name,
                "scopes": list(self.app.scopes),
                "credentials": {cs: {"client_id": c.client_id} for cs, c in self.app.credentials.items()},
            },
            "environments": {env: attrs.asdict(self.endpoints(env)) for env in self.environments},
            "redirect_uris": list(self.redirect_uris),
            "allow_loopback_redirects": self._redirects.allow_loopback,
            "access_token_lifetime": self.access_token_lifetime,
            "companies": [{"id": c.id, "name": c.name} for c in self.companies],
            "installations": [attrs.asdict(i) for i in self.installations()],
            "uninstall_url": self.uninstall_url,
        }

    # ------------------------------------------------------------ internals

    def _server_error(self, error: BaseException) -> None:
        self._record("HTTP server", error)

    def _record(self, where: str, error: BaseException) -> None:
        text = "".join(traceback.format_exception(error))
        with self._errors_lock:
            self._errors.append(UnexpectedError(where, f"{type(error).__name__}: {error}", text))
        self._log(f"emulator: unexpected error in {where}: {type(error).__name__}: {error}")

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _handle(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self._route(request)
            self._state.flush()
        except Exception as exc:  # noqa: BLE001 - recorded and reported; the server must keep answering
            self._record(f"{request.method} {request.path}", exc)
            response = _json(500, {"error": "server_error", "error_description": _DEFAULT_DESCRIPTIONS["server_error"]})
        return response

    def _route(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path in ("/", "/emulator/info"):
            return self._allow(request, ("GET", "HEAD")) or _json(200, self.info())
        if path == "/favicon.ico":  # browsers ask on every page; no icon, and no error in their console
            return HttpResponse(204, {"Cache-Control": "max-age=86400"})
        if path == "/emulator/uninstall":
            return self._allow(request, ("POST",)) or self._uninstall_endpoint(request)
        segments = path.split("/", 3)
        env_keys = {env.key for env in self.declaration.environments}
        if len(segments) < 3 or segments[1] not in env_keys:
            return _json(404, {"error": "not_found", "error_description": f"No emulator endpoint at {path}."})
        env = segments[1]
        rest = "/" + "/".join(segments[2:])
        if rest == "/oauth2/authorize":
            return self._with_faults(("authorize", "*"), "oauth", request, lambda: self._authorize(request, env))
        if rest == "/oauth2/consent":
            return self._with_faults(("consent", "*"), "oauth", request, lambda: self._consent(request, env))
        if rest == "/oauth2/token":
            grant_type = _form_value(request.body, "grant_type")
            with self._state.lock:
                self._state.counters.token_requests[grant_type or ""] += 1
            return self._with_faults(("token", "*"), "oauth", request, lambda: self._token(request))
        if rest == "/oauth2/revoke":
            with self._state.lock:
                self._state.counters.revocation_requests += 1
            return self._with_faults(("revocation", "*"), "oauth", request, lambda: self._revoke(request))
        api_prefix = f"/api{self._api_paths[env]}"
        if rest.startswith(api_prefix + "/"):
            return self._resource(request, env, rest[len(api_prefix) :])
        return _json(404, {"error": "not_found", "error_description": f"No emulator endpoint at {path}."})

    @staticmethod
    def _allow(request: HttpRequest, methods: Sequence[str]) -> HttpResponse | None:
        if request.method in methods:
            return None
        return _json(
            405,
            {"error": "invalid_request", "error_description": f"Use {' or '.join(methods)} for {request.path}."},
            {"Allow": ", ".join(methods)},
        )

    # ------------------------------------------------------------------ faults

    def _with_faults(
        self, names: Sequence[str], style: str, request: HttpRequest, process: Callable[[], HttpResponse]
    ) -> HttpResponse:
        fault = self.faults.take(names)
        if fault is None:
            return process()
        with self._state.lock:
            self._state.counters.faults_injected[fault.kind.value] += 1
        if fault.kind is FaultKind.SLOW:
            if not fault.after_processing:
                self._sleep(fault.delay)
                return process()
            response = process()
            self._sleep(fault.delay)
            return response
        processed = process() if fault.processed else None
        with self._state.lock:
            limit = self._state.rate_limits.get(names[0])
        return fault_response(
            fault, processed, error_body=self.spec.error_body if style == "api" else None, rate_limit=limit
        )

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
        return f"https://{self._host}:{self.port}{request.path}{query}"

    def _oauth_headers(self, request: HttpRequest) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k in ("authorization", "content-type", "origin")}

    def _authorize(self, request: HttpRequest, env: str) -> HttpResponse:
        with self._state.lock:
            self._state.counters.authorize_requests += 1
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

    def _consent(self, request: HttpRequest, env: str) -> HttpResponse:
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
        form = _parse_form(request.body) if content_type == "application/x-www-form-urlencoded" else None
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

    def _token(self, request: HttpRequest) -> HttpResponse:
        prepared = self._form_request(request)
        if isinstance(prepared, HttpResponse):
            return prepared
        uri, body = prepared
        with self._state.lock:
            try:
                headers, text, status = self._oauth_server.create_token_response(
                    uri,
                    request.method,  # type: ignore[arg-type]
                    body,
                    self._oauth_headers(request),
                )
            except oauth_errors.OAuth2Error as exc:
                headers, text, status = exc.headers, exc.json, exc.status_code
        return self._oauth_response(request, dict(headers), text, status)

    def _revoke(self, request: HttpRequest) -> HttpResponse:
        prepared = self._form_request(request)
        if isinstance(prepared, HttpResponse):
            return prepared
        uri, body = prepared
        with self._state.lock:
            try:
                headers, text, status = self._oauth_server.create_revocation_response(
                    uri,
                    request.method,  # type: ignore[arg-type]
                    body,
                    self._oauth_headers(request),
                )
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
            data.setdefault("error_description", _DEFAULT_DESCRIPTIONS.get(data["error"], "The request failed."))
            if data["error"] == "invalid_client":
                status = 401
                headers.pop("WWW-Authenticate", None)
                if ClientAuthMethod.CLIENT_SECRET_BASIC in self._validator.client_auth_methods:
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

    # ---------------------------------------------------------------- resources

    def _resource(self, request: HttpRequest, env: str, path: str) -> HttpResponse:
        matches = [(r, params) for r in self.spec.resources if (params := r.match(path)) is not None]
        if not matches:
            return _json(404, self.spec.error_body(404, "not_found", f"No such endpoint: {request.method} {path}."))
        chosen = next(((r, p) for r, p in matches if r.method == request.method), None)
        if chosen is None:
            allowed = ", ".join(sorted({r.method for r, _ in matches}))
            return _json(
                405,
                self.spec.error_body(405, "method_not_allowed", f"Use {allowed} for {path}."),
                {"Allow": allowed},
            )
        resource, raw_params = chosen
        params = {name: unquote(value) for name, value in raw_params.items()}
        with self._state.lock:
            self._state.counters.resource_calls[resource.name] += 1
        names = (resource.name, resource.path, "api", "*")
        return self._with_faults(
            names, "api", request, lambda: self._call_resource(request, env, path, resource, params)
        )

    def _call_resource(
        self, request: HttpRequest, env: str, path: str, resource: ResourceEndpoint, params: dict[str, str]
    ) -> HttpResponse:
        realm = f'Bearer realm="{self.declaration.key} emulator"'
        error_body = self.spec.error_body
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _json(
                401,
                error_body(401, "unauthorized", "Send an access token: Authorization: Bearer TOKEN."),
                {"WWW-Authenticate": realm},
            )
        credential_set = self.declaration.environment(env).credential_set
        with self._state.lock:
            record = self._state.token(token)
            problem = None
            if record is None or record.kind != "access":
                problem = "The access token is unknown."
            elif record.revoked:
                problem = f"The access token is no longer valid: {REASONS.get(record.revoked_reason or '', 'revoked')}."
            elif not record.usable(self._state.now()):
                problem = "The access token has expired; refresh it."
            elif record.credential_set != credential_set:
                problem = (
                    f"The access token was issued for the {record.credential_set} credentials, not this environment."
                )
            elif self._state.installation(record.company_id, record.credential_set) is None:
                problem = "The app is not installed in this company."
            if problem or record is None:
                challenge = f'{realm}, error="invalid_token", error_description="{problem}"'
                return _json(401, error_body(401, "unauthorized", problem or ""), {"WWW-Authenticate": challenge})
            missing = [s for s in resource.scopes if s not in record.scopes]
            if missing:
                needed = " ".join(resource.scopes)
                return _json(
                    403,
                    error_body(
                        403,
                        "forbidden",
                        f"This call needs the scope(s) {needed}; the token lacks {' '.join(missing)}.",
                    ),
                    {"WWW-Authenticate": f'{realm}, error="insufficient_scope", scope="{needed}"'},
                )
            installation = self._state.installation(record.company_id, record.credential_set)
            assert installation is not None
            limit = self._state.count_request(resource.name, record.company_id, record.credential_set)
            now = self._state.now()
        limit_headers: dict[str, str] = {}
        if limit is not None:
            allowed, ceiling, remaining, reset = limit
            limit_headers = {
                "X-RateLimit-Limit": str(ceiling),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(reset),
            }
            if not allowed:
                wait = max(1, int(reset - now + 0.999))
                message = f"Rate limit of {ceiling} requests per minute exceeded; retry after {wait} seconds."
                return _json(
                    429, error_body(429, "too_many_requests", message), {**limit_headers, "Retry-After": str(wait)}
                )
        call = ResourceRequest(
            method=request.method,
            path=path,
            path_params=params,
            query={k: tuple(v) for k, v in parse_qs(request.query, keep_blank_values=True).items()},
            headers=dict(request.headers),
            body=request.body,
            company=self.company(record.company_id),
            audience=installation.audience,
            audience_options=installation.audience_options,
            scopes=frozenset(record.scopes),
            client_id=record.client_id,
            environment=env,
            now=now,
        )
        try:
            result = resource.handler(call)
        except ResourceError as exc:
            return _json(exc.status, error_body(exc.status, exc.key, exc.message), limit_headers)
        if not isinstance(result, ResourceResponse):
            raise TypeError(f"handler of {resource.name} returned {type(result).__name__}; expected ResourceResponse")
        return _json(result.status, result.json, {**limit_headers, **result.headers})

    # ------------------------------------------------------------------ control

    def _uninstall_endpoint(self, request: HttpRequest) -> HttpResponse:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fields: dict[str, Any] = {}
        if request.body:
            if content_type == "application/json":
                try:
                    data = json.loads(request.body)
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    return _json(400, {"error": "invalid_request", "error_description": "Expected a JSON object."})
                fields = data
            else:
                form = _parse_form(request.body)
                if form is None:
                    return _json(400, {"error": "invalid_request", "error_description": "Malformed form body."})
                fields = {k: v[-1] for k, v in form.items()}
        provider = fields.get("provider")
        if provider is not None and provider != self.declaration.key:
            return _json(
                400,
                {
                    "error": "invalid_request",
                    "error_description": f"This emulator imitates {self.declaration.key!r}, not {provider!r}.",
                },
            )
        company = fields.get("company") or fields.get("company_id")
        credential_set = fields.get("credential_set")
        for name, value in (("company", company), ("credential_set", credential_set)):
            if value is not None and not isinstance(value, str):
                return _json(400, {"error": "invalid_request", "error_description": f"{name} must be a string."})
        try:
            removed = self.uninstall(company, credential_set)
        except UnknownNameError as exc:
            return _json(404, {"error": "not_found", "error_description": exc.message})
        return _json(
            200,
            {
                "provider": self.declaration.key,
                "company_id": company or self.default_company_id,
                "credential_set": credential_set,
                "uninstalled": removed,
            },
        )


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


def _parse_form(body: bytes) -> dict[str, list[str]] | None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _parse_query(text)


def _form_value(body: bytes, name: str) -> str | None:
    form = _parse_form(body)
    return _last(form, name) if form is not None else None


def _last(values: Mapping[str, Sequence[str]] | None, name: str) -> str | None:
    if not values:
        return None
    found = values.get(name)
    return found[-1] if found else None


def _describe(exc: oauth_errors.OAuth2Error) -> str:
    return str(exc.description or _DEFAULT_DESCRIPTIONS.get(exc.error or "", "The request failed."))


def _error_uri(exc: oauth_errors.OAuth2Error, redirect_uri: str | None) -> str:
    if not redirect_uri:  # oauthlib reports errors without a usable redirect URI as fatal, so never here
        raise AssertionError(f"no redirect URI for {exc.error}")
    if not exc.description:
        exc.description = _DEFAULT_DESCRIPTIONS.get(exc.error or "", "")
    return str(exc.in_uri(redirect_uri))


def start_emulator(
    provider: str | ProviderDeclaration,
    spec: EmulatorSpec | None = None,
    *,
    plugins: Any = None,
    port: int = 0,
    host: str = "127.0.0.1",
    snapshot: str | Path | None = None,
    access_token_lifetime: int | None = None,
    redirect_uris: Iterable[str] = (),
    allow_loopback_redirects: bool = True,
    clock: Callable[[], float] = time.time,
    log: Callable[[str], None] | None = None,
    raise_on_error: bool = True,
) -> RunningEmulator:
    """Start an emulator of ``provider`` on ``host:port`` (port 0: a free one) and return it.

    ``provider`` is a provider key (its declaration and
    :class:`~connector_core.emulator.EmulatorSpec` come from ``plugins``, by
    default every installed plugin) or a declaration, with ``spec`` or
    ``plugins`` to find the spec. Use the result as a context manager::

        with start_emulator("acme") as emu:
            endpoints = emu.endpoints("sandbox")
            creds = emu.app.credentials[endpoints.credential_set]

    ``redirect_uris`` replace the app's registered redirect URIs (default: the
    provider's default callback URL); loopback URIs are accepted on any port
    unless ``allow_loopback_redirects=False``. ``snapshot`` names a JSON file
    that keeps the state between runs. ``clock`` replaces :func:`time.time`.
    With ``raise_on_error`` (the default), leaving the ``with`` block raises
    :class:`EmulatorError` if anything inside the emulator crashed.
    """
    if isinstance(provider, str) or spec is None:
        if plugins is None:
            from ..plugins import load_plugins

            plugins = load_plugins()
        declaration = plugins.declaration(provider if isinstance(provider, str) else provider.key)
        if not isinstance(provider, str):
            declaration = provider
        if spec is None:
            spec = plugins.emulator_spec(declaration.key)
            if spec is None:
                raise EmulatorError(f"provider {declaration.key!r} has no built-in emulator")
    else:
        declaration = provider
    try:
        return RunningEmulator(
            declaration,
            spec,
            host=host,
            port=port,
            snapshot=snapshot,
            access_token_lifetime=access_token_lifetime,
            redirect_uris=redirect_uris,
            allow_loopback_redirects=allow_loopback_redirects,
            clock=clock,
            log=log,
            raise_on_error=raise_on_error,
        )
    except OSError as exc:
        raise EmulatorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
