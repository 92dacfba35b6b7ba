"""The core's own plugin, registered like any other.

It answers last (``trylast``), so any installed plugin can override it.
"""

from __future__ import annotations

import os

from ._markers import hookimpl

#: The platform's public base URL that OAuth callbacks reach.
ENV_CALLBACK_BASE_URL = "CONNECTOR_CALLBACK_BASE_URL"


@hookimpl(trylast=True)
def connector_core_callback_base_url(provider_key: str, environment: str) -> str | None:
    return os.environ.get(ENV_CALLBACK_BASE_URL) or None
