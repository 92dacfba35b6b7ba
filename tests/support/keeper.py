"""Making connections due for the keeper: their access tokens about to expire, issued long ago (a
token issued a moment ago that lives two minutes is a short-lived token, which the keeper refreshes
only with half its life left)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from connector_core.store.sql import iso

__all__ = ["make_due"]


def make_due(store: Any, connection_ids: Sequence[str] | None = None, *, expires_in: float = 120.0) -> None:
    """The access tokens of ``connection_ids`` (default: every connection) expire in ``expires_in``
    seconds, within the keeper's margin, and were issued an hour ago."""
    now = time.time()
    # Every time moved back alike, so that what the engine reads from them stays as it was (a refresh
    # that succeeded after a lost reply still counts as later than it: refreshed_at >= updated_at).
    columns = (
        "expires_at = ?, created_at = ?, updated_at = ?, "
        "refreshed_at = CASE WHEN refreshed_at IS NULL THEN NULL ELSE ? END"
    )
    values = (now + expires_in, *(iso(now - 3600),) * 3)
    with store._write() as tx:
        if connection_ids is None:
            tx.execute(f"UPDATE connections SET {columns}", values)
        else:
            tx.many(f"UPDATE connections SET {columns} WHERE id = ?", [(*values, cid) for cid in connection_ids])
