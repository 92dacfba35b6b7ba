"""Where webhooks may go (connector_core.webhooks.urls): the URL rules, and every address a
host resolves to, judged with a fake resolver (no network)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from connector_core.errors import ValidationError
from connector_core.webhooks import address_allowed, check_webhook_url


class FakeDns:
    """A resolver shaped like socket.getaddrinfo, answering from a table, recording each question."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.asked.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = []
        for address in self.table[host]:
            if ":" in address:
                answers.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                answers.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return answers


PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

DNS = FakeDns(
    {
        "hooks.example.com": [PUBLIC_V4, PUBLIC_V6],
        "localhost": ["127.0.0.1", "::1"],
    }
)

# Addresses no delivery reaches without allow_private, with what the error calls them.
PRIVATE = [
    ("10.0.0.5", "private"),
    ("172.16.3.4", "private"),
    ("192.168.1.10", "private"),
    ("fd12:3456::1", "private"),  # unique local
    ("100.64.0.1", "shared"),  # CGNAT
    ("127.0.0.1", "loopback"),  # by name: not an explicit loopback host
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("::ffff:10.0.0.5", "private"),  # IPv4-mapped
    ("::ffff:127.0.0.1", "loopback"),
    ("64:ff9b::a00:5", "private"),  # NAT64 of 10.0.0.5
    ("2002:a00:5::1", "private"),  # 6to4 of 10.0.0.5
]
# Addresses refused even with allow_private.
NEVER = [
    ("169.254.169.254", "link-local"),  # the cloud metadata service
    ("fe80::1", "link-local"),
    ("::ffff:169.254.169.254", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("::127.0.0.1", "reserved"),  # IPv4-compatible, deprecated
    ("2001::1", "reserved"),  # Teredo
]


def _url_error(url: str, **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        check_webhook_url(url, resolve=kwargs.pop("resolve", DNS), **kwargs)
    error = caught.value
    assert error.field == "url"
    assert str(error).startswith("url: ")
    assert "\n" not in str(error)
    return str(error)


def _literal(address: str) -> str:
    return f"[{address}]" if ":" in address else address


# --------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/connector",
        "https://hooks.example.com:8443/connector?tenant=42",
        f"https://{PUBLIC_V4}/hooks",
        f"https://[{PUBLIC_V6}]/hooks",
        "http://127.0.0.1:8000/hooks",
        "http://127.3.2.1:8000/hooks",
        "http://[::1]:8000/hooks",
        "http://localhost:8000/hooks",
        "https://localhost:8443/hooks",
        "https://127.0.0.1/hooks",
    ],
)
def test_a_public_https_url_or_a_loopback_one_is_accepted(url: str) -> None:
    assert check_webhook_url(url, resolve=DNS) == url


def test_the_host_is_resolved_with_the_urls_port() -> None:
    dns = FakeDns(DNS.table)
    check_webhook_url("https://hooks.example.com/a", resolve=dns)
    check_webhook_url("https://hooks.example.com:8443/a", resolve=dns)
    check_webhook_url("http://localhost/a", resolve=dns)
    assert dns.asked == [("hooks.example.com", 443), ("hooks.example.com", 8443), ("localhost", 80)]


def test_an_ip_literal_is_not_resolved() -> None:
    dns = FakeDns({})
    check_webhook_url(f"https://{PUBLIC_V4}/a", resolve=dns)
    check_webhook_url("http://127.0.0.1:9/a", resolve=dns)
    assert dns.asked == []


# ------------------------------------------------------------------ URL rules


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/a", "expected https://"),
        ("http://10.0.0.5/a", "expected https://"),
        ("ftp://hooks.example.com/a", "expected an absolute https:// URL"),
        ("hooks.example.com/a", "expected an absolute https:// URL"),
        ("https:///a", "expected an absolute https:// URL"),
        ("https://user:pw@hooks.example.com/a", "user:password@"),
        ("https://user@hooks.example.com/a", "user:password@"),
        ("https://hooks.example.com/a#frag", "#fragment"),
        ("https://hooks.example.com/a b", "white space"),
        ("https://hooks.example.com\\@10.0.0.5/a", "backslash"),
        ("https://hooks.example.com:99999/a", "port"),
        ("https://hooks.example.com:0x1bb/a", "port"),
        ("https://hooks.example.com/" + "a" * 2100, "at most 2048"),
    ],
)
def test_a_url_breaking_a_rule_is_refused(url: str, why: str) -> None:
    assert why in _url_error(url)


def test_the_credentials_are_not_repeated_when_refusing_them() -> None:
    # The message quotes the URL; that is the caller's own input, but it must still be one line.
    message = _url_error("https://user:hunter2@hooks.example.com/a")
    assert message.count("\n") == 0
    assert "hunter2" not in message and "https://***@hooks.example.com/a" in message


def test_a_url_that_is_not_text_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"^url: "):
        check_webhook_url(b"https://hooks.example.com/", resolve=DNS)  # type: ignore[arg-type]


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(("address", "kind"), PRIVATE + NEVER)
def test_a_host_resolving_to_a_special_address_is_refused(address: str, kind: str) -> None:
    dns = FakeDns({"inside.example.com": [address]})
    message = _url_error("https://inside.example.com/hooks", resolve=dns)
    assert f"'inside.example.com' resolves to {ipaddress.ip_address(address)}" in message
    assert kind in message


# As a literal, a loopback address is an explicit loopback host: allowed (see the accepted URLs).
LITERALS = [(address, kind) for address, kind in PRIVATE + NEVER if address not in ("127.0.0.1", "127.8.9.10", "::1")]


@pytest.mark.parametrize(("address", "kind"), LITERALS)
def test_a_special_ip_literal_is_refused(address: str, kind: str) -> None:
    message = _url_error(f"https://{_literal(address)}/hooks", resolve=FakeDns({}))
    assert kind in message


@pytest.mark.parametrize(("address", "kind"), PRIVATE)
def test_allow_private_opens_private_networks_over_https(address: str, kind: str) -> None:
    dns = FakeDns({"inside.example.com": [address]})
    assert check_webhook_url("https://inside.example.com/h", allow_private=True, resolve=dns)
    assert check_webhook_url(f"https://{_literal(address)}/h", allow_private=True, resolve=dns)
    if not ipaddress.ip_address(address).is_loopback:
        assert "expected https://" in _url_error(f"http://{_literal(address)}/h", allow_private=True, resolve=dns)


@pytest.mark.parametrize(("address", "kind"), NEVER)
def test_allow_private_does_not_open_the_rest(address: str, kind: str) -> None:
    dns = FakeDns({"inside.example.com": [address]})
    assert kind in _url_error("https://inside.example.com/h", allow_private=True, resolve=dns)


def test_allow_private_is_named_in_the_refusal() -> None:
    dns = FakeDns({"inside.example.com": ["10.0.0.5"]})
    assert "allow_private" in _url_error("https://inside.example.com/h", resolve=dns)


def test_one_private_address_among_public_ones_is_refused() -> None:
    dns = FakeDns({"mixed.example.com": [PUBLIC_V4, "10.0.0.5", PUBLIC_V6]})
    assert "resolves to 10.0.0.5, a private address" in _url_error("https://mixed.example.com/h", resolve=dns)


def test_localhost_that_is_not_loopback_is_refused() -> None:
    dns = FakeDns({"localhost": [PUBLIC_V4]})
    assert "not a loopback address" in _url_error("http://localhost:8000/h", resolve=dns)
    assert "not a loopback address" in _url_error("https://localhost/h", resolve=dns)


def test_an_unresolvable_host_is_refused_in_one_line() -> None:
    message = _url_error("https://nowhere.example.com/h", resolve=FakeDns({}))
    assert message == "url: cannot resolve the host 'nowhere.example.com': Name or service not known"


def test_a_host_resolving_to_nothing_is_refused() -> None:
    message = _url_error("https://empty.example.com/h", resolve=FakeDns({"empty.example.com": []}))
    assert "no address" in message


def test_a_host_the_resolver_cannot_encode_is_refused() -> None:
    def idna_fails(host: str, port: int) -> list[tuple[Any, ...]]:
        raise UnicodeError("label too long")

    assert "label too long" in _url_error("https://" + "a" * 70 + ".example.com/h", resolve=idna_fails)


def test_a_resolver_answer_that_is_not_an_address_is_refused() -> None:
    def odd(host: str, port: int) -> list[tuple[Any, ...]]:
        return [(socket.AF_UNIX, socket.SOCK_STREAM, 0, "", ("/run/socket",))]

    assert "not an IP address" in _url_error("https://odd.example.com/h", resolve=odd)


# ------------------------------------------------------- address_allowed (rebinding)


@pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6, f"::ffff:{PUBLIC_V4}", ipaddress.ip_address(PUBLIC_V4)])
def test_a_public_address_is_allowed(address: Any) -> None:
    assert address_allowed(address)
    assert address_allowed(address, True)


@pytest.mark.parametrize(("address", "kind"), PRIVATE)
def test_a_private_address_is_allowed_only_with_allow_private(address: str, kind: str) -> None:
    assert not address_allowed(address)
    assert address_allowed(address, allow_private=True)
    assert address_allowed(ipaddress.ip_address(address), allow_private=True)


@pytest.mark.parametrize(("address", "kind"), NEVER)
def test_the_rest_is_never_allowed(address: str, kind: str) -> None:
    assert not address_allowed(address)
    assert not address_allowed(address, allow_private=True)
    assert not address_allowed(address, allow_private=True, host="localhost")


def test_a_loopback_address_is_allowed_for_an_explicit_loopback_host() -> None:
    for host in ("localhost", "127.0.0.1", "::1"):
        assert address_allowed("127.0.0.1", host=host)
        assert address_allowed("::1", host=host)
    # A name that resolved to loopback (rebinding to this machine) is not allowed.
    assert not address_allowed("127.0.0.1", host="hooks.example.com")
    assert not address_allowed("127.0.0.1")
    # An explicit loopback host does not open private networks.
    assert not address_allowed("10.0.0.5", host="localhost")


@pytest.mark.parametrize("address", ["not-an-ip", "", "10.0.0", "fe80::1%eth0", "[::1]x"])
def test_what_is_not_a_public_address_is_refused(address: str) -> None:
    assert not address_allowed(address)


def test_an_address_standing_for_an_ipv4_one_is_shown_with_it() -> None:
    dns = FakeDns({"inside.example.com": ["::ffff:10.0.0.5"]})
    assert "(10.0.0.5), a private address" in _url_error("https://inside.example.com/h", resolve=dns)
    assert "'::ffff:10.0.0.5' is a private address" in _url_error("https://[::ffff:10.0.0.5]/h", resolve=dns)


def test_an_ipv6_literal_with_a_zone_is_judged_by_its_address() -> None:
    assert "link-local" in _url_error("https://[fe80::1%25eth0]/h", resolve=FakeDns({}))
