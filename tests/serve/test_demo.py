"""``connector serve --emulator`` as a real process on a free 127.0.0.1 port: a temporary store
and folder of its own (gone after SIGTERM), a generated API key in a 0600 file that is never
printed, the one curl that creates a connect session, and profiles of the emulator's test app
that work: the printed install link and the issued service user both connect."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import support.keysonly as keysonly
from support import hibob, multiauth

from connector_core import Connector, EndUser, Owner, load_plugins
from connector_core.crypto import ENV_KEY_FILE
from connector_core.emulator import CONSENT_HEADER
from connector_core.store import Store
from connector_core.testing import free_port, run_cli
from connector_hibob import plugin


class Demo:
    """A running ``connector serve --emulator``: its process, port and standard error so far."""

    def __init__(self, proc: subprocess.Popen[str], port: int, err_file: Path) -> None:
        self.proc = proc
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.err_file = err_file

    @property
    def err(self) -> str:
        return self.err_file.read_text()

    def found(self, pattern: str) -> str:
        match = re.search(pattern, self.err)
        assert match is not None, f"{pattern!r} not in:\n{self.err}"
        return match.group(1)

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as a service manager stops it; its exit status and standard output."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return self.proc.returncode, out


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_"))}
    # The user's own store, which the demo must leave alone; temporary folders under tmp_path.
    (tmp_path / "tmp").mkdir()
    return {**env, "CONNECTOR_HOME": str(tmp_path / "real-home"), "TMPDIR": str(tmp_path / "tmp")}


def _start(tmp_path: Path, *options: str) -> Demo:
    port = free_port()
    err_file = tmp_path / "stderr"
    with err_file.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector_core", "serve", "--emulator", *options, "--port", str(port)],
            env=_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    demo = Demo(proc, port, err_file)
    for _ in range(300):  # a bound on tries, not a timing assertion
        if proc.poll() is not None:
            raise AssertionError(f"connector serve --emulator exited with {proc.returncode}:\n{demo.err}")
        try:
            health = httpx.get(f"{demo.base}/healthz", timeout=2, trust_env=False)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        return demo
    proc.kill()
    raise AssertionError("connector serve --emulator never answered")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = _start(tmp_path)
    yield running
    if running.proc.poll() is None:
        running.proc.kill()
        running.proc.communicate(timeout=30)


def test_the_demo_serves_with_a_key_in_a_private_file_it_never_prints(demo: Demo, tmp_path: Path) -> None:
    key_file = Path(demo.found(r"API key:\s+in (\S+) \(mode 0600\)"))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 40 and key not in demo.err
    folder = key_file.parent
    assert folder.parent == tmp_path / "tmp" and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert f"store: {folder / 'home'}, removed at exit" in demo.err
    # The one curl that creates a connect session: the key read from the file, never inline.
    curl = (
        f"curl -s -X POST {demo.base}/v1/connect/sessions "
        f'-H "Authorization: Bearer $(cat {key_file})" '
        "-H 'Content-Type: application/json' "
        """-d '{"end_user": {"id": "demo-user"}, "profile": "hibob-emulator"}'"""
    )
    assert curl in [line.strip() for line in demo.err.splitlines()]
    made = httpx.post(
        f"{demo.base}/v1/connect/sessions",
        json={"end_user": {"id": "demo-user"}, "profile": "hibob-emulator"},
        headers={"Authorization": f"Bearer {key}"},
        trust_env=False,
    )
    assert made.status_code == 201 and made.json()["connect_url"].startswith(f"{demo.base}/connect/cs_")
    page = httpx.get(made.json()["connect_url"], trust_env=False)
    assert page.status_code == 200 and "Continue to HiBob" in page.text
    assert "/connect/cs_…" in demo.err and made.json()["token"] not in demo.err  # the request log masks it
    listed = httpx.get(f"{demo.base}/v1/connections", headers={"Authorization": f"Bearer {key}"}, trust_env=False)
    assert listed.status_code == 200 and listed.json() == {"data": [], "next": None}
    refused = httpx.get(f"{demo.base}/v1/connections", trust_env=False)
    assert refused.status_code == 401
    code, out = demo.stop()
    assert code == 0 and "connector: serve stopped" in demo.err
    assert not folder.exists()  # the store, its key ring, the API key and the demo credentials
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "real-home").exists()  # the user's store was never opened
    assert key not in out + demo.err


def test_the_demos_profiles_take_the_printed_install_and_the_issued_service_user(demo: Demo) -> None:
    key_file = Path(demo.found(r"API key:\s+in (\S+) \(mode 0600\)"))
    folder = key_file.parent
    callback = f"{demo.base}/connect/oauth2/hibob/callback"
    assert "profiles: hibob-emulator, hibob-emulator-service_user" in demo.err
    # The Marketplace-style install link: consent at the emulator sends a code to the service's callback.
    install = demo.found(r"\n\s+(http://127\.0\.0\.1:\d+/\S+/oauth2/authorize\?\S+)\n")
    assert "state=" not in install
    with httpx.Client(trust_env=False, follow_redirects=False) as browser:
        answer = browser.get(install, headers={CONSENT_HEADER: "allow"})
    assert answer.status_code in (302, 303) and answer.headers["location"].startswith(callback + "?code=")
    # The service's callback takes it: an unclaimed connection, and a page saying what to do next.
    with httpx.Client(trust_env=False, follow_redirects=False) as browser:
        installed = browser.get(answer.headers["location"])
    assert installed.status_code == 200 and "HiBob is installed" in installed.text
    store = Store.open(folder / "home", env={ENV_KEY_FILE: str(folder / "keys.json")})
    connector = Connector(store, hibob())
    try:
        (made,) = store.list_connections(unclaimed=True)
        assert made.provider_initiated and connector.test(made.id).ok
        credentials_file = Path(demo.found(r"Service user \(HTTP Basic\): in (\S+) \(mode 0600\)"))
        assert credentials_file.parent == folder and stat.S_IMODE(credentials_file.stat().st_mode) == 0o600
        values = json.loads(credentials_file.read_text())
        assert values.pop("profile") == "hibob-emulator-service_user"
        assert values["service_user_token"] not in demo.err
        owner = Owner(EndUser("demo-user"))
        service = connector.connect("hibob-emulator-service_user", values, owner=owner).connection
        assert connector.test(service.id).ok
    finally:
        connector.close()
        store.close()
    key = key_file.read_text().strip()
    unclaimed = httpx.get(
        f"{demo.base}/v1/connections?unclaimed=true", headers={"Authorization": f"Bearer {key}"}, trust_env=False
    )
    assert [c["id"] for c in unclaimed.json()["data"]] == [made.id]
    owned = httpx.get(
        f"{demo.base}/v1/connections?end_user=demo-user", headers={"Authorization": f"Bearer {key}"}, trust_env=False
    )
    assert [c["id"] for c in owned.json()["data"]] == [service.id]


def test_print_key_and_a_new_api_keys_file(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "api-key"
    demo = _start(tmp_path, "hibob", "--api-keys-file", str(key_file), "--print-key")
    try:
        key = key_file.read_text().strip()
        assert f"API key:   in {key_file} (mode 0600)" in demo.err and key not in demo.err
        listed = httpx.get(f"{demo.base}/v1/connections", headers={"Authorization": f"Bearer {key}"}, trust_env=False)
        assert listed.status_code == 200
    finally:
        code, out = demo.stop()
    assert code == 0 and out == key + "\n"
    # The user's path: kept for the next run, still private.
    assert key_file.read_text() == key + "\n" and stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_several_providers_with_a_demo_are_named_not_guessed(tmp_path: Path) -> None:
    result = run_cli(
        ["--home", str(tmp_path), "serve", "--emulator"], load_plugins([plugin, multiauth], entry_points=False)
    )
    assert result.code == 1 and not result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "several providers have a demo (hibob, multiauth)" in lines[0]
    assert "--emulator PROVIDER" in lines[0] and not list(tmp_path.iterdir())


def test_a_provider_without_an_authorization_code_grant_has_no_demo(tmp_path: Path) -> None:
    result = run_cli(["serve", "--emulator", "keysonly"], load_plugins([keysonly], entry_points=False))
    assert result.code == 1
    assert result.err.strip() == (
        "connector: error: --emulator: provider 'keysonly' declares no OAuth 2.0 authorization code auth type, "
        "so it has no demo"
    )
