"""The suite's PostgreSQL fixtures (a pytest plugin: ``pytest_plugins`` in conftest.py), over
:mod:`connector_core.testing.postgres`.

With ``CONNECTOR_TEST_POSTGRES_URL`` set, the tests use that server; otherwise the first test
that needs PostgreSQL starts a throwaway cluster on 127.0.0.1, which the session stops and
deletes at the end, whatever happened (``.ci/system-packages`` installs the binaries when
missing). Each test then gets its own schema in that server (``pg_url``), dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from connector_core.testing.postgres import ENV_URL, PostgresUnavailable, fresh_schema
from connector_core.testing.postgres import postgres_server as _postgres_server

#: Read at import: the suite's autouse fixture clears CONNECTOR_* variables for each test.
GIVEN_URL = os.environ.get(ENV_URL) or None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """An admin URL of the session's PostgreSQL server (see the module doc)."""
    manager = _postgres_server(GIVEN_URL)
    try:
        url = manager.__enter__()
    except (PostgresUnavailable, RuntimeError) as exc:
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
