"""The ``connector`` command line: one module per command, and the pieces they share.

:func:`main` runs it (``connector`` is :func:`main_exit`, and so is
``python -m connector_core``); :mod:`connector_core.cli.parser` builds the parser
from each command's :class:`~connector_core.registries.Command` record.
"""

from __future__ import annotations

from .main import main, main_exit

__all__ = ["main", "main_exit"]
