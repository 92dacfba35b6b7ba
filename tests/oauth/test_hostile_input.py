"""Hostile input, property-based: every input gives a result or one of the documented errors
(a :class:`~connector_core.errors.ConnectorError`), never any other exception.

Covers scope strings, callback URLs and queries, token endpoint responses (any status, headers
and bytes), profile field validation, and the store's decode path (bit-flipped ciphertexts,
wrong key ids, damaged nonces and wrongly typed columns written straight into the database).
The RFC 7636 appendix B PKCE vector is ``tests/test_oauth.py::test_rfc7636_appendix_b_vector``.

Example counts are modest so the default tier stays fast; ``@example`` pins every input that
once broke a parser, so those run on every run.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from connector_core import Plugins, Store, load_plugins, oauth, validate_profile
from connector_core import cli as cli_module
from connector_core.crypto import CryptoError
from connector_core.errors import ConnectorError, ScopeError, ValidationError
from connector_core.models import SCOPE_TOKEN_RE, ClientAuthMethod, ProviderDeclaration
from connector_core.oauth import OAuthError, TokenSet
from connector_core.profiles import ENDPOINT_NAMES
from connector_core.scopes import MAX_SCOPES, parse_scopes
from connector_core.secret import Secret

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STORE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


_T = TypeVar("_T")
_E = TypeVar("_E", bound=ConnectorError)


def outcome(call: Callable[[], _T], error: type[_E]) -> _T | _E:
    """What ``call`` returns, or the documented error it raises; anything else propagates."""
    try:
        return call()
    except error as exc:
        return exc


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    from connector_hibob import plugin

    return load_plugins([plugin], entry_points=False)


@pytest.fixture(scope="module")
def declarations(plugins: Plugins) -> dict[str, ProviderDeclaration]:
    """HiBob's declaration, and the same with no value patterns (as a third-party plugin may declare)."""
    hibob = plugins.declaration("hibob")
    loose = attrs.evolve(hibob, credential_fields=tuple(attrs.evolve(f, pattern=None) for f in hibob.credential_fields))
    return {"hibob": hibob, "no-patterns": loose}


# --------------------------------------------------------------------------- scopes

scope_text = st.text(
    alphabet=st.sampled_from([*"abc:._-", " ", ",", "\n", "\t", '"', "\\", "\x00", "\u00e9", "\udc80", "\u3000"]),
    max_size=40,
)


@FAST
@given(value=st.one_of(st.text(), scope_text, st.lists(st.one_of(st.text(), scope_text), max_size=5)))
@example(value=" ".join(["a:read"] * (MAX_SCOPES + 1)))
@example(value="employee_data:read\u3000goals:read")
def test_parse_scopes(value: str | list[str]) -> None:
    parsed = outcome(lambda: parse_scopes(value), ScopeError)
    if isinstance(parsed, ScopeError):
        assert parsed.field == "scopes" and "\n" not in str(parsed)
        return
    assert isinstance(parsed, tuple) and 0 < len(parsed) <= MAX_SCOPES
    assert all(SCOPE_TOKEN_RE.fullmatch(token) for token in parsed)
    assert parse_scopes(" ".join(parsed)) == parsed  # what it returns, it reads back the same


@FAST
@given(value=st.lists(st.one_of(st.text(), st.integers(), st.none(), st.binary()), min_size=1, max_size=4))
def test_parse_scopes_wrong_types(value: list[Any]) -> None:
    result = outcome(lambda: parse_scopes(value), ScopeError)
    assert isinstance(result, ScopeError) or all(isinstance(t, str) for t in result)


# ------------------------------------------------------------------------ callbacks

CALLBACK_KEYS = ["code", "state", "iss", "error", "error_description", "access_token", "refresh_token", "x"]
pieces = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["%", "%zz", "%00", "%ff", "%ed%b2%80", "&", "=", "#", "?", "[", "]", "::1", "\udc80", "\uff03"]),
)
query = st.lists(st.tuples(st.sampled_from(CALLBACK_KEYS), pieces).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=6).map(
    "&".join
)
callback_url = st.builds(
    lambda scheme, host, path, q, frag: f"{scheme}{host}{path}?{q}{frag}",
    st.sampled_from(["https://", "http://", "", "//", "javascript:"]),
    st.one_of(st.sampled_from(["platform.example", "127.0.0.1:8080", "[::1]:9", "[", "[abc]", "a\uff03b"]), pieces),
    st.sampled_from(["/cb", "", "/a/../b", "/%2e%2e/"]),
    query,
    st.sampled_from(["", "#frag", "#code=stolen"]),
)


@FAST
@given(callback=st.one_of(st.text(), query, callback_url))
@example(callback="http://[::1/cb?code=x&state=y")
@example(callback="http://[abc]/cb?code=x&state=y")
@example(callback="https://a\uff03b/cb?code=x&state=y")
@example(callback="?code=x&state=a\udc80")
@example(callback="?" + "&".join(f"k{i}=v" for i in range(60)))
@example(callback="https://p.example/cb#code=x&state=y")
def test_parse_callback_url(callback: str) -> None:
    params = outcome(lambda: oauth.parse_callback(callback), OAuthError)
    if isinstance(params, OAuthError):
        assert "\n" not in str(params) and params.error == "invalid_request"
        return
    _check_callback(params)


@FAST
@given(callback=st.dictionaries(st.one_of(st.sampled_from(CALLBACK_KEYS), st.text(max_size=5)), pieces, max_size=6))
@example(callback={"code": "c", "state": "s\udc80"})
def test_parse_callback_mapping(callback: dict[str, str]) -> None:
    params = outcome(lambda: oauth.parse_callback(callback), OAuthError)
    if isinstance(params, OAuthError):
        assert params.error == "invalid_request"
        return
    _check_callback(params)


def _check_callback(params: oauth.CallbackParams) -> None:
    for text in (params.state, params.iss, params.error, params.error_description):
        if text is not None:
            text.encode("utf-8")  # usable: hashing the state, comparing iss, printing the error
    for text in (params.error, params.error_description):
        assert text is None or all(0x20 <= ord(ch) < 0x7F for ch in text)  # printable ASCII only
    if params.state is not None:
        oauth.state_hash(params.state)
    assert "stolen" not in repr(params)  # nothing from a fragment, no tokens, no code in a repr


# ------------------------------------------------------------------ token responses

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**400),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
json_value = st.recursive(
    json_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
)
token_keys = st.sampled_from(
    ["access_token", "token_type", "expires_in", "refresh_token", "scope", "error", "error_description", "companyId"]
)
token_json = st.dictionaries(token_keys, json_value, max_size=7).map(lambda d: json.dumps(d).encode())
plausible = st.fixed_dictionaries(
    {"access_token": st.text(min_size=1, max_size=8), "token_type": st.sampled_from(["bearer", "Bearer", "mac"])},
    optional={
        "expires_in": json_value,
        "refresh_token": json_value,
        "scope": json_value,
        "companyId": json_value,
    },
).map(lambda d: json.dumps(d).encode())
bodies = st.one_of(
    st.binary(max_size=200),
    token_json,
    plausible,
    st.sampled_from([b"", b"<html>502</html>", b'{"access_token": "a"', b"[" * 5000, b"\xff\xfe", b"null"]),
)
headers = st.dictionaries(
    st.sampled_from(["retry-after", "x-ratelimit-reset", "content-type", "www-authenticate"]),
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(["1", "-1", "1e400", "nan", "inf", "Mon, 01 Jan 0001 00:00:00 GMT", "\u0663", "99" * 30]),
    ),
    max_size=3,
)
EXPIRES_9_400 = b'{"access_token": "a", "token_type": "bearer", "expires_in": ' + b"9" * 400 + b"}"


@FAST
@given(status=st.one_of(st.just(200), st.integers(min_value=100, max_value=599)), headers=headers, body=bodies)
@example(status=200, headers={}, body=EXPIRES_9_400)
@example(status=200, headers={}, body=b"[" * 100_000)
@example(status=400, headers={}, body=b"[" * 100_000)
@example(status=200, headers={}, body=b'{"access_token": "a", "token_type": "bearer", "expires_in": 1e400}')
@example(status=503, headers={"retry-after": "Mon, 01 Jan 99999 00:00:00 GMT"}, body=b"")
def test_parse_token_response(status: int, headers: dict[str, str], body: bytes) -> None:
    tokens = outcome(lambda: oauth.parse_token_response(status, headers, body, sent_at=1000.0), OAuthError)
    if isinstance(tokens, OAuthError):
        assert "\n" not in str(tokens)
        if isinstance(tokens, oauth.TransientError) and tokens.retry_after is not None:
            assert tokens.retry_after >= 0  # never negative, never NaN
        return
    assert isinstance(tokens, TokenSet) and status == 200
    assert tokens.access_token.reveal() and tokens.token_type == "Bearer"
    assert tokens.expires_at is None or (math.isfinite(tokens.expires_at) and tokens.expires_at >= 1000.0)
    assert all(k not in ("access_token", "refresh_token", "id_token") for k, _ in tokens.extra)


@FAST
@given(headers=headers, now=st.floats(min_value=0, max_value=4e9))
@example(headers={"retry-after": "\u00b9"}, now=0.0)  # a digit to str.isdigit(), not to float()
def test_retry_after_is_a_delay_or_none(headers: dict[str, str], now: float) -> None:
    value = oauth.retry_after(headers, now)
    assert value is None or value >= 0  # never negative, never NaN


# ------------------------------------------------------------ profile validation

field_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "x" * 5000, "a\x00b", "\udc80", "https://[::1/", "https://a\uff03b/", "http://10.0.0.1/"]
    ),
)


@FAST
@given(value=field_text)
def test_credential_field_check(plugins: Plugins, value: str) -> None:
    for field in plugins.declaration("hibob").credential_fields:
        cleaned = outcome(partial(field.check, value), ValidationError)
        if isinstance(cleaned, ValidationError):
            assert cleaned.field == field.name
            if field.secret and value.strip():
                assert repr(value.strip()) not in str(cleaned)  # a secret is never quoted back
            continue
        assert cleaned == value.strip() and cleaned


GOOD_VALUES = {
    "app_id": ["APP-1", "a" * 200],
    "client_id": ["client.id:1"],
    "client_secret": ["Secret-1234567", "!" * 8, "~" * 512],
}


@pytest.fixture(scope="module")
def profile_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    home = tmp_path_factory.mktemp("profiles")
    with Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": str(home / "keys.json")}) as store:
        yield store


@STORE
@given(
    which=st.sampled_from(["hibob", "no-patterns"]),
    name=st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), st.text(max_size=10)),
    environment=st.sampled_from([None, "sandbox", "production", "nope"]),
    values=st.fixed_dictionaries(
        {name: st.one_of(st.sampled_from(good), field_text) for name, good in GOOD_VALUES.items()},
        optional={"nope": field_text},
    ),
    scopes=st.one_of(st.none(), st.sampled_from(["employee_data:read", "goals:read x"]), scope_text),
    endpoints=st.dictionaries(
        st.sampled_from([*ENDPOINT_NAMES, "nope"]),
        st.one_of(st.none(), st.sampled_from(["https://api.example/v1", "http://127.0.0.1:9/x"]), field_text),
        max_size=3,
    ),
)
@example(
    which="no-patterns",
    name="surrogate",
    environment="sandbox",
    values={"app_id": "A", "client_id": "c", "client_secret": "s\udc80"},
    scopes=None,
    endpoints={},
)
@example(
    which="hibob",
    name="bad-url",
    environment="sandbox",
    values={"app_id": "A", "client_id": "c", "client_secret": "s"},
    scopes=None,
    endpoints={"token_url": "https://a\uff03b/"},
)
def test_validate_and_store_profile(
    declarations: dict[str, ProviderDeclaration],
    profile_store: Store,
    which: str,
    name: str,
    environment: str | None,
    values: dict[str, str],
    scopes: str | list[str] | None,
    endpoints: dict[str, str | None],
) -> None:
    draft = outcome(
        lambda: validate_profile(
            declarations[which], name=name, environment=environment, values=values, scopes=scopes, endpoints=endpoints
        ),
        ConnectorError,
    )
    if isinstance(draft, ConnectorError):
        assert "\n" not in str(draft)
        return
    # What validation accepts, the store keeps and gives back; or it refuses it with a ConnectorError.
    try:
        profile = profile_store.create_profile(draft)
    except ConnectorError:
        return
    again = profile_store.get_profile(profile.name)
    assert again.values == draft.values and again.scopes == draft.scopes and again.secrets == draft.secrets
    for key, url in again.endpoints:
        if key != "redirect_uri":
            with contextlib.suppress(OAuthError):  # refusing a URL is fine; crashing on it is not
                oauth.revocation_request(
                    url,
                    token=Secret("t"),
                    token_type_hint="x",
                    client_id="c",
                    client_secret=None,
                    method=ClientAuthMethod.CLIENT_SECRET_BASIC,
                )
    profile_store.delete_profile(profile.name)


# --------------------------------------------------------------- the store's decode path


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory, plugins: Plugins) -> Iterator[tuple[Store, str]]:
    """A store with a profile (its client secret) and a connection (access and refresh tokens)."""
    home = tmp_path_factory.mktemp("decode")
    store = Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": str(home / "keys.json")})
    draft = validate_profile(
        plugins.declaration("hibob"),
        name="victim",
        environment="sandbox",
        values={"app_id": "APP", "client_id": "cid", "client_secret": "the-client-secret"},
    )
    profile = store.create_profile(draft)
    tokens = TokenSet(
        access_token=Secret("the-access-token"),
        token_type="Bearer",
        refresh_token=Secret("the-refresh-token"),
        expires_at=None,
    )
    conn = store.save_connection(
        profile, tokens, requested=(), granted=(), identity={}, provider_initiated=False, reason="test"
    )
    yield store, conn.id
    store.close()


def _rows(store: Store) -> list[tuple[Any, ...]]:
    with store._read() as db:
        return db.execute(
            "SELECT rowid, owner_id, name, key_id, nonce, ciphertext FROM secrets ORDER BY rowid"
        ).fetchall()


def _read_everything(store: Store, cid: str) -> None:
    store.get_profile("victim")
    store.get_tokens(cid)
    store.rotate_keys(new_key=False)


damage = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=7)),
    st.tuples(st.just("nonce"), st.binary(max_size=24), st.none()),
    st.tuples(st.just("key_id"), st.text(max_size=20), st.none()),
    st.tuples(st.just("ciphertext"), st.binary(max_size=40), st.none()),
    st.tuples(st.just("swap"), st.integers(min_value=0, max_value=10), st.none()),
    st.tuples(
        st.just("type"),
        st.sampled_from(["nonce", "ciphertext", "key_id"]),
        st.one_of(
            st.text(max_size=12),
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.floats(allow_nan=False),  # NaN is stored as NULL, which the schema refuses
        ),
    ),
)


@STORE
@given(row=st.integers(min_value=0, max_value=10), change=damage)
@example(row=0, change=("type", "nonce", "twelve chars"))
@example(row=1, change=("type", "ciphertext", 12))
@example(row=2, change=("type", "nonce", -1))
@example(row=0, change=("type", "nonce", 2**62))
@example(row=0, change=("nonce", b"short", None))
@example(row=1, change=("key_id", "0000000000000000", None))
def test_store_decode_path(damaged: tuple[Store, str], row: int, change: tuple[Any, Any, Any]) -> None:
    store, cid = damaged
    rows = _rows(store)
    rowid, _, _, key_id, nonce, ciphertext = rows[row % len(rows)]
    kind, a, b = change
    column, value = "ciphertext", ciphertext
    if kind == "flip":
        data = bytearray(ciphertext)
        data[a % len(data)] ^= 1 << b
        value = bytes(data)
    elif kind == "nonce":
        column, value = "nonce", a
    elif kind == "key_id":
        column, value = "key_id", a
    elif kind == "ciphertext":
        value = a
    elif kind == "swap":
        value = rows[a % len(rows)][5]
    else:
        column, value = a, b
    assume(value != {"ciphertext": ciphertext, "nonce": nonce, "key_id": key_id}[column])
    with store._write() as db:
        db.execute(f"UPDATE secrets SET {column} = ? WHERE rowid = ?", (value, rowid))
    try:
        with pytest.raises(CryptoError) as info:  # a damaged value never decrypts to anything
            _read_everything(store, cid)
        assert "\n" not in str(info.value) and "cannot decrypt" in str(info.value)
        for secret in ("the-client-secret", "the-access-token", "the-refresh-token"):
            assert secret not in str(info.value)
    finally:
        with store._write() as db:
            db.execute(
                "UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ? WHERE rowid = ?",
                (key_id, nonce, ciphertext, rowid),
            )
    _read_everything(store, cid)  # repaired, everything reads again


def test_damaged_token_through_the_cli(damaged: tuple[Store, str], plugins: Plugins, monkeypatch: Any) -> None:
    store, cid = damaged
    rowid, nonce = next((r[0], r[4]) for r in _rows(store) if r[1] == cid and r[2] == "access_token")
    with store._write() as db:
        db.execute("UPDATE secrets SET nonce = 'not bytes' WHERE rowid = ?", (rowid,))
    monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(store.path.parent / "keys.json"))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli_module.main(["--home", str(store.path.parent), "request", cid, "GET", "/x"], plugins=plugins)
    finally:
        with store._write() as db:
            db.execute("UPDATE secrets SET nonce = ? WHERE rowid = ?", (nonce, rowid))
    assert code == 1
    assert err.getvalue() == (
        f"connector: error: cannot decrypt access_token of connection {cid!r}: its stored nonce is damaged\n"
    )
