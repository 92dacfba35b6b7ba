"""The package's shape, held against docs/architecture.md and its own imports.

* The module map in docs/architecture.md names every module of ``connector_core``
  once, and nothing that does not exist.
* The import graph has no cycle, between files or between folders: every import
  counts, those under ``TYPE_CHECKING`` and inside functions too.
* An import inside a function says why in a short comment (on its line or the line
  above), so that none of them hides a cycle unnoticed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from support import REPO

PACKAGE = REPO / "connector_core"
ARCHITECTURE = REPO / "docs" / "architecture.md"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules of ours that ``node`` (in ``module``) imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        target = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
        submodules = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
        names = submodules + ([target] if len(submodules) < len(node.names) else [])
    found = []
    for name in names:
        while name not in MODULES and "." in name:
            name = name.rpartition(".")[0]
        if name in MODULES and name != module:
            found.append(name)
    return found


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[module].update(_targets(module, node))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _folder(module: str) -> str:
    """The folder a module lives in, as a node: ``connector_core.store`` for its files."""
    parts = module.split(".")
    path = MODULES[module]
    return ".".join(parts[:2]) if len(parts) > 2 or path.name == "__init__.py" else module


def test_the_import_graph_has_no_cycle_between_files() -> None:
    graph = _imports()
    assert sum(len(targets) for targets in graph.values()) > 50, "the import graph was not read"
    assert _cycles(graph) == []


def test_the_import_graph_has_no_cycle_between_folders() -> None:
    folders: dict[str, set[str]] = {}
    for module, targets in _imports().items():
        folders.setdefault(_folder(module), set()).update(_folder(t) for t in targets if _folder(t) != _folder(module))
    assert len(folders) > 10
    assert _cycles(folders) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_say_why() -> None:
    unexplained = []
    for module, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for func in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if not isinstance(node, ast.Import | ast.ImportFrom) or not _targets(module, node):
                    continue
                here, above = lines[node.lineno - 1], node.lineno - 2
                while not lines[above].strip() or lines[above].strip().startswith(("from ", "import ")):
                    # one comment serves a block of imports
                    if "#" in lines[above]:
                        break
                    above -= 1
                stop = lines[above].strip()
                explained = stop.startswith("#") or ("#" in stop and stop.startswith(("from ", "import ")))
                if "#" not in here and not explained:
                    unexplained.append(f"{path.relative_to(REPO)}:{node.lineno}: {here.strip()}")
    assert unexplained == []


def _documented_modules() -> list[str]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Packages and modules", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+\.py)` \|", section, flags=re.MULTILINE)


def test_the_module_map_names_every_module_once() -> None:
    documented = _documented_modules()
    actual = sorted(str(p.relative_to(PACKAGE)) for p in MODULES.values())
    assert len(documented) == len(set(documented)), "a module is named twice"
    assert sorted(documented) == actual


@pytest.mark.parametrize("row", ["store/", "cli/", "emulator/", "models/", "testing/", "serve/"])
def test_the_module_map_covers_each_package(row: str) -> None:
    assert any(m.startswith(row) for m in _documented_modules())
