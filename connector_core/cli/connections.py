"""``connector connections``: list (by owner too), show, test, refresh, revoke and delete
connections, attach one to an end user, and list the ones that need someone to act."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from ..connection_json import connection_json_encoder
from ..errors import UsageError, ValidationError
from ..registries import Command
from .context import open_connector, open_store
from .output import Parser, add_json, emit_json, emit_json_listing, needs_subcommand, run_handler, stream_table, table
from .owners import add_owner_filters, add_owner_options, owner_filters, owner_from
from .parser import HELP
from .views import auth_kinds, connection_data, expiry, owner_column, summary

if TYPE_CHECKING:
    from ..connection import Connection
    from ..models import AuthType
    from ..plugins import Plugins

__all__ = ["COMMAND"]


def configure(conns: argparse.ArgumentParser) -> None:
    csub = conns.add_subparsers(dest="connections_command", metavar="SUBCOMMAND", parser_class=Parser)
    lst = csub.add_parser("list", help="list connections")
    lst.add_argument("--profile", metavar="NAME")
    lst.add_argument("--status", choices=["pending", "connected", "needs_reconnect", "revoked", "disconnected"])
    lst.add_argument("--limit", type=int, metavar="N")
    lst.add_argument("--after", metavar="ID", help="start after this connection id (paging)")
    add_owner_filters(lst)
    add_json(lst)
    lst.set_defaults(handler=_list)
    attach = csub.add_parser(
        "attach",
        help="say whose a connection is: attach an unclaimed one to an end user, or change its organisation and tags",
        description="Set whose a connection is, as a whole: its end user, organisation and tags (those not given "
        "are removed). A connection that belongs to another end user is handed over only with --replace.",
    )
    attach.add_argument("connection", metavar="CONNECTION")
    add_owner_options(attach, end_user_required=True)
    attach.add_argument("--replace", action="store_true", help="hand over a connection another end user owns")
    add_json(attach)
    attach.set_defaults(handler=_attach)
    for name, help_text, handler in (
        ("show", "show a connection and its history", _show),
        ("test", "run the provider's connection test", _test),
        ("revoke", "revoke the connection's tokens at the provider (or delete them locally)", _revoke),
        ("delete", "forget a connection and its tokens locally", _delete),
    ):
        p = csub.add_parser(name, help=help_text)
        p.add_argument("connection", metavar="CONNECTION")
        add_json(p)
        p.set_defaults(handler=handler)
    attention = csub.add_parser("attention", help="connections that need someone to act (reconnect)")
    add_json(attention)
    attention.set_defaults(handler=_attention)
    refresh = csub.add_parser("refresh", help="refresh tokens now")
    refresh.add_argument("connection", nargs="?", metavar="CONNECTION")
    refresh.add_argument("--all", action="store_true", help="every connected connection that is (nearly) expired")
    refresh.add_argument("--force", action="store_true", help="refresh even if the token is not expiring")
    refresh.add_argument("--concurrency", type=int, default=32, metavar="N")
    add_json(refresh)
    refresh.set_defaults(handler=_refresh)
    conns.set_defaults(handler=needs_subcommand(conns))


COMMAND = Command("connections", HELP["connections"], configure, run_handler)


def _list(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    import time  # here, not at the top: cold start

    from ..connection import ConnectionStatus

    if args.limit is not None and args.limit < 1:
        raise UsageError("connector connections list: --limit must be at least 1")
    whose = owner_filters(args)  # checked before the store is opened (or made)
    store = open_store(args)
    status = ConnectionStatus(args.status) if args.status else None

    def listing() -> Iterator[Connection]:
        # Read in pages, never all at once: a listing of any size holds one page.
        return store.iter_connections(profile=args.profile, status=status, limit=args.limit, after=args.after, **whose)

    kinds = auth_kinds(plugins)
    if args.json:
        encode, kind = connection_json_encoder(2), kinds.get
        last: Connection | None = None
        count = 0

        def elements() -> Iterator[str]:
            nonlocal last, count
            for last in listing():  # the last one read names the next page
                count += 1
                yield encode(last, kind(last))

        def next_after() -> dict[str, str | None]:
            return {"next_after": last.id if last is not None and args.limit and count == args.limit else None}

        emit_json_listing(out, "connections", elements(), next_after)
        return 0
    now = time.time()  # every row's EXPIRES counted from one moment, in both passes

    def rows() -> Iterator[tuple[str, ...]]:
        for c in listing():
            yield (
                c.id,
                c.profile,
                c.provider,
                c.environment,
                c.auth_type,
                c.status.value,
                expiry(c, kinds.get(c), now),
                # Who is connected: a company, a service user's ID, a client; never a secret (the
                # store keeps none in the identity).
                ", ".join(value for _, value in c.identity) or "-",
                # Last, and never with a space in it: the end user's id, or (unclaimed).
                owner_column(c.owner),
            )

    headers = ("ID", "PROFILE", "PROVIDER", "ENV", "AUTH", "STATUS", "EXPIRES", "ACCOUNT", "OWNER")
    if not stream_table(out, headers, rows):
        out.write("No connections.\n")
    return 0


def _show(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    store = open_store(args)
    conn = store.get_connection(args.connection)
    events = store.connection_events(conn.id)
    auth = auth_kinds(plugins).get(conn)
    if args.json:
        emit_json(
            out,
            {
                **connection_data(conn, auth),
                "history": [{"at": e.at, "status": e.status.value, "reason": e.reason} for e in events],
            },
        )
        return 0
    summary(out, conn, auth)
    out.write("history\n")
    for event in events:
        out.write(f"  {event.at}  {event.status.value}" + (f"  {event.reason}" if event.reason else "") + "\n")
    return 0


def _attach(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    owner = owner_from(args)  # checked before the store is opened
    if owner is None or owner.end_user is None:  # argparse requires --end-user; this tells mypy
        raise UsageError("connector connections attach: --end-user is required")
    connector = open_connector(args, plugins)
    try:
        conn = connector.attach(args.connection, owner, replace=args.replace)
    except ValidationError as exc:
        if exc.code != "owned_by_another_end_user":
            raise
        current = owner_column(connector.store.get_connection(args.connection).owner)
        # In the command line's terms; the hint (keyed on the code) says how to hand it over.
        raise ValidationError(
            "--end-user",
            f"connection {args.connection} belongs to end user {current!r}, not {owner.end_user.id!r}; "
            "nothing was changed.",
            code=exc.code,
        ) from None
    auth = auth_kinds(plugins).get(conn)
    if args.json:
        emit_json(out, connection_data(conn, auth))
    else:
        out.write(f"Connection {conn.id} belongs to end user {owner.end_user.id}.\n")
        summary(out, conn, auth)
    return 0


def _test(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    connector = open_connector(args, plugins)
    result = connector.test(args.connection)
    if args.json:
        emit_json(
            out, {"connection": args.connection, "ok": result.ok, "status": result.status, "detail": result.detail}
        )
    else:
        out.write(f"{'ok' if result.ok else 'FAILED'}: {result.detail}\n")
    return 0 if result.ok else 1


def _revoke(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    connector = open_connector(args, plugins)
    result = connector.revoke(args.connection)
    if args.json:
        emit_json(
            out,
            {
                "connection": connection_data(result.connection),
                "revoked_at_provider": result.revoked_at_provider,
                "message": result.message,
            },
        )
    else:
        out.write(f"{result.message}.\n")
    return 0


def _delete(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    connector = open_connector(args, plugins)
    connector.delete(args.connection)
    if args.json:
        emit_json(out, {"deleted": args.connection})
    else:
        out.write(f"Connection {args.connection} deleted locally (nothing was revoked at the provider).\n")
    return 0


def _refresh(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    connector = open_connector(args, plugins)
    if args.all == bool(args.connection):
        raise UsageError("connector connections refresh: give a CONNECTION or --all, not both or neither")
    if args.connection:
        conn = connector.refresh(args.connection, force=args.force)
        auth = auth_kinds(plugins).get(conn)
        if args.json:
            emit_json(out, connection_data(conn, auth))
        else:
            summary(out, conn, auth)
        return 0
    from ..bulk import refresh_all  # here, not at the top: it imports the async client

    report = refresh_all(connector, concurrency=args.concurrency, force=args.force)
    if args.json:
        emit_json(
            out,
            {
                "refreshed": report.refreshed,
                "skipped": report.skipped,
                "skipped_why": [{"reason": why, "count": n} for why, n in report.skipped_why],
                "failed": [{"connection": c, "error": e} for c, e in report.failed],
                "seconds": round(report.seconds, 3),
            },
        )
    else:
        why = "; ".join(f"{n} {reason}" for reason, n in report.skipped_why)
        out.write(
            f"Refreshed {report.refreshed}, skipped {report.skipped}{f' ({why})' if why else ''}, "
            f"failed {len(report.failed)} in {report.seconds:.2f} s.\n"
        )
        for cid, error in report.failed:
            out.write(f"  {cid}: {error}\n")
    return 1 if report.failed else 0


def _attention(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    conns = open_store(args).needing_attention()
    kinds = auth_kinds(plugins)
    guidance = {c.id: _guidance(kinds.get(c)) for c in conns}
    if args.json:
        emit_json(
            out, {"connections": [{**connection_data(c, kinds.get(c)), "guidance": guidance[c.id]} for c in conns]}
        )
        return 0
    if not conns:
        out.write("Nothing needs attention.\n")
        return 0
    table(
        out,
        ("ID", "PROFILE", "PROVIDER", "AUTH", "STATUS", "REASON", "SINCE"),
        [
            (c.id, c.profile, c.provider, c.auth_type, c.status.value, c.status_reason or "", c.updated_at)
            for c in conns
        ],
    )
    for conn in conns:
        if guidance[conn.id]:
            out.write(f"{conn.id}: {guidance[conn.id]}\n")
    out.write("Repair one with: connector reconnect CONNECTION\n")
    if any(_credentials(kinds.get(c)) for c in conns):
        out.write("  (for a service user or an API key, with the new one: connector reconnect CONNECTION --help)\n")
    return 0


def _credentials(auth: AuthType | None) -> bool:
    return auth is not None and not auth.kind.uses_tokens


def _guidance(auth: AuthType | None) -> str | None:
    """What the provider advises when it refuses a connection's own credentials (a service user's
    token, an API key): reset it, check its permissions."""
    if auth is None or auth.kind.uses_tokens:
        return None
    return getattr(auth, "rejected_guidance", "") or None
