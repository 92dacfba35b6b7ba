"""The generic OAuth 2.0 provider (``oauth2-generic``), shipped as data, against the emulator
acting as a generic OAuth 2.0 server: the profile's URLs, settings and arbitrary scopes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest

from connector_core import ValidationError, hookimpl, load_plugins, validate_profile
from connector_core.dataprovider import GENERIC_OAUTH2_FILE, DataProvider
from connector_core.errors import InvalidClient, OAuthError, ScopeError
from connector_core.plugins import Plugins
from connector_core.store import Store
from connector_core.testing import ProviderConformance
from connector_core.testing.harness import Harness, isolated_store

KEY = "oauth2-generic"


def _plugins(*extra: object) -> Plugins:
    return load_plugins([DataProvider(GENERIC_OAUTH2_FILE), *extra], entry_points=False, env={})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = isolated_store(tmp_path)
    yield s
    s.close()


def _harness(plugins: Plugins, store: Store, **options: Any) -> Harness:
    endpoints = {"connection_test_path": "/userinfo", **options.pop("endpoints", {})}
    return Harness(
        plugins,
        KEY,
        store,
        revocation=True,
        profile_options={"scopes": options.pop("scopes", "openid files.read"), "endpoints": endpoints, **options},
    )


class _Spec:
    """A Python plugin overriding one declaration of the data provider: its emulator spec."""

    def __init__(self, plugins: Plugins, **changes: Any) -> None:
        self._spec = attrs.evolve(plugins.emulator_spec(KEY), **changes)

    @hookimpl(tryfirst=True)
    def connector_core_emulator(self, provider_key: str) -> Any:
        return self._spec if provider_key == KEY else None


class TestGenericConformance(ProviderConformance):
    provider = KEY
    plugin = DataProvider(GENERIC_OAUTH2_FILE)
    emulator_profile_options: ClassVar[dict[str, Any]] = {
        "endpoints": {"connection_test_path": "/userinfo"},
        "scopes": "openid",
    }


def test_the_built_in_plugin_ships_it_as_data() -> None:
    plugins = load_plugins(env={"CONNECTOR_CORE_PLUGINS": KEY})  # no installed plugin, only what the core ships
    assert plugins.plugin_of(KEY).startswith("data:")
    assert [p.key for p in plugins.providers()] == [KEY]
    assert [p.key for p in load_plugins(entry_points=False, env={}).providers()] == []
    assert plugins.plugin_of(KEY).endswith("oauth2-generic.toml")
    declaration = plugins.declaration(KEY)
    assert declaration.scope_catalogue is not None and declaration.scope_catalogue.open


def test_a_profile_must_give_the_urls_the_provider_cannot_know() -> None:
    declaration = _plugins().declaration(KEY)
    values = {"client_id": "abc", "client_secret": "s3cret"}
    with pytest.raises(ValidationError) as caught:
        validate_profile(declaration, name="p", values=values, endpoints={"authorize_url": "https://as.test/a"})
    assert caught.value.field == "token_url"
    assert "cannot know it" in caught.value.message and "\n" not in caught.value.message


def test_any_scope_names_are_accepted_and_settings_checked() -> None:
    declaration = _plugins().declaration(KEY)
    urls = {"authorize_url": "https://as.test/a", "token_url": "https://as.test/t", "api_base_url": "https://api.test"}
    values = {"client_id": "abc", "client_secret": "s3cret"}
    draft = validate_profile(
        declaration,
        name="p",
        values=values,
        scopes="files.read, calendar:write https://graph.test/.default",
        endpoints={**urls, "scope_separator": "comma", "pkce": "off", "client_auth_method": "client_secret_post"},
    )
    assert draft.scopes == ("files.read", "calendar:write", "https://graph.test/.default")
    assert dict(draft.endpoints)["scope_separator"] == ","
    assert dict(draft.endpoints)["pkce"] == "false"
    with pytest.raises(ValidationError) as caught:
        validate_profile(declaration, name="p", values=values, endpoints={**urls, "pkce": "maybe"})
    assert caught.value.field == "pkce"
    with pytest.raises(ScopeError):
        validate_profile(declaration, name="p", values=values, endpoints=urls, scopes='bad"scope')


def test_a_provider_that_does_not_offer_a_setting_refuses_it() -> None:
    # Only what the auth type declares in profile_options may be chosen: the emulator-backed
    # test provider of tests/dataprovider/acme.toml offers none.
    from support.dataprovider import acme_plugin  # a sibling helper, as every test imports them

    declaration = _plugins(acme_plugin()).declaration("acme")
    with pytest.raises(ValidationError) as caught:
        validate_profile(
            declaration,
            name="p",
            values={"client_id": "a", "client_secret": "b"},
            endpoints={"scope_separator": ","},
        )
    assert caught.value.field == "scope_separator"
    assert "is not a setting" in caught.value.message


def test_connect_refresh_and_revoke_with_arbitrary_scopes(store: Store) -> None:
    with _harness(_plugins(), store, scopes="openid files.read calendar:write") as harness:
        result = harness.connect()
        conn = result.connection
        assert set(conn.granted_scopes) == {"openid", "files.read", "calendar:write"}
        assert harness.connector.test(conn.id).ok
        harness.emulator.advance_clock(harness.emulator.access_token_lifetime + 60)
        assert harness.connector.test(conn.id).ok  # refreshed on the way
        refreshed = harness.connector.refresh(conn.id, force=True)
        assert refreshed.token_version > conn.token_version
        revoked = harness.connector.revoke(conn.id)
        assert revoked.revoked_at_provider


def test_pkce_off_sends_no_challenge_and_still_connects(store: Store) -> None:
    with _harness(_plugins(), store, endpoints={"pkce": "false"}) as harness:
        start = harness.connector.begin(harness.profile)
        query = parse_qs(urlsplit(start.url).query)
        assert "code_challenge" not in query
        done = harness.connector.complete(harness.consent(start.url), profile=harness.profile)
        assert done.connection.granted_scopes
    with _harness(_plugins(), isolated_store(store.path.parent / "other")) as harness:
        assert "code_challenge" in parse_qs(urlsplit(harness.connector.begin(harness.profile).url).query)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_each_client_auth_method_is_the_one_used(store: Store, method: str) -> None:
    plugins = _plugins()
    only = _Spec(plugins, client_auth_methods=(method,))
    plugins = _plugins(only)
    with _harness(plugins, store, endpoints={"client_auth_method": method}) as harness:
        assert harness.connect().connection.status.value == "connected"
        other = "client_secret_post" if method == "client_secret_basic" else "client_secret_basic"
        harness.create_profile("other", scopes="openid", endpoints={"client_auth_method": other})
        with pytest.raises(InvalidClient):
            harness.connect("other")


def test_a_comma_scope_separator(store: Store) -> None:
    plugins = _plugins()
    plugins = _plugins(_Spec(plugins, scope_separator=","))
    with _harness(plugins, store, scopes="openid files.read", endpoints={"scope_separator": ","}) as harness:
        start = harness.connector.begin(harness.profile)
        assert parse_qs(urlsplit(start.url).query)["scope"] == ["openid,files.read"]
        done = harness.connector.complete(harness.consent(start.url), profile=harness.profile)
        assert set(done.connection.granted_scopes) == {"openid", "files.read"}
    # A server that splits on spaces (the emulator's default) takes 'openid,files.read' as one
    # unknown scope: the separator is what was sent.
    with _harness(
        _plugins(), isolated_store(store.path.parent / "spaces"), endpoints={"scope_separator": ","}
    ) as harness:
        with pytest.raises(OAuthError) as caught:
            harness.connect()
        assert "openid,files.read" in caught.value.message


def test_a_profile_created_before_without_urls_fails_in_one_line(store: Store) -> None:
    plugins = _plugins()
    with _harness(plugins, store) as harness:
        profile = store.get_profile(harness.profile)
        stripped = attrs.evolve(profile, endpoints=tuple((k, v) for k, v in profile.endpoints if k != "token_url"))
        with pytest.raises(ValidationError) as caught:
            harness.connector._context(stripped)
        assert caught.value.field == "token_url"
        assert "cannot know it" in caught.value.message


def test_the_cli_creates_a_generic_profile_and_names_a_missing_url(tmp_path: Path) -> None:
    from support import run_connector  # a sibling helper, as every test imports them

    env = {
        "CONNECTOR_HOME": str(tmp_path / "home"),
        "CONNECTOR_CORE_KEY_FILE": str(tmp_path / "keys.json"),
        "CONNECTOR_CORE_PLUGINS": KEY,
        "SECRET": "s3cret-value",
    }
    base = ["profile", "create", KEY, "--name", "mine", "--client-id", "abc", "--client-secret-env", "SECRET"]
    urls = ["--endpoint", "authorize_url=https://as.test/authorize", "--endpoint", "api_base_url=https://api.test"]
    missing = run_connector([*base, *urls], env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"connector: error: token_url: is required: provider {KEY!r} cannot know it, so each profile must set it"
    ]
    made = run_connector(
        [
            *base,
            *urls,
            "--endpoint",
            "token_url=https://as.test/token",
            "--endpoint",
            "scope_separator=comma",
            "--scopes",
            "files.read,calendar:write",
            "--json",
        ],
        env=env,
    )
    assert made.returncode == 0, made.stderr
    data = json.loads(made.stdout)
    assert data["scopes"] == ["files.read", "calendar:write"]
    assert data["endpoints"]["scope_separator"] == ","
