"""Where callbacks may go: URL rules checked without DNS, and the address rule checked on connect.

Rules:
1. A callback URL is ``http`` or ``https``, at most ``MAX_URL_LENGTH`` characters, with no
   userinfo (``user:password@``: a credential that would be logged, and a classic way to
   disguise the real host), no whitespace or control characters, a port from 1 to 65535 and a
   host that is a DNS name (letters, digits, ``.``, ``-``, ``_``; non-ASCII names are taken in
   their IDNA form) or an IP literal.
2. An address is **refused** when it is loopback, private, link-local, unspecified, multicast,
   reserved, or otherwise not globally routable (CGNAT's 100.64/10, documentation and benchmark
   ranges, IPv6 site-local and unique-local, Teredo, local-use NAT64). An IPv6 address that
   carries an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-translated, IPv4-compatible,
   NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged by the IPv4 address it carries:
   ``[::ffff:127.0.0.1]`` reaches loopback on a dual-stack host.
3. **Allow rules** (``--callback-allow``) make exceptions: a CIDR or address allows the
   addresses in it; a host name allows that exact name (case-insensitive, trailing dot
   ignored) whatever it resolves to, for an operator who trusts that name's DNS.
4. **What counts is the address connected to.** At submission, a host that is a literal
   address in any spelling libc accepts (``127.1``, ``2130706433``, ``0x7f000001``,
   ``0177.0.0.1``: ``getaddrinfo`` parses them with ``inet_aton``, which ``ipaddress`` does not)
   is judged at once, so the caller hears INVALID_ARGUMENT. A DNS name cannot be judged without
   resolving it, and its answer may change (DNS rebinding), so the notifier judges every address
   it is about to connect to, just before connecting (see ``_delivery.AddressGuard``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
"""Characters of a callback URL; longer ones are refused at submission."""

# A host made only of these may be a numeric IPv4 spelling (decimal, octal, hex, short forms).
_NUMERIC_SPELLING = re.compile(r"[0-9a-fx.]+")
_DNS_NAME = re.compile(r"[a-z0-9._-]+")
_MAX_DNS_NAME = 253
# Prefixes whose addresses carry an IPv4 address in their last 32 bits (RFC 4291 mapped and
# compatible, RFC 2765 translated, RFC 6052 well-known NAT64).
_LOW_32_CARRIERS = tuple(
    ipaddress.IPv6Network(n) for n in ("::ffff:0:0/96", "::ffff:0:0:0/96", "::/96", "64:ff9b::/96")
)
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
# Not globally routable, though Python 3.11's is_global says otherwise for them.
_IPV6_REFUSED = (
    (ipaddress.IPv6Network("fec0::/10"), "site-local"),
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "local-use NAT64"),
    (ipaddress.IPv6Network("2001::/32"), "Teredo"),
)


def parse_literal(host: str) -> IPAddress | None:
    """The address a URL host spells, as the resolver would read it; None for a DNS name.

    Args:
        host: a URL's host, without brackets (``127.1``, ``0x7f000001``, ``::1``, ``example.com``).
    """
    host = host.lower()
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    if _NUMERIC_SPELLING.fullmatch(host):
        try:
            # The charset check above keeps out what inet_aton would also accept (trailing
            # whitespace and anything after it).
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def refusal(address: IPAddress) -> str | None:
    """Why an address is refused before allow rules apply (rule 2); None for a global address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_loopback:
            return "loopback"
        if address.is_unspecified:
            return "unspecified"
        carried = _carried_ipv4(address)
        if carried is not None:
            reason = refusal(carried)
            return f"{reason} (it carries {carried})" if reason else None
        for network, reason in _IPV6_REFUSED:
            if address in network:
                return reason
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not globally routable"
    return None


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if any(address in network for network in _LOW_32_CARRIERS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


class DestinationPolicy:
    """The allow rules and the checks of the module docstring."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        """Parses the allow rules.

        Args:
            allow: each a CIDR (``10.1.0.0/16``, ``fd00::/8``), an address in any spelling
                (``127.0.0.1``, ``[::1]``) or a host name (``hooks.internal``).

        Raises:
            ValueError: a rule is none of these; the message names it.
        """
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for rule in allow:
            text = rule.strip().lower()
            bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
            address = parse_literal(bare)
            if address is not None:
                networks.append(ipaddress.ip_network(address))
            elif "/" in text:
                try:
                    networks.append(ipaddress.ip_network(text, strict=False))
                except ValueError:
                    raise ValueError(f"callback_allow: {rule!r} is not a CIDR") from None
            elif _valid_dns_name(text.rstrip(".")):
                hosts.add(text.rstrip("."))
            else:
                raise ValueError(f"callback_allow: {rule!r} is neither a CIDR, an address nor a host name")
        self.networks: tuple[IPNetwork, ...] = tuple(networks)
        """Allowed address ranges."""
        self.hosts: frozenset[str] = frozenset(hosts)
        """Host names allowed whatever they resolve to (lower case, no trailing dot)."""

    def trusts_host(self, host: str) -> bool:
        """Whether a URL's host is one of the allowed host names."""
        return host.lower().rstrip(".") in self.hosts

    def address_problem(self, address: IPAddress) -> str | None:
        """Why a connection to `address` is refused; None when it is allowed (rules 2 and 3)."""
        carried = _carried_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        if any(address in network or (carried is not None and carried in network) for network in self.networks):
            return None
        reason = refusal(address)
        return f"{address} is {reason} (allow it with --callback-allow)" if reason else None

    def url_problem(self, url: str) -> str | None:
        """What is wrong with a callback URL, judged without DNS (rules 1 and 4); None if nothing.

        The message is meant to follow ``callback_url: `` in an INVALID_ARGUMENT.
        """
        if len(url) > MAX_URL_LENGTH:
            return f"at most {MAX_URL_LENGTH} characters, got {len(url)}"
        if any(ch <= " " or ch == "\x7f" for ch in url):
            return "must not contain whitespace or control characters"
        try:
            parsed = URL(url)
            authority = urlsplit(url).netloc
        except ValueError as error:
            return f"not a valid URL ({str(error)[:100]})"
        except Exception:  # yarl raises IndexError on some (e.g. "0://[]@"): found by fuzzing
            return "not a valid URL"
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            return f"must be an http(s) URL with a host, got {url[:100]!r}"
        # yarl forgets an empty userinfo ("http://@host/"); the authority as written keeps it.
        if "@" in authority:
            return "must not contain userinfo (user:password@)"
        if parsed.explicit_port == 0:
            return "port 0 is not a destination"
        host = parsed.raw_host
        if "%" in host:
            return "the host must not be percent-encoded or carry a zone id"
        address = parse_literal(host)
        if address is None:
            # Brackets hold IPv6 literals only (yarl lets "[v1.x]" through as a name).
            if authority.startswith("[") or ":" in host or not _valid_dns_name(host.rstrip(".")):
                return f"the host {host[:100]!r} is neither a DNS name nor an IP address"
            return None
        return self.address_problem(address)


def _valid_dns_name(name: str) -> bool:
    return 0 < len(name) <= _MAX_DNS_NAME and bool(_DNS_NAME.fullmatch(name)) and ".." not in name
