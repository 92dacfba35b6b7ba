"""The ``multiauth`` test provider (every auth type) passes the conformance kit, each auth
type checked against the generic emulator."""

from __future__ import annotations

import support.multiauth as multiauth_plugin

from connector_core.testing import ProviderConformance


class TestMultiauth(ProviderConformance):
    provider = "multiauth"
    plugin = multiauth_plugin
