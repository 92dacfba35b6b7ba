"""Credentials a company issues itself, in the emulator: HTTP Basic users and API keys.

A provider's declaration may offer auth types with no OAuth grant behind them: a
service user's ID and token sent with HTTP Basic, an API key in a header or the query.
At the real provider an admin of the customer company creates such a credential, shows
its secret once, adds it to permission groups that decide what it may read, and can
reset its secret or delete it. :class:`CredentialAuthority` does the same for the
emulator, for every :class:`~connector_core.HttpBasicAuth` and
:class:`~connector_core.ApiKeyAuth` the declaration has, and tells the resource server
who a request with such a credential comes from (:class:`Caller`).

A credential's scopes are those of its permission groups
(:attr:`EmulatorSpec.permission_groups <connector_core.emulator.EmulatorSpec.permission_groups>`);
in no group it may call nothing. A spec that declares no groups lets every credential
call everything.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import string
from collections.abc import Iterable, Mapping, Sequence

import attrs

from ..errors import ConnectorError, EmulatorError, UnknownNameError, ValidationError
from ..models import ApiKeyAuth, ApiKeyLocation, CredentialField, HttpBasicAuth, ProviderDeclaration
from .spec import EmulatorSpec
from .state import CredentialRecord, EmulatorState, digest

__all__ = ["Caller", "CredentialAuthority", "IssuedCredentials"]

CredentialAuth = HttpBasicAuth | ApiKeyAuth


class IssuedCredentials(dict[str, str]):
    """The values of a credential the emulator issued, by credential field name (as
    :meth:`Connector.connect <connector_core.Connector.connect>` takes them), with what
    manages it as attributes: ``auth_type``, ``identifier`` (the HTTP Basic username, or
    an API key's id: the key itself never names it), ``company``, ``environment`` and
    ``groups``. Its repr shows the secret values as ``***``.
    """

    auth_type: str
    identifier: str
    company: str
    environment: str
    groups: tuple[str, ...]

    def __init__(
        self,
        values: Mapping[str, str],
        *,
        auth_type: str,
        identifier: str,
        company: str,
        environment: str,
        groups: Sequence[str],
        secret_fields: Iterable[str],
    ) -> None:
        super().__init__(values)
        self.auth_type = auth_type
        self.identifier = identifier
        self.company = company
        self.environment = environment
        self.groups = tuple(groups)
        self._secret_fields = frozenset(secret_fields)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={'***' if k in self._secret_fields else repr(v)}" for k, v in self.items())
        return f"IssuedCredentials({self.auth_type}: {shown})"

    __str__ = __repr__


@attrs.frozen
class Caller:
    """Who an authenticated resource request comes from."""

    company_id: str
    credential_set: str
    scopes: frozenset[str]
    #: The OAuth client, or the credential's identifier.
    client_id: str
    audience: str = "all"
    audience_options: tuple[str, ...] = ()
    #: The auth type of a credential; ``None`` for an OAuth access token.
    auth_type: str | None = None


@attrs.frozen
class Refusal:
    """Why a request's credential was refused (401), and the challenge to send back."""

    message: str
    challenge: str


class CredentialAuthority:
    """Issues, resets, revokes and checks the credentials of one emulator's companies."""

    def __init__(
        self, state: EmulatorState, spec: EmulatorSpec, declaration: ProviderDeclaration, all_scopes: Iterable[str]
    ) -> None:
        self._state = state
        self._spec = spec
        self._declaration = declaration
        self._all_scopes = frozenset(all_scopes)
        self._groups = {g.key: g for g in spec.permission_groups}
        self.realm = f"{declaration.key} emulator"
        self.auth_types: dict[str, CredentialAuth] = {
            a.key: a for a in declaration.auth_types if isinstance(a, (HttpBasicAuth, ApiKeyAuth))
        }

    # ---------------------------------------------------------------- managing

    def _auth(self, auth_type: str) -> CredentialAuth:
        found = self.auth_types.get(auth_type)
        if found is None:
            raise UnknownNameError(
                "auth type with credentials a company issues",
                auth_type,
                tuple(self.auth_types),
                within=f"provider {self._declaration.key!r}",
            )
        return found

    def _check_groups(self, groups: Sequence[str] | None) -> tuple[str, ...]:
        if groups is None:
            return tuple(self._groups)
        if isinstance(groups, str):
            raise ValidationError("groups", "expected a list of permission group keys, not one string")
        for key in groups:
            if key not in self._groups:
                raise UnknownNameError("permission group", str(key), tuple(self._groups))
        return tuple(dict.fromkeys(groups))

    def _field(self, auth: CredentialAuth, name: str) -> CredentialField:
        return next(f for f in self._declaration.fields_for(auth.key) if f.name == name)

    def _secret_name(self, auth: CredentialAuth) -> str:
        return auth.password_field if isinstance(auth, HttpBasicAuth) else auth.key_field

    def _record(self, auth_type: str, identifier: str) -> CredentialRecord:
        record = self._state.credential(auth_type, identifier)
        if record is None:
            with self._state.lock:
                known = tuple(i for (a, i) in self._state.credentials if a == auth_type)
            raise UnknownNameError(f"{auth_type} credential", identifier, known)
        return record

    def issue(
        self,
        auth_type: str,
        *,
        company: str | None = None,
        groups: Sequence[str] | None = None,
        environment: str | None = None,
    ) -> IssuedCredentials:
        """A new credential of ``auth_type`` in ``company`` (default: the first), for
        ``environment``'s credential set (default: the provider's default environment), in
        ``groups`` (``None``: every declared group; empty: none)."""
        auth = self._auth(auth_type)
        chosen = self._check_groups(groups)
        env = self._declaration.environment(environment)
        with self._state.lock:
            company_id = company or self._state.default_company_id
            if company_id not in self._state.companies:
                raise UnknownNameError("company", company_id, tuple(self._state.companies))
            identifier = self._new_identifier(auth)
            secret = self._new_secret(auth)
            self._state.add_credential(
                CredentialRecord(
                    auth_type=auth.key,
                    identifier=identifier,
                    company_id=company_id,
                    credential_set=env.credential_set,
                    groups=chosen,
                    secret_digest=digest(secret),
                    created_at=self._state.now(),
                )
            )
        return self._issued(auth, identifier, secret, company_id, env.key, chosen)

    def reset(self, auth_type: str, identifier: str) -> IssuedCredentials:
        """A new secret for the credential; the old one stops working at once."""
        auth = self._auth(auth_type)
        with self._state.lock:
            record = self._record(auth.key, identifier)
            secret = self._new_secret(auth)
            record.secret_digest = digest(secret)
            record.revoked = False
            self._state.changed()
        env = next(
            (e.key for e in self._declaration.environments if e.credential_set == record.credential_set),
            self._declaration.environment().key,
        )
        return self._issued(auth, identifier, secret, record.company_id, env, record.groups)

    def revoke(self, auth_type: str, identifier: str) -> None:
        """Delete the credential at the provider: it answers 401 from now on."""
        with self._state.lock:
            record = self._record(self._auth(auth_type).key, identifier)
            record.revoked = True
            self._state.changed()

    def set_groups(self, auth_type: str, identifier: str, groups: Sequence[str]) -> None:
        """Replace the credential's permission groups (what it may call from now on)."""
        chosen = self._check_groups(groups)
        with self._state.lock:
            record = self._record(self._auth(auth_type).key, identifier)
            record.groups = chosen
            self._state.changed()

    def _issued(
        self, auth: CredentialAuth, identifier: str, secret: str, company: str, environment: str, groups: Sequence[str]
    ) -> IssuedCredentials:
        values = {self._secret_name(auth): secret}
        if isinstance(auth, HttpBasicAuth):
            values = {auth.username_field: identifier, **values}
        return IssuedCredentials(
            values,
            auth_type=auth.key,
            identifier=identifier,
            company=company,
            environment=environment,
            groups=groups,
            secret_fields=(self._secret_name(auth),),
        )

    def _new_identifier(self, auth: CredentialAuth) -> str:
        if isinstance(auth, ApiKeyAuth):
            while True:
                key_id = f"key-{secrets.token_hex(6)}"
                if self._state.credential(auth.key, key_id) is None:
                    return key_id
        field = self._field(auth, auth.username_field)
        prefix = self._spec.credential_username_prefix
        for _ in range(100):
            digits = "".join(secrets.choice(string.digits) for _ in range(6))
            for candidate in (f"{prefix}{digits}", f"{prefix}user{digits}", f"{prefix}{secrets.token_hex(4)}"):
                if self._state.credential(auth.key, candidate) is None and _fits(field, candidate):
                    return candidate
        raise EmulatorError(
            f"cannot make a {auth.key} username that matches the {field.name} field (prefix {prefix!r}); "
            "check EmulatorSpec.credential_username_prefix against the field's pattern"
        )

    def _new_secret(self, auth: CredentialAuth) -> str:
        field = self._field(auth, self._secret_name(auth))
        size = max(1, min(32, field.max_length))
        alphabet = string.ascii_letters + string.digits
        for candidate in (
            secrets.token_urlsafe(32)[:size],
            secrets.token_hex(16)[:size],
            "".join(secrets.choice(alphabet) for _ in range(size)),
        ):
            if _fits(field, candidate):
                return candidate
        raise EmulatorError(f"cannot make a {auth.key} secret that matches the {field.name} field's pattern")

    # -------------------------------------------------------------- checking

    def scopes_of(self, record: CredentialRecord) -> frozenset[str]:
        """What a credential may call: its groups' scopes (every scope when no group is declared)."""
        if not self._groups:
            return self._all_scopes
        return frozenset(s for key in record.groups if key in self._groups for s in self._groups[key].scopes)

    def challenges(self) -> tuple[str, ...]:
        """A ``WWW-Authenticate`` challenge for each credential auth type."""
        found: dict[str, None] = {}
        for auth in self.auth_types.values():
            found[self._challenge(auth)] = None
        return tuple(found)

    def _challenge(self, auth: CredentialAuth) -> str:
        if isinstance(auth, HttpBasicAuth):
            return f'Basic realm="{self.realm}", charset="UTF-8"'
        scheme = auth.prefix.strip() or "ApiKey"
        if auth.location is ApiKeyLocation.HEADER:
            where = f'header="{auth.header_name}"'
        else:
            where = f'query="{auth.query_name}"'
        return f'{scheme} realm="{self.realm}", {where}'

    def authenticate(
        self, headers: Mapping[str, str], query: Mapping[str, Sequence[str]], credential_set: str
    ) -> Caller | Refusal | None:
        """Who the request's credential is, why it is refused, or ``None`` when it carries
        none of this provider's credentials (then it may carry an OAuth access token)."""
        refusal: Refusal | None = None
        for auth, presented in self._presented(headers, query):
            if isinstance(presented, Refusal):
                refusal = refusal or presented
                continue
            record = self._match(auth, presented)
            if record is None:
                refusal = refusal or Refusal(
                    f"The {auth.label} credentials are unknown, or their secret was reset.", self._challenge(auth)
                )
                continue
            if record.revoked:
                refusal = refusal or Refusal(f"The {auth.label} credentials were revoked.", self._challenge(auth))
                continue
            if record.credential_set != credential_set:
                refusal = refusal or Refusal(
                    f"The {auth.label} credentials belong to the {record.credential_set} environment, not this one.",
                    self._challenge(auth),
                )
                continue
            return Caller(
                company_id=record.company_id,
                credential_set=record.credential_set,
                scopes=self.scopes_of(record),
                client_id=record.identifier,
                auth_type=auth.key,
            )
        return refusal

    def _presented(
        self, headers: Mapping[str, str], query: Mapping[str, Sequence[str]]
    ) -> list[tuple[CredentialAuth, tuple[str | None, str] | Refusal]]:
        """Each credential auth type the request carries a value for, with ``(username, secret)``
        (no username for an API key), or why the value cannot be read."""
        found: list[tuple[CredentialAuth, tuple[str | None, str] | Refusal]] = []
        authorization = headers.get("authorization", "").strip()
        scheme, _, rest = authorization.partition(" ")
        for auth in self.auth_types.values():
            if isinstance(auth, HttpBasicAuth):
                if scheme.lower() == "basic":
                    found.append(
                        (
                            auth,
                            _basic(rest.strip())
                            or Refusal(
                                "The Basic credentials are not base64 of USERNAME:PASSWORD.", self._challenge(auth)
                            ),
                        )
                    )
                continue
            if auth.location is ApiKeyLocation.QUERY:
                values = query.get(auth.query_name)
                if values:
                    found.append((auth, (None, values[-1])))
                continue
            value = headers.get(auth.header_name.lower())
            if value is None:
                continue
            value = value.strip()
            prefix = auth.prefix.strip()
            if prefix:
                head, _, key = value.partition(" ")
                if head.lower() != prefix.lower():
                    continue  # another scheme in the same header (an OAuth bearer token, say)
                value = key.strip()
            found.append((auth, (None, value)))
        return found

    def _match(self, auth: CredentialAuth, presented: tuple[str | None, str]) -> CredentialRecord | None:
        username, secret = presented
        if username is None:
            return self._state.credential_by_secret(auth.key, secret)
        record = self._state.credential(auth.key, username)
        if record is None or not hmac.compare_digest(record.secret_digest, digest(secret)):
            return None
        return record


def _basic(value: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if ":" not in decoded:
        return None
    username, password = decoded.split(":", 1)
    return username, password


def _fits(field: CredentialField, value: str) -> bool:
    try:
        return field.check(value) == value
    except ConnectorError:
        return False
