"""``connector serve``: run the connect service's platform API under uvicorn (one worker).

The API keys come from ``CONNECTOR_SERVE_API_KEYS`` or ``--api-keys-file``, never from argv,
and are never printed; without one the command refuses to start. Starlette and uvicorn (the
``serve`` extra) are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from typing import IO, TYPE_CHECKING, Any

from ..errors import ConnectorError, UsageError
from ..registries import Command
from .context import open_connector
from .output import run_handler
from .parser import HELP

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["COMMAND"]


def configure(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Run the platform API (connections, the proxy, /v1/openapi.json) under uvicorn until Ctrl-C. "
        "API keys come from $CONNECTOR_SERVE_API_KEYS (comma-separated) or --api-keys-file."
    )
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="the port to listen on (default: 8080)")
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="the https URL the service is reached at (http only for loopback; default: http://HOST:PORT on loopback)",
    )
    p.add_argument("--api-keys-file", metavar="PATH", help="the API keys, one per line (mode 0600)")
    p.add_argument(
        "--forwarded-allow-ips",
        metavar="ADDRESSES",
        help="trust X-Forwarded-For/-Proto from these comma-separated proxy addresses (default: trust none)",
    )
    p.set_defaults(handler=_serve)


COMMAND = Command("serve", HELP["serve"], configure, run_handler)


def _serve(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from ..models import is_loopback_host  # here, not at the top: the records (cold start)

    if not 0 < args.port <= 65535:
        raise UsageError(f"connector serve: --port must be 1 to 65535, got {args.port}")
    try:
        # Here, not at the top: Starlette and uvicorn are the optional 'serve' extra, and
        # 'connector --help' must not pay for them (cold start).
        import uvicorn

        from ..serve import check_public_url, create_app, load_api_keys
    except ImportError as exc:
        raise ConnectorError(
            f"connector serve needs the 'serve' extra ({exc.name} is missing): pip install 'connector-core[serve]'"
        ) from None
    keys = load_api_keys(os.environ, args.api_keys_file)
    if args.public_url is None:
        if not is_loopback_host(args.host):
            raise UsageError("connector serve: --public-url is required when listening beyond loopback")
        host = f"[{args.host}]" if ":" in args.host else args.host
        public_url = f"http://{host}:{args.port}"
    else:
        public_url = args.public_url
    public_url = check_public_url(public_url, "--public-url")
    connector = open_connector(args, plugins)
    try:
        app = create_app(
            connector, api_keys=keys, public_url=public_url, trust_forwarded=args.forwarded_allow_ips is not None
        )
        config = uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            workers=1,
            proxy_headers=args.forwarded_allow_ips is not None,
            forwarded_allow_ips=args.forwarded_allow_ips or "",
            server_header=False,
            log_level="info",
            # uvicorn's access log writes the raw request line: a connect token in the path, a
            # callback's code and state in the query. The app logs each request itself, redacted.
            access_log=False,
            log_config=_log_config(),
        )
        sys.stderr.write(
            f"connector: serving the platform API for {public_url} on {args.host}:{args.port} "
            f"with {len(keys)} API key(s) (Ctrl-C to stop)\n"
        )
        sys.stderr.flush()
        uvicorn.Server(config).run()
    finally:
        connector.close()
        connector.store.close()
    return 0


def _log_config() -> dict[str, Any]:
    """uvicorn's logging setup, plus the service's own request log (``connector_core``, at
    INFO) on uvicorn's standard error handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["connector_core"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
