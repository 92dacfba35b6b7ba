"""What the top-level options (``--store-url``, ``--home``) select: the store, and a
:class:`~connector_core.Connector` over it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import ValidationError

if TYPE_CHECKING:
    from ..connector import Connector
    from ..plugins import Plugins
    from ..store import StoreLike

__all__ = ["open_connector", "open_store", "refuse_password"]


def refuse_password(option: str, url: str | None) -> None:
    """Refuse a store URL on the command line that holds a password: anyone on the machine can read argv."""
    from ..store.url import has_password  # here, not at the top: the store package (cold start)

    if url and has_password(url):
        raise ValidationError(
            option,
            "holds a password, which anyone on this machine can read on a command line; put the URL in "
            "CONNECTOR_STORE_URL or in the file CONNECTOR_STORE_URL_FILE names, or leave the password out "
            "and set PGPASSWORD or a passfile (~/.pgpass)",
        )


def open_store(args: argparse.Namespace) -> StoreLike:
    from ..store import open_store as open_url  # here, not at the top: it imports sqlite3 (cold start)

    refuse_password("--store-url", args.store_url)
    return open_url(args.store_url, args.home)


def open_connector(args: argparse.Namespace, plugins: Plugins) -> Connector:
    from ..connector import Connector  # here, not at the top: httpx and oauthlib (cold start)

    return Connector(open_store(args), plugins)
