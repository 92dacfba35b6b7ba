"""The pieces the conformance kit builds tests from, usable without pytest.

* :func:`find_plugin` and :func:`isolated_plugins`: a plugin manager holding only
  the plugin under test (found by its entry point, named after the provider key).
* :func:`isolated_store`: a store in a folder of its own, with its key file there.
* :class:`Harness`: the provider's built-in emulator, a store, a
  :class:`~connector_core.Connector` and a profile of the emulator's test app,
  ready to connect through the real OAuth flow with scripted consent.
* ``emulated_*``: the end-to-end checks the kit runs against the emulator
  (connect, connection test, refresh, revoke, wrong credentials), each returning
  the problems it found, like the checks in :mod:`connector_core.testing.checks`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._markers import PROJECT_NAME
from ..errors import ConnectorError, HarnessError, NoEmulator, PluginError
from ..models import CredentialField, FieldKind, FieldLevel, OAuth2AuthorizationCode, ProviderDeclaration
from ..secret import Secret

if TYPE_CHECKING:
    from ..connection import Connection
    from ..connector import Connector, ConnectResult
    from ..emulator import RunningEmulator
    from ..plugins import Plugins
    from ..store import Store

__all__ = [
    "PROFILE",
    "REDIRECT_BASE_URL",
    "Harness",
    "HarnessError",
    "NoEmulator",
    "default_profile_values",
    "emulated_connect",
    "emulated_connection_test",
    "emulated_refresh",
    "emulated_revoke",
    "emulated_wrong_credentials",
    "find_plugin",
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
    auth = _oauth(declaration)
    endpoints = emulator.endpoints(environment)
    creds = emulator.app.credentials[endpoints.credential_set]
    known: dict[str, str | Secret] = {
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "app_id": emulator.app.app_id,
    }
    values: dict[str, str | Secret] = {}
    for field in declaration.fields_for(auth.key):
        if field.level is not FieldLevel.APP or field.kind is FieldKind.SCOPE_LIST:
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
        self.auth = _oauth(self.declaration)
        self.environment = self.declaration.environment(environment).key
        callback = self.declaration.callback
        path = callback.path if callback is not None else f"/connect/oauth2/{key}/callback"
        self.redirect_uri = base_url.rstrip("/") + path
        self.profile_values = profile_values or default_profile_values
        self.profile = profile
        #: Whether the profiles it creates revoke at the emulator.
        self.revocation = self.revocation_declared if revocation is None else revocation
        self.emulator: RunningEmulator = start_emulator(
            self.declaration, spec, redirect_uris=[self.redirect_uri], **dict(emulator_options or {})
        )
        self.connector: Connector = Connector(store, plugins)
        try:
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
        return bool(env.revocation_url or self.auth.revocation_url)

    def create_profile(self, name: str, *, client_secret: Secret | None = None, **options: Any) -> None:
        """A profile of the emulator's test app, its endpoints pointing at the emulator.
        ``client_secret`` replaces the real secret (for the must-fail case); ``options``
        go to :func:`~connector_core.validate_profile` (``scopes``, ``actions``...)."""
        # on first use: pytest imports this package in every run (the pytest11 entry point)
        from ..profiles import validate_profile

        values = dict(self.profile_values(self.emulator, self.declaration, self.environment))
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
                auth_type=self.auth.key,
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
        import httpx

        # on first use: pytest imports this package in every run (the pytest11 entry point)
        from ..emulator import COMPANY_HEADER, CONSENT_HEADER

        headers = {CONSENT_HEADER: decision, **({COMPANY_HEADER: company} if company else {})}
        with httpx.Client(follow_redirects=False, trust_env=False, timeout=10) as browser:
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
        name = profile or self.profile
        using = connector or self.connector
        start = using.begin(name)
        return using.complete(self.consent(start.url, decision, company=company), profile=name)

    def api(self, method: str, path: str, token: Secret, body: Any | None = None) -> int:
        """The status of a raw API call to the emulator with ``token``, bypassing the connector."""
        import httpx

        url = self.emulator.endpoints(self.environment).api_base_url + path
        with httpx.Client(trust_env=False, timeout=10) as client:
            return client.request(
                method, url, headers={"Authorization": f"Bearer {token.reveal()}"}, json=body
            ).status_code


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
