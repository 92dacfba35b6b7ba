"""The emulator's tests start from a running HiBob emulator and a raw OAuth client of it
(:class:`support.emulator.Flow`: plain httpx, no connector-core client code)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.emulator import Flow, running

from connector_core.emulator import RunningEmulator


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    """HiBob's emulator on a free loopback port (a module may override it, e.g. with a fixed clock)."""
    with running() as emulator:
        yield emulator


@pytest.fixture
def flow(emu: RunningEmulator) -> Iterator[Flow]:
    client = Flow(emu)
    yield client
    client.close()
