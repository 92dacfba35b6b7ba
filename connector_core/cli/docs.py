"""``connector docs``: print a provider's documentation page, generated from its declaration,
or the CLI reference (from this command line's own parser), the hook reference (from the hook
specifications) or the platform API reference (from the connect service's OpenAPI document);
see :mod:`connector_core.docgen`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .. import docgen
from ..errors import ConnectorError, UsageError
from ..plugins import load_plugins
from ..registries import Command
from .output import run_handler
from .parser import HELP, build_parser

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["API_REFERENCE_URL", "COMMAND"]

#: The server the API reference shows: an example, since the page must not depend on a
#: deployment's own ``--public-url``.
API_REFERENCE_URL = "https://platform.example"


def configure(d: argparse.ArgumentParser) -> None:
    d.description = (
        "Render documentation from the same metadata the code uses: a provider's page from its "
        "declarations, the CLI reference from this command's parser, the hook reference from the hook "
        "specifications, the platform API reference from the OpenAPI document of 'connector serve'."
    )
    d.add_argument("provider", metavar="PROVIDER", nargs="?", help="the provider whose page to render")
    d.add_argument("--format", choices=docgen.FORMATS, default=docgen.FORMATS[0], help="the output format")
    what = d.add_mutually_exclusive_group()
    what.add_argument("--cli-reference", action="store_true", help="render the CLI reference instead")
    what.add_argument("--hook-reference", action="store_true", help="render the hook reference instead")
    what.add_argument(
        "--api-reference",
        action="store_true",
        help="render the platform API reference (the OpenAPI document of 'connector serve'; needs the serve extra)",
    )
    what.add_argument(
        "--data-schema", action="store_true", help="print the JSON Schema of provider files (providers as data)"
    )
    d.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    d.set_defaults(handler=_docs)


COMMAND = Command("docs", HELP["docs"], configure, run_handler)


def _docs(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    if args.data_schema:
        if args.provider is not None:
            raise UsageError("connector docs: give a PROVIDER or a reference option, not both")
        # on first use: only this option builds the schema
        from ..dataprovider import SCHEMA_FILE

        text = SCHEMA_FILE.read_text(encoding="utf-8")
    elif args.cli_reference or args.hook_reference or args.api_reference:
        if args.provider is not None:
            raise UsageError("connector docs: give a PROVIDER or a reference option, not both")
        if args.cli_reference:
            parser, _ = build_parser(load_plugins(entry_points=False, env={}), plugin_commands=False)
            text = docgen.render_cli_reference(parser)
        elif args.api_reference:
            text = docgen.render_api_reference(_openapi_document())
        else:
            text = docgen.render_hook_reference()
    elif args.provider is None:
        raise UsageError(
            "connector docs: give a PROVIDER, --cli-reference, --hook-reference or --api-reference (or "
            "--data-schema for the provider file format; see 'connector docs --help')"
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


def _openapi_document() -> dict[str, object]:
    try:
        # Here, not at the top: the OpenAPI document lives in the optional 'serve' extra's
        # package (Starlette), which 'connector --help' and the other pages must not need.
        from ..serve.openapi import openapi_document
    except ImportError as exc:
        missing = (exc.name or "starlette").partition(".")[0]
        raise ConnectorError(
            f"connector docs --api-reference needs the 'serve' extra ({missing} is missing): "
            "pip install 'connector-core[serve]'"
        ) from None
    return openapi_document(API_REFERENCE_URL)
