"""Shared fixtures. Installed third-party plugins never leak into the suite:
every test builds its own plugin manager, or runs the CLI in a subprocess with
an explicit allow-list. Importable helpers live in :mod:`support`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from support import REPO, Result, hibob

from connector_core import Plugins
from connector_core.testing import run_cli as _run_cli

pytest_plugins = ["support.postgres"]  # a throwaway PostgreSQL server for the PostgreSQL store's tests


@pytest.fixture(scope="session", autouse=True)
def _package_bytecode() -> None:
    """Bytecode for the package's own modules, written once per session. The suite runs with
    PYTHONDONTWRITEBYTECODE=1 (tests write plugin modules on the fly, and stale bytecode must never
    shadow them), so without it every CLI subprocess compiles connector_core again. The package's
    sources do not change during a run: their bytecode cannot go stale."""
    import compileall  # only here: the one use

    for folder in (
        REPO / "connector_core",
        REPO / "providers" / "hibob" / "connector_hibob",
        REPO / "tests" / "support",
    ):
        compileall.compile_dir(folder, quiet=2)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("CONNECTOR_", "HIBOB_")):
            monkeypatch.delenv(name)


@pytest.fixture
def hibob_plugins() -> Plugins:
    """A manager holding only the HiBob plugin (registered directly, not by entry point)."""
    return hibob()


@pytest.fixture
def run_cli() -> Callable[..., Result]:
    """Run the CLI in-process with the given plugins (default: HiBob's only); capture both streams."""

    def run(argv: Sequence[str], plugins: Plugins | None = None) -> Result:
        return _run_cli(argv, plugins if plugins is not None else hibob())

    return run


@pytest.fixture
def site_dir(tmp_path: Path) -> Iterator[Path]:
    site = tmp_path / "site"
    site.mkdir()
    return site
