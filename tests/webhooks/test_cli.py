"""``connector webhooks`` on the command line: a URL that is not https, is private or holds
credentials, and a bad event type, are refused in one line naming them, with nothing stored; a
generated secret goes to a 0600 file (or standard output, asked for) and nowhere else; the log,
replays and ``deliver --once`` against a receiver on 127.0.0.1; ``serve`` delivers by itself."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support import hibob

from connector_core.crypto import ENV_KEY_FILE
from connector_core.store import Store
from connector_core.testing import CliResult, free_port, run_cli

from .conftest import Receiver, record_events

Run = Callable[..., CliResult]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONNECTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(ENV_KEY_FILE, str(tmp_path / "keys.json"))
    return tmp_path / "home"


@pytest.fixture
def cli(home: Path) -> Run:
    def run(*argv: str) -> CliResult:
        result = run_cli(["webhooks", *argv], hibob())
        assert "Traceback" not in result.err
        return result

    return run


@pytest.fixture
def store(home: Path, tmp_path: Path) -> Iterator[Store]:
    with Store.open(home, env={ENV_KEY_FILE: str(tmp_path / "keys.json")}) as opened:
        yield opened


def _listed(cli: Run) -> list[dict[str, object]]:
    done = cli("list", "--json")
    assert done.code == 0
    endpoints: list[dict[str, object]] = json.loads(done.out)["endpoints"]
    return endpoints


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["http://hooks.example.com/a"], "URL: expected https:// (http:// is allowed only for 127.0.0.1"),
        (["https://10.1.2.3/a"], "URL: '10.1.2.3' is a private address (allowed only with --allow-private)"),
        (["https://user:hunter2@hooks.example.com/a"], "URL: expected a URL without user:password@ before the host"),
        (["https://169.254.169.254/latest", "--allow-private"], "URL: '169.254.169.254' is a link-local address"),
        (["https://[fd00::1]/a"], "URL: 'fd00::1' is a private address"),
        (["http://127.0.0.1:9/a", "--events", "connection.created", "connection.exploded"], "--events: unknown"),
        (["http://127.0.0.1:9/a", "--secret-env", "NOT_SET_ANYWHERE"], "--secret-env: environment variable"),
    ],
)
def test_a_bad_endpoint_is_refused_in_one_line_and_nothing_is_stored(
    cli: Run, tmp_path: Path, argv: list[str], message: str
) -> None:
    secret_file = tmp_path / "secret"
    options = [] if "--secret-env" in argv else ["--write-secret", str(secret_file)]
    done = cli("add", *argv, *options)
    assert done.code == 1 and done.out == ""
    assert done.err.count("\n") == 1 and done.err.startswith(f"connector: error: {message}")
    assert "hunter2" not in done.err
    assert not secret_file.exists() and _listed(cli) == []


def test_a_generated_secret_goes_to_a_private_file_and_nowhere_else(cli: Run, tmp_path: Path, home: Path) -> None:
    path = tmp_path / "out" / "secret"
    done = cli("add", "http://127.0.0.1:9/hook", "--events", "connection.created", "--write-secret", str(path))
    assert done.code == 0, done.err
    secret = path.read_text().strip()
    assert secret.startswith("whsec_") and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "Added webhook endpoint we_" in done.out and str(path) in done.out
    shown = [done, cli("list"), cli("list", "--json"), cli("show", _listed(cli)[0]["id"]), cli("deliveries")]  # type: ignore[arg-type]
    assert all(secret not in r.out + r.err and secret[6:] not in r.out + r.err for r in shown)
    for file in home.iterdir():  # the database (and its journal) hold it encrypted only
        assert secret[6:].encode() not in file.read_bytes()
    again = cli("add", "http://127.0.0.1:9/other", "--write-secret", str(path))
    assert again.code == 1 and "exists already" in again.err and len(_listed(cli)) == 1
    assert path.read_text().strip() == secret  # never replaced


def test_a_secret_is_printed_alone_only_when_asked(cli: Run) -> None:
    refused = cli("add", "http://127.0.0.1:9/hook")
    assert refused.code == 2 and "--write-secret PATH (or --print-secret)" in refused.err and _listed(cli) == []
    done = cli("add", "http://127.0.0.1:9/hook", "--print-secret")
    assert done.code == 0 and done.out.count("\n") == 1 and done.out.startswith("whsec_")
    assert done.out.strip() not in done.err and "Added webhook endpoint" in done.err
    on_argv = cli("add", "http://127.0.0.1:9/hook", "--secret", "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")
    assert on_argv.code == 2 and "c2VjcmV0" not in on_argv.err and "never taken from the command line" in on_argv.err


def test_a_given_secret_is_checked_and_never_shown(cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from connector_core.webhooks import new_secret

    secret = new_secret().reveal()
    monkeypatch.setenv("HOOK_SECRET", secret)
    done = cli("add", "http://127.0.0.1:9/hook", "--secret-env", "HOOK_SECRET", "--json")
    assert done.code == 0 and "secret" not in json.loads(done.out) and secret not in done.out + done.err
    (tmp_path / "bad").write_text("whsec_dG9vc2hvcnQ=\n")
    bad = cli("add", "http://127.0.0.1:9/hook", "--secret-file", str(tmp_path / "bad"))
    assert bad.code == 1 and bad.err.startswith("connector: error: --secret-file: expected 24 to 64 bytes of key")
    both = cli("add", "http://127.0.0.1:9/hook", "--secret-env", "HOOK_SECRET", "--print-secret")
    assert both.code == 2 and "for a generated secret" in both.err


def test_rotation_disable_enable_and_removal(cli: Run, tmp_path: Path, store: Store) -> None:
    assert cli("add", "http://127.0.0.1:9/hook", "--write-secret", str(tmp_path / "s1")).code == 0
    endpoint_id = str(_listed(cli)[0]["id"])
    rotated = cli("rotate-secret", endpoint_id, "--write-secret", str(tmp_path / "s2"))
    assert rotated.code == 0 and "drop-previous-secret" in rotated.out
    new, old = store.webhook_secrets(endpoint_id)
    assert (
        new.reveal() == (tmp_path / "s2").read_text().strip() and old.reveal() == (tmp_path / "s1").read_text().strip()
    )
    twice = cli("rotate-secret", endpoint_id, "--write-secret", str(tmp_path / "s3"))
    assert twice.code == 1 and "is rotating already" in twice.err and not (tmp_path / "s3").exists()
    assert cli("drop-previous-secret", endpoint_id).code == 0 and len(store.webhook_secrets(endpoint_id)) == 1
    disabled = cli("disable", endpoint_id, "--reason", "receiver maintenance")
    assert disabled.code == 0 and "disabled (receiver maintenance)" in disabled.out
    assert "disabled (receiver maintenance)" in cli("list").out
    assert cli("enable", endpoint_id, "--json").out.count('"disabled": false') == 1
    unknown = cli("show", "we_nope")
    assert unknown.code == 1 and "unknown webhook endpoint 'we_nope'" in unknown.err
    assert cli("remove", endpoint_id).code == 0 and _listed(cli) == []


def test_deliver_once_the_log_and_a_replay(cli: Run, tmp_path: Path, store: Store) -> None:
    receiver = Receiver()
    receiver.answer = lambda got: (500, {"content-type": "text/plain"}, b"not today")
    added = cli("add", receiver.url, "--write-secret", str(tmp_path / "s"))
    assert added.code == 0
    receiver.secrets = [(tmp_path / "s").read_text().strip()]
    receiver.start()
    try:
        ids = record_events(store, 2)
        first = cli("deliver", "--once")
        assert first.code == 0 and first.out == "Attempted 2 deliveries: 0 delivered, 2 to retry, 0 failed.\n"
        log = cli("deliveries", "--event", ids[0])
        assert log.code == 0 and "pending, 1 attempt(s)" in log.out
        assert "500 " in log.out and "answered 500 Internal Server Error" in log.out
        receiver.answer = lambda got: (204, {}, b"")
        replayed = cli("replay", ids[1])
        assert replayed.code == 0 and replayed.out == "Queued 1 delivery (the deliverer sends them).\n"
        second = cli("deliver", "--once", "--json")
        assert json.loads(second.out)["delivered"] >= 1  # the replay (and the others whose backoff passed)
        ranged = cli("replay", "--since", "2000-01-01T00:00:00Z", "--json")
        assert json.loads(ranged.out) == {"deliveries": 2}
        listed = json.loads(cli("deliveries", "--json", "--status", "delivered").out)["deliveries"]
        replays = [d for d in listed if d["replay"]]
        assert [d["event_id"] for d in replays] == [ids[1]] and replays[0]["log"][0]["status_code"] == 204
    finally:
        receiver.stop()
    assert all(got.ours and got.theirs for got in receiver.received)
    assert {got.webhook_id for got in receiver.received} == set(ids)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["replay"], 2, "give an EVENT_ID, or --since ISO and/or --until ISO"),
        (["replay", "evt_1", "--since", "2026-01-01"], 2, "not both"),
        (["replay", "--since", "last week"], 1, "--since: expected an ISO 8601 time"),
        (["replay", "--until", "2026-01-01T10:00"], 1, "--until: expected a time with its zone"),
        (["replay", "evt_unknown"], 1, "unknown event 'evt_unknown'"),
        (["replay", "--since", "2026-01-01", "--endpoint", "we_x"], 1, "unknown webhook endpoint 'we_x'"),
        (["deliveries", "--limit", "0"], 2, "--limit must be at least 1"),
        (["deliveries", "--status", "lost"], 2, "invalid choice: 'lost'"),
        (["deliver", "--concurrency", "0"], 2, "must be positive"),
    ],
)
def test_bad_options_are_one_line(cli: Run, argv: list[str], code: int, message: str) -> None:
    done = cli(*argv)
    assert done.code == code and done.err.count("\n") == 1 and message in done.err


def test_serve_delivers_webhooks_unless_told_not_to(tmp_path: Path, home: Path, store: Store) -> None:
    receiver = Receiver()
    assert run_cli(["webhooks", "add", receiver.url, "--write-secret", str(tmp_path / "s")], hibob()).code == 0
    receiver.secrets = [(tmp_path / "s").read_text().strip()]
    receiver.start()
    (event_id,) = record_events(store, 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_"))}
    env.update(CONNECTOR_SERVE_API_KEYS="serve-key-0123456789abcdef", **{ENV_KEY_FILE: str(tmp_path / "keys.json")})
    try:
        for extra, expected in ((["--no-webhooks"], 0), ([], 1)):
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "connector_core", "--home", str(home), "serve", "--port", str(port), *extra],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                for _ in range(300):  # a bound on polls, not a timing assertion
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False).status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                for _ in range(100 if expected else 10):
                    if len(receiver.received) >= expected:
                        break
                    time.sleep(0.1)
            finally:
                proc.terminate()
                _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0 and "serve stopped" in err, err
            assert len(receiver.received) == expected
    finally:
        receiver.stop()
    assert receiver.received[0].webhook_id == event_id and receiver.received[0].theirs
