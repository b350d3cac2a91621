"""Agent endpoints named by DNS: ``dns:NAME:PORT`` stands for every address NAME resolves to.

A Kubernetes headless Service (or any name with several A/AAAA records) lists an agent's
replicas; the orchestrator resolves it at start and again every `RoutingConfig.dns_refresh`
seconds, and routes over the addresses itself (agents_clients.routing), so that each replica
has its own counters, score and ejection state. Rules:
1. A failed or empty resolution keeps the addresses already known (a DNS hiccup must not empty
   an agent's rotation); before the first success the name itself stands as the one endpoint
   (gRPC's own resolver then connects to one of its addresses).
2. An address that stays keeps what routing knows of it; a new one starts fresh; one that is
   gone leaves the rotation, and its calls in flight finish on their channel.
3. Over TLS, the certificate is checked against NAME, not the address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

PREFIX = "dns:"
"""How an endpoint names a DNS name to resolve: ``dns:NAME:PORT``."""

#: Resolves (name, port) to "HOST:PORT" addresses; injected in tests.
Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class DnsName:
    """An endpoint given as ``dns:NAME:PORT`` (or gRPC's ``dns:///NAME:PORT``)."""

    name: str
    port: int

    @property
    def spec(self) -> str:
        """As written: ``dns:NAME:PORT``."""
        return f"{PREFIX}{self.name}:{self.port}"

    @property
    def fallback(self) -> str:
        """``NAME:PORT``: the endpoint before the first resolution (rule 1)."""
        return f"{self.name}:{self.port}"


def parse(spec: str) -> DnsName | None:
    """The DnsName of ``dns:NAME:PORT``; None for a plain HOST:PORT.

    Raises:
        ValueError: a ``dns:`` endpoint without a name or a port from 1 to 65535.
    """
    if not spec.startswith(PREFIX):
        return None
    rest = spec[len(PREFIX) :]
    if rest.startswith("//"):  # gRPC's form, dns://[AUTHORITY]/NAME:PORT; the authority is not used
        rest = rest[2:].partition("/")[2]
    name, sep, port = rest.rpartition(":")
    if not sep or not name or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"expected dns:NAME:PORT, got {spec!r}")
    return DnsName(name, int(port))


def address(host: str, port: int) -> str:
    """HOST:PORT, with an IPv6 host in brackets."""
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


async def resolve(name: str, port: int) -> list[str]:
    """The addresses `name` resolves to (IPv4 and IPv6, TCP), sorted, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return sorted({address(str(info[4][0]), port) for info in infos})


def expand(specs: Iterable[str], resolved: dict[str, list[str]]) -> list[str]:
    """An agent's addresses: its plain endpoints, and each DNS name's last resolution (or the
    name itself before one), in order and without repeats."""
    addresses: list[str] = []
    for spec in specs:
        dns = parse(spec)
        if dns is None:
            addresses.append(spec)
        else:
            addresses.extend(resolved.get(spec) or [dns.fallback])
    return list(dict.fromkeys(addresses))


class DnsEndpoints:
    """The agents' endpoint lists as configured, and their DNS names' latest resolutions."""

    def __init__(self, specs: dict[str, list[str]], interval: float, resolver: Resolver = resolve) -> None:
        """Checks the ``dns:`` endpoints; nothing is resolved yet.

        Raises:
            ValueError: a malformed ``dns:`` endpoint (the message names the agent).
        """
        self.specs = specs
        self.interval = interval
        self._resolver = resolver
        self.names: dict[str, DnsName] = {}
        for agent, entries in specs.items():
            for spec in entries:
                try:
                    dns = parse(spec)
                except ValueError as error:
                    raise ValueError(f"agent {agent}: {error}") from None
                if dns is not None:
                    self.names[spec] = dns
        self.resolved: dict[str, list[str]] = {}
        self.server_names: dict[str, str] = {}
        """Resolved address → the DNS name its certificate must carry (rule 3)."""
        self.due = float("-inf")
        """Clock reading when the next resolution is due."""
        self.resolutions = 0
        """Resolutions done (each of every name)."""

    def addresses(self, agent: str) -> list[str]:
        """The agent's addresses now."""
        return expand(self.specs[agent], self.resolved)

    async def refresh(self, now: float) -> None:
        """Resolves every name again (concurrently); a failure keeps what was known (rule 1)."""
        self.due = now + self.interval
        specs = list(self.names)
        results = await asyncio.gather(
            *(self._resolver(self.names[s].name, self.names[s].port) for s in specs), return_exceptions=True
        )
        for spec, result in zip(specs, results, strict=True):
            if isinstance(result, BaseException) or not result:
                logger.warning("DNS: %s did not resolve (%r); keeping %s", spec, result, self.resolved.get(spec))
                continue
            self.resolved[spec] = list(result)
            for resolved in result:
                self.server_names[resolved] = self.names[spec].name
        self.resolutions += 1
