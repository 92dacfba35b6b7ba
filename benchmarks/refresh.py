"""Bulk refresh throughput, the emulator in its own process: ``python benchmarks/refresh.py [--quick]``.

Four clients post the same refresh requests (``grant_type=refresh_token``, client_secret_basic)
to the same emulator, over the same connections, one refresh of each a run:

* the server's capacity: the fastest minimal keep-alive client we could write (asyncio
  protocols over raw sockets, a hand-written HTTP/1.1 request, the response's length read
  from its header), at the concurrency that serves it best;
* a bare async httpx loop (one ``AsyncClient``, a semaphore), at concurrencies 1 to 64, the
  best one kept;
* authlib's ``AsyncOAuth2Client.refresh_token`` likewise (``pip install -r
  benchmarks/requirements.txt``; without authlib that line is skipped);
* ``refresh_all`` at its default concurrency, which also takes each connection's lease,
  decrypts its refresh token, and durably saves (fsync'd) every rotation before it returns.

All four refresh the same connections, one refresh of each a run. The yardsticks keep the
rotated tokens in memory for their next run and persist nothing; before ``refresh_all`` runs,
their latest tokens are saved in the store (outside any timing), and read back after.
``refresh_all``'s refresh count comes from the emulator's statistics (exactly one token call per
connection). Each yardstick's two best concurrencies from one sweep then run beside
``refresh_all``, run by run (the faster of the two counting), and the median of the per-run
ratios is reported, with each client's CPU time a refresh (this process, all its threads),
steadier than its rate on a busy machine.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from common import EmulatorProcess, emulator_profile, heading, row

#: The targets of issue 19.
TARGET_OF_HTTPX = 0.90
TARGET_OF_AUTHLIB = 1.5
HTTPX_CONCURRENCIES = (1, 2, 4, 8, 16, 32, 64)
AUTHLIB_CONCURRENCIES = (1, 4, 8, 16, 32)
MINIMAL_CONCURRENCIES = (4, 8, 16, 32)


class Timed:
    """A run's rate (``count`` over its wall time) and this process's CPU time (all its threads)
    per item, in microseconds: the CPU figure is steadier than the rate on a busy machine."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.rate = self.cpu = 0.0

    @staticmethod
    def _cpu() -> float:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> Timed:
        self._started, self._cpu0 = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.rate = self.count / (time.perf_counter() - self._started)
        self.cpu = (self._cpu() - self._cpu0) / self.count * 1e6


class Chain:
    """The connections the yardsticks refresh: the latest tokens of each (they rotate every
    refresh), kept in memory between yardstick runs and handed to and from the store around
    ``refresh_all``'s, so that every client refreshes the same connections."""

    def __init__(self, store: Any, ids: Sequence[str], token_url: str, client_id: str, client_secret: str) -> None:
        self.store = store
        self.ids = list(ids)
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        #: (access token, refresh token) of each connection, or None while the store has the latest.
        self.tokens: list[tuple[str, str]] | None = None
        #: The last run's CPU time per refresh (microseconds).
        self.cpu = 0.0

    def refresh_tokens(self) -> list[str]:
        if self.tokens is None:
            found = [self.store.get_tokens(cid)[1:] for cid in self.ids]
            self.tokens = [(access.reveal(), refresh.reveal()) for access, refresh in found]
        return [refresh for _, refresh in self.tokens]

    def run(self, refresh: Callable[[Chain, int], Any], concurrency: int) -> float:
        """Refresh every connection once with a yardstick; its rate in refreshes a second."""
        self.refresh_tokens()
        with Timed(len(self.ids)) as timed:
            new = asyncio.run(refresh(self, concurrency))
        if len(new) != len(self.ids) or not all(a and r for a, r in new):
            raise RuntimeError("a yardstick lost a refresh")
        self.tokens = list(new)
        self.cpu = timed.cpu
        return timed.rate

    def hand_over(self) -> None:
        """Save the yardsticks' latest tokens in the store (through its leases, one transaction)."""
        from connector_core.oauth import TokenSet
        from connector_core.secret import Secret

        if self.tokens is None:
            return
        with self.store.batched():
            for cid, (access, refresh) in zip(self.ids, self.tokens, strict=True):
                conn = self.store.get_connection(cid)
                with self.store.refresh_lease(cid, 30.0) as lease:
                    tokens = TokenSet(Secret(access), "Bearer", Secret(refresh), expires_at=time.time() + 3600)
                    lease.save(conn.token_version, tokens, conn.granted_scopes)
        self.tokens = None


# ------------------------------------------------------------------ yardsticks


async def minimal(chain: Chain, concurrency: int) -> list[tuple[str, str]]:
    """The server's capacity: ``concurrency`` keep-alive connections, raw asyncio protocols."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(chain.token_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    basic = base64.b64encode(f"{quote(chain.client_id)}:{quote(chain.client_secret)}".encode()).decode()
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Basic {basic}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\nContent-Length: "
    ).encode()
    todo = list(enumerate(chain.refresh_tokens()))
    new: list[tuple[str, str]] = [("", "")] * len(todo)
    left = [len(todo)]
    finished = loop.create_future()

    class Client(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""
            self.index = -1
            self.next()

        def next(self) -> None:
            if not todo:
                self.transport.close()
                return
            self.index, token = todo.pop()
            body = b"grant_type=refresh_token&refresh_token=" + quote(token, safe="").encode()
            self.transport.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            header = self.buffer[:end].lower()
            at = header.find(b"content-length:")
            length = int(header[at + 15 : header.find(b"\r\n", at) if header.find(b"\r\n", at) > 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            if not header.startswith(b"http/1.1 200"):
                finished.set_exception(RuntimeError(f"minimal client: {self.buffer[:40]!r}"))
                return
            body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
            data = json.loads(body)
            new[self.index] = (data["access_token"], data["refresh_token"])
            left[0] -= 1
            if not left[0]:
                finished.set_result(None)
            self.next()

    for _ in range(min(concurrency, len(todo))):
        await loop.create_connection(Client, host, port)
    await finished
    return new


def _limits(concurrency: int) -> Any:
    import httpx

    return httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)


async def bare_httpx(chain: Chain, concurrency: int) -> list[tuple[str, str]]:
    """One AsyncClient (a pool sized to the concurrency), a semaphore, gather."""
    import httpx

    semaphore = asyncio.Semaphore(concurrency)
    auth = (chain.client_id, chain.client_secret)
    async with httpx.AsyncClient(trust_env=False, limits=_limits(concurrency)) as client:

        async def one(token: str) -> tuple[str, str]:
            async with semaphore:
                answer = await client.post(
                    chain.token_url, data={"grant_type": "refresh_token", "refresh_token": token}, auth=auth
                )
                answer.raise_for_status()
                data = answer.json()
                return data["access_token"], data["refresh_token"]

        return await asyncio.gather(*(one(t) for t in chain.refresh_tokens()))


async def authlib_client(chain: Chain, concurrency: int) -> list[tuple[str, str]]:
    """authlib's AsyncOAuth2Client (one, shared), its refresh_token(), a semaphore, gather."""
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    semaphore = asyncio.Semaphore(concurrency)
    async with AsyncOAuth2Client(
        chain.client_id,
        chain.client_secret,
        token_endpoint_auth_method="client_secret_basic",
        trust_env=False,
        limits=_limits(concurrency),
    ) as client:

        async def one(token: str) -> tuple[str, str]:
            async with semaphore:
                answer = await client.refresh_token(chain.token_url, refresh_token=token)
                return answer["access_token"], answer["refresh_token"]

        return await asyncio.gather(*(one(t) for t in chain.refresh_tokens()))


def _authlib_missing() -> bool:
    try:
        import authlib.integrations.httpx_client  # noqa: F401
    except ImportError:
        return True
    return False


def _best(chain: Chain, refresh: Callable[[Chain, int], Any], concurrencies: Sequence[int]) -> tuple[int, ...]:
    """The two concurrencies at which ``refresh`` ran fastest in one sweep, fastest first (one
    sweep on a busy machine may crown the wrong one: the paired runs try both); no sweep for two."""
    if len(concurrencies) <= 2:
        return tuple(concurrencies)
    rates = {c: chain.run(refresh, c) for c in concurrencies}
    return tuple(sorted(rates, key=lambda c: -rates[c])[:2])


# ---------------------------------------------------------------------- set-up


def issue_tokens(emu: EmulatorProcess, scopes: Sequence[str], count: int) -> list[tuple[float, bytes]]:
    """``count`` grants, each of a new emulated company: (when sent, the token response's body)
    of each authorization code exchange, the flow driven by hand (PKCE, consent by header),
    eight at a time, nothing stored."""
    import hashlib
    import secrets

    import httpx
    from common import REDIRECT

    from connector_core.emulator import COMPANY_HEADER, CONSENT_HEADER

    endpoints = emu.endpoints()
    auth = (emu.client_id(), emu.client_secret())
    companies = [emu.add_company() for _ in range(count)]

    async def issue() -> list[tuple[float, bytes]]:
        semaphore = asyncio.Semaphore(8)
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:

            async def one(company: str) -> tuple[float, bytes]:
                async with semaphore:
                    verifier = secrets.token_urlsafe(48)
                    digest = hashlib.sha256(verifier.encode()).digest()
                    answer = await client.get(
                        endpoints.authorize_url,
                        params={
                            "response_type": "code",
                            "client_id": auth[0],
                            "redirect_uri": REDIRECT,
                            "scope": " ".join(scopes),
                            "state": secrets.token_urlsafe(16),
                            "code_challenge": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
                            "code_challenge_method": "S256",
                        },
                        headers={CONSENT_HEADER: "allow", COMPANY_HEADER: company},
                    )
                    code = httpx.URL(answer.headers["location"]).params["code"]
                    sent_at = time.time()
                    answer = await client.post(
                        endpoints.token_url,
                        data={
                            "grant_type": "authorization_code",
                            "code": code,
                            "redirect_uri": REDIRECT,
                            "code_verifier": verifier,
                        },
                        auth=auth,
                    )
                    answer.raise_for_status()
                    return sent_at, answer.content

            return await asyncio.gather(*(one(c) for c in companies))

    return asyncio.run(issue())


def stored_connections(store: Any, profile: Any, issued: Sequence[tuple[float, bytes]]) -> list[str]:
    """A connection in ``store`` for each issued grant (as ``Connector.complete`` saves one),
    all in one transaction."""
    from connector_core.oauth import parse_token_response

    ids = []
    with store.batched():
        for sent_at, body in issued:
            tokens = parse_token_response(200, {}, body, sent_at=sent_at)
            granted = tokens.scopes if tokens.scopes is not None else profile.scopes
            saved = store.save_connection(
                profile, tokens, requested=profile.scopes, granted=granted, identity={}, provider_initiated=False
            )
            ids.append(saved.id)
    return ids


# ------------------------------------------------------------------------ bench


def bench(quick: bool) -> None:
    from connector_core import Connector, Store, load_plugins, refresh_all
    from connector_core.bulk import DEFAULT_CONCURRENCY

    # Quick: no sweep, the concurrencies that have served best here (both tried in every pair).
    count = 350 if quick else 1500
    pairs = 3 if quick else 7
    httpx_cs = (1, 4) if quick else HTTPX_CONCURRENCIES
    authlib_cs = (1, 4) if quick else AUTHLIB_CONCURRENCIES
    minimal_cs = (8,) if quick else MINIMAL_CONCURRENCIES
    heading(
        f"bulk refresh ({count} connections a run, the emulator in its own process; targets: refresh_all >= "
        f"{TARGET_OF_HTTPX:.0%} of the best bare httpx loop and >= {TARGET_OF_AUTHLIB:g}x the best authlib)"
    )
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp, EmulatorProcess() as emu:
        store = Store.open(Path(tmp) / "home", env={"CONNECTOR_CORE_KEY_FILE": str(Path(tmp) / "keys.json")})
        profile = emulator_profile(store, emu)
        connector = Connector(store, load_plugins())
        started = time.perf_counter()
        ids = stored_connections(store, profile, issue_tokens(emu, profile.scopes, count))
        chain = Chain(store, ids, emu.endpoints().token_url, emu.client_id(), emu.client_secret())
        row(f"set-up: {count} grants, stored", f"{time.perf_counter() - started:.1f} s")
        has_authlib = not _authlib_missing()

        def ours() -> tuple[float, float, Any, int]:
            chain.hand_over()
            before = emu.stats()["token_requests"].get("refresh_token", 0)
            with Timed(count) as timed:
                report = refresh_all(connector, force=True)
            calls = emu.stats()["token_requests"].get("refresh_token", 0) - before
            return timed.rate, timed.cpu, report, calls

        # Each yardstick's two best concurrencies, from one sweep; then, run by run beside
        # refresh_all, each at both, the faster counting.
        best = {
            "capacity": _best(chain, minimal, minimal_cs)[:1] if len(minimal_cs) > 1 else tuple(minimal_cs),
            "httpx": _best(chain, bare_httpx, httpx_cs),
            **({"authlib": _best(chain, authlib_client, authlib_cs)} if has_authlib else {}),
        }
        clients = {"capacity": minimal, "httpx": bare_httpx, "authlib": authlib_client}
        rates: dict[str, list[float]] = {"capacity": [], "httpx": [], "authlib": [], "ours": []}
        cpus: dict[str, list[float]] = {name: [] for name in rates}
        checks: list[tuple[int, int, int]] = []
        for _ in range(pairs):
            for name, concurrencies in best.items():
                runs = [(chain.run(clients[name], c), chain.cpu, c) for c in concurrencies]
                rate, cpu, _ = max(runs)
                rates[name].append(rate)
                cpus[name].append(cpu)
            rate, cpu, report, calls = ours()
            rates["ours"].append(rate)
            cpus["ours"].append(cpu)
            checks.append((report.refreshed, len(report.failed), calls))

        def ratios(base: str) -> list[float]:
            return [a / b for a, b in zip(rates["ours"], rates[base], strict=True)]

        med = {name: statistics.median(values) for name, values in rates.items() if values}
        at = {name: "/".join(str(c) for c in best[name]) for name in best}  # the concurrencies tried
        cpu = {name: f"; {statistics.median(values):.0f} us CPU a refresh" for name, values in cpus.items() if values}
        row(
            "server capacity: minimal keep-alive client",
            f"{med['capacity']:.0f} /s",
            f"raw asyncio sockets, concurrency {at['capacity']} (best of {', '.join(map(str, minimal_cs))})"
            f"{cpu['capacity']}",
        )
        row(
            "bare async httpx loop (persists nothing)",
            f"{med['httpx']:.0f} /s",
            f"concurrency {at['httpx']}, the best two of {', '.join(map(str, httpx_cs))}; "
            f"{med['httpx'] / med['capacity']:.0%} of capacity{cpu['httpx']}",
        )
        if has_authlib:
            row(
                "authlib AsyncOAuth2Client (persists nothing)",
                f"{med['authlib']:.0f} /s",
                f"concurrency {at['authlib']}, the best two of {', '.join(map(str, authlib_cs))}; "
                f"{med['authlib'] / med['capacity']:.0%} of capacity{cpu['authlib']}",
            )
        else:
            row("authlib AsyncOAuth2Client", "skipped", "not installed: pip install -r benchmarks/requirements.txt")
        refreshed, failed, calls = checks[-1]
        exact = all(c == (count, 0, count) for c in checks)
        row(
            f"refresh_all, concurrency {DEFAULT_CONCURRENCY} (the default), durable",
            f"{med['ours']:.0f} /s",
            f"each rotation fsync'd before it counts; {refreshed} refreshed, {failed} failed, {calls} token calls "
            f"for {count} connections (emulator){'' if exact else ' -- NOT one per connection in every run'}"
            f"{cpu['ours']}",
        )
        of_httpx = ratios("httpx")
        row(
            "  refresh_all / best bare httpx loop",
            f"{statistics.median(of_httpx):.2f}x",
            f"target >= {TARGET_OF_HTTPX:.2f}x; median of {pairs} paired runs "
            f"({', '.join(f'{r:.2f}' for r in of_httpx)})",
        )
        if has_authlib:
            of_authlib = ratios("authlib")
            row(
                "  refresh_all / best authlib",
                f"{statistics.median(of_authlib):.2f}x",
                f"target >= {TARGET_OF_AUTHLIB:.2f}x; median of {pairs} paired runs "
                f"({', '.join(f'{r:.2f}' for r in of_authlib)})",
            )
        of_capacity = ratios("capacity")
        row(
            "  refresh_all / the server's capacity",
            f"{statistics.median(of_capacity):.0%}",
            f"no target; median of {pairs} paired runs ({', '.join(f'{r:.0%}' for r in of_capacity)})",
        )


if __name__ == "__main__":
    import sys

    bench("--quick" in sys.argv[1:])
