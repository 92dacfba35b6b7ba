"""The fault matrix: connect, refresh, revoke, the connection test and API calls against the
emulator's fault injection. Each case checks the documented outcome (retried with bounded
backoff, or one clear error line), the connection's state, and that no token was lost.

docs/reliability.md lists every case with its outcome; keep the two in step.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import httpx
import pytest
from support import PLATFORM_REDIRECT, REPO, World

from connector_core import Store, load_plugins, oauth, validate_profile
from connector_core import cli as cli_module
from connector_core import connector as connector_module
from connector_core.connection import ConnectionStatus
from connector_core.connector import Connector, ReconnectRequired, RequestFailed
from connector_core.emulator import RunningEmulator
from connector_core.errors import OutcomeUnknown, ValidationError
from connector_core.secret import Secret
from connector_core.testing import http_client

REDIRECT = PLATFORM_REDIRECT
PROFILE = "acme"
#: The read timeout of the client under test; the emulator's ``slow`` fault waits longer than this.
READ_TIMEOUT = 0.5
SLOW = 1.2


class StripRetryAfter(httpx.BaseTransport):
    """Removes ``Retry-After`` from responses, leaving HiBob's ``X-RateLimit-Reset`` alone."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if "retry-after" in response.headers:
            del response.headers["retry-after"]
        return response

    def close(self) -> None:
        self._inner.close()


@attrs.define
class Waits:
    """Every backoff the engine asked for: ``(attempt, retry_after, delay)``. Tests sleep none of it."""

    calls: list[tuple[int, float | None, float]] = attrs.field(factory=list)

    @property
    def retry_afters(self) -> list[float | None]:
        return [r for _, r, _ in self.calls]


class FaultWorld(World):
    """The world of these tests: the connector under test has a short read timeout (the
    emulator's ``slow`` fault waits longer), ``steady`` has default timeouts for setting
    up and checking afterwards, so a busy machine cannot fail a test."""

    def __init__(self, folder: Path, waits: Waits, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(folder, PROFILE)
        self.steady = self.connector
        self.connector = Connector(self.store, self.plugins, client=_client(transport))
        self.waits = waits

    def close(self, *, check: bool = True) -> None:
        self.steady.close()
        super().close(check=check)
        self.store.close()


def _client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return http_client(timeout=httpx.Timeout(5.0, read=READ_TIMEOUT), follow_redirects=False, transport=transport)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connect(world: FaultWorld) -> str:
    return world.connect(connector=world.steady).connection.id


def set_endpoint(world: FaultWorld, name: str, url: str) -> None:
    prof = world.store.get_profile(PROFILE)
    draft = validate_profile(world.plugins.declaration("hibob"), name=PROFILE, previous=prof, endpoints={name: url})
    world.store.update_profile(PROFILE, draft)


def refresh_tokens(world: FaultWorld, cid: str) -> tuple[str | None, str | None]:
    _, access, refresh = world.store.get_tokens(cid)
    return (access.reveal() if access else None, refresh.reveal() if refresh else None)


def assert_still_works(world: FaultWorld, cid: str) -> None:
    """The connection is usable and its stored refresh token is the live one."""
    world.emu.faults.clear()
    before = world.emu.stats.token_requests.get("refresh_token", 0)
    conn = world.steady.refresh(cid, force=True)
    assert conn.status is ConnectionStatus.CONNECTED
    assert world.emu.stats.token_requests["refresh_token"] == before + 1
    assert world.steady.request(cid, "GET", "/company/named-lists").status == 200


def settle(world: FaultWorld, endpoint: str) -> None:
    """Wait until the emulator has answered every request to ``endpoint`` (``token``,
    ``revoke`` or ``api``), the slow ones included, whose clients gave up long ago."""
    marker = {"token": "/oauth2/token ", "revoke": "/oauth2/revoke ", "api": "/api/"}[endpoint]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = world.emu.stats
        received = {
            "token": sum(stats.token_requests.values()),
            "revoke": stats.revocation_requests,
            "api": sum(stats.resource_calls.values()),
        }[endpoint]
        if sum(1 for line in list(world.log) if marker in line) >= received:
            return
        time.sleep(0.05)
    raise AssertionError(f"the emulator did not answer every {endpoint} request")


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Waits:
    """Records the backoffs instead of sleeping them. Also lifts the hold-off after a lost
    refresh reply, so a test can check that the connection still works afterwards (the
    hold-off itself is tested with it in place: ``test_no_second_refresh_while_a_lost_one_may_be_in_flight``)."""
    monkeypatch.setattr(connector_module, "LOST_HOLD", 0.0)
    record = Waits()
    real = connector_module._backoff

    def backoff(attempt: int, retry_after: float | None) -> float:
        delay = real(attempt, retry_after)
        record.calls.append((attempt, retry_after, delay))
        return 0.0

    monkeypatch.setattr(connector_module, "_backoff", backoff)
    return record


def _world(tmp_path: Path, waits: Waits, transport: httpx.BaseTransport | None = None) -> Iterator[FaultWorld]:
    with FaultWorld(tmp_path, waits, transport) as world:
        yield world


@pytest.fixture
def world(tmp_path: Path, waits: Waits) -> Iterator[FaultWorld]:
    yield from _world(tmp_path, waits)


@pytest.fixture
def reset_world(tmp_path: Path, waits: Waits) -> Iterator[FaultWorld]:
    """A world whose client never sees ``Retry-After``: only ``X-RateLimit-Reset`` is left."""
    yield from _world(tmp_path, waits, StripRetryAfter())


# ------------------------------------------------------------------------ refresh

#: (fault, arm, requests the emulator sees) for faults a refresh recovers from by itself.
REFRESH_RECOVERS: list[tuple[str, Callable[[RunningEmulator], None], int]] = [
    ("503 once", lambda e: e.faults.status("token", 503), 2),
    ("429 Retry-After seconds", lambda e: e.faults.rate_limited("token", retry_after=1), 2),
    ("429 Retry-After HTTP-date", lambda e: e.faults.rate_limited("token", retry_after=1, http_date=True), 2),
]


@pytest.mark.parametrize(("name", "arm", "requests"), REFRESH_RECOVERS, ids=[c[0] for c in REFRESH_RECOVERS])
def test_refresh_recovers(world: FaultWorld, name: str, arm: Callable[[RunningEmulator], None], requests: int) -> None:
    cid = connect(world)
    _, old_refresh = refresh_tokens(world, cid)
    arm(world.emu)
    conn = world.connector.refresh(cid, force=True)
    assert conn.status is ConnectionStatus.CONNECTED and conn.refreshed_at is not None
    assert world.emu.stats.token_requests["refresh_token"] == requests
    assert refresh_tokens(world, cid)[1] != old_refresh  # the rotated token was persisted
    assert len(world.waits.calls) == requests - 1
    if name.startswith("429"):
        (retry_after,) = world.waits.retry_afters
        assert retry_after is not None and 0.0 <= retry_after <= 1.0  # Retry-After was honoured, not guessed
    else:
        assert all(delay <= connector_module.MAX_BACKOFF for _, _, delay in world.waits.calls)
    assert_still_works(world, cid)


def test_refresh_429_x_ratelimit_reset(reset_world: World) -> None:
    world = reset_world
    cid = connect(world)
    world.emu.faults.rate_limited("token", retry_after=1)
    world.connector.refresh(cid, force=True)
    (retry_after,) = world.waits.retry_afters
    assert retry_after is not None and 0.0 <= retry_after <= 1.0  # from X-RateLimit-Reset (epoch seconds)
    assert world.emu.stats.token_requests["refresh_token"] == 2
    assert_still_works(world, cid)


#: (fault, arm, requests, message) for faults that outlast the retries, or whose reply is lost
#: once the request reached the provider (never sent again: the outcome is unknown): a clear
#: error, nothing lost.
REFRESH_FAILS: list[tuple[str, Callable[[RunningEmulator], None], int, str]] = [
    ("500 once", lambda e: e.faults.status("token", 500), 1, "refresh: the provider answered 500"),
    ("502 once", lambda e: e.faults.status("token", 502), 1, "refresh: the provider answered 502"),
    ("dropped connection once", lambda e: e.faults.drop_connection("token"), 1, "refresh: the connection to 127.0.0.1"),
    ("HTML 502 once", lambda e: e.faults.html_error("token", 502), 1, "refresh: the provider answered 502"),
    (
        "oversized body once",
        lambda e: e.faults.oversized("token", 512 * 1024),
        1,
        "refresh: the response is larger than 256 KiB",
    ),
    ("500 always", lambda e: e.faults.status("token", 500, times=None), 1, "refresh: the provider answered 500"),
    ("502 always", lambda e: e.faults.status("token", 502, times=None), 1, "refresh: the provider answered 502"),
    ("503 always", lambda e: e.faults.status("token", 503, times=None), 4, "refresh: the provider answered 503"),
    (
        "429 always",
        lambda e: e.faults.rate_limited("token", retry_after=1, times=None),
        4,
        "refresh: the provider rate limited (429)",
    ),
    (
        "dropped connection always",
        lambda e: e.faults.drop_connection("token", times=None),
        1,
        "refresh: the connection to 127.0.0.1",
    ),
    (
        "HTML 400",
        lambda e: e.faults.html_error("token", 400),
        1,
        "refresh: the provider answered 400 with an HTML page",
    ),
    (
        "oversized body always",
        lambda e: e.faults.oversized("token", 512 * 1024, times=None),
        1,
        "refresh: the response is larger than 256 KiB",
    ),
]


@pytest.mark.parametrize(("name", "arm", "requests", "message"), REFRESH_FAILS, ids=[c[0] for c in REFRESH_FAILS])
def test_refresh_fails_cleanly_and_keeps_the_token(
    world: FaultWorld, name: str, arm: Callable[[RunningEmulator], None], requests: int, message: str
) -> None:
    cid = connect(world)
    before = world.store.get_connection(cid)
    tokens = refresh_tokens(world, cid)
    arm(world.emu)
    with pytest.raises(oauth.OAuthError) as info:
        world.connector.refresh(cid, force=True)
    text = str(info.value)
    assert message in text and "\n" not in text
    if isinstance(info.value, oauth.TransientError):
        assert f"(after {requests} attempt(s))" in text
    assert world.emu.stats.token_requests["refresh_token"] == requests
    after = world.store.get_connection(cid)
    assert after.status is ConnectionStatus.CONNECTED and after.token_version == before.token_version
    if isinstance(info.value, OutcomeUnknown):  # the reply was lost: the connection says so
        assert "may have acted on it, so it was not sent again" in text
        assert after.status_reason == connector_module.LOST_REPLY
    else:
        assert after.status_reason == before.status_reason
    assert refresh_tokens(world, cid) == tokens  # nothing was overwritten
    assert all(r is None or r <= connector_module.MAX_RETRY_AFTER for r in world.waits.retry_afters)
    assert all(d <= connector_module.MAX_RETRY_AFTER for _, _, d in world.waits.calls)
    with world.store._write() as db:  # the lease was released
        assert db.execute("SELECT lock_owner FROM connections WHERE id = ?", (cid,)).fetchone() == (None,)
    assert_still_works(world, cid)


def test_refresh_token_endpoint_unreachable(world: FaultWorld) -> None:
    cid = connect(world)
    tokens = refresh_tokens(world, cid)
    good = world.emu.endpoints("sandbox").token_url
    set_endpoint(world, "token_url", f"http://127.0.0.1:{closed_port()}/oauth2/token")
    with pytest.raises(oauth.TransientError, match=r"refresh: cannot connect to 127\.0\.0\.1:\d+ \(after 4 attempt"):
        world.connector.refresh(cid, force=True)
    assert len(world.waits.calls) == 3  # the request surely never arrived: retried, bounded
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED
    assert refresh_tokens(world, cid) == tokens
    set_endpoint(world, "token_url", good)
    assert_still_works(world, cid)


LOST_AND_ROTATED = (
    r"refresh refused \(.*\) after an earlier refresh's reply was lost: the provider had acted on that one"
)


def _lost_then_refused(world: FaultWorld, cid: str, message: str, *, slow: bool = False) -> None:
    """The first refresh's reply is lost after the provider rotated: one request only, a
    clear error that says the outcome is unknown, never a success, the connection still as it
    was but saying so; the next refresh (the old token, refused) says what happened."""
    before = world.store.get_connection(cid)
    tokens = refresh_tokens(world, cid)
    with pytest.raises(OutcomeUnknown, match=message) as info:
        world.connector.refresh(cid, force=True)
    assert "may have acted on it, so it was not sent again" in str(info.value)
    assert world.emu.stats.token_requests["refresh_token"] == 1  # never a second in flight
    after = world.store.get_connection(cid)
    assert after.status is ConnectionStatus.CONNECTED and after.token_version == before.token_version
    assert after.status_reason == connector_module.LOST_REPLY and refresh_tokens(world, cid) == tokens
    if slow:
        settle(world, "token")  # the provider answers the slow request late, having rotated
    with pytest.raises(ReconnectRequired, match=LOST_AND_ROTATED):
        world.steady.refresh(cid, force=True)
    assert world.emu.stats.token_requests["refresh_token"] == 2
    assert world.store.get_connection(cid).status is ConnectionStatus.NEEDS_RECONNECT


def test_refresh_read_timeout_is_not_retried(world: FaultWorld) -> None:
    """The provider acts on a request whose answer comes after the client's read timeout:
    sending the same refresh token again at once would be a second refresh in flight, which a
    rotating provider takes for a replay. Not retried; the outcome is reported as unknown."""
    cid = connect(world)
    world.emu.faults.slow("token", SLOW)
    _lost_then_refused(world, cid, r"refresh: timed out talking to .*\(after 1 attempt\(s\)\)", slow=True)


def test_refresh_read_timeout_always_loses_the_grant_visibly(world: FaultWorld) -> None:
    """With the provider slow every time, the grant is lost (it rotated on the first request):
    a clear timeout error, then ``needs_reconnect`` on the next refresh, saying why."""
    cid = connect(world)
    world.emu.faults.slow("token", SLOW, times=2)
    _lost_then_refused(world, cid, r"refresh: timed out talking to .*\(after 1 attempt\(s\)\)", slow=True)


def test_refresh_lost_response_is_not_retried_then_needs_reconnect(world: FaultWorld) -> None:
    """The provider rotated, the answer was lost (the connection dropped after processing):
    not retried with the same token; the next refresh is refused and the connection says why."""
    cid = connect(world)
    world.emu.faults.drop_connection("token", after_processing=True)
    _lost_then_refused(world, cid, r"refresh: the connection to 127\.0\.0\.1:\d+ failed")


def test_refresh_truncated_json_is_a_lost_response(world: FaultWorld) -> None:
    """A 200 whose JSON is cut short: the provider rotated the refresh token. It must not be
    reported as a success, nor retried; the next refresh says the grant was lost that way."""
    cid = connect(world)
    world.emu.faults.truncated_json("token")
    _lost_then_refused(world, cid, "refresh: the provider answered 200 with a body that is not a JSON object")


def test_no_second_refresh_while_a_lost_one_may_be_in_flight(
    world: FaultWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a lost reply, another refresher (here: another connector on the same store)
    sends nothing: the first request may still be processed by the provider."""
    monkeypatch.setattr(connector_module, "LOST_HOLD", 600.0)
    cid = connect(world)
    world.emu.faults.slow("token", SLOW)
    with pytest.raises(OutcomeUnknown):
        world.connector.refresh(cid, force=True)
    with pytest.raises(oauth.TransientError, match=r"a refresh whose reply was lost \d+ s ago .*no other is sent"):
        world.steady.refresh(cid, force=True)
    settle(world, "token")
    assert world.emu.stats.token_requests["refresh_token"] == 1
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED


# ----------------------------------------------------------------- code exchange


def _exchange(world: FaultWorld) -> tuple[str, int]:
    """Consent, and return the callback with the number of code exchanges so far."""
    start = world.connector.begin(PROFILE)
    return world.consent(start.url), world.emu.stats.token_requests.get("authorization_code", 0)


CONNECT_RECOVERS: list[tuple[str, Callable[[RunningEmulator], None]]] = [
    ("503 once", lambda e: e.faults.status("token", 503)),
    ("429 Retry-After seconds", lambda e: e.faults.rate_limited("token", retry_after=1)),
    ("429 Retry-After HTTP-date", lambda e: e.faults.rate_limited("token", retry_after=1, http_date=True)),
]


@pytest.mark.parametrize(("name", "arm"), CONNECT_RECOVERS, ids=[c[0] for c in CONNECT_RECOVERS])
def test_connect_retries_when_the_provider_did_not_act(
    world: FaultWorld, name: str, arm: Callable[[RunningEmulator], None]
) -> None:
    location, before = _exchange(world)
    arm(world.emu)
    conn = world.connector.complete(location, profile=PROFILE).connection
    assert conn.status is ConnectionStatus.CONNECTED
    assert world.emu.stats.token_requests["authorization_code"] == before + 2
    if name.startswith("429"):
        (retry_after,) = world.waits.retry_afters
        assert retry_after is not None and 0.0 <= retry_after <= 1.0
    assert_still_works(world, conn.id)


def test_connect_429_x_ratelimit_reset(reset_world: World) -> None:
    world = reset_world
    location, before = _exchange(world)
    world.emu.faults.rate_limited("token", retry_after=1)
    conn = world.connector.complete(location, profile=PROFILE).connection
    (retry_after,) = world.waits.retry_afters
    assert retry_after is not None and 0.0 <= retry_after <= 1.0
    assert world.emu.stats.token_requests["authorization_code"] == before + 2
    assert_still_works(world, conn.id)


#: Faults after which the code may have been used: never exchanged twice (a replayed code
#: revokes the grant, RFC 6749 §4.1.2), nothing stored, a clear error.
CONNECT_NOT_REPLAYED: list[tuple[str, Callable[[RunningEmulator], None], str]] = [
    ("500", lambda e: e.faults.status("token", 500), "code exchange: the provider answered 500"),
    ("502", lambda e: e.faults.status("token", 502), "code exchange: the provider answered 502"),
    ("HTML 502", lambda e: e.faults.html_error("token", 502), "code exchange: the provider answered 502"),
    (
        "500 after processing",
        lambda e: e.faults.status("token", 500, after_processing=True),
        "code exchange: the provider answered 500",
    ),
    ("dropped connection", lambda e: e.faults.drop_connection("token"), "code exchange: the connection to"),
    (
        "dropped after processing",
        lambda e: e.faults.drop_connection("token", after_processing=True),
        "code exchange: the connection to",
    ),
    ("read timeout", lambda e: e.faults.slow("token", SLOW), "code exchange: timed out talking to"),
    ("truncated JSON", lambda e: e.faults.truncated_json("token"), "code exchange: the provider answered 200"),
    ("oversized body", lambda e: e.faults.oversized("token", 512 * 1024), "code exchange: the response is larger"),
]


@pytest.mark.parametrize(("name", "arm", "message"), CONNECT_NOT_REPLAYED, ids=[c[0] for c in CONNECT_NOT_REPLAYED])
def test_connect_never_replays_a_code(
    world: FaultWorld, name: str, arm: Callable[[RunningEmulator], None], message: str
) -> None:
    location, before = _exchange(world)
    arm(world.emu)
    with pytest.raises(oauth.OAuthError) as info:
        world.connector.complete(location, profile=PROFILE)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert world.emu.stats.token_requests["authorization_code"] == before + 1
    assert world.store.list_connections() == ()
    if name == "read timeout":
        settle(world, "token")
    assert world.emu.stats.token_requests["authorization_code"] == before + 1


def test_connect_read_timeout_never_reports_a_dead_connection(world: FaultWorld) -> None:
    """Found by the fault matrix: after a read timeout the code exchange was retried, the
    retry succeeded, and the late first request then replayed the code, so the provider
    revoked the grant of a connection just reported as connected."""
    location, _ = _exchange(world)
    world.emu.faults.slow("token", SLOW)
    with pytest.raises(oauth.TransientError, match="code exchange: timed out"):
        world.connector.complete(location, profile=PROFILE)
    settle(world, "token")
    assert world.store.list_connections() == ()
    assert world.emu.stats.token_requests["authorization_code"] == 1


def test_connect_token_endpoint_unreachable(world: FaultWorld) -> None:
    set_endpoint(world, "token_url", f"http://127.0.0.1:{closed_port()}/oauth2/token")
    location, _ = _exchange(world)
    with pytest.raises(oauth.TransientError, match=r"code exchange: cannot connect to .*\(after 4 attempt\(s\)\)"):
        world.connector.complete(location, profile=PROFILE)
    assert world.store.list_connections() == ()


# ------------------------------------------------------------------------ revoke

REVOKE_RECOVERS: list[tuple[str, Callable[[RunningEmulator], None]]] = [
    ("500 once", lambda e: e.faults.status("revocation", 500)),
    ("502 once", lambda e: e.faults.status("revocation", 502)),
    ("503 once", lambda e: e.faults.status("revocation", 503)),
    ("429 Retry-After seconds", lambda e: e.faults.rate_limited("revocation", retry_after=1)),
    ("429 Retry-After HTTP-date", lambda e: e.faults.rate_limited("revocation", retry_after=1, http_date=True)),
    ("dropped connection once", lambda e: e.faults.drop_connection("revocation")),
    ("HTML 502 once", lambda e: e.faults.html_error("revocation", 502)),
    ("read timeout once", lambda e: e.faults.slow("revocation", SLOW)),
    ("truncated JSON", lambda e: e.faults.truncated_json("revocation")),
    ("oversized body", lambda e: e.faults.oversized("revocation", 512 * 1024)),
]


@pytest.mark.parametrize(("name", "arm"), REVOKE_RECOVERS, ids=[c[0] for c in REVOKE_RECOVERS])
def test_revoke_recovers(world: FaultWorld, name: str, arm: Callable[[RunningEmulator], None]) -> None:
    cid = connect(world)
    arm(world.emu)
    result = world.connector.revoke(cid)
    assert result.revoked_at_provider and result.connection.status is ConnectionStatus.REVOKED
    assert world.store.get_tokens(cid)[1:] == (None, None)
    if name.startswith("429"):
        (retry_after,) = world.waits.retry_afters
        assert retry_after is not None and 0.0 <= retry_after <= 1.0
    assert len(world.waits.calls) <= connector_module.MAX_ATTEMPTS - 1


def test_revoke_429_x_ratelimit_reset(reset_world: World) -> None:
    world = reset_world
    cid = connect(world)
    world.emu.faults.rate_limited("revocation", retry_after=1)
    assert world.connector.revoke(cid).connection.status is ConnectionStatus.REVOKED
    (retry_after,) = world.waits.retry_afters
    assert retry_after is not None and 0.0 <= retry_after <= 1.0


REVOKE_FAILS: list[tuple[str, Callable[[RunningEmulator], None], str]] = [
    ("503 always", lambda e: e.faults.status("revocation", 503, times=None), "revocation: the provider answered 503"),
    (
        "429 always",
        lambda e: e.faults.rate_limited("revocation", retry_after=1, times=None),
        "revocation: the provider rate limited (429)",
    ),
    (
        "dropped connection always",
        lambda e: e.faults.drop_connection("revocation", times=None),
        "revocation: the connection to 127.0.0.1",
    ),
    (
        "HTML 502 always",
        lambda e: e.faults.html_error("revocation", 502, times=None),
        "revocation: the provider answered 502",
    ),
]


@pytest.mark.parametrize(("name", "arm", "message"), REVOKE_FAILS, ids=[c[0] for c in REVOKE_FAILS])
def test_revoke_fails_cleanly_and_can_be_run_again(
    world: FaultWorld, name: str, arm: Callable[[RunningEmulator], None], message: str
) -> None:
    cid = connect(world)
    tokens = refresh_tokens(world, cid)
    arm(world.emu)
    with pytest.raises(oauth.TransientError) as info:
        world.connector.revoke(cid)
    assert message in str(info.value) and "(after 4 attempt(s))" in str(info.value)
    assert world.emu.stats.revocation_requests == connector_module.MAX_ATTEMPTS
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED
    assert refresh_tokens(world, cid) == tokens  # nothing deleted: the revoke can be run again
    world.emu.faults.clear()
    assert world.steady.revoke(cid).connection.status is ConnectionStatus.REVOKED


def test_revoke_endpoint_unreachable(world: FaultWorld) -> None:
    cid = connect(world)
    good = world.emu.endpoints("sandbox").revocation_url
    set_endpoint(world, "revocation_url", f"http://127.0.0.1:{closed_port()}/oauth2/revoke")
    with pytest.raises(oauth.TransientError, match=r"revocation: cannot connect to 127\.0\.0\.1"):
        world.connector.revoke(cid)
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED
    set_endpoint(world, "revocation_url", good)
    assert_still_works(world, cid)


def test_revoke_read_timeout_always(world: FaultWorld) -> None:
    """The provider may have revoked although no answer came: the error says to run it again,
    and running it again finishes the job (RFC 7009: unknown tokens answer 200)."""
    cid = connect(world)
    world.emu.faults.slow("revocation", SLOW, times=4)
    with pytest.raises(oauth.TransientError, match=r"revocation: timed out talking to"):
        world.connector.revoke(cid)
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED
    settle(world, "revoke")
    world.emu.faults.clear()
    assert world.steady.revoke(cid).connection.status is ConnectionStatus.REVOKED


# ------------------------------------------------------ connection test and API calls

API_RETRIED: list[tuple[str, Callable[[RunningEmulator], None]]] = [
    ("502 once", lambda e: e.faults.status("api", 502)),
    ("503 once", lambda e: e.faults.status("api", 503)),
    ("429 Retry-After seconds", lambda e: e.faults.rate_limited("api", retry_after=1)),
    ("429 Retry-After HTTP-date", lambda e: e.faults.rate_limited("api", retry_after=1, http_date=True)),
    ("dropped connection once", lambda e: e.faults.drop_connection("api")),
    ("HTML 502 once", lambda e: e.faults.html_error("api", 502)),
    ("read timeout once", lambda e: e.faults.slow("api", SLOW)),
]


@pytest.mark.parametrize(("name", "arm"), API_RETRIED, ids=[c[0] for c in API_RETRIED])
def test_api_get_is_retried(world: FaultWorld, name: str, arm: Callable[[RunningEmulator], None]) -> None:
    cid = connect(world)
    arm(world.emu)
    response = world.connector.request(cid, "GET", "/company/named-lists")
    assert response.status == 200 and json.loads(response.body)
    assert world.emu.stats.resource_calls["GET /company/named-lists"] == 2
    if name.startswith("429"):
        (retry_after,) = world.waits.retry_afters
        assert retry_after is not None and 0.0 <= retry_after <= 1.0
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED


def test_api_429_x_ratelimit_reset(reset_world: World) -> None:
    world = reset_world
    cid = connect(world)
    world.emu.faults.rate_limited("api", retry_after=1)
    assert world.connector.test(cid).ok
    (retry_after,) = world.waits.retry_afters
    assert retry_after is not None and 0.0 <= retry_after <= 1.0


def test_connection_test_retries_429_but_not_a_5xx_post(world: FaultWorld) -> None:
    cid = connect(world)
    world.emu.faults.rate_limited("api", retry_after=1)
    assert world.connector.test(cid).ok
    world.emu.faults.status("api", 503)
    result = world.connector.test(cid)
    assert not result.ok and result.detail == "POST /people/search answered 503, expected 200"
    assert world.emu.stats.resource_calls["POST /people/search"] == 3
    assert_still_works(world, cid)


API_GIVES_UP: list[tuple[str, Callable[[RunningEmulator], None], int, int]] = [
    ("500", lambda e: e.faults.status("api", 500, times=2), 500, 1),
    ("503 always", lambda e: e.faults.status("api", 503, times=None), 503, 4),
    ("429 always", lambda e: e.faults.rate_limited("api", retry_after=1, times=None), 429, 4),
    ("HTML 502 always", lambda e: e.faults.html_error("api", 502, times=None), 502, 4),
]


@pytest.mark.parametrize(("name", "arm", "status", "calls"), API_GIVES_UP, ids=[c[0] for c in API_GIVES_UP])
def test_api_error_status_comes_back_after_bounded_retries(
    world: FaultWorld, name: str, arm: Callable[[RunningEmulator], None], status: int, calls: int
) -> None:
    cid = connect(world)
    arm(world.emu)
    response = world.connector.request(cid, "GET", "/company/named-lists")
    assert response.status == status
    assert world.emu.stats.resource_calls["GET /company/named-lists"] == calls
    result = world.connector.test(cid)
    assert not result.ok and f"answered {status}, expected 200" in result.detail
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED
    assert_still_works(world, cid)


API_TRANSPORT: list[tuple[str, Callable[[RunningEmulator], None], str]] = [
    ("dropped connection", lambda e: e.faults.drop_connection("api", times=None), "the connection to 127.0.0.1"),
    ("read timeout", lambda e: e.faults.slow("api", SLOW, times=None), "timed out talking to 127.0.0.1"),
]


@pytest.mark.parametrize(("name", "arm", "message"), API_TRANSPORT, ids=[c[0] for c in API_TRANSPORT])
def test_api_transport_failures(
    world: FaultWorld, name: str, arm: Callable[[RunningEmulator], None], message: str
) -> None:
    cid = connect(world)
    arm(world.emu)
    with pytest.raises(RequestFailed, match=f"POST /people/search: {message}"):
        world.connector.test(cid)  # a POST is not retried: it may have taken effect
    assert world.emu.stats.resource_calls["POST /people/search"] == 1
    with pytest.raises(RequestFailed, match=f"GET /company/named-lists: {message}"):
        world.connector.request(cid, "GET", "/company/named-lists")
    assert world.emu.stats.resource_calls["GET /company/named-lists"] == connector_module.MAX_ATTEMPTS
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED
    if name == "read timeout":
        settle(world, "api")
    assert_still_works(world, cid)


def test_api_unreachable(world: FaultWorld) -> None:
    cid = connect(world)
    set_endpoint(world, "api_base_url", f"http://127.0.0.1:{closed_port()}/api/v1")
    with pytest.raises(RequestFailed, match=r"GET /company/named-lists: cannot connect to 127\.0\.0\.1"):
        world.connector.request(cid, "GET", "/company/named-lists")
    assert len(world.waits.calls) == connector_module.MAX_ATTEMPTS - 1
    with pytest.raises(RequestFailed, match=r"POST /people/search: cannot connect to 127\.0\.0\.1"):
        world.connector.test(cid)
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED


def test_api_truncated_json_is_passed_through(world: FaultWorld) -> None:
    """A body cut short inside a complete HTTP message is handed over as it came: the status
    is 200, so the connection test passes; the caller's JSON parser sees the damage."""
    cid = connect(world)
    world.emu.faults.truncated_json("api")
    response = world.connector.request(cid, "GET", "/company/named-lists")
    assert response.status == 200 and not response.truncated
    with pytest.raises(ValueError):  # noqa: PT011 - json's error
        json.loads(response.body)


def test_api_incomplete_body_is_a_transport_failure(world: FaultWorld) -> None:
    cid = connect(world)
    world.emu.faults.incomplete_body("api", times=None)
    with pytest.raises(RequestFailed, match=r"POST /people/search: the connection to 127\.0\.0\.1"):
        world.connector.test(cid)


def test_api_oversized_body_is_refused(world: FaultWorld) -> None:
    """Found by the fault matrix: a body over the 16 MiB cap came back cut at the cap, with
    status 200, and the connection test passed on it."""
    cid = connect(world)
    world.emu.faults.oversized("api", 17 * 1024 * 1024, times=2)
    with pytest.raises(RequestFailed, match=r"GET /company/named-lists: the response is larger than 16 MiB; refused"):
        world.connector.request(cid, "GET", "/company/named-lists")
    with pytest.raises(RequestFailed, match=r"POST /people/search: the response is larger than 16 MiB"):
        world.connector.test(cid)
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED
    assert_still_works(world, cid)


#: The whole-response deadline of the connector under the drip tests; the drip (one byte every
#: DRIP seconds, well under the read timeout) would take far longer to send a whole body.
DEADLINE = 1.0
DRIP = 0.05


def test_dripped_api_body_ends_at_the_deadline(world: FaultWorld) -> None:
    """A body sent one byte at a time never trips a read timeout: without a whole-response
    deadline the call hung until killed. Not retried: another wait would be as long."""
    cid = connect(world)
    world.connector.deadline = DEADLINE
    world.emu.faults.drip("api", DRIP, times=None)
    before = sum(world.emu.stats.resource_calls.values())
    with pytest.raises(
        RequestFailed, match=r"GET /company/named-lists: 127\.0\.0\.1:\d+ did not answer in full within 1 s"
    ):
        world.connector.request(cid, "GET", "/company/named-lists")
    assert sum(world.emu.stats.resource_calls.values()) == before + 1

    async def run() -> None:
        await world.connector.arequest(cid, "GET", "/company/named-lists")

    import asyncio

    with pytest.raises(RequestFailed, match=r"did not answer in full within 1 s; gave up"):
        asyncio.run(run())
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED


def test_dripped_token_response_ends_at_the_deadline(world: FaultWorld) -> None:
    """The same at the token endpoint: the provider acted on the refresh, so it is a lost
    reply (outcome unknown), never retried."""
    cid = connect(world)
    world.connector.deadline = DEADLINE
    world.emu.faults.drip("token", DRIP)
    with pytest.raises(OutcomeUnknown, match=r"refresh: 127\.0\.0\.1:\d+ did not answer in full within 1 s; gave up"):
        world.connector.refresh(cid, force=True)
    assert world.emu.stats.token_requests["refresh_token"] == 1


class Endless(httpx.SyncByteStream):
    """A 200 body of 64 KiB chunks without end, counting what was read of it."""

    def __init__(self) -> None:
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < 64 * 1024 * 1024:
            self.sent += 64 * 1024
            yield b"x" * (64 * 1024)


def test_token_response_is_cut_at_256_kib_while_reading(tmp_path: Path, waits: Waits) -> None:
    """A token response is read no further than its 256 KiB cap (it was read up to the 16 MiB
    API cap, then refused)."""
    body = Endless()

    class Huge(httpx.BaseTransport):
        def __init__(self) -> None:
            self._inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/oauth2/token") and b"refresh_token" in request.read():
                return httpx.Response(200, headers={"Content-Type": "application/json"}, stream=body)
            return self._inner.handle_request(request)

    for world in _world(tmp_path, waits, Huge()):
        cid = connect(world)
        with pytest.raises(oauth.OAuthError, match="refresh: the response is larger than 256 KiB; refused"):
            world.connector.refresh(cid, force=True)
    assert 0 < body.sent <= oauth.MAX_TOKEN_RESPONSE_BYTES + 64 * 1024


# -------------------------------------------------------------- the CLI's view of it


def run_cli(world: FaultWorld, monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setenv("CONNECTOR_HOME", str(world.home))
    monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(world.key_file))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_module.main(list(argv), plugins=world.plugins)
    return code, out.getvalue(), err.getvalue()


CLI_CASES: list[tuple[str, Callable[[RunningEmulator], None], list[str], str]] = [
    (
        "request 503 always",
        lambda e: e.faults.status("api", 503, times=None),
        ["request", "{cid}", "GET", "/company/named-lists"],
        "connector: error: GET /company/named-lists answered HTTP 503\n",
    ),
    (
        "request dropped",
        lambda e: e.faults.drop_connection("api", times=None),
        ["request", "{cid}", "POST", "/people/search", "--data", "{}"],
        "connector: error: POST /people/search: the connection to 127.0.0.1",
    ),
    (
        "request oversized",
        lambda e: e.faults.oversized("api", 17 * 1024 * 1024),
        ["request", "{cid}", "GET", "/company/named-lists"],
        "connector: error: GET /company/named-lists: the response is larger than 16 MiB; refused\n",
    ),
    (
        "test 503",
        lambda e: e.faults.status("api", 503),
        ["connections", "test", "{cid}"],
        "",
    ),
    (
        "refresh 500 always",
        lambda e: e.faults.status("token", 500, times=None),
        ["connections", "refresh", "{cid}", "--force"],
        "connector: error: refresh: the provider answered 500; try again later (after 1 attempt(s)); the request "
        "had reached the provider, which may have acted on it, so it was not sent again\n",
    ),
    (
        "revoke 503 always",
        lambda e: e.faults.status("revocation", 503, times=None),
        ["connections", "revoke", "{cid}"],
        "connector: error: revocation: the provider answered 503; try again later (after 4 attempt(s))\n",
    ),
]


@pytest.mark.parametrize(("name", "arm", "argv", "stderr"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_fault_errors_are_one_line(
    world: FaultWorld,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    arm: Callable[[RunningEmulator], None],
    argv: list[str],
    stderr: str,
) -> None:
    cid = connect(world)
    tokens = refresh_tokens(world, cid)
    arm(world.emu)
    code, out, err = run_cli(world, monkeypatch, *[a.replace("{cid}", cid) for a in argv])
    assert code == 1
    assert "Traceback" not in err and err.count("\n") <= 1
    assert err.startswith(stderr) if stderr else out.startswith("FAILED: POST /people/search answered 503")
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED
    assert refresh_tokens(world, cid) == tokens
    assert_still_works(world, cid)


def test_api_401_after_a_fresh_refresh_needs_reconnect(world: FaultWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 401 that persists after a fresh refresh marks the connection with its own reason, without
    HiBob's "uninstall first" (the grant was withdrawn there); the CLI says how to fix it."""
    cid = connect(world)
    world.emu.faults.status("api", 401, times=2)
    code, _, err = run_cli(world, monkeypatch, "request", cid, "GET", "/company/named-lists")
    assert code == 1 and f"connection {cid} needs reconnecting ({connector_module.FRESH_401})" in err
    assert "uninstall" not in err.lower() and "connector reconnect" in err
    assert world.store.get_connection(cid).status is ConnectionStatus.NEEDS_RECONNECT
    assert world.emu.stats.token_requests["refresh_token"] == 1  # refreshed once, never looped
    assert world.store.get_connection(cid).status_reason == connector_module.FRESH_401


def test_httpx_auth_401_after_a_fresh_refresh_marks_the_connection(world: FaultWorld) -> None:
    """``connector.auth()`` hands the second 401 to its caller, and the connection says why."""
    cid = connect(world)
    world.emu.faults.status("api", 401, times=2)
    base = world.emu.endpoints("sandbox").api_base_url
    with httpx.Client(base_url=base, auth=world.connector.auth(cid)) as client:
        assert client.get("/company/named-lists").status_code == 401
    conn = world.store.get_connection(cid)
    assert conn.status is ConnectionStatus.NEEDS_RECONNECT and conn.status_reason == connector_module.FRESH_401
    assert world.emu.stats.token_requests["refresh_token"] == 1


# ---------------------------------------------------------------------- redirects


def test_redirects_are_never_followed(tmp_path: Path) -> None:
    """A token endpoint answering 307 would replay the form (code, verifier, refresh token) to
    another origin; an API redirect would carry the bearer token there. Neither is followed."""
    from connector_hibob import plugin

    seen: list[str] = []

    def provider(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(307, headers={"location": "https://elsewhere.example/steal"}, text="moved")

    plugins = load_plugins([plugin], entry_points=False)
    store = Store.open(tmp_path / "h", env={"CONNECTOR_CORE_KEY_FILE": str(tmp_path / "k.json")})
    draft = validate_profile(
        plugins.declaration("hibob"),
        name=PROFILE,
        environment="sandbox",
        values={"app_id": "APP", "client_id": "cid", "client_secret": "Secret-1234567"},
        endpoints={"redirect_uri": REDIRECT, "revocation_url": "https://provider.example/revoke"},
    )
    profile = store.create_profile(draft)
    tokens = oauth.TokenSet(Secret("access-token-1"), "Bearer", Secret("refresh-token-1"), None)
    cid = store.save_connection(profile, tokens, requested=(), granted=(), identity={}, provider_initiated=False).id
    connector = Connector(store, plugins, client=httpx.Client(transport=httpx.MockTransport(provider)))
    with pytest.raises(oauth.OAuthError, match="refresh: the provider answered 307"):
        connector.refresh(cid, force=True)
    with pytest.raises(oauth.OAuthError, match="revocation: the provider answered 307"):
        connector.revoke(cid)
    response = connector.request(cid, "GET", "/company/named-lists")
    assert response.status == 307
    assert seen and not any("elsewhere" in url for url in seen)
    assert store.get_connection(cid).status is ConnectionStatus.CONNECTED


def test_reliability_doc_names_every_test_and_only_real_ones() -> None:
    """docs/reliability.md is the promise; it must not drift from the tests that keep it."""
    tests = REPO / "tests"
    doc = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    kept_by = ("connect/test_faults.py", "connect/test_crash.py", "connect/test_concurrency.py")
    kept_by += ("oauth/test_hostile_input.py", "security/test_no_secret_leaks.py")
    defined = {
        name
        for path in (tests / file for file in kept_by)
        for name in re.findall(r"^def (test_\w+)\(", path.read_text(encoding="utf-8"), re.MULTILINE)
    }
    named = set(re.findall(r"`(?:test_\w+\.py::)?(test_\w+)\b(?!\.py)", doc)) - {"test_rfc7636_appendix_b_vector"}
    assert named - defined == set(), "docs/reliability.md names tests that do not exist"
    assert "def test_rfc7636_appendix_b_vector(" in (tests / "oauth" / "test_protocol.py").read_text(encoding="utf-8")
    assert defined - named - {"test_reliability_doc_names_every_test_and_only_real_ones"} == set(), (
        "tests missing from docs/reliability.md"
    )


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("token_url", "https://a..b/oauth2/token"),
        ("token_url", "https://xn--zz.example/oauth2/token"),
        ("api_base_url", "https://a\u00ad.example/api"),
        ("api_base_url", "https://" + "a" * 64 + ".example/api"),
    ],
)
def test_urls_that_cannot_be_sent_are_one_clear_error(
    world: FaultWorld, monkeypatch: pytest.MonkeyPatch, endpoint: str, url: str
) -> None:
    """Found by this suite: host names that pass profile validation but that IDNA cannot encode
    crashed the transport with UnicodeError/IDNAError/InvalidURL (a traceback in the CLI)."""
    cid = connect(world)
    tokens = refresh_tokens(world, cid)
    set_endpoint(world, endpoint, url)
    argv = ["connections", "refresh", cid, "--force"] if endpoint == "token_url" else ["request", cid, "GET", "/x"]
    call: Callable[[], object] = (
        (lambda: world.connector.refresh(cid, force=True))
        if endpoint == "token_url"
        else (lambda: world.connector.request(cid, "GET", "/x"))
    )
    with pytest.raises(ValidationError, match=r"^request: (POST|GET) \S+ cannot be sent \("):
        call()
    code, _, err = run_cli(world, monkeypatch, *argv)
    assert code == 1 and err.startswith("connector: error: request: ") and err.count("\n") == 1
    assert world.store.get_connection(cid).status is ConnectionStatus.CONNECTED
    assert refresh_tokens(world, cid) == tokens
    assert len(world.waits.calls) == 0  # not retried: it cannot work


def test_a_token_that_cannot_be_a_header_is_one_clear_error(world: FaultWorld) -> None:
    """A provider that issues a non-ASCII access token: the API call fails with one line, no traceback."""
    cid = connect(world)
    conn, _, refresh = world.store.get_tokens(cid)
    assert refresh is not None
    odd = oauth.TokenSet(Secret("t\u00f6ken-with-umlaut"), "Bearer", refresh, conn.expires_at)
    with world.store.refresh_lease(cid, 30) as lease:
        lease.save(conn.token_version, odd, conn.granted_scopes)
    with pytest.raises(ValidationError, match=r"GET \S+/company/named-lists cannot be sent \(UnicodeEncodeError"):
        world.connector.request(cid, "GET", "/company/named-lists")
    assert_still_works(world, cid)


def test_a_sync_read_never_waits_past_the_deadline() -> None:
    """A socket read cannot be cancelled from outside: the sync transport cuts every timeout
    it hands httpx to the time left, before the request and after each chunk, so even a
    stalled body cannot keep a call past its deadline by a whole read timeout."""
    from connector_core._transport import send_sync
    from connector_core.oauth import HttpRequest

    seen: list[dict[str, float]] = []

    class Chunks(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            for _ in range(3):
                seen.append(dict(captured.extensions["timeout"]))
                yield b"x"

    def handler(request: httpx.Request) -> httpx.Response:
        captured.extensions = request.extensions
        seen.append(dict(request.extensions["timeout"]))
        return httpx.Response(200, stream=Chunks())

    captured = httpx.Request("GET", "https://api.example/")
    slow = httpx.Timeout(connect=20.0, read=20.0, write=20.0, pool=20.0)
    with httpx.Client(transport=httpx.MockTransport(handler), timeout=slow) as client:
        reply = send_sync(client, HttpRequest("GET", "https://api.example/x", (), b""), deadline=1.0)
    assert reply.status == 200 and reply.body == b"xxx"
    assert len(seen) == 4
    assert all(0 < value <= 1.0 for timeouts in seen for value in timeouts.values()), seen
