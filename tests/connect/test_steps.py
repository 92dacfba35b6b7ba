"""StepRunner: flows' own steps off the event loop, the steps queued at once in one batch,
and no outcome handed back before its batch has committed and synced."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from connector_core._steps import StepRunner
from connector_core._transport import Flow, Sleep


class Batches:
    """A batch context for the runner, as the SQLite store's ``batched(defer_sync=True)``: it
    records which steps ran in each batch, counts the steps' durable writes (``write()``), and
    its sync waits for ``synced``."""

    def __init__(self, *, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail
        self.exited = threading.Event()
        self.synced = threading.Event()
        self.synced.set()
        self.durable_writes = 0
        self.syncs = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[Any]:
        self.batches.append([])
        self.durable_writes = 0
        yield self
        self.exited.set()
        if self.fail:
            raise RuntimeError("the commit failed")

    def sync(self) -> None:
        self.synced.wait()
        self.syncs += 1

    def ran(self, name: str) -> None:
        self.batches[-1].append(name)

    def write(self) -> None:
        self.durable_writes += 1


def flow(batches: Batches, name: str, threads: list[int], *, hold: threading.Event | None = None) -> Flow[str]:
    """Two steps (each recorded in its batch, on its thread) around a sleep, the second making a
    durable write (as a refresh takes its lease, then saves); ``hold`` blocks the first."""
    batches.ran(name)
    threads.append(threading.get_ident())
    if hold is not None:
        hold.wait()
    yield Sleep(0)
    batches.ran(name)
    batches.write()
    threads.append(threading.get_ident())
    return name


def test_steps_queued_together_run_in_one_batch_and_wait_for_its_sync() -> None:
    batches = Batches()
    hold = threading.Event()
    threads: list[int] = []

    async def main() -> list[str]:
        with StepRunner(batch=batches) as runner:
            first = asyncio.ensure_future(runner.run(flow(batches, "a", threads, hold=hold), None))
            while not batches.batches:  # a's first step is running (and blocked) in the runner's thread
                await asyncio.sleep(0.001)
            others = [asyncio.ensure_future(runner.run(flow(batches, n, threads), None)) for n in "bcd"]
            await asyncio.sleep(0)  # each has queued its first step
            batches.synced.clear()
            batches.exited.clear()
            hold.set()
            await asyncio.get_running_loop().run_in_executor(None, batches.exited.wait)
            await asyncio.sleep(0.05)
            assert not any(task.done() for task in (first, *others))  # committed, not yet synced: nothing back
            batches.synced.set()
            return list(await asyncio.gather(first, *others))

    loop_thread = threading.get_ident()
    assert asyncio.run(main()) == ["a", "b", "c", "d"]
    assert batches.batches[0] == ["a"] and batches.batches[1][:3] == ["b", "c", "d"]
    assert sum(len(b) for b in batches.batches) == 8 and len(batches.batches) <= 5
    assert loop_thread not in threads and len(set(threads)) == 1


def test_a_batch_that_fails_to_commit_fails_each_of_its_steps_and_closes_their_flows() -> None:
    batches = Batches(fail=True)
    closed: list[str] = []

    def closing(name: str) -> Flow[str]:
        try:
            yield from flow(batches, name, [])
            return name
        finally:
            closed.append(name)

    async def main() -> list[Any]:
        with StepRunner(batch=batches) as runner:
            return await asyncio.gather(*(runner.run(closing(n), None) for n in "ab"), return_exceptions=True)

    results = asyncio.run(main())
    assert [str(r) for r in results] == ["the commit failed", "the commit failed"]
    _wait_for(closed, 2)  # closed on the runner's thread, after the batch
    assert sorted(closed) == ["a", "b"]


def test_each_flow_keeps_its_lane_and_a_cancelled_one_is_closed_there() -> None:
    lanes: dict[str, set[int]] = {}
    closed_on: list[int] = []

    def laned(name: str) -> Flow[str]:
        for _ in range(3):
            lanes.setdefault(name, set()).add(threading.get_ident())
            yield Sleep(0)
        return name

    def sleeper() -> Flow[None]:
        try:
            yield Sleep(30)
        finally:
            closed_on.append(threading.get_ident())

    async def main() -> None:
        with StepRunner(3) as runner:
            assert runner.lanes == 3
            await asyncio.gather(*(runner.run(laned(f"f{i}"), None, lane=i) for i in range(6)))
            task = asyncio.ensure_future(runner.run(sleeper(), None, lane=0))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.get_running_loop().run_in_executor(None, _wait_for, closed_on)

    asyncio.run(main())
    assert all(len(threads) == 1 for threads in lanes.values())
    assert (
        lanes["f0"] == lanes["f3"]
        and lanes["f1"] == lanes["f4"]
        and len({*lanes["f0"], *lanes["f1"], *lanes["f2"]}) == 3
    )
    assert closed_on and closed_on[0] in lanes["f0"]


def _wait_for(items: list[Any], count: int = 1) -> None:
    for _ in range(500):
        if len(items) >= count:
            return
        threading.Event().wait(0.01)


def test_a_step_before_any_durable_write_waits_only_for_earlier_batches_to_sync() -> None:
    batches = Batches()
    unsynced = threading.Event()  # set once the first batch has committed, its sync held

    def lease_then_save(name: str, reached: list[str]) -> Flow[str]:
        batches.ran(name)
        yield Sleep(0)
        reached.append(name)  # the first step's outcome came back: the "request" goes out
        batches.ran(name)
        batches.write()
        return name

    async def main() -> tuple[list[str], list[str]]:
        reached: list[str] = []
        with StepRunner(batch=batches) as runner:
            batches.synced.clear()  # no batch becomes durable until told
            task = asyncio.ensure_future(runner.run(lease_then_save("a", reached), None))
            while not reached:  # the lease step is answered at its commit, the sync still held
                await asyncio.sleep(0.001)
            unsynced.set()
            await asyncio.sleep(0.05)
            assert not task.done()  # its save waits for its batch's sync
            waited = list(reached)
            batches.synced.set()
            return waited, [await task]

    waited, done = asyncio.run(main())
    assert waited == ["a"] and done == ["a"] and unsynced.is_set()
    assert batches.syncs >= 1 and batches.batches[0] == ["a"]
