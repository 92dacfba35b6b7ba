"""Commands for provider authors: ``connector new-provider`` and ``connector docs``.

``new-provider KEY --dir PATH`` writes a complete plugin distribution (see
:mod:`connector_core.scaffold`) and never overwrites anything. ``docs PROVIDER``
prints the provider's documentation page, generated from its declaration;
``docs --cli-reference`` and ``docs --hook-reference`` print the reference pages
generated from the parser and the hook specifications (see
:mod:`connector_core.docgen`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._cli_output import COMMAND_HELP, add_json, emit_json
from .errors import ConnectorError, UsageError

if TYPE_CHECKING:
    from .plugins import Plugins

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``new-provider`` and ``docs`` to the top-level subparsers."""
    p = sub.add_parser(
        "new-provider",
        help=COMMAND_HELP["new-provider"],
        description=(
            "Write a complete provider plugin for KEY into PATH: pyproject.toml with the connector_core "
            "entry point, a package with hook implementations, example declarations and an emulator, "
            "a conformance test and a README. Refuses to overwrite anything."
        ),
    )
    p.add_argument("key", metavar="KEY", help="the provider key, such as 'acme' or 'google-drive'")
    p.add_argument(
        "--dir", metavar="PATH", help="where to write it (default: ./connector-KEY); must not exist or be empty"
    )
    p.add_argument("--name", metavar="DISPLAY_NAME", help="the provider's display name (default: from the key)")
    add_json(p)
    p.set_defaults(handler=_new_provider)

    from .docgen import FORMATS

    d = sub.add_parser(
        "docs",
        help=COMMAND_HELP["docs"],
        description=(
            "Render documentation from the same metadata the code uses: a provider's page from its "
            "declarations, the CLI reference from this command's parser, the hook reference from the hook "
            "specifications."
        ),
    )
    d.add_argument("provider", metavar="PROVIDER", nargs="?", help="the provider whose page to render")
    d.add_argument("--format", choices=FORMATS, default=FORMATS[0], help="the output format")
    what = d.add_mutually_exclusive_group()
    what.add_argument("--cli-reference", action="store_true", help="render the CLI reference instead")
    what.add_argument("--hook-reference", action="store_true", help="render the hook reference instead")
    d.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    d.set_defaults(handler=_docs)


def _new_provider(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from .scaffold import new_provider, scaffold_names

    names = scaffold_names(args.key, args.name)
    target = Path(args.dir) if args.dir else Path(names["distribution"])
    made = new_provider(args.key, target, display_name=args.name)
    if args.json:
        emit_json(
            out,
            {
                "key": made.key,
                "distribution": made.distribution,
                "package": made.package,
                "path": str(made.path),
                "files": list(made.files),
            },
        )
        return 0
    out.write(f"Wrote {made.distribution} (provider {made.key!r}) to {made.path}:\n")
    for file in made.files:
        out.write(f"  {file}\n")
    steps = (
        f"pip install -e {made.path} pytest",
        f"pytest {made.path}                 # the conformance suite, against the emulator",
        f"connector providers show {made.key}",
    )
    out.write("\nNext:\n" + "".join(f"  {step}\n" for step in steps))
    out.write(f"Then change the example values in {made.package}/declarations.py to the provider's own.\n")
    return 0


def _docs(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from . import docgen

    if args.cli_reference or args.hook_reference:
        if args.provider is not None:
            raise UsageError("connector docs: give a PROVIDER or a reference option, not both")
        if args.cli_reference:
            from .cli import build_parser
            from .plugins import load_plugins

            parser, _ = build_parser(load_plugins(entry_points=False, env={}), plugin_commands=False)
            text = docgen.render_cli_reference(parser)
        else:
            text = docgen.render_hook_reference()
    elif args.provider is None:
        raise UsageError(
            "connector docs: give a PROVIDER, --cli-reference or --hook-reference (see 'connector docs --help')"
        )
    else:
        text = docgen.render_provider(plugins.declaration(args.provider), format=args.format)
    if args.output is None:
        out.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConnectorError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    return 0
