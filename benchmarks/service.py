"""The service's figures: ``connector serve`` (one uvicorn worker) under 50 concurrent local clients.

    python benchmarks/service.py            # SQLite, then PostgreSQL (a throwaway cluster)
    python benchmarks/service.py --quick    # fewer requests
    python benchmarks/service.py --stores sqlite --only proxy webhooks
    python benchmarks/service.py --profile DIR  # and py-spy's profile of the server under each load

``connector serve`` runs as a subprocess on 127.0.0.1 (one worker, no keeper), over a store made
here: connections through the emulator's OAuth flow (the emulator in its own process), an API key
in a 0600 file (never in argv). The load generator is a minimal keep-alive HTTP/1.1 client on
asyncio in this process, 50 connections at once, each sending its next request when the answer
came (closed loop). Its own ceiling is measured against a trivial server (a raw asyncio protocol
answering ``200 ok``) and printed as the bound of every figure: a figure near it would be the
load generator's, not the service's.

Figures: POST /v1/connect/sessions, GET /v1/connections (one page), GET
/v1/connections/{id}/proxy/company/named-lists beside the same GET sent to the emulator directly
(same request, same concurrency; and one client at a time, where the latency added is the proxy's
own work rather than queueing), and webhook deliveries by the service's deliverer to a receiver in
a process of its own. For each: requests/s, p50 and p99 latency, and the server's CPU per request.

Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
from common import (
    REPO,
    EmulatorProcess,
    clean_env,
    connect_many,
    emulator_profile,
    heading,
    percentile,
    postgres_server,
    row,
    skip_postgres,
)

from connector_core.testing.postgres import fresh_schema

CONCURRENCY = 50
#: The proxy's target: at most this many milliseconds added to the emulator's p50.
PROXY_BUDGET_MS = 2.0
#: Webhook deliveries' target, per second.
DELIVERY_TARGET = 500


# ------------------------------------------------------------------ PostgreSQL


# --------------------------------------------------------------- load generator


@attrs.frozen
class Run:
    """One load run: how many requests, how long, their latencies, the CPU spent."""

    requests: int
    seconds: float
    latencies: tuple[float, ...]
    statuses: dict[int, int]
    #: CPU seconds the load generator (this process) spent.
    client_cpu: float
    #: CPU seconds the measured server spent (None when not known).
    server_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def p(self, q: float) -> float:
        """The q-th percentile latency, in milliseconds."""
        return percentile(self.latencies, q) * 1000

    def figure(self) -> str:
        return f"{self.rate:,.0f} /s"

    def bound(self, ceiling: Run | None = None, extra: str = "") -> str:
        parts = [f"p50 {self.p(50):.1f} ms", f"p99 {self.p(99):.1f} ms"]
        if self.server_cpu is not None:
            parts.append(f"server CPU {self.server_cpu / self.requests * 1000:.2f} ms/req")
        if ceiling is not None:
            parts.append(f"{self.rate / ceiling.rate:.0%} of the client's ceiling")
        if extra:
            parts.append(extra)
        return "; ".join(parts)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> tuple[int, bool]:
    """Send one request, read its whole answer; (status, whether the server closes)."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        length = int(lower[at + 17 : lower.index(b"\r\n", at + 2)])
        if length:
            await reader.readexactly(length)
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, b"\r\nconnection: close" in lower


def _cpu_of(pid: int | None) -> float | None:
    """CPU seconds (user + system, every thread) process ``pid`` has used."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    port: int,
    requests: Sequence[bytes],
    *,
    concurrency: int = CONCURRENCY,
    expect: int = 200,
    server_pid: int | None = None,
    warmup: int = 0,
) -> Run:
    """Send ``requests`` (raw HTTP/1.1 bytes, each once, in order) over ``concurrency`` keep-alive
    connections, each sending its next request when its answer came; the run's figures. A status
    other than ``expect`` is counted, and reported by the caller."""

    async def go() -> Run:
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]
        for index, raw in enumerate(requests[:warmup]):
            reader, writer = conns[index % concurrency]
            await _exchange(reader, writer, raw)
        pending = iter(requests[warmup:])
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        clock = time.perf_counter

        async def worker(slot: int) -> None:
            reader, writer = conns[slot]
            for raw in pending:
                began = clock()
                status, closing = await _exchange(reader, writer, raw)
                latencies.append(clock() - began)
                statuses[status] += 1
                if closing:
                    writer.close()
                    reader, writer = conns[slot] = await asyncio.open_connection("127.0.0.1", port)

        cpu = resource.getrusage(resource.RUSAGE_SELF)
        server_before = _cpu_of(server_pid)
        started = clock()
        await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
        seconds = clock() - started
        server_after = _cpu_of(server_pid)
        after = resource.getrusage(resource.RUSAGE_SELF)
        for _, writer in conns:
            writer.close()
        return Run(
            len(latencies),
            seconds,
            tuple(latencies),
            dict(statuses),
            (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime),
            None if server_before is None or server_after is None else server_after - server_before,
        )

    result = asyncio.run(go())
    wrong = {status: n for status, n in result.statuses.items() if status != expect}
    if wrong:
        raise RuntimeError(f"expected {expect} to every request, got {wrong}")
    return result


def get(path: str, host: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"host: {host}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post(path: str, host: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {host}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


#: A trivial HTTP/1.1 server: every request (no body) answered ``200 ok`` at once. It lives at
#: most as many seconds as its argument says.
TRIVIAL_SERVER = r"""
import asyncio, sys
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer[self.buffer.rindex(b"\r\n\r\n") + 4:]
            self.transport.write(ANSWER * count)
async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(float(sys.argv[1]))
asyncio.run(main())
"""


def client_ceiling(count: int) -> Run:
    """The load generator against the trivial server: what it can send at most."""
    proc = subprocess.Popen([sys.executable, "-c", TRIVIAL_SERVER, "300"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        return load(port, [get("/", "127.0.0.1")] * count, server_pid=proc.pid, warmup=CONCURRENCY)
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------- receiver

#: A webhook receiver in a process of its own (an asyncio protocol): prints its port, reads
#: "N SECRET DELAY" on stdin, prints "ready" once listening, checks each delivery's signature,
#: answers 204 (after DELAY seconds, without blocking the others), and once N distinct
#: webhook-ids arrived (or after its lifetime, argv[1] seconds) prints what it saw as JSON, exits.
RECEIVER = r"""
import asyncio, json, sys, time
from connector_core.webhooks import verify
ANSWER = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"
async def main():
    loop = asyncio.get_running_loop()
    seen, stamps, bad, total = set(), [], [0], [0]
    done = loop.create_future()
    config = {}
    class Receive(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""
        def data_received(self, data):
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
                length = int(headers.get("content-length", "0"))
                if len(self.buffer) < end + 4 + length:
                    return
                body = self.buffer[end + 4 : end + 4 + length]
                self.buffer = self.buffer[end + 4 + length :]
                try:
                    verify(body, headers, [config["secret"]])
                except Exception:
                    bad[0] += 1
                total[0] += 1
                seen.add(headers.get("webhook-id"))
                stamps.append(time.perf_counter())
                if config["delay"]:
                    loop.call_later(config["delay"], self.transport.write, ANSWER)
                else:
                    self.transport.write(ANSWER)
                if len(seen) >= config["n"] and not done.done():
                    done.set_result(None)
    server = await loop.create_server(Receive, "127.0.0.1", 0, start_serving=False)
    print(server.sockets[0].getsockname()[1], flush=True)
    n, secret, delay = (await loop.run_in_executor(None, sys.stdin.readline)).split()
    config.update(n=int(n), secret=secret, delay=float(delay))
    await server.start_serving()
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done, float(sys.argv[1]))
    except TimeoutError:
        pass
    if config["delay"]:
        await asyncio.sleep(config["delay"] + 0.1)  # the last answers go out before the exit
    spread = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    print(json.dumps({"distinct": len(seen), "received": total[0], "bad": bad[0], "seconds": spread}), flush=True)
asyncio.run(main())
"""


class ReceiverProcess:
    """:data:`RECEIVER` running (at most ``lifetime`` seconds)::

    with ReceiverProcess() as receiver:
        receiver.expect(n, secret)         # then deliver to receiver.url
        seen = receiver.result()           # {"distinct", "received", "bad", "seconds"}
    """

    def __init__(self, lifetime: float = 120.0, delay: float = 0.0) -> None:
        self.delay = delay
        self._proc = subprocess.Popen(
            [sys.executable, "-c", RECEIVER, str(lifetime)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
            cwd=REPO,
        )
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/hooks"

    def expect(self, n: int, secret: str) -> None:
        """Receive ``n`` distinct deliveries signed with ``secret``; returns once listening."""
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(f"{n} {secret} {self.delay}\n")
        self._proc.stdin.flush()
        if self._proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the receiver did not start")

    def result(self) -> dict[str, Any]:
        """What it received, once ``n`` distinct ids came (or its lifetime ran out)."""
        assert self._proc.stdout is not None
        seen: dict[str, Any] = json.loads(self._proc.stdout.readline())
        return seen

    def rate(self, seen: dict[str, Any]) -> float:
        """Deliveries per second from the first received to the last."""
        return (seen["distinct"] - 1) / seen["seconds"] if seen["seconds"] else 0.0

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait()

    def __enter__(self) -> ReceiverProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------- world


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class Service:
    """``connector serve`` running over a store, and what the load needs to address it."""

    proc: subprocess.Popen[bytes]
    port: int
    key: str
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


@contextlib.contextmanager
def serving(tmp: Path, store_env: dict[str, str], args: Sequence[str]) -> Iterator[Service]:
    """``connector serve`` (one worker) on a free port of 127.0.0.1, its API key in a 0600 file;
    stopped (SIGINT, as Ctrl-C) when the block ends."""
    from connector_core._files import write_private_file

    key = secrets.token_urlsafe(32)
    key_file = tmp / f"api-keys-{secrets.token_hex(4)}"
    write_private_file(key_file, key.encode() + b"\n")
    port = _free_port()
    log = tmp / f"serve-{port}.log"
    argv = [sys.executable, "-m", "connector_core", *args, "serve", "--port", str(port)]
    argv += ["--api-keys-file", str(key_file), "--no-keeper"]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, env={**clean_env(), **store_env}, stdout=subprocess.DEVNULL, stderr=err)
    service = Service(proc, port, key, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"connector serve exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                load(port, [get("/healthz", service.host)], concurrency=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("connector serve did not answer within 60 s") from None
                time.sleep(0.1)
        yield service
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def profiled(service: Service, folder: Path | None, label: str) -> Iterator[None]:
    """py-spy recording the server into ``folder`` while the block runs (nothing without a
    folder); its top functions printed after."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if folder is None or not Path(spy).exists():
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / (label.replace(" ", "-").lower() + ".txt")
    argv = [spy, "record", "--pid", str(service.proc.pid), "--format", "raw", "--output", str(out), "--rate", "250"]
    argv += ["--nonblocking", "--gil"]  # the Python work (one interpreter lock), not waits in system calls
    spying = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield
    finally:
        spying.send_signal(signal.SIGINT)
        spying.wait(30)
        _print_profile(out, label)


def _print_profile(path: Path, label: str, top: int = 18) -> None:
    """py-spy's raw (collapsed) stacks: the functions by inclusive and by own share of samples."""
    if not path.exists():
        print(f"    (no profile for {label})")
        return
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f.split(" (")[0] + " " + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] for f in stack.split(";")]
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"    py-spy, server under '{label}' ({total} samples): own time")
    for frame, n in own.most_common(top):
        print(f"      {n / total:6.1%}  {frame}")
    print("    inclusive")
    for frame, n in inclusive.most_common(top + 12):
        print(f"      {n / total:6.1%}  {frame}")


@attrs.define
class World:
    """A store with a profile of the emulator's test app and connections made through its flow."""

    store_env: dict[str, str]
    serve_args: list[str]
    ids: list[str]
    tokens: list[str]


def make_world(tmp: Path, emu: EmulatorProcess, store_url: str | None, connections: int) -> World:
    from connector_core import Connector, Store, load_plugins
    from connector_core.crypto import ENV_KEY_FILE

    env = {ENV_KEY_FILE: str(tmp / f"keys-{secrets.token_hex(4)}.json")}
    if store_url is None:
        home = tmp / f"home-{secrets.token_hex(4)}"
        store: Any = Store.open(home, env=env)
        serve_args = ["--home", str(home)]
        store_env = dict(env)
    else:
        from connector_core.store import PgStore

        store = PgStore(store_url, env=env)
        serve_args = []
        store_env = {**env, "CONNECTOR_STORE_URL": store_url}  # the URL holds a password: never argv
    try:
        emulator_profile(store, emu)
        connector = Connector(store, load_plugins())
        ids = connect_many(connector, emu, "bench", connections)
        tokens = [store.get_tokens(cid)[1].reveal() for cid in ids]
        connector.close()
    finally:
        store.close()
    return World(store_env, serve_args, ids, tokens)


# ----------------------------------------------------------------------- bench


#: The parts of the section (``--only``), and the stores they run over (``--stores``).
PARTS = ("sessions", "list", "proxy", "webhooks")
STORES = ("sqlite", "postgresql")


def bench_service(
    tmp: Path,
    emu: EmulatorProcess,
    label: str,
    store_url: str | None,
    quick: bool,
    *,
    ceiling: Run,
    receiver: float,
    profile: Path | None = None,
    only: Sequence[str] = PARTS,
) -> None:
    """The service's figures over one store (SQLite when ``store_url`` is None); ``receiver``:
    the webhook receiver's ceiling (deliveries/s)."""
    n = 200 if quick else 3000
    started = time.perf_counter()
    world = make_world(tmp, emu, store_url, 50)  # a full page of the listing
    heading(
        f"connector serve, one worker, {label} ({CONCURRENCY} concurrent clients, {n} requests each; "
        f"set-up {time.perf_counter() - started:.1f} s for {len(world.ids)} connections)"
    )
    with serving(tmp, world.store_env, world.serve_args) as svc:
        pid, auth = svc.proc.pid, svc.auth()
        floor = load(svc.port, [get("/healthz", svc.host)] * (n + CONCURRENCY), server_pid=pid, warmup=CONCURRENCY)
        row("GET /healthz: the service's floor (no key, no store)", floor.figure(), floor.bound(ceiling))
        if "sessions" in only:
            sessions = [
                post(
                    "/v1/connect/sessions",
                    svc.host,
                    json.dumps({"end_user": {"id": f"user-{i}"}, "profile": "bench"}).encode(),
                    auth,
                )
                for i in range(n + CONCURRENCY)
            ]
            with profiled(svc, profile, f"{label} sessions"):
                run = load(svc.port, sessions, expect=201, server_pid=pid, warmup=CONCURRENCY)
            durable = ""
            if store_url is None:
                commit = commit_ms(tmp)
                durable = f"one durable commit each: {commit:.2f} ms on this disk, <= {1000 / commit:,.0f}/s in a row"
            row("POST /v1/connect/sessions", run.figure(), run.bound(ceiling, durable))
        if "list" in only:
            listing = [get("/v1/connections", svc.host, auth)] * (n + CONCURRENCY)
            with profiled(svc, profile, f"{label} list"):
                run = load(svc.port, listing, server_pid=pid, warmup=CONCURRENCY)
            row("GET /v1/connections (a page of 50)", run.figure(), run.bound(ceiling))
        if "proxy" in only:
            bench_proxy(svc, emu, world, n, ceiling, profile, label, pairs=1 if quick else 3)
        if "webhooks" in only:
            bench_deliveries(svc, world, store_url, quick, profile, label, receiver)


def bench_proxy(
    svc: Service,
    emu: EmulatorProcess,
    world: World,
    n: int,
    ceiling: Run,
    profile: Path | None,
    label: str,
    pairs: int = 2,
) -> None:
    """The same GET through the proxy and to the emulator directly, paired run by run."""
    api = urlparts(emu.endpoints("sandbox").api_base_url)
    path = "company/named-lists"
    count, auth = len(world.ids), svc.auth()
    proxied = [
        get(f"/v1/connections/{world.ids[i % count]}/proxy/{path}", svc.host, auth) for i in range(n + CONCURRENCY)
    ]
    direct = [
        get(f"{api.path}/{path}", api.host, {"authorization": f"Bearer {world.tokens[i % count]}"})
        for i in range(n + CONCURRENCY)
    ]
    # Alternating: the emulator directly, then through the proxy, ``pairs`` times; the median runs kept.
    runs: dict[str, list[Run]] = {"direct": [], "proxy": []}
    for _ in range(pairs):
        runs["direct"].append(load(api.port, direct, warmup=CONCURRENCY))
        with profiled(svc, None if runs["proxy"] else profile, f"{label} proxy"):
            runs["proxy"].append(load(svc.port, proxied, server_pid=svc.proc.pid, warmup=CONCURRENCY))
    d, p = _median_run(runs["direct"]), _median_run(runs["proxy"])
    row(f"GET {path}, the emulator directly", d.figure(), d.bound(ceiling))
    row(
        f"GET .../proxy/{path}",
        p.figure(),
        p.bound(ceiling, f"adds {p.p(50) - d.p(50):.1f} ms p50 (target <= {PROXY_BUDGET_MS:g} ms)"),
    )
    one = min(n // 2, 300)
    d1 = load(api.port, direct[:one], concurrency=1, warmup=20)
    p1 = load(svc.port, proxied[:one], concurrency=1, server_pid=svc.proc.pid, warmup=20)
    row("  one client at a time: the emulator directly", f"{d1.p(50):.2f} ms", f"p99 {d1.p(99):.2f} ms")
    row(
        "  one client at a time: through the proxy",
        f"{p1.p(50):.2f} ms",
        f"p99 {p1.p(99):.2f} ms; adds {p1.p(50) - d1.p(50):.2f} ms p50 (target <= {PROXY_BUDGET_MS:g} ms)",
    )


def bench_deliveries(
    svc: Service, world: World, store_url: str | None, quick: bool, profile: Path | None, label: str, ceiling: float
) -> None:
    """Events recorded in one transaction, delivered by the service's deliverer to a receiver in a
    process of its own: deliveries/s from the first to the last received."""
    from connector_core.events import EventType
    from connector_core.webhooks import add_endpoint

    n = 400 if quick else 4000
    with ReceiverProcess() as receiver:
        store = _open_store(world, store_url)
        try:
            _, secret = add_endpoint(store, receiver.url)
            assert secret is not None
            receiver.expect(n, secret.reveal())
            server_before = _cpu_of(svc.proc.pid)
            with store._write() as tx:
                for index in range(n):
                    store._emit(tx, EventType.CREATED, connection={"id": f"conn_{index}"}, details={"n": index})
            with profiled(svc, profile, f"{label} webhooks"):
                seen = receiver.result()
            server_cpu = (_cpu_of(svc.proc.pid) or 0.0) - (server_before or 0.0)
            deadline = time.monotonic() + 10  # the last round's attempts are recorded after their answers
            while (depth := store.outbox_depth()) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            store.close()
        rate = receiver.rate(seen)
    row(
        "webhook deliveries by the service's deliverer",
        f"{rate:,.0f} /s",
        f"target >= {DELIVERY_TARGET}/s; receiver's ceiling {ceiling:,.0f}/s; {seen['distinct']}/{n} ids "
        f"received, {seen['received']} POSTs, {seen['bad']} bad signatures, {depth} left pending; "
        f"server CPU {server_cpu / n * 1000:.2f} ms/delivery",
    )


def receiver_ceiling(n: int, concurrency: int = 8) -> float:
    """The receiver's own capacity: signed POSTs from the load generator (``concurrency`` at once,
    as many as the deliverer's threads), per second."""
    from connector_core.webhooks import new_secret, webhook_headers

    secret = new_secret().reveal()
    with ReceiverProcess(60) as receiver:
        receiver.expect(n, secret)
        host, body = f"127.0.0.1:{receiver.port}", b'{"type":"connection.created","data":{}}'
        signed = [webhook_headers((secret,), f"evt_{i:032x}", int(time.time()), body) for i in range(n)]
        requests = [
            post("/hooks", host, body, {k: v for k, v in headers.items() if k != "content-type"}) for headers in signed
        ]
        run = load(receiver.port, requests, concurrency=concurrency, expect=204)
        seen = receiver.result()
        if seen["bad"]:
            raise RuntimeError(f"the receiver refused {seen['bad']} signatures of the load generator's")
        return run.rate


def commit_ms(folder: Path, n: int = 200) -> float:
    """Milliseconds one durable SQLite commit takes in ``folder`` (WAL, synchronous=FULL, as the
    store commits): what bounds work that commits once per request."""
    import sqlite3

    path = folder / f"commit-{secrets.token_hex(4)}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE t (n INTEGER)")
        started = time.perf_counter()
        for index in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", (index,))
            conn.execute("COMMIT")
        return (time.perf_counter() - started) / n * 1000
    finally:
        conn.close()


def _open_store(world: World, store_url: str | None) -> Any:
    from connector_core import Store
    from connector_core.crypto import ENV_KEY_FILE
    from connector_core.store import PgStore

    env = {ENV_KEY_FILE: world.store_env[ENV_KEY_FILE]}
    if store_url is None:
        return Store.open(world.serve_args[1], env=env)
    return PgStore(store_url, env=env)


def _median_run(runs: list[Run]) -> Run:
    """The run of median throughput (of an even number: the slower of the middle two)."""
    ordered = sorted(runs, key=lambda r: r.rate)
    return ordered[(len(ordered) - 1) // 2]


@attrs.frozen
class _Url:
    host: str
    port: int
    path: str


def urlparts(url: str) -> _Url:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return _Url(f"{parts.hostname}:{parts.port}", parts.port, parts.path.rstrip("/"))


def bench(
    quick: bool, *, stores: Sequence[str] = STORES, profile: Path | None = None, only: Sequence[str] = PARTS
) -> None:
    """The section for benchmarks/run.py: SQLite, then PostgreSQL."""
    ceiling = client_ceiling(2000 if quick else 10000)
    heading(f"the load generator ({CONCURRENCY} keep-alive connections, asyncio, this process)")
    row(
        "its ceiling, against a trivial server",
        ceiling.figure(),
        f"p50 {ceiling.p(50):.1f} ms; client CPU {ceiling.client_cpu / ceiling.requests * 1e6:.0f} us/req: "
        "the bound of every figure below",
    )
    receiver = receiver_ceiling(500 if quick else 4000) if "webhooks" in only else 0.0
    if receiver:
        row("the webhook receiver's ceiling (signed POSTs, 8 at once)", f"{receiver:,.0f} /s", "a process of its own")
    options: dict[str, Any] = {"ceiling": ceiling, "receiver": receiver, "profile": profile, "only": only}
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as folder, EmulatorProcess() as emu:
        tmp = Path(folder)
        if "sqlite" in stores:
            bench_service(tmp, emu, "SQLite", None, quick, **options)
        if "postgresql" in stores and not skip_postgres("the service on PostgreSQL"):
            with postgres_server() as server, fresh_schema(server, "svc") as url:
                heading("  (the throwaway cluster runs with fsync=off: its commits are not durable ones)")
                bench_service(tmp, emu, "PostgreSQL", url, quick, **options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--stores", nargs="+", choices=STORES, default=STORES, help="only over these stores")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="py-spy the server under each load, its raw stacks kept in DIR"
    )
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS, help="only these parts")
    args = parser.parse_args()
    bench(args.quick, stores=args.stores, profile=args.profile, only=args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
