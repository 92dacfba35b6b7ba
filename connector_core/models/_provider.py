"""The provider itself: the records ``providers list`` needs, and nothing else."""

from __future__ import annotations

import attrs

from ._base import KEY_RE, PROVIDER_KEY_RE, _instances, _matches, _names, _text, _to_sorted_names, _to_tuple, _url


@attrs.frozen
class Link:
    """A documentation link shown with a provider."""

    label: str = attrs.field(validator=_text(max_length=200))
    url: str = attrs.field(validator=_url(allow_http_loopback=False))


@attrs.frozen
class Provider:
    """The provider itself: what the user picks from a list."""

    key: str = attrs.field(validator=_matches(PROVIDER_KEY_RE, "a lower-case key such as 'acme' or 'google-drive'"))
    display_name: str = attrs.field(validator=_text(max_length=100))
    description: str = attrs.field(default="", validator=_text(allow_empty=True))
    links: tuple[Link, ...] = attrs.field(default=(), converter=_to_tuple, validator=_instances(Link))
    categories: tuple[str, ...] = attrs.field(
        default=(), converter=_to_sorted_names, validator=_names(KEY_RE, "a lower-case category key")
    )
