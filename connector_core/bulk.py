"""Refreshing many connections at once, with bounded concurrency."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import attrs

from .connection import ConnectionStatus
from .errors import ConnectorError

if TYPE_CHECKING:
    from .connector import Connector

__all__ = ["RefreshReport", "arefresh_all", "refresh_all"]

PAGE = 1000

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


async def arefresh_all(connector: Connector, *, concurrency: int = 32, force: bool = False) -> RefreshReport:
    """Refresh every connected connection that is (nearly) expired, or all with ``force``,
    at most ``concurrency`` at a time over one pooled async client (HTTP keep-alive).
    Each refresh is single-flight, so running this in several processes at once is safe."""
    if concurrency < 1:
        raise ConnectorError("concurrency must be at least 1")
    started = time.monotonic()
    ids: list[str] = []
    skipped = 0
    reasons: dict[str, int] = {}
    after: str | None = None
    now = time.time()
    while True:
        page = connector.store.list_connections(status=ConnectionStatus.CONNECTED, limit=PAGE, after=after)
        if not page:
            break
        for conn in page:
            if not connector._uses_tokens(conn):
                skipped += 1
                reasons[CREDENTIALS] = reasons.get(CREDENTIALS, 0) + 1
                continue
            due = conn.expires_at is not None and conn.expires_at - connector.leeway_for(conn) <= now
            if force or due:
                ids.append(conn.id)
            else:
                skipped += 1
                why = NO_EXPIRY if conn.expires_at is None else NOT_DUE.format(leeway=connector.leeway)
                reasons[why] = reasons.get(why, 0) + 1
        after = page[-1].id
    semaphore = asyncio.Semaphore(concurrency)
    failed: list[tuple[str, str]] = []
    refreshed = 0

    async def one(cid: str) -> None:
        nonlocal refreshed
        async with semaphore:
            try:
                await connector.arefresh(cid, force=force)
                refreshed += 1
            except ConnectorError as exc:
                failed.append((cid, exc.message))

    await asyncio.gather(*(one(cid) for cid in ids))
    skipped_why = tuple(sorted(reasons.items(), key=lambda item: -item[1]))
    return RefreshReport(refreshed, skipped, tuple(failed), time.monotonic() - started, skipped_why)


def refresh_all(connector: Connector, *, concurrency: int = 32, force: bool = False) -> RefreshReport:
    """The sync face of :func:`arefresh_all`."""

    async def run() -> RefreshReport:
        try:
            return await arefresh_all(connector, concurrency=concurrency, force=force)
        finally:
            await connector.aclose()
            connector._async_client = None

    return asyncio.run(run())
