"""The CLI's own advice after a library error: one line, keyed on the error's code, never said twice."""

from __future__ import annotations

import io

import pytest

from connector_core.cli import print_error
from connector_core.cli.hints import HINTS, hint
from connector_core.errors import ConfirmationRequired, ConnectorError, ReconnectRequired, StateError, ValidationError


def _printed(error: ConnectorError) -> str:
    err = io.StringIO()
    print_error(err, error)
    return err.getvalue()


def test_the_library_message_names_no_command_and_the_cli_adds_it_on_the_same_line() -> None:
    error = ReconnectRequired("conn_1", "refresh refused")
    assert error.message == "connection conn_1 needs reconnecting (refresh refused)."
    assert "connector" not in error.message
    assert hint(error) == "run 'connector reconnect conn_1'."
    assert _printed(error) == (
        "connector: error: connection conn_1 needs reconnecting (refresh refused). run 'connector reconnect conn_1'.\n"
    )


def test_the_providers_guidance_stays_in_the_message() -> None:
    error = ReconnectRequired("conn_1", "refresh refused", "Uninstall the app in Bob first.")
    assert error.message.endswith("(refresh refused). Uninstall the app in Bob first.")
    assert _printed(error).count("connector reconnect conn_1") == 1


def test_confirmation_required_hint_precedes_the_details() -> None:
    error = ConfirmationRequired("reconnecting hibob needs manual steps first: uninstall the app.")
    error.details = ("1. Uninstall", "2. Come back")
    assert _printed(error) == (
        "connector: error: reconnecting hibob needs manual steps first: uninstall the app. "
        "Do them, then confirm (--yes).\n  1. Uninstall\n  2. Come back\n"
    )


def test_advice_a_message_already_gives_is_not_repeated() -> None:
    said = ConfirmationRequired("do the steps above, then run again with --yes to confirm")
    assert hint(said) is None
    assert _printed(said).count("--yes") == 1


def test_state_errors_get_the_command_that_completes_them() -> None:
    error = StateError("the callback carries no state of ours; refused", code="no_state_of_ours")
    assert hint(error) == "Complete it with 'connector connect PROFILE --provider-initiated URL'."
    assert (
        hint(StateError("carries a state", code="has_state")) == "Complete it with 'connector connect PROFILE' instead."
    )


def test_a_profile_in_use_is_told_about_force() -> None:
    error = ValidationError("profile", "'acme' is used by 1 connection(s)", code="profile_in_use")
    assert _printed(error).rstrip().endswith("Pass --force to force it.")


def test_other_errors_get_no_hint() -> None:
    assert hint(ConnectorError("boom")) is None
    assert _printed(ConnectorError("boom")) == "connector: error: boom\n"


@pytest.mark.parametrize("code", sorted(HINTS))
def test_every_hint_is_one_sentence(code: str) -> None:
    error = ConnectorError("something happened.", code=code)
    advice = hint(error)
    assert advice is not None and advice.endswith(".") and "\n" not in advice


def test_a_subclass_keeps_its_bases_code() -> None:
    class Sub(ReconnectRequired):
        pass

    assert hint(Sub("conn_2", "gone")) == "run 'connector reconnect conn_2'."


def test_a_refused_credential_is_told_to_reconnect_with_the_new_token() -> None:
    error = ReconnectRequired("conn_1", "the provider refused its credentials (401)", "Reset the token in Bob.")
    assert hint(error) == (
        "run 'connector reconnect conn_1' with the new token ('connector reconnect conn_1 --help' lists the options)."
    )
    assert hint(ReconnectRequired("conn_1", "refresh refused")) == "run 'connector reconnect conn_1'."


def test_credentials_rejected_at_connect_are_told_to_check_them() -> None:
    from connector_core import CredentialsRejected

    error = CredentialsRejected("HiBob refused the credentials; nothing was stored.", status=401, guidance="Reset it.")
    assert _printed(error) == (
        "connector: error: HiBob refused the credentials; nothing was stored. Reset it. Check them at the provider "
        "(reset the token if it was lost), then run the command again with them.\n"
    )


@pytest.mark.parametrize(
    ("code", "command"),
    [("unknown_key", "connector keys list"), ("damaged", "connector store info"), ("tampered", "connector store info")],
)
def test_key_and_database_problems_name_the_command_that_shows_more(code: str, command: str) -> None:
    from connector_core.errors import CryptoError, StoreError

    error = (CryptoError if code == "unknown_key" else StoreError)("cannot decrypt it", code=code)
    advice = hint(error)
    assert advice is not None and command in advice
    assert hint((CryptoError if code == "unknown_key" else StoreError)(f"see '{command}'", code=code)) is None
