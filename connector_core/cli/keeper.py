"""``connector keeper``: refresh every connection before it expires, on a schedule (see
:mod:`connector_core.keeper` and ``docs/keeper.md``).

It runs until Ctrl-C or SIGTERM (exit 0: the refreshes in progress finish first; a second Ctrl-C
stops at once), printing one line per pass; ``--once`` makes one pass, for cron, and exits 0
however the refreshes went (1 when the store cannot be reached, or another keeper holds a
SQLite store). ``connector serve`` runs the same keeper in a thread (:func:`add_keeper_options`
gives it the same options, prefixed).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from ..registries import Command
from .context import open_connector
from .output import run_handler
from .parser import HELP

if TYPE_CHECKING:
    from ..keeper import Keeper, KeeperReport
    from ..plugins import Plugins

__all__ = ["COMMAND", "add_keeper_options", "keeper_from_args"]

#: The keeper's defaults, as the options show them (the library's, without importing it: cold start).
MARGIN = 300.0
INTERVAL = 30.0
CONCURRENCY = 8


def _number(minimum: float, unit: str, shown: str | None = None) -> Any:
    """An argparse type: a number of ``unit``, at least ``minimum`` (else argparse's one-line usage
    error, which names the option)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {unit}, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or value < minimum:
            raise argparse.ArgumentTypeError(f"expected at least {shown or f'{minimum:g} {unit}'}, got {text!r}")
        return value

    return parse


def _count() -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if not 1 <= value <= 256:
            raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 256, got {text!r}")
        return value

    return parse


def add_keeper_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The keeper's options (``--margin``...), named ``--PREFIXmargin`` (``--keeper-margin`` in serve);
    their values land on ``keeper_margin``, ``keeper_interval`` and so on whatever the prefix."""

    def add(name: str, **kwargs: Any) -> None:
        parser.add_argument(f"--{prefix}{name}", dest=f"keeper_{name.replace('-', '_')}", **kwargs)

    add(
        "margin",
        type=_number(0, "seconds"),
        default=MARGIN,
        metavar="SECONDS",
        help=f"refresh access tokens expiring within this long (default: {MARGIN:g})",
    )
    add(
        "interval",
        type=_number(0.01, "seconds"),
        default=INTERVAL,
        metavar="SECONDS",
        help=f"how long to wait between passes (default: {INTERVAL:g})",
    )
    add(
        "refresh-every",
        type=_number(1 / 60, "hours", "1/60 hours (a minute)"),
        metavar="HOURS",
        help="refresh every OAuth connection at least this often, whatever its expiry (for refresh tokens that "
        "die unused; default: what each provider declares)",
    )
    add(
        "test-every",
        type=_number(1 / 60, "hours", "1/60 hours (a minute)"),
        metavar="HOURS",
        help="run each connection's test this often (default: never)",
    )
    add(
        "concurrency",
        type=_count(),
        default=CONCURRENCY,
        metavar="N",
        help=f"refreshes at once (default: {CONCURRENCY})",
    )


def configure(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Refresh every connection before its access token expires (and before refresh tokens die unused), "
        "optionally test them, and record failing and recovered refreshes as events, until Ctrl-C or SIGTERM. "
        "One keeper per SQLite store; several share a PostgreSQL store. See docs/keeper.md."
    )
    p.add_argument("--once", action="store_true", help="make one pass and exit (for cron)")
    add_keeper_options(p)
    p.add_argument("--json", action="store_true", help="print each pass's report as one line of JSON")
    p.set_defaults(handler=_keeper)


COMMAND = Command("keeper", HELP["keeper"], configure, run_handler)


def keeper_from_args(
    args: argparse.Namespace, connector: Any, *, on_refresh: Callable[[str], None] | None = None
) -> Keeper:
    """The keeper the options (of :func:`add_keeper_options`) describe, over ``connector``;
    ``on_refresh`` hears each refresh's outcome (the service's metrics)."""
    from ..keeper import Keeper  # here, not at the top: the engine (cold start)

    hours = 3600.0
    return Keeper(
        connector,
        margin=args.keeper_margin,
        refresh_every=args.keeper_refresh_every * hours if args.keeper_refresh_every is not None else None,
        test_every=args.keeper_test_every * hours if args.keeper_test_every is not None else None,
        concurrency=args.keeper_concurrency,
        on_refresh=on_refresh,
    )


def report_data(report: KeeperReport) -> dict[str, Any]:
    """A pass's report as ``--json`` prints it."""
    return {
        "due": report.due,
        "refreshed": report.refreshed,
        "skipped": report.skipped,
        "transient": report.transient,
        "permanent": report.permanent,
        "tested": report.tested,
        "recovered": report.recovered,
        "seconds": round(report.elapsed, 3),
        "lag_seconds": round(report.lag, 3) if report.lag is not None else None,
        "failures": [{"connection": c, "error": e} for c, e in report.failures],
    }


def _keeper(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    import json  # here, not at the top: only the keeper's passes print it

    connector = open_connector(args, plugins)
    try:
        keeper = keeper_from_args(args, connector)

        def show(report: KeeperReport) -> None:
            if args.json:
                out.write(json.dumps(report_data(report), ensure_ascii=False) + "\n")
            else:
                out.write(f"connector keeper: {report.summary()}\n")
                for cid, error in report.failures:
                    out.write(f"  {cid}: {error}\n")
            out.flush()

        if args.once:
            with _logging_to_stderr():
                show(keeper.run_once())
            return 0
        stop = threading.Event()
        with _stopping(stop), _logging_to_stderr():
            sys.stderr.write(
                f"connector: keeper {keeper.owner} keeping the store {connector.store.path} (margin "
                f"{keeper.margin:g} s, a pass every {args.keeper_interval:g} s; Ctrl-C to stop)\n"
            )
            sys.stderr.flush()
            keeper.run(stop, args.keeper_interval, on_report=show)
        sys.stderr.write("connector: keeper stopped\n")
        return 0
    finally:
        connector.close()
        connector.store.close()


@contextlib.contextmanager
def _logging_to_stderr() -> Iterator[None]:
    """The keeper's log lines (a failing refresh, a recovery) on standard error while the command runs."""
    import logging  # here, not at the top: only the keeper and serve log (cold start)

    logger = logging.getLogger("connector_core.keeper")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("connector: %(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@contextlib.contextmanager
def _stopping(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (the pass in progress finishes its refreshes); a second one
    stops at once (KeyboardInterrupt). The previous handlers come back at the end."""
    import signal  # here, not at the top: only a running keeper needs it

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        sys.stderr.write("connector: keeper stopping after the refreshes in progress (again to stop now)\n")

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
