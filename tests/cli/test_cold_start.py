"""Structural promises of issue 8 (speed itself is measured in benchmarks/, never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("httpx", "oauthlib", "cryptography", "sqlite3", "http.server", "connector_core.emulator", "jsonschema")
# The serve extra: only 'connector serve' itself imports Starlette and uvicorn.
HEAVY += ("starlette", "uvicorn", "connector_core.serve")

PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from connector_core.cli import main
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(sys.argv[1:])
        except SystemExit as exc:
            code = exc.code
    print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
    """
)


@pytest.mark.parametrize(
    "argv",
    [
        ["providers", "list"],
        ["scopes", "hibob", "--check", "employee_data:read", "tasks:write"],
        ["--help"],
        ["providers", "show", "hibob"],
        ["serve", "--help"],
        ["keeper", "--help"],
    ],
    ids=" ".join,
)
def test_discovery_commands_import_no_heavy_module(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True, timeout=60
    )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["code"] == 0
    loaded = [m for m in HEAVY if m in data["modules"]]
    assert loaded == [], f"{' '.join(argv)} imported {loaded}"


RECORDS = ("connector_core.models._auth", "connector_core.models._scopes", "connector_core.models._declaration")
CLI_MODULES = (
    "connector_core.cli.profile",
    "connector_core.cli.keys",
    "connector_core.cli.secrets",
    "connector_core.cli.connect",
    "connector_core.cli.connections",
    "connector_core.cli.reconnect",
    "connector_core.cli.request",
    "connector_core.cli.flow",
    "connector_core.cli.emulate",
    "connector_core.cli.store",
    "connector_core.cli.new_provider",
    "connector_core.cli.docs",
    "connector_core.cli.serve",
    "connector_core.cli.keeper",
)
HIBOB_RECORDS = ("connector_hibob.declarations", "connector_hibob.catalogue")


@pytest.mark.parametrize(
    ("argv", "needed", "not_needed"),
    [
        (["providers", "list"], (), (*RECORDS, *HIBOB_RECORDS, "connector_core.dataprovider._schema", "difflib")),
        (
            ["scopes", "hibob", "--check", "employee_data:read", "tasks:write"],
            ("connector_core.models._scopes", "connector_hibob.catalogue"),
            ("connector_core.models._auth", "connector_core.models._declaration", "connector_hibob.declarations"),
        ),
        (["--help"], (), (*RECORDS, *HIBOB_RECORDS, *CLI_MODULES)),
        (
            ["providers", "show", "hibob"],
            (*RECORDS, *HIBOB_RECORDS),
            ("connector_core.cli.connect", "connector_core.cli.flow"),
        ),
    ],
    ids=["providers list", "scopes --check", "--help", "providers show"],
)
def test_commands_build_only_the_records_they_use(
    argv: list[str], needed: tuple[str, ...], not_needed: tuple[str, ...]
) -> None:
    # Building attrs classes and provider records is most of the CLI's own start-up cost.
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True, timeout=60
    )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["code"] == 0
    assert [m for m in needed if m not in data["modules"]] == []
    assert [m for m in not_needed if m in data["modules"]] == []


def test_connect_commands_do_import_what_they_need() -> None:
    # The probe is honest: a command that needs the store does load sqlite3.
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "--home", "/nonexistent/x", "profile", "list"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert "sqlite3" in data["modules"]


def test_show_imports_only_the_named_plugin(tmp_path: object) -> None:
    from pathlib import Path

    from support import make_distribution

    site = Path(str(tmp_path)) / "site"
    site.mkdir()
    for n in range(5):
        make_distribution(
            site, f"connector-extra{n}", {f"extra{n}": "raise RuntimeError('imported')\n"}, {f"extra{n}": f"extra{n}"}
        )
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env["PYTHONPATH"] = str(site)
    show = subprocess.run(
        [sys.executable, "-m", "connector_core", "providers", "show", "hibob"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert show.returncode == 0 and "imported" not in show.stderr  # the other plugins were never imported
    listed = subprocess.run(
        [sys.executable, "-m", "connector_core", "providers", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0 and listed.stderr.count("RuntimeError: imported") == 5


def test_the_command_records_every_command_imports_are_plain_classes() -> None:
    """Every ``connector`` command imports connector_core.registries; building an attrs class
    there would cost each of them more than the rest of the module (cold start)."""
    import attrs

    from connector_core.registries import Command, CommandRegistry

    assert not attrs.has(Command)
    assert not attrs.has(CommandRegistry)
