"""The resource server: credentials, scopes and rate limits in front of a provider's handlers.

A request authenticates with an OAuth access token (``Authorization: Bearer``) or a
credential the company issued itself (HTTP Basic, an API key; see :mod:`.credentials`).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs, unquote

from .credentials import Caller, CredentialAuthority
from .http import HttpRequest, HttpResponse, json_response
from .oauth_server import REASONS
from .spec import EmulatorSpec, ResourceEndpoint, ResourceError, ResourceRequest, ResourceResponse
from .state import CLIENT_CREDENTIALS, AccessRecord, EmulatorState

__all__ = ["ResourceServer"]


class ResourceServer:
    """Answers ``/ENV/api/...`` requests for the spec's resource endpoints.

    A request reaches its handler only with a usable access token of this
    environment, of an installed app (or of a client credentials grant), or with a
    credential the company issued for this environment, holding every scope the
    endpoint needs (a credential: through its permission groups), within the
    endpoint's per-minute limit. Every refusal uses the provider's
    JSON error shape.
    """

    def __init__(
        self,
        state: EmulatorState,
        spec: EmulatorSpec,
        credential_sets: Mapping[str, str],
        realm: str,
        credentials: CredentialAuthority,
    ) -> None:
        self._state = state
        self._credentials = credentials
        self._spec = spec
        self._credential_sets = dict(credential_sets)
        self._realm = f'Bearer realm="{realm} emulator"'

    def _error(self, status: int, key: str, message: str, headers: Mapping[str, str] | None = None) -> HttpResponse:
        return json_response(status, self._spec.error_body(status, key, message), headers)

    def match(self, method: str, path: str) -> tuple[ResourceEndpoint, dict[str, str]] | HttpResponse:
        """The endpoint and its (decoded) path parameters, or a 404 or 405 response."""
        matches = [(r, params) for r in self._spec.resources if (params := r.match(path)) is not None]
        if not matches:
            return self._error(404, "not_found", f"No such endpoint: {method} {path}.")
        chosen = next(((r, p) for r, p in matches if r.method == method), None)
        if chosen is None:
            allowed = ", ".join(sorted({r.method for r, _ in matches}))
            return self._error(405, "method_not_allowed", f"Use {allowed} for {path}.", {"Allow": allowed})
        resource, params = chosen
        return resource, {name: unquote(value) for name, value in params.items()}

    def _authenticate(
        self, request: HttpRequest, env: str, query: Mapping[str, tuple[str, ...]]
    ) -> Caller | HttpResponse:
        """Who the request comes from: a credential the company issued (HTTP Basic, an API
        key) or an OAuth access token; a 401 with a challenge otherwise."""
        credential_set = self._credential_sets[env]
        found = self._credentials.authenticate(request.headers, query, credential_set)
        if isinstance(found, Caller):
            return found
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            record = self._state.token(token)
            if record is not None or found is None:
                return self._bearer(record, credential_set)
        if found is not None:
            return self._unauthorized(found.message, found.challenge)
        challenges = ", ".join((self._realm, *self._credentials.challenges()))
        ways = ["an access token (Authorization: Bearer TOKEN)"]
        ways += [f"{a.label} credentials" for a in self._credentials.auth_types.values()]
        message = "Send an access token: Authorization: Bearer TOKEN."
        if len(ways) > 1:
            message = f"Send {' or '.join(ways)}."
        return self._unauthorized(message, challenges)

    def _unauthorized(self, message: str, challenge: str) -> HttpResponse:
        return json_response(401, self._spec.error_body(401, "unauthorized", message), {"WWW-Authenticate": challenge})

    def _bearer(self, record: AccessRecord | None, credential_set: str) -> Caller | HttpResponse:
        problem = None
        installation = None
        with self._state.lock:
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
            elif record.grant_type != CLIENT_CREDENTIALS:
                installation = self._state.installation(record.company_id, record.credential_set)
                if installation is None:
                    problem = "The app is not installed in this company."
        if problem or record is None:
            challenge = f'{self._realm}, error="invalid_token", error_description="{problem}"'
            return self._unauthorized(problem or "", challenge)
        return Caller(
            company_id=record.company_id,
            credential_set=record.credential_set,
            scopes=frozenset(record.scopes),
            client_id=record.client_id,
            audience=installation.audience if installation else "all",
            audience_options=installation.audience_options if installation else (),
        )

    def call(
        self, request: HttpRequest, env: str, path: str, resource: ResourceEndpoint, params: dict[str, str]
    ) -> HttpResponse:
        """Check the credentials, scopes and rate limit, then run the handler."""
        realm = self._realm
        error_body = self._spec.error_body
        query = {k: tuple(v) for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        caller = self._authenticate(request, env, query)
        if isinstance(caller, HttpResponse):
            return caller
        with self._state.lock:
            missing = [s for s in resource.scopes if s not in caller.scopes]
            if missing:
                needed = " ".join(resource.scopes)
                if caller.auth_type is not None:
                    return json_response(
                        403,
                        error_body(
                            403,
                            "forbidden",
                            f"This call needs the permission(s) {needed}; the credentials' permission groups "
                            f"lack {' '.join(missing)}.",
                        ),
                    )
                return json_response(
                    403,
                    error_body(
                        403,
                        "forbidden",
                        f"This call needs the scope(s) {needed}; the token lacks {' '.join(missing)}.",
                    ),
                    {"WWW-Authenticate": f'{realm}, error="insufficient_scope", scope="{needed}"'},
                )
            limit = self._state.count_request(resource.name, caller.company_id, caller.credential_set)
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
                return json_response(
                    429, error_body(429, "too_many_requests", message), {**limit_headers, "Retry-After": str(wait)}
                )
        call = ResourceRequest(
            method=request.method,
            path=path,
            path_params=params,
            query=query,
            headers=dict(request.headers),
            body=request.body,
            company=self._state.companies[caller.company_id],
            audience=caller.audience,
            audience_options=caller.audience_options,
            scopes=caller.scopes,
            client_id=caller.client_id,
            environment=env,
            now=now,
        )
        try:
            result = resource.handler(call)
        except ResourceError as exc:
            return json_response(exc.status, error_body(exc.status, exc.key, exc.message), limit_headers)
        if not isinstance(result, ResourceResponse):
            raise TypeError(f"handler of {resource.name} returned {type(result).__name__}; expected ResourceResponse")
        return json_response(result.status, result.json, {**limit_headers, **result.headers})
