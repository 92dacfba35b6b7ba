"""The connect flow: authorize, complete, keep tokens fresh, revoke, and call the API.

:class:`Connector` is the library API platform code uses (the CLI is a thin layer
on it). Every operation is written once as a sans-I/O flow (see
:mod:`connector_core._transport`) and offered twice: a sync method and an async
one (prefixed ``a``) driving the same flow.

Refresh is single-flight across threads and processes: a refresher takes a lease
on the connection row in the store, re-reads the row (another process may have
refreshed already), refreshes, and stores the rotated refresh token with the new
access token in one transaction before anyone uses it.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import random
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from . import oauth
from ._lazy import lazy_exports
from ._transport import (
    DEADLINE_EXCEEDED,
    DEFAULT_DEADLINE,
    MAX_BODY_BYTES,
    Flow,
    HttpResponse,
    Sleep,
    check_endpoint,
    default_timeout,
    run_async,
    run_sync,
    sync_client,
)
from .connection import (
    AuthorizationStart,
    Connection,
    ConnectionStatus,
    ConnectResult,
    Owner,
    ReconnectPlan,
    RevokeResult,
    TestResult,
)
from .errors import (
    AlreadyInstalled,
    ConfirmationRequired,
    ConnectorError,
    CredentialsRejected,
    OutcomeUnknown,
    ReconnectRequired,
    RequestFailed,
    ScopeError,
    ValidationError,
)
from .models import (
    ApiKeyAuth,
    ApiKeyLocation,
    AuthType,
    ConnectionTest,
    HttpBasicAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    ProviderDeclaration,
    ReconnectKind,
    ReconnectPolicy,
    url_problem,
)
from .oauth import HttpRequest, InvalidGrant, OAuthError, TokenSet, TransientError
from .profiles import check_credentials
from .secret import Secret
from .store.contract import ConnectionStamp

if TYPE_CHECKING:
    import httpx

    from ._httpx_auth import ConnectionAuth
    from ._steps import StepRunner
    from .plugins import Plugins
    from .profiles import Profile
    from .store import RefreshLease, StoreLike

__all__ = [
    "AlreadyInstalled",
    "AuthorizationStart",
    "ConfirmationRequired",
    "ConnectResult",
    "ConnectionAuth",
    "Connector",
    "CredentialsRejected",
    "ReconnectPlan",
    "ReconnectRequired",
    "RequestFailed",
    "RevokeResult",
    "TestResult",
]

#: Why a connection was saved by :meth:`Connector.connect`: made anew, or its credentials replaced.
CONNECTED = "connected"
CREDENTIALS_REPLACED = "credentials replaced"
#: Why a connection whose credential the provider refused needs reconnecting.
REJECTED_401 = "the provider refused its credentials (401)"

#: Refresh this long before the access token expires, at most...
DEFAULT_LEEWAY = 60.0
#: ...and at most this fraction of the token's lifetime: a 60-second token is used for 54 s,
#: not refreshed on every call.
LEEWAY_FRACTION = 0.1
#: The status reasons a save of new tokens leaves (its time is the tokens' issue time).
_ISSUED_REASONS = frozenset(
    {"authorized", "reauthorized", "installed at the provider", CONNECTED, CREDENTIALS_REPLACED}
)
#: How long a pending authorization stays valid.
ATTEMPT_TTL = 600.0
#: How long a refresh lease lasts if its holder dies.
LEASE_TTL = 30.0
#: How long a caller waits for another refresher before giving up.
LEASE_WAIT = 45.0
#: How many threads run the store steps of async refreshes on a store that does not batch its writes.
ASYNC_STORE_THREADS = 4
MAX_ATTEMPTS = 4
MAX_BACKOFF = 10.0
MAX_RETRY_AFTER = 60.0
#: After a refresh whose reply was lost, no refresh of the connection is sent for this long: the
#: provider may still be processing the first one (two in flight look like a replay).
LOST_HOLD = 60.0
#: Why a connection needs reconnecting when the provider refuses (401) the access token a refresh
#: has just issued: not an expired token, the grant was withdrawn there.
FRESH_401 = "the provider refused (401) the access token a refresh had just issued: the grant was withdrawn there"
#: Why a connection needs reconnecting when its tokens were deleted.
GONE = "its tokens are gone"
#: The status reason of a connection whose last refresh had its reply lost.
LOST_REPLY = "the last refresh's reply was lost; its outcome is unknown"
#: How many connections' signatures a Connector keeps ready for their next request (the oldest kept
#: goes first): a few hundred bytes each.
READY_CONNECTIONS = 4096
#: What a URL's path and query may not hold for a request to skip the full endpoint check: a
#: backslash (a browser reads it as '/') or white space (see :func:`~connector_core._transport.check_endpoint`).
_ODD_PATH = re.compile(rb"[\\\s]")

# ConnectionAuth subclasses httpx.Auth: imported on first use, so that the engine does not import httpx.
__getattr__, __dir__ = lazy_exports(__name__, globals(), {"ConnectionAuth": "connector_core._httpx_auth"})


@attrs.frozen
class _Context:
    """Everything an OAuth call needs for one profile, resolved once."""

    declaration: ProviderDeclaration
    profile: Profile
    auth: OAuth2AuthorizationCode | OAuth2ClientCredentials
    #: Empty for a client credentials grant (no person is sent anywhere).
    authorize_url: str
    token_url: str
    revocation_url: str | None
    api_base_url: str
    client_id: str
    client_secret: Secret | None = attrs.field(repr=False)
    #: The issuer configured by the profile or declared by the provider (RFC 9207).
    issuer: str | None = None
    #: Where the authorization server's RFC 8414 metadata is, when it publishes it.
    metadata_url: str | None = None


@attrs.frozen
class _Signature:
    """What makes one request authenticated: headers, and query parameters for an API key
    sent in the URL. ``bearer``: an OAuth access token, which a 401 refreshes once."""

    headers: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    params: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=False)
    bearer: bool = False

    def url(self, url: str) -> str:
        if not self.params:
            return url
        from urllib.parse import urlencode

        return url + ("&" if "?" in url else "?") + urlencode(self.params)

    def apply(self, request: httpx.Request) -> None:
        for name, value in self.headers:
            request.headers[name] = value
        if self.params:
            request.url = request.url.copy_merge_params(dict(self.params))


class _Ready:
    """A connection's signature as last read, and what it was read with. A request uses it while
    the store's stamp of the connection (one narrow read, nothing decrypted) is still ``stamp`` and
    no refresh is due, instead of reading the connection, its profile and its tokens again. A plain
    class, not attrs: the CLI imports this module (cold start)."""

    __slots__ = ("base_url", "connection", "endpoint_ok", "issued", "origin", "signature", "stamp")

    def __init__(self, stamp: ConnectionStamp, connection: Connection, signature: _Signature, base_url: str) -> None:
        self.stamp = stamp
        self.connection = connection
        self.signature = signature
        #: The API base URL, without a trailing slash.
        self.base_url = base_url
        #: The API origin as httpx splits a URL: (scheme, host, port or None for the scheme's default).
        self.origin = _split_origin(base_url)
        #: Whether the base URL passes the endpoint check (https, or http to a loopback address...):
        #: only then may a request to its origin skip the full check.
        self.endpoint_ok = url_problem(base_url) is None
        #: When the tokens were issued (epoch seconds), for the leeway; None when unknown.
        self.issued = _issued(connection)

    def __repr__(self) -> str:
        return f"<_Ready {self.connection.id} version {self.stamp.token_version}>"


def _split_origin(url: str) -> tuple[str, str, int | None]:
    """``url``'s origin as httpx reports a request's (``url.scheme, url.host, url.port``): lower
    case, an IPv6 host without brackets, no port for the scheme's default. One that cannot be
    split matches no request (each then takes the full check)."""
    from urllib.parse import urlsplit  # urllib.parse is loaded already: no cost

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return ("", "", None)
    if port == {"https": 443, "http": 80}.get(scheme):
        port = None
    return (scheme, (parts.hostname or "").lower(), port)


def _issued(connection: Connection) -> float | None:
    """When the connection's tokens were issued (epoch seconds): its creation, last refresh, or
    the authorization that saved them; None when a stored time cannot be read."""
    from datetime import datetime  # the issue time is parsed only here, once per token version

    times = [connection.created_at, connection.refreshed_at]
    if connection.status_reason in _ISSUED_REASONS:  # tokens saved by an authorization
        times.append(connection.updated_at)
    try:
        return max(datetime.fromisoformat(t).timestamp() for t in times if t)
    except ValueError:
        return None


def _with_profile_values(
    names: Sequence[str], values: Mapping[str, Secret], profile: Profile
) -> tuple[dict[str, Secret], list[str]]:
    """The credential values an auth type reads (``names``): the connection's own, and the
    app-level ones its profile holds (read with its secrets); also the names found in neither."""
    merged = dict(values)
    plain, secret = dict(profile.values), dict(profile.secrets)
    for name in names:
        if name not in merged and name in plain:
            merged[name] = Secret(plain[name])
        elif name not in merged and name in secret:
            merged[name] = secret[name]
    return merged, [n for n in names if n not in merged]


def _bearer(token: Secret) -> _Signature:
    return _Signature((("Authorization", f"Bearer {token.reveal()}"),), bearer=True)


def _signature(auth: HttpBasicAuth | ApiKeyAuth, values: Mapping[str, Secret]) -> _Signature:
    """Sign with a credential: HTTP Basic (RFC 7617), or an API key in a header or the query."""
    if isinstance(auth, HttpBasicAuth):
        import base64

        pair = f"{values[auth.username_field].reveal()}:{values[auth.password_field].reveal()}"
        return _Signature((("Authorization", "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")),))
    key = values[auth.key_field].reveal()
    if auth.location is ApiKeyLocation.QUERY:
        _mask_in_logs(auth.query_name)
        return _Signature((), ((auth.query_name, key),))
    return _Signature(((auth.header_name, f"{auth.prefix.rstrip()} {key}" if auth.prefix.strip() else key),))


_MASKED_PARAMS: set[str] = set()


def _mask_in_logs(name: str) -> None:
    """An API key sent as a query parameter is part of the URL, which httpx logs (INFO) with
    every request: mask that parameter's value in httpx's log records."""
    import logging

    if not _MASKED_PARAMS:
        logging.getLogger("httpx").addFilter(_mask_params)
    _MASKED_PARAMS.add(name)


def _mask_params(record: Any) -> bool:
    import httpx  # here: a record of httpx's own logger, so httpx is imported already

    if isinstance(record.args, tuple) and _MASKED_PARAMS:
        record.args = tuple(_masked_url(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args)
    return True


def _masked_url(url: httpx.URL) -> httpx.URL:
    hidden = {name: "***" for name in _MASKED_PARAMS if name in url.params}
    return url.copy_merge_params(hidden) if hidden else url


def _redactions(ctx: _Context, *secrets: Secret | None) -> tuple[str, ...]:
    """What a request to the provider carries that must stay out of error texts, in every form
    the provider might echo it: as sent in the form body, and the Basic credentials (see
    :func:`oauth.error_from_response`). Longest first, so none is left half-masked."""
    from urllib.parse import quote

    values = [secret.reveal() for secret in (*secrets, ctx.client_secret) if secret]
    if ctx.client_secret:
        values.append(oauth.basic_auth_header(ctx.client_id, ctx.client_secret).split()[-1])
    values += [quote(value, safe="") for value in values]
    return tuple(sorted(set(values), key=len, reverse=True))


class _LazyRedactions(Sequence[str]):
    """:func:`_redactions`, worked out when an error text first needs them: a refresh that
    succeeds (nearly every one) never does."""

    __slots__ = ("_ctx", "_secrets", "_values")

    def __init__(self, ctx: _Context, *secrets: Secret | None) -> None:
        self._ctx = ctx
        self._secrets = secrets
        self._values: tuple[str, ...] | None = None

    def _all(self) -> tuple[str, ...]:
        if self._values is None:
            self._values = _redactions(self._ctx, *self._secrets)
        return self._values

    def __getitem__(self, index: Any) -> Any:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return "<redactions>"


def _with_profile_options(
    auth: OAuth2AuthorizationCode | OAuth2ClientCredentials, profile: Profile
) -> OAuth2AuthorizationCode | OAuth2ClientCredentials:
    """The auth type as this profile uses it: the settings its ``profile_options`` let the
    profile choose (already checked by :func:`~connector_core.profiles.validate_profile`)
    replace the declared defaults."""
    changes: dict[str, Any] = {}
    for name in auth.profile_options:
        value = profile.option(name)
        if value is None or name == "connection_test_path":
            continue
        changes[name] = value == "true" if name == "pkce" else value
    return attrs.evolve(auth, **changes) if changes else auth


def _lost_since(conn: Connection) -> float | None:
    """When the connection's last refresh had its reply lost (its status says so, and no
    refresh succeeded since), as epoch seconds; None otherwise."""
    from datetime import datetime  # only after a lost reply: most calls never parse a time

    if conn.status_reason != LOST_REPLY:
        return None
    if conn.refreshed_at is not None and conn.refreshed_at >= conn.updated_at:
        return None
    return datetime.fromisoformat(conn.updated_at).timestamp()


def _api_retry(method: str, response: HttpResponse, attempt: int) -> Sleep | None:
    """The pause before sending an API request (not a token request) again, or None when it must
    not be sent again: after a failure to send, only an idempotent method and never once the
    deadline has passed (it would be waited out again); after an answer, a 429, or a 502-504 to an
    idempotent method. At most MAX_ATTEMPTS sends in all."""
    if attempt >= MAX_ATTEMPTS - 1:
        return None
    idempotent = method in ("GET", "HEAD")
    if response.failure is not None:
        overdue = response.failure.error == DEADLINE_EXCEEDED
        return Sleep(_backoff(attempt, None)) if idempotent and not overdue else None
    if response.status == 429 or (response.status in (502, 503, 504) and idempotent):
        return Sleep(_backoff(attempt, oauth.retry_after(response.headers, time.time())))
    return None


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    return min(MAX_BACKOFF, random.uniform(0, 0.25 * (2**attempt)))  # noqa: S311 - jitter, not crypto


class Connector:
    """Connect accounts through profiles and use the connections.

    ``client``/``async_client`` are the httpx clients to use (created on demand,
    with explicit timeouts, when not given). ``deadline``: how long one response (of the
    token endpoint or the API) may take in full, however slowly its body arrives.
    """

    def __init__(
        self,
        store: StoreLike,
        plugins: Plugins,
        *,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        leeway: float = DEFAULT_LEEWAY,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.store = store
        self.plugins = plugins
        self._client = client
        self._async_client = async_client
        #: Whether the caller chose the async client (a bulk refresh then sends through it, not its own).
        self._async_client_given = async_client is not None
        self._steps: StepRunner | None = None
        self.leeway = leeway
        self.deadline = deadline
        #: Connection id -> its signature as last read (see :class:`_Ready`); no secret in any repr.
        self._ready: dict[str, _Ready] = {}
        self._ready_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Connector store={self.store.path}>"

    # --------------------------------------------------------------- clients

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = sync_client()
        return self._client

    @property
    def async_client(self) -> httpx.AsyncClient:
        if self._async_client is None:
            import httpx

            from ._nocookies import CookielessAsyncClient  # shared by every connection: no cookie kept

            self._async_client = CookielessAsyncClient(
                timeout=default_timeout(),
                follow_redirects=False,
                trust_env=False,
                limits=httpx.Limits(max_connections=64),
            )
        return self._async_client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.aclose()
        if self._steps is not None:
            self._steps.close()
            self._steps = None

    # --------------------------------------------------------------- context

    def _context(self, profile: Profile) -> _Context:
        """The OAuth context of a profile whose auth type is an OAuth 2.0 grant."""
        decl = self.plugins.declaration(profile.provider)
        auth = decl.auth_type(profile.auth_type)
        if not isinstance(auth, (OAuth2AuthorizationCode, OAuth2ClientCredentials)):
            raise ValidationError(
                "auth_type",
                f"profile {profile.name!r} uses {auth.key} ({auth.kind.value}), not OAuth 2.0; its connections hold "
                "the credentials they were made with",
            )
        auth = _with_profile_options(auth, profile)
        env = decl.environment(profile.environment)
        for name in auth.profile_endpoints:
            if not profile.endpoint(name):
                raise ValidationError(
                    name,
                    f"profile {profile.name!r} does not set it, and provider {decl.key!r} cannot know it: "
                    "update the profile with its value",
                )
        client_id = profile.value("client_id")
        if client_id is None:
            raise ValidationError("client_id", f"profile {profile.name!r} has no client_id")
        secret = dict(profile.secrets).get("client_secret")
        code = auth if isinstance(auth, OAuth2AuthorizationCode) else None
        return _Context(
            declaration=decl,
            profile=profile,
            auth=auth,
            authorize_url=(profile.endpoint("authorize_url") or env.authorize_url or code.authorize_url)
            if code
            else "",
            token_url=profile.endpoint("token_url") or env.token_url or auth.token_url,
            revocation_url=profile.endpoint("revocation_url")
            or env.revocation_url
            or (code.revocation_url if code else None),
            api_base_url=self._api_base_url(profile, decl),
            client_id=client_id,
            client_secret=secret,
            issuer=profile.endpoint("issuer") or (code.issuer if code else None),
            metadata_url=profile.endpoint("metadata_url") or (code.metadata_url if code else None),
        )

    @staticmethod
    def _code_grant(ctx: _Context) -> OAuth2AuthorizationCode:
        """The authorization code grant of a context; anything else cannot redirect a person."""
        if not isinstance(ctx.auth, OAuth2AuthorizationCode):
            raise ValidationError(
                "auth_type",
                f"profile {ctx.profile.name!r} uses {ctx.auth.key} ({ctx.auth.kind.value}), which sends no one to "
                "the provider: connect it with Connector.connect()",
            )
        return ctx.auth

    def _api_base_url(self, profile: Profile, decl: ProviderDeclaration | None = None) -> str:
        """The profile's API base URL (its override, else its environment's), without a trailing slash."""
        override = profile.endpoint("api_base_url")
        if override:
            return override.rstrip("/")
        decl = decl or self.plugins.declaration(profile.provider)
        return decl.environment(profile.environment).api_base_url.rstrip("/")

    def _auth_of(self, conn: Connection) -> AuthType:
        """The auth type a connection was made with."""
        return self.plugins.declaration(conn.provider).auth_type(conn.auth_type)

    def _uses_tokens(self, conn: Connection) -> bool:
        """Whether the connection holds OAuth tokens to refresh (not credentials). A provider
        whose declaration cannot be gathered counts as tokens: its refresh then says why."""
        try:
            return self._auth_of(conn).kind.uses_tokens
        except ConnectorError:
            return True

    def authorization_endpoint(self, profile: str) -> str:
        """The authorization endpoint :meth:`begin` sends a person to for ``profile`` (without
        its parameters): where a page's form may lead (its CSP ``form-action``)."""
        return self._context(self.store.get_profile(profile, with_secrets=False)).authorize_url

    def redirect_uri(self, profile: Profile) -> str:
        """The profile's registered redirect URI, else the provider's callback URL."""
        return profile.endpoint("redirect_uri") or self.plugins.callback_url(profile.provider, profile.environment)

    def _needs_reconnect(self, connection_id: str, reason: str, *, if_version: int | None = None) -> Connection:
        """Mark a connection needs-reconnect with ``reason``; its lifecycle event carries the
        provider's guidance (what a person does about it), as :class:`ReconnectRequired` does."""
        guidance = None
        with contextlib.suppress(ConnectorError):
            conn = self.store.get_connection(connection_id)
            guidance = self._guidance(conn.provider, reason, conn.auth_type)
        return self.store.set_status(
            connection_id,
            ConnectionStatus.NEEDS_RECONNECT,
            reason,
            if_version=if_version,
            details={"guidance": guidance},
        )

    def _reconnect_error(self, conn: Connection, reason: str) -> ReconnectRequired:
        return ReconnectRequired(conn.id, reason, self._guidance(conn.provider, reason, conn.auth_type))

    def _guidance(self, provider: str, reason: str, auth_type: str | None = None) -> str | None:
        """The provider's reconnect guidance, where it applies: for a refused credential, what
        its auth type advises; otherwise the reconnect policy's summary, but not when the
        provider said the app was uninstalled (nothing to uninstall first), nor for a 401 on a
        token it had just issued (the grant was withdrawn at the provider)."""
        try:
            decl = self.plugins.declaration(provider)
            auth = decl.auth_type(auth_type) if auth_type is not None else None
        except ConnectorError:
            return None
        if auth is not None and not isinstance(auth, OAuth2AuthorizationCode):
            return auth.rejected_guidance or None
        if "uninstall" in reason.lower() or reason == FRESH_401:
            return None
        policy = decl.reconnect_policy
        if policy is None or policy.kind is ReconnectKind.REAUTHORIZE:
            return None
        return policy.summary

    # ------------------------------------------------------------- authorize

    def begin(
        self,
        profile: str,
        *,
        redirect_uri: str | None = None,
        scopes: Sequence[str] | None = None,
        connection_id: str | None = None,
        ttl: float = ATTEMPT_TTL,
        owner: Owner | None = None,
    ) -> AuthorizationStart:
        """Start an authorization: a fresh state (256 bits) and PKCE S256 verifier,
        stored server-side with the redirect URI and scopes; returns the URL to visit.
        ``owner``: whose the connection will be (an end user, organisation, tags); without one
        it is unclaimed (a reconnect keeps its connection's)."""
        prof = self.store.get_profile(profile)
        ctx = self._context(prof)
        grant = self._code_grant(ctx)
        redirect = redirect_uri or self.redirect_uri(prof)
        chosen = tuple(scopes) if scopes is not None else prof.scopes
        state = oauth.new_state()
        verifier = oauth.new_code_verifier() if grant.pkce else None
        url = oauth.authorization_url(
            ctx.authorize_url,
            client_id=ctx.client_id,
            redirect_uri=redirect,
            scopes=chosen,
            scope_separator=grant.scope_separator,
            state=state,
            verifier=verifier,
            extra_params=grant.extra_authorize_params,
        )
        expires_at = time.time() + ttl
        attempt = self.store.create_attempt(
            prof,
            state_hash=oauth.state_hash(state),
            verifier=verifier,
            redirect_uri=redirect,
            scopes=chosen,
            expires_at=expires_at,
            connection_id=connection_id,
            owner=owner,
        )
        return AuthorizationStart(attempt.id, url, redirect, expires_at)

    def complete(
        self, callback: str | Mapping[str, str], *, profile: str | None = None, separate: bool = False
    ) -> ConnectResult:
        """Finish an authorization from the callback URL or its parameters.

        ``profile``, when given, is the profile the caller started with: a callback
        whose state belongs to another profile's attempt is refused. By default an account
        (a company, a client...) the end user has connected through the profile already
        updates their connection; with ``separate`` a new connection is made beside it. A
        reconnect (:meth:`begin_reconnect`) re-authorizes its own connection either way.
        """
        return run_sync(self._complete_flow(callback, profile, separate), self.client, self.deadline)

    async def acomplete(
        self, callback: str | Mapping[str, str], *, profile: str | None = None, separate: bool = False
    ) -> ConnectResult:
        """:meth:`complete`, asynchronously."""
        return await run_async(self._complete_flow(callback, profile, separate), self.async_client, self.deadline)

    def _complete_flow(
        self, callback: str | Mapping[str, str], expected_profile: str | None, separate: bool = False
    ) -> Flow[ConnectResult]:
        params = oauth.parse_callback(callback)
        if params.state is None:
            if params.code is not None:
                raise oauth.StateError(
                    "the callback carries no state of ours; refused. If the install began at the provider, "
                    "complete it as a provider-initiated install",
                    error="invalid_request",
                    code="no_state_of_ours",
                )
            raise oauth.StateError(
                "the callback has no state; it was not sent by this authorization", error="invalid_request"
            )
        found = self.store.consume_attempt(oauth.state_hash(params.state))
        if found is None:
            raise oauth.StateError(
                "the callback's state is unknown or was already used; start the connection again",
                error="invalid_request",
            )
        attempt, verifier = found
        if attempt.expires_at < time.time():
            raise oauth.StateError(
                "the authorization attempt expired; start the connection again", error="invalid_request"
            )
        profile = self.store.profile_by_id(attempt.profile_id)
        if expected_profile is not None and profile.name != expected_profile:
            raise oauth.StateError(
                f"the callback belongs to an authorization of profile {profile.name!r}, "
                f"not {expected_profile!r}; refused",
                error="invalid_request",
            )
        ctx = self._context(profile)
        try:
            yield from self._issuer_flow(ctx, params)
            if params.error is not None:
                raise self._callback_error(ctx, params, reconnect=attempt.connection_id is not None)
            if params.code is None:
                raise OAuthError("the callback has neither a code nor an error", error="invalid_request")
        except OAuthError as exc:
            if attempt.connection_id is not None:  # a failed reconnect leaves the connection needing one
                self._needs_reconnect(attempt.connection_id, f"reconnect failed: {exc.error}")
            raise
        tokens = yield from self._token_call(
            oauth.token_request(
                ctx.token_url,
                code=params.code,
                redirect_uri=attempt.redirect_uri,
                verifier=verifier,
                client_id=ctx.client_id,
                client_secret=ctx.client_secret,
                method=ctx.auth.client_auth_method,
            ),
            what="code exchange",
            redact=_redactions(ctx, params.code, verifier),
        )
        return self._save(
            ctx,
            tokens,
            attempt.scopes,
            provider_initiated=False,
            connection_id=attempt.connection_id,
            owner=attempt.owner,
            separate=separate,
        )

    def complete_provider_initiated(
        self, profile: str, callback: str | Mapping[str, str], *, redirect_uri: str | None = None
    ) -> ConnectResult:
        """Finish an install that began at the provider (its callback has a code and no
        state of ours). Allowed only when the provider declares such installs. The connection
        is unclaimed (no owner) until :meth:`attach` gives it one. ``redirect_uri``: the URI the
        code was sent to (default: the profile's, as for :meth:`redirect_uri`)."""
        prof = self.store.get_profile(profile)
        ctx = self._context(prof)
        if not self._code_grant(ctx).provider_initiated_install:
            raise oauth.StateError(
                f"{ctx.declaration.provider.display_name} does not start installs itself; "
                "a callback without our state is refused",
                error="invalid_request",
            )
        params = oauth.parse_callback(callback)
        if params.state is not None:
            raise oauth.StateError(
                "this callback carries a state: complete it as an authorization of ours instead",
                error="invalid_request",
                code="has_state",
            )
        run_sync(self._issuer_flow(ctx, params), self.client, self.deadline)
        if params.error is not None:
            raise self._callback_error(ctx, params)
        if params.code is None:
            raise OAuthError("the callback has neither a code nor an error", error="invalid_request")
        redirect = redirect_uri or self.redirect_uri(prof)
        flow = self._token_call(
            oauth.token_request(
                ctx.token_url,
                code=params.code,
                redirect_uri=redirect,
                verifier=None,
                client_id=ctx.client_id,
                client_secret=ctx.client_secret,
                method=ctx.auth.client_auth_method,
            ),
            what="code exchange",
            redact=_redactions(ctx, params.code),
        )
        tokens = run_sync(flow, self.client, self.deadline)
        return self._save(ctx, tokens, prof.scopes, provider_initiated=True, connection_id=None)

    def _issuer_flow(self, ctx: _Context, params: oauth.CallbackParams) -> Flow[None]:
        """The RFC 9207 mix-up defence, before any code exchange: the issuer is the profile's
        or the provider's, else the one the provider's RFC 8414 metadata names (see
        :func:`oauth.check_issuer`). A configured issuer requires ``iss``; so does metadata
        advertising ``authorization_response_iss_parameter_supported``."""
        issuer, required = ctx.issuer, ctx.issuer is not None
        if ctx.metadata_url is not None:
            response = yield oauth.metadata_request(ctx.metadata_url)
            assert response is not None
            if response.failure is not None:
                raise OAuthError(
                    f"the authorization server metadata could not be read ({response.failure.message}); "
                    "the callback's issuer cannot be checked, so its code was not exchanged",
                    error="invalid_issuer",
                )
            published, advertised = oauth.parse_metadata(
                response.status, response.body, metadata_url=ctx.metadata_url, truncated=response.truncated
            )
            if issuer is not None and published != issuer:
                raise OAuthError(
                    f"the authorization server metadata names issuer {published!r}, not the configured "
                    f"{issuer!r}; refused",
                    error="invalid_issuer",
                )
            issuer, required = published, required or advertised
        oauth.check_issuer(params.iss, issuer=issuer, required=required, authorize_url=ctx.authorize_url)

    def _callback_error(self, ctx: _Context, params: oauth.CallbackParams, *, reconnect: bool = False) -> OAuthError:
        desc = f": {params.error_description}" if params.error_description else ""
        policy = ctx.declaration.reconnect_policy
        described = (params.error_description or "").lower()
        if (
            policy is not None
            and policy.kind is ReconnectKind.UNINSTALL_THEN_REAUTHORIZE
            and "install" in described
            and params.error in ("access_denied", "invalid_request")
        ):
            name = ctx.declaration.provider.display_name
            # The provider's own words say the same as ours: kept in ``description``, not repeated.
            error = AlreadyInstalled(
                f"{name} refused the authorization because the app is already installed in this company; "
                f"uninstall it first, then {'reconnect' if reconnect else 'connect'} again",
                error=params.error or "access_denied",
                description=params.error_description,
            )
            error.details = policy.lines_for(ctx.profile.environment)
            return error
        if params.error == "access_denied":
            return oauth.AccessDenied(
                f"the authorization was denied{desc}", error="access_denied", description=params.error_description
            )
        return OAuthError(
            f"the provider refused the authorization with {params.error}{desc}",
            error=params.error or "",
            description=params.error_description,
        )

    def _save(
        self,
        ctx: _Context,
        tokens: TokenSet,
        requested: tuple[str, ...],
        *,
        provider_initiated: bool,
        connection_id: str | None,
        owner: Owner | None = None,
        separate: bool = False,
    ) -> ConnectResult:
        """Store the connection ``tokens`` make (``connection_id``'s, when it re-authorizes one; else
        the owner's connection of the same account, unless ``separate``; else a new one)."""
        granted = tokens.scopes if tokens.scopes is not None else requested
        warnings: list[str] = []
        missing = [s for s in requested if s not in granted]
        extra = [s for s in granted if s not in requested]
        if missing:
            warnings.append(f"the provider did not grant: {' '.join(missing)}")
        if extra:
            warnings.append(f"the provider granted more than requested: {' '.join(extra)}")
        identity = self.plugins.identity(ctx.profile.provider, dict(tokens.extra))
        if connection_id is None and identity and not separate:
            connection_id = self._same_account(ctx.profile.name, identity, owner, warnings)
        connection = self.store.save_connection(
            ctx.profile,
            tokens,
            requested=requested,
            granted=tuple(granted),
            identity=identity,
            provider_initiated=provider_initiated,
            connection_id=connection_id,
            reason="reauthorized"
            if connection_id
            else ("installed at the provider" if provider_initiated else "authorized"),
            owner=owner,
        )
        return ConnectResult(connection, tuple(warnings))

    def _same_account(
        self, profile: str, identity: Mapping[str, str], owner: Owner | None, warnings: list[str]
    ) -> str | None:
        """The connection to update when the same account (company, service user, client...) is
        connected again through the same profile, rather than keep two whose tokens would race for
        one grant. With an owner, only that end user's own connection counts (another end user's
        is never handed over); without one, any."""
        end_user = owner.end_user.id if owner is not None and owner.end_user is not None else None
        same = [
            c
            for c in self.store.list_connections(profile=profile, end_user=end_user)
            if dict(c.identity) == dict(identity)
        ]
        if not same:
            return None
        found = max(same, key=lambda c: c.updated_at).id
        warnings.append(f"this account was already connected; {found} was updated")
        return found

    def attach(self, connection_id: str, owner: Owner, *, replace: bool = False) -> Connection:
        """Set whose a connection is: attach an unclaimed one (a Marketplace install) to an end
        user, or change its organisation and tags. A connection that belongs to another end user
        is handed over only with ``replace``."""
        conn = self.store.get_connection(connection_id)
        current = conn.owner.end_user
        wanted = owner.end_user
        if current is not None and not replace and (wanted is None or wanted.id != current.id):
            raise ValidationError(
                "end_user",
                f"connection {connection_id} belongs to end user {current.id!r}; hand it over only on purpose "
                "(replace=True)",
                code="owned_by_another_end_user",
            )
        return self.store.set_owner(connection_id, owner)

    # ------------------------------------------------ connect with credentials

    def connect(
        self,
        profile: str,
        credentials: Mapping[str, str | Secret] | None = None,
        *,
        connection_id: str | None = None,
        scopes: Sequence[str] | None = None,
        test: bool = True,
        owner: Owner | None = None,
        separate: bool = False,
        before_save: Callable[[], object] | None = None,
    ) -> ConnectResult:
        """Connect through a profile whose auth type sends no one to the provider: HTTP Basic
        or an API key (``credentials`` are the end user's fields, such as a service
        user's ID and token), or an OAuth 2.0 client credentials grant (no credentials: the
        profile's client fetches a token for ``scopes``, default the profile's).

        Every value is checked against its credential field first. With ``test`` (the
        default) the provider's connection test then runs with them, and a refusal raises
        :class:`~connector_core.CredentialsRejected`: nothing is stored unless it passes.
        The credentials are stored encrypted with the connection. ``connection_id`` replaces
        the credentials of an existing connection of the profile, keeping its id and history.
        ``owner``: whose the connection is (as for :meth:`begin`). By default the same account
        (service user, API key, client) connected again updates the owner's connection of it;
        with ``separate`` a new connection is made beside it (not with ``connection_id``).
        ``before_save`` is called once the credentials passed the connection test, just before
        anything is stored; what it raises stops the connect with nothing stored (a connect page
        claims its single-use session there, so that a mistyped token does not use the session up).
        """
        flow = self._connect_flow(profile, credentials or {}, connection_id, scopes, test, owner, separate, before_save)
        return run_sync(flow, self.client, self.deadline)

    async def aconnect(
        self,
        profile: str,
        credentials: Mapping[str, str | Secret] | None = None,
        *,
        connection_id: str | None = None,
        scopes: Sequence[str] | None = None,
        test: bool = True,
        owner: Owner | None = None,
        separate: bool = False,
        before_save: Callable[[], object] | None = None,
    ) -> ConnectResult:
        """:meth:`connect`, asynchronously."""
        flow = self._connect_flow(profile, credentials or {}, connection_id, scopes, test, owner, separate, before_save)
        return await run_async(flow, self.async_client, self.deadline)

    def _connect_flow(
        self,
        profile: str,
        given: Mapping[str, str | Secret],
        connection_id: str | None,
        scopes: Sequence[str] | None,
        test: bool,
        owner: Owner | None = None,
        separate: bool = False,
        before_save: Callable[[], object] | None = None,
    ) -> Flow[ConnectResult]:
        if separate and connection_id is not None:
            raise ValidationError(
                "separate", "makes a new connection, so it cannot go with connection_id (which updates that one)"
            )
        prof = self.store.get_profile(profile)
        decl = self.plugins.declaration(prof.provider)
        auth = decl.auth_type(prof.auth_type)
        if isinstance(auth, OAuth2AuthorizationCode):
            raise ValidationError(
                "auth_type",
                f"profile {prof.name!r} uses {auth.key} (the OAuth 2.0 authorization code grant): a person "
                "authorizes at the provider; start with begin() and finish with complete()",
            )
        if connection_id is not None:
            existing = self.store.get_connection(connection_id)
            if existing.profile_id != prof.id:
                raise ValidationError(
                    "connection_id", f"{connection_id} belongs to profile {existing.profile!r}, not {prof.name!r}"
                )
        values = check_credentials(decl, auth, given)
        fields = {f.name: f for f in decl.fields_for(auth.key)}
        identity = {name: value.reveal() for name, value in values.items() if not fields[name].secret}
        tokens: TokenSet | None = None
        requested: tuple[str, ...] = ()
        if isinstance(auth, OAuth2ClientCredentials):
            ctx = self._context(prof)
            requested = tuple(scopes) if scopes is not None else prof.scopes
            tokens = yield from self._token_call(
                self._client_credentials_request(ctx, requested),
                what="client credentials grant",
                redact=_redactions(ctx),
            )
            signature = _bearer(tokens.access_token)
            identity = {"client_id": ctx.client_id}
        else:
            if scopes:
                raise ScopeError("scopes", f"{auth.key} ({auth.kind.value}) connections request no OAuth scopes")
            merged, absent = _with_profile_values(decl.credential_names(auth), values, prof)
            if absent:
                raise ValidationError(absent[0], f"is needed to sign requests with {auth.key} and was not given")
            signature = _signature(auth, merged)
        if test and decl.connection_test is not None:
            yield from self._probe_flow(decl, prof, auth, signature)
        if before_save is not None:
            before_save()
        warnings: list[str] = []
        if connection_id is None and identity and not separate:
            connection_id = self._same_account(prof.name, identity, owner, warnings)
        granted = tokens.scopes if tokens is not None and tokens.scopes is not None else requested
        connection = self.store.save_connection(
            prof,
            tokens,
            requested=requested,
            granted=tuple(granted),
            identity=identity,
            provider_initiated=False,
            connection_id=connection_id,
            reason=CREDENTIALS_REPLACED if connection_id else CONNECTED,
            credentials=values,
            owner=owner,
        )
        return ConnectResult(connection, tuple(warnings))

    def _probe_flow(
        self, decl: ProviderDeclaration, profile: Profile, auth: AuthType, signature: _Signature
    ) -> Flow[None]:
        """The provider's connection test with credentials not stored yet; any refusal raises."""
        check = decl.connection_test
        assert check is not None
        name = decl.provider.display_name
        url = signature.url(self._api_base_url(profile, decl) + check.path)
        hdrs = [*signature.headers, ("Accept", "application/json")]
        if check.json_body:
            hdrs.append(("Content-Type", "application/json"))
        payload = check.json_body.encode("utf-8") if check.json_body else b""
        what = f"the connection test ({check.method} {check.path})"
        response: HttpResponse | None = None
        for attempt in range(MAX_ATTEMPTS):
            response = yield HttpRequest(check.method, url, tuple(hdrs), payload)
            assert response is not None
            pause = _api_retry(check.method, response, attempt)
            if pause is None:
                break
            yield pause
        assert response is not None
        if response.failure is not None:
            raise RequestFailed(f"{what}: {response.failure.message}; nothing was stored")
        guidance = getattr(auth, "rejected_guidance", "") or None
        if response.status == 401:
            raise CredentialsRejected(
                f"{name} refused the {auth.label} credentials: {what} answered 401; nothing was stored.",
                status=401,
                guidance=guidance,
            )
        if response.status == 403:
            raise CredentialsRejected(
                f"{name} accepted the {auth.label} credentials but refused {what} with 403, so they may not read "
                "what the connection needs; nothing was stored.",
                status=403,
                guidance=guidance,
            )
        if response.status != check.expected_status:
            raise RequestFailed(
                f"{what} answered {response.status}, expected {check.expected_status}; nothing was stored",
                status=response.status,
            )

    # ------------------------------------------------------------- reconnect

    def reconnect_plan(self, connection_id: str, *, scopes: Sequence[str] | None = None) -> ReconnectPlan:
        """What reconnecting would take: the provider's policy, the manual steps for the
        connection's environment, and the scopes to request (the union of the old
        grant and the profile's current scopes unless ``scopes`` is given)."""
        conn = self.store.get_connection(connection_id)
        profile = self.store.get_profile(conn.profile, with_secrets=False)
        policy = self.plugins.declaration(conn.provider).reconnect_policy or ReconnectPolicy(
            ReconnectKind.REAUTHORIZE, "Authorize again; the provider replaces the grant."
        )
        if scopes is not None:
            chosen = tuple(dict.fromkeys(scopes))
        else:
            chosen = tuple(dict.fromkeys((*conn.granted_scopes, *profile.scopes)))
        return ReconnectPlan(
            conn, policy, policy.procedures_for(conn.environment), policy.lines_for(conn.environment), chosen
        )

    def begin_reconnect(
        self,
        connection_id: str,
        *,
        scopes: Sequence[str] | None = None,
        redirect_uri: str | None = None,
        confirmed: bool = False,
    ) -> AuthorizationStart:
        """Apply the provider's reconnect policy and start the authorization again; the
        completed connection keeps its id, metadata and history."""
        plan = self.reconnect_plan(connection_id, scopes=scopes)
        auth = self._auth_of(plan.connection)
        if not isinstance(auth, OAuth2AuthorizationCode):
            raise ValidationError(
                "connection",
                f"{connection_id} was made with {auth.key} ({auth.kind.value}), which sends no one to the provider: "
                "reconnect it with Connector.connect(profile, credentials, connection_id=...)",
            )
        if plan.policy.kind is ReconnectKind.UNINSTALL_THEN_REAUTHORIZE and not confirmed:
            error = ConfirmationRequired(
                f"reconnecting {plan.connection.provider} needs manual steps first: {plan.policy.summary}"
            )
            error.details = plan.lines
            raise error
        if plan.policy.kind is ReconnectKind.REVOKE_THEN_REAUTHORIZE:
            _, access, refresh = self.store.get_tokens(connection_id)
            if access is not None or refresh is not None:
                run_sync(self._revoke_flow(connection_id, keep_status=True), self.client, self.deadline)
        start = self.begin(
            plan.connection.profile, redirect_uri=redirect_uri, scopes=plan.scopes, connection_id=connection_id
        )
        self.store.set_status(connection_id, ConnectionStatus.PENDING, f"reconnect started ({plan.policy.kind.value})")
        return start

    # ----------------------------------------------------------- token calls

    def _token_call(self, request: HttpRequest, *, what: str, redact: Sequence[str] = ()) -> Flow[TokenSet]:
        """Send a token request with bounded retries. Token requests are not idempotent (a
        single-use code, a rotating refresh token): one is retried only when it surely did
        not reach the server, or the server said 429/503 (it did not act on it).

        A lost response (a timeout after sending, a dropped connection, another 5xx, or a 200
        whose body is unusable) is never retried: a replayed code makes the provider revoke the
        grant it issued for it (RFC 6749 §4.1.2), and a second refresh while the first is still
        being processed looks like a replay of a rotated token (RFC 9700 §4.14). It raises
        :class:`OutcomeUnknown`. ``redact``: the request's secret values, never shown in an
        error even if the provider echoes them."""
        for attempt in range(MAX_ATTEMPTS):
            sent_at = time.time()
            response = yield request
            assert response is not None
            try:
                if response.failure is not None:
                    raise response.failure
                if response.truncated:  # cut while reading, never read whole first
                    limit = (request.max_bytes or MAX_BODY_BYTES) // 1024
                    message = f"{what}: the response is larger than {limit} KiB; refused"
                    raise OAuthError(message, status=response.status)
                return oauth.parse_token_response(
                    response.status, response.headers, response.body, sent_at=sent_at, what=what, redact=redact
                )
            except OAuthError as exc:
                if isinstance(exc, TransientError):
                    retryable = not exc.reached_server or exc.status in (429, 503)
                    lost = not retryable
                else:
                    retryable = False
                    # A 200 that cannot be read is a lost response too: the server acted on it.
                    lost = response.status == 200 and exc.error == "invalid_response"
                if lost:
                    shown = exc.message if exc.message.startswith(f"{what}:") else f"{what}: {exc.message}"
                    raise OutcomeUnknown(
                        f"{shown} (after {attempt + 1} attempt(s)); the request had reached the provider, "
                        "which may have acted on it, so it was not sent again",
                        status=exc.status,
                    ) from None
                if not isinstance(exc, TransientError):
                    if not retryable or attempt == MAX_ATTEMPTS - 1:
                        raise
                    yield Sleep(_backoff(attempt, None))
                    continue
                if not retryable or attempt == MAX_ATTEMPTS - 1:
                    message = exc.message if exc.message.startswith(f"{what}:") else f"{what}: {exc.message}"
                    raise TransientError(
                        f"{message} (after {attempt + 1} attempt(s))",
                        retry_after=exc.retry_after,
                        status=exc.status,
                        reached_server=exc.reached_server,
                    ) from None
                yield Sleep(_backoff(attempt, exc.retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    # --------------------------------------------------------------- refresh

    def leeway_for(self, connection: Connection) -> float:
        """How long before expiry the connection's access token is refreshed: ``leeway``, or a
        tenth of the token's lifetime (from when it was issued to when it expires) if less."""
        if connection.expires_at is None:
            return self.leeway
        return self._leeway(connection.expires_at, _issued(connection))

    def _leeway(self, expires_at: float, issued: float | None) -> float:
        if issued is None:
            return self.leeway
        return min(self.leeway, max(expires_at - issued, 0.0) * LEEWAY_FRACTION)

    def _needs_refresh(self, connection: Connection) -> bool:
        return connection.expires_at is not None and connection.expires_at - self.leeway_for(connection) <= time.time()

    def refresh(self, connection_id: str, *, force: bool = False) -> Connection:
        """Refresh now if the token is (nearly) expired, or always with ``force``."""
        return run_sync(
            self._refresh_flow(connection_id, self._forced_version(connection_id, force)), self.client, self.deadline
        )

    async def arefresh(self, connection_id: str, *, force: bool = False) -> Connection:
        """:meth:`refresh` for an event loop: its store reads and writes run in a thread of the
        connector's (see :meth:`_step_runner`), never on the loop."""

        def flow() -> Flow[Connection]:
            stale = self._forced_version(connection_id, force)
            return (yield from self._refresh_flow(connection_id, stale))

        return await self._step_runner().run(flow(), self.async_client, self.deadline)

    def _step_runner(self) -> StepRunner:
        """The threads that run the store steps of this connector's async refreshes, started on
        first use and ended by :meth:`aclose`. On a store that batches writes (SQLite), one thread
        runs the steps of every refresh under way at once in one transaction, one commit (see
        :class:`~connector_core._steps.StepRunner`); on others, a few, each refresh keeping one."""
        runner = self._steps
        if runner is None:
            from functools import partial  # here, with the runner: only async refreshes need either

            from ._steps import StepRunner  # here, not at the top: threads and queues for async refreshes only

            batched = getattr(self.store, "batched", None)
            runner = self._steps = StepRunner(
                1 if batched is not None else ASYNC_STORE_THREADS,
                batch=partial(batched, defer_sync=True) if batched is not None else None,
                name="connector-arefresh",
            )
        return runner

    def _forced_version(self, connection_id: str, force: bool) -> int | None:
        """The token version a forced refresh replaces; None (refresh if expiring) otherwise.
        Only a forced refresh reads the connection here: the flow reads it anyway."""
        return self.store.get_connection(connection_id).token_version if force else None

    def _refresh_flow(
        self,
        connection_id: str,
        stale_version: int | None,
        *,
        first: Connection | None = None,
        contexts: Callable[[str], _Context] | None = None,
    ) -> Flow[Connection]:
        """Single-flight refresh: read, take the lease, call the token endpoint, save.
        ``stale_version``: refresh only if the tokens are still that version (a 401 was seen
        with them); None: refresh only if expiring. A lease another refresher holds is
        waited for here, with Sleeps, never by blocking. ``first``: the connection as just read,
        to use instead of reading it again the first time. ``contexts``: the OAuth context of a
        profile id (a bulk refresh's, which reads each profile again only now and then); by
        default the profile is read for each refresh."""
        deadline = time.monotonic() + LEASE_WAIT
        while True:
            conn, first = (first, None) if first is not None else (self.store.get_connection(connection_id), None)
            if not self._uses_tokens(conn):  # credentials do not expire here: nothing to refresh
                self._require_usable(conn)
                return conn
            if not self._still_wanted(conn, stale_version):
                return conn
            with self.store.refresh_lease(connection_id, LEASE_TTL) as lease:
                if lease.held:
                    return (yield from self._refresh_leased(lease, stale_version, contexts))
            if time.monotonic() > deadline:
                raise TransientError(
                    f"connection {connection_id}: another process is still refreshing it; try again",
                    reached_server=False,
                )
            yield Sleep(0.02 + random.random() * 0.03)  # noqa: S311

    def _still_wanted(self, conn: Connection, stale_version: int | None) -> bool:
        self._require_usable(conn)
        return (conn.token_version == stale_version) if stale_version is not None else self._needs_refresh(conn)

    def _refresh_leased(
        self, lease: RefreshLease, stale_version: int | None, contexts: Callable[[str], _Context] | None = None
    ) -> Flow[Connection]:
        """The refresh under a held lease (which the caller ends on every exit)."""
        # Double-checked: another process may have refreshed between our read and the lease.
        conn, _, refresh_token = lease.read()
        connection_id = conn.id
        if not self._still_wanted(conn, stale_version):
            return conn
        lost = _lost_since(conn)
        if lost is not None and time.time() - lost < LOST_HOLD:
            raise TransientError(
                f"connection {connection_id}: a refresh whose reply was lost {time.time() - lost:.0f} s ago may still "
                f"be processed by the provider; no other is sent for {LOST_HOLD:.0f} s after it",
                reached_server=False,
            )
        ctx = contexts(conn.profile_id) if contexts else self._context(self.store.profile_by_id(conn.profile_id))
        if isinstance(ctx.auth, OAuth2ClientCredentials):
            return (yield from self._refetch_leased(lease, conn, ctx))
        if refresh_token is None:
            reason = "no refresh token, and the access token expired"
            self._needs_reconnect(connection_id, reason)
            raise self._reconnect_error(conn, reason)
        request = oauth.refresh_request(
            ctx.token_url,
            refresh_token=refresh_token,
            scopes=None,
            scope_separator=ctx.auth.scope_separator,
            client_id=ctx.client_id,
            client_secret=ctx.client_secret,
            method=ctx.auth.client_auth_method,
        )
        version = conn.token_version
        try:
            tokens = yield from self._token_call(request, what="refresh", redact=_LazyRedactions(ctx, refresh_token))
        except OutcomeUnknown:
            # The provider may have rotated the refresh token and be sending the new one into the
            # void: say so on the connection (still connected: it may not have), send no other.
            self.store.set_status(connection_id, ConnectionStatus.CONNECTED, LOST_REPLY, if_version=version)
            raise
        except InvalidGrant as exc:
            reason = f"refresh refused: {exc.description or exc.error}"
            if _lost_since(conn) is not None:
                reason = (
                    f"refresh refused ({exc.description or exc.error}) after an earlier refresh's reply was lost: "
                    "the provider had acted on that one, rotating the refresh token, and its new tokens never arrived"
                )
            marked = self._needs_reconnect(connection_id, reason, if_version=version)
            if marked.token_version != version:
                # Another refresher (after our lease ran out in a long Retry-After) or a
                # reconnect replaced the tokens meanwhile: ours was merely an old one.
                self._require_usable(marked)
                return marked
            raise self._reconnect_error(conn, reason) from None
        granted = tokens.scopes if tokens.scopes is not None else conn.granted_scopes
        return lease.save(version, tokens, tuple(granted))

    def _client_credentials_request(self, ctx: _Context, scopes: Sequence[str]) -> HttpRequest:
        auth = ctx.auth
        assert isinstance(auth, OAuth2ClientCredentials)
        return oauth.client_credentials_request(
            ctx.token_url,
            scopes=scopes,
            scope_separator=auth.scope_separator,
            client_id=ctx.client_id,
            client_secret=ctx.client_secret,
            method=auth.client_auth_method,
            extra_params=auth.extra_token_params,
        )

    def _refetch_leased(self, lease: RefreshLease, conn: Connection, ctx: _Context) -> Flow[Connection]:
        """A client credentials connection's new access token, under the held lease: nothing
        rotates, so a lost reply is merely retried later; a refusal means the profile's client
        credentials no longer work."""
        version = conn.token_version
        request = self._client_credentials_request(ctx, conn.requested_scopes)
        try:
            tokens = yield from self._token_call(request, what="client credentials grant", redact=_LazyRedactions(ctx))
        except TransientError:
            raise
        except OAuthError as exc:
            reason = f"the client credentials were refused: {exc.description or exc.error or exc.message}"
            marked = self._needs_reconnect(conn.id, reason, if_version=version)
            if marked.token_version != version:
                self._require_usable(marked)
                return marked
            raise self._reconnect_error(conn, reason) from None
        granted = tokens.scopes if tokens.scopes is not None else conn.granted_scopes
        return lease.save(version, tokens, tuple(granted))

    def _require_usable(self, conn: Connection) -> None:
        if conn.status is ConnectionStatus.NEEDS_RECONNECT:
            reason = conn.status_reason or "needs reconnecting"
            raise self._reconnect_error(conn, reason)
        if conn.status is not ConnectionStatus.CONNECTED:
            raise ValidationError("connection", f"{conn.id} is {conn.status.value}; connect again to use it")

    def _token_flow(self, connection_id: str, *, first: Connection | None = None) -> Flow[tuple[Connection, Secret]]:
        conn = yield from self._refresh_flow(connection_id, None, first=first)
        auth = self._auth_of(conn)
        if not isinstance(auth, (OAuth2AuthorizationCode, OAuth2ClientCredentials)):
            raise ValidationError(
                "connection",
                f"{connection_id} was made with {auth.key} ({auth.kind.value}) and has no access token; "
                "send requests through Connector.request() or Connector.auth()",
            )
        conn, access = self.store.get_access_token(connection_id)  # its refresh token stays sealed
        if access is None:
            raise self._reconnect_error(conn, GONE)
        return conn, access

    def _signature_flow(
        self, connection_id: str, *, first: Connection | None = None
    ) -> Flow[tuple[Connection, _Signature]]:
        """How to authenticate a request of the connection now: its access token (refreshed
        first if due) or the credentials it holds. ``first``: the connection as just read."""
        conn = first if first is not None else self.store.get_connection(connection_id)
        auth = self._auth_of(conn)
        if isinstance(auth, (OAuth2AuthorizationCode, OAuth2ClientCredentials)):
            conn, access = yield from self._token_flow(connection_id, first=conn)
            return conn, _bearer(access)
        conn, credentials = self.store.get_credentials(connection_id)
        self._require_usable(conn)
        return conn, self._credential_signature(conn, auth, credentials)

    def _credential_signature(
        self, conn: Connection, auth: HttpBasicAuth | ApiKeyAuth, credentials: Mapping[str, Secret]
    ) -> _Signature:
        """The signature from the connection's credentials and any the profile holds (app-level
        fields: read, with its secrets, only when the auth type needs one)."""
        names = self.plugins.declaration(conn.provider).credential_names(auth)
        values, absent = dict(credentials), [n for n in names if n not in credentials]
        if absent:  # app-level fields: only then is the profile read, with its secrets
            profile = self.store.profile_by_id(conn.profile_id, with_secrets=True)
            values, absent = _with_profile_values(names, credentials, profile)
        if absent:
            reason = f"its credentials are incomplete ({', '.join(absent)} missing)"
            self._needs_reconnect(conn.id, reason, if_version=conn.token_version)
            raise self._reconnect_error(conn, reason)
        return _signature(auth, values)

    def _mark_rejected(self, conn: Connection) -> ReconnectRequired | None:
        """A 401 on a connection's own credentials: nothing refreshes them, so the connection
        needs new ones. Returns the error to raise, or None when its credentials were replaced
        meanwhile (the 401 was about the old ones)."""
        marked = self._needs_reconnect(conn.id, REJECTED_401, if_version=conn.token_version)
        if marked.token_version != conn.token_version:
            return None
        return self._reconnect_error(conn, REJECTED_401)

    def access_token(self, connection_id: str) -> Secret:
        """A valid access token, refreshed first if needed."""
        return run_sync(self._token_flow(connection_id), self.client, self.deadline)[1]

    async def aaccess_token(self, connection_id: str) -> Secret:
        return (await run_async(self._token_flow(connection_id), self.async_client, self.deadline))[1]

    # ---------------------------------------------------------------- revoke

    def revoke(self, connection_id: str) -> RevokeResult:
        """Revoke at the provider (RFC 7009) where it can; otherwise delete the tokens
        locally, and say so."""
        return run_sync(self._revoke_flow(connection_id), self.client, self.deadline)

    def _revoke_flow(self, connection_id: str, *, keep_status: bool = False) -> Flow[RevokeResult]:
        conn, access, refresh = self.store.get_tokens(connection_id)
        auth = self._auth_of(conn)
        if not isinstance(auth, (OAuth2AuthorizationCode, OAuth2ClientCredentials)):
            done = self.store.set_status(
                connection_id,
                ConnectionStatus.DISCONNECTED,
                "credentials deleted locally: they stay valid at the provider",
                delete_tokens=True,
            )
            name = self.plugins.declaration(conn.provider).provider.display_name
            return RevokeResult(
                done,
                False,
                f"{auth.label}: the credentials were deleted here, but they stay valid at {name} until they are "
                f"reset or removed there",
            )
        ctx = self._context(self.store.profile_by_id(conn.profile_id))
        if ctx.revocation_url is None:
            done = self.store.set_status(
                connection_id,
                ConnectionStatus.DISCONNECTED,
                "tokens deleted locally: the provider has no revocation endpoint",
                delete_tokens=True,
            )
            name = ctx.declaration.provider.display_name
            return RevokeResult(
                done,
                False,
                f"{name} has no token revocation endpoint: the tokens were deleted "
                f"here, but the grant stays valid at {name} until the app is "
                "uninstalled there",
            )
        for token, hint in ((refresh, "refresh_token"), (access, "access_token")):
            if token is None:
                continue
            request = oauth.revocation_request(
                ctx.revocation_url,
                token=token,
                token_type_hint=hint,
                client_id=ctx.client_id,
                client_secret=ctx.client_secret,
                method=ctx.auth.client_auth_method,
            )
            for attempt in range(MAX_ATTEMPTS):
                response = yield request
                assert response is not None
                if response.failure is None and response.status == 200:
                    break
                error = response.failure or oauth.error_from_response(
                    response.status,
                    response.headers,
                    response.body,
                    what="revocation",
                    redact=_redactions(ctx, token),
                )
                if not isinstance(error, TransientError):
                    raise error
                if attempt == MAX_ATTEMPTS - 1:
                    message = (
                        error.message if error.message.startswith("revocation:") else f"revocation: {error.message}"
                    )
                    raise TransientError(
                        f"{message} (after {attempt + 1} attempt(s))",
                        retry_after=error.retry_after,
                        status=error.status,
                        reached_server=error.reached_server,
                    )
                yield Sleep(_backoff(attempt, error.retry_after))
        if keep_status:  # revoked on the way to a reconnect: the connection lives on
            pending = self.store.set_status(
                connection_id, ConnectionStatus.PENDING, "revoked for a reconnect", delete_tokens=True
            )
            return RevokeResult(pending, True, "revoked for a reconnect")
        done = self.store.set_status(
            connection_id, ConnectionStatus.REVOKED, "revoked at the provider", delete_tokens=True
        )
        return RevokeResult(done, True, "revoked at the provider; the tokens were deleted here")

    def delete(self, connection_id: str) -> None:
        """Forget a connection and its tokens locally (no call to the provider)."""
        self.store.delete_connection(connection_id)

    # --------------------------------------------------------------- requests

    def _request_flow(
        self, connection_id: str, method: str, path: str, body: Any | None, headers: Mapping[str, str] | None
    ) -> Flow[HttpResponse]:
        if not path.startswith("/"):
            raise ValidationError("path", f"expected a path starting with '/', got {path!r}")
        ready = self._ready_now(connection_id)
        if ready is None:
            ready = yield from self._ready_flow(connection_id)
        conn, signature, base = ready.connection, ready.signature, ready.base_url
        payload = b"" if body is None else jsonlib.dumps(body).encode("utf-8")
        refreshed = False
        for attempt in range(MAX_ATTEMPTS):
            hdrs = [*signature.headers, ("Accept", "application/json")]
            if body is not None:
                hdrs.append(("Content-Type", "application/json"))
            hdrs.extend((headers or {}).items())
            response = yield HttpRequest(method.upper(), signature.url(base + path), tuple(hdrs), payload)
            assert response is not None
            pause = _api_retry(method.upper(), response, attempt)
            if response.failure is not None:
                if pause is not None:
                    yield pause
                    continue
                raise RequestFailed(f"{method.upper()} {path}: {response.failure.message}")
            if response.truncated:  # never hand over a body cut at the cap as if it were whole
                raise RequestFailed(
                    f"{method.upper()} {path}: the response is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB; "
                    "refused",
                    status=response.status,
                )
            if response.status == 401:
                self._forget(connection_id)
            if response.status == 401 and not signature.bearer:
                rejected = self._mark_rejected(conn)
                if rejected is not None:
                    raise rejected
                return response
            if response.status == 401 and not refreshed:
                # Once: refresh (single-flight) and retry; a second 401 is not looped on
                # (some providers' firewalls block clients that repeat 401s).
                refreshed = True
                conn = yield from self._refresh_flow(connection_id, conn.token_version)
                conn, fresh = self.store.get_access_token(connection_id)
                if fresh is None:
                    raise self._reconnect_error(conn, GONE)
                signature = _bearer(fresh)
                continue
            if response.status == 401:
                reason = FRESH_401
                marked = self._needs_reconnect(connection_id, reason, if_version=conn.token_version)
                if marked.token_version == conn.token_version:
                    raise self._reconnect_error(conn, reason)
                return response  # the tokens changed meanwhile (a reconnect): not this call's verdict
            if pause is not None:
                yield pause
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover - the last attempt always returns

    def request(
        self,
        connection_id: str,
        method: str,
        path: str,
        *,
        json: Any | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """An authenticated call to ``path`` under the connection's API base URL,
        refreshing as needed and honouring rate-limit headers (bounded)."""
        return run_sync(self._request_flow(connection_id, method, path, json, headers), self.client, self.deadline)

    async def arequest(
        self,
        connection_id: str,
        method: str,
        path: str,
        *,
        json: Any | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        return await run_async(
            self._request_flow(connection_id, method, path, json, headers), self.async_client, self.deadline
        )

    def test(self, connection_id: str) -> TestResult:
        """Run the provider's connection test."""
        conn = self.store.get_connection(connection_id)
        check = self.connection_test_for(self.store.get_profile(conn.profile, with_secrets=False))
        if check is None:
            if not self._uses_tokens(conn):  # nothing to call: the credentials are only checked to be usable
                self._require_usable(conn)
                return TestResult(
                    True, 0, "the provider declares no connection test; the credentials are stored, not tried"
                )
            self.access_token(connection_id)
            return TestResult(True, 0, "the provider declares no connection test; the token is valid")
        auth = self._auth_of(conn)
        body = jsonlib.loads(check.json_body) if check.json_body else None
        response = self.request(connection_id, check.method, check.path, json=body)
        ok = response.status == check.expected_status
        detail = f"{check.method} {check.path} answered {response.status}"
        if not ok:
            detail += f", expected {check.expected_status}"
            if response.status == 403:
                if isinstance(auth, (HttpBasicAuth, ApiKeyAuth)):
                    advice = f"; {auth.rejected_guidance}" if auth.rejected_guidance else ""
                    detail += f" (the credentials were accepted but may not do this{advice})"
                elif check.scope:
                    detail += f" (is {check.scope} granted and configured on the app?)"
        return TestResult(ok, response.status, detail)

    def connection_test_for(self, profile: Profile) -> ConnectionTest | None:
        """The provider's connection test as ``profile`` runs it: on the path the profile chose
        (``connection_test_path``), where its auth type lets a profile choose one."""
        decl = self.plugins.declaration(profile.provider)
        check = decl.connection_test
        if check is None:
            return None
        auth = decl.auth_type(profile.auth_type)
        path = (
            profile.option("connection_test_path")
            if "connection_test_path" in getattr(auth, "profile_options", ())
            else None
        )
        return attrs.evolve(check, path=path) if path else check

    def auth(self, connection_id: str) -> ConnectionAuth:
        """An ``httpx.Auth`` for this connection: ``httpx.Client(auth=connector.auth(cid))``.
        It sends the token only to the connection's API origin (its API base URL's scheme,
        host and port); a request to any other origin is refused before a token is read."""
        from ._httpx_auth import ConnectionAuth  # here, not at the top: it imports httpx (cold start)

        return ConnectionAuth(self, connection_id)

    def _refuse_other_origin(self, connection_id: str, base_url: str, url: str) -> None:
        """Refuse to put the connection's token on a request to another origin than its API's
        (RFC 6750 §5.3: a bearer token goes only where it is meant to). No refresh happens."""
        api = oauth.origin(base_url)
        target = oauth.origin(url)
        if target != api:
            raise RequestFailed(
                f"connection {connection_id}'s token is sent only to {api}; a request to {target} was refused "
                "without it"
            )

    # ------------------------------------------------------ ready signatures
    # A request needs the connection's signature (its access token, or its credentials) and its
    # API base URL. Both are kept per connection (``_ready``) with the stamp of the rows they were
    # read from; each request reads the stamp again (one narrow statement) and reads everything
    # anew when another process or thread wrote the connection or its profile since (a refresh,
    # a reconnect, a status change), or when a refresh is due.

    def _still_ready(self, ready: _Ready) -> bool:
        """Whether ``ready`` may sign a request now: the store's stamp of its connection is the one
        it was read with, and no refresh is due."""
        conn = ready.connection
        if self.store.connection_stamp(conn.id) != ready.stamp:
            return False
        expires = conn.expires_at
        return expires is None or expires - self._leeway(expires, ready.issued) > time.time()

    def _ready_now(self, connection_id: str) -> _Ready | None:
        """The kept signature of the connection, if it may still sign a request."""
        ready = self._ready.get(connection_id)
        return ready if ready is not None and self._still_ready(ready) else None

    def _ready_flow(self, connection_id: str, url: str | None = None) -> Flow[_Ready]:
        """Read the connection's signature (refreshed first if due) and API base URL, and keep them
        for its next requests. ``url``: the request's, refused unless it is on the API's origin,
        before any token is read."""
        conn = self.store.get_connection(connection_id)
        profile = self.store.profile_by_id(conn.profile_id, with_secrets=False)  # the base URL needs no secret
        base = self._api_base_url(profile)
        if url is not None:
            self._refuse_other_origin(connection_id, base, url)
        # The profile is read before the tokens: should it change in between, the stamp kept is the
        # older one, and the next request reads everything again.
        conn, signature = yield from self._signature_flow(connection_id, first=conn)
        ready = _Ready(ConnectionStamp.of(conn, profile), conn, signature, base)
        if conn.profile_id == profile.id:
            with self._ready_lock:
                if connection_id not in self._ready and len(self._ready) >= READY_CONNECTIONS:
                    self._ready.pop(next(iter(self._ready)))
                self._ready[connection_id] = ready
        return ready

    def _forget(self, connection_id: str) -> None:
        """Read the connection in full at its next request (after a 401)."""
        with self._ready_lock:
            self._ready.pop(connection_id, None)

    def _kept_for(self, connection_id: str, url: httpx.URL) -> _Ready | None:
        """The kept signature for a request to ``url``, when nothing changed and the URL is plainly
        on the API's origin, whose base URL passed the endpoint check when kept (https, or http to
        a loopback address): no user:password@, #fragment, backslash or white space. Any other URL
        takes the full checks."""
        ready = self._ready.get(connection_id)
        if (
            ready is None
            or (url.scheme, url.host, url.port) != ready.origin
            or url.userinfo
            or url.fragment
            or _ODD_PATH.search(url.raw_path)
            or not ready.endpoint_ok
        ):
            return None
        return ready if self._still_ready(ready) else None

    def _sync_auth(self, connection_id: str, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """:class:`ConnectionAuth`'s flow for a sync client."""
        ready = self._kept_for(connection_id, request.url)
        if ready is None:
            url = str(request.url)
            check_endpoint(url)  # never a credential in the clear, whoever built the URL
            ready = run_sync(self._ready_flow(connection_id, url), self.client, self.deadline)
        ready.signature.apply(request)
        response = yield request
        if response.status_code != 401:
            return
        self._forget(connection_id)
        conn = ready.connection
        if not ready.signature.bearer:  # the caller gets the 401; the connection says why
            self._mark_rejected(conn)
            return
        # The refresh reads the connection first: a token another process refreshed meanwhile is
        # used, not refreshed again.
        run_sync(self._refresh_flow(connection_id, conn.token_version), self.client, self.deadline)
        now, fresh = run_sync(self._token_flow(connection_id), self.client, self.deadline)
        _bearer(fresh).apply(request)
        if (yield request).status_code == 401:  # the caller gets the 401; the connection says why
            self._needs_reconnect(connection_id, FRESH_401, if_version=now.token_version)

    async def _async_auth(
        self, connection_id: str, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """:class:`ConnectionAuth`'s flow for an async client."""
        ready = self._kept_for(connection_id, request.url)
        if ready is None:
            url = str(request.url)
            check_endpoint(url)  # never a credential in the clear, whoever built the URL
            ready = await run_async(self._ready_flow(connection_id, url), self.async_client, self.deadline)
        ready.signature.apply(request)
        response = yield request
        if response.status_code != 401:
            return
        self._forget(connection_id)
        conn = ready.connection
        if not ready.signature.bearer:
            self._mark_rejected(conn)
            return
        await run_async(self._refresh_flow(connection_id, conn.token_version), self.async_client, self.deadline)
        now, fresh = await run_async(self._token_flow(connection_id), self.async_client, self.deadline)
        _bearer(fresh).apply(request)
        if (yield request).status_code == 401:
            self._needs_reconnect(connection_id, FRESH_401, if_version=now.token_version)
