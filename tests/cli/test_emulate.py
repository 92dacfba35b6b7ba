"""``connector emulate``: the foreground emulator in a real subprocess, and ``--uninstall``."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from support import Result, run_connector
from support.emulator import REDIRECT, query_of, running


class Emulate:
    """``python -m connector_core emulate hibob ...`` running in the background."""

    def __init__(self, *args: str, sigint_ignored: bool = False) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_"))}
        env.update(CONNECTOR_CORE_PLUGINS="hibob", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector_core", "emulate", "hibob", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            # As a shell starts a background job ('&', nohup, CI runners): SIGINT ignored.
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._err: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self._lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self._err.append), daemon=True).start()
        self.out: list[str] = []

    @staticmethod
    def _pump(stream: object, sink: Callable[[str], object]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink(line)
        sink("")

    def read_until(self, done: Callable[[str], bool]) -> list[str]:
        """Standard output lines up to and including the first for which ``done`` is true."""
        while True:
            line = self._lines.get(timeout=30)
            assert line, f"the emulator exited early: {''.join(self._err)}"
            self.out.append(line)
            if done(line):
                return self.out

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self._lines.get(timeout=5)
        deadline = time.monotonic() + 5
        while not (self._err and self._err[-1] == "") and time.monotonic() < deadline:
            time.sleep(0.01)  # the standard-error pump has read to the end
        return code, "".join(self._err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def emulate(*args: str) -> Iterator[Emulate]:
    process = Emulate(*args)
    try:
        yield process
    finally:
        process.kill()


def test_emulate_prints_how_to_connect_and_stops_cleanly_on_ctrl_c() -> None:
    with emulate("--port", "0") as process:
        lines = process.read_until(lambda line: line.startswith("Uninstall:"))
        text = "".join(lines)
        base_url = re.match(r"HiBob emulator running at (http://127\.0\.0\.1:\d+)", lines[0])
        assert base_url, lines[0]
        url = base_url.group(1)
        assert "App ID:       emulated-hibob-app" in text
        client_id = re.search(r"Client ID:\s+(dev-\S+)", text)
        secret_file = re.search(r"Client secret:\s+in (\S+development\.client_secret)", text)
        assert client_id and secret_file
        assert re.search(r"Client ID:\s+pro-\S+", text)
        path = Path(secret_file.group(1))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        secret = path.read_text().strip()
        assert secret and secret not in text

        # The printed values are enough to connect.
        with httpx.Client(trust_env=False, timeout=10) as http:
            info = http.get(url + "/emulator/info").json()
            assert info["app"]["credentials"]["development"]["client_id"] == client_id.group(1)
            params = {"response_type": "code", "client_id": client_id.group(1), "redirect_uri": REDIRECT}
            answer = http.get(url + "/sandbox/oauth2/authorize", params=params, headers={"X-Emulator-Consent": "allow"})
            code = query_of(answer)["code"]
            data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
            token = http.post(url + "/sandbox/oauth2/token", data=data, auth=(client_id.group(1), secret))
            assert token.status_code == 200, token.text

        uninstalled = run_connector(
            ["emulate", "hibob", "--uninstall", "--url", url], env={"CONNECTOR_CORE_PLUGINS": "hibob"}
        )
        assert uninstalled.returncode == 0, uninstalled.stderr
        assert (
            uninstalled.stdout
            == f"Uninstalled the app from company {info['companies'][0]['id']} (1 installation(s)).\n"
        )

        code_, err = process.stop()
        assert code_ == 0, err
        assert "connector: emulator stopped" in err
        assert "POST /sandbox/oauth2/token 200" in err
        assert secret not in err
        assert not path.exists()  # the temporary secrets folder is gone


def test_emulate_json_snapshot_and_secret_env(tmp_path: Path) -> None:
    snapshot = tmp_path / "emulator.json"
    secrets_dir = tmp_path / "secrets"
    args = ["--json", "--quiet", "--snapshot", str(snapshot), "--secrets-dir", str(secrets_dir)]
    with emulate(*args, "--print-secret-env", "--access-token-lifetime", "90") as process:
        data = json.loads("".join(process.read_until(lambda line: line == "}\n")))
        code, err = process.stop(signal.SIGTERM)
        assert code == 0, err
    development = data["app"]["credentials"]["development"]
    assert data["access_token_lifetime"] == 90
    assert data["environments"]["sandbox"]["api_base_url"].endswith("/sandbox/api/v1")
    assert Path(development["client_secret_file"]).read_text().strip() == development["client_secret"]
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    with emulate("--snapshot", str(snapshot), "--print-secret-env", "--quiet") as process:
        text = "".join(process.read_until(lambda line: line.startswith("export CONNECTOR_EMULATOR_PRODUCTION")))
        assert f"Client ID:       {development['client_id']}" in text
        assert f"export CONNECTOR_EMULATOR_DEVELOPMENT_CLIENT_SECRET={development['client_secret']}" in text
        code, err = process.stop()
        assert code == 0, err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["emulate", "hibob", "--uninstall"], 2, "--uninstall needs --url"),
        (["emulate", "hibob", "--url", "http://127.0.0.1:1"], 2, "--url is only used with --uninstall"),
        (["emulate", "hibob", "--port", "70000"], 2, "--port must be 0 to 65535"),
        (["emulate", "hibob", "--access-token-lifetime", "0"], 2, "at least 1 second"),
        (["emulate", "hibob", "--uninstall", "--url", "ftp://x", "--quiet"], 1, "--url: expected an absolute"),
        (["emulate", "hibob", "--uninstall", "--url", "http://127.0.0.1:1"], 1, "cannot reach an emulator"),
        (["emulate", "nope"], 1, "unknown provider 'nope'"),
    ],
)
def test_emulate_usage_errors(run_cli: Callable[..., Result], argv: list[str], code: int, message: str) -> None:
    result = run_cli(argv)
    assert result.code == code
    assert message in result.err
    assert result.err.count("\n") == 1


def test_uninstall_against_an_in_process_emulator(run_cli: Callable[..., Result]) -> None:
    with running() as emu:
        unknown = run_cli(["emulate", "hibob", "--uninstall", "--url", emu.base_url, "--company", "1"])
        assert unknown.code == 1
        assert "unknown company '1'" in unknown.err
        result = run_cli(["emulate", "hibob", "--uninstall", "--url", emu.base_url + "/", "--json"])
        assert result.code == 0, result.err
        assert json.loads(result.out) == {
            "provider": "hibob",
            "company_id": emu.default_company_id,
            "credential_set": None,
            "uninstalled": 0,
        }
        assert emu.stats.uninstalls == 1


def test_emulate_stops_on_ctrl_c_even_when_started_with_sigint_ignored() -> None:
    process = Emulate("--quiet", sigint_ignored=True)
    try:
        process.read_until(lambda line: line.startswith("Uninstall:"))
        code, err = process.stop(signal.SIGINT)
    finally:
        process.kill()
    assert code == 0, err
    assert "emulator stopped" in err
