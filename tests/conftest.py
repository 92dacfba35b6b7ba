"""Shared fixtures. Installed third-party plugins never leak into the suite:
every test builds its own plugin manager, or runs the CLI in a subprocess with
an explicit allow-list."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from connector_core import Plugins, load_plugins
from connector_core import cli as cli_module

pytest_plugins = ["pg_fixture"]  # a throwaway PostgreSQL server for the PostgreSQL store's tests

REPO = Path(__file__).resolve().parent.parent
#: The platform's callback URL that the emulator tests register and their profiles use.
PLATFORM_REDIRECT = "https://platform.example/connect/oauth2/hibob/callback"
REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("CONNECTOR_", "HIBOB_")):
            monkeypatch.delenv(name)


@pytest.fixture
def hibob_plugins() -> Plugins:
    """A manager holding only the HiBob plugin (registered directly, not by entry point)."""
    from connector_hibob import plugin

    return load_plugins([plugin], entry_points=False)


@attrs.frozen
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run the CLI in-process with the given plugins; capture both streams."""

    def run(argv: Sequence[str], plugins: Plugins | None = None) -> Result:
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        if plugins is None:
            from connector_hibob import plugin

            plugins = load_plugins([plugin], entry_points=False)
        code = cli_module.main(list(argv), plugins=plugins)
        monkeypatch.undo()
        return Result(code, out.getvalue(), err.getvalue())

    return run


def make_distribution(site: Path, name: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """Write a real installed distribution (dist-info with entry points) into ``site``."""
    dist_info = site / f"{name.replace('-', '_')}-1.2.3.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = ["[connector_core]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (dist_info / "RECORD").write_text("")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site_dir(tmp_path: Path) -> Iterator[Path]:
    site = tmp_path / "site"
    site.mkdir()
    return site


def run_connector(
    args: Sequence[str], *, site: Path | None = None, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m connector_core`` in a subprocess, with ``site`` on the path."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_"))}
    if site is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "connector_core", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=60,
        check=False,
    )


def create_emulator_profile(store: Any, plugins: Plugins, emu: Any, name: str, **kw: Any) -> None:
    """Store a HiBob sandbox profile of the emulator's test app (``kw`` goes to validate_profile)."""
    from connector_core import validate_profile

    endpoints = emu.endpoints("sandbox")
    creds = emu.app.credentials[endpoints.credential_set]
    draft = validate_profile(
        plugins.declaration("hibob"),
        name=name,
        environment="sandbox",
        values={"app_id": emu.app.app_id, "client_id": creds.client_id, "client_secret": creds.client_secret},
        endpoints=endpoints.profile_urls(PLATFORM_REDIRECT),
        **kw,
    )
    store.create_profile(draft)
