"""The service's store calls in worker threads, a few at a time.

A store call blocks (SQLite's commit waits for the disk, PostgreSQL's for its server), so the
routes run it in a worker thread. anyio's default allows 40 at once: under 50 concurrent
requests that is 40 threads taking turns on one interpreter lock and, on SQLite, on one write
lock, where four keep the disk and the database as busy with less switching (measured:
creating connect sessions takes 15-20% less CPU each, with a lower p99). :func:`in_store_thread`
runs a call within :data:`STORE_THREADS` threads per event loop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
import sniffio

__all__ = ["STORE_THREADS", "in_store_thread"]

#: Store calls of the service in worker threads at once (per event loop).
STORE_THREADS = 4

_T = TypeVar("_T")
_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


async def in_store_thread(call: Callable[..., _T], *args: object) -> _T:
    """``call(*args)`` in a worker thread, at most :data:`STORE_THREADS` of them at once."""
    limiter = None
    if sniffio.current_async_library() == "asyncio":
        loop = asyncio.get_running_loop()
        limiter = _LIMITERS.get(loop)
        if limiter is None:
            limiter = _LIMITERS[loop] = anyio.CapacityLimiter(STORE_THREADS)
    return await anyio.to_thread.run_sync(call, *args, limiter=limiter)
