"""The orchestrator's transport security: TLS or mTLS on its port and to the agents; plaintext on loopback only.

Rules (agents_clients.tls loads and reloads the files):

- **The port.** `--tls-cert/--tls-key` serve TLS; `--tls-ca` also requires every client (Envoy,
  the CLI, other services) to present a certificate from that CA (mTLS). Without a certificate
  the port is plaintext, which is allowed on a loopback address only: anywhere else start-up
  fails unless `--plaintext` says the operator wants it, and then the start-up line says so loudly.
- **The agents.** Calls to agents use TLS as soon as the orchestrator has a certificate (presented
  as its client certificate, for agents that require mTLS) or `--agents-tls-ca` is given; the
  agents' certificates are verified against `--agents-tls-ca`, else `--tls-ca`, else the system's
  roots. Plaintext calls go to loopback agents only, unless `--plaintext`. The embedded fleet is
  in-process on loopback and stays plaintext.
- **Probes.** The kubelet's gRPC probes cannot speak TLS, so `--health-listen` opens a plaintext
  port that serves grpc.health.v1 and nothing else.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from agents_clients.handlers import MalformedRequests
from agents_clients.tls import ClientTls, ServerTls, TlsError, TlsFiles, is_loopback, issued_by
from server.config import ConfigError, ServerConfig, parse_address
from server.envoy.tls import Certificates

logger = logging.getLogger(__name__)


def _host(address: str) -> str:
    return address.rpartition(":")[0]


@dataclass(frozen=True)
class Transport:
    """How the orchestrator's port and its agent calls are secured."""

    server: ServerTls | None
    """The port's TLS; None: plaintext."""
    agents: ClientTls | None
    """TLS of the calls to the agents; None: plaintext."""
    description: str
    """One line for the start-up output: TLS, mTLS or plaintext, and the agents'."""
    exposed: bool
    """Plaintext on a non-loopback address (allowed by --plaintext): worth a warning."""

    def add_port(self, server: grpc.aio.Server, listen: str) -> int:
        """Binds `listen` with this transport; returns the port."""
        if self.server is None:
            return int(server.add_insecure_port(listen))
        return int(server.add_secure_port(listen, self.server.credentials()))


def transport(config: ServerConfig, agent_addresses: Iterable[str]) -> Transport:
    """Checks the transport settings and loads the certificates.

    Args:
        config: the server's configuration.
        agent_addresses: every agent endpoint (HOST:PORT), or () for the embedded fleet.

    Raises:
        ConfigError: plaintext where it is not allowed, or a TLS file that is missing or wrong.
    """
    files = config.tls
    try:
        files.check()
        if files.ca and not files.cert:
            raise TlsError("--tls-ca needs --tls-cert and --tls-key (the server's own certificate) too")
        server_tls = ServerTls(files) if files.cert else None
        # The certificate and key were checked above as the server's; only the CA can fail here,
        # and the error then names the flag it came from.
        agents_files = TlsFiles(
            cert=files.cert,
            key=files.key,
            ca=config.agents_tls_ca or files.ca,
            setting="--agents-tls" if config.agents_tls_ca else "--tls",
        )
        addresses = list(agent_addresses)
        agents_tls = ClientTls(agents_files) if addresses and (files.cert or config.agents_tls_ca) else None
    except TlsError as exc:
        raise ConfigError(str(exc)) from None
    listen_host = _host(parse_address(config.listen, "listen"))
    exposed = server_tls is None and not is_loopback(listen_host)
    if exposed and not config.plaintext:
        raise ConfigError(
            f"listen: {config.listen} is not a loopback address and the server has no TLS certificate; "
            "give --tls-cert and --tls-key (and --tls-ca for mTLS), or --plaintext to serve plaintext anyway"
        )
    _check_http(config, server_tls)
    remote = [a for a in addresses if not is_loopback(_host(a))]
    if agents_tls is None and remote and not config.plaintext:
        raise ConfigError(
            f"agents: {remote[0]} is not a loopback address and calls to it would be plaintext; give --tls-cert "
            "and --tls-key (the orchestrator's client certificate) or --agents-tls-ca, or --plaintext"
        )
    return Transport(server_tls, agents_tls, _describe(server_tls, agents_tls, addresses, exposed), exposed)


def _check_http(config: ServerConfig, server_tls: ServerTls | None) -> None:
    """The bundled Envoy (--http) follows the port's rules: plaintext on loopback only, else TLS."""
    if not config.http:
        return
    if server_tls is None and not is_loopback(_host(parse_address(config.http, "http"))) and not config.plaintext:
        raise ConfigError(
            f"http: {config.http} is not a loopback address and the server has no TLS certificate; give --tls-cert "
            "and --tls-key (Envoy then serves TLS with them), or --plaintext"
        )
    material = server_tls.material if server_tls is not None else None
    if (
        material is not None
        and material.ca_pem
        and material.cert_pem
        and not issued_by(material.cert_pem, material.ca_pem)
    ):
        raise ConfigError(
            f"http: under mTLS the bundled Envoy presents the server's own certificate to it as a client, so "
            f"--tls-cert ({config.tls.cert}) must be issued by the CA of --tls-ca ({config.tls.ca}), and it is not"
        )


def envoy_certificates(files: TlsFiles) -> Certificates | None:
    """The server's TLS files for the bundled Envoy (absolute paths: Envoy runs elsewhere); None without TLS."""
    if not files.cert:
        return None
    return Certificates(
        cert=os.path.abspath(files.cert),
        key=os.path.abspath(files.key),
        ca=os.path.abspath(files.ca) if files.ca else "",
    )


def _describe(server_tls: ServerTls | None, agents_tls: ClientTls | None, agents: list[str], exposed: bool) -> str:
    if server_tls is not None:
        port = server_tls.describe()
    elif exposed:
        port = "PLAINTEXT on a network address (--plaintext): anyone who can reach it can read and forge every call"
    else:
        port = "plaintext on loopback only (no TLS; see the README's TLS section)"
    if not agents:
        calls = "embedded agents in-process (plaintext on loopback)"
    elif agents_tls is None:
        calls = "agents over plaintext"
    else:
        material = agents_tls.material
        calls = "agents over mTLS" if material.cert_pem else "agents over TLS"
    return f"{port}; {calls}"


def start_probe_port(listen: str, health_servicer: health.aio.HealthServicer) -> grpc.aio.Server:
    """A plaintext server of grpc.health.v1 alone (for probes that cannot speak TLS), not started yet.

    Raises:
        ConfigError: `listen` is not HOST:PORT or cannot be bound.
    """
    parse_address(listen, "health_listen")
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)], interceptors=[MalformedRequests()])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        server.add_insecure_port(listen)
    except RuntimeError as exc:
        raise ConfigError(f"health_listen: cannot listen on {listen}: {exc}") from None
    return server
