"""Connect sessions: what a platform may ask for, the token's single use, and how a session ends."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import World

from connector_core import (
    ConnectSessions,
    EndUser,
    Owner,
    Secret,
    SessionError,
    SessionRequest,
    SessionStatus,
    StoreError,
    ValidationError,
)
from connector_core.crypto import ENV_KEY_FILE
from connector_core.sessions import hash_token, redirect_allowed

ADA = EndUser("user-ada", "ada@example.com", "Ada")
ALLOW = ("https://app.example.com/connect", "http://localhost:8000/")


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World(tmp_path, "acme-sandbox") as w:
        yield w


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sessions(world: World, clock: Clock) -> ConnectSessions:
    return ConnectSessions(world.store, world.plugins, redirect_allow_list=ALLOW, clock=clock)


def _request(**kw: Any) -> SessionRequest:
    values: dict[str, Any] = {"end_user": ADA, "providers": ("hibob",)}
    values.update(kw)
    return SessionRequest(**values)


def _authorize(world: World, owner: Owner) -> str:
    start = world.connector.begin(world.profile, owner=owner)
    return world.connector.complete(world.consent(start.url)).connection.id


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"end_user": None}, "end_user.id"),
        ({"end_user": EndUser("user-ada"), "organisation": "has space"}, "organisation"),
        ({"tags": ("Not A Tag",)}, "tags"),
        ({"tags": "abc"}, "tags"),
        ({"expires_in": 59}, "expires_in"),
        ({"expires_in": 86401}, "expires_in"),
        ({"expires_in": True}, "expires_in"),
        ({"scopes": "bad\\scope"}, "scopes"),
    ],
)
def test_a_request_is_checked_as_it_is_built(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _request(**kw)
    assert caught.value.field == field and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"providers": ("nope",)}, "providers"),
        ({"providers": ()}, "providers"),
        ({"providers": (), "profile": "missing"}, "profile"),
        ({"scopes": ("no_such:scope",)}, "scopes"),
        ({"connection_id": "conn_missing"}, "connection_id"),
        ({"redirect_url": "https://evil.example/connect"}, "redirect_url"),
        ({"redirect_url": "/connect/done"}, "redirect_url"),
    ],
)
def test_a_request_is_checked_against_plugins_and_store(
    sessions: ConnectSessions, kw: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        sessions.create(_request(**kw))
    assert caught.value.field == field
    assert sessions.list() == ()  # nothing half-written


def test_a_profile_names_its_provider_and_scopes_are_checked(world: World, sessions: ConnectSessions) -> None:
    session, _ = sessions.create(_request(providers=(), profile=world.profile, scopes="employee_data:read"))
    assert session.providers == ("hibob",) and session.profile == world.profile
    assert session.scopes == ("employee_data:read",)


def test_a_reconnect_is_only_for_the_end_users_own_connection(world: World, sessions: ConnectSessions) -> None:
    ada = _authorize(world, Owner(ADA))
    session, _ = sessions.create(_request(providers=(), connection_id=ada))
    assert (session.connection_id, session.providers, session.profile) == (ada, ("hibob",), world.profile)
    with pytest.raises(ValidationError) as caught:
        sessions.create(_request(end_user=EndUser("user-mallory"), connection_id=ada))
    assert caught.value.field == "connection_id" and "of this end user" in caught.value.message


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://app.example.com/connect", True),
        ("https://app.example.com/connect/done?x=1", True),
        ("https://APP.example.com:443/connect/", True),
        ("http://localhost:8000/anything", True),
        ("https://app.example.com/connected", False),
        ("https://app.example.com/other", False),
        ("https://app.example.com:8443/connect", False),
        ("http://app.example.com/connect", False),
        ("https://app.example.com.evil.example/connect", False),
        ("https://evil.example@app.example.com/connect", False),
        ("https://app.example.com/connect/../admin", False),
        ("https://app.example.com/connect/%2e%2e/admin", False),
        ("https://app.example.com/connect\\@evil.example", False),
        ("https://app.example.com/connect#frag", False),
        ("javascript:alert(1)", False),
        ("//evil.example/connect", False),
        ("http://localhost:8001/", False),
    ],
)
def test_the_redirect_allow_list_rule(url: str, allowed: bool) -> None:
    if allowed:
        assert redirect_allowed(url, ALLOW) == url
    else:
        with pytest.raises(ValidationError, match=r"^redirect_url: "):
            redirect_allowed(url, ALLOW)


def test_an_empty_allow_list_allows_no_redirect_and_a_bad_entry_is_refused(world: World) -> None:
    with pytest.raises(ValidationError, match="allow-list"):
        ConnectSessions(world.store, world.plugins).create(_request(redirect_url="https://app.example.com/connect"))
    with pytest.raises(ValidationError) as caught:
        ConnectSessions(world.store, world.plugins, redirect_allow_list=("http://app.example.com/",))
    assert caught.value.field == "redirect_allow_list"


def test_a_request_from_a_json_body() -> None:
    body = {"end_user": {"id": "user-ada", "email": "ada@example.com"}, "providers": ["hibob"], "expires_in": 600}
    request = SessionRequest.from_mapping(body)
    assert request.owner == Owner(EndUser("user-ada", "ada@example.com")) and request.expires_in == 600
    for bad, field in (
        ({**body, "surprise": 1}, "surprise"),
        ({**body, "end_user": {}}, "end_user.id"),
        ({**body, "end_user": {"id": "u", "role": "admin"}}, "end_user.role"),
        ({**body, "tags": "one"}, "tags"),
    ):
        with pytest.raises(ValidationError) as caught:
            SessionRequest.from_mapping(bad)
        assert caught.value.field == field


def test_separate_is_a_json_boolean_and_not_for_a_reconnect() -> None:
    body: dict[str, Any] = {"end_user": {"id": "user-ada"}, "providers": ["hibob"]}
    assert SessionRequest.from_mapping(body).separate is False
    assert SessionRequest.from_mapping({**body, "separate": True}).separate is True
    for bad in ("true", 1, 0, None, [True]):
        with pytest.raises(ValidationError) as caught:
            SessionRequest.from_mapping({**body, "separate": bad})
        assert caught.value.field == "separate" and "expected true or false" in caught.value.message
    with pytest.raises(ValidationError) as reconnect:
        SessionRequest.from_mapping({**body, "separate": True, "connection_id": "conn_1"})
    assert reconnect.value.field == "separate" and "connection_id" in reconnect.value.message
    assert "\n" not in str(reconnect.value)
    assert _request(separate=False, connection_id="conn_1").separate is False  # a reconnect as it was


def test_a_separate_session_is_stored_so(world: World, sessions: ConnectSessions) -> None:
    made, token = sessions.create(_request(separate=True))
    assert made.separate and world.store.get_session(made.id).separate
    assert sessions.claim(token).separate
    assert not sessions.create(_request())[0].separate


# ---------------------------------------------------------- profile resolution


def test_a_provider_without_a_profile_named_needs_exactly_one(world: World, sessions: ConnectSessions) -> None:
    session, _ = sessions.create(_request())  # hibob's only profile: the World's
    assert session.profile is None and sessions.profile_for(session, "hibob") == world.profile
    second = world.credential_profile("service_user")  # a second hibob profile
    with pytest.raises(ValidationError) as several:
        sessions.create(_request())
    assert several.value.field == "providers"
    assert several.value.message == (
        f"providers: hibob has several profiles ({', '.join(sorted((world.profile, second)))}): name one with 'profile'"
    )
    # Naming the profile settles it, and the pick then connects through that one.
    named, _ = sessions.create(_request(profile=second))
    assert sessions.profile_for(named, "hibob") == second
    # A session made before the second profile came is asked again when the end user picks.
    with pytest.raises(ValidationError, match=r"^providers: hibob has several profiles"):
        sessions.profile_for(session, "hibob")
    assert len(sessions.list()) == 2  # the refused request stored nothing


def test_a_provider_with_no_profile_is_refused_early(world: World, sessions: ConnectSessions) -> None:
    world.store.delete_profile(world.profile)
    with pytest.raises(ValidationError) as caught:
        sessions.create(_request())
    assert caught.value.field == "providers"
    assert (
        caught.value.message
        == "providers: hibob has no profile yet: create one first (connector profile create hibob ...)"
    )
    assert sessions.list() == ()


def test_the_pick_must_be_one_of_the_sessions_providers(world: World, sessions: ConnectSessions) -> None:
    session, _ = sessions.create(_request())
    with pytest.raises(ValidationError) as caught:
        sessions.profile_for(session, "acme")
    assert caught.value.field == "provider" and "not one of this session's providers" in caught.value.message


# ------------------------------------------------------------------- lifecycle


def test_the_token_is_shown_once_and_stored_hashed(world: World, sessions: ConnectSessions) -> None:
    session, token = sessions.create(_request(redirect_url="https://app.example.com/connect/done"))
    value = token.reveal()
    assert value.startswith("cs_") and len(value) == 46 and repr(token) == "Secret('***')"
    assert session.status is SessionStatus.PENDING and session.owner.end_user == ADA
    assert session.expires_at == 1_900_000_000.0 + 1800
    assert value not in repr(session) and value not in repr(sessions)
    stored = world.store._rows("SELECT * FROM connect_sessions")
    assert value not in json.dumps(stored, default=str) and hash_token(token) in stored[0]
    assert sessions.lookup(token) == session and sessions.lookup(value) == session


def test_a_token_starts_one_flow(sessions: ConnectSessions) -> None:
    _, token = sessions.create(_request())
    claimed = sessions.claim(token)
    assert claimed.status is SessionStatus.USED and claimed.picked_provider == "hibob"
    for again in (lambda: sessions.claim(token), lambda: sessions.lookup(token)):
        with pytest.raises(SessionError) as caught:
            again()
        assert caught.value.code == "used" and token.reveal() not in str(caught.value)
    # Unknown and malformed tokens are one error, which never repeats them.
    for other in ("cs_" + "A" * 43, "cs_short", "", "x" * 5000, Secret("cs_" + "B" * 43)):
        with pytest.raises(SessionError) as unknown:
            sessions.claim(other)
        shown = other.reveal() if isinstance(other, Secret) else other
        assert unknown.value.code == "unknown" and (not shown or shown not in str(unknown.value))


def test_a_session_expires_on_the_clock(sessions: ConnectSessions, clock: Clock) -> None:
    session, token = sessions.create(_request(expires_in=60))
    clock.now += 59
    assert sessions.lookup(token).id == session.id
    clock.now += 1
    assert sessions.get(session.id).status is SessionStatus.EXPIRED
    with pytest.raises(SessionError) as caught:
        sessions.claim(token)
    assert caught.value.code == "expired" and token.reveal() not in str(caught.value)
    assert sessions.store.get_session(session.id).status is SessionStatus.EXPIRED
    clock.now += 10
    assert sessions.purge() == 1 and sessions.list() == ()


def test_a_session_through_an_authorization_and_back(world: World, sessions: ConnectSessions) -> None:
    session, token = sessions.create(
        _request(providers=(), profile=world.profile, redirect_url="https://app.example.com/connect/back")
    )
    claimed = sessions.claim(token)
    assert claimed.picked_profile == world.profile
    cid = _authorize(world, claimed.owner)
    done = sessions.complete(session.id, cid)
    assert done.status is SessionStatus.COMPLETED and done.result_connection_id == cid
    assert sessions.complete(session.id, cid) == done
    with pytest.raises(SessionError) as caught:
        sessions.fail(session.id, "access_denied", "too late")
    assert caught.value.code == "finished"
    assert [c.id for c in world.store.list_connections(end_user="user-ada")] == [cid]


def test_a_failed_session_says_why(sessions: ConnectSessions) -> None:
    session, token = sessions.create(_request())
    sessions.claim(token)
    failed = sessions.fail(session.id, "access_denied", "The end user declined at HiBob.")
    assert (failed.status, failed.error_code) == (SessionStatus.FAILED, "access_denied")
    with pytest.raises(SessionError) as caught:
        sessions.complete(session.id, "conn_x")
    assert caught.value.code == "finished"


def test_the_pick_must_be_allowed(world: World, sessions: ConnectSessions) -> None:
    _, token = sessions.create(_request())
    with pytest.raises(ValidationError) as caught:
        sessions.claim(token, profile="missing")
    assert caught.value.field == "profile"
    claimed = sessions.claim(token, profile=world.profile)
    assert (claimed.picked_provider, claimed.picked_profile) == ("hibob", world.profile)


def test_a_tampered_session_is_refused(world: World, sessions: ConnectSessions) -> None:
    session, token = sessions.create(_request(redirect_url="https://app.example.com/connect"))
    with world.store._write() as tx:
        tx.execute("UPDATE connect_sessions SET redirect_url = 'https://evil.example/'")
    for use in (lambda: sessions.claim(token), lambda: sessions.get(session.id), lambda: sessions.lookup(token)):
        with pytest.raises(StoreError) as caught:
            use()
        assert caught.value.code == "tampered" and token.reveal() not in str(caught.value)


def test_two_processes_claiming_one_token_one_wins(world: World, tmp_path: Path) -> None:
    sessions = ConnectSessions(world.store, world.plugins)
    _, token = sessions.create(_request())
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from connector_core import SessionError
        from connector_core.store import Store
        store = Store.open({str(world.home)!r}, env={{{ENV_KEY_FILE!r}: {str(world.key_file)!r}}})
        while not os.path.exists({str(go)!r}):
            time.sleep(0.005)
        try:
            store.claim_session(sys.stdin.read(), at=time.time())
            print("won")
        except SessionError as exc:
            print(exc.code)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(hash_token(token))
        proc.stdin.close()
    go.touch()
    results = []
    for proc in procs:
        assert proc.stdout is not None and proc.wait(timeout=60) == 0
        results.append(proc.stdout.read().strip())
    assert sorted(results) == ["used", "won"]
