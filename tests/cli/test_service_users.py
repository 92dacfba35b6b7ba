"""The CLI end to end against the emulator: HiBob service users (issued, refused, reset, in no
permission group), and multiauth's API keys, HTTP Basic and client credentials."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import hibob, multiauth_plugins
from support.multiauth import BASIC, CLIENT_CREDENTIALS, HEADER_KEY, QUERY_KEY

from connector_core import Plugins
from connector_core.emulator import RunningEmulator, start_emulator
from connector_core.testing import CliResult, run_cli

Run = Callable[..., CliResult]


@pytest.fixture
def bob() -> Iterator[RunningEmulator]:
    with start_emulator("hibob", plugins=hibob()) as emu:
        yield emu
        assert emu.unexpected_errors == ()


@pytest.fixture
def multi() -> Iterator[RunningEmulator]:
    with start_emulator("multiauth", plugins=multiauth_plugins()) as emu:
        yield emu
        assert emu.unexpected_errors == ()


def _runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugins: Plugins, secrets: list[str]) -> Run:
    monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(tmp_path / "keys.json"))
    home = str(tmp_path / "home")

    def run(*argv: str) -> CliResult:
        result = run_cli(["--home", home, *argv], plugins)
        for secret in secrets:
            assert secret not in result.out + result.err
        assert "Traceback" not in result.err
        return result

    return run


@pytest.fixture
def secrets() -> list[str]:
    """Every secret a test hands the CLI; none may appear in its output."""
    return []


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bob: RunningEmulator, secrets: list[str]) -> Run:
    run = _runner(tmp_path, monkeypatch, hibob(), secrets)
    made = run(
        "profile", "create", "hibob", "--name", "su", "--auth-type", "service_user",
        "--endpoint", f"api_base_url={bob.endpoints().api_base_url}",
    )  # fmt: skip
    assert made.code == 0, made.err
    return run


def _token(monkeypatch: pytest.MonkeyPatch, secrets: list[str], var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    secrets.append(value)


def connections(cli: Run) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(cli("connections", "list", "--json").out)["connections"]
    return found


def error_line(result: CliResult) -> str:
    assert result.code == 1
    (line,) = result.err.splitlines()
    assert line.startswith("connector: error: ")
    return line


def test_a_service_user_connects_requests_is_reset_and_reconnects(
    cli: Run, bob: RunningEmulator, monkeypatch: pytest.MonkeyPatch, secrets: list[str]
) -> None:
    user = bob.issue_credentials("service_user")
    _token(monkeypatch, secrets, "BOB_TOKEN", user["service_user_token"])
    made = cli("connect", "su", "--service-user-id", user["service_user_id"], "--service-user-token-env", "BOB_TOKEN")
    assert made.code == 0, made.err
    assert f"service_user_id  {user['service_user_id']}" in made.out
    assert "test             ok: POST /people/search answered 200" in made.out
    (conn,) = connections(cli)
    cid = conn["id"]
    assert conn["auth_kind"] == "http_basic" and conn["status"] == "connected"
    assert bob.stats.resource_calls["POST /people/search"] == 2  # tested before storing, then the stored one

    listed = cli("request", cid, "POST", "/people/search", "--data", '{"fields": ["root.id"]}')
    assert listed.code == 0 and len(json.loads(listed.out)["employees"]) == 22
    assert cli("connections", "test", cid).out == "ok: POST /people/search answered 200\n"

    new = bob.reset_credentials("service_user", user.identifier)  # an admin reset the token in Bob
    refused = error_line(cli("request", cid, "POST", "/people/search", "--data", "{}"))
    assert "needs reconnecting (the provider refused its credentials (401)). Reset the service user's token" in refused
    assert f"run 'connector reconnect {cid}' with the new token" in refused
    attention = cli("connections", "attention").out
    assert f"{cid}: Reset the service user's token in Bob" in attention

    _token(monkeypatch, secrets, "NEW_BOB_TOKEN", new["service_user_token"])
    fixed = cli("reconnect", cid, "--service-user-token-env", "NEW_BOB_TOKEN", "--json")
    assert fixed.code == 0, fixed.err
    data = json.loads(fixed.out)
    assert data["connection"]["id"] == cid and data["connection"]["status"] == "connected"
    assert data["test"]["ok"] is True
    assert cli("request", cid, "POST", "/people/search", "--data", "{}").code == 0

    revoked = cli("connections", "revoke", cid)
    assert revoked.code == 0
    assert "the credentials were deleted here, but they stay valid at HiBob" in revoked.out


def test_a_wrong_token_or_a_service_user_in_no_group_stores_nothing(
    cli: Run, bob: RunningEmulator, monkeypatch: pytest.MonkeyPatch, secrets: list[str]
) -> None:
    user = bob.issue_credentials("service_user")
    _token(monkeypatch, secrets, "WRONG", user["service_user_token"][::-1])
    wrong = error_line(
        cli("connect", "su", "--service-user-id", user["service_user_id"], "--service-user-token-env", "WRONG")
    )
    assert "HiBob refused the Service user (HTTP Basic) credentials" in wrong and "answered 401" in wrong
    idle = bob.issue_credentials("service_user", groups=())
    _token(monkeypatch, secrets, "IDLE", idle["service_user_token"])
    forbidden = error_line(
        cli("connect", "su", "--service-user-id", idle["service_user_id"], "--service-user-token-env", "IDLE")
    )
    assert "accepted the Service user (HTTP Basic) credentials but refused" in forbidden and "with 403" in forbidden
    assert "check that the service user is in a permission group" in forbidden
    assert connections(cli) == []
    bob.set_permission_groups("service_user", idle.identifier, ["employees_read"])
    assert (
        cli("connect", "su", "--service-user-id", idle["service_user_id"], "--service-user-token-env", "IDLE").code == 0
    )


def test_a_revoked_service_user_marks_the_connection(
    cli: Run, bob: RunningEmulator, monkeypatch: pytest.MonkeyPatch, secrets: list[str]
) -> None:
    user = bob.issue_credentials("service_user")
    _token(monkeypatch, secrets, "BOB_TOKEN", user["service_user_token"])
    cli("connect", "su", "--service-user-id", user["service_user_id"], "--service-user-token-env", "BOB_TOKEN")
    cid = connections(cli)[0]["id"]
    bob.revoke_credentials("service_user", user.identifier)
    tested = cli("connections", "test", cid)
    assert tested.code == 1 and "needs reconnecting" in tested.err
    shown = json.loads(cli("connections", "show", cid, "--json").out)
    assert shown["status"] == "needs_reconnect"
    assert shown["status_reason"] == "the provider refused its credentials (401)"


# ------------------------------------------------------------------ multiauth


@pytest.fixture
def mcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, multi: RunningEmulator, secrets: list[str]) -> Run:
    return _runner(tmp_path, monkeypatch, multiauth_plugins(), secrets)


def _profile(run: Run, emu: RunningEmulator, name: str, auth_type: str, *extra: str) -> None:
    urls = emu.endpoints()
    made = run(
        "profile", "create", "multiauth", "--name", name, "--auth-type", auth_type,
        "--endpoint", f"api_base_url={urls.api_base_url}", "--endpoint", f"token_url={urls.token_url}", *extra,
    )  # fmt: skip
    assert made.code == 0, made.err


@pytest.mark.parametrize(
    ("auth_type", "options"),
    [
        (HEADER_KEY, {"header_api_key": "--header-api-key-env"}),
        (QUERY_KEY, {"query_api_key": "--query-api-key-env"}),
        (BASIC, {"username": "--username", "password": "--password-env"}),
    ],
)
def test_api_keys_and_basic_credentials_connect_and_request(
    mcli: Run,
    multi: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    secrets: list[str],
    auth_type: str,
    options: dict[str, str],
) -> None:
    _profile(mcli, multi, "p", auth_type)
    issued = multi.issue_credentials(auth_type)
    argv: list[str] = []
    for name, option in options.items():
        if option.endswith("-env"):
            _token(monkeypatch, secrets, name.upper(), issued[name])
            argv += [option, name.upper()]
        else:
            argv += [option, issued[name]]
    made = mcli("connect", "p", *argv, "--json")
    assert made.code == 0, made.err
    data = json.loads(made.out)
    assert data["test"] == {"ok": True, "status": 200, "detail": "GET /me answered 200"}
    cid = data["connection"]["id"]
    answer = mcli("request", cid, "GET", "/things")
    assert answer.code == 0 and json.loads(answer.out)["things"][0]["name"] == "first"
    listed = mcli("connections", "list").out.splitlines()[2].split()
    assert listed[4:7] == [auth_type, "connected", "never"]

    multi.revoke_credentials(auth_type, issued.identifier)
    refused = mcli("request", cid, "GET", "/things")
    assert refused.code == 1 and "needs reconnecting" in refused.err
    assert "Create a new key" in refused.err or "reset the password" in refused.err


def test_client_credentials_connect_with_the_profiles_client(
    mcli: Run, multi: RunningEmulator, monkeypatch: pytest.MonkeyPatch, secrets: list[str]
) -> None:
    creds = multi.app.credentials[multi.endpoints().credential_set]
    _token(monkeypatch, secrets, "CLIENT_SECRET", creds.client_secret.reveal())
    _profile(
        mcli, multi, "m", CLIENT_CREDENTIALS, "--client-id", creds.client_id, "--client-secret-env", "CLIENT_SECRET"
    )
    refused = error_line(mcli("connect", "m", "--username", "mu-123456"))
    assert "--username: is a credential of multiauth basic connections" in refused
    assert "uses client_credentials (OAuth 2.0 client credentials), which takes no credential options" in refused
    made = mcli("connect", "m", "--scopes", "things:read")
    assert made.code == 0, made.err
    assert "ok: GET /me answered 200" in made.out and "granted scopes  things:read" in made.out
    (conn,) = json.loads(mcli("connections", "list", "--json").out)["connections"]
    assert conn["auth_kind"] == "oauth2_client_credentials" and conn["identity"] == {"client_id": creds.client_id}
    assert multi.stats.token_requests["client_credentials"] == 1
    again = mcli("reconnect", conn["id"])
    assert again.code == 0, again.err
    assert multi.stats.token_requests["client_credentials"] == 2
    assert [c["id"] for c in json.loads(mcli("connections", "list", "--json").out)["connections"]] == [conn["id"]]
