"""TLS and mTLS on real loopback servers: who may connect, who may call, certificates reloaded without restart."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from baton.v1 import analytics_pb2, analytics_pb2_grpc, execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agents import Fleet, FleetConfig, start_fleet
from agents_clients import GrpcAgentCaller
from agents_clients.tls import ClientTls, TlsFiles
from server.app import RunningServer, start_server
from server.config import ServerConfig
from server.engine.ports import AgentCall, AgentCallError
from tests.integration.support import execute_plan, w_plan, watch_all
from tests.tls_support import Issued, TestCA, peer_serial, write_party

pytestmark = pytest.mark.timeout(60)

REFUSED = 3.0
"""Seconds a call that cannot get through may try before the test says it was refused."""


@dataclass
class Pki:
    """A CA, an untrusted second CA, and the parties' certificates written to files."""

    ca: TestCA
    other: TestCA
    root: Path
    orchestrator: Issued
    agents: Issued
    user: Issued
    intruder: Issued
    """A client certificate from the trusted CA whose name no agent allows."""
    stranger: Issued
    """A client certificate from the other CA."""

    def files(self, issued: Issued, stem: str, *, ca: bool = True) -> TlsFiles:
        party = write_party(self.ca, issued, self.root / stem, stem)
        return TlsFiles(cert=str(party.cert), key=str(party.key), ca=str(party.ca) if ca else "")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, other = TestCA(), TestCA("an untrusted CA")
    return Pki(
        ca=ca,
        other=other,
        root=tmp_path / "pki",
        orchestrator=ca.server("orchestrator"),
        agents=ca.server("agents"),
        user=ca.client("user-1"),
        intruder=ca.client("intruder"),
        stranger=other.client("user-1"),
    )


def secure(address: str, ca: TestCA | None, client: Issued | None = None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem if ca else None,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    return grpc.aio.secure_channel(address, credentials)


async def health(channel: grpc.aio.Channel, deadline: float = 10.0) -> int:
    async with channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=deadline)
    return int(reply.status)


async def refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await health(channel, deadline=REFUSED)
    return error.value.code()


async def orchestrator_with(tmp_path: Path, tls: TlsFiles, **config: object) -> RunningServer:
    return await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents="embedded",
            tls=tls,
            **config,  # type: ignore[arg-type]
        )
    )


@pytest.fixture
async def stopping() -> AsyncIterator[list[RunningServer | Fleet]]:
    started: list[RunningServer | Fleet] = []
    yield started
    for item in started:
        await item.stop(0.5)


async def test_a_tls_orchestrator_is_reachable_with_its_ca_and_refuses_plaintext_and_untrusted_clients(
    pki: Pki, tmp_path: Path, stopping: list[RunningServer | Fleet]
) -> None:
    server = await orchestrator_with(tmp_path, pki.files(pki.orchestrator, "orchestrator", ca=False))
    stopping.append(server)
    assert server.security.startswith("TLS (")
    assert await health(secure(server.address, pki.ca)) == health_pb2.HealthCheckResponse.SERVING
    assert await refused(grpc.aio.insecure_channel(server.address)) == grpc.StatusCode.UNAVAILABLE
    assert await refused(secure(server.address, pki.other)) == grpc.StatusCode.UNAVAILABLE


async def test_an_mtls_orchestrator_refuses_clients_without_a_certificate_or_with_another_cas(
    pki: Pki, tmp_path: Path, stopping: list[RunningServer | Fleet]
) -> None:
    server = await orchestrator_with(tmp_path, pki.files(pki.orchestrator, "orchestrator"))
    stopping.append(server)
    assert server.security.startswith("mTLS (")
    assert await health(secure(server.address, pki.ca, pki.user)) == health_pb2.HealthCheckResponse.SERVING
    assert await refused(secure(server.address, pki.ca)) == grpc.StatusCode.UNAVAILABLE
    assert await refused(secure(server.address, pki.ca, pki.stranger)) == grpc.StatusCode.UNAVAILABLE
    assert await refused(grpc.aio.insecure_channel(server.address)) == grpc.StatusCode.UNAVAILABLE


async def test_mtls_agents_serve_only_the_allowed_client_name_but_answer_health_to_the_cas_certificates(
    pki: Pki, stopping: list[RunningServer | Fleet]
) -> None:
    fleet = await start_fleet(
        FleetConfig(listen="127.0.0.1:0", tls=pki.files(pki.agents, "agents"), allow_clients=("orchestrator",))
    )
    stopping.append(fleet)
    request = analytics_pb2.RecordEventsRequest(user_id="u1")

    async def record(client: Issued | None) -> None:
        async with secure(fleet.address, pki.ca, client) as channel:
            await analytics_pb2_grpc.AnalyticsStub(channel).RecordEvents(request, timeout=REFUSED)

    await record(pki.orchestrator)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await record(pki.intruder)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "intruder" in (error.value.details() or "")
    assert "accepts only orchestrator" in (error.value.details() or "")
    # Streaming calls are guarded too (reflection is a bidirectional stream).
    async with secure(fleet.address, pki.ca, pki.intruder) as channel:
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=REFUSED
        )
        with pytest.raises(grpc.aio.AioRpcError) as error:
            _ = [reply async for reply in stream]
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with secure(fleet.address, pki.ca, pki.orchestrator) as channel:
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=REFUSED
        )
        (listing,) = [reply async for reply in stream]
    assert listing.list_services_response.service
    # Health is open to any certificate of the CA (proxies' health checks), never to others.
    assert await health(secure(fleet.address, pki.ca, pki.intruder)) == health_pb2.HealthCheckResponse.SERVING
    assert await refused(secure(fleet.address, pki.ca, pki.stranger)) == grpc.StatusCode.UNAVAILABLE
    assert await refused(secure(fleet.address, pki.ca)) == grpc.StatusCode.UNAVAILABLE


async def test_an_execution_runs_with_mtls_from_client_to_orchestrator_to_agents(
    pki: Pki, tmp_path: Path, stopping: list[RunningServer | Fleet]
) -> None:
    fleet = await start_fleet(
        FleetConfig(listen="127.0.0.1:0", tls=pki.files(pki.agents, "agents"), allow_clients=("orchestrator",))
    )
    stopping.append(fleet)
    server = await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents=fleet.address,
            tls=pki.files(pki.orchestrator, "orchestrator"),
        )
    )
    stopping.append(server)
    assert "agents over mTLS" in server.security
    async with secure(server.address, pki.ca, pki.user) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan()), timeout=10)
        updates = await watch_all(stub, execution.execution_id)
    assert updates[-1].status.status == execution_pb2.EXECUTION_STATE_COMPLETED
    assert updates[-1].status.progress.completion_percentage == 100


def _server_serial(address: str, ca: TestCA, client: Issued | None = None, tmp: Path | None = None) -> int:
    """The serial of the certificate a new TLS connection to `address` is shown."""
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    context.set_alpn_protocols(["h2"])
    if client is not None and tmp is not None:
        cert, key = client.write(tmp, "probe")
        context.load_cert_chain(cert, key)
    host, _, port = address.rpartition(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return peer_serial(der)


def _replace(issued: Issued, files: TlsFiles) -> None:
    """Replaces the files atomically (write beside, rename over), as a Secret update or certbot does."""
    for data, path in ((issued.cert_pem, files.cert), (issued.key_pem, files.key)):
        Path(f"{path}.new").write_bytes(data)
        os.replace(f"{path}.new", path)


async def test_a_replaced_certificate_is_served_to_new_connections_without_a_restart(
    pki: Pki, tmp_path: Path, stopping: list[RunningServer | Fleet], caplog: pytest.LogCaptureFixture
) -> None:
    files = pki.files(pki.orchestrator, "orchestrator")
    server = await orchestrator_with(tmp_path, files)
    stopping.append(server)

    def serial() -> int:
        return _server_serial(server.address, pki.ca, pki.user, tmp_path)

    assert await asyncio.to_thread(serial) == pki.orchestrator.serial

    # A broken replacement (a certificate that is not PEM) is refused: the old one stays in use.
    await asyncio.to_thread(Path(files.cert).write_text, "not a certificate")
    assert await asyncio.to_thread(serial) == pki.orchestrator.serial
    assert "TLS files changed but cannot be used" in caplog.text

    renewed = pki.ca.server("orchestrator")
    _replace(renewed, files)
    assert await asyncio.to_thread(serial) == renewed.serial
    assert await health(secure(server.address, pki.ca, pki.user)) == health_pb2.HealthCheckResponse.SERVING


async def test_the_agent_channels_are_rebuilt_when_the_client_certificate_changes(
    pki: Pki, stopping: list[RunningServer | Fleet]
) -> None:
    fleet = await start_fleet(
        FleetConfig(listen="127.0.0.1:0", tls=pki.files(pki.agents, "agents"), allow_clients=("orchestrator-2",))
    )
    stopping.append(fleet)
    files = pki.files(pki.orchestrator, "orchestrator")  # CN orchestrator: not allowed yet
    caller = GrpcAgentCaller({"analytics": [fleet.address]}, tls=ClientTls(files, interval=0))
    call = AgentCall(
        agent="analytics", operation="RecordEvents", payload={"user_id": "u1"}, timeout=5, idempotency_key="k"
    )
    try:
        with pytest.raises(AgentCallError) as error:
            await caller.call(call)
        assert error.value.error_type == "PERMISSION_DENIED"
        _replace(pki.ca.issue("orchestrator-2", ("localhost",)), files)
        reply = await caller.call(call)
        assert reply.output is not None
    finally:
        await caller.close()


async def test_the_health_port_answers_probes_in_plaintext_and_serves_nothing_else(
    pki: Pki, tmp_path: Path, stopping: list[RunningServer | Fleet]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        probe = f"127.0.0.1:{s.getsockname()[1]}"
    server = await orchestrator_with(tmp_path, pki.files(pki.orchestrator, "orchestrator"), health_listen=probe)
    stopping.append(server)
    assert await health(grpc.aio.insecure_channel(probe)) == health_pb2.HealthCheckResponse.SERVING
    async with grpc.aio.insecure_channel(probe) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await orchestrator_pb2_grpc.OrchestratorStub(channel).GetSystemHealth(
                orchestrator_pb2.GetSystemHealthRequest(), timeout=5
            )
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # Draining shows on the probe port too (one health servicer behind both ports).
    await server.health_servicer.enter_graceful_shutdown()
    assert await health(grpc.aio.insecure_channel(probe)) == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_plaintext_agents_on_a_network_address_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"listen: 0\.0\.0\.0:0 is not a loopback address .*--plaintext"):
        await start_fleet(FleetConfig(listen="0.0.0.0:0"))
    with pytest.raises(ValueError, match="--tls-allow-client needs mTLS"):
        FleetConfig(allow_clients=("orchestrator",)).validate()
