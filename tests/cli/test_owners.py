"""Whose a connection is, on the command line (issue 17): connect with an owner (a service user,
the OAuth flow, --emulator), list by end user, organisation, tag, provider or unclaimed, show the
owner, attach an unclaimed connection and hand one over only with --replace; a bad value is one
line naming its option, and nothing is stored."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import World

from connector_core.testing import CliResult, run_cli

SERVICE_USER = "service_user"
ADA = ("--end-user", "user-ada", "--end-user-email", "ada@example.com", "--end-user-name", "Ada Lovelace",
       "--organisation", "org-1", "--tag", "tier-1", "--tag", "team:payroll")  # fmt: skip
BOB = ("--end-user", "user-bob", "--organisation", "org-2", "--tag", "tier-1")

Run = Callable[..., CliResult]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with World(tmp_path, "acme") as w:
        monkeypatch.setenv("CONNECTOR_HOME", str(w.home))
        monkeypatch.setenv("CONNECTOR_CORE_KEY_FILE", str(w.key_file))
        yield w


@pytest.fixture
def cli(world: World) -> Run:
    def run(*argv: str) -> CliResult:
        result = run_cli(list(argv), world.plugins)
        assert "Traceback" not in result.err
        return result

    return run


@pytest.fixture
def connect_su(world: World, cli: Run, monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """``connector connect`` with a service user the emulator issued, and the options given."""
    profile = world.credential_profile(SERVICE_USER)

    def run(*options: str) -> CliResult:
        issued = world.issue(SERVICE_USER)
        monkeypatch.setenv("SU_TOKEN", issued["service_user_token"])
        user = ("--service-user-id", issued["service_user_id"], "--service-user-token-env", "SU_TOKEN")
        return cli("connect", profile, *user, *options)

    return run


def _ids(cli: Run, *filters: str) -> list[str]:
    listed = cli("connections", "list", *filters, "--json")
    assert listed.code == 0, listed.err
    return [c["id"] for c in json.loads(listed.out)["connections"]]


def _made(result: CliResult) -> dict[str, Any]:
    assert result.code == 0, result.err
    connection: dict[str, Any] = json.loads(result.out)["connection"]
    return connection


def _rows(text: str) -> dict[str, str]:
    """A connection summary's rows, key to value (the key column's width depends on the keys)."""
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in text.splitlines() if "  " in line)


def _error(result: CliResult, code: int = 1) -> str:
    assert result.code == code, result
    (line,) = result.err.splitlines()
    assert line.startswith("connector: error: ")
    return line


def test_connect_with_an_owner_and_list_by_it(cli: Run, connect_su: Callable[..., CliResult]) -> None:
    ada = _made(connect_su(*ADA, "--json"))
    assert ada["owner"] == {
        "end_user": {"id": "user-ada", "email": "ada@example.com", "display_name": "Ada Lovelace"},
        "organisation": "org-1",
        "tags": ["tier-1", "team:payroll"],
    }
    bob = _made(connect_su(*BOB, "--json"))["id"]
    nobody = _made(connect_su("--json"))
    assert nobody["owner"] == {"end_user": None, "organisation": None, "tags": []}

    assert _ids(cli, "--end-user", "user-ada") == [ada["id"]]
    assert _ids(cli, "--organisation", "org-2") == [bob]
    assert _ids(cli, "--tag", "tier-1") == sorted([ada["id"], bob])
    assert _ids(cli, "--tag", "tier-1", "--organisation", "org-1") == [ada["id"]]  # every filter holds
    assert _ids(cli, "--end-user", "user-bob", "--tag", "team:payroll") == []
    assert _ids(cli, "--unclaimed") == [nobody["id"]]
    assert _ids(cli, "--provider", "hibob", "--unclaimed") == [nobody["id"]]
    assert _ids(cli, "--provider", "hibob") == sorted([ada["id"], bob, nobody["id"]])
    assert cli("connections", "list", "--provider", "other").out == "No connections.\n"

    table = cli("connections", "list").out.splitlines()
    assert table[0].split() == ["ID", "PROFILE", "PROVIDER", "ENV", "AUTH", "STATUS", "EXPIRES", "ACCOUNT", "OWNER"]
    owners = {row.split()[0]: row.split()[-1] for row in table[2:]}
    assert owners == {ada["id"]: "user-ada", bob: "user-bob", nobody["id"]: "(unclaimed)"}
    # The text of connect shows whose it is too.
    shown = _rows(connect_su(*BOB).out)
    assert (shown["end user"], shown["organisation"], shown["tags"]) == ("user-bob", "org-2", "tier-1")
    assert "end user email" not in shown and "end user name" not in shown


def test_show_gives_the_end_user_organisation_and_tags(cli: Run, connect_su: Callable[..., CliResult]) -> None:
    ada = _made(connect_su(*ADA, "--json"))["id"]
    assert (
        _rows(cli("connections", "show", ada).out).items()
        >= {
            "end user": "user-ada",
            "end user email": "ada@example.com",
            "end user name": "Ada Lovelace",
            "organisation": "org-1",
            "tags": "tier-1 team:payroll",
        }.items()
    )
    shown = json.loads(cli("connections", "show", ada, "--json").out)
    assert shown["owner"]["end_user"]["display_name"] == "Ada Lovelace" and shown["history"]

    nobody = _made(connect_su("--json"))["id"]
    rows = _rows(cli("connections", "show", nobody).out)
    assert rows["end user"] == "(unclaimed)"
    assert not {"end user email", "end user name", "organisation", "tags"} & set(rows)


def test_attach_claims_an_unclaimed_connection_and_hands_one_over_only_with_replace(
    cli: Run, connect_su: Callable[..., CliResult]
) -> None:
    cid = _made(connect_su("--json"))["id"]
    attached = cli("connections", "attach", cid, *ADA)
    assert attached.code == 0, attached.err
    assert attached.out.startswith(f"Connection {cid} belongs to end user user-ada.\n")
    assert _rows(attached.out)["end user name"] == "Ada Lovelace"
    assert _ids(cli, "--unclaimed") == [] and _ids(cli, "--end-user", "user-ada") == [cid]

    # The same end user: the owner is set as a whole (the tags not given are gone).
    retagged = json.loads(cli("connections", "attach", cid, "--end-user", "user-ada", "--tag", "tier-2", "--json").out)
    assert retagged["id"] == cid
    assert retagged["owner"] == {
        "end_user": {"id": "user-ada", "email": None, "display_name": None},
        "organisation": None,
        "tags": ["tier-2"],
    }

    refused = _error(cli("connections", "attach", cid, *BOB))
    assert refused == (
        f"connector: error: --end-user: connection {cid} belongs to end user 'user-ada', not 'user-bob'; nothing "
        "was changed. Pass --replace to hand it over."
    )
    assert _ids(cli, "--end-user", "user-ada") == [cid] and _ids(cli, "--end-user", "user-bob") == []

    handed = json.loads(cli("connections", "attach", cid, *BOB, "--replace", "--json").out)
    assert handed["owner"]["end_user"]["id"] == "user-bob" and handed["owner"]["organisation"] == "org-2"
    assert _ids(cli, "--end-user", "user-bob") == [cid] and _ids(cli, "--end-user", "user-ada") == []
    history = [e["reason"] for e in json.loads(cli("connections", "show", cid, "--json").out)["history"]]
    assert history[-3:] == [f"owner set: end user user-{who}" for who in ("ada", "ada", "bob")]


def test_attach_needs_an_end_user_and_a_known_connection(cli: Run, connect_su: Callable[..., CliResult]) -> None:
    cid = _made(connect_su("--json"))["id"]
    missing = _error(cli("connections", "attach", cid, "--tag", "tier-1"), code=2)
    assert "the following arguments are required: --end-user" in missing
    unknown = _error(cli("connections", "attach", "conn_nope", "--end-user", "user-ada"))
    assert "conn_nope" in unknown
    assert _ids(cli, "--unclaimed") == [cid]


def test_the_oauth_flow_makes_the_end_users_connection(world: World, cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    # The profile's redirect URI is the platform's: the person's browser consents (here, scripted),
    # and the callback URL it was sent to is pasted back.
    callbacks: list[str] = []

    def browser(url: str, env: dict[str, str]) -> bool:
        callbacks.append(world.consent(url))
        return True

    class Pasted(io.StringIO):
        def readline(self, size: int | None = -1) -> str:
            return callbacks[-1] + "\n"

    monkeypatch.setattr("connector_core.cli.flow.open_in_browser", browser)
    monkeypatch.setattr("sys.stdin", Pasted())
    made = _made(cli("connect", "--end-user", "user-ada", "acme", "--organisation", "org-1", "--json"))
    assert made["owner"]["end_user"]["id"] == "user-ada" and made["owner"]["organisation"] == "org-1"
    assert made["auth_kind"] == "oauth2_authorization_code" and len(callbacks) == 1
    assert world.store.get_connection(made["id"]).owner.end_user is not None


def test_connect_emulator_takes_an_owner_before_and_after_the_provider(cli: Run) -> None:
    made = _made(cli("connect", "--tag", "demo", "hibob", "--emulator", "--end-user", "user-ada", "--tag", "tier-1",
                     "--json"))  # fmt: skip
    assert made["owner"]["end_user"]["id"] == "user-ada" and made["owner"]["tags"] == ["demo", "tier-1"]
    assert _ids(cli, "--end-user", "user-ada", "--tag", "demo") == [made["id"]]
    su = _made(cli("connect", "hibob", "--emulator", "--auth-type", SERVICE_USER, "--end-user", "user-bob", "--json"))
    assert su["owner"]["end_user"]["id"] == "user-bob" and su["auth_type"] == SERVICE_USER


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--end-user", "a b"), "--end-user: expected 1-200 printable characters without spaces, got 'a b'"),
        (("--end-user", "u", "--end-user-email", "nope"), "--end-user-email: expected an email address"),
        (("--end-user", "u", "--end-user-name", "a\tb"), "--end-user-name: expected printable characters"),
        (("--end-user", "u", "--tag", "ok", "--tag", "Upper"), "--tag: expected lower-case letters"),
        (("--organisation", "has space"), "--organisation: expected 1-200 printable characters"),
        (("--end-user-email", "ada@example.com"), "--end-user-email: is the end user's: give --end-user ID with it"),
    ],
    ids=["end user", "email", "name", "tag", "organisation", "email alone"],
)
def test_a_bad_owner_is_one_line_naming_its_option_and_nothing_is_stored(
    world: World, cli: Run, connect_su: Callable[..., CliResult], options: tuple[str, ...], message: str
) -> None:
    line = _error(connect_su(*options))
    assert line.startswith(f"connector: error: {message}")
    assert world.emu.stats.resource_calls == {}  # checked before the credentials were even tried
    assert _error(cli("connect", "hibob", "--emulator", *options)).startswith(f"connector: error: {message}")
    assert _ids(cli) == []
    # Nor did --emulator start an emulator and record its profile.
    assert sorted(p.name for p in world.store.list_profiles()) == ["acme", "acme-service_user"]


def test_a_bad_owner_leaves_an_attached_connection_as_it_was(cli: Run, connect_su: Callable[..., CliResult]) -> None:
    cid = _made(connect_su(*ADA, "--json"))["id"]
    before = cli("connections", "show", cid, "--json").out
    for options, option in (
        (("--end-user", "a b"), "--end-user"),
        (("--end-user", "user-ada", "--end-user-email", "nope"), "--end-user-email"),
        (("--end-user", "user-ada", "--tag", "Upper"), "--tag"),
    ):
        assert _error(cli("connections", "attach", cid, *options, "--replace")).startswith(
            f"connector: error: {option}: "
        )
    assert cli("connections", "show", cid, "--json").out == before


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (("--end-user", "a b"), "--end-user: expected 1-200 printable characters"),
        (("--tag", "Upper"), "--tag: expected lower-case letters"),
        (("--organisation", ""), "--organisation: expected 1-200 printable characters"),
    ],
)
def test_list_filters_are_checked(cli: Run, filters: tuple[str, ...], message: str) -> None:
    assert _error(cli("connections", "list", *filters)).startswith(f"connector: error: {message}")


def test_unclaimed_and_an_end_user_cannot_be_combined(cli: Run) -> None:
    line = _error(cli("connections", "list", "--unclaimed", "--end-user", "user-ada"), code=2)
    assert "argument --end-user: not allowed with argument --unclaimed" in line


def test_an_install_begun_at_the_provider_is_attached_afterwards(world: World, cli: Run) -> None:
    line = _error(cli("connect", "acme", "--provider-initiated", "https://platform.example/cb?code=x", *BOB))
    assert "--provider-initiated: an install that began at the provider is unclaimed until it is attached" in line
    assert "'connector connections attach CONNECTION --end-user ID'" in line
    assert _ids(cli) == [] and world.lines("POST /sandbox/oauth2/token") == []


def test_an_end_users_name_cannot_reorder_the_terminal(cli: Run, connect_su: Callable[..., CliResult]) -> None:
    # The display name is the platform's text about its end user: shown, but never raw.
    cid = _made(connect_su("--end-user", "user-eve", "--end-user-name", "Eve \u202eevil", "--json"))["id"]
    text = cli("connections", "show", cid).out
    assert "\u202e" not in text and _rows(text)["end user name"] == "Eve \\u202eevil"
    assert json.loads(cli("connections", "show", cid, "--json").out)["owner"]["end_user"]["display_name"] == (
        "Eve \u202eevil"
    )
