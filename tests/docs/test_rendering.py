"""The site is built by plain MkDocs (mkdocs.yml): a page must not rely on a plugin it lacks."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_mermaid_block_without_a_mermaid_plugin() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    if "mermaid" in config:  # a configured plugin or superfence renders them
        return
    pages = [p.relative_to(ROOT) for p in (ROOT / "docs").rglob("*.md") if "```mermaid" in p.read_text("utf-8")]
    assert pages == [], f"mermaid blocks render as plain code on the site: {pages}"
