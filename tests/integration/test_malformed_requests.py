"""Malformed request bytes, on every RPC of every port (orchestrator, health port, agents): INVALID_ARGUMENT."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from baton.v1 import orchestrator_pb2, seed_api_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from agents import SERVICE_NAMES, Fleet, FleetConfig, start_fleet
from server.api.probes import REFLECTION_V1
from server.app import RunningServer, start_server
from server.config import ServerConfig
from tests.integration.auth_support import make_keys, start_secured

SERVICES = (
    orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"],
    seed_api_pb2.DESCRIPTOR.services_by_name["SeedApi"],
)
METHODS = [(service, method) for service in SERVICES for method in service.methods]

#: Bytes no message decodes: a length-delimited field cut short, field number 0, a varint of 11 bytes.
MALFORMED = (b"\x0a\xff", b"\x00", b"\x08" + b"\xff" * 11)


HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]


async def _call(
    channel: grpc.aio.Channel, path: str, streaming: bool, payload: bytes, client_streaming: bool = False
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        if client_streaming:
            async for _ in channel.stream_stream(path)(iter([payload]), timeout=10):
                pass
        elif streaming:
            async for _ in channel.unary_stream(path)(payload, timeout=10):
                pass
        else:
            await channel.unary_unary(path)(payload, timeout=10)
    return raised.value


async def _refused_everywhere(address: str, path: str, method: MethodDescriptor) -> None:
    """Every MALFORMED payload to `path` is INVALID_ARGUMENT naming `method`'s input type."""
    async with grpc.aio.insecure_channel(address) as channel:
        for payload in MALFORMED:
            error = await _call(channel, path, method.server_streaming, payload, method.client_streaming)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, payload, error.details())
            details = error.details() or ""
            assert details.startswith(f"request: the bytes are not a valid {method.input_type.full_name} ("), details
            assert "class" not in details and "Unexpected" not in details


@pytest.mark.parametrize(("service", "method"), METHODS, ids=[f"{s.name}.{m.name}" for s, m in METHODS])
async def test_malformed_bytes_are_invalid_argument_naming_the_message_type(
    orchestrator: RunningServer, service: object, method: object
) -> None:
    path = f"/{service.full_name}/{method.name}"  # type: ignore[attr-defined]
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        for payload in MALFORMED:
            error = await _call(channel, path, method.server_streaming, payload)  # type: ignore[attr-defined]
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (payload, error.details())
            details = error.details() or ""
            assert details.startswith(f"request: the bytes are not a valid {method.input_type.full_name} ("), details  # type: ignore[attr-defined]
            assert "class" not in details and "Unexpected" not in details


async def test_a_flood_of_malformed_requests_logs_one_short_line_and_no_traceback(
    orchestrator: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        for _ in range(100):
            error = await _call(channel, "/baton.v1.Orchestrator/ExecuteWorkflow", False, b"\x0a\xff")
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        # The server still answers well-formed requests.
        health = orchestrator_pb2.GetSystemHealthRequest()
        reply = await channel.unary_unary(
            "/baton.v1.Orchestrator/GetSystemHealth",
            request_serializer=orchestrator_pb2.GetSystemHealthRequest.SerializeToString,
            response_deserializer=orchestrator_pb2.SystemHealth.FromString,
        )(health, timeout=10)
        assert reply.agent_statuses
    about_malformed = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(about_malformed) == 1, [r.getMessage() for r in about_malformed]
    assert len(about_malformed[0].getMessage()) < 400
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# Health and reflection on the orchestrator's port: both reflection versions, served by one servicer.
PROBES = [
    *((f"/{HEALTH.full_name}/{m.name}", m) for m in HEALTH.methods),
    (f"/{REFLECTION.full_name}/ServerReflectionInfo", REFLECTION.methods_by_name["ServerReflectionInfo"]),
    (f"/{REFLECTION_V1}/ServerReflectionInfo", REFLECTION.methods_by_name["ServerReflectionInfo"]),
]


@pytest.mark.parametrize(("path", "method"), PROBES, ids=[p for p, _ in PROBES])
async def test_health_and_reflection_refuse_malformed_bytes_too(
    orchestrator: RunningServer, path: str, method: MethodDescriptor
) -> None:
    await _refused_everywhere(orchestrator.address, path, method)


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    started = await start_fleet(FleetConfig(faults=True))
    try:
        yield started
    finally:
        await started.stop()


def _services(names: tuple[str, ...]) -> list[ServiceDescriptor]:
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    return [pool.FindServiceByName(name) for name in names]


FLEET_METHODS = [
    (f"/{service.full_name}/{method.name}", method)
    for service in (*_services(SERVICE_NAMES), HEALTH)
    for method in service.methods
]


async def test_every_method_of_the_agents_port_refuses_malformed_bytes(fleet: Fleet) -> None:
    assert len(FLEET_METHODS) > 20
    for path, method in FLEET_METHODS:
        await _refused_everywhere(fleet.address, path, method)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_health_port_refuses_malformed_bytes(tmp_path: Path) -> None:
    probe = f"127.0.0.1:{_free_port()}"
    server = await start_server(
        ServerConfig(
            listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents="embedded", health_listen=probe
        )
    )
    try:
        await _refused_everywhere(probe, f"/{HEALTH.full_name}/Check", HEALTH.methods_by_name["Check"])
    finally:
        await server.stop(grace=0.5)


async def test_without_a_token_malformed_bytes_are_unauthenticated_first(tmp_path: Path) -> None:
    server = await start_secured(tmp_path, make_keys(tmp_path / "keys"))
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            error = await _call(channel, "/baton.v1.Orchestrator/GetExecution", False, MALFORMED[0])
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
            # grpc.health.v1 needs no token: its malformed bytes are answered as such.
            error = await _call(channel, f"/{HEALTH.full_name}/Check", False, MALFORMED[0])
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    finally:
        await server.stop(grace=0.5)
