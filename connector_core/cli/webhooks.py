"""``connector webhooks``: configure webhook endpoints (URL, event types, signing secret and its
rotation), read the delivery log, replay events, and run the deliverer in the foreground.

A secret is read from an environment variable (``--secret-env``) or a file (``--secret-file``),
never from argv; otherwise one is generated and written to a new 0600 file (``--write-secret``),
and printed only with ``--print-secret`` (on standard output alone, so that a script can capture
it). No other output shows a secret.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import UsageError, ValidationError
from ..registries import Command
from .context import open_store
from .output import Parser, add_json, emit_json, needs_subcommand, run_handler, table
from .parser import HELP
from .secrets import MAX_SECRET_FILE_BYTES

if TYPE_CHECKING:
    from ..plugins import Plugins
    from ..secret import Secret
    from ..webhooks import Delivery, WebhookEndpoint
    from ..webhooks.delivery import DeliveryReport

__all__ = ["COMMAND"]

#: The event types, for the help text (the CLI's parser must not import the events module's records).
_EVENT_TYPES = (
    "connection.created, connection.reconnected, connection.refresh_failing, connection.recovered, "
    "connection.needs_reconnect, connection.scopes_changed, connection.revoked, connection.deleted, "
    "connect_session.failed"
)


class _RefuseSecret(argparse.Action):
    """``--secret VALUE`` is refused without printing VALUE: argv is visible to every user (``ps``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, *args: Any) -> None:
        raise UsageError(
            "--secret: secrets are never taken from the command line; use --secret-env VAR or --secret-file PATH, "
            "or leave them out to have one generated (--write-secret PATH)"
        )


def _add_secret_options(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("--secret", nargs="?", action=_RefuseSecret, help=argparse.SUPPRESS, dest="secret__argv")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--secret-env", metavar="VAR", help=f"{verb} the whsec_... secret in environment variable VAR")
    given.add_argument("--secret-file", metavar="PATH", help=f"{verb} the whsec_... secret in a file")
    p.add_argument(
        "--write-secret",
        metavar="PATH",
        help="without --secret-env/--secret-file a secret is generated: write it to this new file (mode 0600)",
    )
    p.add_argument(
        "--print-secret",
        action="store_true",
        help="print the generated secret on standard output (the summary goes to standard error)",
    )


def configure(hooks: argparse.ArgumentParser) -> None:
    hooks.description = (
        "Webhook endpoints receive every lifecycle event they subscribe to, signed the Standard Webhooks way, "
        "at least once (see docs/webhooks.md)."
    )
    sub = hooks.add_subparsers(dest="webhooks_command", metavar="SUBCOMMAND", parser_class=Parser)

    add = sub.add_parser("add", help="add an endpoint: a URL, the event types it gets, its signing secret")
    add.add_argument("url", metavar="URL", help="https only (http for a loopback host); no user:password@")
    add.add_argument(
        "--events",
        nargs="+",
        action="extend",
        metavar="TYPE",
        help=f"the event types it gets (default: every type): {_EVENT_TYPES}",
    )
    add.add_argument(
        "--allow-private",
        action="store_true",
        help="allow a URL whose host resolves to a private-network address (still https)",
    )
    _add_secret_options(add, "use")
    add_json(add)
    add.set_defaults(handler=_add)

    lst = sub.add_parser("list", help="list the endpoints")
    add_json(lst)
    lst.set_defaults(handler=_list)

    for name, help_text, handler in (
        ("show", "show an endpoint and its pending deliveries", _show),
        ("remove", "remove an endpoint with its secrets, deliveries and log", _remove),
        ("drop-previous-secret", "end a rotation: only the current secret signs from now on", _drop_previous),
        ("enable", "enable an endpoint again (its waiting deliveries resume)", _enable),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("endpoint", metavar="ID")
        add_json(p)
        p.set_defaults(handler=handler)
    disable = sub.add_parser("disable", help="disable an endpoint: no new deliveries; pending ones wait")
    disable.add_argument("endpoint", metavar="ID")
    disable.add_argument("--reason", metavar="TEXT", help="why (shown by 'list' and 'show')")
    add_json(disable)
    disable.set_defaults(handler=_disable)

    rotate = sub.add_parser(
        "rotate-secret",
        help="start a secret rotation: the new secret and the previous one both sign until drop-previous-secret",
    )
    rotate.add_argument("endpoint", metavar="ID")
    _add_secret_options(rotate, "rotate to")
    add_json(rotate)
    rotate.set_defaults(handler=_rotate)

    log = sub.add_parser("deliveries", help="the delivery log: deliveries and every attempt of each")
    log.add_argument("--endpoint", metavar="ID", help="only this endpoint's")
    log.add_argument("--event", metavar="ID", help="only this event's")
    log.add_argument("--status", choices=["pending", "delivered", "failed"], help="only in this status")
    log.add_argument("--limit", type=int, default=50, metavar="N", help="at most N deliveries (default: 50)")
    log.add_argument("--after", type=int, metavar="SEQ", help="start after this delivery's seq (paging)")
    add_json(log)
    log.set_defaults(handler=_deliveries)

    replay = sub.add_parser(
        "replay",
        help="deliver events again: one event, or those recorded in a time range (same webhook-id as before)",
    )
    replay.add_argument("event", nargs="?", metavar="EVENT_ID")
    replay.add_argument("--since", metavar="ISO", help="events recorded at this time or later (2026-01-31T12:00:00Z)")
    replay.add_argument("--until", metavar="ISO", help="events recorded before this time")
    replay.add_argument("--endpoint", metavar="ID", help="to this endpoint only (default: every subscribed one)")
    add_json(replay)
    replay.set_defaults(handler=_replay)

    deliver = sub.add_parser("deliver", help="run the deliverer in the foreground (Ctrl-C to stop)")
    deliver.add_argument("--once", action="store_true", help="attempt what is due now once, then exit")
    deliver.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="poll interval (default: 1)")
    deliver.add_argument(
        "--owner",
        metavar="NAME",
        help="the name its claims carry (default: a new one): a deliverer restarted under the same name takes "
        "its claims back at once; never give two running deliverers one name",
    )
    deliver.add_argument("--concurrency", type=int, default=8, metavar="N", help="attempts in flight (default: 8)")
    deliver.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per step (default: 10)")
    deliver.add_argument(
        "--claim-ttl",
        type=float,
        metavar="SECONDS",
        help="how long its claims last if it dies (default: long enough for a round of timeouts)",
    )
    add_json(deliver)
    deliver.set_defaults(handler=_deliver)
    hooks.set_defaults(handler=needs_subcommand(hooks))


COMMAND = Command("webhooks", HELP["webhooks"], configure, run_handler)


# ------------------------------------------------------------------ secrets


def _read_file(path: Path) -> str:
    where = f"--secret-file {path}"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ValidationError(where, "does not exist") from None
    except IsADirectoryError:
        raise ValidationError(where, "is a folder, expected a file") from None
    except OSError as exc:
        raise ValidationError(where, f"cannot be read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValidationError(where, "is not UTF-8 text") from None
    if len(data) > MAX_SECRET_FILE_BYTES or not text:
        raise ValidationError(where, "is empty" if not text else "is too large for a secret")
    return text


def _given_secret(args: argparse.Namespace) -> Secret | None:
    """The secret the options give (checked), or None when one is to be generated."""
    # Here, not at the top: the parser is built without them (cold start).
    from ..secret import Secret
    from ..webhooks.endpoints import checked_secret

    if args.secret_env is None and args.secret_file is None:
        if args.write_secret is None and not args.print_secret:
            raise UsageError(
                f"{args.prog_name}: give --secret-env VAR or --secret-file PATH, or keep the generated secret with "
                "--write-secret PATH (or --print-secret)"
            )
        return None
    if args.write_secret is not None or args.print_secret:
        raise UsageError(f"{args.prog_name}: --write-secret and --print-secret are for a generated secret")
    if args.secret_env is not None:
        value = os.environ.get(args.secret_env)
        if not value:
            raise ValidationError("--secret-env", f"environment variable {args.secret_env} is not set or empty")
        field = "--secret-env"
    else:
        value, field = _read_file(Path(args.secret_file)), "--secret-file"
    secret, _ = checked_secret(Secret(value), field)
    return secret


def _keep_secret(args: argparse.Namespace, secret: Secret) -> None:
    """Write a generated secret to ``--write-secret`` (a new 0600 file); refuse an existing file."""
    from .._files import write_private_file  # here, not at the top: only a generated secret needs it

    if args.write_secret is None:
        return
    path = Path(args.write_secret)
    try:
        written = write_private_file(path, secret.reveal().encode("ascii") + b"\n", exclusive=True)
    except OSError as exc:
        raise ValidationError("--write-secret", f"cannot write {path} ({exc.strerror or exc})") from None
    if not written:
        raise ValidationError("--write-secret", f"{path} exists already; give a new file (a secret is never replaced)")


def _unkeep(args: argparse.Namespace) -> None:
    if args.write_secret is not None:
        Path(args.write_secret).unlink(missing_ok=True)


def _with_secret(args: argparse.Namespace, secret: Secret | None, out: IO[str], data: dict[str, Any]) -> None:
    """Print ``data`` (with the generated secret when --print-secret) as JSON, or the secret alone."""
    if args.json:
        if secret is not None and args.print_secret:
            data["secret"] = secret.reveal()
        emit_json(out, data)
    elif secret is not None and args.print_secret:
        out.write(secret.reveal() + "\n")


# ------------------------------------------------------------------ endpoints


def _events(endpoint: WebhookEndpoint) -> str:
    return ", ".join(kind.value for kind in endpoint.event_types) or "every type"


def _state(endpoint: WebhookEndpoint) -> str:
    if endpoint.disabled:
        return f"disabled ({endpoint.disabled_reason})" if endpoint.disabled_reason else "disabled"
    return "enabled, rotating" if endpoint.rotating else "enabled"


def _summary(endpoint: WebhookEndpoint) -> str:
    private = ", private addresses allowed" if endpoint.allow_private else ""
    return f"{endpoint.id} -> {endpoint.url} (events: {_events(endpoint)}{private}; {_state(endpoint)})"


def _add(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    # Here, not at the top: the parser is built without the webhooks package (cold start).
    from ..webhooks import add_endpoint, check_event_types, endpoint_data, new_secret

    args.prog_name = "connector webhooks add"
    kinds = check_event_types(args.events, "--events") if args.events is not None else None
    given = _given_secret(args)
    secret = given if given is not None else new_secret()
    store = open_store(args)
    if given is None:
        _keep_secret(args, secret)
    try:
        endpoint, _ = add_endpoint(store, args.url, event_types=kinds, allow_private=args.allow_private, secret=secret)
    except BaseException as exc:
        if given is None:
            _unkeep(args)
        if isinstance(exc, ValidationError) and exc.field == "url":
            detail = exc.message.removeprefix("url: ").replace("allow_private", "--allow-private")
            raise ValidationError("URL", detail) from None
        raise
    _with_secret(args, None if given is not None else secret, out, endpoint_data(endpoint))
    note = sys.stderr if args.print_secret and not args.json else (None if args.json else out)
    if note is not None:
        note.write(f"Added webhook endpoint {_summary(endpoint)}\n")
        if given is None and args.write_secret is not None:
            note.write(f"Its signing secret is in {args.write_secret} (mode 0600); give it to the receiver.\n")
    return 0


def _list(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from ..webhooks import endpoint_data  # here, not at the top: as above (cold start)

    endpoints = open_store(args).list_webhook_endpoints()
    if args.json:
        emit_json(out, {"endpoints": [endpoint_data(e) for e in endpoints]})
        return 0
    if not endpoints:
        out.write("No webhook endpoints. Add one with 'connector webhooks add URL'.\n")
        return 0
    table(out, ("ID", "URL", "EVENTS", "STATE"), [(e.id, e.url, _events(e), _state(e)) for e in endpoints])
    return 0


def _show(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from ..webhooks import DeliveryStatus, endpoint_data  # here, not at the top: as above (cold start)

    store = open_store(args)
    endpoint = store.get_webhook_endpoint(args.endpoint)
    pending = store.list_webhook_deliveries(endpoint_id=endpoint.id, status=DeliveryStatus.PENDING, with_log=False)
    if args.json:
        emit_json(out, {**endpoint_data(endpoint), "pending_deliveries": len(pending)})
        return 0
    lines = [
        f"Endpoint {endpoint.id}",
        f"  URL:        {endpoint.url}",
        f"  Events:     {_events(endpoint)}",
        f"  Private:    {'allowed' if endpoint.allow_private else 'refused'}",
        f"  State:      {_state(endpoint)}",
        f"  Secrets:    {'2 (the current one and the previous one sign)' if endpoint.rotating else '1'}",
        f"  Pending:    {len(pending)} deliver{'y' if len(pending) == 1 else 'ies'}",
        f"  Created:    {endpoint.created_at}",
    ]
    out.write("\n".join(lines) + "\n")
    return 0


def _remove(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    open_store(args).delete_webhook_endpoint(args.endpoint)
    if args.json:
        emit_json(out, {"id": args.endpoint, "removed": True})
    else:
        out.write(f"Removed webhook endpoint {args.endpoint} with its secrets, deliveries and log.\n")
    return 0


def _changed(args: argparse.Namespace, out: IO[str], endpoint: WebhookEndpoint, said: str) -> int:
    from ..webhooks import endpoint_data  # here, not at the top: as above (cold start)

    if args.json:
        emit_json(out, endpoint_data(endpoint))
    else:
        out.write(f"{said}: {_summary(endpoint)}\n")
    return 0


def _enable(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    endpoint = open_store(args).set_webhook_endpoint_disabled(args.endpoint, False)
    return _changed(args, out, endpoint, "Enabled")


def _disable(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    reason = args.reason or "disabled by an operator"
    endpoint = open_store(args).set_webhook_endpoint_disabled(args.endpoint, True, reason)
    return _changed(args, out, endpoint, "Disabled")


def _drop_previous(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    endpoint = open_store(args).drop_previous_webhook_secret(args.endpoint)
    return _changed(args, out, endpoint, "Only the current secret signs now")


def _rotate(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from ..webhooks import endpoint_data, new_secret, rotate_secret  # here, not at the top: as above (cold start)

    args.prog_name = "connector webhooks rotate-secret"
    given = _given_secret(args)
    secret = given if given is not None else new_secret()
    store = open_store(args)
    store.get_webhook_endpoint(args.endpoint)  # an unknown id is said before a file is written
    if given is None:
        _keep_secret(args, secret)
    try:
        endpoint, _ = rotate_secret(store, args.endpoint, secret)
    except BaseException:
        if given is None:
            _unkeep(args)
        raise
    _with_secret(args, None if given is not None else secret, out, endpoint_data(endpoint))
    note = sys.stderr if args.print_secret and not args.json else (None if args.json else out)
    if note is not None:
        note.write(
            f"Rotating the secret of {endpoint.id}: the new secret and the previous one both sign every delivery. "
            f"Once the receiver holds the new one, run 'connector webhooks drop-previous-secret {endpoint.id}'.\n"
        )
        if given is None and args.write_secret is not None:
            note.write(f"The new secret is in {args.write_secret} (mode 0600).\n")
    return 0


# ------------------------------------------------------------ the outbox


def _attempt_line(attempt: Any) -> str:
    answer = f"{attempt.status_code}" if attempt.status_code is not None else "no answer"
    latency = f"{attempt.latency_ms:.0f} ms" if attempt.latency_ms is not None else "-"
    tail = f": {attempt.error}" if attempt.error else ""
    body = f" {attempt.response[:80]!r}" if attempt.response and not attempt.error else ""
    return f"#{attempt.attempt} {attempt.at} {answer} {latency}{body}{tail}"


def _deliveries(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    from ..webhooks import DeliveryStatus, delivery_data  # here, not at the top: as above (cold start)

    if args.limit < 1:
        raise UsageError("connector webhooks deliveries: --limit must be at least 1")
    found = open_store(args).list_webhook_deliveries(
        endpoint_id=args.endpoint,
        event_id=args.event,
        status=DeliveryStatus(args.status) if args.status else None,
        after=args.after,
        limit=args.limit,
    )
    if args.json:
        emit_json(out, {"deliveries": [delivery_data(d) for d in found]})
        return 0
    if not found:
        out.write("No deliveries.\n")
        return 0
    for delivery in found:
        _delivery_lines(out, delivery)
    return 0


def _delivery_lines(out: IO[str], delivery: Delivery) -> None:
    replay = ", replay" if delivery.replay else ""
    out.write(
        f"{delivery.seq} {delivery.id} {delivery.event_type.value} {delivery.event_id} -> {delivery.endpoint_id}: "
        f"{delivery.status.value}, {delivery.attempts} attempt(s){replay}\n"
    )
    for attempt in delivery.log:
        out.write(f"    {_attempt_line(attempt)}\n")


def _replay(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    if args.event is None and args.since is None and args.until is None:
        raise UsageError("connector webhooks replay: give an EVENT_ID, or --since ISO and/or --until ISO")
    if args.event is not None and (args.since is not None or args.until is not None):
        raise UsageError("connector webhooks replay: give an EVENT_ID or a time range (--since, --until), not both")
    try:
        made = open_store(args).replay_webhooks(
            event_id=args.event, since=args.since, until=args.until, endpoint_id=args.endpoint
        )
    except ValidationError as exc:
        names = {"since": "--since", "until": "--until", "endpoint_id": "--endpoint"}
        if exc.field in names:
            raise ValidationError(names[exc.field], exc.message.split(": ", 1)[-1], code=exc.code) from None
        raise
    if args.json:
        emit_json(out, {"deliveries": made})
    else:
        out.write(f"Queued {made} deliver{'y' if made == 1 else 'ies'} (the deliverer sends them).\n")
    return 0


def _report_data(report: DeliveryReport) -> dict[str, int]:
    import attrs  # here, not at the top: the parser is built without it (cold start)

    return attrs.asdict(report)


def _deliver(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    import signal  # here, not at the top: only a running deliverer needs them
    import threading

    from ..webhooks.delivery import DeliveryReport, WebhookDeliverer  # httpx: only the deliverer needs it

    if args.concurrency < 1 or args.timeout <= 0 or args.interval <= 0:
        raise UsageError("connector webhooks deliver: --concurrency, --timeout and --interval must be positive")
    store = open_store(args)
    deliverer = WebhookDeliverer(
        store, owner=args.owner, concurrency=args.concurrency, timeout=args.timeout, claim_ttl=args.claim_ttl
    )
    total = DeliveryReport()
    with deliverer:
        if args.once:
            limit = deliverer.default_limit()
            while True:
                report = deliverer.run_once(limit)
                total += report
                if report.claimed < limit:
                    break
            if args.json:
                emit_json(out, _report_data(total))
            else:
                out.write(_said(total) + "\n")
            return 0
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        sys.stderr.write(f"connector: delivering webhooks as {deliverer.owner} (Ctrl-C to stop)\n")
        sys.stderr.flush()
        try:
            deliverer.run(stop, args.interval, on_round=lambda report: _round(report, out))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    sys.stderr.write("connector: deliverer stopped\n")
    return 0


def _said(report: DeliveryReport) -> str:
    disabled = f", {report.disabled} endpoint(s) disabled (410 Gone)" if report.disabled else ""
    return (
        f"Attempted {report.claimed} deliver{'y' if report.claimed == 1 else 'ies'}: {report.delivered} delivered, "
        f"{report.retried} to retry, {report.failed} failed{disabled}."
    )


def _round(report: DeliveryReport, out: IO[str]) -> None:
    if report.claimed:
        out.write(_said(report) + "\n")
        out.flush()
