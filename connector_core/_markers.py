"""The pluggy markers. One project name everywhere: ``connector_core``."""

from __future__ import annotations

import pluggy

#: The project name: the markers', the plugin manager's and the entry-point group's.
PROJECT_NAME = "connector_core"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorate a plugin's hook implementations with this: ``@connector_core.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
