"""Shared pieces of the CLI's commands: the one-line-error parser, and table and JSON output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any, NoReturn

from ..errors import UsageError

__all__ = [
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_USAGE",
    "Parser",
    "add_json",
    "emit_json",
    "needs_subcommand",
    "run_handler",
    "table",
]

EXIT_OK = 0
#: A validation failure or an error the user can fix.
EXIT_INVALID = 1
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) instead of a usage dump, and no
    abbreviated options (an abbreviation could silently pick the wrong one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def run_handler(args: argparse.Namespace, plugins: Any) -> int:
    """The ``run`` of the CLI's own commands: call the handler the parser chose (each
    sub-command sets its ``handler``), writing to standard output."""
    return int(args.handler(args, plugins, sys.stdout))


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (shape documented in docs/cli.md)")


def emit_json(out: IO[str], data: Any) -> None:
    import json  # here, not at the top: most commands print no JSON

    json.dump(data, out, indent=2, ensure_ascii=False)
    out.write("\n")


def table(out: IO[str], headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    for index, row in enumerate(lines):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        out.write(indent + "  ".join(cells).rstrip() + "\n")
        if index == 0:
            out.write(indent + "  ".join("-" * w for w in widths) + "\n")


def needs_subcommand(parser: argparse.ArgumentParser) -> Callable[..., int]:
    """The handler of a command group run without its subcommand: a usage error."""

    def handler(*args: Any) -> int:
        raise UsageError(f"{parser.prog}: a subcommand is required (see '{parser.prog} --help')")

    return handler
