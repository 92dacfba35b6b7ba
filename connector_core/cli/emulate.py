"""``connector emulate``: run a provider's built-in emulator in the foreground, or
uninstall the app from a company of a running one.

Client secrets never reach standard output unless ``--print-secret-env`` asks
for them: each credential set's secret is written to its own file, mode 0600,
in a private folder (``--secrets-dir``, or a temporary one removed on exit),
ready for ``--client-secret-file``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import ConnectorError, UsageError, ValidationError
from ..registries import Command
from .output import add_json, emit_json, run_handler
from .parser import HELP

if TYPE_CHECKING:
    from ..emulator import RunningEmulator
    from ..plugins import Plugins

__all__ = ["COMMAND", "emulator_errors"]


def configure(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Run PROVIDER's emulator in the foreground until Ctrl-C, or, with --uninstall, uninstall "
        "the test app from a company of an emulator running at --url."
    )
    p.add_argument("provider", metavar="PROVIDER")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--snapshot", metavar="FILE", help="keep the emulator's state (credentials, tokens) in FILE")
    p.add_argument("--access-token-lifetime", type=int, metavar="SECONDS", help="lifetime of access tokens")
    p.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        metavar="URI",
        help="register a redirect URI on the test app (repeatable; loopback URIs are always accepted)",
    )
    p.add_argument(
        "--secrets-dir",
        metavar="DIR",
        help="write each client secret to DIR/SET.client_secret, mode 0600 (default: a temporary folder)",
    )
    p.add_argument(
        "--print-secret-env",
        action="store_true",
        help="also print 'export VAR=SECRET' lines (puts the test secrets on standard output)",
    )
    p.add_argument("--quiet", action="store_true", help="do not log requests to standard error")
    p.add_argument("--uninstall", action="store_true", help="uninstall the app in a running emulator (needs --url)")
    p.add_argument("--url", metavar="BASE_URL", help="with --uninstall: the running emulator's base URL")
    p.add_argument("--company", metavar="ID", help="with --uninstall: the company (default: the first)")
    p.add_argument("--credential-set", metavar="SET", help="with --uninstall: only this credential set's install")
    add_json(p)
    p.set_defaults(handler=_emulate)


COMMAND = Command("emulate", HELP["emulate"], configure, run_handler)


def _emulate(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    if args.uninstall:
        for name, value in (("--snapshot", args.snapshot), ("--secrets-dir", args.secrets_dir)):
            if value is not None:
                raise UsageError(f"connector emulate: {name} cannot be combined with --uninstall")
        if not args.url:
            raise UsageError("connector emulate: --uninstall needs --url BASE_URL of the running emulator")
        return _uninstall(args, plugins, out)
    for name, value in (("--url", args.url), ("--company", args.company), ("--credential-set", args.credential_set)):
        if value is not None:
            raise UsageError(f"connector emulate: {name} is only used with --uninstall")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"connector emulate: --port must be 0 to 65535, got {args.port}")
    if args.access_token_lifetime is not None and args.access_token_lifetime < 1:
        raise UsageError("connector emulate: --access-token-lifetime must be at least 1 second")
    return _serve(args, plugins, out)


def _serve(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    # Here, not at the top: --uninstall needs none of these (cold start).
    import signal
    import tempfile

    from .._files import ensure_private_dir, write_private_file
    from ..emulator import start_emulator

    decl = plugins.declaration(args.provider)
    spec = plugins.emulator_spec(decl.key)
    if spec is None:
        raise ValidationError("provider", f"{decl.key!r} has no built-in emulator")

    def log(line: str) -> None:
        if not args.quiet:
            sys.stderr.write(f"{line}\n")
            sys.stderr.flush()

    emu: RunningEmulator | None = None
    # Ctrl-C (or SIGTERM) at any point from here on is the normal way to stop.
    # SIGINT too: a process started in the background (nohup, '&', CI runners) inherits SIGINT
    # ignored, and Python then never turns Ctrl-C into KeyboardInterrupt.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with contextlib.ExitStack() as stack:
            if args.secrets_dir:
                secrets_dir = Path(args.secrets_dir)
                ensure_private_dir(secrets_dir)
            else:
                secrets_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="connector-emulator-")))
            emu = start_emulator(
                decl,
                spec,
                port=args.port,
                snapshot=args.snapshot,
                access_token_lifetime=args.access_token_lifetime,
                redirect_uris=args.redirect_uri,
                log=log,
                raise_on_error=False,
            )
            stack.callback(emu.close, check=False)
            files = {}
            for credential_set, creds in emu.app.credentials.items():
                path = secrets_dir / f"{credential_set}.client_secret"
                write_private_file(path, creds.client_secret.reveal().encode() + b"\n")
                files[credential_set] = path
            if args.json:
                _print_json(out, emu, files, args.print_secret_env)
            else:
                _print_text(out, emu, files, args.print_secret_env)
            out.flush()
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.stderr.write("connector: emulator stopped\n")
    return emulator_errors(emu)


def emulator_errors(emu: RunningEmulator | None) -> int:
    """Once an emulator stopped: its unexpected errors (its own bugs, with their tracebacks) on
    stderr, and the exit status they give (1, else 0)."""
    errors = emu.unexpected_errors if emu is not None else ()
    if errors:
        sys.stderr.write(f"connector: error: the emulator hit {len(errors)} unexpected error(s)\n")
        for error in errors:
            sys.stderr.write(error.traceback)
        return 1
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _env_var(credential_set: str) -> str:
    return f"CONNECTOR_EMULATOR_{credential_set.upper().replace('-', '_')}_CLIENT_SECRET"


def _print_text(out: IO[str], emu: RunningEmulator, files: dict[str, Path], print_secrets: bool) -> None:
    decl = emu.declaration
    w = out.write
    w(f"{decl.provider.display_name} emulator running at {emu.base_url}  (Ctrl-C to stop)\n\n")
    w(f"App:          {emu.app.name}\n")
    w(f"App ID:       {emu.app.app_id}\n")
    w(f"Scopes:       {len(emu.app.scopes)} configured on the app\n")
    for env_key in emu.environments:
        env = decl.environment(env_key)
        endpoints = emu.endpoints(env_key)
        creds = emu.app.credentials[env.credential_set]
        w(f"\n{env.label} [{env.key}], {env.credential_set} credentials\n")
        w(f"  Client ID:       {creds.client_id}\n")
        w(f"  Client secret:   in {files[env.credential_set]} (mode 0600; --client-secret-file accepts it)\n")
        w(f"  authorize URL:   {endpoints.authorize_url}\n")
        w(f"  token URL:       {endpoints.token_url}\n")
        w(f"  revocation URL:  {endpoints.revocation_url}\n")
        w(f"  API base URL:    {endpoints.api_base_url}\n")
    w("\n")
    for company in emu.companies:
        w(f"Company:      {company.id} ({company.name})\n")
    registered = ", ".join(emu.redirect_uris) or "(none)"
    w(f"Redirect URIs: {registered}; any http://127.0.0.1 loopback URI is accepted too\n")
    w("Consent:      open the authorize URL in a browser, or send the header X-Emulator-Consent: allow\n")
    w(f"Uninstall:    connector emulate {decl.key} --uninstall --url {emu.base_url}\n")
    if print_secrets:
        import shlex  # here, not at the top: only --print-secret-env needs it

        w("\n")
        for credential_set, creds in emu.app.credentials.items():
            w(f"export {_env_var(credential_set)}={shlex.quote(creds.client_secret.reveal())}\n")


def _print_json(out: IO[str], emu: RunningEmulator, files: dict[str, Path], print_secrets: bool) -> None:
    data = emu.info()
    for credential_set, entry in data["app"]["credentials"].items():
        entry["client_secret_file"] = str(files[credential_set])
        if print_secrets:
            entry["client_secret"] = emu.app.credentials[credential_set].client_secret.reveal()
    emit_json(out, data)


def _uninstall(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    import httpx  # the imports here, not at the top: serving needs neither (cold start)

    from ..models import url_problem

    decl = plugins.declaration(args.provider)
    base_url = args.url.rstrip("/")
    problem = url_problem(base_url)
    if problem:
        raise ValidationError("--url", f"{problem}, got {args.url!r}")
    payload = {"provider": decl.key, "company": args.company, "credential_set": args.credential_set}
    try:
        with httpx.Client(timeout=10, trust_env=False) as client:
            response = client.post(f"{base_url}/emulator/uninstall", json=payload)
    except httpx.HTTPError as exc:
        raise ConnectorError(f"cannot reach an emulator at {base_url}: {exc or type(exc).__name__}") from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ConnectorError(f"{base_url} answered HTTP {response.status_code} without JSON; is it an emulator?")
    if response.status_code != 200:
        raise ValidationError("--uninstall", str(data.get("error_description") or f"HTTP {response.status_code}"))
    if args.json:
        emit_json(out, data)
    elif data.get("uninstalled"):
        count = data["uninstalled"]
        out.write(f"Uninstalled the app from company {data.get('company_id')} ({count} installation(s)).\n")
    else:
        out.write(f"The app was not installed in company {data.get('company_id')}; nothing to do.\n")
    return 0
