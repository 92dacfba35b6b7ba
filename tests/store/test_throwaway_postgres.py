"""The throwaway PostgreSQL launcher of the kit (``connector_core.testing.postgres``): it needs no
pytest, uses a server it is given, and says why when it can start none. The suite's own
PostgreSQL tests run on it (tests/support/postgres.py), and the benchmarks do too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

from connector_core.testing import postgres
from connector_core.testing.postgres import (
    ENV_URL,
    PostgresUnavailable,
    ThrowawayPostgres,
    postgres_server,
    postgres_unavailable,
    with_params,
)


def test_the_launcher_and_the_workload_import_no_pytest() -> None:
    code = (
        "import sys, connector_core.testing.postgres, connector_core.testing.workload; "
        "print(sorted(m for m in sys.modules if m == 'pytest' or m.startswith(('_pytest', 'support'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_given_url_is_used_and_nothing_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    assert postgres_unavailable("postgresql://u@127.0.0.1:1/db") is None
    with postgres_server("postgresql://u@127.0.0.1:1/db") as url:
        assert url == "postgresql://u@127.0.0.1:1/db"
    monkeypatch.setenv(ENV_URL, "postgresql://v@127.0.0.1:2/db")
    assert postgres_unavailable() is None
    with postgres_server() as url:
        assert url == "postgresql://v@127.0.0.1:2/db"


def test_without_binaries_it_says_why_and_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    reason = postgres_unavailable()
    assert reason is not None and "initdb and pg_ctl are not installed" in reason and ENV_URL in reason
    with pytest.raises(PostgresUnavailable, match=ENV_URL), postgres_server():
        pass


def test_the_cluster_keeps_its_password_out_of_its_repr(tmp_path: Path) -> None:
    cluster = ThrowawayPostgres(tmp_path, tmp_path, 5432, "pw-9f8e7d6c5b")
    assert "pw-9f8e7d6c5b" not in repr(cluster) and "pw-9f8e7d6c5b" in cluster.url
    assert cluster.url.startswith("postgresql://connector:") and cluster.url.endswith("@127.0.0.1:5432/postgres")


def test_with_params_adds_query_parameters() -> None:
    assert with_params("postgresql://h/db", schema="s1") == "postgresql://h/db?schema=s1"
    assert (
        with_params("postgresql://h/db?sslmode=disable", schema="s1") == "postgresql://h/db?sslmode=disable&schema=s1"
    )


def test_the_benchmarks_import_nothing_from_the_tests() -> None:
    found = []
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            found += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in {"support", "tests", "pytest", "conftest"}
            ]
        if '"tests"' in source or "'tests'" in source:
            found.append(f"{path.name}: names the tests folder")
    assert found == []
