"""What every benchmark script shares: printing a figure with what bounds it, timing whole
processes paired run by run, and an emulator in its own process.

Each section lives in its own script (``benchmarks/<section>.py``), runnable alone and
exposing ``bench(quick: bool) -> None`` for ``benchmarks/run.py``, which runs them side by
side. Nothing here needs pytest or the test suite: the package and its extras are enough.

An emulator in the measuring process shares the GIL with what it measures, so a yardstick
and the code it judges would slow each other down alike. :class:`EmulatorProcess` runs the
emulator in a child process and answers a few calls over a pipe (add a company, read its
statistics, move its clock).

PostgreSQL figures need a server: :func:`postgres_server` starts a throwaway cluster on
127.0.0.1 (``connector_core.testing.postgres``, as the tests do) or uses
``CONNECTOR_TEST_POSTGRES_URL``; :func:`postgres_missing` says beforehand why there is none,
and a section then prints that instead of its PostgreSQL figures.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: The redirect URI the benchmark profiles register (never dialled: the flow stops at the code).
REDIRECT = "https://platform.example/connect/oauth2/hibob/callback"


def clean_env() -> dict[str, str]:
    """The environment for measured commands: no connector settings, and bytecode caching
    on (a shell with PYTHONDONTWRITEBYTECODE would otherwise recompile every module every run)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_") and k != "PYTHONDONTWRITEBYTECODE"}


def heading(text: str) -> None:
    print(text, flush=True)


def row(label: str, value: str, bound: str = "") -> None:
    """One figure: what was measured, its value, and what bounds it (the yardstick it is
    compared with, the target, or what limits it)."""
    print(f"  {label:<56} {value:>14}  {bound}", flush=True)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, nearest rank."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def run_once(argv: Sequence[str], env: Mapping[str, str] | None = None, *, stdout: Any = subprocess.DEVNULL) -> float:
    """Wall time of one whole process, in seconds; a failure raises."""
    started = time.perf_counter()
    subprocess.run(
        list(argv), env=dict(env) if env is not None else None, stdout=stdout, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - started


def median_time(argv: Sequence[str], runs: int, env: Mapping[str, str] | None = None) -> float:
    """The median wall time of ``runs`` runs of one whole process, in seconds."""
    return statistics.median(run_once(argv, env) for _ in range(runs))


def paired(
    commands: Mapping[str, Sequence[str]],
    runs: int,
    env: Mapping[str, str] | None = None,
    *,
    envs: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, list[float]]:
    """Time each command ``runs`` times, interleaved run by run (A B C, A B C, ...), so that
    machine noise falls on every command alike. Each command runs once first, unmeasured,
    to write bytecode caches. ``envs`` gives some labels an environment of their own (instead
    of ``env``). Returns the samples per label, in run order."""
    own = envs or {}
    for label, argv in commands.items():
        run_once(argv, own.get(label, env))
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, argv in commands.items():
            samples[label].append(run_once(argv, own.get(label, env)))
    return samples


def paired_ratio(samples: Mapping[str, Sequence[float]], label: str, base: str) -> float:
    """The median over runs of ``label``'s time over ``base``'s time in the same run."""
    return statistics.median(a / b for a, b in zip(samples[label], samples[base], strict=True))


def peak_rss_mib(
    argv: Sequence[str], env: Mapping[str, str] | None = None, *, stdout: Any = subprocess.DEVNULL
) -> tuple[float, float]:
    """(wall seconds, peak resident set size in MiB) of one whole process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds = run_once(argv, env, stdout=stdout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child's so far: measure in a fresh helper process
    # when an earlier child may have been bigger.
    if after <= before:
        return seconds, _rss_in_fresh_process(argv, env)
    return seconds, after / 1024


def _rss_in_fresh_process(argv: Sequence[str], env: Mapping[str, str] | None) -> float:
    probe = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *argv],
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip()) / 1024


# ------------------------------------------------------------------- PostgreSQL


def postgres_missing() -> str | None:
    """Why there is no PostgreSQL to measure here (no server binaries and no
    ``CONNECTOR_TEST_POSTGRES_URL``, or the ``postgres`` extra not installed); ``None`` when
    :func:`postgres_server` can give one."""
    import importlib.util

    from connector_core.testing.postgres import postgres_unavailable

    if importlib.util.find_spec("psycopg") is None:
        return "the postgres extra is not installed: pip install -e '.[postgres]'"
    return postgres_unavailable()


def skip_postgres(what: str) -> bool:
    """Print why ``what`` (a section's PostgreSQL part) is not measured, when it cannot be;
    true when it cannot."""
    reason = postgres_missing()
    if reason is not None:
        heading(f"{what}: not measured")
        row("PostgreSQL", "absent", reason)
    return reason is not None


#: While :func:`shared_postgres` runs: its exit stack, and the server's URL once started.
_SHARED: dict[str, Any] = {}


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The admin URL of a PostgreSQL server for the block: ``CONNECTOR_TEST_POSTGRES_URL``, or a
    throwaway cluster on 127.0.0.1 in a temporary folder, stopped and deleted afterwards (within
    :func:`shared_postgres`, one cluster serves every block). Give each store a schema of its own
    with ``connector_core.testing.postgres.fresh_schema(url)``."""
    from connector_core.testing.postgres import postgres_server as server

    stack = _SHARED.get("stack")
    if stack is None:
        with server() as url:
            yield url
        return
    if "url" not in _SHARED:
        _SHARED["url"] = stack.enter_context(server())
    yield _SHARED["url"]


@contextlib.contextmanager
def shared_postgres() -> Iterator[None]:
    """Within the block, :func:`postgres_server` starts a cluster on first use and hands that
    one to every later caller; it stops when the block ends (run.py: one for every section)."""
    with contextlib.ExitStack() as stack:
        _SHARED["stack"] = stack
        try:
            yield
        finally:
            _SHARED.clear()


# ------------------------------------------------------------- emulator process


def _serve(conn: Any, provider: str, redirect_uris: list[str], access_token_lifetime: int | None) -> None:
    """The child: run the provider's emulator and answer calls until told to stop."""
    from connector_core import load_plugins
    from connector_core.emulator import start_emulator

    plugins = load_plugins()
    emu = start_emulator(
        plugins.declaration(provider),
        plugins.emulator_spec(provider),
        redirect_uris=redirect_uris,
        access_token_lifetime=access_token_lifetime,
    )
    try:
        environments = {}
        for env in emu.environments:
            endpoints = emu.endpoints(env)
            creds = emu.app.credentials[endpoints.credential_set]
            environments[env] = {
                "endpoints": endpoints,
                "client_id": creds.client_id,
                "client_secret": creds.client_secret.reveal(),
            }
        conn.send(
            {
                "base_url": emu.base_url,
                "app_id": emu.app.app_id,
                "environments": environments,
                "access_token_lifetime": emu.access_token_lifetime,
            }
        )
        while True:
            name, args = conn.recv()
            if name == "close":
                break
            try:
                if name == "add_company":
                    result: Any = emu.add_company().id
                elif name == "stats":
                    stats = emu.stats
                    result = {
                        "token_requests": dict(stats.token_requests),
                        "resource_calls": dict(stats.resource_calls),
                        "authorize_requests": stats.authorize_requests,
                    }
                else:
                    result = getattr(emu, name)(*args)
                conn.send(("ok", result))
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        emu.close(check=False)
        conn.close()


class EmulatorProcess:
    """A provider's emulator served from a child process::

        with EmulatorProcess("hibob", redirect_uris=[REDIRECT]) as emu:
            emu.endpoints("sandbox"), emu.client_id("sandbox"), emu.add_company()

    Calls other than the named ones go to the child's ``RunningEmulator`` method of that name
    (``emu.call("advance_clock", 61)``); their results must pickle.
    """

    def __init__(
        self,
        provider: str = "hibob",
        *,
        redirect_uris: Iterable[str] = (REDIRECT,),
        access_token_lifetime: int | None = None,
    ) -> None:
        context = multiprocessing.get_context("spawn")  # no threads of ours cross into the child
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, provider, list(redirect_uris), access_token_lifetime), daemon=True
        )
        self._process.start()
        child.close()
        if not self._conn.poll(60):
            self._process.kill()
            raise RuntimeError("the emulator process did not start within 60 s")
        self.info: dict[str, Any] = self._conn.recv()

    @property
    def base_url(self) -> str:
        return str(self.info["base_url"])

    @property
    def app_id(self) -> str:
        return str(self.info["app_id"])

    @property
    def access_token_lifetime(self) -> int:
        return int(self.info["access_token_lifetime"])

    def endpoints(self, environment: str = "sandbox") -> Any:
        """The environment's ``EmulatorEndpoints`` (token URL, API base URL, ...)."""
        return self.info["environments"][environment]["endpoints"]

    def client_id(self, environment: str = "sandbox") -> str:
        return str(self.info["environments"][environment]["client_id"])

    def client_secret(self, environment: str = "sandbox") -> str:
        """The test app's client secret, in the clear: for benchmark set-up only."""
        return str(self.info["environments"][environment]["client_secret"])

    def call(self, name: str, *args: Any) -> Any:
        self._conn.send((name, args))
        status, result = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"emulator {name}: {result}")
        return result

    def add_company(self) -> str:
        return str(self.call("add_company"))

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("stats")
        return result

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(("close", ()))
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
        self._conn.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def emulator_profile(store: Any, emu: EmulatorProcess, *, name: str = "bench", environment: str = "sandbox") -> Any:
    """A HiBob profile of the emulator's test app in ``store``."""
    from connector_core import load_plugins, validate_profile
    from connector_core.secret import Secret

    decl = load_plugins().declaration("hibob")
    return store.create_profile(
        validate_profile(
            decl,
            name=name,
            environment=environment,
            values={
                "app_id": emu.app_id,
                "client_id": emu.client_id(environment),
                "client_secret": Secret(emu.client_secret(environment)),
            },
            endpoints=emu.endpoints(environment).profile_urls(REDIRECT, revocation=False),
        )
    )


def connect_many(connector: Any, emu: EmulatorProcess, profile: str, count: int) -> list[str]:
    """``count`` connections, each a new emulated company, through the full OAuth flow
    (authorize, consent by header, code exchange)."""
    import httpx

    from connector_core.emulator import COMPANY_HEADER, CONSENT_HEADER

    ids: list[str] = []
    with httpx.Client(follow_redirects=False, trust_env=False) as browser:
        for _ in range(count):
            company = emu.add_company()
            start = connector.begin(profile)
            answer = browser.get(start.url, headers={CONSENT_HEADER: "allow", COMPANY_HEADER: company})
            ids.append(connector.complete(answer.headers["location"]).connection.id)
    return ids
