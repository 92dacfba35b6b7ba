"""The error tree: every error connector-core raises on purpose, in one place.

Every class derives from :class:`ConnectorError` and carries a one-line message in
library language: what went wrong and what would fix it, with no command line in it.
A platform calling the library from its web backend shows these messages as they
are; the ``connector`` CLI prints them as ``connector: error: MESSAGE`` and adds its
own advice ("run 'connector reconnect ...'") from :attr:`ConnectorError.code`.

::

    ConnectorError                   exit 1   root
    ├── ValidationError (ValueError)          a value failed validation; ``field`` names it
    │   ├── DeclarationError                  a record a plugin built is invalid
    │   └── ScopeError                        a requested scope set is malformed
    ├── UnknownNameError (LookupError)        an unknown provider, profile, connection, ...
    ├── PluginError                           a plugin failed to load or broke a hook contract
    ├── UsageError                   exit 2   the command line was used wrongly
    ├── StoreError                            the store cannot be opened, read or written
    ├── SessionError                          a connect session token is unknown, used or expired
    ├── CryptoError                           a key is missing or wrong; a ciphertext was altered
    ├── OAuthError                            an OAuth error response or an unusable response
    │   ├── InvalidGrant                      the code or refresh token is no longer valid
    │   ├── InvalidClient                     the client id, secret or method is wrong
    │   ├── AccessDenied                      the person or the provider refused
    │   ├── StateError                        a callback's state is missing, unknown or used
    │   ├── TransientError                    worth retrying later (timeout, 5xx, 429)
    │   │   └── OutcomeUnknown                the request was sent, its reply was lost
    │   └── AlreadyInstalled                  the app must be uninstalled first
    ├── ReconnectRequired                     the connection's grant is gone
    ├── ConfirmationRequired                  manual steps must be confirmed first
    ├── CredentialsRejected                   the provider refused credentials given to connect
    ├── RequestFailed                         an API request failed
    ├── WebhookVerificationError              a webhook delivery's signature or timestamp is not good
    ├── EmulatorError                         the emulator cannot start or crashed
    │   └── SnapshotError                     an emulator snapshot cannot be read
    └── HarnessError                          the provider test harness could not go on
        └── NoEmulator                        the provider configures no emulator

The modules that raise them re-export them (``connector_core.oauth.OAuthError`` is
this module's ``OAuthError``), so older import paths keep working.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AlreadyInstalled",
    "ConfirmationRequired",
    "ConnectorError",
    "CredentialsRejected",
    "CryptoError",
    "DataFileError",
    "DeclarationError",
    "EmulatorError",
    "HarnessError",
    "InvalidClient",
    "InvalidGrant",
    "NoEmulator",
    "OAuthError",
    "OutcomeUnknown",
    "PluginError",
    "ReconnectRequired",
    "RequestFailed",
    "ScopeError",
    "SessionError",
    "SnapshotError",
    "StateError",
    "StoreError",
    "TransientError",
    "UnknownNameError",
    "UsageError",
    "ValidationError",
    "WebhookVerificationError",
]


class ConnectorError(Exception):
    """Root of every error connector-core raises on purpose."""

    #: The CLI's exit status for this kind of error.
    exit_code: int = 1

    #: A stable, machine-readable name of the situation (``"profile_in_use"``), or None.
    #: Front ends key their own advice on it: the CLI's hints, an API's problem types.
    code: str | None = None

    #: Extra lines to show after the one-line error, such as manual steps to take.
    details: tuple[str, ...] = ()

    def __init__(self, message: str, *, code: str | None = None) -> None:
        # One line, always: multi-line messages break log parsers and CLI output.
        super().__init__(" ".join(message.split()))
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


# ------------------------------------------------------------------ validation


class ValidationError(ConnectorError, ValueError):
    """A value failed validation. ``field`` names what was wrong; the message is ``FIELD: MESSAGE``."""

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}", code=code)


class DeclarationError(ValidationError):
    """A provider declaration (a model built by a plugin) is invalid."""


class DataFileError(DeclarationError):
    """A provider file (a provider declared as data, in TOML) that cannot be read or declares
    something invalid. The one-line message is ``FILE:LINE: FIELD: MESSAGE`` (no line when it
    cannot be found); ``file``, ``line`` and ``field`` (a path such as
    ``auth_types.oauth2.token_url``) are attributes too."""

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        where = f"{file}:{line}" if line else file
        ConnectorError.__init__(self, f"{where}: {field}: {message}" if field else f"{where}: {message}")


class ScopeError(ValidationError):
    """A requested scope set is malformed or does not satisfy the catalogue."""


class UnknownNameError(ConnectorError, LookupError):
    """A name (provider, scope group, action, environment, ...) is not known.

    Carries ``kind``, ``name`` and ``known``; the message adds a did-you-mean."""

    def __init__(
        self, kind: str, name: str, known: list[str] | tuple[str, ...] = (), *, within: str | None = None
    ) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        msg = f"unknown {kind} {name!r}" + (f" for {within}" if within else "")
        suggestion = _did_you_mean(name, self.known)
        if suggestion:
            msg += f"; did you mean {suggestion!r}?"
        if self.known:
            msg += f" (expected one of: {', '.join(self.known)})"
        else:
            msg += f" (no {kind}s are available)"
        super().__init__(msg)


class PluginError(ConnectorError):
    """A plugin failed to load, broke a hook contract, or clashed with another."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class UsageError(ConnectorError):
    """The command line was used wrongly (exit status 2)."""

    exit_code = 2


# ------------------------------------------------------------- store and keys


class StoreError(ConnectorError):
    """The store (its database) cannot be opened, read or written."""


class SessionError(ConnectorError):
    """A connect session cannot be used: its token is ``unknown`` (or malformed), ``used`` or
    ``expired``, or the session is already ``finished`` (completed or failed) or ``not_started``
    (completed before it was claimed). The message never holds the token."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)


class CryptoError(ConnectorError):
    """A key is missing, malformed or wrong, or a ciphertext failed its integrity check."""


# ---------------------------------------------------------------------- OAuth


class OAuthError(ConnectorError):
    """An OAuth error response or an unusable response. Never carries a secret.

    ``error`` is the RFC 6749 code (or a local one such as ``invalid_response``),
    ``status`` the HTTP status when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        error: str = "invalid_response",
        status: int | None = None,
        description: str | None = None,
        code: str | None = None,
    ) -> None:
        self.error = error
        self.status = status
        self.description = description
        super().__init__(message, code=code)


class InvalidGrant(OAuthError):
    """The code or refresh token is expired, revoked, rotated out or reused: re-authorize."""


class InvalidClient(OAuthError):
    """The client id, secret or authentication method is wrong: a configuration error."""


class AccessDenied(OAuthError):
    """The person (or the provider) refused the authorization."""


class StateError(OAuthError):
    """A callback's ``state`` is missing, unknown, reused or expired.

    ``code`` tells the cases a front end may advise on: ``"no_state_of_ours"`` (a code
    without our state: an install that began at the provider), ``"has_state"`` (a
    provider-initiated completion was given a callback of ours)."""


class TransientError(OAuthError):
    """Worth retrying later: a timeout, a dropped connection, 5xx, or 429."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        error: str = "temporarily_unavailable",
        reached_server: bool = True,
    ) -> None:
        self.retry_after = retry_after
        #: False when the request surely never reached the server (safe to retry any request).
        self.reached_server = reached_server
        super().__init__(message, error=error, status=status)


class OutcomeUnknown(TransientError):
    """The request reached the server but its reply was lost (a timeout after sending, a dropped
    connection, a 5xx or a 200 that cannot be read): the server may have acted on it. A refresh
    is never sent again at once with the same refresh token then: with rotation, the first one
    may have spent it, and a second would look like a replay."""


class AlreadyInstalled(OAuthError):
    """The provider refused because the app is already installed; a person must
    uninstall it first. ``details`` holds the provider's uninstall steps."""


# ---------------------------------------------------------------- connections


class ReconnectRequired(ConnectorError):
    """The connection's grant is gone; it must be authorized again
    (:meth:`~connector_core.Connector.begin_reconnect`)."""

    code = "reconnect_required"

    def __init__(self, connection_id: str, reason: str, guidance: str | None = None) -> None:
        self.connection_id = connection_id
        self.reason = reason
        self.guidance = guidance
        tail = f" {guidance}" if guidance else ""
        super().__init__(f"connection {connection_id} needs reconnecting ({reason}).{tail}")


class ConfirmationRequired(ConnectorError):
    """A reconnect needs manual steps done first; ``details`` lists them. Confirm that
    they are done by calling again with ``confirmed=True``."""

    code = "confirmation_required"


class CredentialsRejected(ConnectorError):
    """The provider refused the credentials given to connect (a service user's token, an API
    key, client credentials) when the connection was tested: nothing was stored. ``status`` is
    the test request's HTTP status; ``guidance`` what the provider advises."""

    code = "credentials_rejected"

    def __init__(self, message: str, *, status: int | None = None, guidance: str | None = None) -> None:
        self.status = status
        self.guidance = guidance
        super().__init__(f"{message} {guidance}" if guidance else message)


class RequestFailed(ConnectorError):
    """An API request failed; ``status`` is its HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


# ------------------------------------------------------------------- webhooks


class WebhookVerificationError(ConnectorError):
    """A webhook delivery failed verification (:func:`connector_core.webhooks.verify`).

    ``code`` says why: ``missing_header`` (a ``webhook-*`` header is absent, empty or given
    twice with different values), ``bad_timestamp`` (not a whole number of seconds, or ahead
    of the receiver's clock by more than the tolerance), ``expired`` (older than the
    tolerance: a late delivery or a replay), ``bad_signature`` (no ``v1`` signature matches
    any of the secrets) or ``bad_body`` (signed, but not a JSON object). The message never
    holds a secret or a signature; the receiver answers such a delivery with a 4xx."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)


# ------------------------------------------------------ emulator and harness


class EmulatorError(ConnectorError):
    """The emulator cannot start, or one of its handlers crashed during a run."""


class SnapshotError(EmulatorError):
    """The snapshot file cannot be read or belongs to another provider."""


class HarnessError(ConnectorError):
    """The harness could not do what a test asked (a consent page that did not redirect...)."""


class NoEmulator(HarnessError):
    """The provider configures no emulator (its ``connector_core_emulator`` hook answers ``None``)."""


def _did_you_mean(name: str, known: tuple[str, ...]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    # An abbreviation ('prod' for 'production') is too short for difflib's ratio.
    started = [k for k in known if name and k.lower().startswith(name.lower())]
    return started[0] if len(started) == 1 else None
