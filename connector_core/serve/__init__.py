"""The connect service's ASGI application (the ``serve`` extra: ``pip install 'connector-core[serve]'``).

``create_app(connector, api_keys=..., public_url=...)`` is the platform API as a Starlette
application, to mount in the platform's own ASGI host or to run with ``connector serve``.
Importing this package imports Starlette; nothing else in connector-core does.
"""

from __future__ import annotations

from .app import check_public_url, create_app
from .config import CALLBACK_PATH, ConnectConfig, callback_url, check_origin
from .keys import ENV_API_KEYS, ApiKeys, load_api_keys
from .metrics import METRICS_PATH, Metrics
from .problems import DEFAULT_MAX_BODY, Problem

__all__ = [
    "CALLBACK_PATH",
    "DEFAULT_MAX_BODY",
    "ENV_API_KEYS",
    "METRICS_PATH",
    "ApiKeys",
    "ConnectConfig",
    "Metrics",
    "Problem",
    "callback_url",
    "check_origin",
    "check_public_url",
    "create_app",
    "load_api_keys",
]
