"""``connector new-provider KEY --dir PATH``: write a complete provider plugin distribution (see
:mod:`connector_core.scaffold`), ready to install and test; it never overwrites anything."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..registries import Command
from .output import add_json, emit_json, run_handler
from .parser import HELP

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["COMMAND"]


def configure(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Write a complete provider plugin for KEY into PATH: pyproject.toml with the connector_core "
        "entry point, a package with hook implementations, example declarations and an emulator, "
        "a conformance test and a README. Refuses to overwrite anything."
    )
    p.add_argument("key", metavar="KEY", help="the provider key, such as 'acme' or 'google-drive'")
    p.add_argument(
        "--dir", metavar="PATH", help="where to write it (default: ./connector-KEY); must not exist or be empty"
    )
    p.add_argument("--name", metavar="DISPLAY_NAME", help="the provider's display name (default: from the key)")
    p.add_argument(
        "--data",
        action="store_true",
        help="write a provider as data instead: KEY.toml, its conformance test and a README (default dir: ./KEY)",
    )
    add_json(p)
    p.set_defaults(handler=_new_provider)


COMMAND = Command("new-provider", HELP["new-provider"], configure, run_handler)


def _new_provider(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from ..scaffold import new_provider, scaffold_names  # here, not at the top: cold start

    names = scaffold_names(args.key, args.name)
    target = Path(args.dir) if args.dir else Path(args.key if args.data else names["distribution"])
    made = new_provider(args.key, target, display_name=args.name, data=args.data)
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
    if args.data:
        out.write(f"Wrote provider {made.key!r} as data to {made.path}:\n")
        out.write("".join(f"  {file}\n" for file in made.files))
        data_steps = (
            f"pytest {made.path}                 # the conformance suite, against the emulator",
            f"CONNECTOR_PROVIDERS_PATH={made.path} connector providers show {made.key}",
        )
        out.write("\nNext:\n" + "".join(f"  {step}\n" for step in data_steps))
        out.write(f"Then change the example values in {made.files[0]} to the provider's own.\n")
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
