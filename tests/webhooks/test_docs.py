"""docs/webhooks.md keeps up with connector_core.webhooks: every public name is documented,
every code verify() raises is in its table, and the receiver example works as printed."""

from __future__ import annotations

import inspect
import re
import time

import pytest
from starlette.testclient import TestClient
from support import REPO

import connector_core.webhooks as webhooks
from connector_core.webhooks import new_secret, webhook_headers

PAGE = (REPO / "docs" / "webhooks.md").read_text(encoding="utf-8")
CODES = ("missing_header", "bad_timestamp", "expired", "bad_signature", "bad_body")


def test_every_public_name_is_documented() -> None:
    assert len(webhooks.__all__) == 24
    missing = [name for name in webhooks.__all__ if f"`{name}" not in PAGE]
    assert missing == []


def test_every_public_function_and_class_has_a_docstring() -> None:
    checked = 0
    for name in webhooks.__all__:
        obj = getattr(webhooks, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, name
            checked += 1
    assert checked == 23


def test_every_verification_code_is_in_the_table() -> None:
    section = PAGE.split("### With `connector_core.webhooks.verify`", 1)[1].split("\n### ", 1)[0]
    table = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    assert tuple(table) == ("code", *CODES)  # the header row, then one row per code
    source = inspect.getsource(webhooks.signing)
    assert set(re.findall(r'code="([a-z_]+)"', source)) == set(CODES)


def test_the_receiver_example_works_as_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    example = PAGE.split("### With `connector_core.webhooks.verify`", 1)[1].split("```python\n", 1)[1]
    example = example.split("```", 1)[0]
    old, new = new_secret(), new_secret()
    monkeypatch.setenv("WEBHOOK_SECRETS", f"{old.reveal()} {new.reveal()}")
    scope: dict[str, object] = {}
    exec(compile(example, "docs/webhooks.md", "exec"), scope)  # the page's own example

    body = b'{"id": "evt_01", "type": "connection.created", "timestamp": "2026-01-01T00:00:00Z", "data": {}}'
    headers = webhook_headers([new], "evt_01", int(time.time()), body)
    with TestClient(scope["app"]) as client:  # type: ignore[arg-type]
        assert client.post("/hooks/connector", content=body, headers=headers).status_code == 204
        assert client.post("/hooks/connector", content=body, headers=headers).status_code == 204
        assert scope["PROCESSED"] == {"evt_01"}  # the repeat was recognised
        tampered = client.post("/hooks/connector", content=body + b" ", headers=headers)
        assert (tampered.status_code, tampered.text) == (400, "bad_signature")
        other = webhook_headers([new_secret()], "evt_02", int(time.time()), body)
        assert client.post("/hooks/connector", content=body, headers=other).status_code == 400
