"""Where webhooks may be delivered: the URL policy, checked when an endpoint is configured
and again, address by address, when a delivery connects.

A webhook URL is chosen by whoever configures an endpoint, and the deliverer then makes
requests to it from inside the platform's network: without a policy, that is a way to reach
the platform's own services (server-side request forgery). The policy:

* ``https`` only; ``http`` only to an explicit loopback host (``127.0.0.0/8``, ``[::1]``,
  ``localhost``), for a receiver on the same machine;
* no ``user:password@``, no ``#fragment``, no white space or backslash;
* every address the host resolves to must be a public one. Private (RFC 1918, unique local
  IPv6), loopback and shared (CGNAT, ``100.64.0.0/10``) addresses are refused unless the
  operator opts in with ``allow_private=True`` (which still requires ``https``, except to a
  loopback host). Link-local (it holds the cloud metadata services), multicast,
  unspecified and reserved addresses are refused always. An address that embeds an IPv4
  one (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged
  by that IPv4 address.

DNS can answer differently when the deliverer connects than when the URL was checked (DNS
rebinding). The deliverer must therefore check the address it actually connects to with
:func:`address_allowed` (resolve, check every address, connect to a checked one; or read
the peer address of the open connection and drop it when it is refused), and must not
follow redirects.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..errors import ValidationError
from ..models import is_loopback_host, url_problem

__all__ = ["Resolver", "address_allowed", "check_webhook_url"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[..., Sequence[tuple[Any, ...]]]
"""What resolves a host: :func:`socket.getaddrinfo`, called as ``resolve(host, port)``."""

_MAX_URL = 2048
_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT: neither private nor global
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_TEREDO = ipaddress.ip_network("2001::/32")

# The kinds an address can be, and what each is refused as.
_ALWAYS_REFUSED = {
    "unspecified": "an unspecified address",
    "multicast": "a multicast address",
    "link-local": "a link-local address (never allowed: cloud metadata services live there)",
    "reserved": "a reserved address",
}
_PRIVATE = {
    "loopback": "a loopback address",
    "private": "a private address",
    "shared": "a shared (carrier-grade NAT) address",
}


def _embedded_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4), or ``ip`` itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def _shown(ip: IPAddress) -> str:
    """``ip`` as text, with the IPv4 address it stands for: ``::ffff:a00:5 (10.0.0.5)``."""
    inner = _embedded_ipv4(ip)
    return str(ip) if inner is ip else f"{ip} ({inner})"


def _kind(ip: IPAddress) -> str:
    """``global``, or the kind of special-purpose address ``ip`` is."""
    ip = _embedded_ipv4(ip)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip in _SHARED:
        return "shared"
    if ip.is_reserved or ip in _TEREDO:
        # Teredo tunnels to an IPv4 host through a relay; ::/8 (IPv4-compatible, ...) is not routed.
        return "reserved"
    if not ip.is_global:
        return "private"  # RFC 1918, unique local, site-local, documentation, benchmarking
    return "global"


def _parse(ip: str | IPAddress) -> IPAddress | None:
    if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ip
    try:
        return ipaddress.ip_address(str(ip).strip("[]"))
    except ValueError:
        return None


def _address_problem(ip: str | IPAddress, allow_private: bool, host: str | None) -> str | None:
    """Why a delivery must not connect to ``ip``, or None."""
    address = _parse(ip)
    if address is None:
        return "not an IP address"
    kind = _kind(address)
    if kind == "global":
        return None
    if kind in _ALWAYS_REFUSED:
        return _ALWAYS_REFUSED[kind]
    if kind == "loopback" and host is not None and is_loopback_host(host):
        return None
    if allow_private:
        return None
    return f"{_PRIVATE[kind]} (allowed only with allow_private)"


def address_allowed(ip: str | IPAddress, allow_private: bool = False, *, host: str | None = None) -> bool:
    """Whether a webhook delivery may connect to ``ip``, by the policy of :func:`check_webhook_url`.

    The deliverer calls it with the address it is about to connect to, or is connected to,
    after :func:`check_webhook_url` has passed the URL: DNS may have changed in between
    (rebinding). ``host`` is the URL's host: a loopback address is allowed for an explicit
    loopback host (``127.0.0.1``, ``::1``, ``localhost``) without ``allow_private``. Something
    that is not an IP address is refused.
    """
    return _address_problem(ip, allow_private, host) is None


def check_webhook_url(url: str, *, allow_private: bool = False, resolve: Resolver = socket.getaddrinfo) -> str:
    """``url`` when it is a URL webhooks may be delivered to; a :class:`ValidationError`
    naming ``url`` otherwise (see the module's docstring for the policy).

    The host is resolved with ``resolve`` (:func:`socket.getaddrinfo` by default; tests pass
    a fake), and every address it resolves to must be allowed. A host that does not resolve
    is refused too. The check holds at the time of the call only: the deliverer checks again
    with :func:`address_allowed`.
    """
    if not isinstance(url, str):
        raise ValidationError("url", f"expected a URL string, got {type(url).__name__}")
    problem = url_problem(url) if len(url) <= _MAX_URL else f"expected a URL of at most {_MAX_URL} characters"
    if problem:
        # A password in the URL is not repeated back (a message may reach a log or a terminal).
        shown = _CREDENTIALS.sub(r"\1***@", url[:_MAX_URL])
        raise ValidationError("url", f"{problem}, got {shown!r}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValidationError("url", f"expected a port from 1 to 65535, got {url!r}") from None
    explicit_loopback = is_loopback_host(host)

    literal = _parse(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            answers = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise ValidationError("url", f"cannot resolve the host {host!r}: {reason}") from None
        found = [_parse(str(answer[4][0])) for answer in answers]
        if not found:
            raise ValidationError("url", f"cannot resolve the host {host!r}: no address")
        if None in found:
            raise ValidationError("url", f"the host {host!r} resolves to something that is not an IP address")
        addresses = list(dict.fromkeys(a for a in found if a is not None))

    for address in addresses:
        if explicit_loopback and _kind(address) != "loopback":
            raise ValidationError("url", f"the host {host!r} resolves to {address}, not a loopback address")
        why = _address_problem(address, allow_private, host)
        if why:
            where = f"{host!r} is" if literal is not None else f"the host {host!r} resolves to {_shown(address)},"
            raise ValidationError("url", f"{where} {why}")
    return url
