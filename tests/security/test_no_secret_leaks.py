"""Secrets: run the CLI commands of the suite's scenarios and the library's flows with logging at
DEBUG, and look for every secret value used in stdout, stderr, every log record (ours and the
libraries' under us: httpx, httpcore, oauthlib), exception texts and tracebacks, reprs, and the
store's files (db, -wal, -shm). Zero hits.

connector-core itself does not log; root logging is set to DEBUG so that anything under it that
does (httpx logs every URL at INFO, httpcore headers at DEBUG) is captured and scanned too.

The provider (the emulator) runs in a subprocess, as a real one would, and the person's browser
is ``http.client``, so that the logs scanned are only those of the process under test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import io
import json
import logging
import os
import pickle
import re
import socket
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
import httpx
import pytest
from support import REPO

from connector_core import Store, load_plugins, oauth, validate_profile
from connector_core import cli as cli_module
from connector_core._transport import HttpResponse
from connector_core.connector import AuthorizationStart, Connector, _Context
from connector_core.crypto import KeyRing
from connector_core.emulator.state import ClientCredentials
from connector_core.errors import ConnectorError
from connector_core.models import ClientAuthMethod
from connector_core.profiles import Profile, ProfileDraft
from connector_core.secret import Secret

PLATFORM = "https://platform.example/connect/oauth2/hibob/callback"
CALLBACK_PATH = "/connect/oauth2/hibob/callback"
WRONG_SECRET = "Wr0ng-Secret-That-Must-Not-Show"
URLS = ("authorize_url", "token_url", "revocation_url", "api_base_url")

EMULATOR = textwrap.dedent(
    """
    import json, sys
    from connector_core import load_plugins
    from connector_core.emulator import start_emulator
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    decl, spec = plugins.declaration("hibob"), plugins.emulator_spec("hibob")
    with start_emulator(decl, spec, redirect_uris=sys.argv[1:]) as emu:
        endpoints = emu.endpoints("sandbox")
        creds = emu.app.credentials[endpoints.credential_set]
        print(json.dumps({
            "app_id": emu.app.app_id, "client_id": creds.client_id, "client_secret": creds.client_secret.reveal(),
            "uninstall_url": emu.uninstall_url, **{k: getattr(endpoints, k) for k in
            ("authorize_url", "token_url", "revocation_url", "api_base_url")},
        }), flush=True)
        sys.stdin.read()
    """
)


@attrs.define
class Provider:
    """The emulator, in its own process."""

    info: dict[str, str]
    proc: subprocess.Popen[str]

    def uninstall(self) -> None:
        status, _, _ = browse(self.info["uninstall_url"], method="POST")
        assert status == 200


def browse(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """A request the way a browser makes it, with no logging at all."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.getheader("location") or "", answer.read().decode("utf-8", "replace")
    finally:
        conn.close()


def consent(url: str, *, deliver: bool) -> str:
    """Consent at the provider; with ``deliver``, follow the redirect to the CLI's loopback listener."""
    status, location, _ = browse(url, headers={"X-Emulator-Consent": "allow"})
    assert status in (302, 303) and location
    if deliver:
        page_status, _, page = browse(location)
        assert page_status in (200, 400), page
    return location


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def provider() -> Iterator[Provider]:
    redirect = f"http://127.0.0.1:{free_port()}{CALLBACK_PATH}"
    proc = subprocess.Popen(
        [sys.executable, "-c", EMULATOR, PLATFORM, redirect],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    info["redirect_uri"] = redirect
    yield Provider(info, proc)
    proc.communicate(input="", timeout=30)


@attrs.define
class Seen:
    """Every secret value used, every text shown, every exception raised."""

    secrets: set[str] = attrs.field(factory=set)
    texts: list[tuple[str, str]] = attrs.field(factory=list)

    def add(self, *values: Secret | str | None) -> None:
        for value in values:
            text = value.reveal() if isinstance(value, Secret) else value
            if text and len(text) >= 8:  # test inputs such as code=x are not secrets worth a scan
                self.secrets.add(text)

    def show(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def error(self, where: str, exc: BaseException) -> None:
        self.show(where, f"{exc}\n{exc!r}\n{''.join(traceback.format_exception(exc))}")


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Record each secret where it is made or received: verifiers, codes, tokens, Basic credentials."""
    record = Seen()
    real_verifier, real_callback = oauth.new_code_verifier, oauth.parse_callback
    real_tokens, real_basic = oauth.parse_token_response, oauth.basic_auth_header

    def new_code_verifier() -> Secret:
        verifier = real_verifier()
        record.add(verifier)
        return verifier

    def parse_callback(callback: Any) -> oauth.CallbackParams:
        params = real_callback(callback)
        record.add(params.code)
        return params

    def parse_token_response(*args: Any, **kwargs: Any) -> oauth.TokenSet:
        tokens = real_tokens(*args, **kwargs)
        record.add(tokens.access_token, tokens.refresh_token)
        return tokens

    def basic_auth_header(client_id: str, client_secret: Secret) -> str:
        header = real_basic(client_id, client_secret)
        record.add(client_secret, header.split()[1])
        return header

    monkeypatch.setattr(oauth, "new_code_verifier", new_code_verifier)
    monkeypatch.setattr(oauth, "parse_callback", parse_callback)
    monkeypatch.setattr(oauth, "parse_token_response", parse_token_response)
    monkeypatch.setattr(oauth, "basic_auth_header", basic_auth_header)
    return record


def scan(seen: Seen, caplog: pytest.LogCaptureFixture, files: list[Path]) -> None:
    logs = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    texts = [*seen.texts, ("logs", logs)]
    hits: list[str] = []
    for secret in sorted(seen.secrets):
        forms = {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}
        for where, text in texts:
            hits += [f"{where}: {secret[:4]}..." for form in forms if form in text]
        for path in files:
            if path.exists() and secret.encode() in path.read_bytes():
                hits.append(f"{path.name}: {secret[:4]}...")
    assert hits == []


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)
    return caplog


def test_cli_scenarios_leak_no_secret(
    provider: Provider,
    seen: Seen,
    debug_logging: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    info = provider.info
    home, key_file = tmp_path / "home", tmp_path / "keys.json"
    for name, value in {
        "CONNECTOR_HOME": str(home),
        "CONNECTOR_CORE_KEY_FILE": str(key_file),
        "CONNECTOR_CORE_PLUGINS": "hibob",
        "EMU_SECRET": info["client_secret"],
        "WRONG_SECRET": WRONG_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    seen.add(info["client_secret"], WRONG_SECRET)
    monkeypatch.setattr("connector_core.cli.flow.open_in_browser", lambda url, env: bool(consent(url, deliver=True)))
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)

    def cli(*argv: str, code: int = 0, stdin: str = "") -> str:
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli_module.main(list(argv), plugins=plugins)
        seen.show(" ".join(argv), out.getvalue() + err.getvalue())
        assert status == code, (argv, out.getvalue(), err.getvalue())
        assert "Traceback" not in err.getvalue()
        return out.getvalue()

    options = [f"--endpoint={k}={info[k]}" for k in URLS] + [
        "--app-id",
        info["app_id"],
        "--client-id",
        info["client_id"],
    ]
    cli("profile", "create", "hibob", "--name", "acme", "--client-secret-env", "EMU_SECRET", *options,
        "--redirect-uri", info["redirect_uri"])  # fmt: skip
    cli("profile", "create", "hibob", "--name", "wrong", "--client-secret-env", "WRONG_SECRET", *options,
        "--redirect-uri", PLATFORM)  # fmt: skip
    cli("profile", "create", "hibob", "--name", "argv", *options, "--client-secret", WRONG_SECRET, code=2)
    for args in (["show", "acme"], ["show", "acme", "--json"], ["list"], ["list", "--json"]):
        cli("profile", *args)
    cli("profile", "update", "acme", "--client-secret-env", "EMU_SECRET", "--json")

    connected = json.loads(cli("connect", "acme", "--json"))
    cid = connected["connection"]["id"]
    assert connected["test"]["ok"] is True
    cli("connections", "list")
    cli("connections", "list", "--json")
    cli("connections", "show", cid, "--json")
    cli("connections", "test", cid)
    cli("connections", "refresh", cid, "--force", "--json")
    cli("connections", "refresh", "--all", "--force")
    cli("request", cid, "GET", "/company/named-lists")
    cli("request", cid, "POST", "/people/search", "--data", '{"fields": ["root.id"]}')
    cli("keys", "list", "--json")
    cli("keys", "rotate", "--json")
    cli("request", cid, "GET", "/company/named-lists")

    # The provider revokes the grant; the connection says so; reconnect repairs it.
    provider.uninstall()
    cli("connections", "refresh", cid, "--force", code=1)
    cli("connections", "attention")
    cli("reconnect", cid, code=1)
    cli("reconnect", cid, "--yes", "--json")
    cli("connections", "show", cid)
    cli("keys", "rotate", "--retire")

    cli("connections", "revoke", cid)
    cli("request", cid, "GET", "/company/named-lists", code=1)

    # Paste mode with a forged callback, a provider-initiated one, and a wrong client secret.
    provider.uninstall()
    monkeypatch.setattr("connector_core.cli.flow.open_in_browser", lambda url, env: True)
    cli("connect", "wrong", stdin=f"{PLATFORM}?code=forged&state=forged\n", code=1)
    cli("connect", "wrong", "--provider-initiated", f"{PLATFORM}?code=x", code=1)
    start = Connector(Store.open(home), plugins).begin("wrong")
    location = consent(start.url, deliver=False)
    with pytest.raises(ConnectorError) as wrong:
        Connector(Store.open(home), plugins).complete(location)
    assert "invalid_client" in str(wrong.value)
    seen.error("complete with the wrong secret", wrong.value)
    cli("connections", "delete", cid)
    cli("profile", "delete", "acme", "--force")

    store = Store.open(home)
    seen.add(*(base64.b64encode(k).decode() for k in store.keyring._keys.values()))
    assert len(seen.secrets) >= 12  # the scan looks for something
    scan(seen, debug_logging, [home / "connector.db", home / "connector.db-wal", home / "connector.db-shm"])


def test_library_flows_leak_no_secret(
    provider: Provider, seen: Seen, debug_logging: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from connector_hibob import plugin

    info = provider.info
    plugins = load_plugins([plugin], entry_points=False)
    home = tmp_path / "home"
    store = Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": str(tmp_path / "keys.json")})
    draft = validate_profile(
        plugins.declaration("hibob"),
        name="acme",
        environment="sandbox",
        values={"app_id": info["app_id"], "client_id": info["client_id"], "client_secret": info["client_secret"]},
        endpoints={"redirect_uri": PLATFORM, **{k: info[k] for k in URLS}},
    )
    seen.add(info["client_secret"])
    store.create_profile(draft)
    connector = Connector(store, plugins)
    start = connector.begin("acme")
    location = consent(start.url, deliver=False)
    cid = connector.complete(location, profile="acme").connection.id
    replays: list[Callable[[], object]] = [
        lambda: connector.complete(location),
        lambda: connector.complete(f"{PLATFORM}?code=c&state=s"),
    ]
    for attempt in replays:
        with pytest.raises(ConnectorError) as replay:
            attempt()
        seen.error("replayed callback", replay.value)
    connector.refresh(cid, force=True)
    assert connector.test(cid).ok
    with httpx.Client(base_url=info["api_base_url"], auth=connector.auth(cid), trust_env=False) as client:
        assert client.get("/company/named-lists").status_code == 200

    async def run_async() -> None:
        await connector.arefresh(cid, force=True)
        assert (await connector.arequest(cid, "GET", "/company/named-lists")).status == 200
        await connector.aclose()

    asyncio.run(run_async())
    provider.uninstall()
    with pytest.raises(ConnectorError) as gone:
        connector.refresh(cid, force=True)
    seen.error("refresh after uninstall", gone.value)
    connector.revoke(cid)
    connector.close()
    assert len(seen.secrets) >= 6
    scan(seen, debug_logging, [home / "connector.db", home / "connector.db-wal", home / "connector.db-shm"])


def echoing_provider(status: int) -> Callable[[httpx.Request], httpx.Response]:
    """A provider that echoes every value of our request into its error description."""

    def answer(request: httpx.Request) -> httpx.Response:
        sent = dict(item.split("=", 1) for item in request.content.decode().split("&"))
        echoed = " ".join(f"{k}={v}" for k, v in sent.items()) + " auth=" + request.headers.get("authorization", "")
        return httpx.Response(status, json={"error": f"invalid_grant {echoed}"[:60], "error_description": echoed})

    return answer


@pytest.mark.parametrize("status", [400, 401])
def test_an_echoing_provider_gets_no_secret_into_errors(seen: Seen, tmp_path: Path, status: int) -> None:
    """A provider that echoes what it received into its error (malicious, or merely careless):
    our error texts show ``***`` in place of each secret."""
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    store = Store.open(tmp_path / "h", env={"CONNECTOR_CORE_KEY_FILE": str(tmp_path / "k.json")})
    secret = "Echoed-Client-Secret-123"
    draft = validate_profile(
        plugins.declaration("hibob"),
        name="acme",
        environment="sandbox",
        values={"app_id": "APP", "client_id": "cid", "client_secret": secret},
        endpoints={"redirect_uri": PLATFORM, "revocation_url": "https://provider.example/revoke"},
    )
    profile = store.create_profile(draft)
    tokens = oauth.TokenSet(Secret("Stored-Access-Token-1"), "Bearer", Secret("Stored-Refresh-Token-1"), 0.0)
    cid = store.save_connection(profile, tokens, requested=(), granted=(), identity={}, provider_initiated=False).id
    client = httpx.Client(transport=httpx.MockTransport(echoing_provider(status)))
    connector = Connector(store, plugins, client=client)
    seen.add(secret, "Stored-Access-Token-1", "Stored-Refresh-Token-1")
    start = connector.begin("acme")
    code = "Authorization-Code-Echoed"
    seen.add(code)
    state = dict(item.split("=", 1) for item in urlsplit(start.url).query.split("&"))["state"]
    for action in (
        lambda: connector.complete(f"{PLATFORM}?code={code}&state={state}"),
        lambda: connector.refresh(cid, force=True),
        lambda: connector.revoke(cid),
    ):
        with pytest.raises(ConnectorError) as info:
            action()
        assert "***" in str(info.value)  # the echo arrived, and was masked
        seen.error("echo", info.value)
        if isinstance(info.value, oauth.OAuthError):
            seen.show("echo description", f"{info.value.description} {info.value.error}")
    assert len(seen.secrets) >= 5
    hits = [(w, s[:4]) for s in seen.secrets for w, t in seen.texts if s in t or quote(s, safe="") in t]
    assert hits == []


def test_reprs_hide_secrets(tmp_path: Path) -> None:
    """Every record that holds a secret keeps it out of ``repr``/``str``/formatting."""
    from connector_hibob import plugin

    value = "Repr-Secret-Value-42"
    secret = Secret(value)
    decl = load_plugins([plugin], entry_points=False).declaration("hibob")
    keyring = KeyRing.generate(tmp_path / "keys.json")
    profile = Profile(
        id="prof_1",
        name="p",
        provider="hibob",
        auth_type="oauth2",
        environment="sandbox",
        credential_set="development",
        values=(),
        secret_names=("client_secret",),
        scopes=(),
        actions=(),
        created_at="",
        updated_at="",
        secrets=(("client_secret", secret),),
    )
    draft = ProfileDraft("p", "hibob", "oauth2", "sandbox", "development", (), (("client_secret", secret),), (), ())
    context = _Context(decl, profile, decl.auth_type(), "https://a", "https://t", None, "https://api", "cid", secret)  # type: ignore[arg-type]
    requests = [
        oauth.token_request(
            "https://p.example/token",
            code=secret,
            redirect_uri=PLATFORM,
            verifier=secret,
            client_id="cid",
            client_secret=secret,
            method=ClientAuthMethod.CLIENT_SECRET_BASIC,
        ),
        oauth.refresh_request(
            "https://p.example/token",
            refresh_token=secret,
            scopes=None,
            scope_separator=" ",
            client_id="cid",
            client_secret=secret,
            method=ClientAuthMethod.CLIENT_SECRET_POST,
        ),
    ]
    objects: list[object] = [
        secret,
        oauth.TokenSet(secret, "Bearer", secret, None),
        oauth.CallbackParams(code=secret, state=value),
        *requests,
        HttpResponse(200, {"set-cookie": value}, value.encode()),
        AuthorizationStart("att_1", f"https://p.example/a?state={value}", PLATFORM, 0.0),
        ClientCredentials("development", "cid", secret),
        keyring,
        profile,
        draft,
        context,
    ]
    keys = [text for key in keyring._keys.values() for text in (base64.b64encode(key).decode(), repr(key))]
    for obj in objects:
        for text in (repr(obj), str(obj), f"{obj}", f"{obj!r}"):
            assert value not in text and quote(value) not in text, type(obj).__name__
            assert not [key for key in keys if key in text], type(obj).__name__
    assert all(value in r.body.decode() for r in requests)  # the secret is there, only not shown
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_connect_emulator_command_logs_no_code(
    seen: Seen, debug_logging: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONNECTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(tmp_path / "keys.json"))
    from connector_hibob import plugin

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert (
            cli_module.main(["connect", "hibob", "--emulator"], plugins=load_plugins([plugin], entry_points=False)) == 0
        )
    seen.show("connect --emulator", out.getvalue() + err.getvalue())
    assert len(seen.secrets) >= 4
    scan(seen, debug_logging, [])


def test_tls_verification_and_transport_defaults(tmp_path: Path) -> None:
    """The security review, in code: TLS verification is never switched off, the library's HTTP
    clients follow no redirects and ignore proxy/netrc settings from the environment, and the
    oauthlib switch that allows http everywhere is never set."""
    from connector_hibob import plugin

    package = REPO
    sources = [*(package / "connector_core").rglob("*.py"), *(package / "providers").rglob("*.py")]
    assert len(sources) > 20
    forbidden = ("verify=False", "CERT_NONE", "_create_unverified_context", "check_hostname = False")
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert not [word for word in forbidden if word in text], path
        assert not re.search(r"(environ|putenv)[^\n]*OAUTHLIB_INSECURE_TRANSPORT", text), path
    store = Store.open(tmp_path, env={"CONNECTOR_CORE_KEY_FILE": str(tmp_path / "k.json")})
    connector = Connector(store, load_plugins([plugin], entry_points=False))
    for client in (connector.client, connector.async_client):
        assert client.follow_redirects is False and client.trust_env is False
        assert client.timeout.connect is not None and client.timeout.read is not None
    oauth.authorization_url(  # http is allowed for loopback per URL, never by oauthlib's global switch
        "http://127.0.0.1:9/authorize",
        client_id="cid",
        redirect_uri="http://127.0.0.1:9/cb",
        scopes=["a"],
        scope_separator=" ",
        state="s",
        verifier=oauth.new_code_verifier(),
    )
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ
    connector.close()
    asyncio.run(connector.aclose())
