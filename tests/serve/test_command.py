"""``connector serve`` as a real process on a free 127.0.0.1 port: it answers /healthz and an
authenticated call, never prints the key, stops in order on SIGTERM, and without a key or with a
bad setting refuses to start in one line naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from connector_core.testing import free_port

KEY = "process-api-key-0123456789abcdef"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_"))}
    return {**env, **extra}


def _wait_for(url: str, proc: subprocess.Popen[str]) -> httpx.Response:
    for _ in range(300):  # a bound on tries, not a timing assertion
        if proc.poll() is not None:
            raise AssertionError(f"connector serve exited with {proc.returncode}")
        try:
            return httpx.get(url, timeout=2, trust_env=False)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("connector serve never answered")


def test_serve_answers_healthz_and_an_authenticated_call(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "connector_core", "--home", str(tmp_path / "home"), "serve", "--port", str(port)),
            *("--redirect-allow", "https://app.example/done", "--install-redirect-url", "https://app.example/done/x"),
        ],
        env=_env(
            CONNECTOR_SERVE_API_KEYS=f"{KEY},another-key-0123456789abcdef",
            CONNECTOR_SERVE_EMBED_ORIGINS="https://app.example, https://other.example:8443",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        health = _wait_for(f"{base}/healthz", proc)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        listed = httpx.get(f"{base}/v1/connections", headers={"Authorization": f"Bearer {KEY}"}, trust_env=False)
        assert listed.status_code == 200 and listed.json() == {"data": [], "next": None}
        refused = httpx.get(f"{base}/v1/connections", trust_env=False)
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
        assert "server" not in refused.headers  # uvicorn's banner is off
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "2 API key(s)" in err
    assert KEY not in out + err
    assert proc.returncode == 0 and "connector: serve stopped" in err  # SIGTERM stops it in order


def test_serve_without_a_key_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "connector_core", "--home", str(tmp_path / "home"), "serve", "--port", "1"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CONNECTOR_SERVE_API_KEYS" in lines[0] and "--api-keys-file" in lines[0]


def test_serve_refuses_a_keys_file_others_can_read_and_plain_http_beyond_loopback(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(KEY + "\n")
    keys.chmod(0o644)
    done = subprocess.run(
        [sys.executable, "-m", "connector_core", "serve", "--api-keys-file", str(keys)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "other users can read it" in done.stderr and KEY not in done.stderr
    keys.chmod(0o600)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "connector_core",
            "serve",
            "--api-keys-file",
            str(keys),
            "--public-url",
            "http://api.example",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "--public-url: expected https://" in done.stderr


def test_without_the_serve_extra_the_core_works_and_serve_says_what_to_install(tmp_path: Path) -> None:
    probe = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "import connector_core\n"
        "from connector_core.cli import main\n"
        "assert main(['providers', 'list']) == 0\n"
        "sys.exit(main(['serve']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=_env(CONNECTOR_SERVE_API_KEYS=KEY),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "needs the 'serve' extra" in done.stderr and "pip install 'connector-core[serve]'" in done.stderr


@pytest.mark.parametrize(
    ("options", "env", "expected"),
    [
        (["--embed-origin", "http://app.example"], {}, "--embed-origin: expected https"),
        (["--embed-origin", "https://app.example/page"], {}, "--embed-origin: expected an origin alone"),
        ([], {"CONNECTOR_SERVE_EMBED_ORIGINS": "https://ok.example,ftp://x"}, "CONNECTOR_SERVE_EMBED_ORIGINS: "),
        (["--redirect-allow", "http://app.example/done"], {}, "--redirect-allow: expected https"),
        ([], {"CONNECTOR_SERVE_REDIRECT_ALLOW": "app.example"}, "CONNECTOR_SERVE_REDIRECT_ALLOW: "),
        (["--install-profile", "hibob"], {}, "--install-profile: expected PROVIDER=PROFILE, got 'hibob'"),
        (["--install-profile", "=acme"], {}, "--install-profile: expected PROVIDER=PROFILE"),
        (["--install-profile", "nope=acme"], {}, "--install-profile: unknown provider 'nope'"),
        (["--install-profile", "hibob=missing"], {}, "--install-profile: hibob=missing: there is no profile"),
        (
            ["--redirect-allow", "https://app.example/done", "--install-redirect-url", "https://app.example/other"],
            {},
            "--install-redirect-url: is not on the platform's allow-list",
        ),
        (["--emulator", "--host", "0.0.0.0"], {}, "--emulator listens on loopback only"),
        (["--print-key"], {}, "--print-key is used with --emulator"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    tmp_path: Path, options: list[str], env: dict[str, str], expected: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "connector_core", "--home", str(tmp_path / "home"), "serve", "--port", "1", *options],
        env=_env(CONNECTOR_SERVE_API_KEYS=KEY, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and not done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("connector: error: ") and expected in lines[0], done.stderr
    assert KEY not in done.stderr


def test_an_install_profile_of_another_provider_or_one_that_sends_no_one_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _env(CONNECTOR_SERVE_API_KEYS=KEY, CONNECTOR_CORE_KEY_FILE=str(tmp_path / "keys.json"))
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "connector_core",
            "--home",
            str(home),
            "profile",
            "create",
            "hibob",
            "--name",
            "basic",
            "--auth-type",
            "service_user",
            "--environment",
            "sandbox",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    for option, expected in (
        ("hibob=basic", "profile 'basic' uses service_user"),
        ("oauth2-generic=basic", "profile 'basic' is a hibob profile"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "connector_core", "--home", str(home), "serve", "--install-profile", option],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and expected in lines[0], done.stderr


def test_serve_with_json_logs_writes_one_object_a_line_and_serves_metrics(tmp_path: Path) -> None:
    port = free_port()
    token = "cs_" + "T0ken-_" * 6 + "x"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "connector_core", "--home", str(tmp_path / "home"), "serve"),
            *("--port", str(port), "--log-format", "json"),
        ],
        env=_env(CONNECTOR_SERVE_API_KEYS=KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_for(f"{base}/healthz", proc).status_code == 200
        assert httpx.get(f"{base}/connect/{token}?code=abc", trust_env=False).status_code >= 400
        assert httpx.get(f"{base}/metrics", trust_env=False).status_code == 401
        scraped = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {KEY}"}, trust_env=False)
        assert scraped.status_code == 200
        assert 'connector_http_requests_total{method="GET",route="/healthz",status="200"}' in scraped.text
        assert 'route="/connect/{token}"' in scraped.text and token not in scraped.text
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines()]  # every line is a JSON object
    assert proc.returncode == 0
    messages = [line["message"] for line in lines]
    assert any(m.startswith("connector: serving the connect service") for m in messages)
    assert "connector: serve stopped" in messages
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's own lines too
    requests = [line for line in lines if line.get("path") == "/connect/cs_…"]
    assert len(requests) == 1 and requests[0]["method"] == "GET" and requests[0]["status"] >= 400
    assert isinstance(requests[0]["ms"], float)
    assert token not in out + err and KEY not in out + err and "code=abc" not in err
