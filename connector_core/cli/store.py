"""``connector store``: ``store info`` and ``store migrate --to URL`` (copy a SQLite store into PostgreSQL).

The store a command uses comes from ``--store-url``, ``--home`` or
``CONNECTOR_STORE_URL`` (see :mod:`connector_core.store.url`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO, TYPE_CHECKING

import attrs

from ..errors import UsageError, ValidationError
from ..registries import Command
from .context import refuse_password
from .output import Parser, add_json, emit_json, needs_subcommand, run_handler
from .parser import HELP

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["COMMAND"]


def configure(store: argparse.ArgumentParser) -> None:
    ssub = store.add_subparsers(dest="store_command", metavar="SUBCOMMAND", parser_class=Parser)
    info = ssub.add_parser("info", help="which store the options select: its kind, location, schema and id")
    add_json(info)
    info.set_defaults(handler=_info)
    migrate = ssub.add_parser(
        "migrate",
        help="copy a SQLite store into an empty PostgreSQL store (ciphertexts, key ids and store id as they are)",
    )
    migrate.add_argument("--to", required=True, metavar="URL", help="the target: postgresql://...")
    migrate.add_argument(
        "--from",
        dest="source",
        metavar="URL",
        help="the SQLite store to copy (default: the store --store-url, --home or $CONNECTOR_STORE_URL select)",
    )
    migrate.add_argument(
        "--no-verify",
        action="store_true",
        help="copy even when the keys found here cannot decrypt the secrets (they stay encrypted as they are)",
    )
    add_json(migrate)
    migrate.set_defaults(handler=_migrate)
    store.set_defaults(handler=needs_subcommand(store))


COMMAND = Command("store", HELP["store"], configure, run_handler)


def _info(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from ..store import open_store, select_store  # here, not at the top: cold start

    refuse_password("--store-url", args.store_url)
    kind, _ = select_store(args.store_url, args.home)
    store = open_store(args.store_url, args.home)
    try:
        data = {
            "kind": kind,
            "location": str(store.path),
            "schema_version": store.schema_version,
            "store_id": store.store_id,
        }
    finally:
        store.close()
    if args.json:
        emit_json(out, data)
        return 0
    for key, value in data.items():
        out.write(f"{key}: {value}\n")
    return 0


def _migrate(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    # Here, not at the top: only a migration needs the two stores (cold start).
    from ..store import PgStore, Store, copy_from_sqlite, select_store, store_kind

    for option, url in (("--to", args.to), ("--from", args.source), ("--store-url", args.store_url)):
        refuse_password(option, url)
    if store_kind(args.to) != "postgresql":
        raise ValidationError("--to", "the target must be a PostgreSQL store: postgresql://...")
    if args.source is not None:
        if args.store_url or args.home is not None:
            raise UsageError("connector store migrate: give --from, or --store-url/--home, not both")
        if store_kind(args.source) != "sqlite":
            raise ValidationError("--from", "the source must be a SQLite store: sqlite:///PATH")
    kind, where = select_store(args.source or args.store_url, args.home)
    if kind != "sqlite":
        raise UsageError(
            "connector store migrate: the source must be a SQLite store, and the options select a PostgreSQL "
            "one; name the SQLite store with --from sqlite:///PATH or --home DIR"
        )
    path = Path(where)
    if not path.is_file():
        raise ValidationError("source", f"there is no SQLite store at {path}")
    source = Store(path)
    try:
        target = PgStore(args.to)
        try:
            report = copy_from_sqlite(source, target, verify=not args.no_verify)
        finally:
            target.close()
    finally:
        source.close()
    if args.json:
        emit_json(out, attrs.asdict(report))
        return 0
    out.write(
        f"Copied {report.profiles} profile(s), {report.connections} connection(s), {report.secrets} secret(s), "
        f"{report.events} status change(s), {report.lifecycle_events} lifecycle event(s), "
        f"{report.attempts} pending authorization(s) and {report.sessions} connect session(s)\n"
        f"  from {report.source}\n  into {report.target}\n"
    )
    if report.verified:
        out.write(
            f"The copy is store {report.store_id}, with keys of its own: every secret was decrypted, then "
            "encrypted and sealed under them (in its key file, unless CONNECTOR_CORE_SECRET_KEY or "
            "CONNECTOR_CORE_KEY_FILE names one ring for both).\n"
        )
    else:
        out.write(
            f"The store id stays {report.store_id} (not checked: --no-verify): the copy shares the source's keys, "
            "so rotate keys in one of the two stores only.\n"
        )
    out.write(
        "Give every host that uses it its keys (CONNECTOR_CORE_SECRET_KEY, or the key file), then point "
        "them at it with CONNECTOR_STORE_URL. The SQLite store is left as it was.\n"
    )
    return 0
