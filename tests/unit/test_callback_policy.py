"""The callback destination policy: spellings of addresses, refused ranges, allow rules, URL checks."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.callbacks import (
    MAX_URL_LENGTH,
    AddressGuard,
    CallbackConfig,
    DestinationPolicy,
    parse_literal,
    refusal,
)
from server.config import ConfigError, ServerConfig

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("10.1", "10.0.0.1"),
        ("::1", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("0:0:0:0:0:0:0:1", "::1"),
    ],
)
def test_every_numeric_spelling_of_an_address_is_read_as_the_resolver_reads_it(host: str, address: str) -> None:
    assert parse_literal(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "host", ["example.com", "localhost", "deadbeef", "1.2.3.4.5", "08.0.0.1", "0x", "127.0.0.1.", "127.0.0.1 x", ""]
)
def test_names_and_non_addresses_are_not_literals(host: str) -> None:
    assert parse_literal(host) is None


@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=24))
def test_the_literal_parser_agrees_with_getaddrinfo_on_numeric_hosts(host: str) -> None:
    try:
        resolved = socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        expected: ipaddress.IPv4Address | None = ipaddress.IPv4Address(resolved[0][4][0])
    except (OSError, UnicodeError):
        expected = None
    assert parse_literal(host) == expected


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("224.0.0.1", "multicast"),
        ("224.0.1.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),
        ("255.255.255.255", "private"),
        ("100.64.0.1", "not globally routable"),
        ("192.0.2.1", "private"),
        ("198.18.0.1", "private"),
        ("fec0::1", "site-local"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("2001::1", "Teredo"),
        ("::ffff:127.0.0.1", "loopback (it carries 127.0.0.1)"),
        ("::ffff:169.254.169.254", "link-local (it carries 169.254.169.254)"),
        ("::ffff:0:7f00:1", "loopback (it carries 127.0.0.1)"),
        ("::7f00:1", "loopback (it carries 127.0.0.1)"),
        ("::a00:1", "private (it carries 10.0.0.1)"),
        ("64:ff9b::7f00:1", "loopback (it carries 127.0.0.1)"),
        ("64:ff9b::a9fe:a9fe", "link-local (it carries 169.254.169.254)"),
        ("2002:7f00:1::", "loopback (it carries 127.0.0.1)"),
        ("2002:a00:1::1", "private (it carries 10.0.0.1)"),
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
        ("2002:808:808::1", None),
    ],
)
def test_internal_addresses_are_refused_with_their_kind_and_public_ones_are_not(
    address: str, reason: str | None
) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


REFUSED_URLS = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001:8080/",
    "http://0177.0.0.1/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[0:0:0:0:0:ffff:7f00:1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0xa9fea9fe/",
    "http://10.0.0.1/",
    "http://0.0.0.0/",
    "http://0/",
    "https://192.168.0.10:8443/hook",
    "http://[fe80::1%25eth0]/",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_a_url_spelling_an_internal_address_is_refused_without_dns(url: str) -> None:
    problem = DestinationPolicy().url_problem(url)
    assert problem is not None
    assert "--callback-allow" in problem or "zone id" in problem


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("ftp://example.com/", "http(s) URL"),
        ("example.com/hook", "http(s) URL"),
        ("http:///hook", "http(s) URL"),
        ("http://user:secret@example.com/", "userinfo"),
        ("http://@example.com/", "userinfo"),
        ("http://example.com@127.0.0.1/", "userinfo"),
        ("http://exa mple.com/", "whitespace"),
        ("http://example.com/\r\nX-Injected: 1", "control characters"),
        ("http://example.com:0/", "port 0"),
        ("http://example.com:70000/", "not a valid URL"),
        ("http://[v1.x]/", "neither a DNS name nor an IP address"),
        ("http://[::1/", "not a valid URL"),
        ("0://[]@", "not a valid URL"),  # yarl raised IndexError: the RPC answered UNKNOWN
        ("http://[]@x/", "not a valid URL"),
        ("http://%31%32%37.0.0.1/", "percent-encoded"),
        ("http://exa!mple.com/", "neither a DNS name"),
        ("http://a..b/", "neither a DNS name"),
        ("http://" + "a" * 300 + ".com/", "neither a DNS name"),
        ("https://example.com/" + "x" * MAX_URL_LENGTH, f"at most {MAX_URL_LENGTH} characters"),
    ],
)
def test_an_unusable_url_is_refused_naming_what_is_wrong(url: str, needle: str) -> None:
    problem = DestinationPolicy().url_problem(url)
    assert problem is not None and needle in problem, problem


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/baton?token=abc",
        "http://example.com:8080/",
        "http://localhost:8080/",  # a name: judged on the addresses it resolves to, at delivery
        "http://xn--9ca.com/",
        "http://bücher.example/",
        "http://8.8.8.8/",
        "http://[2606:4700:4700::1111]/",
        "http://Example.COM./",
    ],
)
def test_public_addresses_and_dns_names_pass_the_check_at_submission(url: str) -> None:
    assert DestinationPolicy().url_problem(url) is None


def test_allow_rules_take_cidrs_addresses_in_any_spelling_and_host_names() -> None:
    policy = DestinationPolicy(["10.1.0.0/16", "127.1", "[::1]", "Hooks.Internal.", "fd00::/8"])
    assert policy.url_problem("http://10.1.2.3/") is None
    assert policy.url_problem("http://10.2.0.1/") is not None
    assert policy.url_problem("http://127.0.0.1:9/") is None
    assert policy.url_problem("http://2130706433:9/") is None
    assert policy.url_problem("http://127.0.0.2/") is not None
    assert policy.url_problem("http://[::1]/") is None
    assert policy.url_problem("http://[::ffff:127.0.0.1]/") is None  # the IPv4 it carries is allowed
    assert policy.url_problem("http://[fd00::5]/") is None
    assert policy.trusts_host("hooks.internal") and policy.trusts_host("HOOKS.internal.")
    assert not policy.trusts_host("other.internal")


@pytest.mark.parametrize("rule", ["10.0.0.0/33", "not a host!", "", "1.2.3.4/abc"])
def test_an_unreadable_allow_rule_is_a_configuration_error_naming_it(rule: str) -> None:
    with pytest.raises(ValueError, match="callback_allow"):
        DestinationPolicy([rule])
    with pytest.raises(ConfigError, match="callback_allow"):
        ServerConfig(callbacks=CallbackConfig(allow=(rule,)))


def _addr_info(host: str, port: int = 80) -> tuple[int, int, int, str, tuple[str, int]]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "169.254.169.254", "10.0.0.1", "::ffff:127.0.0.1", "0.0.0.0"])
def test_the_guard_refuses_to_open_a_socket_to_a_refused_address(host: str) -> None:
    guard = AddressGuard(DestinationPolicy(), trusted=False)
    with pytest.raises(OSError, match="callback destination refused"):
        guard(_addr_info(host))
    assert guard.all_refused and guard.tried == 1


def test_the_guard_opens_sockets_to_allowed_addresses_and_to_trusted_host_names() -> None:
    guard = AddressGuard(DestinationPolicy(["127.0.0.0/8"]), trusted=False)
    guard(_addr_info("127.0.0.1")).close()
    guard(_addr_info("8.8.8.8")).close()
    with pytest.raises(OSError):
        guard(_addr_info("::1"))
    assert guard.tried == 3 and not guard.all_refused and len(guard.refused) == 1
    trusted = AddressGuard(DestinationPolicy(), trusted=True)
    trusted(_addr_info("::1")).close()
    assert not trusted.refused


def test_the_secret_file_is_read_without_trailing_whitespace_and_bounded(tmp_path: Path) -> None:
    good = tmp_path / "secret"
    good.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    assert CallbackConfig(secret_file=str(good)).read_secret() == b"0123456789abcdef0123456789abcdef"
    assert CallbackConfig().read_secret() is None
    short = tmp_path / "short"
    short.write_bytes(b"tiny\n")
    with pytest.raises(ValueError, match="callback_secret_file: the secret must be 16"):
        CallbackConfig(secret_file=str(short)).read_secret()
    with pytest.raises(ValueError, match="callback_secret_file: cannot read"):
        CallbackConfig(secret_file=str(tmp_path / "missing")).read_secret()


@pytest.mark.parametrize(
    ("setting", "value"), [("workers", 0), ("per_destination", 0), ("timeout", 0.0), ("max_body_bytes", 10)]
)
def test_out_of_range_delivery_settings_are_refused_naming_them(setting: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"callbacks.{setting}"):
        ServerConfig(callbacks=CallbackConfig(**{setting: value}))  # type: ignore[arg-type]
