"""The ``connector`` command line: one module per command, and the pieces they share.

:func:`main` runs it (``connector`` is :func:`main_exit`, and so is ``python -m connector_core``):
it finds the command word, builds only that command's parser (:mod:`connector_core.cli.parser`,
from each command's :class:`~connector_core.registries.Command` record), runs it, and prints an
error as one line with the CLI's own advice (:mod:`connector_core.cli.hints`).

Exit statuses: 0 success, 1 a validation failure or an error the user can fix,
2 a usage error. Errors are one line on standard error, never a traceback.
Every listing command takes ``--json``; the shapes are documented in
``docs/cli.md`` and only ever gain fields.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, TextIO, cast

from ..errors import ConnectorError
from ..plugins import Plugins, load_plugins
from .output import EXIT_OK, EXIT_USAGE, SafeStream
from .parser import HELP as BUILTIN_HELP
from .parser import VALUE_OPTIONS, build_parser

__all__ = ["command_word", "main", "main_exit", "print_error"]


def main(argv: Sequence[str] | None = None, *, plugins: Plugins | None = None) -> int:
    """Run the CLI; return the exit status. ``plugins`` replaces discovery (for tests).
    Whatever the command writes goes through :func:`~connector_core.cli.output.terminal_safe`."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = cast(TextIO, SafeStream(saved[0])), cast(TextIO, SafeStream(saved[1]))
    try:
        return _run(argv, plugins, sys.stdout, sys.stderr)
    finally:
        sys.stdout, sys.stderr = saved


def _run(argv: Sequence[str] | None, plugins: Plugins | None, out: IO[str], err: IO[str]) -> int:
    try:
        if plugins is None:
            # Lazily: a command about one provider imports only that provider's plugin.
            plugins = load_plugins(lazy=True)
        words = list(sys.argv[1:] if argv is None else argv)
        command = command_word(words)
        builtin = command in BUILTIN_HELP
        # A built-in command builds only its own parser; anything else (no command, a
        # plugin's command, a typo) needs the built-ins' names only, and the plugins'.
        parser, _ = build_parser(plugins, plugin_commands=not builtin, only=command if builtin else "")
        args = parser.parse_args(words)
        if args.command is None:
            parser.print_help(out)
            return EXIT_USAGE
        code = int(args.run(args, plugins) or 0)
        if args.command != "plugins":
            for problem in plugins.problems_so_far:
                err.write(f"connector: warning: {problem}\n")
        return code
    except ConnectorError as exc:
        print_error(err, exc)
        return exc.exit_code
    except KeyboardInterrupt:
        err.write("connector: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader left (``| head``): what is still buffered goes nowhere, quietly, rather
        # than fail again when the interpreter flushes standard output at exit.
        _stdout_to_devnull()
        return EXIT_OK


def _stdout_to_devnull() -> None:
    import os  # here, not at the top: only a broken pipe needs it

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
        os.close(devnull)
    except (OSError, ValueError):  # no such descriptor (an embedding host's stream): nothing to protect
        pass


def print_error(err: IO[str], error: ConnectorError) -> None:
    """``connector: error: MESSAGE``, the CLI's advice on the same line, then the details."""
    from .hints import hint  # here, not at the top: a command that succeeds never needs it (cold start)

    advice = hint(error)
    err.write(f"connector: error: {error.message}{' ' + advice if advice else ''}\n")
    for line in error.details:
        err.write(f"  {line}\n")


def command_word(words: Sequence[str]) -> str | None:
    """The command word: the first word that is neither a top-level option nor its value."""
    expect_value = False
    for index, word in enumerate(words):
        if expect_value:
            expect_value = False
        elif word == "--":
            return words[index + 1] if index + 1 < len(words) else None
        elif word in VALUE_OPTIONS:
            expect_value = True
        elif not word.startswith("-"):
            return word
    return None


def main_exit() -> None:
    """Console-script entry point: run :func:`main` and exit with its status."""
    sys.exit(main())
