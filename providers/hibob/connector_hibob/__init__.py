"""connector-hibob: the HiBob provider plugin for connector-core."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
