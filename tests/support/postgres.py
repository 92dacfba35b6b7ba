"""A throwaway PostgreSQL server for the test suite (a pytest plugin: ``pytest_plugins`` in conftest.py).

With ``CONNECTOR_TEST_POSTGRES_URL`` set, the tests use that server. Otherwise the
first test that needs PostgreSQL starts a private cluster: ``initdb`` in a fresh
temporary folder, ``pg_ctl start`` on a free port of 127.0.0.1 (a random password,
scram-sha-256), and the session stops it and deletes the folder at the end, whatever
happened. As root, the server runs as the ``postgres`` user (PostgreSQL refuses to
run as root). The binaries come from ``PATH`` or Debian's ``/usr/lib/postgresql/*/bin``
(``.ci/system-packages`` installs them when missing).

Each test then gets its own schema in that server (``pg_url``), dropped afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

ENV_URL = "CONNECTOR_TEST_POSTGRES_URL"
#: Read at import: the suite's autouse fixture clears CONNECTOR_* variables for each test.
GIVEN_URL = os.environ.get(ENV_URL) or None
SERVER_USER = "postgres"

#: Stops the cluster if the test process dies without doing so (SIGKILL, a CI timeout): it
#: waits for that process to end, then runs the stop command and deletes the folder.
WATCHDOG = textwrap.dedent(
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


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: from PATH, else Debian's newest version."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)] or [0],
    )
    return versions[-1].parent if versions else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class Cluster:
    """One throwaway PostgreSQL cluster in a temporary folder."""

    bindir: Path
    root: Path
    port: int
    password: str = attrs.field(repr=False)
    user: str = "connector"
    running: bool = False
    watchdog: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @staticmethod
    def _as_server_user(argv: list[str]) -> list[str]:
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            return ["runuser", "-u", SERVER_USER, "--", *argv]
        return argv

    def _run_as_server_user(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._as_server_user(argv), capture_output=True, text=True, timeout=120, check=False, cwd=self.root
        )

    def _stop_command(self, mode: str) -> list[str]:
        return self._as_server_user(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"]
        )

    @classmethod
    def create(cls, bindir: Path) -> Cluster:
        root = Path(tempfile.mkdtemp(prefix="connector-pg-"))
        cluster = cls(bindir, root, free_port(), secrets.token_urlsafe(18))
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(SERVER_USER)
            except KeyError:
                shutil.rmtree(root, ignore_errors=True)
                raise RuntimeError(
                    f"running as root, PostgreSQL needs an unprivileged user {SERVER_USER!r} to run the "
                    "throwaway cluster as (Debian's postgresql package creates it)"
                ) from None
            os.chown(root, entry.pw_uid, entry.pw_gid)
        (root / "sock").mkdir()
        pwfile = root / "pw"
        pwfile.write_text(cluster.password + "\n")
        if os.geteuid() == 0:
            for path in (root / "sock", pwfile):
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
                self.watchdog = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        WATCHDOG,
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
        with contextlib.suppress(OSError):
            return "\n".join((self.root / "server.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """Stop the server (fast, then immediate) and delete the folder; safe to call twice."""
        if self.running:
            for mode in ("fast", "immediate"):
                done = subprocess.run(
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
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL server: ``CONNECTOR_TEST_POSTGRES_URL``, else a throwaway
    cluster that stops when the block ends (also at interpreter exit, as a safety net)."""
    if GIVEN_URL:
        yield GIVEN_URL
        return
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL's initdb and pg_ctl are not installed (neither on PATH nor in /usr/lib/postgresql/*/bin): "
            f"run .ci/system-packages as root (apt-get install postgresql), or set {ENV_URL}"
        )
    cluster = Cluster.create(bindir)
    atexit.register(cluster.stop)
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()
        atexit.unregister(cluster.stop)


def with_params(url: str, **params: str) -> str:
    """``url`` with query parameters added."""
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{url}{'&' if '?' in url else '?'}{extra}"


@contextlib.contextmanager
def fresh_schema(server: str, prefix: str = "t") -> Iterator[str]:
    """A store URL naming a schema of its own in ``server``; the schema is dropped afterwards."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield with_params(server, schema=schema)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """An admin URL of the session's PostgreSQL server (see the module doc)."""
    try:
        manager = postgres_url()
        url = manager.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield url
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL store URL with a schema of its own, dropped after the test."""
    with fresh_schema(postgres_server) as url:
        yield url
