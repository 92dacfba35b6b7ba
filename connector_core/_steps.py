"""Running flows' own steps off the event loop: :class:`StepRunner`.

A flow (see :mod:`connector_core._transport`) does its store work between two requests, inside
``flow.send``; driven on the event loop, every read, write and fsync there stops the loop.
A :class:`StepRunner` runs those steps in threads of its own and, on a store that can batch its
writes (SQLite's ``batched``), runs all the steps queued at once in one transaction, so that a
bulk refresh commits (and fsyncs) once for many refreshes rather than twice for each.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from ._transport import DEFAULT_DEADLINE, Flow, HttpResponse, perform

__all__ = ["StepRunner"]

_T = TypeVar("_T")

#: Put in a lane's queue for a flow to close rather than step.
_CLOSE: Any = object()


class StepRunner:
    """Runs flows' own steps (their store calls, between two requests) in threads of its own,
    so that the event loop only sends and reads while a step waits on the database.

    ``threads``: how many lanes, one thread each. Each flow keeps its lane for all its steps (a
    store may keep per-thread state across them, as the PostgreSQL store keeps a refresh
    lease's transaction on the thread that took it). ``batch``: what each thread enters around
    the steps queued for it at once, such as the SQLite store's ``batched`` (all their writes in
    one transaction, one commit): their results are handed back only once it has ended, so no
    step's outcome is acted on before its writes are committed, and if the commit fails, every
    step of the batch fails with its error. If the block yields a batch with a ``sync()``
    (``batched`` with ``defer_sync``), a thread of the lane's own calls it, once for every batch
    committed meanwhile, while the next batch runs, and the results wait for it too: a step that
    wrote something durable (a save), or ran after such a write in its batch, waits for its own
    batch's sync; one before any (a lease taken, tokens read: flows' first steps run first) waits
    only for the earlier batches' (see ``_Lane``). A flow whose run is cancelled or fails is
    closed on its lane (its lease released there) after any step under way.

    Threads start on first use and end with :meth:`close`, which the runner is a context
    manager for; they are daemon threads, so an unclosed runner does not hold a process up."""

    def __init__(
        self,
        threads: int = 1,
        *,
        batch: Callable[[], AbstractContextManager[Callable[[], None] | None]] | None = None,
        name: str = "connector-steps",
    ) -> None:
        if threads < 1:
            raise ValueError("a StepRunner needs at least one thread")
        self._batch = batch
        self._name = name
        self._queues: list[queue.SimpleQueue[Any]] = [queue.SimpleQueue() for _ in range(threads)]
        self._threads: list[threading.Thread | None] = [None] * threads
        self._syncing: list[queue.SimpleQueue[Any] | None] = [None] * threads
        self._lanes = [_Lane() for _ in range(threads)]
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._closed = False

    def __repr__(self) -> str:
        return f"<StepRunner threads={len(self._queues)} batched={self._batch is not None}>"

    @property
    def lanes(self) -> int:
        return len(self._queues)

    async def run(
        self, flow: Flow[_T], client: Any, deadline: float = DEFAULT_DEADLINE, *, lane: int | None = None
    ) -> _T:
        """Drive ``flow`` as :func:`run_async` does, its steps on lane ``lane`` (any: round robin)."""
        index = (next(self._turn) if lane is None else lane) % len(self._queues)
        self._start(index)
        lane_queue = self._queues[index]
        loop = asyncio.get_running_loop()
        reply: HttpResponse | None = None
        try:
            while True:
                answer: asyncio.Future[tuple[bool, Any]] = loop.create_future()
                lane_queue.put((flow, reply, answer, loop))
                finished, value = await answer
                if finished:
                    return value  # type: ignore[no-any-return]
                reply = await perform(value, client, deadline)
        except BaseException:
            lane_queue.put((flow, _CLOSE, None, None))
            raise

    def _start(self, index: int) -> None:
        if self._threads[index] is not None:
            return
        with self._lock:
            if self._closed:
                raise RuntimeError("this StepRunner is closed")
            if self._threads[index] is None:
                syncing: queue.SimpleQueue[Any] = queue.SimpleQueue()
                self._syncing[index] = syncing
                name = f"{self._name}-{index}"
                threading.Thread(target=self._sync, args=(index,), name=f"{name}-sync", daemon=True).start()
                serving = threading.Thread(target=self._serve, args=(index,), name=name, daemon=True)
                serving.start()
                self._threads[index] = serving

    def _serve(self, index: int) -> None:
        lane_queue, syncing = self._queues[index], self._syncing[index]
        assert syncing is not None
        lane = self._lanes[index]
        while True:
            items = [lane_queue.get()]
            while True:
                try:
                    items.append(lane_queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is None for item in items)
            # A flow's first step (no reply yet) before the others: a lease taken ahead of any save
            # in the batch is answered without waiting for the batch's own sync (see _Lane).
            steps = [item for item in items if item is not None]
            steps.sort(key=lambda item: item[1] is not None)
            handle, early, late = self._run_batch(steps)
            if handle is None:
                _deliver(early + late)
            else:
                _deliver(lane.committed(early, late))
                syncing.put(handle)
            if stop:
                syncing.put(None)
                return

    def _run_batch(self, items: list[Any]) -> tuple[Any, list[_Outcome], list[_Outcome]]:
        """Run one step of each item (or close its flow) inside one ``batch`` block: (the handle
        it yielded if it defers its sync, the outcomes that need no sync of this batch, the others)."""
        early: list[_Outcome] = []
        late: list[_Outcome] = []
        handle: Any = None
        try:
            with self._batch() if self._batch is not None else contextlib.nullcontext() as handle:
                deferred = hasattr(handle, "sync")
                for flow, reply, answer, loop in items:
                    if reply is _CLOSE:
                        with contextlib.suppress(Exception):
                            flow.close()
                        continue
                    try:
                        outcome: _Outcome = (answer, loop, _step(flow, reply), None)
                    except BaseException as exc:  # noqa: BLE001 - handed to the flow's caller
                        outcome = (answer, loop, None, exc)
                    # Nothing durable written in this batch yet, by this step or one before it.
                    (early if deferred and not handle.durable_writes else late).append(outcome)
        except BaseException as exc:  # noqa: BLE001 - the batch did not commit: none of its steps stands
            return None, [], [(answer, loop, None, exc) for answer, loop, _, _ in early + late]
        return (handle if hasattr(handle, "sync") else None), early, late

    def _sync(self, index: int) -> None:
        """A lane's syncer: make the committed batches durable, one sync for all those waiting,
        then hand over the outcomes that waited for them."""
        syncing, lane = self._syncing[index], self._lanes[index]
        assert syncing is not None
        while True:
            pending = [syncing.get()]
            while True:
                try:
                    pending.append(syncing.get_nowait())
                except queue.Empty:
                    break
            handles = [item for item in pending if item is not None]
            if handles:
                upto = lane.seq  # every batch committed so far: the sync below covers them all
                try:
                    handles[-1].sync()
                except BaseException as exc:  # noqa: BLE001 - not durable: none of them counts
                    _deliver(lane.synced(upto, exc))
                else:
                    _deliver(lane.synced(upto, None))
            if len(handles) < len(pending):
                return

    def close(self) -> None:
        """End the threads once the steps queued before have run."""
        with self._lock:
            self._closed = True
            for lane_queue, thread in zip(self._queues, self._threads, strict=True):
                if thread is not None:
                    lane_queue.put(None)

    def __enter__(self) -> StepRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: A step's outcome: (its future, its loop, (finished, value), or the error it raised).
_Outcome = tuple[Any, Any, Any, "BaseException | None"]


class _Lane:
    """What a lane's batches wait for once committed, when their sync is deferred.

    Batches are numbered as they commit. A step that wrote something durable, or ran after such a
    write in its batch, is answered once its own batch is synced. A step before any (a lease taken,
    tokens read) is answered once every *earlier* batch is synced: what it read is then durable, and
    its own writes, leases, need visibility only, which the commit gave them. A sync that fails
    fails every outcome that waited for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: The last batch committed, and the last one known durable.
        self.seq = 0
        self._synced = 0
        #: (the batch that must be synced first, its outcomes).
        self._waiting: list[tuple[int, list[_Outcome]]] = []

    def committed(self, early: list[_Outcome], late: list[_Outcome]) -> list[_Outcome]:
        """Record a batch just committed; the outcomes that may be handed over now."""
        with self._lock:
            self.seq += 1
            self._waiting.append((self.seq, late))
            if self._synced >= self.seq - 1:
                return early
            self._waiting.append((self.seq - 1, early))
            return []

    def synced(self, upto: int, error: BaseException | None) -> list[_Outcome]:
        """Every batch up to ``upto`` is durable (or, with ``error``, its sync failed): the
        outcomes that waited for them, failed with ``error`` if there is one."""
        with self._lock:
            ready = [outcomes for need, outcomes in self._waiting if need <= upto]
            self._waiting = [(need, outcomes) for need, outcomes in self._waiting if need > upto]
            if error is None:
                self._synced = max(self._synced, upto)
        found = [outcome for outcomes in ready for outcome in outcomes]
        if error is not None:
            return [(answer, loop, None, error) for answer, loop, _, _ in found]
        return found


def _deliver(outcomes: list[_Outcome]) -> None:
    """Hand the outcomes to their loops (one call per loop)."""
    by_loop: dict[Any, list[tuple[Any, Any, BaseException | None]]] = {}
    for answer, loop, value, error in outcomes:
        by_loop.setdefault(loop, []).append((answer, value, error))
    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits any more
            loop.call_soon_threadsafe(_hand_over, answers)


def _hand_over(answers: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """On the loop: answer each step's future (unless its waiter has gone)."""
    for answer, value, error in answers:
        if answer.done():
            continue
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(value)


def _step(flow: Flow[Any], reply: HttpResponse | None) -> tuple[bool, Any]:
    """One step of ``flow``: (True, its result) once it has returned, else (False, what it asks
    for next). A StopIteration cannot cross into a future."""
    try:
        return False, flow.send(reply)
    except StopIteration as done:
        return True, done.value
