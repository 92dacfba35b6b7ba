"""CLI: ``connect``, ``connections ...`` and ``request``: a thin layer over :class:`~connector_core.Connector`."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import time
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from ._cli_output import COMMAND_HELP, Parser, add_json, emit_json, needs_subcommand, table
from .errors import ConnectorError, UsageError, ValidationError

if TYPE_CHECKING:
    from .connection import Connection
    from .connector import Connector
    from .plugins import Plugins

__all__ = ["add_commands"]

MAX_DATA_FILE_BYTES = 8 * 1024 * 1024


def add_commands(sub: Any) -> None:
    connect = sub.add_parser("connect", help=COMMAND_HELP["connect"])
    connect.add_argument(
        "target", metavar="PROFILE", help="the profile to connect with (with --emulator: the provider key)"
    )
    connect.add_argument(
        "--emulator", action="store_true", help="start the provider's built-in emulator and connect to it end to end"
    )
    connect.add_argument("--no-browser", action="store_true", help="print the authorization URL instead of opening it")
    connect.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for the callback (default 300)",
    )
    connect.add_argument("--redirect-uri", metavar="URL", help="override the profile's redirect URI")
    connect.add_argument("--scopes", nargs="+", metavar="SCOPE", help="request these scopes instead of the profile's")
    connect.add_argument(
        "--provider-initiated",
        metavar="CALLBACK_URL",
        help="complete an install that began at the provider, from its callback URL",
    )
    add_json(connect)
    connect.set_defaults(handler=_connect)

    conns = sub.add_parser("connections", help=COMMAND_HELP["connections"])
    csub = conns.add_subparsers(dest="connections_command", metavar="SUBCOMMAND", parser_class=Parser)
    lst = csub.add_parser("list", help="list connections")
    lst.add_argument("--profile", metavar="NAME")
    lst.add_argument("--status", choices=["pending", "connected", "needs_reconnect", "revoked", "disconnected"])
    lst.add_argument("--limit", type=int, metavar="N")
    lst.add_argument("--after", metavar="ID", help="start after this connection id (paging)")
    add_json(lst)
    lst.set_defaults(handler=_list)
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

    reconnect = sub.add_parser("reconnect", help=COMMAND_HELP["reconnect"])
    reconnect.add_argument("connection", metavar="CONNECTION")
    reconnect.add_argument("--yes", action="store_true", help="confirm the manual steps are done (for scripts)")
    reconnect.add_argument(
        "--scopes",
        nargs="+",
        metavar="SCOPE",
        help="request these scopes (default: the old grant plus the profile's scopes)",
    )
    reconnect.add_argument("--no-browser", action="store_true", help="print the authorization URL instead")
    reconnect.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS")
    reconnect.add_argument("--redirect-uri", metavar="URL", help="override the profile's redirect URI")
    add_json(reconnect)
    reconnect.set_defaults(handler=_reconnect)

    request = sub.add_parser("request", help=COMMAND_HELP["request"])
    request.add_argument("connection", metavar="CONNECTION")
    request.add_argument(
        "method", metavar="METHOD", type=str.upper, choices=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    )
    request.add_argument("path", metavar="PATH", help="relative to the connection's API base URL, e.g. /people/search")
    data = request.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="JSON", help="a JSON request body")
    data.add_argument("--data-file", metavar="PATH", help="read the JSON request body from a file")
    request.set_defaults(handler=_request)


def _connector(args: argparse.Namespace, plugins: Plugins) -> Connector:
    from .connector import Connector
    from .store import open_store

    return Connector(open_store(args.store_url, args.home), plugins)


def _connection_data(conn: Connection) -> dict[str, Any]:
    return {
        "id": conn.id,
        "profile": conn.profile,
        "provider": conn.provider,
        "environment": conn.environment,
        "auth_type": conn.auth_type,
        "status": conn.status.value,
        "status_reason": conn.status_reason,
        "token_type": conn.token_type,
        "expires_at": conn.expires_at,
        "requested_scopes": list(conn.requested_scopes),
        "granted_scopes": list(conn.granted_scopes),
        "identity": dict(conn.identity),
        "provider_initiated": conn.provider_initiated,
        "created_at": conn.created_at,
        "updated_at": conn.updated_at,
        "refreshed_at": conn.refreshed_at,
    }


def _expiry(conn: Connection) -> str:
    if conn.expires_at is None:
        return "unknown"
    left = conn.expires_at - time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(conn.expires_at))
    return f"{stamp} ({'in ' + str(int(left)) + ' s' if left > 0 else 'expired'})"


def _summary(out: IO[str], conn: Connection) -> None:
    rows = [
        ("connection", conn.id),
        ("profile", conn.profile),
        ("provider", conn.provider),
        ("environment", conn.environment),
        ("status", conn.status.value + (f" ({conn.status_reason})" if conn.status_reason else "")),
        ("granted scopes", " ".join(conn.granted_scopes) or "-"),
        ("expires", _expiry(conn)),
    ]
    rows += [(k, v) for k, v in conn.identity]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.write(f"{key.ljust(width)}  {value}\n")


# ------------------------------------------------------------------------ connect


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connect(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    if args.emulator:
        return _connect_emulator(args, plugins, out)
    connector = _connector(args, plugins)
    if args.provider_initiated:
        result = connector.complete_provider_initiated(args.target, args.provider_initiated)
    else:
        result = _run_flow(connector, args.target, args, out, browser=None)
    return _finish(connector, result, args, out)


def _run_flow(
    connector: Connector,
    profile: str,
    args: argparse.Namespace,
    out: IO[str],
    browser: Any | None,
    *,
    reconnect: str | None = None,
) -> Any:
    """The interactive part: loopback listener when the redirect URI is loopback, else paste.
    ``reconnect`` names a connection to re-authorize in place (its policy already applied)."""
    from urllib.parse import urlsplit

    from ._loopback import LoopbackListener
    from .connector import AuthorizationStart, ConnectResult
    from .models import is_loopback_host

    prof = connector.store.get_profile(profile)
    redirect = args.redirect_uri or connector.redirect_uri(prof)
    host = urlsplit(redirect).hostname or ""
    holder: dict[str, ConnectResult] = {}

    def begin() -> AuthorizationStart:
        if reconnect is not None:
            return connector.begin_reconnect(reconnect, scopes=args.scopes, redirect_uri=redirect, confirmed=True)
        return connector.begin(profile, redirect_uri=redirect, scopes=args.scopes)

    def complete(query: str) -> tuple[bool, str]:
        holder["result"] = connector.complete(query, profile=profile)
        return True, f"Connected {holder['result'].connection.provider}. Return to the terminal."

    if is_loopback_host(host):
        with LoopbackListener(redirect, complete) as listener:
            start = begin()
            _open(start.url, args, out, browser)
            outcome = listener.wait(args.timeout)
            if outcome is None:
                raise ConnectorError(
                    f"no callback arrived within {args.timeout:g} s; nothing was stored. Run the command again"
                )
            if listener.error is not None:
                raise listener.error
            return holder["result"]
    start = begin()
    _open(start.url, args, out, browser)
    sys.stderr.write("After consenting, paste the full URL the browser was sent to (the callback URL): ")
    sys.stderr.flush()
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line.strip():
        raise ValidationError("callback URL", "nothing was pasted; nothing was stored")
    return connector.complete(line.strip(), profile=profile)


def _open(url: str, args: argparse.Namespace, out: IO[str], browser: Any | None) -> None:
    if browser is not None:
        browser(url)
        return
    if args.no_browser:
        sys.stderr.write(f"Open this URL to authorize:\n{url}\n")
        return
    import webbrowser

    sys.stderr.write(f"Opening the browser to authorize. If it does not open, visit:\n{url}\n")
    if not webbrowser.open(url):
        sys.stderr.write("(no browser could be opened)\n")


def _finish(connector: Connector, result: Any, args: argparse.Namespace, out: IO[str]) -> int:
    for warning in result.warnings:
        sys.stderr.write(f"connector: warning: {warning}\n")
    conn = result.connection
    test = connector.test(conn.id)
    if args.json:
        emit_json(
            out,
            {
                "connection": _connection_data(connector.store.get_connection(conn.id)),
                "test": {"ok": test.ok, "status": test.status, "detail": test.detail},
                "warnings": list(result.warnings),
            },
        )
    else:
        out.write("Connected.\n")
        _summary(out, connector.store.get_connection(conn.id))
        out.write(f"{'test'.ljust(14)}  {'ok' if test.ok else 'FAILED'}: {test.detail}\n")
    return 0 if test.ok else 1


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Here we play the person's browser and run the provider in-process: the URLs and
    requests that httpx and oauthlib log carry the authorization code, so their loggers
    say nothing below WARNING while the emulator runs."""
    import logging

    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _connect_emulator(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    """Start the built-in emulator, use its test app as a sandbox profile, consent
    automatically, and run the whole real flow against it."""
    import httpx

    from .emulator import CONSENT_HEADER, start_emulator
    from .profiles import validate_profile
    from .secret import Secret

    decl = plugins.declaration(args.target)
    spec = plugins.emulator_spec(decl.key)
    if spec is None:
        raise ValidationError("--emulator", f"provider {decl.key!r} has no built-in emulator")
    if decl.callback is None:
        raise ValidationError("--emulator", f"provider {decl.key!r} declares no OAuth callback")
    connector = _connector(args, plugins)
    port = _free_port()
    redirect = f"http://127.0.0.1:{port}{decl.callback.path}"
    env = decl.environment()
    with _quiet("httpx", "httpcore", "oauthlib"), start_emulator(decl, spec, redirect_uris=[redirect]) as emu:
        creds = emu.app.credentials[env.credential_set]
        endpoints = emu.endpoints(env.key)
        name = f"{decl.key}-emulator"
        from .errors import UnknownNameError

        values: dict[str, str | Secret] = {"client_id": creds.client_id, "client_secret": creds.client_secret}
        field_names = {f.name for f in decl.fields_for(decl.auth_type().key)}
        if "app_id" in field_names:
            values["app_id"] = emu.app.app_id
        urls = endpoints.profile_urls(redirect)
        try:
            previous = connector.store.get_profile(name)
        except UnknownNameError:
            previous = None
        draft = validate_profile(decl, name=name, environment=env.key, values=values, previous=previous, endpoints=urls)
        if previous is None:
            connector.store.create_profile(draft)
        else:
            connector.store.update_profile(name, draft)
        sys.stderr.write(f"Emulator running at {emu.base_url}; profile {name!r} uses its test app.\n")

        def consent(url: str) -> None:
            # Act as the person's browser: consent automatically, then follow the
            # redirect to our own loopback listener.
            with httpx.Client(timeout=10, follow_redirects=False, trust_env=False) as browser:
                answer = browser.get(url, headers={CONSENT_HEADER: "allow"})
                location = answer.headers.get("location")
                if answer.status_code not in (302, 303) or not location:
                    raise ConnectorError(f"the emulator did not redirect after consent (HTTP {answer.status_code})")
                browser.get(location)

        result = _run_flow(connector, name, args, out, browser=consent)
        code = _finish(connector, result, args, out)
        if not args.json:
            out.write("(The emulator stops now; the connection stays in the store as a record of the run.)\n")
        return code


# -------------------------------------------------------------------- connections


def _list(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from .connection import ConnectionStatus
    from .store import open_store

    store = open_store(args.store_url, args.home)
    if args.limit is not None and args.limit < 1:
        raise UsageError("connector connections list: --limit must be at least 1")
    conns = store.list_connections(
        profile=args.profile,
        status=ConnectionStatus(args.status) if args.status else None,
        limit=args.limit,
        after=args.after,
    )
    if args.json:
        emit_json(
            out,
            {
                "connections": [_connection_data(c) for c in conns],
                "next_after": conns[-1].id if conns and args.limit and len(conns) == args.limit else None,
            },
        )
        return 0
    if not conns:
        out.write("No connections.\n")
        return 0
    table(
        out,
        ("ID", "PROFILE", "PROVIDER", "ENV", "STATUS", "EXPIRES"),
        [(c.id, c.profile, c.provider, c.environment, c.status.value, _expiry(c)) for c in conns],
    )
    return 0


def _show(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from .store import open_store

    store = open_store(args.store_url, args.home)
    conn = store.get_connection(args.connection)
    events = store.connection_events(conn.id)
    if args.json:
        emit_json(
            out,
            {
                **_connection_data(conn),
                "history": [{"at": e.at, "status": e.status.value, "reason": e.reason} for e in events],
            },
        )
        return 0
    _summary(out, conn)
    out.write("history\n")
    for event in events:
        out.write(f"  {event.at}  {event.status.value}" + (f"  {event.reason}" if event.reason else "") + "\n")
    return 0


def _test(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    connector = _connector(args, plugins)
    result = connector.test(args.connection)
    if args.json:
        emit_json(
            out, {"connection": args.connection, "ok": result.ok, "status": result.status, "detail": result.detail}
        )
    else:
        out.write(f"{'ok' if result.ok else 'FAILED'}: {result.detail}\n")
    return 0 if result.ok else 1


def _revoke(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    connector = _connector(args, plugins)
    result = connector.revoke(args.connection)
    if args.json:
        emit_json(
            out,
            {
                "connection": _connection_data(result.connection),
                "revoked_at_provider": result.revoked_at_provider,
                "message": result.message,
            },
        )
    else:
        out.write(f"{result.message}.\n")
    return 0


def _delete(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    connector = _connector(args, plugins)
    connector.delete(args.connection)
    if args.json:
        emit_json(out, {"deleted": args.connection})
    else:
        out.write(f"Connection {args.connection} deleted locally (nothing was revoked at the provider).\n")
    return 0


def _refresh(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    connector = _connector(args, plugins)
    if args.all == bool(args.connection):
        raise UsageError("connector connections refresh: give a CONNECTION or --all, not both or neither")
    if args.connection:
        conn = connector.refresh(args.connection, force=args.force)
        if args.json:
            emit_json(out, _connection_data(conn))
        else:
            _summary(out, conn)
        return 0
    from .bulk import refresh_all

    report = refresh_all(connector, concurrency=args.concurrency, force=args.force)
    if args.json:
        emit_json(
            out,
            {
                "refreshed": report.refreshed,
                "skipped": report.skipped,
                "failed": [{"connection": c, "error": e} for c, e in report.failed],
                "seconds": round(report.seconds, 3),
            },
        )
    else:
        out.write(
            f"Refreshed {report.refreshed}, skipped {report.skipped}, failed {len(report.failed)} "
            f"in {report.seconds:.2f} s.\n"
        )
        for cid, error in report.failed:
            out.write(f"  {cid}: {error}\n")
    return 1 if report.failed else 0


# ---------------------------------------------------------------------- reconnect


def _attention(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from .store import open_store

    conns = open_store(args.store_url, args.home).needing_attention()
    if args.json:
        emit_json(out, {"connections": [_connection_data(c) for c in conns]})
        return 0
    if not conns:
        out.write("Nothing needs attention.\n")
        return 0
    table(
        out,
        ("ID", "PROFILE", "PROVIDER", "STATUS", "REASON", "SINCE"),
        [(c.id, c.profile, c.provider, c.status.value, c.status_reason or "", c.updated_at) for c in conns],
    )
    out.write("Repair one with: connector reconnect CONNECTION\n")
    return 0


def _reconnect(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from .connector import ConfirmationRequired
    from .models import ReconnectKind

    connector = _connector(args, plugins)
    plan = connector.reconnect_plan(args.connection, scopes=args.scopes)
    err = sys.stderr
    err.write(f"Reconnect policy: {plan.policy.kind.value}. {plan.policy.summary}\n")
    if plan.policy.kind is ReconnectKind.UNINSTALL_THEN_REAUTHORIZE:
        for line in plan.lines:
            err.write(f"  {line}\n")
        if not args.yes:
            if not (sys.stdin is not None and sys.stdin.isatty()):
                error = ConfirmationRequired(
                    "do the steps above, then run again with --yes to confirm (there is no terminal to ask on)"
                )
                raise error
            err.write("Have you done this? [y/N] ")
            err.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                raise ConfirmationRequired("not confirmed; nothing was changed")
    result = _run_flow(connector, plan.connection.profile, args, out, None, reconnect=args.connection)
    return _finish(connector, result, args, out)


# ------------------------------------------------------------------------ request


def _request(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    body: Any | None = None
    raw: str | None = args.data
    if args.data_file:
        from pathlib import Path

        path = Path(args.data_file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValidationError(f"--data-file {path}", f"cannot be read ({exc.strerror})") from None
        if len(data) > MAX_DATA_FILE_BYTES:
            raise ValidationError(f"--data-file {path}", "is larger than 8 MiB")
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(f"--data-file {path}", "is not UTF-8 text") from None
    if raw is not None:
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError("--data", f"is not valid JSON ({exc.msg} at position {exc.pos})") from None
    connector = _connector(args, plugins)
    response = connector.request(args.connection, args.method, args.path, json=body)
    text = response.body.decode("utf-8", "replace")
    try:
        shown: Any = json.loads(text) if text.strip() else None
    except ValueError:
        shown = None
    if shown is not None:
        emit_json(out, shown)
    elif text:
        out.write(text if text.endswith("\n") else text + "\n")
    if response.status >= 400:
        sys.stderr.write(f"connector: error: {args.method} {args.path} answered HTTP {response.status}\n")
        return 1
    return 0
