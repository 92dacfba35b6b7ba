"""The sample provider declared as data (tests/dataprovider/data/acme.toml) and its bad variants."""

from __future__ import annotations

from pathlib import Path

from connector_core.dataprovider import DataProvider

DATA = Path(__file__).resolve().parent.parent / "dataprovider" / "data"
#: Acme HR: four auth types, every part of the format, and an emulator.
ACME = DATA / "acme.toml"


def acme_plugin() -> DataProvider:
    """A fresh plugin of the sample file."""
    return DataProvider(ACME)


def variant(folder: Path, old: str, new: str, *, name: str = "acme.toml") -> Path:
    """A copy of the sample in ``folder`` with ``old`` (which must be there) replaced by ``new``."""
    text = ACME.read_text(encoding="utf-8")
    assert old in text, old
    path = folder / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path
