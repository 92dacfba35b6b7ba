"""`connector connect`, `connections ...`, `request` and `reconnect` as a person runs them."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import run_connector

from connector_core import load_plugins
from connector_core.emulator import CONSENT_HEADER, RunningEmulator, start_emulator

PLATFORM_REDIRECT = "https://platform.example/connect/oauth2/hibob/callback"


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    from connector_hibob import plugin

    plugins = load_plugins([plugin], entry_points=False)
    with start_emulator(
        plugins.declaration("hibob"), plugins.emulator_spec("hibob"), redirect_uris=[PLATFORM_REDIRECT]
    ) as running:
        yield running


@pytest.fixture
def env(tmp_path: Path, emu: RunningEmulator) -> dict[str, str]:
    creds = emu.app.credentials[emu.endpoints("sandbox").credential_set]
    return {
        "CONNECTOR_HOME": str(tmp_path / "home"),
        "CONNECTOR_CORE_KEY_FILE": str(tmp_path / "keys.json"),
        "CONNECTOR_CORE_PLUGINS": "hibob",
        "EMU_SECRET": creds.client_secret.reveal(),
    }


def create_profile(env: dict[str, str], emu: RunningEmulator, redirect: str, name: str = "acme") -> None:
    endpoints = emu.endpoints("sandbox")
    creds = emu.app.credentials[endpoints.credential_set]
    result = run_connector(
        [
            "profile",
            "create",
            "hibob",
            "--name",
            name,
            "--app-id",
            emu.app.app_id,
            "--client-id",
            creds.client_id,
            "--client-secret-env",
            "EMU_SECRET",
            "--redirect-uri",
            redirect,
            "--endpoint",
            f"authorize_url={endpoints.authorize_url}",
            "--endpoint",
            f"token_url={endpoints.token_url}",
            "--endpoint",
            f"revocation_url={endpoints.revocation_url}",
            "--endpoint",
            f"api_base_url={endpoints.api_base_url}",
        ],
        env=env,
    )
    assert result.returncode == 0, result.stderr


class Interactive:
    """A `connector` subprocess whose stderr lines we can wait for."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")} | env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector_core", *args],
            env=full,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)

    def wait_for_url(self) -> str:
        while True:
            line = self.lines.get(timeout=30)
            if line.startswith("http"):
                return line.strip()

    def finish(self, stdin: str = "") -> tuple[int, str, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(stdin)
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(timeout=60)
        self.pump.join(timeout=10)  # stderr is read to its end before we look at it
        return self.proc.returncode, out, "".join(self.err)


def browser_consent(url: str, follow: bool) -> str:
    with httpx.Client(follow_redirects=False, trust_env=False) as browser:
        answer = browser.get(url, headers={CONSENT_HEADER: "allow"})
        location = answer.headers["location"]
        if follow:  # deliver the callback to the CLI's loopback listener, as a browser would
            page = browser.get(location)
            assert page.status_code == 200 and "Connected" in page.text
            assert page.headers["referrer-policy"] == "no-referrer"
    return location


def test_readme_main_command_connect_hibob_emulator(tmp_path: Path) -> None:
    env = {
        "CONNECTOR_HOME": str(tmp_path / "h"),
        "CONNECTOR_CORE_KEY_FILE": str(tmp_path / "k.json"),
        "CONNECTOR_CORE_PLUGINS": "hibob",
    }
    result = run_connector(["connect", "hibob", "--emulator"], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Connected.\n")
    assert "status          connected" in result.stdout and "companyId" in result.stdout
    assert "test            ok: POST /people/search answered 200" in result.stdout
    assert "Traceback" not in result.stderr
    listed = json.loads(run_connector(["connections", "list", "--json"], env=env).stdout)
    assert [c["profile"] for c in listed["connections"]] == ["hibob-emulator"]
    # The emulator and its port are gone: the record stays, not as a usable connection.
    (left,) = listed["connections"]
    assert left["status"] == "disconnected" and left["expires_at"] is None
    assert "emulator" in left["status_reason"] and "stopped" in left["status_reason"]
    assert "disconnected, without tokens" in result.stdout


def test_pasted_callback_mode(env: dict[str, str], emu: RunningEmulator) -> None:
    create_profile(env, emu, PLATFORM_REDIRECT)
    run = Interactive(["connect", "acme", "--no-browser", "--json"], env)
    location = browser_consent(run.wait_for_url(), follow=False)
    code, out, err = run.finish(location + "\n")
    assert code == 0, err
    data = json.loads(out)
    assert data["connection"]["status"] == "connected" and data["test"]["ok"] is True
    assert env["EMU_SECRET"] not in out + err
    assert "code=" not in err.split("paste the full URL")[-1]  # the pasted callback is not echoed


def test_loopback_mode_and_connection_commands(env: dict[str, str], emu: RunningEmulator, tmp_path: Path) -> None:
    sock_port = _free_port()
    redirect = f"http://127.0.0.1:{sock_port}/connect/oauth2/hibob/callback"
    emu.register_redirect_uri(redirect)
    create_profile(env, emu, redirect)
    run = Interactive(["connect", "acme", "--no-browser"], env)
    browser_consent(run.wait_for_url(), follow=True)
    code, out, err = run.finish()
    assert code == 0, err
    assert "Connected." in out
    cid = out.split("connection")[1].split()[0]

    shown = json.loads(run_connector(["connections", "show", cid, "--json"], env=env).stdout)
    assert shown["status"] == "connected" and shown["history"][0]["reason"] == "authorized"
    assert run_connector(["connections", "test", cid], env=env).stdout.startswith("ok: POST /people/search")
    refreshed = json.loads(run_connector(["connections", "refresh", cid, "--force", "--json"], env=env).stdout)
    assert refreshed["refreshed_at"] is not None
    bulk = json.loads(run_connector(["connections", "refresh", "--all", "--force", "--json"], env=env).stdout)
    assert bulk["refreshed"] == 1 and bulk["failed"] == []
    request = run_connector(["request", cid, "POST", "/people/search", "--data", '{"fields": ["root.id"]}'], env=env)
    assert request.returncode == 0 and json.loads(request.stdout)["employees"]
    bad_json = run_connector(["request", cid, "POST", "/people/search", "--data", "{nope"], env=env)
    assert bad_json.returncode == 1 and "--data: is not valid JSON" in bad_json.stderr
    missing = run_connector(["request", cid, "GET", "/nowhere"], env=env)
    assert missing.returncode == 1 and "answered HTTP 404" in missing.stderr
    revoked = run_connector(["connections", "revoke", cid], env=env)
    assert revoked.returncode == 0 and "revoked at the provider" in revoked.stdout
    after = json.loads(run_connector(["connections", "list", "--json"], env=env).stdout)["connections"]
    assert after[0]["status"] == "revoked"
    gone = run_connector(["connections", "delete", cid], env=env)
    assert gone.returncode == 0
    assert json.loads(run_connector(["connections", "list", "--json"], env=env).stdout)["connections"] == []
    unknown = run_connector(["connections", "show", cid], env=env)
    assert unknown.returncode == 1 and f"unknown connection '{cid}'" in unknown.stderr


def test_reconnect_cli_shows_the_uninstall_steps(env: dict[str, str], emu: RunningEmulator) -> None:
    create_profile(env, emu, PLATFORM_REDIRECT)
    run = Interactive(["connect", "acme", "--no-browser", "--json"], env)
    location = browser_consent(run.wait_for_url(), follow=False)
    code, out, err = run.finish(location + "\n")
    assert code == 0, err
    cid = json.loads(out)["connection"]["id"]
    emu.uninstall()
    emu.advance_clock(7200)
    broken = run_connector(["request", cid, "GET", "/company/named-lists"], env=env)
    assert broken.returncode == 1 and f"connection {cid} needs reconnecting" in broken.stderr
    attention = json.loads(run_connector(["connections", "attention", "--json"], env=env).stdout)
    assert [c["id"] for c in attention["connections"]] == [cid]

    unconfirmed = run_connector(["reconnect", cid], env=env, input="")
    assert unconfirmed.returncode == 1
    assert "Open Marketplace from the waffle menu. [top-left corner]" in unconfirmed.stderr
    assert "run again with --yes" in unconfirmed.stderr

    run = Interactive(["reconnect", cid, "--yes", "--no-browser", "--json"], env)
    location = browser_consent(run.wait_for_url(), follow=False)
    code, out, err = run.finish(location + "\n")
    assert code == 0, err
    assert json.loads(out)["connection"]["id"] == cid


def test_already_installed_error_prints_the_steps(env: dict[str, str], emu: RunningEmulator) -> None:
    create_profile(env, emu, PLATFORM_REDIRECT)
    for expected in (0, 1):
        run = Interactive(["connect", "acme", "--no-browser"], env)
        location = browser_consent(run.wait_for_url(), follow=False)
        code, _, err = run.finish(location + "\n")
        assert code == expected, err
    assert "the app is already installed in this company" in err
    assert "then connect again" in err and "reconnect" not in err.split("connector: error:")[-1].split("\n")[0]
    # The profile points at the emulator: its advice is the emulator's uninstall, not Bob's Marketplace.
    assert f"connector emulate hibob --uninstall --url {emu.base_url.rstrip('/')}" in err
    assert "Marketplace" not in err.split("connector: error:")[-1].split("\n", 1)[-1]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
