"""``connector new-provider``: a plugin distribution that installs and passes its own tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import REPO, Result

from connector_core import ValidationError, load_plugins
from connector_core.scaffold import new_provider, scaffold_names
from connector_core.testing import checks
from connector_core.testing.harness import isolated_plugins

EXPECTED_FILES = (
    "pyproject.toml",
    "README.md",
    "connector_acme/__init__.py",
    "connector_acme/declarations.py",
    "connector_acme/emulator.py",
    "connector_acme/plugin.py",
    "connector_acme/py.typed",
    "tests/test_acme_conformance.py",
)


def _clean_env() -> dict[str, str]:
    drop = ("CONNECTOR_", "HIBOB_", "PYTHON", "PYTEST_", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=600, check=False)


def test_the_scaffold_installs_in_a_fresh_venv_and_passes_its_tests(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    dist = tmp_path / "connector-acme"
    made = run_cli(["new-provider", "acme", "--dir", str(dist)])
    assert made.code == 0 and made.err == "", made.err

    venv = tmp_path / "venv"
    # No pip of its own (seeding one takes longer than the rest): this environment's pip installs into it.
    created = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    assert created.returncode == 0, created.stderr
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-compile"]
    installed = _run([*pip, "--disable-pip-version-check", "-e", str(REPO), "-e", str(dist), "pytest"], tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]

    tested = _run([str(python), "-m", "pytest", "-p", "no:cacheprovider"], dist)
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert "16 passed" in tested.stdout and "skipped" not in tested.stdout, tested.stdout[-3000:]
    # The pytest plugin came in through its entry point, as in any provider's environment.
    assert any(line.startswith("plugins:") and "connector-core" in line for line in tested.stdout.splitlines())

    shown = _run([str(venv / "bin" / "connector"), "providers", "show", "acme"], dist)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Acme (acme)  [plugin acme]\n") and shown.stderr == ""


def test_the_scaffold_passes_every_declaration_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = new_provider("google-drive", tmp_path / "gd", display_name="Google Drive")
    assert made.package == "connector_google_drive" and made.distribution == "connector-google-drive"
    monkeypatch.syspath_prepend(str(made.path))
    from connector_google_drive import plugin  # type: ignore[import-not-found]

    plugins = isolated_plugins(plugin)
    decl = plugins.declaration("google-drive")
    assert decl.provider.display_name == "Google Drive" and decl.callback is not None
    assert decl.callback.path == "/connect/oauth2/google-drive/callback"
    assert plugins.emulator_spec("google-drive") is not None
    assert checks.check_models(plugins, "google-drive") == ()
    for check in (
        checks.check_scope_catalogue,
        checks.check_action_scopes,
        checks.check_credential_fields,
        checks.check_secret_fields,
        checks.check_callback,
        checks.check_environments,
        checks.check_reconnect_policy,
        checks.check_connection_test,
        checks.check_docs_page,
    ):
        assert check(decl) == (), check.__name__
    text = (made.path / "pyproject.toml").read_text()
    assert 'build-backend = "hatchling.build"' in text
    assert '[project.entry-points.connector_core]\ngoogle-drive = "connector_google_drive.plugin"' in text
    assert (
        (made.path / "tests" / "test_google_drive_conformance.py")
        .read_text()
        .endswith('class TestGoogleDrive(ProviderConformance):\n    provider = "google-drive"\n')
    )


def test_the_scaffold_has_no_todo_and_its_files_are_listed(tmp_path: Path) -> None:
    made = new_provider("acme", tmp_path / "acme")
    assert made.files == EXPECTED_FILES
    written = sorted(str(p.relative_to(made.path)) for p in made.path.rglob("*") if p.is_file())
    assert written == sorted(EXPECTED_FILES)
    for name in EXPECTED_FILES:
        text = (made.path / name).read_text()
        assert "TODO" not in text and "FIXME" not in text and "$" not in text, name


def test_json_output(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    result = run_cli(["new-provider", "acme", "--dir", str(tmp_path / "a"), "--name", "Acme Corp", "--json"])
    assert result.code == 0
    data = json.loads(result.out)
    assert data == {
        "key": "acme",
        "distribution": "connector-acme",
        "package": "connector_acme",
        "path": str(tmp_path / "a"),
        "files": list(EXPECTED_FILES),
    }
    assert 'display_name="Acme Corp"' in (tmp_path / "a" / "connector_acme" / "declarations.py").read_text()


def test_the_default_folder_is_named_after_the_distribution(
    tmp_path: Path, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli(["new-provider", "acme"])
    assert result.code == 0 and (tmp_path / "connector-acme" / "pyproject.toml").is_file()


def test_refuses_to_overwrite(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = run_cli(["new-provider", "acme", "--dir", str(target)])
    assert result.code == 1 and result.out == ""
    assert (
        result.err
        == f"connector: error: --dir: {target} already exists and is not an empty folder; refusing to overwrite\n"
    )
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert run_cli(["new-provider", "acme", "--dir", str(a_file)]).code == 1
    assert a_file.read_text() == "x"
    # An empty folder is fine, and nothing is left beside it.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(["new-provider", "acme", "--dir", str(empty)]).code == 0
    assert (empty / "connector_acme" / "plugin.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file.txt", "taken"]


@pytest.mark.parametrize("key", ["Acme", "acme corp", "1acme", "acme_", "acme--x", "", "ac.me"])
def test_validates_the_key(tmp_path: Path, run_cli: Callable[..., Result], key: str) -> None:
    result = run_cli(["new-provider", key, "--dir", str(tmp_path / "x")])
    assert result.code == 1
    assert result.err == (
        f"connector: error: KEY: expected a lower-case provider key such as 'acme' or 'google-drive', got {key!r}\n"
    )
    assert not (tmp_path / "x").exists()


def test_validates_the_display_name(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    result = run_cli(["new-provider", "acme", "--dir", str(tmp_path / "x"), "--name", 'Ac"me'])
    assert result.code == 1 and result.err.startswith("connector: error: --name: expected a display name")
    assert not (tmp_path / "x").exists()


def test_an_unwritable_place_is_a_one_line_error(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    result = run_cli(["new-provider", "acme", "--dir", str(blocker / "sub")])
    assert result.code == 1 and result.err.startswith(f"connector: error: cannot create {blocker / 'sub'}: ")
    assert result.err.count("\n") == 1 and "Traceback" not in result.err


def test_names_follow_the_key() -> None:
    assert scaffold_names("google-drive") == {
        "key": "google-drive",
        "display_name": "Google Drive",
        "distribution": "connector-google-drive",
        "package": "connector_google_drive",
        "test_class": "TestGoogleDrive",
        "host": "google-drive.example",
    }
    assert scaffold_names("my_crm")["host"] == "my-crm.example"


def test_the_scaffolded_plugin_never_answers_for_another_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = new_provider("zeta", tmp_path / "zeta")
    monkeypatch.syspath_prepend(str(made.path))
    from connector_zeta import plugin  # type: ignore[import-not-found]

    from connector_hibob import plugin as hibob

    both = load_plugins([hibob, plugin], entry_points=False)
    assert both.provider_keys() == ("hibob", "zeta")
    assert both.declaration("hibob").callback == load_plugins([hibob], entry_points=False).declaration("hibob").callback
    assert both.problems == ()


# ------------------------------------------------------------- a provider as data


def test_the_data_scaffold_passes_its_own_conformance_test(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    folder = tmp_path / "acme-data"
    made = run_cli(["new-provider", "acme", "--data", "--dir", str(folder), "--json"])
    assert made.code == 0 and made.err == "", made.err
    assert json.loads(made.out)["files"] == ["acme.toml", "test_acme_conformance.py", "README.md"]
    assert "CONNECTOR_PROVIDERS_PATH" in (folder / "README.md").read_text()

    tested = _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], folder)
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert "16 passed" in tested.stdout and "skipped" not in tested.stdout, tested.stdout[-3000:]

    env = {**_clean_env(), "CONNECTOR_PROVIDERS_PATH": str(folder), "CONNECTOR_HOME": str(tmp_path / "home")}
    shown = subprocess.run(
        [sys.executable, "-m", "connector_core", "providers", "show", "acme"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"Acme (acme)  [plugin data:{folder / 'acme.toml'}]\n")


def test_the_data_scaffold_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("mine")
    with pytest.raises(ValidationError):
        new_provider("acme", tmp_path / "taken", data=True)
    assert (tmp_path / "taken" / "x").read_text() == "mine"
