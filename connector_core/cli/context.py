"""What the top-level options (``--store-url``, ``--home``) select: the store, and a
:class:`~connector_core.Connector` over it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..connector import Connector
    from ..plugins import Plugins
    from ..store import StoreLike

__all__ = ["open_connector", "open_store"]


def open_store(args: argparse.Namespace) -> StoreLike:
    from ..store import open_store as open_url  # here, not at the top: it imports sqlite3 (cold start)

    return open_url(args.store_url, args.home)


def open_connector(args: argparse.Namespace, plugins: Plugins) -> Connector:
    from ..connector import Connector  # here, not at the top: httpx and oauthlib (cold start)

    return Connector(open_store(args), plugins)
