"""The keeper: keeps every connection alive without anyone asking.

Left alone, a connection is refreshed only when a request needs a fresh token, so refresh tokens
that die of disuse die silently, and a provider outage is found by the next caller. A
:class:`Keeper` goes through the store on a schedule instead (``connector keeper``, or inside
``connector serve``):

* **Before expiry.** Every connected connection holding OAuth tokens whose access token expires
  within ``margin`` seconds is refreshed. Connections holding credentials (a service user, an API
  key) have nothing to refresh and are never claimed for it.
* **Against disuse.** Where a provider declares that its refresh tokens die unused
  (:attr:`~connector_core.models.OAuth2AuthorizationCode.refresh_idle_limit`), a connection is
  refreshed once half that time has passed since its last refresh; ``refresh_every`` (seconds)
  sets the interval for every provider instead, for one whose limit is known to the operator only.
* **Tests.** With ``test_every`` (seconds), the provider's connection test runs on each connection
  the keeper has not tested for that long.

Work is shared through the store: :meth:`~connector_core.store.StoreLike.claim_due` claims a
batch of due connections for this keeper for a while (on PostgreSQL with ``FOR UPDATE SKIP
LOCKED``, so several keepers split the work), and each refresh goes through the engine's
single-flight refresh lease, only while the tokens are still the version claimed: a connection is
refreshed once per expiry even when claims overlap, or when a request refreshed it first. On a
SQLite store one keeper runs at a time: the keeper's lock (a heartbeat) refuses a second.

Failures are classified. :class:`~connector_core.errors.ReconnectRequired` (``invalid_grant``,
a revoked grant) is permanent: the engine has marked the connection ``needs_reconnect``, with its
event; the keeper counts it and forgets it. Anything else (the provider down, a timeout, a 5xx, a
wrong client secret) is retried with exponential backoff and jitter; the first failure of a
degradation records a ``connection.refresh_failing`` event and the next refresh that works (by
this keeper or any other refresher) a ``connection.recovered`` one, each in the transaction of
the keeper's own record of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._transport import Flow, HttpResponse, run_sync
from .connection import ConnectionStatus
from .errors import ConnectorError, ReconnectRequired, StoreError, UnknownNameError, ValidationError
from .models import OAuth2AuthorizationCode
from .oauth import HttpRequest
from .store.contract import KeeperClaim, KeeperDue

if TYPE_CHECKING:
    from .connector import Connector
    from .store.contract import KeeperLock

__all__ = [
    "CLAIM_TTL",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_INTERVAL",
    "DEFAULT_MARGIN",
    "LOCK_TTL",
    "Keeper",
    "KeeperReport",
    "Outcome",
]

#: Refresh this long before the access token expires (seconds).
DEFAULT_MARGIN = 300.0
#: How long :meth:`Keeper.run` waits between runs (seconds).
DEFAULT_INTERVAL = 30.0
#: How many connections one keeper refreshes at once.
DEFAULT_CONCURRENCY = 8
#: How long a claim holds a connection for one keeper (seconds): a keeper that dies lets go then.
CLAIM_TTL = 120.0
#: How long the keeper's lock outlives its last heartbeat (seconds); it beats three times as often.
LOCK_TTL = 30.0
#: The first retry of a failing refresh comes after about this long, each next one after twice
#: as long (with jitter: between half and all of it), at most ``RETRY_MAX``.
RETRY_BASE = 30.0
RETRY_MAX = 1800.0
#: A token that lives less than twice the margin is refreshed when this fraction of its lifetime is left.
SHORT_LIFETIME_FRACTION = 0.5
#: What one refresh came to, as :class:`Keeper`'s ``on_refresh`` is told.
Outcome = Literal["ok", "transient", "permanent"]

log = logging.getLogger("connector_core.keeper")


@attrs.frozen
class KeeperReport:
    """What one :meth:`Keeper.run_once` did."""

    #: Connections claimed because their refresh was due.
    due: int = 0
    refreshed: int = 0
    #: Due, but another refresher refreshed them first (or they were no longer connected).
    skipped: int = 0
    #: Refreshes that failed for a reason that may pass; retried later with backoff.
    transient: int = 0
    #: Connections found to need reconnecting (marked ``needs_reconnect`` by the engine).
    permanent: int = 0
    #: Connection tests run.
    tested: int = 0
    #: Connections whose refresh was failing and that refreshed again.
    recovered: int = 0
    #: Seconds the run took.
    elapsed: float = 0.0
    #: The longest a refreshed connection waited between becoming due and being refreshed (seconds);
    #: None when none was refreshed.
    lag: float | None = None
    #: ``(connection id, one-line error)`` of each failed refresh or test.
    failures: tuple[tuple[str, str], ...] = ()

    def summary(self) -> str:
        """The counts on one line: ``due 3, refreshed 2, skipped 1, ... in 0.41 s``."""
        counts = ", ".join(
            f"{name} {getattr(self, name)}"
            for name in ("due", "refreshed", "skipped", "transient", "permanent", "tested", "recovered")
        )
        lag = f", lag {self.lag:.1f} s" if self.lag is not None else ""
        return f"{counts} in {self.elapsed:.2f} s{lag}"


@attrs.define
class _Tally:
    """A run's counts, added to from the keeper's threads."""

    counts: dict[str, int] = attrs.Factory(dict)
    failures: list[tuple[str, str]] = attrs.Factory(list)
    lag: float | None = None
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def add(self, name: str, *, failure: tuple[str, str] | None = None, lag: float | None = None) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1
            if failure is not None:
                self.failures.append(failure)
            if lag is not None:
                self.lag = lag if self.lag is None else max(self.lag, lag)

    def report(self, elapsed: float) -> KeeperReport:
        with self.lock:
            return KeeperReport(**self.counts, elapsed=elapsed, lag=self.lag, failures=tuple(self.failures))


def _seconds(name: str, value: Any, *, minimum: float) -> float:
    """A duration option checked: a finite number of seconds, at least ``minimum``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != value
        or value
        in (
            float("inf"),
            float("-inf"),
        )
    ):
        raise ValidationError(name, f"expected a number of seconds, got {value!r}")
    if value < minimum:
        raise ValidationError(name, f"expected at least {minimum:g} seconds, got {value:g}")
    return float(value)


def _epoch(text: str) -> float:
    """A stored ISO 8601 time as epoch seconds (0 for one that cannot be read: the oldest)."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return 0.0


def _watched(flow: Flow[Any], statuses: list[int]) -> Flow[Any]:
    """``flow`` as it is, noting the status of each response it is given (to tell a refresh this
    keeper made from one it found made by another refresher)."""
    reply: HttpResponse | None = None
    while True:
        try:
            step = flow.send(reply)
        except StopIteration as done:
            return done.value
        reply = yield step
        if isinstance(step, HttpRequest) and reply is not None:
            statuses.append(reply.status)


class Keeper:
    """Refreshes the store's connections before they expire (and before their refresh tokens die
    of disuse), optionally tests them, and classifies what fails (see the module doc).

    ``connector``: the engine over the store to keep. ``margin``: refresh access tokens expiring
    within this many seconds. ``refresh_every``: refresh every OAuth connection at least this often
    (seconds), overriding what providers declare. ``test_every``: run each connection's test this
    often (seconds); None: never. ``concurrency``: refreshes at once. ``owner``: this keeper's name
    in the store (default: host, pid and a random part). ``clock``: epoch seconds now (for tests).
    ``on_refresh``: told ``"ok"``, ``"transient"`` or ``"permanent"`` after each refresh it made.

    Use :meth:`run` for a loop, :meth:`run_once` for one pass (``--once``, cron). Either holds the
    keeper's lock in the store while it runs (``with keeper:`` holds it across several passes); on
    SQLite a second keeper is refused with a :class:`~connector_core.errors.StoreError` coded
    ``keeper_running``.
    """

    def __init__(
        self,
        connector: Connector,
        *,
        margin: float = DEFAULT_MARGIN,
        refresh_every: float | None = None,
        test_every: float | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        on_refresh: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.connector = connector
        self.margin = _seconds("margin", margin, minimum=0.0)
        self.refresh_every = None if refresh_every is None else _seconds("refresh_every", refresh_every, minimum=60.0)
        self.test_every = None if test_every is None else _seconds("test_every", test_every, minimum=60.0)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 256:
            raise ValidationError("concurrency", f"expected a whole number from 1 to 256, got {concurrency!r}")
        self.concurrency = concurrency
        if owner is not None and (not isinstance(owner, str) or not owner.strip() or len(owner) > 200):
            raise ValidationError("owner", f"expected a name of 1 to 200 characters, got {owner!r}")
        self.owner = owner or f"keeper-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._clock = clock
        self._on_refresh = on_refresh
        #: How many connections one claim takes: a few rounds of the threads' work.
        self._batch = max(50, concurrency * 8)
        self._entered = 0
        self._enter_lock = threading.Lock()
        self._lock_cm: contextlib.AbstractContextManager[KeeperLock] | None = None
        self._beat_stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._lost = threading.Event()

    def __repr__(self) -> str:
        return f"<Keeper {self.owner} margin={self.margin:g}s store={self.connector.store.path}>"

    # ------------------------------------------------------------------ the lock

    def __enter__(self) -> Keeper:
        """Take the keeper's lock in the store (refused on SQLite while another keeper runs) and keep
        its heartbeat going until the (outermost) ``with`` block ends."""
        with self._enter_lock:
            if self._entered == 0:
                cm = self.connector.store.keeper_lock(self.owner, ttl=LOCK_TTL)
                lock = cm.__enter__()
                self._lock_cm = cm
                self._lost.clear()
                self._beat_stop.clear()
                self._beat = threading.Thread(
                    target=self._heartbeat, args=(lock,), name=f"keeper-heartbeat-{self.owner}", daemon=True
                )
                self._beat.start()
            self._entered += 1
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._enter_lock:
            self._entered -= 1
            if self._entered > 0:
                return
            self._beat_stop.set()
            if self._beat is not None:
                self._beat.join(timeout=LOCK_TTL)
                self._beat = None
            cm, self._lock_cm = self._lock_cm, None
        if cm is not None:
            cm.__exit__(exc_type, exc, tb)

    def _heartbeat(self, lock: KeeperLock) -> None:
        while not self._beat_stop.wait(LOCK_TTL / 3):
            try:
                if not lock.renew():
                    self._lost.set()
                    log.error("keeper %s: its lock lapsed and another keeper holds it now; stopping", self.owner)
                    return
            except ConnectorError as exc:  # the store is unreachable for now: beat again soon
                log.warning("keeper %s: could not renew its lock: %s", self.owner, exc.message)

    def _check_lock(self) -> None:
        if self._lost.is_set():
            raise StoreError(
                f"keeper {self.owner}: its lock in the store lapsed (no heartbeat for {LOCK_TTL:g} s) and another "
                "keeper took it; this one stopped",
                code="keeper_lost",
            )

    # ------------------------------------------------------------------- running

    def run(
        self,
        stop: threading.Event,
        interval: float = DEFAULT_INTERVAL,
        *,
        on_report: Callable[[KeeperReport], None] | None = None,
    ) -> None:
        """Run a pass every ``interval`` seconds until ``stop`` is set (a pass in progress stops
        claiming more work then, and finishes what it claimed); ``on_report`` is given each pass's
        report. While the store is unreachable, each pass is logged as failed and the next one tries
        again; losing the keeper's lock to another keeper ends the loop with a StoreError."""
        wait = _seconds("interval", interval, minimum=0.01)
        with self:
            while not stop.is_set():
                try:
                    report = self._run_once(stop)
                except StoreError as exc:
                    if self._lost.is_set():
                        raise
                    log.warning("keeper %s: this pass stopped: %s; trying again in %g s", self.owner, exc.message, wait)
                else:
                    if on_report is not None:
                        on_report(report)
                stop.wait(wait)

    def run_once(self) -> KeeperReport:
        """One pass: claim what is due, batch by batch, refresh (and test) it, until nothing is left."""
        with self:
            return self._run_once(None)

    def _run_once(self, stop: threading.Event | None) -> KeeperReport:
        self._check_lock()
        started = time.monotonic()
        tally = _Tally()
        rules = self._idle_rules()
        seen: set[str] = set()
        store = self.connector.store
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="keeper") as pool:
                while stop is None or not stop.is_set():
                    self._check_lock()
                    now = self._clock()
                    due = KeeperDue(
                        expiring_before=now + self.margin,
                        idle=tuple((provider, auth, now - every) for (provider, auth), every in rules.items()),
                        tested_before=now - self.test_every if self.test_every is not None else None,
                    )
                    claims = store.claim_due(due, owner=self.owner, ttl=CLAIM_TTL, now=now, limit=self._batch)
                    fresh = [c for c in claims if c.connection_id not in seen]
                    if not fresh:
                        break
                    seen.update(c.connection_id for c in fresh)
                    for future in [pool.submit(self._keep, claim, rules, tally) for claim in fresh]:
                        future.result()
        finally:
            with contextlib.suppress(StoreError):  # unreachable: the claims lapse by themselves
                store.release_claims(self.owner)
        return tally.report(time.monotonic() - started)

    def _idle_rules(self) -> dict[tuple[str, str], float]:
        """(provider, auth type) -> how often its connections are refreshed whatever their expiry:
        ``refresh_every``, else half the refresh tokens' declared idle limit. Only the authorization
        code grant has refresh tokens to die."""
        rules: dict[tuple[str, str], float] = {}
        for declaration in self.connector.plugins.declarations():
            for auth in declaration.auth_types:
                if not isinstance(auth, OAuth2AuthorizationCode):
                    continue
                every = self.refresh_every
                if every is None and auth.refresh_idle_limit is not None:
                    every = auth.refresh_idle_limit / 2
                if every is not None:
                    rules[(declaration.key, auth.key)] = every
        return rules

    # ---------------------------------------------------------- one connection

    def _keep(self, claim: KeeperClaim, rules: dict[tuple[str, str], float], tally: _Tally) -> None:
        now = self._clock()
        state = claim.state
        due_at = self._refresh_due_at(claim, rules, now)
        test_due = self.test_every is not None and _epoch(state.tested_at or claim.created_at) < now - self.test_every
        recovered_elsewhere = state.degraded_since is not None and claim.token_version != state.failed_version
        if due_at is None and (state.degraded_since is not None or not test_due) and not recovered_elsewhere:
            return  # claimed by the store's coarser rule (a short-lived token), or failing: its retry decides
        if due_at is not None:
            tally.add("due")
            if not self._refresh(claim, due_at, tally):
                return
        tested = None
        if test_due:
            if not self._test(claim.connection_id, tally):
                return
            tested = self._clock()
        # Healthy (refreshed here, or elsewhere since its refresh last failed): its degradation, if any, ends.
        if self.connector.store.keeper_succeeded(claim.connection_id, owner=self.owner, tested_at=tested):
            tally.add("recovered")
            log.info("keeper: connection %s: refreshing works again", claim.connection_id)

    def _refresh_due_at(self, claim: KeeperClaim, rules: dict[tuple[str, str], float], now: float) -> float | None:
        """When the claimed connection's refresh became due; None when it is not (a test, or a
        recovery seen elsewhere, brought it)."""
        times = []
        if claim.expires_at is not None:
            # A token living less than twice the margin is refreshed with half its life left, not on every pass.
            lifetime = claim.expires_at - _epoch(claim.last_refreshed)
            margin = min(self.margin, lifetime * SHORT_LIFETIME_FRACTION) if lifetime > 0 else self.margin
            if claim.expires_at - margin <= now:
                times.append(claim.expires_at - margin)
        every = rules.get((claim.provider, claim.auth_type))
        if every is not None and _epoch(claim.last_refreshed) + every <= now:
            times.append(_epoch(claim.last_refreshed) + every)
        return min(times) if times else None

    def _refresh(self, claim: KeeperClaim, due_at: float, tally: _Tally) -> bool:
        """Refresh the claimed connection while its tokens are still the version claimed; whether it
        is healthy afterwards (refreshed, here or by another refresher)."""
        cid = claim.connection_id
        connector = self.connector
        statuses: list[int] = []
        try:
            # The engine's single-flight refresh (its lease, the re-read under it, the one transaction
            # saving the rotated tokens), told to refresh only while the tokens are the version claimed:
            # the keeper's margin and disuse rules, not the engine's own leeway, decide what is due.
            flow = _watched(connector._refresh_flow(cid, claim.token_version), statuses)
            conn = run_sync(flow, connector.client, connector.deadline)
        except ReconnectRequired as exc:
            tally.add("permanent", failure=(cid, exc.message))
            self.connector.store.keeper_forget(cid)
            self._told("permanent")
            log.warning("keeper: %s", exc.message)  # it names the connection
            return False
        except ConnectorError as exc:
            if not self._connected(cid):  # revoked or deleted meanwhile: not the keeper's any more
                tally.add("skipped")
                with contextlib.suppress(UnknownNameError):
                    self.connector.store.keeper_forget(cid)
                return False
            self._failed(claim, exc, tally)
            return False
        if statuses and statuses[-1] == 200 and conn.token_version != claim.token_version:
            tally.add("refreshed", lag=max(self._clock() - due_at, 0.0))
            self._told("ok")
        else:
            tally.add("skipped")
        return True

    def _failed(self, claim: KeeperClaim, exc: ConnectorError, tally: _Tally) -> None:
        """A refresh that failed for a reason that may pass: try again after the backoff."""
        attempt = claim.state.failures + 1
        delay = min(RETRY_MAX, RETRY_BASE * 2 ** min(attempt - 1, 30)) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after > delay:
            delay = min(float(retry_after), RETRY_MAX)
        next_at = self._clock() + delay
        state = self.connector.store.keeper_failed(
            claim.connection_id,
            owner=self.owner,
            error=exc.message,
            next_attempt_at=next_at,
            token_version=claim.token_version,
        )
        tally.add("transient", failure=(claim.connection_id, exc.message))
        self._told("transient")
        attempts = state.failures if state is not None else attempt
        log.warning(
            "keeper: connection %s: refresh failing (attempt %d, next in %.0f s): %s",
            claim.connection_id,
            attempts,
            delay,
            exc.message,
        )

    def _test(self, cid: str, tally: _Tally) -> bool:
        """Run the connection's test; whether the connection is still the keeper's to keep."""
        tally.add("tested")
        try:
            result = self.connector.test(cid)
        except ReconnectRequired as exc:
            tally.add("permanent", failure=(cid, exc.message))
            self.connector.store.keeper_forget(cid)
            log.warning("keeper: test: %s", exc.message)  # it names the connection
            return False
        except ConnectorError as exc:
            if not self._connected(cid):
                return False
            with tally.lock:
                tally.failures.append((cid, exc.message))
            log.warning("keeper: connection %s: test failed: %s", cid, exc.message)
            return True
        if not result.ok:
            with tally.lock:
                tally.failures.append((cid, result.detail))
            log.warning("keeper: connection %s: test failed: %s", cid, result.detail)
        return True

    def _connected(self, cid: str) -> bool:
        try:
            return self.connector.store.get_connection(cid).status is ConnectionStatus.CONNECTED
        except UnknownNameError:
            return False

    def _told(self, outcome: Outcome) -> None:
        if self._on_refresh is None:
            return
        try:
            self._on_refresh(outcome)
        except Exception as exc:  # noqa: BLE001 - a metrics callback never stops the keeper
            log.warning("keeper: on_refresh failed: %s: %s", type(exc).__name__, exc)
