"""``connector serve``: run the connect service (the platform API, the connect page and the
providers' callbacks) under uvicorn (one worker).

The API keys come from ``CONNECTOR_SERVE_API_KEYS`` or ``--api-keys-file``, never from argv,
and are never printed; without one the command refuses to start. Starlette and uvicorn (the
``serve`` extra) are imported only when the command runs.

``--emulator [PROVIDER]`` is the demo: the provider's built-in emulator, a temporary store of
its own (removed at exit, unless ``--home`` or ``--store-url`` names one), profiles of the
emulator's test app, a generated API key in a private file, and on standard error the one
``curl`` that creates a connect session.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from ..errors import ConnectorError, StoreError, UnknownNameError, UsageError, ValidationError
from ..registries import Command
from .context import open_store
from .emulate import emulator_errors
from .keeper import add_keeper_options, keeper_from_args
from .output import run_handler
from .parser import HELP

if TYPE_CHECKING:
    from ..connector import Connector
    from ..emulator import RunningEmulator
    from ..models import ProviderDeclaration
    from ..plugins import Plugins
    from ..serve import ApiKeys
    from ..store import StoreLike

__all__ = ["COMMAND", "ENV_EMBED_ORIGINS", "ENV_REDIRECT_ALLOW"]

#: The redirect allow-list when no ``--redirect-allow`` is given (comma-separated).
ENV_REDIRECT_ALLOW = "CONNECTOR_SERVE_REDIRECT_ALLOW"
#: The embedding origins when no ``--embed-origin`` is given (comma-separated).
ENV_EMBED_ORIGINS = "CONNECTOR_SERVE_EMBED_ORIGINS"
#: The demo's files, in its private temporary folder.
_KEY_FILE = "api-key"
_CREDENTIALS_FILE = "demo-credentials.json"


def configure(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Run the connect service (the platform API, the connect page, the providers' callbacks) under uvicorn "
        "until Ctrl-C. API keys come from $CONNECTOR_SERVE_API_KEYS (comma-separated) or --api-keys-file. "
        "--emulator runs a demo against a provider's built-in emulator, with a temporary store and a generated key."
    )
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="the port to listen on (default: 8080)")
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="the https URL the service is reached at (http only for loopback; default: http://HOST:PORT on loopback)",
    )
    p.add_argument(
        "--api-keys-file",
        metavar="PATH",
        help="the API keys, one per line (mode 0600); with --emulator, the generated key is written there when "
        "the file does not exist",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        metavar="ADDRESSES",
        help="trust X-Forwarded-For/-Proto from these comma-separated proxy addresses (default: trust none)",
    )
    p.add_argument(
        "--redirect-allow",
        action="append",
        metavar="URL",
        help="a URL (origin and path prefix) a connect session may send its end user back to (repeatable; "
        f"default: ${ENV_REDIRECT_ALLOW}, comma-separated)",
    )
    p.add_argument(
        "--embed-origin",
        action="append",
        metavar="ORIGIN",
        help="an origin (https://app.example.com) that may frame the connect page or open it as a popup "
        f"(repeatable; default: ${ENV_EMBED_ORIGINS}, comma-separated)",
    )
    p.add_argument(
        "--install-profile",
        action="append",
        metavar="PROVIDER=PROFILE",
        help="the profile that takes PROVIDER's installs begun at the provider (repeatable; default: the "
        "provider's only such profile)",
    )
    p.add_argument(
        "--install-redirect-url",
        metavar="URL",
        help="where an end user is sent after an install begun at the provider (on the redirect allow-list; "
        "connection_id and provider are added)",
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="the log lines on standard error: text (default) or json, one object a line with the request's "
        "method, path, status and ms, for the service's and uvicorn's loggers; secrets masked in both",
    )
    p.add_argument(
        "--emulator",
        nargs="?",
        const="",
        metavar="PROVIDER",
        help="demo: run PROVIDER's built-in emulator (default: the one installed provider that has one and an "
        "OAuth 2.0 authorization code auth type), a temporary store unless --home or --store-url is given, "
        "its profiles, and a generated API key in a private file; loopback only",
    )
    p.add_argument(
        "--print-key", action="store_true", help="with --emulator: also print the API key on standard output"
    )
    p.add_argument(
        "--no-webhooks",
        action="store_true",
        help="do not deliver webhooks from this process (run 'connector webhooks deliver' elsewhere)",
    )
    p.add_argument(
        "--no-keeper",
        action="store_true",
        help="do not run the keeper (refreshing connections before they expire) in the service; run "
        "'connector keeper' apart, or by cron",
    )
    add_keeper_options(p, prefix="keeper-")
    p.set_defaults(handler=_serve)


COMMAND = Command("serve", HELP["serve"], configure, run_handler)


@attrs.frozen
class _Settings:
    """The connect service's settings, each checked and named after its option."""

    redirect_allow_list: tuple[str, ...] = ()
    embed_origins: tuple[str, ...] = ()
    install_profiles: Mapping[str, str] = attrs.field(factory=dict)
    install_redirect_url: str | None = None


def _serve(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from ..models import is_loopback_host  # here, not at the top: the records (cold start)

    if not 0 < args.port <= 65535:
        raise UsageError(f"connector serve: --port must be 1 to 65535, got {args.port}")
    demo = args.emulator is not None
    if demo and not is_loopback_host(args.host):
        raise UsageError(
            f"connector serve: --emulator listens on loopback only (its test app and key are for this machine), "
            f"got --host {args.host}"
        )
    if args.print_key and not demo:
        raise UsageError("connector serve: --print-key is used with --emulator (a key of yours is never printed)")
    try:
        # Here, not at the top: Starlette and uvicorn are the optional 'serve' extra, and
        # 'connector --help' must not pay for them (cold start).
        import uvicorn

        from ..serve import check_public_url, create_app, load_api_keys
    except ImportError as exc:
        raise ConnectorError(
            f"connector serve needs the 'serve' extra ({exc.name} is missing): pip install 'connector-core[serve]'"
        ) from None
    settings = _settings(args, os.environ, plugins)
    if args.public_url is None:
        if not is_loopback_host(args.host):
            raise UsageError("connector serve: --public-url is required when listening beyond loopback")
        host = f"[{args.host}]" if ":" in args.host else args.host
        public_url = f"http://{host}:{args.port}"
    else:
        public_url = args.public_url
    public_url = check_public_url(public_url, "--public-url")
    decl = _demo_provider(plugins, args.emulator) if demo else None
    with _stopped_by_signals() as stopped, contextlib.ExitStack() as stack:
        emu: RunningEmulator | None = None
        if decl is not None:
            keys, connector, emu, settings, banner = _demo(args, plugins, decl, public_url, settings, stack, out)
        else:
            keys = load_api_keys(os.environ, args.api_keys_file)
            connector = _opened(_service_connector(open_store(args), plugins), stack)
            banner = (
                f"connector: serving the connect service for {public_url} on {args.host}:{args.port} "
                f"with {len(keys)} API key(s) (Ctrl-C to stop)\n"
            )
        _check_install_profiles(connector, settings, plugins)
        app = create_app(
            connector,
            api_keys=keys,
            public_url=public_url,
            trust_forwarded=args.forwarded_allow_ips is not None,
            redirect_allow_list=settings.redirect_allow_list,
            embed_origins=settings.embed_origins,
            install_profiles=settings.install_profiles,
            install_redirect_url=settings.install_redirect_url,
        )
        config = uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            workers=1,
            proxy_headers=args.forwarded_allow_ips is not None,
            forwarded_allow_ips=args.forwarded_allow_ips or "",
            server_header=False,
            # The application logs each request itself, with connect-session tokens redacted;
            # uvicorn's access log would write /connect/cs_... paths as they are.
            access_log=False,
            log_level="info",
        )
        _log_requests(args.log_format)
        _say(banner, args.log_format)
        if not args.no_webhooks:
            from ..webhooks import delivering  # here, not at the top: only a running service delivers

            stack.enter_context(delivering(connector.store, on_delivered=app.state.metrics.delivered))
        if not args.no_keeper:
            _start_keeper(args, connector, stack, on_refresh=app.state.metrics.refreshed)
        uvicorn.Server(config).run()
    if stopped:
        _say("connector: serve stopped\n", args.log_format)
    return emulator_errors(emu)


def _say(text: str, log_format: str) -> None:
    """``text`` on standard error: as it is, or as a log line of the service's with ``json``
    (so that every line a JSON log's reader gets is an object)."""
    if log_format == "json":
        import logging  # here, not at the top: only serve logs (cold start)

        logging.getLogger("connector_core.serve").info(text.rstrip("\n"))
    else:
        sys.stderr.write(text)
        sys.stderr.flush()


#: uvicorn's loggers, which ``uvicorn.Config`` has given handlers of their own by the time
#: ``_log_requests`` runs.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _start_keeper(
    args: argparse.Namespace,
    connector: Connector,
    stack: contextlib.ExitStack,
    *,
    on_refresh: Callable[[str], None] | None = None,
) -> None:
    """The keeper in a background thread (the service's engine), stopped and joined when ``stack``
    ends, before the store closes. While another keeper holds a SQLite store's lock, or the store
    cannot be reached, it waits, trying again each interval."""
    import logging  # here, not at the top: only a running service needs it
    import threading  # here, not at the top: only a running service needs it

    keeper = keeper_from_args(args, connector, on_refresh=on_refresh)
    stop = threading.Event()
    log = logging.getLogger("connector_core.keeper")

    def run() -> None:
        said: list[str | None] = []  # the codes of what was logged: each once in a row
        while not stop.is_set():
            try:
                keeper.run(stop, args.keeper_interval, on_report=report)
            except StoreError as exc:  # another keeper holds the lock, or the store is unreachable: wait
                if not said or said[-1] != exc.code:
                    log.warning("the keeper waits, trying again every %g s: %s", args.keeper_interval, exc.message)
                    said.append(exc.code)
                stop.wait(args.keeper_interval)
            except Exception as exc:  # noqa: BLE001 - the service goes on; the keeper's end is logged
                # Its type only: an unexpected error's text is nobody's to vouch for (it could hold a secret).
                log.error("the keeper stopped on an unexpected %s; the service goes on without it", type(exc).__name__)
                return

    def report(result: Any) -> None:
        if result.due or result.transient or result.permanent or result.recovered or result.tested:
            log.info("keeper: %s", result.summary())

    thread = threading.Thread(target=run, name="connector-keeper", daemon=True)

    def halt() -> None:
        stop.set()
        thread.join(timeout=60)

    thread.start()
    stack.callback(halt)


def _log_requests(log_format: str = "text") -> None:
    """The service's own log lines (one per request, tokens masked; what went wrong) on stderr,
    as uvicorn's are: uvicorn configures its loggers only. Every line goes through
    :func:`~connector_core.logs.redact`; with ``json``, uvicorn's lines too are JSON objects."""
    import logging  # here, not at the top: only serve logs (cold start)

    from ..logs import JsonFormatter, RedactingFormatter  # here, not at the top: only serve logs (cold start)

    formatter: logging.Formatter = (
        JsonFormatter() if log_format == "json" else RedactingFormatter("%(levelname)s:     %(message)s")
    )
    logger = logging.getLogger("connector_core")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    if log_format == "json":
        for name in _UVICORN_LOGGERS:
            for theirs in logging.getLogger(name).handlers:
                theirs.setFormatter(formatter)


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[list[int]]:
    """Ctrl-C or SIGTERM is the normal way to stop: uvicorn shuts down on either, then raises
    it again with the handler it found, which is ours: the ``with`` blocks end (the store is
    closed, the demo's emulator stopped and its folder removed) instead of the process dying
    on the spot. Yields a list that holds the signal once one stopped the service."""
    import signal  # here, not at the top: only a running service needs it

    got: list[int] = []

    def interrupt(signum: int, frame: Any) -> None:
        got.append(signum)
        raise KeyboardInterrupt

    # SIGINT too: a process started in the background inherits SIGINT ignored, and Python
    # then never turns Ctrl-C into KeyboardInterrupt.
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield got
    except KeyboardInterrupt:
        if not got:  # Ctrl-C that reached Python's own handler first
            got.append(signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _service_connector(store: StoreLike, plugins: Plugins) -> Connector:
    """The service's connector: its async client (the proxy's calls, the API's refreshes) pools
    its connections at a cost per request that does not grow with their number (see
    :mod:`connector_core.serve.upstream`)."""
    from ..connector import Connector  # here, not at the top: httpx and oauthlib (cold start)
    from ..serve.upstream import upstream_client  # the 'serve' extra, imported by _serve already

    return Connector(store, plugins, async_client=upstream_client())


def _opened(connector: Connector, stack: contextlib.ExitStack) -> Connector:
    """``connector``, closed with its store when ``stack`` ends."""
    stack.callback(connector.store.close)
    stack.callback(connector.close)
    return connector


# ------------------------------------------------------------------ settings


def _listed(given: Sequence[str] | None, env: Mapping[str, str], name: str, option: str) -> tuple[list[str], str]:
    """The values of a repeatable option, else of its comma-separated variable; with the name to blame."""
    if given:
        return list(given), option
    return [v.strip() for v in env.get(name, "").split(",") if v.strip()], name


def _settings(args: argparse.Namespace, env: Mapping[str, str], plugins: Plugins) -> _Settings:
    """The connect service's settings from the options (and variables); a ValidationError
    naming the option (or variable) of the first wrong value."""
    from ..serve import check_origin  # here, not at the top: the 'serve' extra, imported by _serve already
    from ..sessions import redirect_allowed  # here, not at the top: only a running service needs it

    allow, field = _listed(args.redirect_allow, env, ENV_REDIRECT_ALLOW, "--redirect-allow")
    for entry in allow:
        redirect_allowed(entry, (entry,), field=field)  # an entry is itself a URL the rule accepts
    origins, field = _listed(args.embed_origin, env, ENV_EMBED_ORIGINS, "--embed-origin")
    embed = tuple(dict.fromkeys(check_origin(o, field) for o in origins))
    profiles: dict[str, str] = {}
    for entry in args.install_profile or ():
        provider, sep, profile = entry.partition("=")
        provider, profile = provider.strip(), profile.strip()
        if not sep or not provider or not profile:
            raise ValidationError("--install-profile", f"expected PROVIDER=PROFILE, got {entry!r}")
        if provider not in plugins.provider_keys():
            raise ValidationError(
                "--install-profile",
                f"unknown provider {provider!r} (installed: {', '.join(plugins.provider_keys()) or 'none'})",
            )
        if profiles.get(provider, profile) != profile:
            raise ValidationError("--install-profile", f"provider {provider!r} is given two profiles")
        profiles[provider] = profile
    if args.install_redirect_url is not None:
        redirect_allowed(args.install_redirect_url, allow, field="--install-redirect-url")
    return _Settings(tuple(dict.fromkeys(allow)), embed, profiles, args.install_redirect_url)


def _check_install_profiles(connector: Connector, settings: _Settings, plugins: Plugins) -> None:
    """Each ``--install-profile`` names a profile of its provider whose auth type sends the
    person to the provider: a typo shows now, not on an end user's page."""
    for provider, name in settings.install_profiles.items():
        try:
            profile = connector.store.get_profile(name, with_secrets=False)
        except UnknownNameError:
            raise ValidationError("--install-profile", f"{provider}={name}: there is no profile {name!r}") from None
        if profile.provider != provider:
            raise ValidationError(
                "--install-profile", f"{provider}={name}: profile {name!r} is a {profile.provider} profile"
            )
        auth = plugins.declaration(provider).auth_type(profile.auth_type)
        if not auth.kind.redirects:
            raise ValidationError(
                "--install-profile",
                f"{provider}={name}: profile {name!r} uses {auth.key} ({auth.label}), which sends no one to the "
                "provider, so no install begins there",
            )


# ---------------------------------------------------------------------- demo


def _demo_ready(plugins: Plugins, decl: ProviderDeclaration) -> str | None:
    """Why ``decl`` cannot be demonstrated, or None."""
    from ..models import OAuth2AuthorizationCode  # here, not at the top: the records (cold start)

    if plugins.emulator_spec(decl.key) is None:
        return "has no built-in emulator"
    if not any(isinstance(a, OAuth2AuthorizationCode) for a in decl.auth_types):
        return "declares no OAuth 2.0 authorization code auth type"
    if decl.callback is None:
        return "declares no OAuth callback"
    return None


def _shipped(plugins: Plugins, key: str) -> bool:
    """Whether ``key`` is a provider the core ships itself (the generic OAuth 2.0 provider)."""
    from ..dataprovider import DataProvider  # here, not at the top: only the demo's choice needs it
    from ..plugins import BUILTIN_PLUGIN_NAME

    plugin = plugins.plugin_manager.get_plugin(plugins.plugin_of(key))
    return isinstance(plugin, DataProvider) and plugin.origin == BUILTIN_PLUGIN_NAME


def _demo_provider(plugins: Plugins, given: str) -> ProviderDeclaration:
    """The provider ``--emulator`` names, else the one installed provider it can demonstrate
    (the core's own generic provider counts only when there is no other)."""
    if given:
        decl = plugins.declaration(given)
        why = _demo_ready(plugins, decl)
        if why:
            raise ValidationError("--emulator", f"provider {decl.key!r} {why}, so it has no demo")
        return decl
    ready = [d for d in plugins.declarations() if _demo_ready(plugins, d) is None]
    chosen = [d for d in ready if not _shipped(plugins, d.key)] or ready
    if not chosen:
        raise ValidationError(
            "--emulator",
            "no installed provider has a built-in emulator and an OAuth 2.0 authorization code auth type",
        )
    if len(chosen) > 1:
        raise ValidationError(
            "--emulator",
            f"several providers have a demo ({', '.join(d.key for d in chosen)}); name one: --emulator PROVIDER",
        )
    return chosen[0]


def _demo(
    args: argparse.Namespace,
    plugins: Plugins,
    decl: ProviderDeclaration,
    public_url: str,
    settings: _Settings,
    stack: contextlib.ExitStack,
    out: IO[str],
) -> tuple[ApiKeys, Connector, RunningEmulator, _Settings, str]:
    """Set the demo up inside ``stack`` (undone when it ends): its folder, store, emulator,
    profiles, demo credentials and API key. Returns the keys, the connector, the emulator,
    the settings (the install profile filled in) and what to print."""
    # Here, not at the top: the demo's alone (cold start).
    import json
    import secrets
    import shlex
    import shutil
    import tempfile

    from .._files import write_private_file
    from ..crypto import ENV_KEY_FILE
    from ..emulator import start_emulator
    from ..models import OAuth2AuthorizationCode
    from ..serve import callback_url, load_api_keys
    from ..store import Store

    folder = Path(tempfile.mkdtemp(prefix="connector-demo-"))  # mode 0700
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    if args.home is None and args.store_url is None:
        # Never the store of $CONNECTOR_HOME or $CONNECTOR_STORE_URL: a demo's test profiles
        # and connections do not belong there. Its own key ring too, in the folder.
        store = Store.open(folder / "home", env={ENV_KEY_FILE: str(folder / "keys.json")})
        connector = _opened(_service_connector(store, plugins), stack)
        where = f"{folder / 'home'}, removed at exit"
    else:
        connector = _opened(_service_connector(open_store(args), plugins), stack)
        path = getattr(connector.store, "path", None)  # SQLite; PostgreSQL's URL may hold a password
        where = str(path) if path is not None else "the PostgreSQL store --store-url names"

    key = secrets.token_urlsafe(32)
    key_file = Path(args.api_keys_file) if args.api_keys_file else folder / _KEY_FILE
    if write_private_file(key_file, key.encode() + b"\n", exclusive=True):
        keys = load_api_keys({}, key_file)
        bearer = f"$(cat {shlex.quote(str(key_file))})"
        key_line = f"API key:   in {key_file} (mode 0600)"
    else:  # an --api-keys-file of the user's: its keys, as without --emulator
        keys = load_api_keys({}, key_file)
        key = ""
        bearer = "$API_KEY"
        key_line = f"API key:   one of the keys in {key_file}; set API_KEY to it"

    callback = callback_url(public_url, decl.key)
    spec = plugins.emulator_spec(decl.key)
    emu = start_emulator(decl, spec, redirect_uris=[callback], raise_on_error=False)
    stack.callback(emu.close, check=False)
    profiles, issued = _demo_profiles(connector, decl, emu, callback)
    oauth = next(a for a in decl.auth_types if isinstance(a, OAuth2AuthorizationCode))
    lines = [
        f"connector: demo of the connect service with the {decl.provider.display_name} emulator (Ctrl-C to stop)",
        f"  Service:   {public_url} (store: {where})",
        f"  Emulator:  {emu.base_url} (profiles: {', '.join(profiles)})",
        f"  {key_line}",
    ]
    if issued is not None:
        label, values = issued
        credentials_file = folder / _CREDENTIALS_FILE
        write_private_file(credentials_file, json.dumps(values, indent=2).encode() + b"\n")
        lines.append(f"  {label}: in {credentials_file} (mode 0600), for the connect page's form")
    body = json.dumps({"end_user": {"id": "demo-user"}, "profile": profiles[0]})
    sessions_url = f"{public_url.rstrip('/')}/v1/connect/sessions"
    lines += [
        "  Create a connect session, then open its connect_url in a browser:",
        f'    curl -s -X POST {shlex.quote(sessions_url)} -H "Authorization: Bearer {bearer}" '
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}",
    ]
    if len(profiles) > 1:
        lines.append(f'  (with "profile": "{profiles[1]}" the page asks for the credentials in the file above)')
    if oauth.provider_initiated_install:
        lines += [
            "  Or install from the provider's side (as from its marketplace):",
            f"    {emu.install_url(callback, scopes=connector.store.get_profile(profiles[0]).scopes)}",
        ]
        settings = attrs.evolve(settings, install_profiles={decl.key: profiles[0], **settings.install_profiles})
    if args.print_key and key:
        out.write(key + "\n")
        out.flush()
    return keys, connector, emu, settings, "\n".join(lines) + "\n"


def _demo_profiles(
    connector: Connector, decl: ProviderDeclaration, emu: RunningEmulator, callback: str
) -> tuple[list[str], tuple[str, dict[str, str]] | None]:
    """The emulator's profiles, as ``connect --emulator`` makes them: ``KEY-emulator`` (OAuth,
    redirecting to the service's callback) and, for the first auth type whose credentials the
    emulator issues (a service user), ``KEY-emulator-AUTHTYPE`` with one set issued. Returns
    the profiles' names and the issued set (its label, and its values by field name)."""
    # Here, not at the top: the demo's alone (cold start).
    from ..models import FieldKind, FieldLevel, OAuth2AuthorizationCode
    from ..secret import Secret
    from .connect import _save_profile

    env = decl.environment()
    creds = emu.app.credentials[env.credential_set]
    endpoints = emu.endpoints(env.key)
    oauth = next(a for a in decl.auth_types if isinstance(a, OAuth2AuthorizationCode))
    known: dict[str, str | Secret] = {
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "app_id": emu.app.app_id,
    }

    def app_values(auth_type: str) -> dict[str, str | Secret]:
        return {
            f.name: known[f.name]
            for f in decl.fields_for(auth_type, FieldLevel.APP)
            if f.name in known and f.kind is not FieldKind.SCOPE_LIST
        }

    name = f"{decl.key}-emulator"
    _save_profile(connector, decl, name, env.key, oauth.key, app_values(oauth.key), endpoints.profile_urls(callback))
    names = [name]
    credential = next((a for a in decl.auth_types if a.key in emu.credential_auth_types), None)
    if credential is None:
        return names, None
    name = f"{decl.key}-emulator-{credential.key}"
    urls = {
        "token_url": endpoints.token_url,
        "revocation_url": endpoints.revocation_url,
        "api_base_url": endpoints.api_base_url,
    }
    _save_profile(connector, decl, name, env.key, credential.key, app_values(credential.key), urls)
    names.append(name)
    issued = emu.issue_credentials(credential.key, environment=env.key)
    return names, (credential.label, {"profile": name, **dict(issued)})
