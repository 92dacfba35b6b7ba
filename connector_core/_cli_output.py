"""Shared pieces of the CLI: the one-line-error parser and output helpers."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import IO, Any, NoReturn

from .errors import UsageError

__all__ = ["COMMAND_HELP", "Parser", "add_json", "emit_json", "needs_subcommand", "table"]

#: The built-in commands in the order ``connector --help`` lists them, with their one-line help.
#: ``connector --help`` is built from this table alone, without importing the modules that
#: define the commands, which use the same lines (a test compares both helps).
COMMAND_HELP = {
    "providers": "list providers and show what they declare",
    "scopes": "show a provider's scope catalogue, check a scope set, or derive one from actions",
    "plugins": "list plugins with version, hooks and load errors",
    "profile": "create, list, show, update and delete connector profiles",
    "keys": "the encryption keys of the store",
    "emulate": "run a provider's built-in emulator (OAuth server and API) on 127.0.0.1",
    "connect": "connect an account through a profile (the OAuth flow)",
    "connections": "list, show, test, refresh, revoke and delete connections",
    "reconnect": "repair a connection with its provider's reconnect policy",
    "request": "an authenticated API call with a connection (like 'gh api')",
    "store": "the store itself: where it is, and moving it into PostgreSQL",
    "new-provider": "write a new provider plugin distribution, ready to install and test",
    "docs": "print a provider's documentation page, or the CLI or hook reference",
}


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) instead of a usage dump, and no
    abbreviated options (an abbreviation could silently pick the wrong one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


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
