"""The proxy adds no store work of its own: a proxied GET runs exactly the SQL statements the
same call through Connector.request runs (the connection, its tokens, its profile's API base
URL), and none more."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from connector_core.store.sqlite import Store

from .conftest import Api


def test_a_proxied_request_runs_the_statements_of_the_request_alone(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    statements: list[str] = []
    connect = Store._connect

    def traced(self: Store) -> sqlite3.Connection:
        conn = connect(self)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(Store, "_connect", traced)
    api.client.get(f"/v1/connections/{api.ada}/proxy/company/named-lists")  # warm: nothing due, nothing cached
    statements.clear()
    answer = api.client.get(f"/v1/connections/{api.ada}/proxy/company/named-lists")
    assert answer.status_code == 200
    proxied = list(statements)
    statements.clear()
    reply: Any = api.world.connector.request(api.ada, "GET", "/company/named-lists")
    assert reply.status == 200
    assert proxied  # the store is read: the connection and its tokens
    assert proxied == statements
