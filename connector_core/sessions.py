"""Connect sessions: a platform's backend lets one of its end users connect an account.

The platform asks for a session (:meth:`ConnectSessions.create`) naming the end user, the
providers or the one profile to connect through, scopes, a connection to reconnect (or, with
``separate``, that a new connection be made even where the end user has one to the same account)
and where to send the end user back; it gets the
:class:`~connector_core.connection.ConnectSession` and a token, once. Every provider a session
allows resolves to one profile (:meth:`ConnectSessions.profile_for`): the session's, or the
provider's only one in the store. The hosted connect page looks the token up
(:meth:`ConnectSessions.lookup`) and claims it when the end user starts connecting
(:meth:`ConnectSessions.claim`): single use, even across processes. The flow then ends the
session with :meth:`ConnectSessions.complete` or :meth:`ConnectSessions.fail`.

* **Token**: ``cs_`` and 32 random bytes, URL-safe base64 (46 characters). Only its SHA-256 is
  stored; it is handed back once, as a :class:`~connector_core.secret.Secret`. An unknown,
  malformed, used or expired token is one :class:`~connector_core.errors.SessionError`
  (``unknown``, ``used``, ``expired``) whose message never holds it.
* **Redirect URLs** must match the allow-list (``redirect_allow_list``) by the rule in
  :func:`redirect_allowed`: no open redirects.
* The session rows are sealed in the store (see :mod:`connector_core.store.sql`).

This is a facade of its own, beside :class:`~connector_core.connector.Connector`: sessions need
the store, the plugins and the platform's allow-list, not the OAuth engine or its transport, and a
web service holds one of each.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, unquote, urlsplit

import attrs

from .connection import ConnectSession, EndUser, Owner, SessionStatus
from .errors import ConnectorError, SessionError, UnknownNameError, ValidationError
from .scopes import check_scopes, parse_scopes
from .secret import Secret

if TYPE_CHECKING:
    from .plugins import Plugins
    from .store import StoreLike

__all__ = [
    "DEFAULT_EXPIRES_IN",
    "MAX_EXPIRES_IN",
    "MIN_EXPIRES_IN",
    "TOKEN_PREFIX",
    "ConnectSessions",
    "SessionRequest",
    "hash_token",
    "new_token",
    "redirect_allowed",
]

TOKEN_PREFIX = "cs_"  # noqa: S105 - a prefix, not a secret
#: ``cs_`` and 32 random bytes as URL-safe base64 without padding (43 characters).
_TOKEN_RE = re.compile(r"cs_[A-Za-z0-9_-]{43}")
MIN_EXPIRES_IN = 60
MAX_EXPIRES_IN = 86400
DEFAULT_EXPIRES_IN = 1800
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"https": 443, "http": 80}
_REQUEST_FIELDS = frozenset(
    {"end_user", "organisation", "tags", "providers", "profile", "scopes", "connection_id", "redirect_url"}
    | {"expires_in", "separate"}
)


def new_token() -> Secret:
    """A new session token: ``cs_`` and 32 random bytes, URL-safe."""
    return Secret(TOKEN_PREFIX + secrets.token_urlsafe(32))


def hash_token(token: Secret) -> str:
    """The token's SHA-256 (hex), what the store keeps."""
    return hashlib.sha256(token.reveal().encode("ascii", "replace")).hexdigest()


# ---------------------------------------------------------------- redirect URLs


def _redirect_parts(url: str, field: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an absolute https URL (http on loopback only); else a ValidationError."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise ValidationError(field, "expected an absolute https URL of at most 2048 characters")
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in url) or "\\" in url:
        raise ValidationError(field, "expected a URL without spaces, control characters or backslashes")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError(field, "expected an absolute https URL, got a malformed one") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationError(field, "expected an absolute https URL (https://host/path)")
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise ValidationError(field, "expected https (plain http only for localhost, 127.0.0.1 or ::1)")
    if "@" in parts.netloc:
        raise ValidationError(field, "expected a URL without a user name or password")
    if parts.fragment:
        raise ValidationError(field, "expected a URL without a fragment ('#...')")
    segments = unquote(parts.path).split("/")
    if any(segment in (".", "..") for segment in segments) or "\\" in unquote(parts.path):
        raise ValidationError(field, "expected a URL path without '.' or '..' segments")
    return parts.scheme, host, port or _DEFAULT_PORTS[parts.scheme], parts.path or "/"


def redirect_allowed(url: str, allow_list: Iterable[str], *, field: str = "redirect_url") -> str:
    """``url`` when an entry of ``allow_list`` allows it, else a ValidationError naming ``field``.

    The rule: ``url`` is an absolute ``https`` URL (``http`` only on a loopback host), with no
    user name, password or fragment, no ``.``/``..`` path segment (decoded or not), no backslash,
    space or control character; and for one entry, the **origin is exactly the entry's** (scheme,
    host compared case-insensitively, port with 443/80 filled in) and the **path starts with the
    entry's path at a segment boundary**: ``https://app.example.com/connect`` allows
    ``/connect``, ``/connect/done`` and ``/connect?x=1``, not ``/connected`` nor another host or
    port. Query strings are the platform's own and pass as they are."""
    scheme, host, port, path = _redirect_parts(url, field)
    for entry in allow_list:
        e_scheme, e_host, e_port, e_path = _redirect_parts(entry, "redirect_allow_list")
        if (scheme, host, port) != (e_scheme, e_host, e_port):
            continue
        prefix = e_path.rstrip("/")
        if path == prefix or path.startswith(prefix + "/") or not prefix:
            return url
    raise ValidationError(field, "is not on the platform's allow-list of redirect URLs (same origin, path prefix)")


# --------------------------------------------------------------------- requests


def _optional_str(field: str) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and (not isinstance(value, str) or not value):
            raise ValidationError(field, f"expected a non-empty string, got {type(value).__name__}")

    return check


def _providers(value: Any) -> Any:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return tuple(dict.fromkeys(value))
    return value


def _tags(value: Any) -> Any:
    """A list of tags as a tuple; a lone string stays one, for :class:`Owner` to refuse."""
    if value is None or isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return value
    return tuple(value)


def _check_providers(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(p, str) and p for p in value):
        raise ValidationError("providers", "expected a list of provider keys")
    if len(value) > 50:
        raise ValidationError("providers", f"expected at most 50 providers, got {len(value)}")


def _check_expires_in(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("expires_in", f"expected whole seconds, got {type(value).__name__}")
    if not MIN_EXPIRES_IN <= value <= MAX_EXPIRES_IN:
        raise ValidationError("expires_in", f"expected {MIN_EXPIRES_IN} to {MAX_EXPIRES_IN} seconds, got {value}")


def _check_end_user(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, EndUser):
        raise ValidationError("end_user.id", "a connect session needs an end user (the platform's id for them)")


def _check_separate(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise ValidationError("separate", f"expected true or false, got {type(value).__name__}")
    if value and instance.connection_id is not None:
        raise ValidationError(
            "separate", "makes a new connection, so it cannot go with connection_id (a reconnect keeps its connection)"
        )


def _scopes(value: Any) -> Any:
    if value is None or value == () or value == []:
        return ()
    return parse_scopes(value, field="scopes")


@attrs.frozen
class SessionRequest:
    """What a platform asks a connect session for. Validated as built where no store or plugin
    is needed (end user, organisation, tags, expiry, scope syntax); :meth:`ConnectSessions.create`
    checks the rest. Build one from a JSON body with :meth:`from_mapping`."""

    end_user: EndUser = attrs.field(validator=_check_end_user)
    organisation: str | None = None
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tags)
    #: The providers the end user may pick from; empty when ``profile`` or ``connection_id`` says.
    providers: tuple[str, ...] = attrs.field(default=(), converter=_providers, validator=_check_providers)
    profile: str | None = attrs.field(default=None, validator=_optional_str("profile"))
    scopes: tuple[str, ...] = attrs.field(default=(), converter=_scopes)
    connection_id: str | None = attrs.field(default=None, validator=_optional_str("connection_id"))
    redirect_url: str | None = attrs.field(default=None, validator=_optional_str("redirect_url"))
    expires_in: int = attrs.field(default=DEFAULT_EXPIRES_IN, validator=_check_expires_in)
    #: Make a new connection even if this end user already has one to the same provider account
    #: (by default connecting the same account again updates it); not with ``connection_id``.
    separate: bool = attrs.field(default=False, validator=_check_separate)
    #: Built here so that the organisation and tags are checked as an :class:`Owner` checks them.
    owner: Owner = attrs.field(init=False)

    @owner.default
    def _owner(self) -> Owner:
        return Owner(self.end_user, self.organisation, self.tags)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SessionRequest:
        """From a JSON object such as ``{"end_user": {"id": "u-1", "email": ...}, "providers":
        ["acme"], "expires_in": 600, "separate": true}``; an unknown field is a ValidationError
        naming it (``separate`` must be a JSON boolean)."""
        if not isinstance(data, Mapping):
            raise ValidationError("body", f"expected a JSON object, got {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in _REQUEST_FIELDS)
        if unknown:
            raise ValidationError(unknown[0], "is not a field of a connect session request")
        user = data.get("end_user")
        if not isinstance(user, Mapping) or "id" not in user:
            raise ValidationError("end_user.id", "a connect session needs an end user (the platform's id for them)")
        extra = sorted(str(k) for k in user if k not in ("id", "email", "display_name"))
        if extra:
            raise ValidationError(f"end_user.{extra[0]}", "is not a field of an end user")
        end_user = EndUser(user["id"], user.get("email"), user.get("display_name"))
        tags = data.get("tags") or ()
        if isinstance(tags, (str, bytes)) or not isinstance(tags, (list, tuple)):
            raise ValidationError("tags", "expected a list of tags")
        providers = data.get("providers") or ()
        if not isinstance(providers, (list, tuple)):
            raise ValidationError("providers", "expected a list of provider keys")
        return cls(
            end_user,
            data.get("organisation"),
            tuple(tags),
            tuple(providers),
            data.get("profile"),
            data.get("scopes") or (),
            data.get("connection_id"),
            data.get("redirect_url"),
            data.get("expires_in", DEFAULT_EXPIRES_IN),
            separate=data.get("separate", False),
        )


# ---------------------------------------------------------------------- facade


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")


@attrs.define
class ConnectSessions:
    """Connect sessions over a store: create, look up, claim, complete, fail (see the module doc).

    ``redirect_allow_list``: the URLs (origin and path prefix, see :func:`redirect_allowed`) a
    session may send its end user back to; empty, no session may name one. ``clock``: epoch
    seconds (tests pass a fake one)."""

    store: StoreLike = attrs.field(repr=False)
    plugins: Plugins = attrs.field(repr=False)
    redirect_allow_list: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, kw_only=True)
    clock: Callable[[], float] = attrs.field(default=time.time, kw_only=True, repr=False)

    @redirect_allow_list.validator
    def _check_allow_list(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        for entry in value:
            _redirect_parts(entry, "redirect_allow_list")

    # ------------------------------------------------------------ validation

    def _provider_exists(self, key: str) -> None:
        try:
            self.plugins.provider(key)
        except UnknownNameError:
            raise ValidationError("providers", f"{key!r} is not an installed provider") from None

    def _only_profile(self, provider: str) -> str:
        """The one profile of ``provider`` in the store, or the ValidationError (``providers``)
        saying there are several or none."""
        names = [p.name for p in self.store.list_profiles(provider)]
        if len(names) > 1:
            raise ValidationError(
                "providers", f"{provider} has several profiles ({', '.join(names)}): name one with 'profile'"
            )
        if not names:
            raise ValidationError(
                "providers",
                f"{provider} has no profile yet: create one first (connector profile create {provider} ...)",
            )
        return names[0]

    def profile_for(self, session: ConnectSession, provider: str) -> str:
        """The profile to connect ``provider`` through when the end user picks it on the connect
        page: the session's profile if it names one, else the provider's only profile in the store.
        A provider the session does not allow is a ValidationError naming ``provider``; several
        profiles, or none (they changed since the session was made), one naming ``providers``."""
        if provider not in session.providers:
            raise ValidationError("provider", f"{provider!r} is not one of this session's providers")
        if session.profile is None:
            return self._only_profile(provider)
        try:
            found = self.store.get_profile(session.profile, with_secrets=False)
        except UnknownNameError:
            raise ValidationError("profile", f"there is no profile {session.profile!r} any more") from None
        if found.provider != provider:
            raise ValidationError(
                "provider", f"this session connects through {session.profile!r}, a {found.provider} profile"
            )
        return found.name

    def validate(self, request: SessionRequest) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
        """The session's providers, profile and scopes for ``request``, or the ValidationError
        naming the first field that is wrong. Nothing is stored.

        Every provider must resolve to a profile the connect page can connect through (see
        :meth:`profile_for`): the request's profile if it names one, else the provider's only
        profile in the store; a provider with several profiles, or none, is refused here."""
        if not isinstance(request, SessionRequest):
            raise ValidationError("request", f"expected a SessionRequest, got {type(request).__name__}")
        providers, profile_name = request.providers, request.profile
        for key in providers:
            self._provider_exists(key)
        if request.connection_id is not None:
            try:
                connection = self.store.get_connection(request.connection_id)
            except UnknownNameError:
                raise ValidationError("connection_id", "no such connection") from None
            user = connection.owner.end_user
            if user is None or user.id != request.end_user.id:
                # Whether it exists for someone else is not said either.
                raise ValidationError("connection_id", "no such connection of this end user")
            if providers and connection.provider not in providers:
                raise ValidationError("providers", f"the connection to reconnect is a {connection.provider} one")
            if profile_name is not None and profile_name != connection.profile:
                raise ValidationError("profile", f"the connection to reconnect uses profile {connection.profile!r}")
            providers, profile_name = providers or (connection.provider,), connection.profile
        if profile_name is not None:
            try:
                profile = self.store.get_profile(profile_name, with_secrets=False)
            except UnknownNameError:
                raise ValidationError("profile", f"there is no profile {profile_name!r}") from None
            if providers and profile.provider not in providers:
                raise ValidationError("profile", f"{profile_name!r} is a {profile.provider} profile: not allowed here")
            self._provider_exists(profile.provider)
            providers = providers or (profile.provider,)
        if not providers:
            raise ValidationError("providers", "name at least one provider, a profile or a connection to reconnect")
        if profile_name is None:
            for key in providers:
                self._only_profile(key)
        if request.scopes and len(providers) == 1:
            try:
                catalogue = self.plugins.scope_catalogue(providers[0])
            except ConnectorError as exc:
                raise ValidationError("providers", f"{providers[0]!r} cannot be used: {exc.message}") from None
            if catalogue is not None:
                errors = check_scopes(catalogue, request.scopes).errors
                if errors:
                    raise ValidationError("scopes", errors[0].message)
        elif request.scopes:
            raise ValidationError("scopes", "scopes need one provider or one profile to be checked against")
        if request.redirect_url is not None:
            redirect_allowed(request.redirect_url, self.redirect_allow_list)
        return providers, profile_name, tuple(dict.fromkeys(request.scopes))

    # -------------------------------------------------------------- lifecycle

    def create(self, request: SessionRequest) -> tuple[ConnectSession, Secret]:
        """Validate ``request`` and store a ``pending`` session; returns it with its token, which
        is shown only this once (only its hash is stored)."""
        providers, profile, scopes = self.validate(request)
        at = self.clock()
        session = ConnectSession(
            id=f"sess_{uuid.uuid4().hex}",
            owner=request.owner,
            providers=providers,
            profile=profile,
            scopes=scopes,
            connection_id=request.connection_id,
            redirect_url=request.redirect_url,
            created_at=_iso(at),
            expires_at=at + request.expires_in,
            status=SessionStatus.PENDING,
            separate=request.separate,
        )
        token = new_token()
        return self.store.create_session(session, hash_token(token)), token

    @staticmethod
    def _token_hash(token: Secret | str) -> str:
        """The hash of a well-formed token; a malformed one is refused as an unknown one."""
        value = token if isinstance(token, Secret) else Secret(token) if isinstance(token, str) else None
        if value is None or not _TOKEN_RE.fullmatch(value.reveal()):
            raise SessionError(
                "connect session: this connect session is unknown; ask the platform for a new connect link",
                code="unknown",
            )
        return hash_token(value)

    def lookup(self, token: Secret | str) -> ConnectSession:
        """The pending session of ``token``, changing nothing (the connect page shows it); a
        SessionError ``unknown``, ``used`` or ``expired`` otherwise."""
        session = self.store.find_session(self._token_hash(token))
        if session is None:
            raise SessionError(
                "connect session: this connect session is unknown; ask the platform for a new connect link",
                code="unknown",
            )
        if session.expired(self.clock()):
            raise SessionError(
                "connect session: this connect session has expired; ask the platform for a new connect link",
                code="expired",
            )
        if session.status is not SessionStatus.PENDING:
            raise SessionError(
                "connect session: this connect session was already used; ask the platform for a new connect link",
                code="used",
            )
        return session

    def claim(self, token: Secret | str, *, provider: str | None = None, profile: str | None = None) -> ConnectSession:
        """Claim ``token`` to start connecting: pending -> used, once (see
        :meth:`~connector_core.store.StoreLike.claim_session`), recording the provider and the
        profile the end user picked (the profile must exist and be of that provider)."""
        token_hash = self._token_hash(token)
        if profile is not None:
            try:
                found = self.store.get_profile(profile, with_secrets=False)
            except UnknownNameError:
                raise ValidationError("profile", f"there is no profile {profile!r}") from None
            if provider is not None and found.provider != provider:
                raise ValidationError("profile", f"{profile!r} is a {found.provider} profile, not a {provider} one")
            provider = found.provider
        return self.store.claim_session(token_hash, at=self.clock(), provider=provider, profile=profile)

    def complete(self, session_id: str, connection_id: str) -> ConnectSession:
        """The claimed session made (or re-authorized) ``connection_id``; safe to repeat."""
        return self.store.complete_session(session_id, connection_id)

    def fail(self, session_id: str, code: str, message: str) -> ConnectSession:
        """The session's flow failed (``access_denied``, ``already_installed``...); safe to repeat."""
        return self.store.fail_session(session_id, code, message)

    def get(self, session_id: str) -> ConnectSession:
        """The session by id, shown ``expired`` once a pending one's time has run out."""
        session = self.store.get_session(session_id)
        if session.status is SessionStatus.PENDING and session.expired(self.clock()):
            return attrs.evolve(session, status=SessionStatus.EXPIRED)
        return session

    def list(
        self, *, end_user: str | None = None, limit: int | None = None, after: str | None = None
    ) -> tuple[ConnectSession, ...]:
        """Sessions ordered by id (of one end user); page with ``limit`` and ``after``."""
        return self.store.list_sessions(end_user=end_user, limit=limit, after=after)

    def purge(self) -> int:
        """Delete the sessions whose time ran out (see :meth:`~connector_core.store.StoreLike.purge_sessions`)."""
        return self.store.purge_sessions(self.clock())
