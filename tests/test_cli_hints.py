"""The CLI's own advice after a library error: one line, and never said twice."""

from __future__ import annotations

import io

from connector_core.cli.hints import hint
from connector_core.cli.main import print_error
from connector_core.connector import ConfirmationRequired, ReconnectRequired
from connector_core.errors import ConnectorError


def _printed(error: ConnectorError) -> str:
    err = io.StringIO()
    print_error(err, error)
    return err.getvalue()


def test_reconnect_required_is_told_the_command_once() -> None:
    error = ReconnectRequired("conn_1", "refresh refused")
    assert "connector reconnect conn_1" in error.message  # today's message says it already
    assert hint(error) is None
    assert _printed(error).count("connector reconnect conn_1") == 1


def test_reconnect_required_without_the_advice_gets_it_on_the_same_line() -> None:
    error = ReconnectRequired("conn_1", "refresh refused")
    error.args = ("connection conn_1 needs reconnecting (refresh refused).",)  # the message to come
    assert hint(error) == "run 'connector reconnect conn_1'."
    assert _printed(error) == (
        "connector: error: connection conn_1 needs reconnecting (refresh refused). run 'connector reconnect conn_1'.\n"
    )


def test_confirmation_required_hint_precedes_the_details() -> None:
    error = ConfirmationRequired("reconnecting hibob needs manual steps first: uninstall the app.")
    error.details = ("1. Uninstall", "2. Come back")
    assert _printed(error) == (
        "connector: error: reconnecting hibob needs manual steps first: uninstall the app. "
        "Do them, then confirm (--yes).\n  1. Uninstall\n  2. Come back\n"
    )
    said = ConfirmationRequired("reconnecting hibob needs manual steps first: x Do them, then confirm (--yes)")
    assert hint(said) is None


def test_other_errors_get_no_hint() -> None:
    assert hint(ConnectorError("boom")) is None
    assert _printed(ConnectorError("boom")) == "connector: error: boom\n"


def test_a_subclass_gets_its_bases_hint() -> None:
    class Sub(ReconnectRequired):
        pass

    error = Sub("conn_2", "gone")
    error.args = ("gone",)
    assert hint(error) == "run 'connector reconnect conn_2'."
