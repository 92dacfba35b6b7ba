"""A throwaway PostgreSQL server for tests and benchmarks, with no pytest needed.

:func:`postgres_server` yields the admin URL of a PostgreSQL server: the one given (or named
by ``CONNECTOR_TEST_POSTGRES_URL``), else a private cluster it starts for the block and
deletes afterwards. :func:`fresh_schema` then gives each test or benchmark a schema of its
own in that server, which a :class:`~connector_core.store.PgStore` opens by URL::

    from connector_core.store import PgStore
    from connector_core.testing.postgres import fresh_schema, postgres_server

    with postgres_server() as server, fresh_schema(server) as url, PgStore(url, env=env) as store:
        ...

The private cluster is ``initdb`` in a fresh temporary folder and ``pg_ctl start`` on a free
port of 127.0.0.1 only (a random password, scram-sha-256, durability off: nothing in it is
worth keeping). It stops and its folder is deleted when the block ends, at interpreter exit
if the block never ended, and, through a small watchdog process, even when this process is
killed. As root, the server runs as the ``postgres`` user (PostgreSQL refuses to run as
root). The binaries come from ``PATH`` or Debian's ``/usr/lib/postgresql/*/bin``;
:func:`postgres_unavailable` says, before anything starts, why no server can be had.

A store plugin's conformance tests can run on it too
(:func:`connector_core.testing.store_conformance.postgres_harness` takes the URL of
:func:`fresh_schema`). :func:`fresh_schema` needs the ``postgres`` extra (psycopg); the rest
needs only the standard library.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs

from .runner import free_port

__all__ = [
    "ENV_URL",
    "PostgresUnavailable",
    "ThrowawayPostgres",
    "find_bindir",
    "fresh_schema",
    "postgres_server",
    "postgres_unavailable",
    "with_params",
]

#: The environment variable naming a server to use instead of starting one (its admin URL).
ENV_URL = "CONNECTOR_TEST_POSTGRES_URL"
#: The unprivileged user the server runs as when this process is root.
SERVER_USER = "postgres"

#: Stops the cluster if the process that started it dies without doing so (SIGKILL, a CI
#: timeout): it waits for that process to end, then runs the stop command and deletes the folder.
_WATCHDOG = textwrap.dedent(
    """
    import os, shutil, subprocess, sys, time
    parent, root, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    while True:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    if os.path.isdir(os.path.join(root, "data")):
        subprocess.run(stop, capture_output=True, timeout=60, check=False, cwd=root)
        shutil.rmtree(root, ignore_errors=True)
    """
)


class PostgresUnavailable(RuntimeError):
    """No server was given and none can be started here (the message says why and what to do)."""


def find_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: from ``PATH``, else Debian's newest
    ``/usr/lib/postgresql/<version>/bin``; ``None`` when neither has them."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)] or [0],
    )
    return versions[-1].parent if versions else None


def postgres_unavailable(url: str | None = None) -> str | None:
    """Why :func:`postgres_server` (given ``url``) cannot have a server here, in one sentence;
    ``None`` when it can. Starts nothing."""
    if url or os.environ.get(ENV_URL):
        return None
    if find_bindir() is None:
        return (
            "PostgreSQL's initdb and pg_ctl are not installed (neither on PATH nor in "
            f"/usr/lib/postgresql/*/bin): install PostgreSQL's server package, or set {ENV_URL}"
        )
    return _server_user_problem()


def _server_user_problem() -> str | None:
    """As root, the server needs an unprivileged user to run as."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        return (
            f"running as root, PostgreSQL needs an unprivileged user {SERVER_USER!r} to run the "
            "throwaway cluster as (Debian's postgresql package creates it)"
        )
    return None


@attrs.define
class ThrowawayPostgres:
    """One throwaway PostgreSQL cluster in a temporary folder (see the module doc).

    :meth:`create` runs ``initdb``; :meth:`start` starts the server on 127.0.0.1 and a
    watchdog that stops it should this process die; :meth:`stop` stops it and deletes the
    folder. :func:`postgres_server` does all three around a block."""

    bindir: Path
    root: Path
    port: int
    password: str = attrs.field(repr=False)
    user: str = "connector"
    running: bool = False
    watchdog: subprocess.Popen[bytes] | None = attrs.field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The admin URL (it holds the password: keep it out of argv and logs)."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        """The cluster's data folder."""
        return self.root / "data"

    @staticmethod
    def _as_server_user(argv: list[str]) -> list[str]:
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            return ["runuser", "-u", SERVER_USER, "--", *argv]
        return argv

    def _run_as_server_user(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - PostgreSQL's own binaries, arguments of ours
            self._as_server_user(argv), capture_output=True, text=True, timeout=120, check=False, cwd=self.root
        )

    def _stop_command(self, mode: str) -> list[str]:
        return self._as_server_user(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"]
        )

    @classmethod
    def create(cls, bindir: Path) -> ThrowawayPostgres:
        """A new cluster (``initdb``) in a fresh temporary folder, not yet started."""
        problem = _server_user_problem()
        if problem is not None:
            raise PostgresUnavailable(problem)
        root = Path(tempfile.mkdtemp(prefix="connector-pg-"))
        cluster = cls(bindir, root, free_port(), secrets.token_urlsafe(18))
        (root / "sock").mkdir()
        pwfile = root / "pw"
        pwfile.write_text(cluster.password + "\n")
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            for path in (root, root / "sock", pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        init = cluster._run_as_server_user(
            [
                str(bindir / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                cluster.user,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        pwfile.unlink()
        if init.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.strip() or init.stdout.strip()}")
        return cluster

    def start(self) -> None:
        """Start the server on 127.0.0.1 (another free port if the chosen one was taken meanwhile)."""
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-c unix_socket_directories={self.root / 'sock'}",
                "-c max_connections=300",
                "-c shared_buffers=64MB",
                # A throwaway cluster: durability buys nothing here.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        last = ""
        for _ in range(3):  # the port was free a moment ago; another process may have taken it since
            done = self._run_as_server_user(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.root / "server.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
            if done.returncode == 0:
                self.running = True
                self.watchdog = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                    [
                        sys.executable,
                        "-c",
                        _WATCHDOG,
                        str(os.getpid()),
                        str(self.root),
                        *self._stop_command("immediate"),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # outlives a kill of this process group
                )
                return
            last = self.log_tail() or done.stderr.strip()
            self.port = free_port()
            options = re.sub(r"-p \d+", f"-p {self.port}", options)
        raise RuntimeError(f"pg_ctl start failed: {last}")

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server's log ('' when there is none)."""
        with contextlib.suppress(OSError):
            return "\n".join((self.root / "server.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """Stop the server (fast, then immediate) and delete the folder; safe to call twice."""
        if self.running:
            for mode in ("fast", "immediate"):
                done = subprocess.run(  # noqa: S603 - PostgreSQL's pg_ctl, arguments of ours
                    self._stop_command(mode), capture_output=True, timeout=120, check=False, cwd=self.root
                )
                if done.returncode == 0:
                    break
            self.running = False
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait(timeout=30)
            self.watchdog = None
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(url: str | None = None) -> Iterator[str]:
    """The admin URL of a PostgreSQL server for the block: ``url``, else
    ``CONNECTOR_TEST_POSTGRES_URL``, else a :class:`ThrowawayPostgres` that stops when the
    block ends (also at interpreter exit, as a safety net).

    Raises :class:`PostgresUnavailable` when there is neither a URL nor a way to start one."""
    given = url or os.environ.get(ENV_URL) or None
    if given:
        yield given
        return
    reason = postgres_unavailable()
    bindir = find_bindir()
    if reason is not None or bindir is None:
        raise PostgresUnavailable(reason or "PostgreSQL's initdb and pg_ctl are not installed")
    cluster = ThrowawayPostgres.create(bindir)
    atexit.register(cluster.stop)
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()
        atexit.unregister(cluster.stop)


def with_params(url: str, **params: str) -> str:
    """``url`` with query parameters added (``with_params(url, schema="s1")``)."""
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{url}{'&' if '?' in url else '?'}{extra}"


@contextlib.contextmanager
def fresh_schema(server: str, prefix: str = "t") -> Iterator[str]:
    """A store URL naming a schema of its own (``<prefix>_<random>``) in ``server``, which
    the store creates on first open; the schema is dropped when the block ends."""
    import psycopg  # the postgres extra, needed only here

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield with_params(server, schema=schema)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
