"""The core's own plugin, registered like any other.

It answers last (``trylast``), so any installed plugin can override it. It ships one
provider as data, the generic OAuth 2.0 provider ``oauth2-generic``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._markers import hookimpl

#: The platform's public base URL that OAuth callbacks reach.
ENV_CALLBACK_BASE_URL = "CONNECTOR_CALLBACK_BASE_URL"


@hookimpl(trylast=True)
def connector_core_callback_base_url(provider_key: str, environment: str) -> str | None:
    return os.environ.get(ENV_CALLBACK_BASE_URL) or None


#: The generic OAuth 2.0 provider's file (``connector_core.dataprovider.GENERIC_OAUTH2_FILE``,
#: named here so that listing providers does not import that package before it reads a file).
GENERIC_OAUTH2_FILE = Path(__file__).parent / "dataprovider" / "oauth2-generic.toml"


@hookimpl(trylast=True)
def connector_core_provider_files() -> list[Path]:
    return [GENERIC_OAUTH2_FILE]
