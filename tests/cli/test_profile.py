"""`connector profile ...`, `connector keys ...` and `connector providers schema` end to end."""

from __future__ import annotations

import json
import os
import pty
import select
import sqlite3
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from support import run_connector

SECRET = "Cl1ent-Secret-For-Tests-42"
PROD_SECRET = "Pr0d-Secret-For-Tests-77"


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        "CONNECTOR_HOME": str(tmp_path / "home"),
        "CONNECTOR_CORE_KEY_FILE": str(tmp_path / "config" / "keys.json"),
        "CONNECTOR_CORE_PLUGINS": "hibob",
        "DEV_SECRET": SECRET,
        "PROD_SECRET": PROD_SECRET,
    }


def run(env: dict[str, str], *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    result = run_connector(list(args), env=env, input=input)
    for secret in (SECRET, PROD_SECRET):
        assert secret not in result.stdout and secret not in result.stderr
    assert "Traceback" not in result.stderr
    return result


def create_sandbox(env: dict[str, str], name: str = "acme-sandbox", *extra: str):  # type: ignore[no-untyped-def]
    return run(
        env,
        "profile",
        "create",
        "hibob",
        "--name",
        name,
        "--environment",
        "sandbox",
        "--app-id",
        "APP-1",
        "--client-id",
        "dev-client",
        "--client-secret-env",
        "DEV_SECRET",
        *extra,
    )


def test_create_sandbox_and_production_profiles(cli_env: dict[str, str], tmp_path: Path) -> None:
    made = create_sandbox(cli_env, "acme-sandbox", "--json")
    assert made.returncode == 0, made.stderr
    data = json.loads(made.stdout)
    assert data["environment"] == "sandbox" and data["credential_set"] == "development"
    assert data["fields"] == {"app_id": "APP-1", "client_id": "dev-client", "client_secret": "***"}
    assert len(data["scopes"]) == 11 and data["actions"] == [] and data["connections"] == 0
    assert set(data) == {
        "id",
        "name",
        "provider",
        "auth_type",
        "environment",
        "credential_set",
        "fields",
        "scopes",
        "actions",
        "endpoints",
        "connections",
        "created_at",
        "updated_at",
    }

    secret_file = tmp_path / "prod-secret.txt"
    secret_file.write_text(PROD_SECRET + "\n")
    prod = run(
        cli_env,
        "profile",
        "create",
        "hibob",
        "--name",
        "acme-prod",
        "--environment",
        "production",
        "--app-id",
        "APP-1",
        "--client-id",
        "prod-client",
        "--client-secret-file",
        str(secret_file),
        "--actions",
        "list_tasks",
        "list_employees",
    )
    assert prod.returncode == 0, prod.stderr
    assert "Profile 'acme-prod' created." in prod.stdout
    assert "Production (production), uses Production credentials" in prod.stdout
    assert "scopes         employee_data:read tasks:write" in prod.stdout

    listed = json.loads(run(cli_env, "profile", "list", "--json").stdout)
    assert [p["name"] for p in listed["profiles"]] == ["acme-prod", "acme-sandbox"]
    text = run(cli_env, "profile", "list").stdout
    assert text.splitlines()[0].split() == [
        "NAME",
        "PROVIDER",
        "AUTH",
        "ENVIRONMENT",
        "CREDENTIALS",
        "SCOPES",
        "CONNECTIONS",
    ]
    shown = run(cli_env, "profile", "show", "acme-prod")
    assert "Client Secret  ***" in shown.stdout

    from connector_core import Store

    store = Store.open(cli_env["CONNECTOR_HOME"], env={"CONNECTOR_CORE_KEY_FILE": cli_env["CONNECTOR_CORE_KEY_FILE"]})
    assert store.get_profile("acme-prod").secret("client_secret").reveal() == PROD_SECRET
    assert store.get_profile("acme-sandbox").secret("client_secret").reveal() == SECRET
    db = Path(cli_env["CONNECTOR_HOME"]) / "connector.db"
    for path in db.parent.iterdir():
        assert SECRET.encode() not in path.read_bytes() and PROD_SECRET.encode() not in path.read_bytes()


def test_update_revalidates_and_delete(cli_env: dict[str, str]) -> None:
    assert create_sandbox(cli_env).returncode == 0
    bad = run(cli_env, "profile", "update", "acme-sandbox", "--scopes", "tasks:read")
    assert bad.returncode == 1 and "scopes: tasks:read does not exist" in bad.stderr
    switched = run(cli_env, "profile", "update", "acme-sandbox", "--environment", "production")
    assert switched.returncode == 1
    assert "App ID is required (the profile now uses Production credentials" in switched.stderr
    ok = run(cli_env, "profile", "update", "acme-sandbox", "--scopes", "employee_data:read", "goals:read", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["scopes"] == ["employee_data:read", "goals:read"]
    assert "connector: warning: goals:read needs the Talent module subscription" in ok.stderr
    renamed = run(cli_env, "profile", "update", "acme-sandbox", "--rename", "acme-dev", "--client-id", "c2")
    assert renamed.returncode == 0 and "Client ID      c2" in renamed.stdout
    gone = run(cli_env, "profile", "delete", "acme-dev")
    assert gone.returncode == 0 and "Profile 'acme-dev' deleted." in gone.stdout
    missing = run(cli_env, "profile", "show", "acme-dev")
    assert missing.returncode == 1 and "unknown profile 'acme-dev'" in missing.stderr


def test_delete_refuses_while_connections_use_it(cli_env: dict[str, str]) -> None:
    assert create_sandbox(cli_env).returncode == 0
    db = Path(cli_env["CONNECTOR_HOME"]) / "connector.db"
    with sqlite3.connect(db) as conn:
        pid = conn.execute("SELECT id FROM profiles").fetchone()[0]
        conn.execute(
            "INSERT INTO connections (id, profile_id, provider, environment, status, created_at, updated_at)"
            " VALUES ('conn_1', ?, 'hibob', 'sandbox', 'connected', 'x', 'x')",
            (pid,),
        )
    refused = run(cli_env, "profile", "delete", "acme-sandbox")
    assert refused.returncode == 1 and "is used by 1 connection(s)" in refused.stderr and "--force" in refused.stderr
    forced = run(cli_env, "profile", "delete", "acme-sandbox", "--force", "--json")
    assert json.loads(forced.stdout) == {"deleted": "acme-sandbox", "connections_deleted": 1}


BAD_INPUT = [
    (["--name", "x", "--environment", "staging"], "unknown environment 'staging' for provider 'hibob'"),
    (["--name", "x", "--app-id", "bad id"], "app_id: 'bad id' does not match the expected pattern"),
    (["--name", "x", "--scopes", "employee_data:read", "nope:read"], "scopes: unknown scope nope:read"),
    (["--name", "x", "--actions", "list_task"], "unknown action 'list_task' for provider 'hibob'"),
    (
        ["--name", "x", "--scopes", "employee_data:read", "--actions", "list_tasks"],
        "scopes: the selected actions also need tasks:write",
    ),
    (["--name", "bad name!"], "name: expected 1-64 letters"),
    (["--name", "x", "--client-secret-env", "NOT_SET_ANYWHERE"], "environment variable NOT_SET_ANYWHERE"),
    (
        ["--name", "x", "--client-secret", "Cl1ent-Secret-For-Tests-42"],
        "--client-secret: secrets are never taken from the command line",
    ),
    (["--name", "x", "--service-user-id", "SERVICE-1"], "unrecognized arguments"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_is_one_line_and_changes_nothing(cli_env: dict[str, str], extra: list[str], message: str) -> None:
    assert create_sandbox(cli_env, "existing").returncode == 0
    db = Path(cli_env["CONNECTOR_HOME"]) / "connector.db"
    before = db.read_bytes()
    args = ["profile", "create", "hibob", "--app-id", "A", "--client-id", "c", "--client-secret-env", "DEV_SECRET"]
    if "--app-id" in extra:
        args = ["profile", "create", "hibob", "--client-id", "c", "--client-secret-env", "DEV_SECRET"]
    if "--client-secret-env" in extra or "--client-secret" in extra:
        args = ["profile", "create", "hibob", "--app-id", "A", "--client-id", "c"]
    result = run(cli_env, *args, *extra)
    assert result.returncode in (1, 2)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert db.read_bytes() == before
    names = [p["name"] for p in json.loads(run(cli_env, "profile", "list", "--json").stdout)["profiles"]]
    assert names == ["existing"]


def test_duplicate_profile_name(cli_env: dict[str, str]) -> None:
    assert create_sandbox(cli_env).returncode == 0
    again = create_sandbox(cli_env)
    assert again.returncode == 1 and "name: a profile named 'acme-sandbox' already exists" in again.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\xfa bad", "is not UTF-8 text"),
        (b"x" * (64 * 1024 + 1), "is larger than 64 KiB"),
        (b"\n", "is empty"),
        (None, "does not exist"),
    ],
)
def test_secret_file_errors(cli_env: dict[str, str], tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "secret.txt"
    if content is not None:
        path.write_bytes(content)
    result = run(
        cli_env,
        "profile",
        "create",
        "hibob",
        "--name",
        "x",
        "--app-id",
        "A",
        "--client-id",
        "c",
        "--client-secret-file",
        str(path),
    )
    assert result.returncode == 1
    assert f"client_secret file {path}: {message}" in result.stderr
    assert (
        not (Path(cli_env["CONNECTOR_HOME"]) / "connector.db").exists()
        or "x" not in run(cli_env, "profile", "list").stdout.split()
    )


def test_no_terminal_to_prompt_on(cli_env: dict[str, str]) -> None:
    result = run(cli_env, "profile", "create", "hibob", "--name", "x", "--app-id", "A", "--client-id", "c", input="")
    assert result.returncode == 1
    assert (
        "client_secret: Client Secret is required; pass --client-secret-env VAR or --client-secret-file PATH "
        "(there is no terminal to prompt on)"
    ) in result.stderr


def test_prompt_without_echo_on_a_terminal(cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")} | cli_env
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI, with the pty as its controlling terminal
        os.execvpe(
            sys.executable,
            [
                sys.executable,
                "-m",
                "connector_core",
                "profile",
                "create",
                "hibob",
                "--name",
                "typed",
                "--app-id",
                "A",
                "--client-id",
                "c",
            ],
            env,
        )
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
        if not sent and b"Client Secret: " in output:
            os.write(fd, SECRET.encode() + b"\r")
            sent = True
    _, status = os.waitpid(pid, 0)
    assert sent, output
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert SECRET.encode() not in output  # not echoed, not printed
    assert b"Profile 'typed' created." in output


def test_keys_rotate_and_list(cli_env: dict[str, str]) -> None:
    assert create_sandbox(cli_env).returncode == 0
    before = json.loads(run(cli_env, "keys", "list", "--json").stdout)
    (first,) = before["keys"]
    assert first["primary"] and first["values"] == 1 and before["missing"] == []
    rotated = json.loads(run(cli_env, "keys", "rotate", "--json").stdout)
    assert rotated["reencrypted"] == 1 and rotated["primary_key"] != first["id"] and len(rotated["keys"]) == 2
    assert run(cli_env, "profile", "show", "acme-sandbox").returncode == 0
    retired = run(cli_env, "keys", "rotate", "--retire")
    assert retired.returncode == 0 and "Retired keys:" in retired.stdout
    after = json.loads(run(cli_env, "keys", "list", "--json").stdout)
    assert len(after["keys"]) == 1 and after["keys"][0]["values"] == 1
    from connector_core import Store

    store = Store.open(cli_env["CONNECTOR_HOME"], env={"CONNECTOR_CORE_KEY_FILE": cli_env["CONNECTOR_CORE_KEY_FILE"]})
    assert store.get_profile("acme-sandbox").secret("client_secret").reveal() == SECRET


def test_wrong_key_gives_a_clear_error(cli_env: dict[str, str]) -> None:
    assert create_sandbox(cli_env).returncode == 0
    import base64

    wrong = cli_env | {"CONNECTOR_CORE_SECRET_KEY": base64.b64encode(b"w" * 32).decode()}
    result = run(wrong, "profile", "show", "acme-sandbox")
    assert result.returncode == 1
    assert result.stderr.startswith("connector: error: cannot decrypt client_secret of profile 'acme-sandbox'")
    assert len(result.stderr.strip().splitlines()) == 1
    malformed = run(cli_env | {"CONNECTOR_CORE_SECRET_KEY": "abc"}, "profile", "show", "acme-sandbox")
    assert "CONNECTOR_CORE_SECRET_KEY: expected base64 of 32 bytes" in malformed.stderr


def test_newer_schema_and_junk_database(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert create_sandbox(cli_env).returncode == 0
    db = Path(cli_env["CONNECTOR_HOME"]) / "connector.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    newer = run(cli_env, "profile", "list")
    assert newer.returncode == 1 and "schema version 99 is newer than this connector-core supports" in newer.stderr
    junk_home = tmp_path / "junk"
    junk_home.mkdir()
    (junk_home / "connector.db").write_bytes(b"garbage" * 1000)
    junk = run(cli_env, "--home", str(junk_home), "profile", "list")
    assert junk.returncode == 1 and f"database {junk_home / 'connector.db'}: not a connector-core database" in (
        junk.stderr
    )


def test_home_option_overrides_environment(cli_env: dict[str, str], tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    made = run(
        cli_env,
        "--home",
        str(other),
        "profile",
        "create",
        "hibob",
        "--name",
        "elsewhere",
        "--app-id",
        "A",
        "--client-id",
        "c",
        "--client-secret-env",
        "DEV_SECRET",
    )
    assert made.returncode == 0, made.stderr
    assert (other / "connector.db").exists()
    assert "elsewhere" not in run(cli_env, "profile", "list").stdout


def test_providers_schema_is_valid_draft_2020_12(cli_env: dict[str, str]) -> None:
    result = run(cli_env, "providers", "schema", "hibob")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["x-field-order"] == [
        "name",
        "environment",
        "app_id",
        "client_id",
        "client_secret",
        "scopes",
        "actions",
    ]
    assert list(schema["properties"]) == schema["x-field-order"]
    assert schema["properties"]["client_secret"]["writeOnly"] is True
    assert "writeOnly" not in schema["properties"]["client_id"]
    assert schema["required"] == ["name", "environment", "app_id", "client_id", "client_secret"]
    assert schema["properties"]["app_id"]["description"].startswith("The App ID on the OAuth page")
    validator = jsonschema.Draft202012Validator(schema)
    good = {
        "name": "acme",
        "environment": "sandbox",
        "app_id": "APP-1",
        "client_id": "c",
        "client_secret": "longenough",
        "scopes": ["employee_data:read", "tasks:write"],
    }
    assert not list(validator.iter_errors(good))
    for bad in (
        good | {"environment": "staging"},
        good | {"scopes": ["tasks:read"]},
        good | {"scopes": ["tasks:write"]},  # the minimum scope is missing
        good | {"app_id": "bad id"},
        {k: v for k, v in good.items() if k != "client_secret"},
        good | {"unknown": 1},
    ):
        assert list(validator.iter_errors(bad)), bad
    basic = json.loads(run(cli_env, "providers", "schema", "hibob", "--auth-type", "service_user").stdout)
    jsonschema.Draft202012Validator.check_schema(basic)
    assert basic["x-auth-type"] == "service_user"
    wrong = run(cli_env, "providers", "schema", "hibob", "--auth-type", "saml")
    assert wrong.returncode == 1 and "unknown auth type 'saml' for provider 'hibob'" in wrong.stderr
