"""Agent endpoints named by DNS (agents_clients.dns): parsing, expansion, failures keep what is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents_clients.dns import DnsEndpoints, DnsName, address, expand, parse, resolve
from server.config import ConfigError, agent_endpoints


def test_a_dns_endpoint_is_parsed_and_a_plain_one_is_not() -> None:
    assert parse("dns:agents.ns.svc:50061") == DnsName("agents.ns.svc", 50061)
    assert parse("dns:///agents:7") == DnsName("agents", 7)
    assert parse("10.0.0.1:50061") is None
    for bad in ("dns:agents", "dns::50061", "dns:agents:0", "dns:agents:http"):
        with pytest.raises(ValueError, match="dns:NAME:PORT"):
            parse(bad)


def test_addresses_are_expanded_in_order_without_repeats_and_ipv6_in_brackets() -> None:
    resolved = {"dns:a:1": ["10.0.0.1:1", "10.0.0.2:1"]}
    assert expand(["10.0.0.2:1", "dns:a:1", "dns:b:2"], resolved) == ["10.0.0.2:1", "10.0.0.1:1", "b:2"]
    assert address("::1", 80) == "[::1]:80" and address("10.0.0.1", 80) == "10.0.0.1:80"


async def test_localhost_resolves_to_the_loopback_address() -> None:
    assert "127.0.0.1:5000" in await resolve("localhost", 5000)


async def test_a_failed_or_empty_resolution_keeps_the_addresses_known() -> None:
    answers: list[list[str] | Exception] = [["10.0.0.1:1"], OSError("no such name"), []]

    async def resolver(name: str, port: int) -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    endpoints = DnsEndpoints({"analytics": ["dns:a:1"]}, 30.0, resolver)
    assert endpoints.addresses("analytics") == ["a:1"]
    for now in (0.0, 30.0, 60.0):
        await endpoints.refresh(now)
        assert endpoints.addresses("analytics") == ["10.0.0.1:1"]
    assert endpoints.due == 90.0 and endpoints.server_names == {"10.0.0.1:1": "a"}


def test_the_agents_file_accepts_dns_names_and_refuses_malformed_ones(tmp_path: Path) -> None:
    spec = tmp_path / "agents.yaml"
    spec.write_text("default: [dns:agents.baton.svc:50061, 10.0.0.9:50061]\n")
    assert agent_endpoints(str(spec))["analytics"] == ["dns:agents.baton.svc:50061", "10.0.0.9:50061"]
    spec.write_text("default: dns:agents\n")
    with pytest.raises(ConfigError, match=r"agents\.\w+: expected dns:NAME:PORT"):
        agent_endpoints(str(spec))
