"""Shared pieces of the CLI's commands: the one-line-error parser, and table and JSON output."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any, NoReturn

from ..errors import UsageError

__all__ = [
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_USAGE",
    "WRITE_CHUNK",
    "Parser",
    "add_json",
    "chunked",
    "emit_json",
    "emit_json_listing",
    "needs_subcommand",
    "run_handler",
    "stream_table",
    "table",
]

#: A long listing's output is written in chunks of about this many characters (one write each).
WRITE_CHUNK = 1 << 17

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


#: What never reaches a terminal raw, whoever wrote it (a provider's scope, error text or
#: identity): C0 controls but tab and newline, DEL, C1 controls, and the characters that
#: reorder or break lines (bidi overrides and isolates, the Unicode line separators).
#: Each is shown as an escape: ``\x1b`` for C0 and DEL, ``\u202e`` for the rest (JSON reads
#: the latter, and JSON output never holds a raw C0 character).
_UNSAFE: dict[int, str] = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if c not in (0x09, 0x0A)},
    **{
        c: f"\\u{c:04x}"
        for c in (
            *range(0x80, 0xA0),
            0x061C,
            0x200E,
            0x200F,
            0x2028,
            0x2029,
            *range(0x202A, 0x202F),
            *range(0x2066, 0x206A),
        )
    },
}


def terminal_safe(text: str) -> str:
    """``text`` with every character of :data:`_UNSAFE` escaped."""
    return text.translate(_UNSAFE)


class SafeStream:
    """A text stream whose writes go through :func:`terminal_safe`; anything else is the
    wrapped stream's. ``main`` puts one in front of standard output and standard error."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(terminal_safe(text))

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def emit_json(out: IO[str], data: Any) -> None:
    import json  # here, not at the top: most commands print no JSON

    json.dump(data, out, indent=2, ensure_ascii=False)
    out.write("\n")


def chunked(out: IO[str], pieces: Iterable[str], size: int = WRITE_CHUNK) -> None:
    """Write ``pieces`` to ``out`` joined into chunks of about ``size`` characters: one write (and
    one terminal-safety pass) per chunk, not per piece."""
    batch: list[str] = []
    held = 0
    for piece in pieces:
        batch.append(piece)
        held += len(piece)
        if held >= size:
            out.write("".join(batch))
            batch.clear()
            held = 0
    if batch:
        out.write("".join(batch))


def emit_json_listing(
    out: IO[str], key: str, elements: Iterable[str], rest: Callable[[], Mapping[str, Any]] = dict
) -> None:
    """Write ``{key: [elements], **rest()}`` as :func:`emit_json` writes it, character for
    character, a chunk of elements at a time (one write of about :data:`WRITE_CHUNK`
    characters each): each of ``elements`` is one element's JSON written two levels deep
    (``connection_json_encoder(2)``). ``rest`` is called once the elements are written (a
    listing's next page is known at its end)."""
    import json  # here, not at the top: see emit_json

    head = "{\n  " + json.dumps(key, ensure_ascii=False) + ": ["
    batch: list[str] = []
    held, written = 0, False
    for element in elements:
        batch.append(element)
        held += len(element)
        if held >= WRITE_CHUNK:
            out.write((",\n    " if written else head + "\n    ") + ",\n    ".join(batch))
            batch.clear()
            held, written = 0, True
    if batch:
        out.write((",\n    " if written else head + "\n    ") + ",\n    ".join(batch))
        written = True
    tail = "".join(
        f",\n  {json.dumps(k, ensure_ascii=False)}: "
        + json.dumps(v, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        for k, v in rest().items()
    )
    out.write(("\n  ]" if written else head + "]") + tail + "\n}\n")


def stream_table(
    out: IO[str], headers: Sequence[str], rows: Callable[[], Iterable[Sequence[str]]], indent: str = ""
) -> bool:
    """:func:`table` over rows read twice and never held: ``rows()`` is called once to measure
    each column's width and once more to write the rows (in chunks). Returns whether there was
    any row; with none, nothing is written. A row that appeared in between, wider than any
    measured, is written in full, shifting its own line's later columns only."""
    widths = [len(h) for h in headers]
    count = 0
    for row in rows():
        count += 1
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    if not count:
        return False

    def line(row: Sequence[str]) -> str:
        return indent + "  ".join([cell.ljust(widths[i]) for i, cell in enumerate(row)]).rstrip() + "\n"

    head = line(headers) + indent + "  ".join("-" * w for w in widths) + "\n"
    chunked(out, itertools.chain((head,), map(line, rows())))
    return True


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
