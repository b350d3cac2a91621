"""Malformed request bytes, on every RPC of Orchestrator and SeedApi: INVALID_ARGUMENT, one short log line."""

from __future__ import annotations

import logging

import grpc
import pytest
from baton.v1 import orchestrator_pb2, seed_api_pb2

from server.app import RunningServer

SERVICES = (
    orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"],
    seed_api_pb2.DESCRIPTOR.services_by_name["SeedApi"],
)
METHODS = [(service, method) for service in SERVICES for method in service.methods]

#: Bytes no message decodes: a length-delimited field cut short, field number 0, a varint of 11 bytes.
MALFORMED = (b"\x0a\xff", b"\x00", b"\x08" + b"\xff" * 11)


async def _call(channel: grpc.aio.Channel, path: str, streaming: bool, payload: bytes) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        if streaming:
            async for _ in channel.unary_stream(path)(payload, timeout=10):
                pass
        else:
            await channel.unary_unary(path)(payload, timeout=10)
    return raised.value


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
