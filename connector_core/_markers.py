"""The project's identity: its name (one everywhere: ``connector_core``), its version, and
the pluggy markers. Any module can name these without importing the public API."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: The project name: the markers', the plugin manager's and the entry-point group's.
PROJECT_NAME = "connector_core"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorate a plugin's hook implementations with this: ``@connector_core.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
