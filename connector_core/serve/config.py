"""What the connect service is configured with beyond the API: where end users may be sent
back, which origins may embed the connect page, and which profile takes installs that begin at
the provider. Checked once, when the application is made: a wrong entry is a ValidationError
naming the setting, not a surprise on an end user's page."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import attrs

from ..errors import ValidationError
from ..models import is_loopback_host
from ..sessions import redirect_allowed

__all__ = ["CALLBACK_PATH", "ConnectConfig", "callback_url", "check_origin"]

#: Where the provider sends the end user back, under the service's public URL: the URI to register
#: in the provider's developer portal is ``PUBLIC_URL/connect/oauth2/KEY/callback``.
CALLBACK_PATH = "/connect/oauth2/{provider}/callback"
_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_DEFAULT_PORTS = {"https": 443, "http": 80}


def callback_url(public_url: str, provider: str) -> str:
    """The callback URL of ``provider`` on a service reached at ``public_url``."""
    return public_url.rstrip("/") + CALLBACK_PATH.format(provider=provider)


def check_origin(origin: str, field: str = "embed_origins") -> str:
    """``origin`` as ``scheme://host[:port]`` (lower case, default port dropped) when it is an
    https origin (http only on loopback) with nothing after it; a ValidationError otherwise."""
    if not isinstance(origin, str) or not origin or len(origin) > 300:
        raise ValidationError(field, "expected an origin such as https://app.example.com")
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        raise ValidationError(field, f"expected an origin such as https://app.example.com, got {origin!r}") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host or "@" in parts.netloc:
        raise ValidationError(field, f"expected an origin such as https://app.example.com, got {origin!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValidationError(field, f"expected an origin alone (no path, query or fragment), got {origin!r}")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ValidationError(field, f"expected https (plain http only on loopback), got {origin!r}")
    shown = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        shown += f":{port}"
    return f"{parts.scheme}://{shown}"


@attrs.frozen
class ConnectConfig:
    """The connect service's settings (see :func:`~connector_core.serve.create_app`)."""

    redirect_allow_list: tuple[str, ...] = ()
    embed_origins: tuple[str, ...] = ()
    install_profiles: Mapping[str, str] = attrs.field(factory=dict)
    install_redirect_url: str | None = None

    @classmethod
    def build(
        cls,
        *,
        redirect_allow_list: Iterable[str] = (),
        embed_origins: Iterable[str] = (),
        install_profiles: Mapping[str, str] | None = None,
        install_redirect_url: str | None = None,
    ) -> ConnectConfig:
        """The settings, each checked; a ValidationError names the first one that is wrong."""
        if isinstance(redirect_allow_list, str) or isinstance(embed_origins, str):
            raise ValidationError("redirect_allow_list", "expected a list of URLs, not one string")
        allow = tuple(dict.fromkeys(redirect_allow_list))
        for entry in allow:
            # An entry must itself be a URL the rule accepts.
            redirect_allowed(entry, (entry,), field="redirect_allow_list")
        origins = tuple(dict.fromkeys(check_origin(o) for o in embed_origins))
        profiles = dict(install_profiles or {})
        for provider, profile in profiles.items():
            if not isinstance(provider, str) or not _KEY_RE.fullmatch(provider):
                raise ValidationError("install_profiles", f"expected provider keys, got {provider!r}")
            if not isinstance(profile, str) or not profile:
                raise ValidationError(f"install_profiles.{provider}", "expected a profile name")
        if install_redirect_url is not None:
            redirect_allowed(install_redirect_url, allow, field="install_redirect_url")
        return cls(allow, origins, profiles, install_redirect_url)
