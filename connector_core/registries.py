"""What the registry hooks are handed: plugins add their providers here.

:class:`ProviderRegistry` is the argument of
:func:`~connector_core.hookspecs.connector_core_register_providers`. It lives apart
from :mod:`connector_core.plugins` (the loader), so that the hook specifications can
name it without depending on the code that calls them.
"""

from __future__ import annotations

import attrs

from .errors import PluginError
from .models import Provider

__all__ = ["ProviderRegistry"]


@attrs.define
class ProviderRegistry:
    """Handed to :func:`~connector_core.hookspecs.connector_core_register_providers`."""

    _plugin: str
    _providers: list[Provider] = attrs.field(factory=list, repr=False)

    def add(self, provider: Provider) -> None:
        """Register one provider."""
        if not isinstance(provider, Provider):
            raise PluginError(self._plugin, f"register.add() expected a Provider, got {type(provider).__name__}")
        self._providers.append(provider)

    @property
    def providers(self) -> tuple[Provider, ...]:
        return tuple(self._providers)
