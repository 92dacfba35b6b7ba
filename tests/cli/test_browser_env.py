"""The browser that ``connect`` opens never inherits a secret of ours (issue 15)."""

from __future__ import annotations

import argparse
import io
import os
import stat
from pathlib import Path

import pytest

from connector_core.cli import flow


def test_the_browser_gets_no_secret_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dump = tmp_path / "env.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nenv > "{dump}"\necho "$1" >> "{dump}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("BROWSER", str(script))
    monkeypatch.setenv("CONNECTOR_CORE_SECRET_KEY", "key-material-xyz")
    monkeypatch.setenv("CONNECTOR_CORE_PREVIOUS_SECRET_KEYS", "old-key-xyz")
    monkeypatch.setenv("CONNECTOR_STORE_URL", "postgresql://u:store-password-xyz@db/x")
    monkeypatch.setenv("MY_APP_SECRET", "field-secret-xyz")
    monkeypatch.setenv("UNRELATED_SETTING", "kept")
    args = argparse.Namespace(no_browser=False, client_secret_env="MY_APP_SECRET")
    flow._open_browser("https://auth.example/authorize?state=s", args, io.StringIO(), None)
    seen = dump.read_text()
    assert "https://auth.example/authorize?state=s" in seen  # the browser did run, with the URL
    assert "UNRELATED_SETTING=kept" in seen and os.environ["CONNECTOR_CORE_SECRET_KEY"]
    for secret in ("key-material-xyz", "old-key-xyz", "store-password-xyz", "field-secret-xyz"):
        assert secret not in seen
