"""``connector keys``: the store's encryption keys, listing them and rotating to a new one."""

from __future__ import annotations

import argparse
from typing import IO, TYPE_CHECKING, Any

from ..registries import Command
from .context import open_store
from .output import Parser, add_json, emit_json, needs_subcommand, run_handler, table
from .parser import HELP

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["COMMAND"]


def configure(keys: argparse.ArgumentParser) -> None:
    ksub = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", parser_class=Parser)
    rotate = ksub.add_parser("rotate", help="add a new key and re-encrypt every stored value with it")
    rotate.add_argument("--retire", action="store_true", help="then drop the old keys from the key file")
    add_json(rotate)
    rotate.set_defaults(handler=_rotate)
    klist = ksub.add_parser("list", help="list keys and how many values each encrypts")
    add_json(klist)
    klist.set_defaults(handler=_list)
    keys.set_defaults(handler=needs_subcommand(keys))


COMMAND = Command("keys", HELP["keys"], configure, run_handler)


def _rotate(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    store = open_store(args)
    result = store.rotate_keys(retire=args.retire)
    if args.json:
        emit_json(
            out,
            {
                "primary_key": result.primary_key,
                "reencrypted": result.reencrypted,
                "retired": list(result.retired),
                "keys": list(result.remaining),
                "source": store.keyring.source,
            },
        )
        return 0
    out.write(f"Re-encrypted {result.reencrypted} value(s) with key {result.primary_key}.\n")
    if result.retired:
        out.write(f"Retired keys: {', '.join(result.retired)}.\n")
    elif len(result.remaining) > 1:
        out.write("Old keys stay readable until 'connector keys rotate --retire'.\n")
    return 0


def _list(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    store = open_store(args)
    ring = store.keyring
    usage = store.key_usage()
    keys: list[dict[str, Any]] = [
        {"id": k, "primary": k == ring.primary_id, "values": usage.get(k, 0)} for k in ring.key_ids
    ]
    missing = sorted(set(usage) - set(ring.key_ids))
    if args.json:
        emit_json(out, {"source": ring.source, "keys": keys, "missing": missing})
        return 0
    out.write(f"Keys from {ring.source}\n")
    table(
        out,
        ("KEY", "PRIMARY", "VALUES"),
        [(str(k["id"]), "yes" if k["primary"] else "", str(k["values"])) for k in keys],
    )
    for kid in missing:
        out.write(f"missing: key {kid} encrypts {usage[kid]} value(s) but is not available\n")
    return 1 if missing else 0
