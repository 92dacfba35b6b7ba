"""``connector plugins``: the installed plugins with their versions, hooks and load errors."""

from __future__ import annotations

import argparse
from typing import IO, TYPE_CHECKING

from ..registries import Command
from ..serialize import to_data
from .output import EXIT_OK, add_json, emit_json, run_handler
from .parser import HELP

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["COMMAND"]


def configure(parser: argparse.ArgumentParser) -> None:
    add_json(parser)
    parser.set_defaults(handler=_plugins)


COMMAND = Command("plugins", HELP["plugins"], configure, run_handler)


def _plugins(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    infos = plugins.plugin_infos()
    if args.json:
        emit_json(out, {"plugins": to_data(infos)})
        return EXIT_OK
    for info in infos:
        version = f" {info.version}" if info.version else ""
        dist = f" ({info.distribution}{version})" if info.distribution else ""
        out.write(f"{info.name}{dist}\n")
        if info.path:
            out.write(f"  file: {info.path}\n")
        if info.providers:
            out.write(f"  providers: {', '.join(info.providers)}\n")
        if info.hooks:
            out.write(f"  hooks: {', '.join(info.hooks)}\n")
        if info.error:
            out.write(f"  error: {info.error}\n")
    return EXIT_OK
