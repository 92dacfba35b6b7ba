"""Refreshing many connections at once, with bounded concurrency."""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import attrs

from ._http11 import Http11Pool
from ._steps import StepRunner
from ._transport import default_timeout
from .connection import ConnectionStatus
from .errors import ConnectorError

if TYPE_CHECKING:
    import httpx

    from .connection import Connection
    from .connector import Connector, _Context

__all__ = ["RefreshReport", "arefresh_all", "refresh_all"]

PAGE = 1000
#: The first page is smaller, so that the first refreshes start sooner.
FIRST_PAGE = 100
#: How many refreshes ``refresh_all`` runs at once unless told otherwise.
DEFAULT_CONCURRENCY = 32
#: How long a bulk refresh uses a profile it read before reading it again (seconds).
PROFILE_TTL = 1.0
#: At most this many threads run a bulk refresh's store calls on a store that does not batch its
#: writes (a refresh keeps one for all its steps).
MAX_STORE_THREADS = 32

#: Why a connected connection was not refreshed (without ``force``).
NOT_DUE = "not expiring within {leeway:g} s"
NO_EXPIRY = "with no known expiry (the provider sent no expires_in; a forced refresh renews them)"
CREDENTIALS = "holding credentials, not tokens (nothing to refresh)"


@attrs.frozen
class RefreshReport:
    """What a bulk refresh did."""

    refreshed: int
    skipped: int
    #: (connection id, one-line error) for each failure; the others are unaffected.
    failed: tuple[tuple[str, str], ...]
    seconds: float
    #: Why each skipped connection was skipped: (reason, count), largest first.
    skipped_why: tuple[tuple[str, int], ...] = ()


async def arefresh_all(
    connector: Connector, *, concurrency: int = DEFAULT_CONCURRENCY, force: bool = False
) -> RefreshReport:
    """Refresh every connected connection that is (nearly) expired, or all with ``force``,
    at most ``concurrency`` at a time over keep-alive connections. Each refresh is
    single-flight, so running this in several processes at once is safe.

    The event loop only sends and reads: every store call (the listing, each refresh's lease,
    its reads and its save) runs in threads of this run's. On a store that batches its writes
    (SQLite's ``batched``), one thread runs the steps of every refresh queued at once in one
    transaction, one fsync'd commit (a group commit; the fsync overlaps the next batch), and hands
    their outcomes back only once committed: no refresh counts as done before its save is durable,
    and no request is sent under a lease before the lease is committed and what it read durable.
    On other stores (PostgreSQL, whose leases are transactions of the thread
    that took them, and whose server groups concurrent commits itself), each refresh under way
    keeps one of up to :data:`MAX_STORE_THREADS` threads. Unless the connector was given an
    ``async_client``, the token calls go through a lean HTTP/1.1 client
    (:mod:`connector_core._http11`) rather than httpx, at a fraction of its CPU."""
    if concurrency < 1:
        raise ConnectorError("concurrency must be at least 1")
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    batched = getattr(connector.store, "batched", None)
    batch = functools.partial(batched, defer_sync=True) if batched is not None else None
    threads = 1 if batch is not None else min(concurrency, MAX_STORE_THREADS)
    steps = StepRunner(threads, batch=batch, name="connector-refresh")
    lister = ThreadPoolExecutor(1, thread_name_prefix="connector-refresh-list")
    client = _client(connector, concurrency)
    queue: asyncio.Queue[Connection | None] = asyncio.Queue(PAGE)
    skipped = 0
    reasons: dict[str, int] = {}
    failed: list[tuple[str, str]] = []
    refreshed = 0

    async def produce() -> None:
        nonlocal skipped
        after: str | None = None
        while True:
            page = await loop.run_in_executor(lister, _page, connector, after, PAGE if after else FIRST_PAGE)
            if not page:
                break
            now = time.time()
            for conn in page:
                why = _why_not(connector, conn, now, force)
                if why is None:
                    await queue.put(conn)
                else:
                    skipped += 1
                    reasons[why] = reasons.get(why, 0) + 1
            after = page[-1].id
        for _ in range(concurrency):
            await queue.put(None)  # one end mark for each worker

    contexts = _Contexts(connector)

    async def work(index: int) -> None:
        nonlocal refreshed
        while (conn := await queue.get()) is not None:
            flow = connector._refresh_flow(
                conn.id, conn.token_version if force else None, first=conn, contexts=contexts
            )
            try:
                await steps.run(flow, client, connector.deadline, lane=index)
                refreshed += 1
            except ConnectorError as exc:
                failed.append((conn.id, exc.message))

    try:
        workers = [asyncio.ensure_future(work(i)) for i in range(concurrency)]
        try:
            await produce()
            await asyncio.gather(*workers)
        except BaseException:  # the listing failed, or a worker did: the others stop, the error stands
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
    finally:
        if isinstance(client, Http11Pool):
            await client.aclose()
        steps.close()  # idle by now: its threads end on their own
        lister.shutdown(wait=False)
    skipped_why = tuple(sorted(reasons.items(), key=lambda item: -item[1]))
    return RefreshReport(refreshed, skipped, tuple(failed), time.monotonic() - started, skipped_why)


class _Contexts:
    """Each profile's OAuth context for one bulk refresh, read again once it is
    :data:`PROFILE_TTL` seconds old: a run of many refreshes of one profile reads it once a
    second rather than once a refresh, and a change to it (a new client secret) is seen as soon."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._found: dict[str, tuple[float, _Context]] = {}

    def __call__(self, profile_id: str) -> _Context:
        now = time.monotonic()
        found = self._found.get(profile_id)
        if found is not None and now - found[0] < PROFILE_TTL:
            return found[1]
        context = self._connector._context(self._connector.store.profile_by_id(profile_id))
        self._found[profile_id] = (now, context)
        return context


def _page(connector: Connector, after: str | None, limit: int) -> tuple[Connection, ...]:
    return tuple(connector.store.list_connections(status=ConnectionStatus.CONNECTED, limit=limit, after=after))


def _why_not(connector: Connector, conn: Connection, now: float, force: bool) -> str | None:
    """Why ``conn`` is not refreshed now, or None to refresh it."""
    if not connector._uses_tokens(conn):
        return CREDENTIALS
    if force or (conn.expires_at is not None and conn.expires_at - connector.leeway_for(conn) <= now):
        return None
    return NO_EXPIRY if conn.expires_at is None else NOT_DUE.format(leeway=connector.leeway)


def _client(connector: Connector, concurrency: int) -> httpx.AsyncClient | Http11Pool:
    """The connector's own async client if it was given one; else a lean pool of this run's."""
    if connector._async_client_given:
        return connector.async_client
    timeout = default_timeout()
    return Http11Pool(
        max_connections=concurrency,
        fallback=lambda: connector.async_client,
        connect_timeout=timeout.connect or 5.0,
        read_timeout=timeout.read or 20.0,
        pool_timeout=timeout.pool or 5.0,
    )


def refresh_all(connector: Connector, *, concurrency: int = DEFAULT_CONCURRENCY, force: bool = False) -> RefreshReport:
    """The sync face of :func:`arefresh_all`."""

    async def run() -> RefreshReport:
        try:
            return await arefresh_all(connector, concurrency=concurrency, force=force)
        finally:
            await connector.aclose()
            connector._async_client = None

    return asyncio.run(run())
