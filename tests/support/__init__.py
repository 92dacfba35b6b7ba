"""What the suite's tests share beyond fixtures: paths, the platform's redirect URI, the
CLI run in a subprocess, installable fake distributions, and :class:`World`, the
emulator-backed harness most connect tests start from.

Helpers a provider author would want as well live in :mod:`connector_core.testing`
(``Harness``, ``run_cli``, ``run_connector``, ``free_port``); this package adds only what
is particular to this suite: the HiBob plugin, and keeping ``HIBOB_*`` variables out.
"""

from __future__ import annotations

import subprocess
import textwrap
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connector_core import Plugins, Store, load_plugins
from connector_core.emulator import RunningEmulator
from connector_core.profiles import ProfileDraft
from connector_core.secret import Secret
from connector_core.testing import CliResult, Harness, isolated_store
from connector_core.testing import run_connector as _run_connector

__all__ = [
    "PLATFORM_REDIRECT",
    "REFERENCE",
    "REPO",
    "Result",
    "World",
    "create_emulator_profile",
    "hibob",
    "make_distribution",
    "multiauth_plugins",
    "profile_draft",
    "run_connector",
]

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference"
#: The platform's base URL the emulator tests register their redirect URI under.
PLATFORM = "https://platform.example"
#: The platform's callback URL that the emulator tests register and their profiles use.
PLATFORM_REDIRECT = f"{PLATFORM}/connect/oauth2/hibob/callback"

#: One run of the CLI in this process: its exit status and both streams.
Result = CliResult


def hibob() -> Plugins:
    """A manager holding only the HiBob plugin (registered directly, not by entry point)."""
    from connector_hibob import plugin

    return load_plugins([plugin], entry_points=False)


def multiauth_plugins() -> Plugins:
    """A manager holding only the ``multiauth`` test provider (every auth type; see :mod:`support.multiauth`)."""
    from support import multiauth as plugin

    return load_plugins([plugin], entry_points=False)


def run_connector(
    args: Sequence[str], *, site: Path | None = None, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m connector_core`` in a subprocess, with ``site`` on the path and
    no ``CONNECTOR_*``/``HIBOB_*`` variable of this environment."""
    return _run_connector(args, env=env, site=site, input=input, isolate=("CONNECTOR_", "HIBOB_"))


def profile_draft(name: str = "acme", secret: str = "client-secret-value-123") -> ProfileDraft:
    """A HiBob sandbox profile as the store sees it (already validated), for store-level tests."""
    return ProfileDraft(
        name=name,
        provider="hibob",
        auth_type="oauth2",
        environment="sandbox",
        credential_set="development",
        values=(("app_id", "A"), ("client_id", "c")),
        secrets=(("client_secret", Secret(secret)),),
        scopes=("employee_data:read",),
        actions=(),
    )


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


class World(Harness):
    """HiBob's emulator (sandbox), a store in ``folder`` (``folder/home``, key file
    ``folder/keys.json``, as worker processes open it), a connector and a profile of the
    emulator's test app named ``profile`` that revokes at the emulator:
    :class:`~connector_core.testing.Harness` with the names the suite's tests use.
    ``plugins`` replaces the HiBob-only manager (to override one of its hooks). What the
    emulator answered is kept in :attr:`log`, one line per response
    (``"POST /sandbox/oauth2/token 200"``)."""

    def __init__(
        self, folder: Path, profile: str = "acme-sandbox", *, plugins: Plugins | None = None, **options: Any
    ) -> None:
        self.home = Path(folder) / "home"
        self.key_file = Path(folder) / "keys.json"
        self.log: list[str] = []
        self._log_lock = threading.Lock()
        store: Store = isolated_store(folder)
        options.setdefault("revocation", True)
        options["emulator_options"] = {"log": self._record, **options.get("emulator_options", {})}
        super().__init__(plugins or hibob(), "hibob", store, base_url=PLATFORM, profile=profile, **options)

    @property
    def emu(self) -> RunningEmulator:
        return self.emulator

    def _record(self, line: str) -> None:
        with self._log_lock:
            self.log.append(line)

    def lines(self, prefix: str) -> list[str]:
        """The emulator's log lines that start with ``prefix`` (``"POST /sandbox/oauth2/token "``)."""
        with self._log_lock:
            return [line for line in self.log if line.startswith(prefix)]
