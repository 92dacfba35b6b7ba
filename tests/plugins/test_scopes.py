"""Scope parsing and checking, and the least set for actions."""

from __future__ import annotations

import pytest

from connector_core import (
    Plugins,
    ScopeError,
    Severity,
    UnknownNameError,
    check_scopes,
    parse_scopes,
    scopes_for_actions,
)


def test_parse_accepts_spaces_commas_newlines_and_lists() -> None:
    assert parse_scopes("a:read  b:write,c:read\nd") == ("a:read", "b:write", "c:read", "d")
    assert parse_scopes(["a:read b:read", "c:read"]) == ("a:read", "b:read", "c:read")
    assert parse_scopes("a a") == ("a", "a")  # duplicates are kept for the checker to report


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "scopes: expected at least one scope, got none"),
        (" , ", "expected at least one scope"),
        ('a"b', "'a\"b' is not a valid scope"),
        ("a\\b", "is not a valid scope"),
        ("caf\u00e9:read", "'caf\\\\xe9:read' is not a valid scope"),
        ("x " * 201, "expected at most 200 scopes, got 201"),
    ],
)
def test_parse_rejects_malformed_input(value: str, message: str) -> None:
    with pytest.raises(ScopeError) as info:
        parse_scopes(value)
    assert message in str(info.value)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ScopeError, match="expected scope strings, got int"):
        parse_scopes([1])  # type: ignore[list-item]


def test_check_of_a_good_set(hibob_plugins: Plugins) -> None:
    catalogue = hibob_plugins.declaration("hibob").scope_catalogue
    assert catalogue is not None
    result = check_scopes(catalogue, ["employee_data:read", "timeoff:read"])
    assert result.ok
    assert result.requested == ("employee_data:read", "timeoff:read")
    assert not result.errors
    assert not result.warnings


def test_check_reports_every_problem(hibob_plugins: Plugins) -> None:
    catalogue = hibob_plugins.declaration("hibob").scope_catalogue
    assert catalogue is not None
    result = check_scopes(
        catalogue,
        ["tasks:read", "employee_data:wrte", "goals:read", "employee_data.sensitive:read", "goals:read", "zzz"],
    )
    assert not result.ok
    by_code = {(f.code, f.scope): f for f in result.findings}
    no_read = by_code[("no_read_scope", "tasks:read")]
    assert no_read.severity is Severity.ERROR
    assert no_read.suggestion == "tasks:write"
    assert "needed even to read" in no_read.message
    typo = by_code[("unknown_scope", "employee_data:wrte")]
    assert typo.suggestion == "employee_data:write"
    assert "did you mean employee_data:write" in typo.message
    assert by_code[("unknown_scope", "zzz")].suggestion is None
    assert by_code[("module_required", "goals:read")].severity is Severity.WARNING
    assert "Talent module" in by_code[("module_required", "goals:read")].message
    assert by_code[("sensitive_scope", "employee_data.sensitive:read")].severity is Severity.WARNING
    assert by_code[("duplicate_scope", "goals:read")].severity is Severity.WARNING
    assert by_code[("missing_minimum", "employee_data:read")].severity is Severity.ERROR
    assert result.requested.count("goals:read") == 1


def test_hiring_read_is_explained(hibob_plugins: Plugins) -> None:
    catalogue = hibob_plugins.declaration("hibob").scope_catalogue
    assert catalogue is not None
    result = check_scopes(catalogue, ["employee_data:read", "hiring:read"])
    assert [f.code for f in result.errors] == ["no_read_scope"]
    assert result.errors[0].suggestion == "hiring:write"


def test_case_mistake_suggests_the_real_scope(hibob_plugins: Plugins) -> None:
    catalogue = hibob_plugins.declaration("hibob").scope_catalogue
    assert catalogue is not None
    result = check_scopes(catalogue, ["EMPLOYEE_DATA:READ"])
    assert result.errors[0].suggestion == "employee_data:read"


def test_scope_notes_are_info(hibob_plugins: Plugins) -> None:
    catalogue = hibob_plugins.declaration("hibob").scope_catalogue
    assert catalogue is not None
    result = check_scopes(catalogue, ["employee_data:read", "tasks:write"])
    notes = [f for f in result.findings if f.code == "scope_note" and f.scope == "tasks:write"]
    assert notes
    assert notes[0].severity is Severity.INFO
    assert result.ok


def test_scopes_for_actions_is_the_least_set(hibob_plugins: Plugins) -> None:
    decl = hibob_plugins.declaration("hibob")
    assert scopes_for_actions(decl, ["list_tasks"]) == ("employee_data:read", "tasks:write")
    assert scopes_for_actions(decl, ["list_employees"]) == ("employee_data:read",)
    both = scopes_for_actions(decl, ["create_time_off_request", "list_documents", "complete_task"])
    assert both == ("employee_data:read", "documents:read", "timeoff:write", "tasks:write")
    with pytest.raises(
        UnknownNameError, match="unknown action 'list_task' for provider 'hibob'; did you mean 'list_tasks'"
    ):
        scopes_for_actions(decl, ["list_task"])
    with pytest.raises(ScopeError, match="actions: expected at least one action"):
        scopes_for_actions(decl, [])
