"""A SQLite listing's pages (issue 19): each filter's page is one range of an index in id order,
so the last page of a long listing costs what the first did (no page sorts every matching row)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from connector_core import Store
from connector_core.connection import ConnectionStatus
from connector_core.store.sql import _connection_filters, _connections_page


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"status": ConnectionStatus.CONNECTED},
        {"end_user": "user-ada"},
        {"profile": "acme"},
        {"organisation": "org-1"},
        {"provider": "hibob"},
        {"tag": "tier-1"},
        {"status": ConnectionStatus.CONNECTED, "end_user": "user-ada"},
    ],
    ids=lambda f: "+".join(f) or "none",
)
@pytest.mark.parametrize("after", [None, "conn_5"])
def test_every_filtered_page_reads_an_index_in_id_order(tmp_path: Path, filters: dict[str, Any], after: str) -> None:
    store = Store.open(tmp_path / "home", env={"CONNECTOR_CORE_KEY_FILE": str(tmp_path / "keys.json")})
    every = {"profile": None, "status": None, "end_user": None, "organisation": None, "tag": None, "provider": None}
    query, args = _connections_page(_connection_filters(**(every | filters)), after, 500, False)
    plan = " / ".join(str(row[-1]) for row in store._connect().execute("EXPLAIN QUERY PLAN " + query, args))
    assert "TEMP B-TREE" not in plan, plan
    assert re.search(r"(SEARCH|SCAN) c USING (COVERING )?INDEX", plan), plan  # in the index's order
