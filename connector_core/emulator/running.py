"""The running emulator: the public object tests hold, its HTTP routes and its faults.

Requests go to the OAuth endpoints (:mod:`.authorization`), the resource server
(:mod:`.resources`) or the emulator's own control endpoints.

URL layout, for each environment key ``ENV`` of the provider's declaration::

    GET  /ENV/oauth2/authorize     authorization endpoint (consent page, or scripted consent)
    POST /ENV/oauth2/consent       the consent page's form
    POST /ENV/oauth2/token         token endpoint (authorization_code, refresh_token; client_credentials
                                   when the provider declares that grant)
    POST /ENV/oauth2/revoke        RFC 7009 revocation endpoint
    *    /ENV/api/v1/...           resource endpoints (the API base path comes from the declaration)
    GET  /emulator/info            the app, client IDs, endpoints, companies and installations (no secrets)
    POST /emulator/uninstall       uninstall the app from a company (revokes its tokens)
    POST /emulator/credentials     issue a credential a company gives out itself (a service user, an API key)
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import attrs

from ..errors import EmulatorError, UnknownNameError, ValidationError
from ..models import (
    ClientAuthMethod,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    ProviderDeclaration,
    is_loopback_host,
    url_problem,
)
from .authorization import (
    AUDIENCE_HEADER,
    COMPANY_HEADER,
    CONSENT_HEADER,
    ERROR_DESCRIPTIONS,
    AuthorizationEndpoints,
    form_value,
    parse_form,
)
from .credentials import CredentialAuthority, IssuedCredentials
from .faults import FaultKind, Faults, fault_response
from .http import HttpRequest, HttpResponse, LoopbackServer, json_response
from .oauth_server import EmulatorValidator, RedirectPolicy, build_server
from .resources import ResourceServer
from .spec import EmulatedCompany, EmulatorSpec
from .state import CredentialInfo, EmulatorApp, EmulatorState, EmulatorStats, InstallationInfo, _Counters


class SpecSource(Protocol):
    """What :func:`start_emulator` asks for a provider key: a
    :class:`~connector_core.Plugins` (``load_plugins()``) answers both."""

    def declaration(self, key: str) -> ProviderDeclaration: ...

    def emulator_spec(self, key: str) -> Any: ...


__all__ = [
    "AUDIENCE_HEADER",
    "COMPANY_HEADER",
    "CONSENT_HEADER",
    "EmulatorEndpoints",
    "EmulatorError",
    "IssuedCredentials",
    "RunningEmulator",
    "SpecSource",
    "UnexpectedError",
    "start_emulator",
]


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

    def profile_urls(self, redirect_uri: str, *, revocation: bool = True) -> dict[str, str | None]:
        """The ``endpoints`` of a profile that talks to this emulator (for
        :func:`~connector_core.validate_profile`); ``revocation=False`` leaves the
        revocation URL out, as for a provider that declares none."""
        urls: dict[str, str | None] = {
            "redirect_uri": redirect_uri,
            "authorize_url": self.authorize_url,
            "token_url": self.token_url,
            "api_base_url": self.api_base_url,
        }
        if revocation:
            urls["revocation_url"] = self.revocation_url
        return urls


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
        if not is_loopback_host(host):
            raise ValidationError("host", f"the emulator listens on loopback addresses only, got {host!r}")
        if access_token_lifetime is not None and access_token_lifetime < 1:
            raise ValidationError("access_token_lifetime", f"expected at least 1 second, got {access_token_lifetime}")

        oauth = next((a for a in declaration.auth_types if isinstance(a, OAuth2AuthorizationCode)), None)
        grants = [a for a in declaration.auth_types if isinstance(a, OAuth2ClientCredentials)]
        catalogue = declaration.scope_catalogue
        if oauth is not None and catalogue is None:
            raise EmulatorError(f"provider {declaration.key!r} has an OAuth 2.0 auth type but no scope catalogue")
        #: The authorization code grant the authorize endpoint serves; None: that endpoint answers 404.
        self._oauth = oauth
        self._catalogue = catalogue
        env_sets = {env.key: env.credential_set for env in declaration.environments}
        credential_sets = spec.app.credential_sets or tuple(dict.fromkeys(env_sets.values()))
        missing = sorted(set(env_sets.values()) - set(credential_sets))
        if missing:
            raise EmulatorError(f"the emulated app has no credential set for: {', '.join(missing)}")
        resource_scopes = tuple(dict.fromkeys(s for r in spec.resources for s in r.scopes))
        # Without a catalogue (a provider of API keys, say), the scopes are the resources' own.
        names = catalogue.names if catalogue is not None else resource_scopes
        if catalogue is not None and catalogue.open:
            # An open catalogue (a generic OAuth server) knows the scopes its test app registers too.
            extra = (*(spec.app.scopes or ()), *resource_scopes, *(s for g in spec.permission_groups for s in g.scopes))
            names = tuple(dict.fromkeys((*names, *extra)))
        app_scopes = names if spec.app.scopes is None else spec.app.scopes
        named = (*app_scopes, *resource_scopes, *(s for g in spec.permission_groups for s in g.scopes))
        unknown = [s for s in named if s not in names]
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
        methods = [g.client_auth_method for g in grants]
        if oauth is not None:
            methods.insert(0, oauth.client_auth_method)
        declared_methods = tuple(dict.fromkeys(methods)) or (ClientAuthMethod.CLIENT_SECRET_BASIC,)
        self._validator = EmulatorValidator(
            self._state,
            spec=spec,
            credential_sets=env_sets,
            client_auth_methods=spec.client_auth_methods or declared_methods,
            catalogue=names,
            default_scopes=catalogue.default_scopes if catalogue is not None else (),
            redirects=self._redirects,
            client_credentials=bool(grants),
        )
        self._oauth_server = build_server(self._validator, lambda: self._state.access_token_lifetime)
        self.faults = Faults([*(r.name for r in spec.resources), *(r.path for r in spec.resources)])
        self._credentials = CredentialAuthority(self._state, spec, declaration, (*names, *resource_scopes))
        self._resources = ResourceServer(
            self._state,
            spec,
            {env.key: env.credential_set for env in declaration.environments},
            declaration.key,
            self._credentials,
        )
        self._state.flush(force=True)
        try:
            self._server = LoopbackServer(host, port, self._handle, self._log, self._server_error)
        except OSError as exc:
            raise EmulatorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._host = host
        self._authz = AuthorizationEndpoints(
            state=self._state,
            spec=spec,
            declaration=declaration,
            catalogue=catalogue,
            oauth_server=self._oauth_server,
            client_auth_methods=self._validator.client_auth_methods,
            host=host,
            port=self._server.port,
            base_url=self.base_url,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"connector-emulator-{declaration.key}-{self._server.port}",
            daemon=True,
        )
        self._thread.start()

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

    def install_url(
        self, redirect_uri: str, *, environment: str | None = None, scopes: Iterable[str] | None = None
    ) -> str:
        """The authorization URL an install begun at the provider starts from (a Marketplace
        install link): ``response_type=code``, the ``client_id`` of the environment's credential
        set (the provider's default environment when ``None``), ``redirect_uri`` and ``scopes``
        (default: the scopes configured on the app), and no ``state`` nor PKCE challenge: the
        platform did not begin it. Following it with consent sends a code without a state to
        ``redirect_uri``, which ``Connector.complete_provider_initiated`` takes."""
        if self._oauth is None:
            raise EmulatorError(
                f"provider {self.declaration.key!r} declares no OAuth 2.0 authorization code grant to install with"
            )
        problem = url_problem(redirect_uri)
        if problem:
            raise ValidationError("redirect URI", f"{problem}, got {redirect_uri!r}")
        if isinstance(scopes, str):
            raise ValidationError("scopes", "expected a list of scopes, not one string")
        endpoints = self.endpoints(environment)
        chosen = list(self.app.scopes if scopes is None else scopes)
        query = {
            "response_type": "code",
            "client_id": self.app.credentials[endpoints.credential_set].client_id,
            "redirect_uri": redirect_uri,
        }
        if chosen:
            query["scope"] = self.spec.scope_separator.join(chosen)
        return f"{endpoints.authorize_url}?{urlencode(query)}"

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

    # ------------------------------------------------------------ credentials

    @property
    def credential_auth_types(self) -> tuple[str, ...]:
        """The auth types whose credentials a company issues itself (HTTP Basic, API keys)."""
        return tuple(self._credentials.auth_types)

    def issue_credentials(
        self,
        auth_type: str,
        *,
        company: str | None = None,
        groups: Sequence[str] | None = None,
        environment: str | None = None,
    ) -> IssuedCredentials:
        """Issue a credential of ``auth_type`` (an HTTP Basic or API key auth type of the
        declaration), as a company's admin does at the provider: a service user, an API key.

        Returns its values by credential field name, ready for ``Connector.connect``
        (``{"service_user_id": "SERVICE-482913", "service_user_token": "..."}``); the
        result's ``identifier`` names it for :meth:`reset_credentials` and the others (the
        username, or an API key's id). ``company``: default the first; ``environment``:
        default the provider's default (the credential works only there); ``groups``:
        permission groups, ``None`` for every declared group, ``()`` for none (then every
        resource answers 403).
        """
        issued = self._credentials.issue(auth_type, company=company, groups=groups, environment=environment)
        self._state.flush()
        return issued

    def reset_credentials(self, auth_type: str, identifier: str) -> IssuedCredentials:
        """Give the credential a new secret and return its values; the old secret answers 401 at once."""
        issued = self._credentials.reset(auth_type, identifier)
        self._state.flush()
        return issued

    def revoke_credentials(self, auth_type: str, identifier: str) -> None:
        """Delete the credential at the provider: it answers 401 from now on."""
        self._credentials.revoke(auth_type, identifier)
        self._state.flush()

    def set_permission_groups(self, auth_type: str, identifier: str, groups: Sequence[str]) -> None:
        """Replace the credential's permission groups; its next request is held to them."""
        self._credentials.set_groups(auth_type, identifier, groups)
        self._state.flush()

    def credentials(self) -> tuple[CredentialInfo, ...]:
        """The credentials issued, without their secrets."""
        with self._state.lock:
            return tuple(CredentialInfo.of(r) for r in self._state.credentials.values())

    @property
    def credentials_url(self) -> str:
        return f"{self.base_url}/emulator/credentials"

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
            "permission_groups": [
                {"key": g.key, "label": g.label, "scopes": list(g.scopes)} for g in self.spec.permission_groups
            ],
            "credential_auth_types": list(self.credential_auth_types),
            "issued_credentials": [attrs.asdict(c) for c in self.credentials()],
            "credentials_url": self.credentials_url,
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
            response = json_response(
                500, {"error": "server_error", "error_description": ERROR_DESCRIPTIONS["server_error"]}
            )
        return response

    def _route(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path in ("/", "/emulator/info"):
            return self._allow(request, ("GET", "HEAD")) or json_response(200, self.info())
        if path == "/favicon.ico":  # browsers ask on every page; no icon, and no error in their console
            return HttpResponse(204, {"Cache-Control": "max-age=86400"})
        if path == "/emulator/uninstall":
            return self._allow(request, ("POST",)) or self._uninstall_endpoint(request)
        if path == "/emulator/credentials":
            return self._allow(request, ("POST",)) or self._credentials_endpoint(request)
        segments = path.split("/", 3)
        env_keys = {env.key for env in self.declaration.environments}
        if len(segments) < 3 or segments[1] not in env_keys:
            return json_response(404, {"error": "not_found", "error_description": f"No emulator endpoint at {path}."})
        env = segments[1]
        rest = "/" + "/".join(segments[2:])
        if rest in ("/oauth2/authorize", "/oauth2/consent") and self._oauth is None:
            return json_response(
                404,
                {
                    "error": "not_found",
                    "error_description": f"{self.declaration.provider.display_name} declares no OAuth 2.0 "
                    "authorization code grant, so it has no authorization endpoint.",
                },
            )
        if rest == "/oauth2/authorize":
            with self._state.lock:
                self._state.counters.authorize_requests += 1
            return self._with_faults(("authorize", "*"), "oauth", request, lambda: self._authz.authorize(request, env))
        if rest == "/oauth2/consent":
            return self._with_faults(("consent", "*"), "oauth", request, lambda: self._authz.consent(request, env))
        if rest == "/oauth2/token":
            grant_type = form_value(request.body, "grant_type")
            with self._state.lock:
                self._state.counters.token_requests[grant_type or ""] += 1
            return self._with_faults(("token", "*"), "oauth", request, lambda: self._authz.token(request))
        if rest == "/oauth2/revoke":
            with self._state.lock:
                self._state.counters.revocation_requests += 1
            return self._with_faults(("revocation", "*"), "oauth", request, lambda: self._authz.revoke(request))
        api_prefix = f"/api{self._api_paths[env]}"
        if rest.startswith(api_prefix + "/"):
            return self._resource(request, env, rest[len(api_prefix) :])
        return json_response(404, {"error": "not_found", "error_description": f"No emulator endpoint at {path}."})

    @staticmethod
    def _allow(request: HttpRequest, methods: Sequence[str]) -> HttpResponse | None:
        if request.method in methods:
            return None
        return json_response(
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

    # ---------------------------------------------------------------- resources

    def _resource(self, request: HttpRequest, env: str, path: str) -> HttpResponse:
        found = self._resources.match(request.method, path)
        if isinstance(found, HttpResponse):
            return found
        resource, params = found
        with self._state.lock:
            self._state.counters.resource_calls[resource.name] += 1
        names = (resource.name, resource.path, "api", "*")
        return self._with_faults(
            names, "api", request, lambda: self._resources.call(request, env, path, resource, params)
        )

    # ------------------------------------------------------------------ control

    @staticmethod
    def _control_fields(request: HttpRequest) -> dict[str, Any] | HttpResponse:
        """A control request's fields, from a JSON object or a form."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not request.body:
            return {}
        if content_type == "application/json":
            try:
                data = json.loads(request.body)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                return json_response(400, {"error": "invalid_request", "error_description": "Expected a JSON object."})
            return data
        form = parse_form(request.body)
        if form is None:
            return json_response(400, {"error": "invalid_request", "error_description": "Malformed form body."})
        return {k: v[-1] for k, v in form.items()}

    def _credentials_endpoint(self, request: HttpRequest) -> HttpResponse:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.body and content_type != "application/json":
            # JSON only: a web page can post a form to a loopback port, but not JSON without CORS.
            return json_response(
                415, {"error": "invalid_request", "error_description": "Send a JSON object (application/json)."}
            )
        fields = self._control_fields(request)
        if isinstance(fields, HttpResponse):
            return fields
        bad = self._wrong_provider(fields)
        if bad is not None:
            return bad
        kinds = self.credential_auth_types
        auth_type = fields.get("auth_type")
        if auth_type is None and len(kinds) == 1:
            auth_type = kinds[0]
        groups = fields.get("groups")
        for name, value in (
            ("auth_type", auth_type),
            ("company", fields.get("company")),
            ("environment", fields.get("environment")),
        ):
            if value is not None and not isinstance(value, str):
                return _invalid(f"{name} must be a string.")
        if not isinstance(auth_type, str):
            return _invalid(f"Name the auth_type: one of {', '.join(kinds) or 'none (the provider has none)'}.")
        if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)):
            return _invalid("groups must be a list of permission group keys.")
        try:
            issued = self.issue_credentials(
                auth_type, company=fields.get("company"), groups=groups, environment=fields.get("environment")
            )
        except UnknownNameError as exc:
            return json_response(404, {"error": "not_found", "error_description": exc.message})
        return json_response(
            200,
            {
                "provider": self.declaration.key,
                "auth_type": issued.auth_type,
                "identifier": issued.identifier,
                "company_id": issued.company,
                "environment": issued.environment,
                "groups": list(issued.groups),
                "values": dict(issued),
            },
            {"Cache-Control": "no-store"},
        )

    def _wrong_provider(self, fields: Mapping[str, Any]) -> HttpResponse | None:
        provider = fields.get("provider")
        if provider is not None and provider != self.declaration.key:
            return _invalid(f"This emulator imitates {self.declaration.key!r}, not {provider!r}.")
        return None

    def _uninstall_endpoint(self, request: HttpRequest) -> HttpResponse:
        fields = self._control_fields(request)
        if isinstance(fields, HttpResponse):
            return fields
        provider = fields.get("provider")
        if provider is not None and provider != self.declaration.key:
            return json_response(
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
                return json_response(
                    400, {"error": "invalid_request", "error_description": f"{name} must be a string."}
                )
        try:
            removed = self.uninstall(company, credential_set)
        except UnknownNameError as exc:
            return json_response(404, {"error": "not_found", "error_description": exc.message})
        return json_response(
            200,
            {
                "provider": self.declaration.key,
                "company_id": company or self.default_company_id,
                "credential_set": credential_set,
                "uninstalled": removed,
            },
        )


def _invalid(description: str) -> HttpResponse:
    return json_response(400, {"error": "invalid_request", "error_description": description})


def start_emulator(
    provider: str | ProviderDeclaration,
    spec: EmulatorSpec | None = None,
    *,
    plugins: SpecSource | None = None,
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
    :class:`~connector_core.emulator.EmulatorSpec` come from ``plugins``, for
    example ``load_plugins()``) or a declaration, with ``spec`` or ``plugins`` to
    find the spec. The emulator never loads plugins itself: it serves what it is
    handed. Use the result as a context manager::

        with start_emulator("acme", plugins=load_plugins()) as emu:
            endpoints = emu.endpoints("sandbox")
            creds = emu.app.credentials[endpoints.credential_set]

    ``redirect_uris`` replace the app's registered redirect URIs (default: the
    provider's default callback URL); loopback URIs are accepted on any port
    unless ``allow_loopback_redirects=False``. ``snapshot`` names a JSON file
    that keeps the state between runs. ``clock`` replaces :func:`time.time`.
    With ``raise_on_error`` (the default), leaving the ``with`` block raises
    :class:`EmulatorError` if anything inside the emulator crashed.
    """
    if isinstance(provider, ProviderDeclaration):
        declaration = provider
    else:
        declaration = _source(plugins, provider).declaration(provider)
    if spec is None:
        spec = _source(plugins, declaration.key).emulator_spec(declaration.key)
        if spec is None:
            raise EmulatorError(f"provider {declaration.key!r} has no built-in emulator")
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


def _source(plugins: SpecSource | None, key: str) -> SpecSource:
    if plugins is None:
        raise ValidationError(
            "plugins",
            f"the emulator of {key!r} needs the plugins that declare it: start_emulator({key!r}, "
            "plugins=load_plugins()), or pass its declaration and spec",
        )
    return plugins
