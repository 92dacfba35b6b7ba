"""``connector connections list`` over many connections (issue 19): the store is read in keyset
pages of bounded size and nothing is decrypted; ``--json`` prints exactly what ``json.dumps``
of the whole listing printed before, and the table is exactly the table it was, both written in
a few large chunks; the filters and paging hold; a reader that leaves early (``| head``) ends
the command quietly."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import hibob, profile_draft

from connector_core import EndUser, Owner, Store
from connector_core.cli import main
from connector_core.cli.output import WRITE_CHUNK, stream_table, table, terminal_safe
from connector_core.cli.views import auth_kinds, expiry, owner_column
from connector_core.connection import Connection, ConnectionStatus
from connector_core.connection_json import connection_data, connection_json_encoder
from connector_core.crypto import KeyRing
from connector_core.oauth import TokenSet
from connector_core.profiles import ProfileDraft
from connector_core.secret import Secret
from connector_core.store.sql import LISTING_PAGE, aad
from connector_core.testing import run_cli

BULK = 1_234  # three pages of 500, the last one short


def _bulk(store: Store, profile_id: str, count: int) -> None:
    """``count`` connections straight into the table (as benchmarks/store.py's populate does):
    every third owned by one of 10 end users with a tag, one in 7 revoked."""
    ring = store.keyring
    rows, secrets = [], []
    for n in range(count):
        cid = f"conn_{uuid.uuid4().hex}"
        owned = n % 3 == 0
        rows.append(
            (
                *(cid, profile_id, "hibob", "sandbox", "oauth2", "revoked" if n % 7 == 0 else "connected"),
                *("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", '["a:read", "b:write"]', '["a:read"]'),
                *(json.dumps({"companyId": str(600000 + n)}), "Bearer", 1.9e9 + n),
                *(f"user-{n % 10}" if owned else None, "org-1" if owned else None),
                json.dumps([f"tier-{n % 2}"] if owned else []),
            )
        )
        kid, nonce, ct = ring.encrypt("t" * 40, aad(cid, "access_token"))
        secrets.append((cid, "access_token", kid, nonce, ct))
    with store._write() as db:
        db.executemany(
            "INSERT INTO connections (id, profile_id, provider, environment, auth_type, status, created_at, "
            "updated_at, requested_scopes, granted_scopes, identity, token_type, expires_at, end_user_id, "
            "organisation, tags) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        db.executemany("INSERT INTO secrets (owner_id, name, key_id, nonce, ciphertext) VALUES (?,?,?,?,?)", secrets)
        store._seal(db, "connections")


def _varied(store: Store) -> None:
    """Connections unlike the bulk ones: credentials, an owner with an email and a name, an
    identity a terminal must not obey, a provider that is gone, no expiry, a status reason."""
    oauth = store.get_profile("acme")
    tokens = TokenSet(Secret("access-1"), "Bearer", Secret("refresh-1"), expires_at=time.time() + 3600)
    ada = Owner(EndUser("user-ada", "ada@example.com", "Ada Lovelace"), "org-1", ("tier-1", "team:payroll"))
    store.save_connection(
        oauth, tokens, requested=("x",), granted=(), identity={"companyId": "ÅÄÖ \u202e evil"}, provider_initiated=True,
        owner=ada,
    )  # fmt: skip
    no_expiry = TokenSet(Secret("access-2"), "Bearer", None, expires_at=None)
    cid = store.save_connection(oauth, no_expiry, requested=(), granted=(), identity={}, provider_initiated=False).id
    store.set_status(cid, ConnectionStatus.NEEDS_RECONNECT, "the grant was revoked at the provider")
    service = store.create_profile(
        ProfileDraft(
            name="acme-su", provider="hibob", auth_type="service_user", environment="sandbox",
            credential_set="development", values=(), secrets=(), scopes=(), actions=(),
        )
    )  # fmt: skip
    store.save_connection(
        service, None, requested=(), granted=(), identity={"service_user_id": "SERVICE-1"}, provider_initiated=False,
        credentials={"service_user_id": Secret("SERVICE-1"), "service_user_token": Secret("token-1")},
    )  # fmt: skip
    gone = store.create_profile(
        ProfileDraft(
            name="elsewhere", provider="nowhere", auth_type="oauth2", environment="prod", credential_set="prod",
            values=(), secrets=(), scopes=(), actions=(),
        )
    )  # fmt: skip
    store.save_connection(gone, tokens, requested=(), granted=(), identity={"n": "1"}, provider_initiated=False)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home, key_file = tmp_path / "home", tmp_path / "keys.json"
    monkeypatch.setenv("CONNECTOR_HOME", str(home))
    monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(key_file))
    with Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": str(key_file)}) as store:
        profile = store.create_profile(profile_draft("acme"))
        _varied(store)
        _bulk(store, profile.id, BULK)
    return home


def _store(home: Path) -> Store:
    return Store.open(home)


def _old_json(conns: tuple[Connection, ...], limit: int | None = None) -> str:
    """What ``connections list --json`` printed before it streamed: json.dump of the whole listing."""
    kinds = auth_kinds(hibob())
    data = {
        "connections": [connection_data(c, kinds.get(c)) for c in conns],
        "next_after": conns[-1].id if conns and limit and len(conns) == limit else None,
    }
    return terminal_safe(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _old_table(conns: tuple[Connection, ...]) -> str:
    """The table ``connections list`` printed before it streamed (its rows built as they were)."""
    kinds = auth_kinds(hibob())
    out = io.StringIO()
    headers = ("ID", "PROFILE", "PROVIDER", "ENV", "AUTH", "STATUS", "EXPIRES", "ACCOUNT", "OWNER")
    rows = [
        (
            *(c.id, c.profile, c.provider, c.environment, c.auth_type, c.status.value, expiry(c, kinds.get(c))),
            *(", ".join(v for _, v in c.identity) or "-", owner_column(c.owner)),
        )
        for c in conns
    ]
    table(out, headers, rows)
    return terminal_safe(out.getvalue())


FILTERS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    ((), {}),
    (("--status", "revoked"), {"status": ConnectionStatus.REVOKED}),
    (("--profile", "acme-su"), {"profile": "acme-su"}),
    (("--provider", "nowhere"), {"provider": "nowhere"}),
    (("--end-user", "user-3"), {"end_user": "user-3"}),
    (("--unclaimed",), {"unclaimed": True}),
    (("--organisation", "org-1", "--tag", "tier-1"), {"organisation": "org-1", "tag": "tier-1"}),
    (
        ("--status", "connected", "--end-user", "user-ada"),
        {"status": ConnectionStatus.CONNECTED, "end_user": "user-ada"},
    ),
    (("--tag", "nothing-has-it"), {"tag": "nothing-has-it"}),
]


@pytest.mark.parametrize(("options", "filters"), FILTERS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_json_is_what_json_dump_of_the_whole_listing_was(
    home: Path, options: tuple[str, ...], filters: dict[str, Any]
) -> None:
    expected = _old_json(_store(home).list_connections(**filters))
    result = run_cli(["connections", "list", *options, "--json"], hibob())
    assert result.code == 0 and result.err == "", result.err
    assert result.out == expected
    assert len(json.loads(result.out)["connections"]) == len(_store(home).list_connections(**filters))


def test_the_filters_select_what_the_store_does(home: Path) -> None:
    store = _store(home)
    assert len(store.list_connections()) == BULK + 4
    revoked = store.list_connections(status=ConnectionStatus.REVOKED)
    assert 0 < len(revoked) < BULK and all(c.status is ConnectionStatus.REVOKED for c in revoked)
    assert {c.owner.end_user.id for c in store.list_connections(end_user="user-3") if c.owner.end_user} == {"user-3"}
    assert [c.provider for c in store.list_connections(provider="nowhere")] == ["nowhere"]


@pytest.mark.parametrize("limit", [1, 7, 500, 501, BULK + 4, BULK + 10])
def test_paging_with_limit_and_after_links_every_page(home: Path, limit: int) -> None:
    store = _store(home)
    everything = [c.id for c in store.list_connections()]
    seen: list[str] = []
    after: list[str] = []
    while True:
        result = run_cli(["connections", "list", "--json", "--limit", str(limit), *after], hibob())
        assert result.code == 0, result.err
        page = json.loads(result.out)
        expected = store.list_connections(limit=limit, after=after[1] if after else None)
        assert result.out == _old_json(expected, limit)
        seen += [c["id"] for c in page["connections"]]
        if page["next_after"] is None:
            break
        assert page["next_after"] == page["connections"][-1]["id"]
        after = ["--after", page["next_after"]]
    assert seen == everything


@pytest.mark.parametrize(("options", "filters"), FILTERS[:5], ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_the_table_is_the_table_it_was(
    home: Path, monkeypatch: pytest.MonkeyPatch, options: tuple[str, ...], filters: dict[str, Any]
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1.9e9 + 600.5)  # some rows expired, some not: both widths
    expected = _old_table(_store(home).list_connections(**filters))
    result = run_cli(["connections", "list", *options], hibob())
    assert result.code == 0 and result.err == ""
    assert result.out == expected
    lines = result.out.splitlines()
    assert lines[1].startswith("-----") and len(lines) == len(_store(home).list_connections(**filters)) + 2
    if not filters:  # the identity cannot reorder the line
        assert "\u202e" not in result.out and "\\u202e" in result.out


def test_nothing_listed_says_so(home: Path) -> None:
    assert run_cli(["connections", "list", "--end-user", "nobody"], hibob()).out == "No connections.\n"
    result = run_cli(["connections", "list", "--end-user", "nobody", "--json"], hibob())
    assert result.out == '{\n  "connections": [],\n  "next_after": null\n}\n' == _old_json(())


class _Recorder:
    """Every read statement of the listing's store and how many rows it returned."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads: list[tuple[str, int]] = []
        self.decrypted = 0
        rows, decrypt = Store._rows, KeyRing.decrypt

        def counted_rows(store: Store, statement: str, params: Any = ()) -> list[Any]:
            found = rows(store, statement, params)
            self.reads.append((statement, len(found)))
            return found

        def counted_decrypt(ring: KeyRing, *args: Any, **kwargs: Any) -> str:
            self.decrypted += 1
            return decrypt(ring, *args, **kwargs)

        monkeypatch.setattr(Store, "_rows", counted_rows)
        monkeypatch.setattr(KeyRing, "decrypt", counted_decrypt)

    def listing(self) -> list[int]:
        return [n for statement, n in self.reads if "FROM connections c" in statement]


@pytest.mark.parametrize("json_output", [True, False], ids=["json", "table"])
def test_the_store_is_read_in_pages_and_nothing_is_decrypted(
    home: Path, monkeypatch: pytest.MonkeyPatch, json_output: bool
) -> None:
    recorder = _Recorder(monkeypatch)
    result = run_cli(["connections", "list", *(["--json"] if json_output else [])], hibob())
    assert result.code == 0, result.err
    pages = recorder.listing()
    passes = 1 if json_output else 2  # the table reads twice: its widths, then its rows
    per_pass = [LISTING_PAGE, LISTING_PAGE, (BULK + 4) % LISTING_PAGE]
    assert pages == per_pass * passes
    assert recorder.decrypted == 0


def test_a_limit_reads_no_more_than_it_lists(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder(monkeypatch)
    assert run_cli(["connections", "list", "--json", "--limit", "700"], hibob()).code == 0
    assert recorder.listing() == [500, 200]


class _Counting(io.StringIO):
    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.mark.parametrize("json_output", [True, False], ids=["json", "table"])
def test_output_is_written_in_a_few_large_chunks(
    home: Path, monkeypatch: pytest.MonkeyPatch, json_output: bool
) -> None:
    stdout = _Counting()
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["connections", "list", *(["--json"] if json_output else [])], plugins=hibob()) == 0
    written = len(stdout.getvalue())
    assert written > 3 * WRITE_CHUNK if json_output else written > WRITE_CHUNK
    # One write per chunk (and the closing one): not one per row, let alone ~90 per row.
    assert stdout.writes <= written // WRITE_CHUNK + 2
    assert stdout.writes * 50 < BULK


def test_memory_stays_bounded_as_the_listing_grows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The peak of Python's allocations while listing 6 pages is about that of listing 2 (the
    page and a chunk of output), where holding every row made it grow with the listing."""

    def peak(count: int) -> int:
        home, key_file = tmp_path / str(count), tmp_path / f"{count}.json"
        with Store.open(home, env={"CONNECTOR_CORE_KEY_FILE": str(key_file)}) as store:
            _bulk(store, store.create_profile(profile_draft("acme")).id, count)
        monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(key_file))
        peaks = []
        plugins = hibob()
        for _ in range(2):  # the first run also imports what a listing needs
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                tracemalloc.start()
                assert main(["--home", str(home), "connections", "list", "--json"], plugins=plugins) == 0
                peaks.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
        return peaks[-1]

    small, large = peak(2 * LISTING_PAGE), peak(6 * LISTING_PAGE)
    assert large < small * 1.3, (small, large)
    assert large < 4 * 2**20  # six pages held at once (3,000 connections and their text) would be more


def test_a_reader_that_leaves_early_ends_the_listing_quietly(home: Path, tmp_path: Path) -> None:
    for json_output in (True, False):
        argv = [sys.executable, "-m", "connector_core", "connections", "list", *(["--json"] if json_output else [])]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
            assert child.stdout is not None and child.stderr is not None
            first = child.stdout.read(100)
            child.stdout.close()  # as `| head -c 100` does
            err = child.stderr.read()
            code = child.wait(60)
        assert first.startswith(b"{" if json_output else b"ID")
        assert (code, err) == (0, b"")


# --------------------------------------------------------------- the encoder


def _connection(**changes: Any) -> Connection:
    base: dict[str, Any] = {
        "id": "conn_1", "profile": "acme", "profile_id": "prof_1", "provider": "hibob", "environment": "sandbox",
        "auth_type": "oauth2", "status": ConnectionStatus.CONNECTED, "status_reason": None, "token_type": "Bearer",
        "expires_at": 1.9e9, "requested_scopes": ("a", "b"), "granted_scopes": ("a",),
        "identity": (("companyId", "6"),), "provider_initiated": False, "token_version": 3,
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z", "refreshed_at": None,
    }  # fmt: skip
    return Connection(**{**base, **changes})


ODD = [
    {},
    {"status": ConnectionStatus.REVOKED},
    {"status": ConnectionStatus.DISCONNECTED, "expires_at": None},
    {"expires_at": None, "token_type": None, "status_reason": 'why "quoted" \\ and\nnewline\t'},
    {"expires_at": 1_900_000_000},  # an int, as a caller may build one
    {"expires_at": float("inf")},
    {"requested_scopes": (), "granted_scopes": (), "identity": ()},
    {"identity": (("companyId", 6), ("n", None))},  # not strings: json writes them
    {"identity": (("ключ", "значение \u202e \x85 \U0001f600"),), "profile": "ünïcode"},
    {"requested_scopes": ("a", 1)},
    {"provider_initiated": True, "refreshed_at": "2026-01-03T00:00:00Z"},
    {"owner": Owner(EndUser("user-ada", "ada@example.com", "Ada"), "org-1", ("t1", "t2"))},
    {"owner": Owner(None, "org-2")},
]


@pytest.mark.parametrize("changes", ODD)
@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_the_encoder_writes_what_json_dumps_writes(changes: dict[str, Any], level: int) -> None:
    conn = _connection(**changes)
    kinds = auth_kinds(hibob())
    encode = connection_json_encoder(level)
    for auth in (None, kinds.get(conn), kinds.get(_connection(auth_type="service_user"))):
        expected = json.dumps(connection_data(conn, auth), indent=2, ensure_ascii=False).replace(
            "\n", "\n" + "  " * level
        )
        assert encode(conn, auth) == expected
        assert encode(conn, auth) == expected  # again: what it remembered is the same text


def test_the_encoder_covers_every_key_of_the_connection_object() -> None:
    conn = _connection(owner=Owner(EndUser("u")))
    assert list(json.loads(connection_json_encoder()(conn, None))) == list(connection_data(conn))


def test_stream_table_is_table_for_any_rows() -> None:
    rows = [("a", "bb", ""), ("cccc", "", "d e"), ("", "x" * 30, "z ")]
    headers = ("H1", "H2", "H3")
    for subset in (rows, rows[:1], rows[1:]):
        old, new = io.StringIO(), io.StringIO()
        table(old, headers, subset, indent="  ")
        assert stream_table(new, headers, lambda s=subset: iter(s), indent="  ") is True
        assert new.getvalue() == old.getvalue()
    empty = io.StringIO()
    assert stream_table(empty, headers, lambda: iter(())) is False and empty.getvalue() == ""
