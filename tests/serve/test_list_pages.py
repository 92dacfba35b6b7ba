"""``GET /v1/connections`` over many pages (issue 19): following ``next`` lists every connection
once, in id order, filtered or not; each page is one bounded read of the store."""

from __future__ import annotations

import time
from typing import Any

import pytest

from connector_core import EndUser, Owner
from connector_core.connection import ConnectionStatus
from connector_core.oauth import TokenSet
from connector_core.secret import Secret
from connector_core.store.sqlite import Store

from .conftest import Api

MORE = 9


def _more(api: Api) -> list[str]:
    """MORE connections besides the fixture's three: every other one Ada's, the third ones revoked."""
    store = api.world.store
    profile = store.get_profile(api.world.profile)
    ids = []
    for n in range(MORE):
        tokens = TokenSet(Secret(f"access-{n}"), "Bearer", Secret(f"refresh-{n}"), expires_at=time.time() + 3600)
        owner = Owner(EndUser("user-ada"), "org-1", ("tier-2",)) if n % 2 == 0 else None
        conn = store.save_connection(
            profile, tokens, requested=(), granted=(), identity={"companyId": f"c{n}"}, provider_initiated=False,
            owner=owner,
        )  # fmt: skip
        if n % 3 == 0:
            store.set_status(conn.id, ConnectionStatus.REVOKED, "revoked")
        ids.append(conn.id)
    return ids


def _follow(api: Api, **params: Any) -> tuple[list[str], int]:
    """Every id listed with ``params``, following ``next``; and the number of pages."""
    ids: list[str] = []
    pages = 0
    after = None
    while True:
        answer = api.client.get("/v1/connections", params={**params, **({"after": after} if after else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages += 1
        ids += [c["id"] for c in body["data"]]
        assert body["next"] is None or body["next"] == body["data"][-1]["id"]
        after = body["next"]
        if after is None:
            return ids, pages


@pytest.mark.parametrize(
    ("params", "filters"),
    [
        ({}, {}),
        ({"status": "revoked"}, {"status": ConnectionStatus.REVOKED}),
        ({"end_user": "user-ada"}, {"end_user": "user-ada"}),
        (
            {"end_user": "user-ada", "status": "connected"},
            {"end_user": "user-ada", "status": ConnectionStatus.CONNECTED},
        ),
        ({"tag": "tier-2"}, {"tag": "tier-2"}),
        ({"unclaimed": "true"}, {"unclaimed": True}),
        ({"provider": "hibob", "organisation": "org-1"}, {"provider": "hibob", "organisation": "org-1"}),
    ],
)
@pytest.mark.parametrize("limit", [1, 2, 5, 200])
def test_following_next_lists_every_connection_once_in_order(
    api: Api, params: dict[str, str], filters: dict[str, Any], limit: int
) -> None:
    _more(api)
    expected = [c.id for c in api.world.store.list_connections(**filters)]
    ids, pages = _follow(api, **params, limit=str(limit))
    assert ids == expected and len(set(ids)) == len(ids)
    assert pages == max(1, -(-len(expected) // limit))  # full pages, then the last; never an empty extra one
    if not params:
        assert len(ids) == 3 + MORE


def test_a_page_is_one_read_of_at_most_its_size(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    _more(api)
    reads: list[int] = []
    rows = Store._rows

    def counted(store: Store, statement: str, params: Any = ()) -> list[Any]:
        found = rows(store, statement, params)
        if "FROM connections c" in statement:
            reads.append(len(found))
        return found

    monkeypatch.setattr(Store, "_rows", counted)
    _, pages = _follow(api, limit="5")
    assert pages == 3 and reads == [6, 6, 2]  # a page and one more row (is there a next page?), per page
