"""``connector request``: an authenticated API call with a connection (like ``gh api``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import ValidationError
from ..registries import Command
from .context import open_connector
from .output import emit_json, run_handler
from .parser import HELP

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["COMMAND", "MAX_DATA_FILE_BYTES"]

MAX_DATA_FILE_BYTES = 8 * 1024 * 1024


def configure(request: argparse.ArgumentParser) -> None:
    request.add_argument("connection", metavar="CONNECTION")
    request.add_argument(
        "method", metavar="METHOD", type=str.upper, choices=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    )
    request.add_argument("path", metavar="PATH", help="relative to the connection's API base URL, e.g. /people/search")
    data = request.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="JSON", help="a JSON request body")
    data.add_argument("--data-file", metavar="PATH", help="read the JSON request body from a file")
    request.set_defaults(handler=_request)


COMMAND = Command("request", HELP["request"], configure, run_handler)


def _request(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    import json  # here, not at the top: building the parser does not need it (cold start)

    body: Any | None = None
    raw: str | None = args.data
    if args.data_file:
        path = Path(args.data_file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValidationError(f"--data-file {path}", f"cannot be read ({exc.strerror})") from None
        if len(data) > MAX_DATA_FILE_BYTES:
            raise ValidationError(f"--data-file {path}", "is larger than 8 MiB")
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(f"--data-file {path}", "is not UTF-8 text") from None
    if raw is not None:
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError("--data", f"is not valid JSON ({exc.msg} at position {exc.pos})") from None
    from .._plainhttp import run_plain  # here, not at the top: http.client (cold start)

    connector = open_connector(args, plugins)
    # One call (two or three with a refresh): sent with http.client, not httpx, whose import would
    # cost this command more than the rest of its work (see connector_core._plainhttp).
    flow = connector._request_flow(args.connection, args.method, args.path, body, None)
    response = run_plain(flow, connector.deadline)
    text = response.body.decode("utf-8", "replace")
    try:
        shown: Any = json.loads(text) if text.strip() else None
    except ValueError:
        shown = None
    if shown is not None:
        emit_json(out, shown)
    elif text:
        out.write(text if text.endswith("\n") else text + "\n")
    if response.status >= 400:
        sys.stderr.write(f"connector: error: {args.method} {args.path} answered HTTP {response.status}\n")
        return 1
    return 0
