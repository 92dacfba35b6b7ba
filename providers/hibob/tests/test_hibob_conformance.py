"""The HiBob plugin against connector-core's conformance suite (and HiBob's emulator)."""

from connector_core.testing import ProviderConformance


class TestHiBob(ProviderConformance):
    provider = "hibob"
