"""The pieces the conformance kit builds tests from, usable without pytest.

* :func:`find_plugin` and :func:`isolated_plugins`: a plugin manager holding only
  the plugin under test (found by its entry point, named after the provider key).
* :func:`isolated_store`: a store in a folder of its own, with its key file there.
* :class:`Harness`: the provider's built-in emulator, a store, a
  :class:`~connector_core.Connector` and a profile of the emulator's test app,
  ready to connect through the real OAuth flow with scripted consent.
  :meth:`Harness.connect_credentials` connects with any other auth type the
  provider declares (HTTP Basic, API keys, client credentials), with credentials
  the emulator issues.
* ``emulated_*``: the end-to-end checks the kit runs against the emulator
  (connect, connection test, refresh, revoke, wrong credentials, each declared
  auth type), each returning the problems it found, like the checks in
  :mod:`connector_core.testing.checks`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._markers import PROJECT_NAME
from ..errors import ConnectorError, HarnessError, NoEmulator, PluginError
from ..models import (
    AuthType,
    CredentialField,
    FieldKind,
    FieldLevel,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    ProviderDeclaration,
)
from ..secret import Secret

if TYPE_CHECKING:
    import ssl

    import httpx

    from ..connection import Connection
    from ..connector import Connector, ConnectResult
    from ..emulator import IssuedCredentials, RunningEmulator
    from ..plugins import Plugins
    from ..store import Store

__all__ = [
    "PROFILE",
    "REDIRECT_BASE_URL",
    "Harness",
    "HarnessError",
    "NoEmulator",
    "credential_profile_values",
    "default_profile_values",
    "emulated_auth_types",
    "emulated_connect",
    "emulated_connection_test",
    "emulated_refresh",
    "emulated_revoke",
    "emulated_wrong_credentials",
    "find_plugin",
    "http_client",
    "isolated_plugins",
    "isolated_store",
    "wrong_secret",
]

#: The profile the harness creates for the emulator's test app.
PROFILE = "conformance"
#: The platform base URL the harness registers its redirect URI under.
REDIRECT_BASE_URL = "https://platform.example"

Problems = tuple[str, ...]
ProfileValues = Callable[["RunningEmulator", ProviderDeclaration, str], Mapping[str, "str | Secret"]]


# ------------------------------------------------------------------ isolation


def find_plugin(key: str) -> object:
    """The plugin object of the installed ``connector_core`` entry point named ``key``.

    By convention a provider's entry point is named after its key. Raises
    :class:`~connector_core.PluginError` when there is none or it fails to import.
    """
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=PROJECT_NAME) if ep.name == key]
    if not found:
        names = sorted({ep.name for ep in entry_points(group=PROJECT_NAME)})
        installed = ", ".join(names) if names else "none"
        raise PluginError(
            key,
            f"no installed {PROJECT_NAME} entry point is named {key!r} (installed: {installed}); install the "
            "plugin's distribution (pip install -e .) or set plugin = <your plugin module> on the test class",
        )
    entry = found[0]
    try:
        return entry.load()
    except Exception as exc:  # noqa: BLE001 - reported as the plugin's failure, by name
        raise PluginError(
            key, f"failed to import {entry.value}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from None


def isolated_plugins(plugin: object) -> Plugins:
    """A plugin manager holding the built-in plugin and ``plugin`` only: no installed
    plugin, and none of the ``CONNECTOR_CORE_*`` loading variables."""
    # on first use: pytest imports this package in every run (the pytest11 entry point)
    from ..plugins import load_plugins

    return load_plugins([plugin], entry_points=False, env={})


def isolated_store(folder: str | Path) -> Store:
    """A store under ``folder/home`` whose key file is ``folder/keys.json`` (nothing from the environment)."""
    # on first use: pytest imports this package in every run (the pytest11 entry point)
    from ..store import Store

    base = Path(folder)
    return Store.open(base / "home", env={"CONNECTOR_CORE_KEY_FILE": str(base / "keys.json")})


# -------------------------------------------------------------------- profiles


def _oauth(declaration: ProviderDeclaration) -> OAuth2AuthorizationCode:
    for auth in declaration.auth_types:
        if isinstance(auth, OAuth2AuthorizationCode):
            return auth
    raise NoEmulator(f"provider {declaration.key!r} has no OAuth 2.0 auth type to emulate")


def default_profile_values(
    emulator: RunningEmulator, declaration: ProviderDeclaration, environment: str
) -> dict[str, str | Secret]:
    """The values of a profile for the emulator's test app: ``client_id`` and
    ``client_secret`` of the environment's credential set, ``app_id`` from the app,
    and each other required field's placeholder when it is a valid value.

    A required field it cannot fill is left out (the profile then fails to
    validate, naming it); a test class supplies it by overriding
    ``emulator_profile_values``.
    """
    return credential_profile_values(emulator, declaration, environment, _oauth(declaration).key)


def credential_profile_values(
    emulator: RunningEmulator,
    declaration: ProviderDeclaration,
    environment: str,
    auth_type: str,
    issued: Mapping[str, str] | None = None,
) -> dict[str, str | Secret]:
    """The values of a profile for ``auth_type``: the test app's ``client_id`` and
    ``client_secret`` (a client credentials grant), the app-level fields among the
    ``issued`` credential's values, and each other required field's valid placeholder."""
    endpoints = emulator.endpoints(environment)
    creds = emulator.app.credentials[endpoints.credential_set]
    known: dict[str, str | Secret] = {
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "app_id": emulator.app.app_id,
        **dict(issued or {}),
    }
    values: dict[str, str | Secret] = {}
    for field in declaration.fields_for(auth_type, FieldLevel.APP):
        if field.kind is FieldKind.SCOPE_LIST:
            continue
        if field.name in known:
            values[field.name] = known[field.name]
        elif field.required and field.placeholder is not None and _valid(field, field.placeholder):
            values[field.name] = field.placeholder
    return values


def _valid(field: CredentialField, value: str) -> bool:
    try:
        field.check(value)
    except ConnectorError:
        return False
    return True


def wrong_secret(field: CredentialField | None, secret: Secret) -> Secret:
    """A value that differs from ``secret`` but still passes ``field``'s own checks
    (so the provider, not the form, is what refuses it)."""
    real = secret.reveal()
    candidates = [real[::-1], real.swapcase(), real[1:] + real[:1], real[:-1] + ("A" if real[-1:] != "A" else "B")]
    for candidate in candidates:
        if candidate != real and (field is None or _valid(field, candidate)):
            return Secret(candidate)
    raise HarnessError("cannot make a wrong client secret that still matches the client_secret field's pattern")


# --------------------------------------------------------------------- harness


class Harness:
    """The provider's emulator, a store, a connector and a profile of the emulator's test app.

    ``profile`` names the profile it creates (``profile_options`` go to
    :func:`~connector_core.validate_profile`: ``scopes``, ``actions``...);
    ``emulator_options`` go to :func:`~connector_core.emulator.start_emulator`
    (``log``, ``clock``, ``access_token_lifetime``...). The redirect URI registered
    with the emulator is ``base_url`` plus the provider's callback path. Profiles
    revoke at the emulator where the provider declares revocation, or as
    ``revocation`` says.

    Use as a context manager; leaving it stops the emulator and raises
    :class:`~connector_core.emulator.EmulatorError` if anything crashed inside it.
    """

    def __init__(
        self,
        plugins: Plugins,
        key: str,
        store: Store,
        *,
        environment: str | None = None,
        profile_values: ProfileValues | None = None,
        base_url: str = REDIRECT_BASE_URL,
        profile: str = PROFILE,
        profile_options: Mapping[str, Any] | None = None,
        emulator_options: Mapping[str, Any] | None = None,
        revocation: bool | None = None,
    ) -> None:
        # on first use: pytest imports this package in every run (the pytest11 entry point)
        from ..connector import Connector
        from ..emulator import start_emulator

        self.plugins = plugins
        self.key = key
        self.store = store
        self.declaration = plugins.declaration(key)
        spec = plugins.emulator_spec(key)
        if spec is None:
            raise NoEmulator(f"provider {key!r} configures no emulator (connector_core_emulator answers None)")
        #: The OAuth 2.0 authorization code grant :meth:`connect` runs; ``None`` for a provider
        #: without one (then only :meth:`connect_credentials` connects).
        self.auth: OAuth2AuthorizationCode | None = next(
            (a for a in self.declaration.auth_types if isinstance(a, OAuth2AuthorizationCode)), None
        )
        self.environment = self.declaration.environment(environment).key
        callback = self.declaration.callback
        path = callback.path if callback is not None else f"/connect/oauth2/{key}/callback"
        self.redirect_uri = base_url.rstrip("/") + path
        self.profile_values = profile_values or default_profile_values
        self.profile = profile
        self._profiles: set[str] = set()
        self._serial = 0
        #: What the emulator issued for the connections :meth:`connect_credentials` made, by connection id.
        self.issued: dict[str, IssuedCredentials] = {}
        #: Whether the profiles it creates revoke at the emulator.
        self.revocation = self.revocation_declared if revocation is None else revocation
        self.emulator: RunningEmulator = start_emulator(
            self.declaration, spec, redirect_uris=[self.redirect_uri], **dict(emulator_options or {})
        )
        self.connector: Connector = Connector(store, plugins)
        try:
            if self.auth is not None:
                self.create_profile(profile, **dict(profile_options or {}))
        except BaseException:
            self.close(check=False)
            raise

    def __repr__(self) -> str:
        return f"<Harness {self.key} {self.environment} at {self.emulator.base_url}>"

    def __enter__(self) -> Harness:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(check=exc is None)

    def close(self, *, check: bool = True) -> None:
        self.connector.close()
        self.emulator.close(check=check)

    @property
    def revocation_declared(self) -> bool:
        """Whether the provider declares a revocation endpoint for the harness's environment."""
        env = self.declaration.environment(self.environment)
        return bool(env.revocation_url or (self.auth.revocation_url if self.auth else None))

    def create_profile(
        self,
        name: str,
        *,
        client_secret: Secret | None = None,
        auth_type: str | None = None,
        issued: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        """A profile of the emulator's test app, its endpoints pointing at the emulator.
        ``client_secret`` replaces the real secret (for the must-fail case); ``auth_type``
        makes it a profile of another auth type than the harness's OAuth one (its app-level
        values from :func:`credential_profile_values`, ``issued`` supplying a credential's);
        ``options`` go to :func:`~connector_core.validate_profile` (``scopes``, ``actions``...)."""
        # on first use: pytest imports this package in every run (the pytest11 entry point)
        from ..profiles import validate_profile

        chosen = auth_type or (self.auth.key if self.auth else None)
        if chosen is None:
            raise HarnessError(f"provider {self.key!r} has no OAuth 2.0 authorization code grant: name the auth_type")
        if self.auth is not None and chosen == self.auth.key:
            values = dict(self.profile_values(self.emulator, self.declaration, self.environment))
        else:
            values = credential_profile_values(self.emulator, self.declaration, self.environment, chosen, issued)
        if client_secret is not None:
            values["client_secret"] = client_secret
        # Revoke where the provider would (or as asked); otherwise the core deletes locally.
        urls = self.emulator.endpoints(self.environment).profile_urls(self.redirect_uri, revocation=self.revocation)
        urls = {**urls, **dict(options.pop("endpoints", None) or {})}  # a profile's own settings, on top
        try:
            draft = validate_profile(
                self.declaration,
                name=name,
                environment=self.environment,
                auth_type=chosen,
                values=values,
                endpoints=urls,
                **options,
            )
        except ConnectorError as exc:
            message = exc.message
        else:
            self.store.create_profile(draft)
            return
        raise HarnessError(
            f"the profile of the emulator's test app is invalid: {message}; give its values from "
            "emulator_profile_values() on the test class"
        )

    @staticmethod
    def consent(url: str, decision: str = "allow", *, company: str | None = None) -> str:
        """Act as the person's browser: consent (scripted; in ``company`` when given) and
        return where the provider redirects."""
        # on first use: pytest imports this package in every run (the pytest11 entry point)
        from ..emulator import COMPANY_HEADER, CONSENT_HEADER

        headers = {CONSENT_HEADER: decision, **({COMPANY_HEADER: company} if company else {})}
        with http_client(follow_redirects=False, timeout=10) as browser:
            answer = browser.get(url, headers=headers)
        if answer.status_code not in (302, 303):
            raise HarnessError(
                f"the emulator's authorization endpoint answered {answer.status_code} instead of redirecting: "
                f"{' '.join(answer.text.split())[:300]}"
            )
        return answer.headers["location"]

    def connect(
        self,
        profile: str | None = None,
        *,
        decision: str = "allow",
        company: str | None = None,
        connector: Connector | None = None,
    ) -> ConnectResult:
        """The whole OAuth flow for ``profile`` (default: the harness's own): begin,
        consent (in ``company``), complete; with the harness's connector or ``connector``."""
        if self.auth is None:
            raise HarnessError(
                f"provider {self.key!r} has no OAuth 2.0 authorization code grant; use connect_credentials()"
            )
        name = profile or self.profile
        using = connector or self.connector
        start = using.begin(name)
        return using.complete(self.consent(start.url, decision, company=company), profile=name)

    @property
    def direct_auth_types(self) -> tuple[AuthType, ...]:
        """The declared auth types that send no one to the provider (HTTP Basic, API keys,
        client credentials): :meth:`connect_credentials` connects with them."""
        return tuple(a for a in self.declaration.auth_types if not a.kind.redirects)

    def credential_profile(self, auth_type: str) -> str:
        """The harness's profile for ``auth_type`` (``PROFILE-AUTHTYPE``), created on first use."""
        name = f"{self.profile}-{auth_type}"
        if name not in self._profiles:
            self.create_profile(name, auth_type=auth_type)
            self._profiles.add(name)
        return name

    def issue(
        self, auth_type: str, *, groups: Sequence[str] | None = None, company: str | None = None
    ) -> IssuedCredentials:
        """A credential of ``auth_type`` issued by the emulator, for the harness's environment."""
        return self.emulator.issue_credentials(auth_type, company=company, groups=groups, environment=self.environment)

    def user_values(self, auth_type: str, issued: Mapping[str, str]) -> dict[str, str | Secret]:
        """The user-level credential values among ``issued`` (what ``Connector.connect`` takes)."""
        names = {f.name for f in self.declaration.fields_for(auth_type, FieldLevel.USER)}
        return {k: v for k, v in issued.items() if k in names}

    def connect_credentials(
        self,
        auth_type: str | None = None,
        *,
        groups: Sequence[str] | None = None,
        company: str | None = None,
        connector: Connector | None = None,
    ) -> ConnectResult:
        """Connect with an auth type that sends no one to the provider (default: the first
        declared): for HTTP Basic or an API key the emulator issues the credential first (in
        ``groups``, default every permission group, in ``company``) and it is kept in
        :attr:`issued` by connection id; a client credentials grant needs nothing issued.
        The connection test runs, as ``Connector.connect`` does."""
        using = connector or self.connector
        auth = self._direct(auth_type)
        if isinstance(auth, OAuth2ClientCredentials):
            return using.connect(self.credential_profile(auth.key))
        issued = self.issue(auth.key, groups=groups, company=company)
        app_level = {f.name for f in self.declaration.fields_for(auth.key, FieldLevel.APP)}
        if app_level & set(issued):
            # The profile itself holds part of the credential: one profile per credential.
            self._serial += 1
            profile = f"{self.profile}-{auth.key}-{self._serial}"
            self.create_profile(profile, auth_type=auth.key, issued=issued)
        else:
            profile = self.credential_profile(auth.key)
        result = using.connect(profile, self.user_values(auth.key, issued))
        self.issued[result.connection.id] = issued
        return result

    def _direct(self, auth_type: str | None) -> AuthType:
        direct = self.direct_auth_types
        if auth_type is None:
            if not direct:
                raise HarnessError(f"provider {self.key!r} declares no auth type besides the authorization code grant")
            return direct[0]
        auth = self.declaration.auth_type(auth_type)
        if auth.kind.redirects:
            raise HarnessError(f"{auth_type} sends a person to the provider: connect it with Harness.connect()")
        return auth

    def api(self, method: str, path: str, token: Secret, body: Any | None = None) -> int:
        """The status of a raw API call to the emulator with ``token``, bypassing the connector."""
        url = self.emulator.endpoints(self.environment).api_base_url + path
        with http_client(timeout=10) as client:
            return client.request(
                method, url, headers={"Authorization": f"Bearer {token.reveal()}"}, json=body
            ).status_code


@functools.cache
def _tls() -> ssl.SSLContext:
    """The one TLS context of :func:`http_client`'s clients in this process."""
    import httpx  # on first use: pytest imports this package in every run (the pytest11 entry point)

    return httpx.create_ssl_context(trust_env=False)


def http_client(**options: Any) -> httpx.Client:
    """An ``httpx.Client`` for a test (``options`` go to it): no proxy or certificate settings
    from the environment, and one TLS context shared by every such client of the process.
    Building a client otherwise builds a TLS context, loading the CA bundle (tens of
    milliseconds), even when it only ever talks to an emulator on 127.0.0.1."""
    import httpx  # on first use: pytest imports this package in every run (the pytest11 entry point)

    return httpx.Client(**{"trust_env": False, "verify": _tls(), **options})


# ------------------------------------------------------------ emulated checks


def _connected(harness: Harness) -> tuple[Connection | None, Problems]:
    try:
        result = harness.connect()
    except ConnectorError as exc:
        return None, (f"connecting through the emulator failed: {exc.message}",)
    return result.connection, ()


def emulated_connect(harness: Harness) -> Problems:
    """Connect through the real OAuth flow: the connection is stored as connected, with
    tokens, the minimum scopes granted and no warnings."""
    # on first use: pytest imports this package in every run (the pytest11 entry point)
    from ..connection import ConnectionStatus

    try:
        result = harness.connect()
    except ConnectorError as exc:
        return (f"connecting through the emulator failed: {exc.message}",)
    conn = result.connection
    problems = [f"connecting warned: {warning}" for warning in result.warnings]
    if conn.status is not ConnectionStatus.CONNECTED:
        problems.append(f"the new connection is {conn.status.value}, not connected")
    catalogue = harness.declaration.scope_catalogue
    missing = [s for s in (catalogue.minimum_scopes if catalogue else ()) if s not in conn.granted_scopes]
    if missing:
        problems.append(f"the connection was not granted the minimum scopes: {', '.join(missing)}")
    _, access, _ = harness.store.get_tokens(conn.id)
    if access is None:
        problems.append("the connection has no access token")
    return tuple(problems)


def emulated_connection_test(harness: Harness) -> Problems:
    """A fresh connection passes the provider's connection test."""
    conn, problems = _connected(harness)
    if conn is None:
        return problems
    try:
        result = harness.connector.test(conn.id)
    except ConnectorError as exc:
        return (f"the connection test raised: {exc.message}",)
    return () if result.ok else (f"the connection test failed: {result.detail}",)


def emulated_refresh(harness: Harness) -> Problems:
    """Once the access token has expired at the provider, the next call refreshes it and
    succeeds; a forced refresh stores new tokens that work too."""
    conn, problems = _connected(harness)
    if conn is None:
        return problems
    connector = harness.connector
    harness.emulator.advance_clock(harness.emulator.access_token_lifetime + 60)
    try:
        after_expiry = connector.test(conn.id)
        forced = connector.refresh(conn.id, force=True)
        after_force = connector.test(conn.id)
    except ConnectorError as exc:
        return (f"refreshing failed: {exc.message}",)
    found: list[str] = []
    if not after_expiry.ok:
        found.append(f"after the access token expired, the connection test failed: {after_expiry.detail}")
    if forced.token_version <= conn.token_version:
        found.append("a forced refresh stored no new tokens")
    if not after_force.ok:
        found.append(f"after a forced refresh, the connection test failed: {after_force.detail}")
    return tuple(found)


def emulated_revoke(harness: Harness) -> Problems:
    """Revoking ends the grant at the provider where it declares a revocation endpoint
    (the old access token stops working), else deletes the tokens locally and says so;
    after the reconnect policy's manual steps (if any), connecting again works."""
    # on first use: pytest imports this package in every run (the pytest11 entry point)
    from ..connection import ConnectionStatus

    conn, problems = _connected(harness)
    if conn is None:
        return problems
    _, access, _ = harness.store.get_tokens(conn.id)
    try:
        result = harness.connector.revoke(conn.id)
    except ConnectorError as exc:
        return (f"revoking failed: {exc.message}",)
    found: list[str] = []
    if harness.store.get_tokens(conn.id)[1] is not None:
        found.append("the tokens are still stored after revoking")
    test = harness.declaration.connection_test
    if harness.revocation:
        if not result.revoked_at_provider or result.connection.status is not ConnectionStatus.REVOKED:
            found.append(
                f"the provider declares a revocation endpoint, but the grant was not revoked there: {result.message}"
            )
        elif test is not None and access is not None:
            body = json.loads(test.json_body) if test.json_body else None
            status = harness.api(test.method, test.path, access, body)
            if status != 401:
                found.append(
                    f"after revocation, {test.method} {test.path} with the old access token answered {status}, not 401"
                )
    elif result.connection.status is not ConnectionStatus.DISCONNECTED:
        found.append(f"revoking without an endpoint left the connection {result.connection.status.value}")
    policy = harness.declaration.reconnect_policy
    if policy is not None and policy.procedures_for(harness.environment):
        harness.emulator.uninstall()  # a person followed the policy's manual steps
    try:
        again = harness.connect()
    except ConnectorError as exc:
        found.append(
            f"after revoking, connecting again failed: {exc.message}. If the provider must be uninstalled "
            "first, declare reconnect policy 'uninstall_then_reauthorize' with the steps"
        )
    else:
        if again.connection.status is not ConnectionStatus.CONNECTED:
            found.append(f"after revoking, connecting again left the connection {again.connection.status.value}")
    return tuple(found)


def emulated_wrong_credentials(harness: Harness, profile: str = f"{PROFILE}-wrong-secret") -> Problems:
    """Connecting with a wrong client secret fails with InvalidClient, and the error
    names neither the wrong secret nor the right one."""
    # on first use: pytest imports this package in every run (the pytest11 entry point)
    from ..oauth import InvalidClient

    if harness.auth is None:
        return ("the provider has no OAuth 2.0 authorization code grant",)
    fields = {f.name: f for f in harness.declaration.fields_for(harness.auth.key)}
    values = harness.profile_values(harness.emulator, harness.declaration, harness.environment)
    right = values.get("client_secret")
    if not isinstance(right, Secret):
        right = Secret(str(right)) if right is not None else None
    if right is None:
        return ("the emulator's test app has no client_secret to get wrong",)
    wrong = wrong_secret(fields.get("client_secret"), right)
    harness.create_profile(profile, client_secret=wrong)
    try:
        harness.connect(profile)
    except InvalidClient as exc:
        leaked = [s for s in (wrong.reveal(), right.reveal()) if s in str(exc)]
        return ("the InvalidClient error shows a client secret",) if leaked else ()
    except ConnectorError as exc:
        return (
            f"connecting with a wrong client secret should fail with InvalidClient, but raised "
            f"{type(exc).__name__}: {exc.message}",
        )
    return ("connecting with a wrong client secret succeeded",)


def _probe(harness: Harness, profile: str) -> tuple[str, str, Any | None, int] | None:
    """A request every valid connection of ``profile`` may make: the connection test (as the
    profile runs it), else the emulator's first GET endpoint without path parameters;
    ``(method, path, body, expected status)``."""
    test = harness.connector.connection_test_for(harness.store.get_profile(profile, with_secrets=False))
    if test is not None:
        return test.method, test.path, json.loads(test.json_body) if test.json_body else None, test.expected_status
    for resource in harness.emulator.spec.resources:
        if resource.method == "GET" and "{" not in resource.path:
            return "GET", resource.path, None, 200
    return None


def _exercise(harness: Harness, auth: AuthType, conn: Connection) -> list[str]:
    """The connection of ``auth`` passes its test, makes a request, and is listed."""
    found: list[str] = []
    connector = harness.connector
    try:
        result = connector.test(conn.id)
    except ConnectorError as exc:
        found.append(f"the connection test raised: {exc.message}")
    else:
        if not result.ok:
            found.append(f"the connection test failed: {result.detail}")
    probe = _probe(harness, conn.profile)
    if probe is not None:
        method, path, body, expected = probe
        try:
            response = connector.request(conn.id, method, path, json=body)
        except ConnectorError as exc:
            found.append(f"{method} {path} raised: {exc.message}")
        else:
            if response.status != expected:
                found.append(f"{method} {path} answered {response.status}, expected {expected}")
    listed = [c.id for c in harness.store.list_connections(profile=conn.profile)]
    if conn.id not in listed:
        found.append(f"the connection {conn.id} is not in the store's listing of profile {conn.profile!r}")
    return found


def _wrong(harness: Harness, auth: AuthType) -> list[str]:
    """Wrong credentials for ``auth`` fail with the right error, name no secret, store nothing."""
    # on first use: pytest imports this package in every run (the pytest11 entry point)
    from ..errors import CredentialsRejected
    from ..oauth import InvalidClient

    before = {c.id for c in harness.store.list_connections()}
    right: str
    wrong: Secret
    if auth.kind.uses_tokens:
        expected: type[ConnectorError] = InvalidClient
        values = credential_profile_values(harness.emulator, harness.declaration, harness.environment, auth.key)
        if harness.auth is not None and auth.key == harness.auth.key:
            values = dict(harness.profile_values(harness.emulator, harness.declaration, harness.environment))
        secret = values.get("client_secret")
        if secret is None:
            return ["the emulator's test app has no client_secret to get wrong"]
        right = secret.reveal() if isinstance(secret, Secret) else secret
        fields = {f.name: f for f in harness.declaration.fields_for(auth.key)}
        wrong = wrong_secret(fields.get("client_secret"), Secret(right))
        harness._serial += 1
        name = f"{harness.profile}-{auth.key}-wrong-{harness._serial}"
        harness.create_profile(name, client_secret=wrong, auth_type=auth.key)

        def attempt() -> object:
            if isinstance(auth, OAuth2AuthorizationCode):
                return harness.connect(name)
            return harness.connector.connect(name)
    else:
        expected = CredentialsRejected
        issued = harness.issue(auth.key)
        secret_name = harness.declaration.credential_names(auth)[-1]  # the password, or the key
        field = next(f for f in harness.declaration.fields_for(auth.key) if f.name == secret_name)
        right = issued[secret_name]
        wrong = wrong_secret(field, Secret(right))
        given = {**harness.user_values(auth.key, issued), secret_name: wrong.reveal()}
        app_level = {f.name for f in harness.declaration.fields_for(auth.key, FieldLevel.APP)}
        if app_level & set(issued):
            harness._serial += 1
            profile = f"{harness.profile}-{auth.key}-wrong-{harness._serial}"
            harness.create_profile(profile, auth_type=auth.key, issued={**issued, secret_name: wrong.reveal()})
        else:
            profile = harness.credential_profile(auth.key)

        def attempt() -> object:
            return harness.connector.connect(profile, {k: v for k, v in given.items() if k not in app_level})

    what = "client secret" if auth.kind.uses_tokens else "secret"
    found: list[str] = []
    try:
        attempt()
    except expected as exc:
        if any(s in str(exc) for s in (wrong.reveal(), right)):
            found.append(f"the {type(exc).__name__} error shows a {what}")
    except ConnectorError as exc:
        found.append(
            f"connecting with a wrong {what} should fail with {expected.__name__}, but raised "
            f"{type(exc).__name__}: {exc.message}"
        )
    else:
        found.append(f"connecting with a wrong {what} succeeded")
    if isinstance(auth, OAuth2AuthorizationCode):
        harness.emulator.uninstall()  # consent installed the app before the token request failed
    stored = {c.id for c in harness.store.list_connections()} - before
    if stored:
        found.append(f"connecting with a wrong {what} stored a connection: {', '.join(sorted(stored))}")
    return found


def emulated_auth_types(harness: Harness) -> Problems:
    """Each auth type the provider declares, against the emulator: connecting works (the
    OAuth flow, or credentials the emulator issues, or a client credentials grant), the
    connection test passes, a request works, the connection is in the store's listing, and
    wrong credentials fail (``InvalidClient`` for an OAuth client, ``CredentialsRejected``
    otherwise) and store nothing. Every problem names its auth type."""
    problems: list[str] = []
    for auth in harness.declaration.auth_types:
        where = f"{auth.key} ({auth.kind.value})"
        found: list[str] = []
        try:  # first, while nothing is installed at the provider yet
            found.extend(_wrong(harness, auth))
        except ConnectorError as exc:
            found.append(f"the wrong-credentials check could not run: {exc.message}")
        try:
            if isinstance(auth, OAuth2AuthorizationCode):
                other = harness.auth is None or auth.key != harness.auth.key
                result = harness.connect(harness.credential_profile(auth.key) if other else None)
            else:
                result = harness.connect_credentials(auth.key)
        except ConnectorError as exc:
            found.append(f"connecting through the emulator failed: {exc.message}")
            result = None
        if result is not None:
            found.extend(_exercise(harness, auth, result.connection))
        problems.extend(f"{where}: {problem}" for problem in found)
    return tuple(problems)
