"""Meta-tests: every hook is documented with its real signature and has a test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from support import REPO

import connector_core
from connector_core import hookspecs

HOOKS = sorted(hookspecs.__all__)


def signature_line(name: str) -> str:
    func = getattr(hookspecs, name)
    source = inspect.getsource(func)
    head = source[source.index("def ") + 4 : source.index(":\n")]
    return " ".join(head.split())


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook: str) -> None:
    text = " ".join((REPO / "docs" / "architecture.md").read_text().split())
    assert signature_line(hook) in text, f"docs/architecture.md lacks `{signature_line(hook)}`"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    here = Path(__file__).resolve()
    tests = "".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py") if p.resolve() != here)
    assert f"def {hook}(" in tests, f"no test implements {hook}"


def test_hookspecs_all_lists_every_spec() -> None:
    specs = {n for n, f in vars(hookspecs).items() if n.startswith("connector_core_") and callable(f)}
    assert specs == set(hookspecs.__all__)


def test_public_api_is_exported_and_documented() -> None:
    for name in connector_core.__all__:
        obj = getattr(connector_core, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"
    assert (Path(connector_core.__file__).parent / "py.typed").exists()
