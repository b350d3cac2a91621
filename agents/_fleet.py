"""The composition root: one grpc.aio server with the seven agents, fault injection, health and reflection.

FaultInjection lets anyone who reaches the fleet make its agents fail, stall or (``crash_after``)
exit, so it is served only when asked for (``FleetConfig.faults``: ``baton agents serve
--faults``, the embedded fleet of ``baton serve --faults`` and of ``baton demo``'s fault flags);
without it, the faults set at start (latency, error rate) are the only ones, and they cannot
crash anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from baton.v1 import (
    analytics_pb2,
    analytics_pb2_grpc,
    automation_pb2,
    automation_pb2_grpc,
    document_intelligence_pb2,
    document_intelligence_pb2_grpc,
    faults_pb2,
    faults_pb2_grpc,
    job_discovery_pb2,
    job_discovery_pb2_grpc,
    matching_intelligence_pb2,
    matching_intelligence_pb2_grpc,
    security_pb2,
    security_pb2_grpc,
    ui_ux_pb2,
    ui_ux_pb2_grpc,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agents._analytics import AnalyticsServicer
from agents._automation import DIRECT_SOURCE, AutomationServicer
from agents._documents import DocumentIntelligenceServicer
from agents._faults import FaultControl, FaultInjectionServicer, fault_state
from agents._jobs import JobCatalog, JobDiscoveryServicer
from agents._ledger import ApplicationLedger
from agents._matching import MatchingIntelligenceServicer
from agents._runtime import AgentError
from agents._security import SecurityServicer
from agents._uiux import UiUxServicer
from agents_clients.handlers import MalformedRequests
from agents_clients.health import HealthServicer
from agents_clients.tls import AllowedClients, ServerTls, TlsFiles, is_loopback

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger(__name__)

#: The full names of the services the fleet serves, agents first, in the seed's order; the last,
#: FaultInjection, only with ``FleetConfig.faults``.
SERVICE_NAMES: tuple[str, ...] = (
    document_intelligence_pb2.DESCRIPTOR.services_by_name["DocumentIntelligence"].full_name,
    job_discovery_pb2.DESCRIPTOR.services_by_name["JobDiscovery"].full_name,
    matching_intelligence_pb2.DESCRIPTOR.services_by_name["MatchingIntelligence"].full_name,
    automation_pb2.DESCRIPTOR.services_by_name["Automation"].full_name,
    ui_ux_pb2.DESCRIPTOR.services_by_name["UiUx"].full_name,
    analytics_pb2.DESCRIPTOR.services_by_name["Analytics"].full_name,
    security_pb2.DESCRIPTOR.services_by_name["Security"].full_name,
    faults_pb2.DESCRIPTOR.services_by_name["FaultInjection"].full_name,
)


@dataclass(frozen=True)
class FleetConfig:
    """How to start the reference fleet."""

    listen: str = "127.0.0.1:0"
    """HOST:PORT to listen on; port 0 picks a free port. Default ``127.0.0.1:0``."""
    ledger_path: str = ":memory:"
    """The Automation agent's SQLite ledger file; ``:memory:`` (the default) keeps nothing."""
    latency_ms: float = 0.0
    """Latency, in milliseconds, every agent adds to each operation at start. Default 0."""
    error_rate: float = 0.0
    """The fraction of operations, from 0 to 1, that every agent fails at start. Default 0."""
    seed: int = 0
    """The seed of the generator that picks failures; 0 (the default) is nondeterministic."""
    # Transport security (agents_clients.tls has the rules).
    tls: TlsFiles = field(default_factory=TlsFiles)
    """The fleet's certificate and key (TLS) and the CA clients' certificates must come from
    (mTLS). Without a certificate the port is plaintext, on loopback only unless `plaintext`."""
    allow_clients: tuple[str, ...] = ()
    """With mTLS: the only client certificate names (a SAN or the CN) whose calls are served, the
    orchestrator's, say; empty: any certificate from the CA. grpc.health.v1 is open to the CA's."""
    plaintext: bool = False
    """Allows plaintext on a non-loopback listen address. Default False."""
    health_listen: str = ""
    """HOST:PORT of a plaintext port serving grpc.health.v1 alone (for the kubelet's probes); empty: none."""
    faults: bool = False
    """Whether to serve baton.v1.FaultInjection, through which any caller can change the faults
    (and crash the process with ``crash_after``). Default off."""
    max_message_bytes: int = 4 * 1024 * 1024
    """The largest request the agents accept and response they send, in bytes: the orchestrator's
    ``max_message_bytes`` (the one limit of every hop). Default 4 MiB, gRPC's default."""

    def validate(self) -> None:
        """Checks the configuration.

        Raises:
            ValueError: a field is out of range; the message names it.
        """
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"listen must be HOST:PORT, got {self.listen!r}")
        if not self.ledger_path:
            raise ValueError("ledger_path must not be empty; use ':memory:' for no file")
        if not math.isfinite(self.latency_ms) or self.latency_ms < 0:
            raise ValueError(f"latency_ms must be 0 or more, got {self.latency_ms}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be from 0 to 1, got {self.error_rate}")
        self.tls.check()
        if self.tls.ca and not self.tls.cert:
            raise ValueError("--tls-ca needs --tls-cert and --tls-key (the agents' own certificate) too")
        if self.allow_clients and not self.tls.ca:
            raise ValueError("--tls-allow-client needs mTLS: --tls-cert, --tls-key and --tls-ca")
        if not self.tls.cert and not self.plaintext and not is_loopback(host):
            raise ValueError(
                f"listen: {self.listen} is not a loopback address and the agents have no TLS certificate; "
                "give --tls-cert and --tls-key (and --tls-ca for mTLS), or --plaintext to serve plaintext anyway"
            )
        if not 64 * 1024 <= self.max_message_bytes <= 1024 * 1024 * 1024:
            raise ValueError(f"max_message_bytes must be from 65536 to 1073741824, got {self.max_message_bytes}")


class Fleet:
    """A started fleet; stop it with :meth:`stop`."""

    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: health.aio.HealthServicer,
        ledger: ApplicationLedger,
        host: str,
        port: int,
        faults: FaultControl,
        probe: grpc.aio.Server | None = None,
    ) -> None:
        self._server = server
        self._faults = faults
        self._probe = probe
        self._health = health_servicer
        self._ledger = ledger
        self.port = port
        """The port actually bound."""
        self.address = f"{host}:{port}"
        """``HOST:PORT`` actually bound, for clients to dial."""
        self._stopped = False
        self.security = ""
        """TLS, mTLS or plaintext, for the start-up line."""

    async def stop(self, grace: float = 1.0) -> None:
        """Reports NOT_SERVING, lets in-flight calls finish for up to `grace` seconds, then stops.

        Args:
            grace: Seconds in-flight calls may take before they are cancelled.
        """
        if self._stopped:
            return
        self._stopped = True
        # Health first, so that balancers stop sending before the port closes.
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
        if self._probe is not None:
            await self._probe.stop(None)
        self._ledger.close()

    def set_faults(self, config: faults_pb2.FaultConfig) -> faults_pb2.FaultConfig:
        """Sets faults in this process, as FaultInjection.SetFaults would, whether or not it is served.

        Raises:
            ValueError: the configuration is invalid (the message names the field).
        """
        try:
            return self._faults.set(config).to_proto()
        except AgentError as error:
            raise ValueError(error.message) from None

    def in_flight(self, agent: str) -> int:
        """Operations of `agent` in flight now (tests measure how calls overlap with it).

        Raises:
            ValueError: an unknown agent.
        """
        try:
            return self._faults.runtime(agent).in_flight
        except AgentError as error:
            raise ValueError(error.message) from None

    async def wait_for_termination(self) -> None:
        """Returns when the server has stopped."""
        await self._server.wait_for_termination()


def _tracing(provider: TracerProvider | None) -> list[grpc.aio.ServerInterceptor]:
    """A server span per call, the child of the caller's ``traceparent`` (the orchestrator's
    step attempt); none without a provider."""
    if provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    # Health checks, reflection and the orchestrator's status polls are no execution's work.
    untraced = filters.any_of(
        filters.health_check(), filters.service_prefix("grpc.reflection"), filters.method_name("GetStatus")
    )
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=filters.negate(untraced)
    )
    return [interceptor]


async def start_fleet(config: FleetConfig, *, tracer_provider: TracerProvider | None = None) -> Fleet:
    """Starts the seven reference agents (and FaultInjection, if configured) on one gRPC server.

    Args:
        config: Where to listen, the ledger, and the faults every agent starts with.
        tracer_provider: Makes a server span per call when given (the orchestrator's, for the
            embedded fleet); None (the default) traces nothing.

    Returns:
        The started fleet, serving and reporting SERVING on grpc.health.v1.

    Raises:
        ValueError: the configuration is invalid, or a TLS file is missing or wrong (TlsError).
        RuntimeError: the address could not be bound.
    """
    config.validate()
    server_tls = ServerTls(config.tls) if config.tls.cert else None
    catalog = JobCatalog.load()
    ledger = ApplicationLedger(config.ledger_path)
    servicers = (
        DocumentIntelligenceServicer(),
        JobDiscoveryServicer(catalog),
        MatchingIntelligenceServicer(),
        AutomationServicer(ledger, catalog),
        UiUxServicer(),
        AnalyticsServicer(),
        SecurityServicer(catalog),
    )
    runtimes = {s.runtime.name: s.runtime for s in servicers}
    start_faults = faults_pb2.FaultConfig(error_rate=config.error_rate, seed=config.seed)
    start_faults.latency.FromNanoseconds(round(config.latency_ms * 1e6))
    default = fault_state(start_faults, frozenset().union(*(r.operations for r in runtimes.values())))
    control = FaultControl(runtimes, default, frozenset((*catalog.sources, DIRECT_SOURCE)))

    # so_reuseport off: a second fleet on a taken port must fail, not share it silently.
    interceptors = [*_tracing(tracer_provider)]
    if config.allow_clients:
        interceptors.append(AllowedClients(config.allow_clients))
    interceptors.append(MalformedRequests())  # last: see agents_clients.handlers
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
        ],
        interceptors=interceptors,
    )
    # In the order of `servicers`; the generated functions are untyped, hence the annotation.
    adders: tuple[Callable[[Any, grpc.aio.Server], None], ...] = (
        document_intelligence_pb2_grpc.add_DocumentIntelligenceServicer_to_server,
        job_discovery_pb2_grpc.add_JobDiscoveryServicer_to_server,
        matching_intelligence_pb2_grpc.add_MatchingIntelligenceServicer_to_server,
        automation_pb2_grpc.add_AutomationServicer_to_server,
        ui_ux_pb2_grpc.add_UiUxServicer_to_server,
        analytics_pb2_grpc.add_AnalyticsServicer_to_server,
        security_pb2_grpc.add_SecurityServicer_to_server,
    )
    for add, servicer in zip(adders, servicers, strict=True):
        add(servicer, server)
    served = SERVICE_NAMES
    if config.faults:
        add_faults: Callable[[Any, grpc.aio.Server], None] = faults_pb2_grpc.add_FaultInjectionServicer_to_server
        add_faults(FaultInjectionServicer(control), server)
    else:
        served = SERVICE_NAMES[:-1]
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*served, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    probe = None
    try:
        if server_tls is None:
            port = server.add_insecure_port(config.listen)
        else:
            port = server.add_secure_port(config.listen, server_tls.credentials())
        if config.health_listen:
            # The kubelet's gRPC probes cannot speak TLS: health alone, plaintext, on its own port.
            probe = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, probe)
            probe.add_insecure_port(config.health_listen)
    except RuntimeError as error:
        ledger.close()
        raise RuntimeError(f"cannot listen on {config.listen}: {error}") from error
    if port == 0:
        ledger.close()
        raise RuntimeError(f"cannot listen on {config.listen}")
    if probe is not None:
        await probe.start()
    await server.start()
    for name in ("", *served):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    host = config.listen.rpartition(":")[0]
    fleet = Fleet(server, health_servicer, ledger, host, port, control, probe)
    fleet.security = _describe(config, server_tls)
    logger.info(
        "reference agents serving on %s (ledger %s, fault injection %s)",
        fleet.address,
        config.ledger_path,
        "ON: any caller can make the agents fail or exit" if config.faults else "off",
    )
    return fleet


def _describe(config: FleetConfig, server_tls: ServerTls | None) -> str:
    if server_tls is None:
        if is_loopback(config.listen.rpartition(":")[0]):
            return "plaintext on loopback only (no TLS)"
        return "PLAINTEXT on a network address (--plaintext): anyone who can reach it can call every agent"
    names = f"; only clients named {', '.join(config.allow_clients)}" if config.allow_clients else ""
    return server_tls.describe() + names


async def serve_fleet(config: FleetConfig, *, tracer_provider: TracerProvider | None = None) -> None:
    """Runs the fleet until SIGTERM or SIGINT, then stops it gracefully.

    Prints ``agents serving on HOST:PORT`` to stdout once it serves, so that a parent process
    can wait for that line and learn the port.

    Args:
        config: How to start the fleet.
        tracer_provider: As for :func:`start_fleet`; the caller flushes and shuts it down.
    """
    fleet = await start_fleet(config, tracer_provider=tracer_provider)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"agents serving on {fleet.address}", flush=True)
    print(f"agents transport: {fleet.security}", flush=True)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        logger.info("stopping reference agents")
        await fleet.stop()
        sys.stdout.flush()
