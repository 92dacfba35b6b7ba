"""The credential store: SQLite (embedded, the default) or PostgreSQL (shared), one contract.

:mod:`.contract` (:class:`StoreLike`, its records), :mod:`.sql` (every domain statement, once),
the engines :mod:`.sqlite` (:class:`Store`) and :mod:`.postgres` (:class:`PgStore`), :mod:`.url`
(which store is selected) and :mod:`.copy` (SQLite into PostgreSQL). Names are imported on first
use (sqlite3 and psycopg only with a store of that kind): the CLI's cold start stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ..errors import StoreError
from .url import DB_NAME, ENV_HOME, ENV_STORE_URL, default_home, select_store, sqlite_path, store_kind

if TYPE_CHECKING:
    from .contract import (
        ConnectionStamp,
        CopyReport,
        KeeperClaim,
        KeeperDue,
        KeeperLock,
        KeeperState,
        KeyRotation,
        LockStats,
        RefreshLease,
        StoreLike,
    )
    from .copy import copy_from_sqlite
    from .postgres import PgSettings, PgStore
    from .sqlite import Store

# .url's names; the records; the stores and what opens or copies one.
__all__ = ["DB_NAME", "ENV_HOME", "ENV_STORE_URL", "default_home", "select_store", "sqlite_path", "store_kind"]
__all__ += ["ConnectionStamp", "CopyReport", "KeyRotation", "LockStats", "RefreshLease", "StoreError", "StoreLike"]
__all__ += ["KeeperClaim", "KeeperDue", "KeeperLock", "KeeperState"]
__all__ += ["PgSettings", "PgStore", "Store", "copy_from_sqlite", "open_store"]

_LAZY = {
    "ConnectionStamp": ".contract",
    "CopyReport": ".contract",
    "KeeperClaim": ".contract",
    "KeeperDue": ".contract",
    "KeeperLock": ".contract",
    "KeeperState": ".contract",
    "KeyRotation": ".contract",
    "LockStats": ".contract",
    "RefreshLease": ".contract",
    "StoreLike": ".contract",
    "copy_from_sqlite": ".copy",
    "PgSettings": ".postgres",
    "PgStore": ".postgres",
    "Store": ".sqlite",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


def open_store(
    url: str | None = None, home: str | Path | None = None, env: Mapping[str, str] | None = None
) -> StoreLike:
    """Open the store that ``url``, ``home`` or the environment select (see :mod:`.url`).

    ``env`` (default: ``os.environ``) is also where the store finds its keys.
    """
    kind, where = select_store(url, home, env)
    # The engine is imported here, not above: only the kind asked for is loaded (cold start).
    if kind == "sqlite":
        from .sqlite import Store  # cold start, as above

        return Store(Path(where), env=env)
    from .postgres import PgStore  # cold start, as above

    return PgStore(str(where), env=env)
