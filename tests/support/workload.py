"""The suite's side of the multi-process refresh workload (:mod:`connector_core.testing.workload`):
HiBob's emulator in the test process, connections made through the real OAuth flow, and
workers that call HiBob's API.

Used by ``tests/store/test_multiprocess.py`` and the other PostgreSQL tests that need a
profile and connections of the emulator's test app.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connector_core.testing import Harness
from connector_core.testing.workload import Workers, expire_tokens
from connector_core.testing.workload import start_workers as _start_workers
from support import PLATFORM_REDIRECT, create_emulator_profile

REDIRECT = PLATFORM_REDIRECT
PROFILE = "acme-sandbox"
#: The call each worker makes with each connection.
CALL = ("GET", "/company/named-lists")


def make_profile(store: Any, emu: Any, plugins: Any, name: str = PROFILE) -> None:
    """A profile of the emulator's test app (sandbox), as the suite's other tests make it."""
    create_emulator_profile(store, plugins, emu, name)


def connect_many(connector: Any, emu: Any, count: int, *, threads: int = 8) -> list[str]:
    """``count`` connections, each a new emulated company, through the full OAuth flow."""
    companies = [emu.add_company().id for _ in range(count)]

    def one(company: str) -> str:
        start = connector.begin(PROFILE)
        return str(connector.complete(Harness.consent(start.url, company=company), profile=PROFILE).connection.id)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, companies))


def expire_all(store: Any, emu: Any) -> None:
    """Every access token expires now: in the store's records and at the server."""
    expire_tokens(store)
    emu.advance_clock(emu.access_token_lifetime + 1)


def refresh_count(emu: Any) -> int:
    """How many token refreshes ``emu`` (in this process) has answered."""
    return int(emu.stats.token_requests.get("refresh_token", 0))


@contextmanager
def start_workers(
    url: str, key_file: Path, ids: Sequence[str], *, workers: int, threads: int, tmp: Path
) -> Iterator[Workers]:
    """HiBob workers (the plugin registered directly) on the store at ``url``, with no
    ``CONNECTOR_*``/``HIBOB_*`` variable of this environment."""
    with _start_workers(
        url,
        key_file,
        ids,
        call=CALL,
        workers=workers,
        threads=threads,
        tmp=tmp,
        plugin_modules=("connector_hibob.plugin",),
        isolate=("CONNECTOR_", "HIBOB_"),
    ) as group:
        yield group
