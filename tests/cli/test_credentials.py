"""`connector connect`/`reconnect` for auth types that send no one to the provider (a HiBob service
user, an API key in a header or the query, OAuth 2.0 client credentials), and how the listings show
such connections; against a small fake API on 127.0.0.1 (the emulator's own service users are
tested end to end in test_service_users.py)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from support import hibob, run_connector
from support.keyco import KeyCo

from connector_core import Plugins, load_plugins
from connector_core.testing import CliResult, run_cli

GOOD_ID = "SERVICE-1"
GOOD_TOKEN = "Svc-Token-Good-1234"
NO_RIGHTS_ID = "SERVICE-2"
NEW_TOKEN = "Svc-Token-New-98765"
API_KEY = "Key-Good-12345678"
CLIENT_ID = "machine-client"
CLIENT_SECRET = "Machine-Secret-1234"
ACCESS_TOKEN = "At-From-Client-Credentials"
SECRETS = (GOOD_TOKEN, NEW_TOKEN, API_KEY, CLIENT_SECRET, ACCESS_TOKEN)


class FakeApi:
    """HiBob's connection test (POST /people/search) with HTTP Basic service users, and a
    'keyco' API (GET /me) taking an API key in a header or the query, or a bearer token from
    its client credentials token endpoint."""

    def __init__(self) -> None:
        self.tokens = {GOOD_ID: GOOD_TOKEN, NO_RIGHTS_ID: GOOD_TOKEN}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = self.rfile.read(length).decode()
                api.seen.append(("POST", self.path, dict(self.headers)))
                if self.path == "/token":
                    if self.headers.get("Authorization") != _basic(CLIENT_ID, CLIENT_SECRET):
                        self._answer(401, {"error": "invalid_client"})
                    elif parse_qs(form).get("grant_type") != ["client_credentials"]:
                        self._answer(400, {"error": "unsupported_grant_type"})
                    else:
                        self._answer(200, {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600})
                    return
                user = api.basic_user(self.headers.get("Authorization", ""))
                if user is None:
                    self._answer(401, {"error": "unauthorized"})
                elif user == NO_RIGHTS_ID:
                    self._answer(403, {"error": "forbidden"})
                else:
                    self._answer(200, {"employees": [{"id": "1"}]})

            def do_GET(self) -> None:
                api.seen.append(("GET", self.path, dict(self.headers)))
                query = parse_qs(urlsplit(self.path).query)
                ok = (
                    self.headers.get("X-Api-Key") == f"Key {API_KEY}"
                    or query.get("key") == [API_KEY]
                    or self.headers.get("Authorization") == f"Bearer {ACCESS_TOKEN}"
                )
                self._answer(200 if ok else 401, {"me": "keyco"} if ok else {"error": "unauthorized"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def basic_user(self, header: str) -> str | None:
        for user, token in self.tokens.items():
            if header == _basic(user, token):
                return user
        return None


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.fixture
def plugins(api: FakeApi) -> Plugins:
    from connector_hibob import plugin

    return load_plugins([plugin, KeyCo(api.url)], entry_points=False)


Run = Callable[..., CliResult]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugins: Plugins) -> Run:
    monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(tmp_path / "keys.json"))
    monkeypatch.setenv("GOOD_TOKEN", GOOD_TOKEN)
    monkeypatch.setenv("NEW_TOKEN", NEW_TOKEN)
    monkeypatch.setenv("API_KEY", API_KEY)
    monkeypatch.setenv("CLIENT_SECRET", CLIENT_SECRET)
    home = str(tmp_path / "home")

    def run(*argv: str) -> CliResult:
        result = run_cli(["--home", home, *argv], plugins)
        for secret in SECRETS:
            assert secret not in result.out + result.err
        assert "Traceback" not in result.err
        return result

    return run


@pytest.fixture
def su(cli: Run, api: FakeApi) -> str:
    made = cli(
        "profile", "create", "hibob", "--name", "su", "--auth-type", "service_user",
        "--endpoint", f"api_base_url={api.url}",
    )  # fmt: skip
    assert made.code == 0, made.err
    return "su"


def connections(cli: Run) -> list[dict[str, Any]]:
    listed = cli("connections", "list", "--json")
    assert listed.code == 0, listed.err
    found: list[dict[str, Any]] = json.loads(listed.out)["connections"]
    return found


def one_error_line(result: CliResult) -> str:
    assert result.code != 0
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("connector: error: "), result.err
    return lines[0]


# ---------------------------------------------------------------- profiles


def test_a_service_user_profile_holds_no_credentials_and_says_so(cli: Run, su: str) -> None:
    shown = cli("profile", "show", su)
    assert shown.code == 0
    assert "A service_user profile holds no credentials of its own" in shown.out
    assert "(service_user_id, service_user_token), given to 'connector connect su'" in shown.out
    assert ["scopes", "-"] in _words(shown.out.splitlines())  # a service user's rights are set in Bob
    data = json.loads(cli("profile", "show", su, "--json").out)
    assert data["auth_type"] == "service_user" and data["fields"] == {} and data["scopes"] == []
    oauth = cli(
        "profile",
        "create",
        "hibob",
        "--name",
        "o",
        "--app-id",
        "A",
        "--client-id",
        "c",
        "--client-secret-env",
        "GOOD_TOKEN",
    )
    assert oauth.code == 0 and "holds no credentials" not in oauth.out


def test_a_service_user_profile_refuses_scopes(cli: Run) -> None:
    refused = cli("profile", "create", "hibob", "--name", "s", "--auth-type", "service_user", "--actions", "list_tasks")
    assert "actions: service_user (http_basic) profiles request no OAuth scopes" in one_error_line(refused)
    assert json.loads(cli("profile", "list", "--json").out)["profiles"] == []


def test_a_client_credentials_profile_needs_its_client(cli: Run) -> None:
    missing = cli("profile", "create", "keyco", "--name", "m", "--auth-type", "machine", "--client-id", CLIENT_ID)
    assert "client_secret" in one_error_line(missing)
    made = cli(
        "profile", "create", "keyco", "--name", "m", "--auth-type", "machine", "--client-id", CLIENT_ID,
        "--client-secret-env", "CLIENT_SECRET",
    )  # fmt: skip
    assert made.code == 0, made.err
    assert "holds no credentials" not in made.out and ["Client", "secret", "***"] in _words(made.out.splitlines())


def test_profile_create_help_groups_the_options_by_auth_type() -> None:
    shown = run_connector(["profile", "create", "hibob", "--help"], env={"CONNECTOR_CORE_PLUGINS": "hibob"})
    assert shown.returncode == 0
    oauth, service_user = shown.stdout.split("oauth2 profile options")[1].split("service_user profile options")
    assert "--client-secret-env VAR" in oauth and "--app-id VALUE" in oauth
    assert "--client-id" not in service_user
    assert "holds no credentials of its own" in " ".join(service_user.split())


# ---------------------------------------------------------------- connect


def test_connect_a_service_user_tests_stores_and_shows_it(cli: Run, su: str, api: FakeApi) -> None:
    made = cli("connect", su, "--service-user-id", GOOD_ID, "--service-user-token-env", "GOOD_TOKEN")
    assert made.code == 0, made.err
    assert made.out.startswith("Connected.\n")
    rows = dict(line.split(None, 1) if " " in line else (line, "") for line in made.out.splitlines()[1:])
    assert rows["auth"].strip() == "type        service_user (Service user (HTTP Basic))"
    assert rows["service_user_id"].strip() == GOOD_ID
    assert rows["expires"].strip() == "never (credentials)"
    assert rows["test"].strip() == "ok: POST /people/search answered 200"
    assert "granted scopes" not in made.out
    # The provider saw the service user's Basic credentials: once for the test before storing, once after.
    basic = [h.get("Authorization") for method, path, h in api.seen if path == "/people/search"]
    assert basic == [_basic(GOOD_ID, GOOD_TOKEN)] * 2

    (conn,) = connections(cli)
    assert conn["auth_type"] == "service_user" and conn["auth_kind"] == "http_basic"
    assert conn["identity"] == {"service_user_id": GOOD_ID} and conn["expires_at"] is None
    table = cli("connections", "list").out.splitlines()
    assert table[0].split() == ["ID", "PROFILE", "PROVIDER", "ENV", "AUTH", "STATUS", "EXPIRES", "ACCOUNT", "OWNER"]
    assert table[2].split()[4:] == ["service_user", "connected", "never", "(credentials)", GOOD_ID, "(unclaimed)"]
    assert cli("connections", "test", conn["id"]).out == "ok: POST /people/search answered 200\n"
    request = cli("request", conn["id"], "POST", "/people/search", "--data", "{}")
    assert request.code == 0 and json.loads(request.out) == {"employees": [{"id": "1"}]}
    shown = cli("connections", "show", conn["id"])
    assert f"service_user_id  {GOOD_ID}" in shown.out and "  connected  connected" in shown.out


def test_auth_type_without_the_emulator_is_refused_not_ignored(cli: Run, su: str, api: FakeApi) -> None:
    refused = cli("connect", su, "--auth-type", "oauth2", "--service-user-id", GOOD_ID)
    assert refused.code == 1 and refused.err.count("\n") == 1
    assert (
        "--auth-type: profile" in refused.err
        and "uses service_user; --auth-type picks one only with --emulator" in (refused.err)
    )
    assert api.seen == [] and connections(cli) == []
    same = cli(
        "connect",
        su,
        "--auth-type",
        "service_user",
        "--service-user-id",
        GOOD_ID,
        "--service-user-token-env",
        "GOOD_TOKEN",
    )
    assert same.code == 0, same.err  # naming the profile's own auth type is harmless


def test_connect_json_and_the_same_service_user_again_updates_its_connection(cli: Run, su: str) -> None:
    first = json.loads(
        cli("connect", su, "--json", "--service-user-id", GOOD_ID, "--service-user-token-env", "GOOD_TOKEN").out
    )
    assert first["test"] == {"ok": True, "status": 200, "detail": "POST /people/search answered 200"}
    assert first["connection"]["auth_kind"] == "http_basic" and first["warnings"] == []
    again = cli("connect", su, "--service-user-id", GOOD_ID, "--service-user-token-env", "GOOD_TOKEN")
    assert again.code == 0
    assert f"this account was already connected; {first['connection']['id']} was updated" in again.err
    assert [c["id"] for c in connections(cli)] == [first["connection"]["id"]]


def test_the_token_is_read_from_a_file(cli: Run, su: str, tmp_path: Path) -> None:
    token = tmp_path / "token.txt"
    token.write_text(GOOD_TOKEN + "\n")
    made = cli("connect", su, "--service-user-id", GOOD_ID, "--service-user-token-file", str(token))
    assert made.code == 0, made.err
    assert len(connections(cli)) == 1


def _bad(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--service-user-id", GOOD_ID, "--service-user-token", GOOD_TOKEN],
            "--service-user-token: secrets are never taken from the command line",
        ),
        (
            ["--service-user-token-env", "GOOD_TOKEN"],
            "--service-user-id: Service user ID is required; pass --service-user-id VALUE",
        ),
        (["--service-user-id", GOOD_ID], "service_user_token: Service user token is required"),
        (
            ["--service-user-id", GOOD_ID, "--service-user-token-env", "EMPTY"],
            "EMPTY (--service-user-token-env) is not set or empty",
        ),
        (
            ["--service-user-id", GOOD_ID, "--service-user-token-env", "SPACED"],
            "expected Service user token without white space",
        ),
        (["--service-user-id", GOOD_ID, "--service-user-token-file", "{ctrl}"], "expected printable characters"),
        (["--service-user-id", "SERVICE 1", "--service-user-token-env", "GOOD_TOKEN"], "service_user_id"),
        (
            ["--service-user-id", GOOD_ID, "--service-user-token-env", "GOOD_TOKEN", "--scopes", "tasks:write"],
            "request no OAuth scopes",
        ),
        (
            [
                "--service-user-id",
                GOOD_ID,
                "--service-user-token-env",
                "GOOD_TOKEN",
                "--redirect-uri",
                "https://x.example/cb",
            ],
            "--redirect-uri: applies to OAuth 2.0 authorization code profiles",
        ),
        (
            ["--service-user-id", GOOD_ID, "--service-user-token-env", "NEW_TOKEN"],
            "HiBob refused the Service user (HTTP Basic) credentials: the connection test (POST /people/search) "
            "answered 401; nothing was stored. Reset the service user's token in Bob",
        ),
        (
            ["--service-user-id", NO_RIGHTS_ID, "--service-user-token-env", "GOOD_TOKEN"],
            "refused the connection test (POST /people/search) with 403, so they may not read what the connection",
        ),
        (["--client-id", "x"], "unrecognized arguments: --client-id (their values are not shown); profile 'su' uses"),
        (
            ["--service-user-id", GOOD_ID, "--service-user-tokn", GOOD_TOKEN],
            "unrecognized arguments: --service-user-tokn (their values are not shown); profile 'su' uses service_user "
            "(Service user (HTTP Basic)), which takes --service-user-id VALUE, --service-user-token-env VAR or "
            "--service-user-token-file PATH",
        ),
        (["--api-key-env", "API_KEY"], "unrecognized arguments: --api-key-env (their values are not shown)"),
    ],
    ids=[
        "token on argv",
        "no id",
        "no token",
        "empty token",
        "spaced token",
        "control character",
        "bad id",
        "scopes",
        "redirect uri",
        "rejected",
        "no rights",
        "a profile option",
        "a misspelt token option",
        "another provider's",
    ],
)
def test_bad_credentials_are_one_line_and_store_nothing(
    cli: Run, su: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: str
) -> None:
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.setenv("SPACED", "Svc-Token Good-1234")
    argv = [a.replace("{ctrl}", _bad(tmp_path, "ctrl.txt", "Svc-Token\x07Good-1234")) for a in argv]
    before = cli("connections", "list", "--json").out
    result = cli("connect", su, *argv)
    assert expected in one_error_line(result)
    assert cli("connections", "list", "--json").out == before
    assert connections(cli) == []


def test_a_rejected_token_gets_the_providers_guidance_and_the_clis_advice(cli: Run, su: str) -> None:
    line = one_error_line(cli("connect", su, "--service-user-id", GOOD_ID, "--service-user-token-env", "NEW_TOKEN"))
    assert "or check that the service user is in a permission group" in line
    assert line.endswith(
        "Check them at the provider (reset the token if it was lost), then run the command again with them."
    )


def test_service_user_options_on_an_oauth_profile_name_what_it_takes(cli: Run) -> None:
    made = cli(
        "profile",
        "create",
        "hibob",
        "--name",
        "o",
        "--app-id",
        "A",
        "--client-id",
        "c",
        "--client-secret-env",
        "GOOD_TOKEN",
    )
    assert made.code == 0
    line = one_error_line(cli("connect", "o", "--service-user-id", GOOD_ID))
    assert line == (
        "connector: error: --service-user-id: is a credential of hibob service_user connections, but profile 'o' "
        "uses oauth2 (OAuth 2.0 (approved technology partners)), which takes no credential options"
    )
    assert connections(cli) == []


def test_no_test_stores_without_trying_and_says_so(cli: Run, su: str, api: FakeApi) -> None:
    made = cli("connect", su, "--no-test", "--service-user-id", GOOD_ID, "--service-user-token-env", "NEW_TOKEN")
    assert made.code == 0, made.err
    assert "skipped (--no-test): stored without running the provider's connection test" in made.out
    assert [path for _, path, _ in api.seen] == []
    data = json.loads(
        cli(
            "connect",
            su,
            "--no-test",
            "--json",
            "--service-user-id",
            "SERVICE-9",
            "--service-user-token-env",
            "NEW_TOKEN",
        ).out
    )
    assert data["test"] is None and data["connection"]["status"] == "connected"
    assert len(connections(cli)) == 2


def test_connect_help_lists_the_profiles_credential_options(tmp_path: Path) -> None:
    env = {
        "CONNECTOR_HOME": str(tmp_path / "h"),
        "CONNECTOR_CORE_KEY_FILE": str(tmp_path / "k.json"),
        "CONNECTOR_CORE_PLUGINS": "hibob",
    }
    made = run_connector(["profile", "create", "hibob", "--name", "su", "--auth-type", "service_user"], env=env)
    assert made.returncode == 0, made.stderr
    shown = run_connector(["connect", "su", "--help"], env=env)
    assert shown.returncode == 0
    group = shown.stdout.split("service_user credentials (Service user (HTTP Basic)):")[1]
    assert "--service-user-id VALUE" in group and "--service-user-token-env VAR" in group
    assert "--service-user-token-file PATH" in group and "--service-user-token " not in group
    assert "--no-test" in shown.stdout and "--no-browser" in shown.stdout
    bare = run_connector(["connect", "--help"], env=env)
    assert "'connector connect PROFILE --help' lists them" in " ".join(bare.stdout.split())


# ---------------------------------------------------------------- reconnect and attention


def test_a_refused_token_needs_reconnecting_and_reconnect_keeps_the_id(cli: Run, su: str, api: FakeApi) -> None:
    cli("connect", su, "--service-user-id", GOOD_ID, "--service-user-token-env", "GOOD_TOKEN")
    (conn,) = connections(cli)
    cid = conn["id"]
    api.tokens[GOOD_ID] = NEW_TOKEN  # the token was reset in Bob
    refused = one_error_line(cli("request", cid, "POST", "/people/search", "--data", "{}"))
    assert f"connection {cid} needs reconnecting (the provider refused its credentials (401))" in refused
    assert "Reset the service user's token in Bob" in refused
    assert refused.endswith(
        f"run 'connector reconnect {cid}' with the new token ('connector reconnect {cid} --help' lists the options)."
    )

    attention = cli("connections", "attention")
    assert attention.out.splitlines()[0].split()[:5] == ["ID", "PROFILE", "PROVIDER", "AUTH", "STATUS"]
    assert f"{cid}: Reset the service user's token in Bob" in attention.out
    assert "connector reconnect CONNECTION --help" in attention.out
    (listed,) = json.loads(cli("connections", "attention", "--json").out)["connections"]
    assert listed["guidance"].startswith("Reset the service user's token in Bob")

    wrong = one_error_line(cli("reconnect", cid, "--service-user-token-env", "GOOD_TOKEN"))
    assert "answered 401; nothing was stored" in wrong
    assert connections(cli)[0]["status"] == "needs_reconnect"
    fixed = cli("reconnect", cid, "--service-user-token-env", "NEW_TOKEN")  # the ID is kept
    assert fixed.code == 0, fixed.err
    assert ["connection", cid] in _words(fixed.out.splitlines()) and "ok: POST /people/search answered 200" in fixed.out
    history = json.loads(cli("connections", "show", cid, "--json").out)["history"]
    assert history[-1]["reason"] == "credentials replaced" and history[-1]["status"] == "connected"
    assert cli("connections", "attention").out == "Nothing needs attention.\n"


def test_reconnect_refuses_another_auth_types_options(cli: Run, su: str) -> None:
    cli("connect", su, "--service-user-id", GOOD_ID, "--service-user-token-env", "GOOD_TOKEN")
    cid = connections(cli)[0]["id"]
    line = one_error_line(cli("reconnect", cid, "--redirect-uri", "https://x.example/cb"))
    assert "--redirect-uri: applies to OAuth 2.0 authorization code connections" in line


# ---------------------------------------------------------------- API keys and client credentials


def _keyco(cli: Run, name: str, auth_type: str, *extra: str) -> None:
    made = cli("profile", "create", "keyco", "--name", name, "--auth-type", auth_type, *extra)
    assert made.code == 0, made.err


@pytest.mark.parametrize(
    ("auth_type", "option", "sent"),
    [("api_key", "--api-key-env", ("X-Api-Key", f"Key {API_KEY}")), ("query_key", "--query-api-key-env", None)],
)
def test_an_api_key_in_a_header_or_the_query(
    cli: Run, api: FakeApi, auth_type: str, option: str, sent: tuple[str, str] | None
) -> None:
    _keyco(cli, "k", auth_type)
    made = cli("connect", "k", option, "API_KEY", "--json")
    assert made.code == 0, made.err
    data = json.loads(made.out)
    assert data["connection"]["auth_kind"] == "api_key" and data["connection"]["identity"] == {}
    assert data["test"]["ok"] is True
    _, path, headers = api.seen[-1]
    if sent is None:
        assert path == f"/me?key={API_KEY}"
    else:
        assert path == "/me" and headers[sent[0]] == sent[1]
    cid = data["connection"]["id"]
    assert cli("connections", "test", cid).out == "ok: GET /me answered 200\n"
    assert json.loads(cli("request", cid, "GET", "/me").out) == {"me": "keyco"}


def test_an_api_key_the_provider_refuses(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    _keyco(cli, "k", "api_key")
    monkeypatch.setenv("OLD_KEY", "Key-Old-12345678")
    line = one_error_line(cli("connect", "k", "--api-key-env", "OLD_KEY"))
    assert "KeyCo refused the API key credentials" in line and "Create a new key in KeyCo's settings" in line
    assert connections(cli) == []


def test_client_credentials_connect_with_no_credentials_and_reconnect_fetches_again(cli: Run, api: FakeApi) -> None:
    _keyco(cli, "m", "machine", "--client-id", CLIENT_ID, "--client-secret-env", "CLIENT_SECRET")
    refused = one_error_line(cli("connect", "m", "--api-key-env", "API_KEY"))
    assert "--api-key: is a credential of keyco api_key connections, but profile 'm' uses machine" in refused
    assert "which takes no credential options" in refused
    made = cli("connect", "m")
    assert made.code == 0, made.err
    assert "auth type       machine (Machine to machine)" in made.out and "client_id       machine-client" in made.out
    assert "ok: GET /me answered 200" in made.out
    (conn,) = connections(cli)
    assert conn["auth_kind"] == "oauth2_client_credentials" and conn["expires_at"] is not None
    fetched = len([p for _, p, _ in api.seen if p == "/token"])
    again = cli("reconnect", conn["id"], "--json")
    assert again.code == 0, again.err
    assert json.loads(again.out)["connection"]["id"] == conn["id"]
    assert len([p for _, p, _ in api.seen if p == "/token"]) == fetched + 1


def _words(lines: Sequence[str]) -> list[list[str]]:
    return [line.split() for line in lines]


def test_hibob_alone_lists_no_keyco_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(tmp_path / "keys.json"))
    home = str(tmp_path / "home")
    made = run_cli(
        ["--home", home, "profile", "create", "hibob", "--name", "su", "--auth-type", "service_user"], hibob()
    )
    assert made.code == 0
    result = run_cli(["--home", home, "connect", "su", "--query-api-key-env", "X"], hibob())
    assert "unrecognized arguments: --query-api-key-env (their values are not shown)" in result.err
    assert result.code == 2 and " X " not in result.err


def test_providers_schema_prints_the_connection_form(cli: Run) -> None:
    form = json.loads(cli("providers", "schema", "hibob", "--auth-type", "service_user", "--connection").out)
    assert form["x-field-order"] == ["service_user_id", "service_user_token"]
    assert form["properties"]["service_user_token"]["writeOnly"] is True
    profile = json.loads(cli("providers", "schema", "hibob", "--auth-type", "service_user").out)
    assert profile["x-field-order"] == ["name", "environment"]


def test_providers_show_says_who_gives_what_for_each_auth_kind(cli: Run, api: FakeApi) -> None:
    shown = cli("providers", "show", "keyco").out
    assert "    header: X-Api-Key: Key <api_key>\n" in shown
    assert "    query parameter: ?key=<query_api_key>\n" in shown
    assert "    when refused: Create a new key in KeyCo's settings and connect again with it.\n" in shown
    assert "    connect: each connection holds the end user's api_key (connector connect PROFILE --help)\n" in shown
    assert f"    token URL:       {api.url}/token\n" in shown
    assert "    connect: no end user; the profile's client fetches a token (connector connect PROFILE)\n" in shown
    assert "\nConnection test: GET /me\n" in shown
    hibob_text = cli("providers", "show", "hibob").out
    assert "connect: each connection holds the end user's service_user_id, service_user_token" in hibob_text


def test_the_token_is_prompted_for_without_echo_on_a_terminal(tmp_path: Path) -> None:
    import os
    import pty
    import select
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_"))} | {
        "CONNECTOR_HOME": str(tmp_path / "h"),
        "CONNECTOR_CORE_KEY_FILE": str(tmp_path / "k.json"),
        "CONNECTOR_CORE_PLUGINS": "hibob",
    }
    made = run_connector(["profile", "create", "hibob", "--name", "su", "--auth-type", "service_user"], env=env)
    assert made.returncode == 0, made.stderr
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI, with the pty as its controlling terminal
        argv = ["connect", "su", "--no-test", "--service-user-id", GOOD_ID]
        os.execvpe(sys.executable, [sys.executable, "-m", "connector_core", *argv], env)
    output = b""
    deadline = time.monotonic() + 30
    sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if not sent and b"Service user token: " in output:
            os.write(fd, GOOD_TOKEN.encode() + b"\r")
            sent = True
    _, status = os.waitpid(pid, 0)
    assert sent, output
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert GOOD_TOKEN.encode() not in output  # not echoed, not printed
    assert b"Connected." in output and GOOD_ID.encode() in output


def test_a_misspelt_secret_option_is_named_without_its_value(cli: Run, su: str) -> None:
    # The run helper fails the test if GOOD_TOKEN appears anywhere in the output.
    made = cli("profile", "create", "hibob", "--name", "x", "--client-secrt", GOOD_TOKEN)
    assert "unrecognized arguments: --client-secrt (their values are not shown)" in one_error_line(made)
    inline = cli("connect", su, f"--service-user-tokn={GOOD_TOKEN}")
    assert "unrecognized arguments: --service-user-tokn (their values are not shown)" in one_error_line(inline)
    updated = cli("profile", "update", su, "--client-secrt", GOOD_TOKEN)
    assert made.code == updated.code == 2
