"""Which addresses a user's webhook may reach: the rules of the SSRF guard, with no I/O.

A webhook target is a URL that any user may choose, and the engine POSTs to it from inside the
operator's network. Without a guard a user could aim it at the engine's own database port, an
intranet service or a cloud metadata endpoint (``http://169.254.169.254/``). So a target may only
reach a public address: never loopback, private, link-local, multicast, reserved, unspecified or
otherwise non-global, in IPv4 or IPv6, and never through an IPv6 address that embeds an IPv4 one
(``::ffff:127.0.0.1``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``), judged by the embedded address.

The rules are applied three times, by ``engine/sinks/webhook.py``: to the URL when a destination
is created (:func:`check_url_host`, pure), to every address its name resolves to (``vet_target``),
and to the address actually connected at each delivery (``engine/sinks/guarded.py``), so that a
name which resolved to a public address at create time and to ``127.0.0.1`` later is still refused.
``[sinks.webhook] allow_private = true`` turns them off (a lab, the tests' local receiver).
"""

from __future__ import annotations

import ipaddress
import socket
from ipaddress import IPv4Address, IPv6Address

__all__ = [
    "address_reason",
    "check_url_host",
    "embedded_ipv4",
    "is_localhost_name",
    "literal_address",
]

IPAddress = IPv4Address | IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Checked in this order; the first that holds names the refusal.
_FLAGS: tuple[tuple[str, str], ...] = (
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_private", "a private"),
    ("is_reserved", "a reserved"),
)


def embedded_ipv4(ip: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 address carries and routes to (IPv4-mapped, 6to4, NAT64)."""
    if isinstance(ip, IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_reason(address: str | IPAddress) -> str | None:
    """Why a webhook may not connect to ``address``, or None when it is a public address.

    ``address`` is an IP address (text or ``ipaddress`` object; an IPv6 zone ``%eth0`` is
    allowed). An IPv6 address embedding an IPv4 one is judged by both. Raises ``ValueError`` for
    text that is not an IP address. Runtime: constant.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    for candidate in (embedded_ipv4(ip), ip):  # the embedded address names the reason
        if candidate is None:
            continue
        shown = str(ip) if candidate is ip else f"{ip} ({candidate})"
        for flag, words in _FLAGS:
            if getattr(candidate, flag):
                return f"{shown} is {words} address"
        if not candidate.is_global:  # shared address space 100.64.0.0/10, and the like
            return f"{shown} is not a public address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells, or None for a name.

    Besides the usual forms this reads the legacy IPv4 spellings that ``getaddrinfo`` also
    accepts (``127.1``, ``2130706433``, ``0x7f.0.0.1``), so that they are judged as the address
    they connect to rather than passed as names.
    """
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if text and all(c in "0123456789abcdefxABCDEFX." for c in text):
        try:
            return IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def is_localhost_name(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a name under it (RFC 6761), with or without the
    final dot: names that always resolve to the machine itself."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def check_url_host(host: str) -> None:
    """Refuse a URL's host that is known, without resolving it, to reach a forbidden address.

    Raises ``ValueError`` with the reason (``10.0.0.1 is a private address``, ``localhost always
    reaches this machine``). A name that is not ``localhost`` passes: its addresses are checked
    when it is resolved and when it is connected.
    """
    if is_localhost_name(host):
        raise ValueError(f"{host} always reaches this machine")
    ip = literal_address(host)
    reason = None if ip is None else address_reason(ip)
    if reason is not None:
        raise ValueError(reason if host.strip("[]") == str(ip) else f"{host} means {reason}")
