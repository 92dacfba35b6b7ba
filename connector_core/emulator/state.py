"""The emulator's in-memory state and its JSON snapshot.

Everything the emulator remembers lives in one :class:`EmulatorState` guarded
by one re-entrant lock: the app's client credentials, companies,
installations, authorization codes, tokens, the credentials companies issued
themselves (service users, API keys), rate-limit windows and counters.
Tokens, codes and those credentials' secrets are kept by their SHA-256 digest,
so neither memory dumps of the state nor the snapshot file hold a usable one.

The snapshot (optional) is a JSON file written atomically, mode 0600, after
every change. It holds the client secrets of the test app, so treat it like
any other file of test credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .._files import write_private_file
from ..errors import SnapshotError
from ..secret import Secret
from .spec import EmulatedCompany, EmulatorSpec

__all__ = [
    "CLIENT_CREDENTIALS",
    "AccessRecord",
    "ClientCredentials",
    "CodeRecord",
    "CredentialInfo",
    "CredentialRecord",
    "EmulatorApp",
    "EmulatorState",
    "EmulatorStats",
    "InstallationInfo",
    "SnapshotError",
    "digest",
]

#: The grant type of access tokens issued to a client for itself (RFC 6749 section 4.4).
CLIENT_CREDENTIALS = "client_credentials"
SNAPSHOT_FORMAT = "connector-core-emulator-snapshot"
SNAPSHOT_VERSION = 1


def digest(token: str) -> str:
    """How tokens and codes are stored: their SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@attrs.frozen
class ClientCredentials:
    """One credential set of the test app: what a platform's profile holds."""

    credential_set: str
    client_id: str
    client_secret: Secret = attrs.field(repr=False)


@attrs.frozen
class EmulatorApp:
    """The test app as registered in the running emulator."""

    app_id: str
    name: str
    #: Scopes configured on the app.
    scopes: tuple[str, ...]
    #: By credential set (e.g. ``development``, ``production``).
    credentials: Mapping[str, ClientCredentials]

    def client(self, client_id: str) -> ClientCredentials | None:
        return next((c for c in self.credentials.values() if c.client_id == client_id), None)


@attrs.frozen
class InstallationInfo:
    """The app installed in one company with one credential set."""

    company_id: str
    credential_set: str
    scopes: tuple[str, ...]
    audience: str
    audience_options: tuple[str, ...]
    installed_at: float


@attrs.define
class CodeRecord:
    client_id: str
    credential_set: str
    company_id: str
    scopes: tuple[str, ...]
    redirect_uri: str
    #: Whether the authorization request named the redirect URI (then the token request must too).
    redirect_uri_given: bool
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    used: bool = False
    #: The grant the exchange created; its tokens are revoked if the code is replayed.
    grant_id: str | None = None


@attrs.define
class AccessRecord:
    """An access or refresh token."""

    kind: str
    client_id: str
    credential_set: str
    company_id: str
    scopes: tuple[str, ...]
    grant_id: str
    expires_at: float | None
    revoked: bool = False
    #: Why it was revoked: ``rotated``, ``revoked``, ``uninstalled`` or ``code_replayed``.
    revoked_reason: str | None = None
    #: The grant that issued it: ``authorization_code`` (refreshes keep it) or ``client_credentials``
    #: (no installation behind it: the client acts for itself in the company).
    grant_type: str = "authorization_code"

    def usable(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


@attrs.define
class CredentialRecord:
    """A credential a company issued itself (a service user, an API key), by its identifier.

    Only the SHA-256 of its secret is kept (the password of HTTP Basic, the key itself of an
    API key), as for tokens: the secret is shown once, when it is issued or reset.
    """

    auth_type: str
    #: The HTTP Basic username, or the id an API key is managed by (never the key).
    identifier: str
    company_id: str
    credential_set: str
    groups: tuple[str, ...]
    secret_digest: str = attrs.field(repr=False)
    created_at: float
    revoked: bool = False


@attrs.frozen
class CredentialInfo:
    """A credential as :meth:`RunningEmulator.info` and ``credentials()`` list it: no secret."""

    auth_type: str
    identifier: str
    company_id: str
    credential_set: str
    groups: tuple[str, ...]
    created_at: float
    revoked: bool

    @classmethod
    def of(cls, record: CredentialRecord) -> CredentialInfo:
        return cls(
            auth_type=record.auth_type,
            identifier=record.identifier,
            company_id=record.company_id,
            credential_set=record.credential_set,
            groups=record.groups,
            created_at=record.created_at,
            revoked=record.revoked,
        )


@attrs.frozen
class EmulatorStats:
    """Counters since the emulator started (or :meth:`RunningEmulator.reset_stats`)."""

    #: Token endpoint requests by ``grant_type`` (``""`` when missing), whatever their outcome.
    token_requests: Mapping[str, int]
    authorize_requests: int
    #: Consent decisions: ``allow`` and ``deny``.
    consents: Mapping[str, int]
    revocation_requests: int
    #: Resource endpoint requests by ``METHOD /path``, whatever their outcome.
    resource_calls: Mapping[str, int]
    #: Faults applied, by kind.
    faults_injected: Mapping[str, int]
    uninstalls: int


@attrs.define
class _Counters:
    token_requests: Counter[str] = attrs.field(factory=Counter)
    authorize_requests: int = 0
    consents: Counter[str] = attrs.field(factory=Counter)
    revocation_requests: int = 0
    resource_calls: Counter[str] = attrs.field(factory=Counter)
    faults_injected: Counter[str] = attrs.field(factory=Counter)
    uninstalls: int = 0

    def freeze(self) -> EmulatorStats:
        return EmulatorStats(
            token_requests=dict(self.token_requests),
            authorize_requests=self.authorize_requests,
            consents=dict(self.consents),
            revocation_requests=self.revocation_requests,
            resource_calls=dict(self.resource_calls),
            faults_injected=dict(self.faults_injected),
            uninstalls=self.uninstalls,
        )


class EmulatorState:
    """Everything the emulator remembers; every method takes the lock."""

    def __init__(
        self,
        *,
        provider_key: str,
        spec: EmulatorSpec,
        app_scopes: tuple[str, ...],
        credential_sets: tuple[str, ...],
        redirect_uris: Iterable[str],
        clock: Callable[[], float] = time.time,
        snapshot: Path | None = None,
        access_token_lifetime: int | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self._dirty = False
        self.provider_key = provider_key
        self.spec = spec
        self._clock = clock
        self.clock_offset = 0.0
        self.snapshot_path = snapshot
        self.access_token_lifetime = access_token_lifetime or spec.access_token_lifetime
        self.redirect_uris: list[str] = list(dict.fromkeys(redirect_uris))
        self.companies: dict[str, EmulatedCompany] = {}
        self.company_seeds: dict[str, int] = {}
        self.installations: dict[tuple[str, str], InstallationInfo] = {}
        self.codes: dict[str, CodeRecord] = {}
        self.tokens: dict[str, AccessRecord] = {}
        #: Credentials companies issued themselves, by (auth type, identifier).
        self.credentials: dict[tuple[str, str], CredentialRecord] = {}
        self.rate_limits: dict[str, int] = {
            r.name: r.rate_limit_per_minute for r in spec.resources if r.rate_limit_per_minute
        }
        self._windows: dict[tuple[str, str, str], tuple[int, int]] = {}
        self.counters = _Counters()
        credentials = {
            cs: ClientCredentials(cs, f"{cs[:3]}-{secrets.token_hex(10)}", Secret(secrets.token_urlsafe(32)))
            for cs in credential_sets
        }
        self.app = EmulatorApp(spec.app.app_id, spec.app.name, app_scopes, credentials)
        if snapshot is not None and snapshot.exists():
            self._load(snapshot, access_token_lifetime)
        if not self.companies:
            self.add_company()

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        return self._clock() + self.clock_offset

    # -------------------------------------------------------------- companies

    def add_company(self) -> EmulatedCompany:
        with self.lock:
            seed = self.spec.seed + len(self.companies)
            while True:
                company = self.spec.company_factory(seed)
                if not isinstance(company, EmulatedCompany):
                    raise TypeError(f"company_factory returned {type(company).__name__}; expected EmulatedCompany")
                if company.id not in self.companies:
                    break
                seed += 1_000_003
            self.companies[company.id] = company
            self.company_seeds[company.id] = seed
            self.changed()
            return company

    @property
    def default_company_id(self) -> str:
        with self.lock:
            return next(iter(self.companies))

    # ---------------------------------------------------------- installations

    def install(self, info: InstallationInfo) -> None:
        with self.lock:
            self.installations[(info.company_id, info.credential_set)] = info
            self.changed()

    def installation(self, company_id: str, credential_set: str) -> InstallationInfo | None:
        with self.lock:
            return self.installations.get((company_id, credential_set))

    def uninstall(self, company_id: str, credential_set: str | None = None) -> int:
        """Remove the app's installations in a company and revoke their codes and tokens."""
        with self.lock:
            keys = [k for k in self.installations if k[0] == company_id and credential_set in (None, k[1])]
            for key in keys:
                del self.installations[key]
            for code in self.codes.values():
                if code.company_id == company_id and credential_set in (None, code.credential_set):
                    code.used = True
            for token in self.tokens.values():
                mine = token.company_id == company_id and credential_set in (None, token.credential_set)
                if mine and not token.revoked and token.grant_type != CLIENT_CREDENTIALS:  # no installation behind it
                    token.revoked, token.revoked_reason = True, "uninstalled"
            self.counters.uninstalls += 1
            self.changed()
            return len(keys)

    # ------------------------------------------------------------------ codes

    def save_code(self, code: str, record: CodeRecord) -> None:
        with self.lock:
            now = self.now()
            # Forget codes long past their lifetime (a replay of those is simply unknown).
            for key in [k for k, c in self.codes.items() if c.expires_at < now - 3600]:
                del self.codes[key]
            self.codes[digest(code)] = record

    def code(self, code: str) -> CodeRecord | None:
        with self.lock:
            return self.codes.get(digest(code))

    def forget_code(self, code: str) -> None:
        """Drop a code for good (a failed PKCE check: a second try with it is told it is unknown)."""
        with self.lock:
            self.codes.pop(digest(code), None)

    # ----------------------------------------------------------------- tokens

    def add_token(self, token: str, record: AccessRecord) -> None:
        with self.lock:
            self.tokens[digest(token)] = record
            self.changed()

    def token(self, token: str) -> AccessRecord | None:
        with self.lock:
            return self.tokens.get(digest(token))

    def revoke_grant(self, grant_id: str, reason: str) -> int:
        with self.lock:
            found = [t for t in self.tokens.values() if t.grant_id == grant_id and not t.revoked]
            for record in found:
                record.revoked, record.revoked_reason = True, reason
            self.changed()
            return len(found)

    def revoke(self, token: str, reason: str) -> AccessRecord | None:
        with self.lock:
            record = self.tokens.get(digest(token))
            if record is not None and not record.revoked:
                record.revoked, record.revoked_reason = True, reason
                self.changed()
            return record

    # ------------------------------------------------------------ credentials

    def add_credential(self, record: CredentialRecord) -> None:
        with self.lock:
            self.credentials[(record.auth_type, record.identifier)] = record
            self.changed()

    def credential(self, auth_type: str, identifier: str) -> CredentialRecord | None:
        with self.lock:
            return self.credentials.get((auth_type, identifier))

    def credential_by_secret(self, auth_type: str, secret: str) -> CredentialRecord | None:
        """The credential of ``auth_type`` whose secret is ``secret`` (an API key sent alone)."""
        wanted = digest(secret)
        with self.lock:
            return next(
                (
                    c
                    for c in self.credentials.values()
                    if c.auth_type == auth_type and hmac.compare_digest(c.secret_digest, wanted)
                ),
                None,
            )

    # ------------------------------------------------------------ rate limits

    def count_request(self, endpoint: str, company_id: str, credential_set: str) -> tuple[bool, int, int, int] | None:
        """Count one call against the endpoint's per-minute limit.

        Returns ``(allowed, limit, remaining, reset)`` with ``reset`` the epoch
        second the window ends, or ``None`` when the endpoint is unlimited.
        """
        with self.lock:
            limit = self.rate_limits.get(endpoint)
            if limit is None:
                return None
            now = self.now()
            window = int(now // 60)
            key = (endpoint, company_id, credential_set)
            seen_window, count = self._windows.get(key, (window, 0))
            if seen_window != window:
                count = 0
            allowed = count < limit
            if allowed:
                count += 1
            self._windows[key] = (window, count)
            return allowed, limit, max(limit - count, 0), (window + 1) * 60

    # --------------------------------------------------------------- snapshot

    def changed(self) -> None:
        """Note that the snapshot is out of date; :meth:`flush` writes it."""
        self._dirty = True

    def flush(self, *, force: bool = False) -> None:
        """Write the snapshot, when there is one and something changed since the last write."""
        if self.snapshot_path is None:
            return
        with self.lock:
            if not (self._dirty or force):
                return
            data = json.dumps(self._to_data(), indent=1, sort_keys=True).encode()
            write_private_file(self.snapshot_path, data)
            self._dirty = False

    def _to_data(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "provider": self.provider_key,
            "app_id": self.app.app_id,
            "credentials": {
                cs: {"client_id": c.client_id, "client_secret": c.client_secret.reveal()}
                for cs, c in self.app.credentials.items()
            },
            "clock_offset": self.clock_offset,
            "access_token_lifetime": self.access_token_lifetime,
            "redirect_uris": list(self.redirect_uris),
            "companies": [{"id": cid, "seed": self.company_seeds[cid]} for cid in self.companies],
            "installations": [attrs.asdict(i) for i in self.installations.values()],
            "tokens": {key: attrs.asdict(t) for key, t in self.tokens.items()},
            "issued_credentials": [attrs.asdict(c) for c in self.credentials.values()],
        }

    def _load(self, path: Path, lifetime_override: int | None) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
                raise SnapshotError(f"snapshot {path}: not an emulator snapshot")
            if data.get("version") != SNAPSHOT_VERSION:
                raise SnapshotError(f"snapshot {path}: unsupported version {data.get('version')!r}")
            if data.get("provider") != self.provider_key:
                raise SnapshotError(
                    f"snapshot {path}: belongs to provider {data.get('provider')!r}, not {self.provider_key!r}"
                )
            credentials = dict(self.app.credentials)
            for cs, saved in data["credentials"].items():
                if cs in credentials:
                    credentials[cs] = ClientCredentials(
                        cs, str(saved["client_id"]), Secret(str(saved["client_secret"]))
                    )
            self.app = attrs.evolve(self.app, credentials=credentials)
            self.clock_offset = float(data["clock_offset"])
            if lifetime_override is None:
                self.access_token_lifetime = int(data["access_token_lifetime"])
            self.redirect_uris = list(dict.fromkeys([*self.redirect_uris, *map(str, data["redirect_uris"])]))
            for entry in data["companies"]:
                company = self.spec.company_factory(int(entry["seed"]))
                if company.id != entry["id"]:
                    raise SnapshotError(
                        f"snapshot {path}: company {entry['id']!r} regenerates as {company.id!r}; "
                        "the provider's company generator changed"
                    )
                self.companies[company.id] = company
                self.company_seeds[company.id] = int(entry["seed"])
            for entry in data["installations"]:
                info = InstallationInfo(
                    company_id=str(entry["company_id"]),
                    credential_set=str(entry["credential_set"]),
                    scopes=tuple(entry["scopes"]),
                    audience=str(entry["audience"]),
                    audience_options=tuple(entry["audience_options"]),
                    installed_at=float(entry["installed_at"]),
                )
                self.installations[(info.company_id, info.credential_set)] = info
            for key, entry in data["tokens"].items():
                self.tokens[str(key)] = AccessRecord(
                    kind=str(entry["kind"]),
                    client_id=str(entry["client_id"]),
                    credential_set=str(entry["credential_set"]),
                    company_id=str(entry["company_id"]),
                    scopes=tuple(entry["scopes"]),
                    grant_id=str(entry["grant_id"]),
                    expires_at=None if entry["expires_at"] is None else float(entry["expires_at"]),
                    revoked=bool(entry["revoked"]),
                    revoked_reason=None if entry["revoked_reason"] is None else str(entry["revoked_reason"]),
                    grant_type=str(entry.get("grant_type", "authorization_code")),
                )
            for entry in data.get("issued_credentials", []):
                record = CredentialRecord(
                    auth_type=str(entry["auth_type"]),
                    identifier=str(entry["identifier"]),
                    company_id=str(entry["company_id"]),
                    credential_set=str(entry["credential_set"]),
                    groups=tuple(map(str, entry["groups"])),
                    secret_digest=str(entry["secret_digest"]),
                    created_at=float(entry["created_at"]),
                    revoked=bool(entry["revoked"]),
                )
                self.credentials[(record.auth_type, record.identifier)] = record
        except SnapshotError:
            raise
        except OSError as exc:
            raise SnapshotError(f"snapshot {path}: cannot be read ({exc.strerror})") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SnapshotError(f"snapshot {path}: malformed ({type(exc).__name__}: {exc})") from None
