"""The emulator's OAuth 2.0 authorization server, built on oauthlib's server endpoints.

oauthlib's :class:`~oauthlib.oauth2.WebApplicationServer` implements the
protocol (RFC 6749 authorization code and refresh token grants, and its
client credentials grant for providers that declare one, RFC 7636 PKCE,
RFC 7009 revocation, the error responses); this module supplies only its
:class:`~oauthlib.oauth2.RequestValidator`: where clients, codes and tokens
live and the provider's rules (scopes configured on the app, one installation
per company, refresh-token rotation).

The validator learns the environment of a request from the first segment of
its path (``/{environment}/oauth2/...``): each environment accepts only the
clients of its credential set, as a provider's sandbox and production do.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from oauthlib.common import Request
from oauthlib.oauth2 import RequestValidator, WebApplicationServer
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types import ClientCredentialsGrant
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import (
    code_challenge_method_plain,
    code_challenge_method_s256,
)

from ..models import ClientAuthMethod, is_loopback_host
from .spec import EmulatorSpec
from .state import CLIENT_CREDENTIALS, AccessRecord, ClientCredentials, CodeRecord, EmulatorState, InstallationInfo

__all__ = ["EmulatorValidator", "RedirectPolicy", "build_server"]

#: Why a token stopped working, for error descriptions.
REASONS = {
    "rotated": "it was already used (refresh tokens rotate: use the one from the latest token response)",
    "revoked": "it was revoked",
    "uninstalled": "the app was uninstalled from the company",
    "code_replayed": "the authorization code it came from was used twice (RFC 6749 section 4.1.2)",
}


class RedirectPolicy:
    """Which redirect URIs the test app accepts.

    The registered URIs match exactly. With ``allow_loopback`` (the default),
    any ``http://127.0.0.1``, ``http://[::1]`` or ``http://localhost`` URI is
    accepted too, on any port and path; without it, a registered loopback URI
    still matches on any port, as RFC 8252 section 7.3 requires.
    """

    def __init__(self, state: EmulatorState, *, allow_loopback: bool) -> None:
        self._state = state
        self.allow_loopback = allow_loopback

    @property
    def registered(self) -> tuple[str, ...]:
        with self._state.lock:
            return tuple(self._state.redirect_uris)

    def accepts(self, uri: str) -> bool:
        registered = self.registered
        if uri in registered:
            return True
        try:
            parts = urlsplit(uri)
            port = parts.port
        except ValueError:
            return False
        if parts.scheme != "http" or parts.fragment or not parts.hostname or not is_loopback_host(parts.hostname):
            return False
        if self.allow_loopback:
            return True
        for known in registered:
            k = urlsplit(known)
            if (k.scheme, k.hostname, k.path, k.query) == (parts.scheme, parts.hostname, parts.path, parts.query):
                return port is not None or k.port is None
        return False


def _environment(request: Request) -> str:
    return urlsplit(request.uri).path.split("/")[1]


class EmulatorValidator(RequestValidator):
    """oauthlib's questions, answered from the emulator's state."""

    def __init__(
        self,
        state: EmulatorState,
        *,
        spec: EmulatorSpec,
        credential_sets: Mapping[str, str],
        client_auth_methods: Sequence[ClientAuthMethod],
        catalogue: Sequence[str],
        default_scopes: Sequence[str],
        redirects: RedirectPolicy,
        client_credentials: bool = False,
    ) -> None:
        self.state = state
        #: Whether the token endpoint answers the client credentials grant (RFC 6749 section 4.4).
        self.client_credentials = client_credentials
        self.spec = spec
        self.credential_sets = dict(credential_sets)
        self.client_auth_methods = tuple(client_auth_methods)
        self.catalogue = frozenset(catalogue)
        self.default_scopes = list(default_scopes)
        self.redirects = redirects

    def _credential_set(self, request: Request) -> str:
        return self.credential_sets[_environment(request)]

    # ------------------------------------------------------ client authentication

    def client_authentication_required(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        return True

    def authenticate_client(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        basic = _basic_credentials(request)
        posted_secret: str | None = request.client_secret
        client_id: str
        secret: str
        if basic is not None and posted_secret is not None:
            raise errors.InvalidRequestError(
                description="The client authenticated in two ways (Authorization header and client_secret); "
                "use exactly one (RFC 6749 section 2.3).",
                request=request,
            )
        if basic is not None:
            method = ClientAuthMethod.CLIENT_SECRET_BASIC
            client_id, secret = basic
            if request.client_id is not None and request.client_id != client_id:
                raise errors.InvalidClientError(
                    description="The client_id parameter differs from the client in the Authorization header.",
                    request=request,
                )
        elif posted_secret is not None:
            method = ClientAuthMethod.CLIENT_SECRET_POST
            if not request.client_id:
                raise errors.InvalidClientError(
                    description="client_secret was sent without client_id.", request=request
                )
            client_id, secret = str(request.client_id), posted_secret
        else:
            raise errors.InvalidClientError(
                description="Client authentication is required: "
                + " or ".join(m.value for m in self.client_auth_methods)
                + ".",
                request=request,
            )
        if method not in self.client_auth_methods:
            accepted = " or ".join(m.value for m in self.client_auth_methods)
            raise errors.InvalidClientError(
                description=f"This server does not accept {method.value}; use {accepted}.", request=request
            )
        client = self.state.app.client(client_id)
        if client is None or not secrets.compare_digest(
            client.client_secret.reveal().encode(), secret.encode("utf-8", "surrogatepass")
        ):
            raise errors.InvalidClientError(
                description="Client authentication failed: unknown client_id or wrong client_secret.", request=request
            )
        self._check_credential_set(client, request)
        request.client = client
        request.client_id = client.client_id
        return True

    def authenticate_client_id(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> bool:
        return False  # every client of the test app is confidential

    def _check_credential_set(self, client: ClientCredentials, request: Request) -> None:
        expected = self._credential_set(request)
        if client.credential_set != expected:
            environments = [env for env, cs in self.credential_sets.items() if cs == client.credential_set]
            raise errors.InvalidClientError(
                description=f"This client belongs to the {client.credential_set} credentials; use it with the "
                f"{' or '.join(environments)} endpoints, or use the {expected} credentials here.",
                request=request,
            )

    # ------------------------------------------------------------ authorization

    def validate_client_id(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> bool:
        client = self.state.app.client(client_id)
        if client is None:
            return False
        expected = self._credential_set(request)
        if client.credential_set != expected:
            raise errors.InvalidClientIdError(
                description=f"This client_id belongs to the {client.credential_set} credentials, "
                f"not the {expected} credentials this environment uses.",
                request=request,
            )
        request.client = client
        return True

    def validate_redirect_uri(
        self, client_id: str, redirect_uri: str, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        return self.redirects.accepts(redirect_uri)

    def get_default_redirect_uri(  # type: ignore[override]
        self, client_id: str, request: Request, *args: Any, **kwargs: Any
    ) -> str | None:
        registered = self.redirects.registered
        return registered[0] if len(registered) == 1 else None

    def validate_response_type(
        self, client_id: str, response_type: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        if response_type != "code":
            raise errors.UnsupportedResponseTypeError(
                description="Only response_type=code (the authorization code grant) is supported.", request=request
            )
        return True

    def get_default_scopes(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> list[str]:
        return list(self.default_scopes)

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        unknown = [s for s in scopes if s not in self.catalogue]
        if unknown:
            raise errors.InvalidScopeError(description=f"Unknown scope(s): {' '.join(unknown)}.", request=request)
        configured = set(self.state.app.scopes)
        if request.grant_type == CLIENT_CREDENTIALS:
            # No person consents: the client gets what it asks for of what the app has configured.
            request.scopes = [s for s in scopes if s in configured]
            return True
        missing = [s for s in scopes if s not in configured]
        if missing:
            raise errors.InvalidScopeError(
                description=f"Scope(s) not configured on app {self.state.app.app_id}: {' '.join(missing)}. "
                "Add them to the app's scopes, or request fewer.",
                request=request,
            )
        return True

    def is_pkce_required(self, client_id: str, request: Request) -> bool:
        return self.spec.pkce_required

    def save_authorization_code(
        self, client_id: str, code: Mapping[str, Any], request: Request, *args: Any, **kwargs: Any
    ) -> None:
        credential_set = self._credential_set(request)
        company_id: str = getattr(request, "emulator_company")  # noqa: B009 - set by the emulator, unknown to the stubs
        scopes = tuple(request.scopes or ())
        now = self.state.now()
        with self.state.lock:
            self.state.save_code(
                code["code"],
                CodeRecord(
                    client_id=client_id,
                    credential_set=credential_set,
                    company_id=company_id,
                    scopes=scopes,
                    redirect_uri=str(request.redirect_uri),
                    redirect_uri_given=not request.using_default_redirect_uri,
                    code_challenge=request.code_challenge,
                    code_challenge_method=request.code_challenge_method if request.code_challenge else None,
                    expires_at=now + self.spec.code_lifetime,
                ),
            )
            # Consent installs the app in the company, as clicking Install does at the provider.
            self.state.install(
                InstallationInfo(
                    company_id=company_id,
                    credential_set=credential_set,
                    scopes=scopes,
                    audience=getattr(request, "emulator_audience"),  # noqa: B009
                    audience_options=tuple(getattr(request, "emulator_audience_options")),  # noqa: B009
                    installed_at=now,
                )
            )

    # ------------------------------------------------------------------- tokens

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        if grant_type == CLIENT_CREDENTIALS:
            return self.client_credentials
        return grant_type in ("authorization_code", "refresh_token")

    def validate_code(
        self, client_id: str, code: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        record = self.state.code(code)
        if record is None:
            raise errors.InvalidGrantError(description="The authorization code is unknown.", request=request)
        if record.client_id != client_id:
            raise errors.InvalidGrantError(
                description="The authorization code was issued to another client.", request=request
            )
        if record.used:
            if record.grant_id is None:
                raise errors.InvalidGrantError(
                    description="The authorization code is no longer valid: the app was uninstalled.", request=request
                )
            self.state.revoke_grant(record.grant_id, "code_replayed")
            raise errors.InvalidGrantError(
                description="The authorization code was already used; the tokens issued for it are now revoked "
                "(RFC 6749 section 4.1.2).",
                request=request,
            )
        if self.state.now() >= record.expires_at:
            raise errors.InvalidGrantError(description="The authorization code has expired.", request=request)
        if record.code_challenge is not None and not _verifier_matches(record, request.code_verifier):
            # oauthlib refuses the exchange but keeps the code; a real server burns it, so an
            # attacker who holds a stolen code gets one guess at the verifier, not many.
            self.state.forget_code(code)
            if request.code_verifier is None:
                raise errors.MissingCodeVerifierError(request=request)
            raise errors.InvalidGrantError(
                description="The code_verifier does not match the code_challenge; the code is now invalid.",
                request=request,
            )
        request.scopes = list(record.scopes)
        request.user = record.company_id
        setattr(request, "emulator_code", record)  # noqa: B010 - read in save_bearer_token
        return True

    def get_code_challenge(self, code: str, request: Request) -> str | None:  # type: ignore[override]
        record = self.state.code(code)
        return record.code_challenge if record else None

    def get_code_challenge_method(self, code: str, request: Request) -> str | None:  # type: ignore[override]
        record = self.state.code(code)
        return record.code_challenge_method if record else None

    def confirm_redirect_uri(
        self, client_id: str, code: str, redirect_uri: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        record = self.state.code(code)
        if record is None:
            return False
        if record.redirect_uri_given and request.using_default_redirect_uri:
            raise errors.InvalidRequestError(
                description="redirect_uri is required: the authorization request included one.", request=request
            )
        return bool(redirect_uri == record.redirect_uri)

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: Request, *args: Any, **kwargs: Any
    ) -> None:
        record = self.state.code(code)
        if record is not None:
            record.used = True

    def validate_refresh_token(
        self, refresh_token: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        record = self.state.token(refresh_token)
        if record is None or record.kind != "refresh":
            raise errors.InvalidGrantError(description="The refresh token is unknown.", request=request)
        if record.client_id != client.client_id:
            raise errors.InvalidGrantError(
                description="The refresh token was issued to another client.", request=request
            )
        if record.revoked:
            reason = REASONS.get(record.revoked_reason or "", "it was revoked")
            raise errors.InvalidGrantError(
                description=f"The refresh token is no longer valid: {reason}.", request=request
            )
        if record.expires_at is not None and self.state.now() >= record.expires_at:
            raise errors.InvalidGrantError(description="The refresh token has expired.", request=request)
        request.user = record.company_id
        setattr(request, "emulator_refresh", record)  # noqa: B010 - read in save_bearer_token
        return True

    def get_original_scopes(self, refresh_token: str, request: Request, *args: Any, **kwargs: Any) -> list[str]:
        record = self.state.token(refresh_token)
        return list(record.scopes) if record else []

    def rotate_refresh_token(self, request: Request) -> bool:
        return self.spec.rotate_refresh_tokens

    def save_bearer_token(self, token: Mapping[str, Any], request: Request, *args: Any, **kwargs: Any) -> None:
        now = self.state.now()
        with self.state.lock:
            previous: AccessRecord | None = getattr(request, "emulator_refresh", None)
            grant_type = "authorization_code"
            if request.grant_type == CLIENT_CREDENTIALS:
                # The client acts for itself, in the company its app belongs to (the first).
                client = request.client
                assert isinstance(client, ClientCredentials)  # set by authenticate_client
                grant_id, company_id = secrets.token_hex(8), self.state.default_company_id
                credential_set, grant_type = client.credential_set, CLIENT_CREDENTIALS
            elif previous is not None:
                grant_id, company_id, credential_set = previous.grant_id, previous.company_id, previous.credential_set
                if token.get("refresh_token") != request.refresh_token:
                    self.state.revoke(str(request.refresh_token), "rotated")
            else:
                code: CodeRecord = getattr(request, "emulator_code")  # noqa: B009
                grant_id = secrets.token_hex(8)
                company_id, credential_set = code.company_id, code.credential_set
                code.used = True
                code.grant_id = grant_id
            scopes = tuple(request.scopes or ())
            self.state.add_token(
                token["access_token"],
                AccessRecord(
                    kind="access",
                    client_id=str(request.client_id),
                    credential_set=credential_set,
                    company_id=company_id,
                    scopes=scopes,
                    grant_id=grant_id,
                    expires_at=now + int(token["expires_in"]),
                    grant_type=grant_type,
                ),
            )
            refresh = token.get("refresh_token")
            if refresh and refresh != request.refresh_token:
                lifetime = self.spec.refresh_token_lifetime
                self.state.add_token(
                    refresh,
                    AccessRecord(
                        kind="refresh",
                        client_id=str(request.client_id),
                        credential_set=credential_set,
                        company_id=company_id,
                        scopes=scopes,
                        grant_id=grant_id,
                        expires_at=None if lifetime is None else now + lifetime,
                    ),
                )
        if self.spec.identity_field and isinstance(token, dict):
            token[self.spec.identity_field] = company_id

    # --------------------------------------------------------------- revocation

    def revoke_token(
        self, token: str, token_type_hint: str | None, request: Request, *args: Any, **kwargs: Any
    ) -> None:
        record = self.state.token(token)
        # RFC 7009 section 2.2: unknown tokens (and, here, other clients' tokens) answer 200 all the same.
        client = request.client
        if record is None or client is None or record.client_id != client.client_id:
            return
        if record.kind == "refresh":
            # Section 2.1: revoking a refresh token also invalidates the access tokens of its grant.
            self.state.revoke_grant(record.grant_id, "revoked")
        else:
            self.state.revoke(token, "revoked")


def _verifier_matches(record: CodeRecord, verifier: str | None) -> bool:
    challenge = record.code_challenge
    if verifier is None or challenge is None:
        return False
    if record.code_challenge_method == "S256":
        return bool(code_challenge_method_s256(verifier, challenge))
    if record.code_challenge_method == "plain":
        return bool(code_challenge_method_plain(verifier, challenge))
    return True  # an unknown method: oauthlib's own check refuses it as it always did


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """The (client_id, client_secret) of an ``Authorization: Basic`` header, or ``None``."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, value = str(header).strip().partition(" ")
    if scheme.lower() != "basic":
        raise errors.InvalidClientError(
            description=f"The Authorization header uses {scheme!r}; client authentication uses Basic.", request=request
        )
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise errors.InvalidClientError(
            description="The Basic credentials are not valid base64 of UTF-8 text.", request=request
        ) from None
    if ":" not in decoded:
        raise errors.InvalidClientError(
            description="The Basic credentials must be client_id:client_secret.", request=request
        )
    client_id, secret = decoded.split(":", 1)
    # RFC 6749 section 2.3.1: both are form-urlencoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


def build_server(validator: EmulatorValidator, token_lifetime: Callable[[], int]) -> WebApplicationServer:
    """oauthlib's authorization code server over ``validator``, with the client credentials
    grant as well when the validator allows it."""

    def new_token(request: Request) -> str:
        return secrets.token_urlsafe(32)

    server = WebApplicationServer(
        validator,
        token_generator=new_token,
        refresh_token_generator=new_token,
        token_expires_in=lambda request: token_lifetime(),
    )
    if validator.client_credentials:
        server.grant_types[CLIENT_CREDENTIALS] = ClientCredentialsGrant(validator)
    return server
