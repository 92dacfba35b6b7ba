"""``connector_core_provider_files``: a plugin ships provider files as package data."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from support.dataprovider import ACME

from connector_core import ConnectionTest, hookimpl, load_plugins


class Ships:
    """A plugin shipping the sample file, and a Python quirk on top of it."""

    @hookimpl
    def connector_core_provider_files(self) -> list[Any]:
        return [ACME]

    @hookimpl(tryfirst=True)
    def connector_core_connection_test(self, provider_key: str) -> ConnectionTest | None:
        return ConnectionTest("GET", "/people", scope="people:read") if provider_key == "acme" else None


def test_a_plugin_ships_a_file_and_overrides_one_of_its_declarations() -> None:
    plugins = load_plugins([Ships()], entry_points=False, env={})
    assert plugins.plugin_of("acme") == f"data:{ACME}"
    decl = plugins.declaration("acme")
    assert decl.connection_test is not None and decl.connection_test.path == "/people"
    info = {i.name: i for i in plugins.plugin_infos()}[f"data:{ACME}"]
    assert info.path == str(ACME)
    assert info.providers == ("acme",)


def test_package_data_is_read_through_importlib_resources(tmp_path: Path, monkeypatch: Any) -> None:
    package = tmp_path / "acme_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "acme.toml").write_text(ACME.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))

    class Packaged:
        @hookimpl
        def connector_core_provider_files(self) -> list[Any]:
            return [files("acme_pkg") / "acme.toml"]

    plugins = load_plugins([Packaged()], entry_points=False, env={})
    assert plugins.declaration("acme").provider.display_name == "Acme HR"


def test_a_broken_hook_is_a_problem_of_its_plugin_only() -> None:
    class Broken:
        @hookimpl
        def connector_core_provider_files(self) -> list[Any]:
            raise RuntimeError("boom")

    class Wrong:
        @hookimpl
        def connector_core_provider_files(self) -> Any:
            return "acme.toml"

    plugins = load_plugins([Broken(), Wrong(), Ships()], entry_points=False, env={})
    assert plugins.provider_keys() == ("acme",)
    messages = {p.plugin: p.message for p in plugins.problems}
    assert messages["Broken-0"] == "connector_core_provider_files raised RuntimeError: boom"
    assert "expected a list of paths" in messages["Wrong-1"]


def test_the_same_file_named_twice_is_one_plugin() -> None:
    plugins = load_plugins([Ships(), Ships()], entry_points=False, env={})
    assert plugins.provider_keys() == ("acme",)
    assert plugins.problems == ()
