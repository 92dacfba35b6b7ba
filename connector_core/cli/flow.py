"""The interactive part of ``connect`` and ``reconnect``: send the person to the provider,
take the callback (on a loopback listener, or pasted), then test and show the connection."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConnectorError, ValidationError
from .output import emit_json
from .views import connection_data, summary

if TYPE_CHECKING:
    from ..connection import Owner
    from ..connector import Connector

__all__ = ["finish", "run_flow"]


def run_flow(
    connector: Connector,
    profile: str,
    args: argparse.Namespace,
    out: IO[str],
    browser: Any | None,
    *,
    reconnect: str | None = None,
    owner: Owner | None = None,
) -> Any:
    """The interactive part: loopback listener when the redirect URI is loopback, else paste.
    ``reconnect`` names a connection to re-authorize in place (its policy already applied; it keeps
    its owner); ``owner``: whose a new connection is."""
    # Here, not at the top: building the parser (also for `connector docs --cli-reference`) imports
    # this module, and only a flow that runs needs httpx and oauthlib (cold start).
    from ..connector import AlreadyInstalled

    prof = connector.store.get_profile(profile)
    try:
        return _run_flow(connector, profile, prof, args, out, browser, reconnect, owner)
    except AlreadyInstalled as exc:
        emulator = _emulator_base(prof.endpoint("authorize_url"))
        if emulator is not None:  # the provider's steps (its Marketplace...) do not apply to an emulator
            exc.details = (
                f"The profile uses the emulator at {emulator}; uninstall the app there with:",
                f"  connector emulate {prof.provider} --uninstall --url {emulator}",
            )
        raise


def _emulator_base(authorize_url: str | None) -> str | None:
    """The base URL of the emulator a profile points at (a loopback authorize_url), or None."""
    from ..models import is_loopback_host  # here, not at the top: see run_flow

    parts = urlsplit(authorize_url or "")
    if parts.scheme != "http" or not parts.hostname or not is_loopback_host(parts.hostname):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _run_flow(
    connector: Connector,
    profile: str,
    prof: Any,
    args: argparse.Namespace,
    out: IO[str],
    browser: Any | None,
    reconnect: str | None,
    owner: Owner | None,
) -> Any:
    # Here, not at the top: see run_flow.
    from .._loopback import LoopbackListener
    from ..connector import AuthorizationStart, ConnectResult
    from ..models import is_loopback_host

    redirect = args.redirect_uri or connector.redirect_uri(prof)
    host = urlsplit(redirect).hostname or ""
    holder: dict[str, ConnectResult] = {}

    def begin() -> AuthorizationStart:
        if reconnect is not None:
            return connector.begin_reconnect(reconnect, scopes=args.scopes, redirect_uri=redirect, confirmed=True)
        return connector.begin(profile, redirect_uri=redirect, scopes=args.scopes, owner=owner)

    def complete(query: str) -> tuple[bool, str]:
        holder["result"] = connector.complete(query, profile=profile)
        return True, f"Connected {holder['result'].connection.provider}. Return to the terminal."

    if is_loopback_host(host):
        with LoopbackListener(redirect, complete) as listener:
            start = begin()
            _open_browser(start.url, args, out, browser)
            outcome = listener.wait(args.timeout)
            if outcome is None:
                raise ConnectorError(
                    f"no callback arrived within {args.timeout:g} s; nothing was stored. Run the command again"
                )
            if listener.error is not None:
                raise listener.error
            return holder["result"]
    start = begin()
    _open_browser(start.url, args, out, browser)
    sys.stderr.write("After consenting, paste the full URL the browser was sent to (the callback URL): ")
    sys.stderr.flush()
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line.strip():
        raise ValidationError("callback URL", "nothing was pasted; nothing was stored")
    return connector.complete(line.strip(), profile=profile)


def _open_browser(url: str, args: argparse.Namespace, out: IO[str], browser: Any | None) -> None:
    if browser is not None:
        browser(url)
        return
    if args.no_browser:
        sys.stderr.write(f"Open this URL to authorize:\n{url}\n")
        return
    sys.stderr.write(f"Opening the browser to authorize. If it does not open, visit:\n{url}\n")
    if not open_in_browser(url, browser_environment(args)):
        sys.stderr.write("(no browser could be opened)\n")


#: Run in a child so the browser it starts inherits the child's (scrubbed) environment:
#: ``webbrowser`` passes no ``env`` to the browsers it starts, so they get all of ours.
_OPENER = "import sys, webbrowser; sys.exit(0 if webbrowser.open(sys.argv[1]) else 1)"


def browser_environment(args: argparse.Namespace) -> dict[str, str]:
    """This process's environment without what a browser must never hold: our own variables
    (``CONNECTOR_*``: the encryption keys, the store URL with its password...) and every
    variable this command read a secret from (``--FIELD-env VAR``)."""
    named = {value for key, value in vars(args).items() if key.endswith("_env") and isinstance(value, str)}
    return {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_") and k not in named}


def open_in_browser(url: str, env: dict[str, str]) -> bool:
    """Open ``url`` with :mod:`webbrowser`, run in a child process that has only ``env``."""
    import subprocess  # here, not at the top: only opening a browser needs it

    try:
        done = subprocess.run([sys.executable, "-c", _OPENER, url], env=env, check=False)  # noqa: S603 - our interpreter
    except OSError:
        return False
    return done.returncode == 0


#: What ``finish`` says instead of a test result with ``--no-test``.
NOT_TESTED = "skipped (--no-test): stored without running the provider's connection test"


def finish(connector: Connector, result: Any, args: argparse.Namespace, out: IO[str]) -> int:
    """Show a made connection: its summary and the connection test's outcome (run now, on the
    stored connection, unless ``--no-test``), or its JSON (``test`` is null when not run)."""
    from .views import auth_kinds  # here, not at the top: the parser imports this module (cold start)

    for warning in result.warnings:
        sys.stderr.write(f"connector: warning: {warning}\n")
    conn = result.connection
    test = None if getattr(args, "no_test", False) else connector.test(conn.id)
    shown = connector.store.get_connection(conn.id)
    kind = auth_kinds(connector.plugins).get(shown)
    if args.json:
        emit_json(
            out,
            {
                "connection": connection_data(shown, kind),
                "test": None if test is None else {"ok": test.ok, "status": test.status, "detail": test.detail},
                "warnings": list(result.warnings),
            },
        )
    else:
        out.write("Connected.\n")
        width = summary(out, shown, kind)
        line = NOT_TESTED if test is None else f"{'ok' if test.ok else 'FAILED'}: {test.detail}"
        out.write(f"{'test'.ljust(width)}  {line}\n")
    return 0 if test is None or test.ok else 1
