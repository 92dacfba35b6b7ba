"""Running the ``connector`` CLI from tests: in this process with the plugins a test
chose, or in a subprocess exactly as a person runs it.

A plugin that adds commands (``connector_core_register_commands``) tests them with
these, as connector-core tests its own::

    from connector_core.testing import isolated_plugins, run_cli

    result = run_cli(["sync-users", "--json"], isolated_plugins(my_plugin))
    assert result.code == 0, result.err
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["CliResult", "free_port", "run_cli", "run_connector"]


@attrs.frozen
class CliResult:
    """What one run of the CLI did: its exit status and both streams."""

    code: int
    out: str
    err: str


def run_cli(argv: Sequence[str], plugins: Plugins) -> CliResult:
    """Run ``connector ARGV`` in this process with ``plugins``, capturing both streams."""
    # on first use: pytest imports this package in every run (the pytest11 entry point)
    from ..cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv), plugins=plugins)
    return CliResult(code, out.getvalue(), err.getvalue())


def run_connector(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    site: str | Path | None = None,
    input: str | None = None,
    timeout: float = 60,
    isolate: Sequence[str] = ("CONNECTOR_",),
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m connector_core ARGV`` in a subprocess, as a person would.

    The child gets this environment without the variables whose names start with one
    of ``isolate`` (add your provider's own prefix), then ``env``; ``site`` (a folder
    of distributions) goes first on its ``PYTHONPATH``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(tuple(isolate))}
    if site is not None:
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), full.get("PYTHONPATH")]))
    full.update(env or {})
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "connector_core", *argv],
        capture_output=True,
        text=True,
        env=full,
        input=input,
        timeout=timeout,
        check=False,
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for a server a test starts itself)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
